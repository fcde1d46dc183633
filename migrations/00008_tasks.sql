-- +goose Up
-- The durable queue of per-address work a public form causes. A form
-- answers every caller the same way and leaves one row here; a worker does
-- the work (find her, grant, email her) and deletes the row in the same
-- transaction, so a crash neither loses nor repeats it. payload holds her
-- address and the request's evidence only until then: a task given up on
-- keeps its reason and loses its payload.
CREATE TABLE tasks (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind         text NOT NULL CHECK (kind <> '' AND length(kind) <= 100),
    payload      jsonb NOT NULL DEFAULT '{}',
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'failed')),
    attempts     integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    run_at       timestamptz NOT NULL,
    locked_until timestamptz,
    last_error   text,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
CREATE INDEX tasks_due_idx ON tasks (run_at) WHERE status IN ('pending', 'running');

-- A checkout link is her credential to book a cohort: emailed to the
-- address typed on the form, so only whoever reads that inbox can hold a
-- seat or see a checkout for it. Only the token's hash is stored.
CREATE TABLE checkout_links (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    token_hash     bytea NOT NULL CHECK (length(token_hash) = 32),
    cohort_id      uuid NOT NULL REFERENCES cohorts (id) ON DELETE CASCADE,
    participant_id uuid NOT NULL REFERENCES participants (id) ON DELETE CASCADE,
    expires_at     timestamptz NOT NULL,
    created_at     timestamptz NOT NULL
);
CREATE UNIQUE INDEX checkout_links_token_hash_key ON checkout_links (token_hash);
CREATE INDEX checkout_links_participant_idx ON checkout_links (participant_id);
CREATE INDEX checkout_links_cohort_idx ON checkout_links (cohort_id);

-- +goose Down
DROP TABLE checkout_links;
DROP TABLE tasks;

-- +goose Up
-- The drip email engine: sequences of steps fired by triggers, one delivery
-- row per participant, step and subject (a unique key, so a trigger that
-- fires twice schedules once), batches whose id is the provider idempotency
-- key, suppressions, the Resend webhook log and the send-rate limiter that
-- every worker shares.

-- timezone_set says whether she chose her zone (the 'UTC' default is not a
-- choice), so a local send time falls back to the cohort's zone instead.
-- unsubscribe_token is plaintext on purpose: it is rendered into every
-- marketing email, and all it can do is stop marketing email.
ALTER TABLE participants
    ADD COLUMN timezone_set boolean NOT NULL DEFAULT false,
    ADD COLUMN unsubscribe_token text NOT NULL
        DEFAULT (replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', ''))
        CHECK (length(unsubscribe_token) BETWEEN 32 AND 128),
    ADD COLUMN marketing_unsubscribed_at timestamptz;
CREATE UNIQUE INDEX participants_unsubscribe_token_key ON participants (unsubscribe_token);

CREATE TABLE email_sequences (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name               text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    trigger            text NOT NULL CHECK (trigger IN ('free_access_claimed', 'enrollment_activated', 'cohort_start', 'session_reminder', 'lesson_unlocked')),
    -- Scope: a program (every cohort of it), one cohort, or neither (all).
    program_id         uuid REFERENCES programs (id) ON DELETE CASCADE,
    cohort_id          uuid REFERENCES cohorts (id) ON DELETE CASCADE,
    kind               text NOT NULL CHECK (kind IN ('marketing', 'transactional')),
    active             boolean NOT NULL DEFAULT false,
    exit_on_enrollment boolean NOT NULL DEFAULT false,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT email_sequences_scope_check CHECK (num_nonnulls(program_id, cohort_id) <= 1)
);
CREATE INDEX email_sequences_trigger_idx ON email_sequences (trigger) WHERE active;

CREATE TABLE email_steps (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    sequence_id    uuid NOT NULL REFERENCES email_sequences (id) ON DELETE CASCADE,
    position       integer NOT NULL CHECK (position >= 1),
    -- Either a plain offset in minutes from the trigger's moment, or whole
    -- days plus a local wall-clock time ("09:00" in her zone).
    offset_minutes integer CHECK (offset_minutes BETWEEN -525600 AND 525600),
    offset_days    integer CHECK (offset_days BETWEEN -365 AND 365),
    send_at_local  text CHECK (send_at_local ~ '^([01][0-9]|2[0-3]):[0-5][0-9]$'),
    subject        text NOT NULL CHECK (length(btrim(subject)) BETWEEN 1 AND 300),
    body           text NOT NULL CHECK (length(body) BETWEEN 1 AND 100000),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT email_steps_offset_check CHECK (
        (offset_minutes IS NOT NULL AND offset_days IS NULL AND send_at_local IS NULL) OR
        (offset_minutes IS NULL AND offset_days IS NOT NULL AND send_at_local IS NOT NULL)),
    CONSTRAINT email_steps_sequence_position_key UNIQUE (sequence_id, position) DEFERRABLE INITIALLY IMMEDIATE
);

-- A batch is one provider call. Its id is the call's Idempotency-Key, and
-- its members (email_deliveries.batch_id) and their rendered payloads are
-- committed before the call is made, so a retry after a crash or a timeout
-- repeats exactly that call.
CREATE TABLE email_batches (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    status           text NOT NULL CHECK (status IN ('sending', 'sent', 'failed')),
    size             integer NOT NULL CHECK (size BETWEEN 1 AND 100),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    first_attempt_at timestamptz,
    next_attempt_at  timestamptz NOT NULL,
    locked_until     timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX email_batches_due_idx ON email_batches (next_attempt_at) WHERE status = 'sending';

CREATE TABLE email_deliveries (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    participant_id   uuid NOT NULL REFERENCES participants (id) ON DELETE CASCADE,
    email            text NOT NULL CHECK (email = lower(btrim(email)) AND email LIKE '%_@_%'),
    -- The log outlives a deleted sequence or step; their scheduled rows are
    -- cancelled first.
    sequence_id      uuid REFERENCES email_sequences (id) ON DELETE SET NULL,
    step_id          uuid REFERENCES email_steps (id) ON DELETE SET NULL,
    -- What the trigger fired about, e.g. "enrollment:<id>" or
    -- "session:<id>/enrollment:<id>": one delivery per participant, step
    -- and subject.
    subject_key      text NOT NULL CHECK (length(subject_key) BETWEEN 1 AND 300),
    enrollment_id    uuid REFERENCES enrollments (id) ON DELETE CASCADE,
    -- Checked at commit, like enrollments.cohort_id: an enrollment that
    -- becomes active schedules its emails before it takes its seat on the
    -- hot cohort row, and an immediate check would key-share that row.
    cohort_id        uuid REFERENCES cohorts (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    program_id       uuid REFERENCES programs (id) ON DELETE CASCADE,
    live_session_id  uuid REFERENCES live_sessions (id) ON DELETE SET NULL,
    lesson_id        uuid REFERENCES lessons (id) ON DELETE SET NULL,
    -- The trigger's moment the step's offset counts from, and the zone a
    -- local send time was computed in, so a moved start can be re-planned.
    anchor_at        timestamptz NOT NULL,
    timezone         text NOT NULL CHECK (length(timezone) BETWEEN 1 AND 64),
    status           text NOT NULL CHECK (status IN ('scheduled', 'sending', 'sent', 'failed', 'cancelled', 'skipped')),
    send_at          timestamptz NOT NULL,
    sent_at          timestamptz,
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    first_attempt_at timestamptz,
    locked_until     timestamptz,
    batch_id         uuid REFERENCES email_batches (id) ON DELETE SET NULL,
    -- Why a row was cancelled, skipped or failed, for the coach's log.
    last_error       text,
    resend_id        text,
    -- Frozen when the row joins a batch: a retry must send the same bytes.
    rendered         jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT email_deliveries_sent_check CHECK ((status = 'sent') = (sent_at IS NOT NULL))
);
CREATE UNIQUE INDEX email_deliveries_once_key ON email_deliveries (participant_id, step_id, subject_key);
CREATE INDEX email_deliveries_due_idx ON email_deliveries (send_at) WHERE status = 'scheduled';
CREATE INDEX email_deliveries_sending_idx ON email_deliveries (locked_until) WHERE status = 'sending' AND batch_id IS NULL;
CREATE INDEX email_deliveries_batch_idx ON email_deliveries (batch_id) WHERE batch_id IS NOT NULL;
-- Only rows that have the column: scheduling writes 100,000s of rows at
-- once, and every index a row enters costs time there.
CREATE INDEX email_deliveries_enrollment_idx ON email_deliveries (enrollment_id) WHERE status = 'scheduled' AND enrollment_id IS NOT NULL;
CREATE INDEX email_deliveries_cohort_idx ON email_deliveries (cohort_id) WHERE status = 'scheduled' AND cohort_id IS NOT NULL;
CREATE INDEX email_deliveries_session_idx ON email_deliveries (live_session_id) WHERE status = 'scheduled' AND live_session_id IS NOT NULL;
CREATE INDEX email_deliveries_sequence_idx ON email_deliveries (sequence_id, send_at);
CREATE INDEX email_deliveries_email_idx ON email_deliveries (email) WHERE status = 'scheduled';
CREATE INDEX email_deliveries_resend_id_idx ON email_deliveries (resend_id) WHERE resend_id IS NOT NULL;
CREATE INDEX email_deliveries_log_idx ON email_deliveries (created_at DESC, id DESC);

-- Addresses no email goes to: hard bounces and complaints from Resend, or
-- the coach's own list.
CREATE TABLE email_suppressions (
    email      text PRIMARY KEY CHECK (email = lower(btrim(email)) AND email LIKE '%_@_%'),
    reason     text NOT NULL CHECK (reason IN ('bounced', 'complained', 'manual')),
    detail     text,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Every Resend webhook, stored once by its svix-id; the delivery events
-- the coach sees are these rows.
CREATE TABLE resend_events (
    svix_id         text PRIMARY KEY CHECK (length(svix_id) BETWEEN 1 AND 200),
    type            text NOT NULL,
    resend_email_id text,
    delivery_id     uuid REFERENCES email_deliveries (id) ON DELETE SET NULL,
    occurred_at     timestamptz NOT NULL,
    payload         jsonb NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX resend_events_delivery_idx ON resend_events (delivery_id, occurred_at) WHERE delivery_id IS NOT NULL;
-- An event can arrive before its delivery row records the Resend id (or
-- belong to a login link in the outbox): the log also matches on the id.
CREATE INDEX resend_events_email_id_idx ON resend_events (resend_email_id, occurred_at) WHERE resend_email_id IS NOT NULL;
CREATE INDEX outbox_provider_message_id_idx ON outbox (provider_message_id) WHERE provider_message_id IS NOT NULL;

-- The provider's request budget, shared by every worker process: each
-- request takes the next free slot (next_slot_at advances by 1/rate).
CREATE TABLE send_rate_limits (
    name         text PRIMARY KEY,
    next_slot_at timestamptz NOT NULL
);

-- +goose Down
DROP TABLE send_rate_limits;
DROP INDEX outbox_provider_message_id_idx;
DROP TABLE resend_events;
DROP TABLE email_suppressions;
DROP TABLE email_deliveries;
DROP TABLE email_batches;
DROP TABLE email_steps;
DROP TABLE email_sequences;
DROP INDEX participants_unsubscribe_token_key;
ALTER TABLE participants
    DROP COLUMN marketing_unsubscribed_at,
    DROP COLUMN unsubscribe_token,
    DROP COLUMN timezone_set;

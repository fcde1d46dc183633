-- +goose Up
-- The foundation schema: coaches, programs and lessons, participants and their
-- access, and the email outbox. Invariants the code relies on live here as
-- constraints, so a bug in Go cannot write a row the domain would reject.

CREATE TABLE coaches (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email         text NOT NULL CHECK (email = lower(btrim(email)) AND email LIKE '%_@_%' AND length(email) <= 254),
    name          text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    role          text NOT NULL CHECK (role IN ('admin', 'coach')),
    -- NULL until an invited coach sets her password.
    password_hash text,
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX coaches_email_key ON coaches (email);

-- Bearer tokens of coach logins; only the SHA-256 of a token is stored.
CREATE TABLE coach_sessions (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    coach_id    uuid NOT NULL REFERENCES coaches (id) ON DELETE CASCADE,
    token_hash  bytea NOT NULL CHECK (length(token_hash) = 32),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX coach_sessions_token_hash_key ON coach_sessions (token_hash);
CREATE INDEX coach_sessions_coach_id_idx ON coach_sessions (coach_id);

-- Single-use links for password resets and coach invites.
CREATE TABLE coach_action_tokens (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    coach_id    uuid NOT NULL REFERENCES coaches (id) ON DELETE CASCADE,
    purpose     text NOT NULL CHECK (purpose IN ('password_reset', 'invite')),
    token_hash  bytea NOT NULL CHECK (length(token_hash) = 32),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX coach_action_tokens_token_hash_key ON coach_action_tokens (token_hash);
CREATE INDEX coach_action_tokens_coach_id_idx ON coach_action_tokens (coach_id);

CREATE TABLE programs (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug              text NOT NULL CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND length(slug) <= 100),
    title             text NOT NULL CHECK (length(btrim(title)) BETWEEN 1 AND 200),
    summary           text NOT NULL DEFAULT '' CHECK (length(summary) <= 1000),
    description       text NOT NULL DEFAULT '' CHECK (length(description) <= 100000),
    status            text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published', 'archived')),
    free_access_until timestamptz,
    price_cents       bigint NOT NULL DEFAULT 0 CHECK (price_cents >= 0),
    currency          text NOT NULL DEFAULT 'EUR' CHECK (currency ~ '^[A-Z]{3}$'),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX programs_slug_key ON programs (slug);

CREATE TABLE lessons (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    program_id         uuid NOT NULL REFERENCES programs (id) ON DELETE CASCADE,
    position           integer NOT NULL CHECK (position >= 1),
    title              text NOT NULL CHECK (length(btrim(title)) BETWEEN 1 AND 200),
    body               text NOT NULL DEFAULT '' CHECK (length(body) <= 200000),
    -- Sanitised HTML rendered from body on every write, so reads never render.
    body_html          text NOT NULL DEFAULT '',
    media_url          text CHECK (media_url ~ '^https?://'),
    duration_seconds   integer CHECK (duration_seconds >= 0),
    free_preview       boolean NOT NULL DEFAULT false,
    unlock_offset_days integer NOT NULL DEFAULT 0 CHECK (unlock_offset_days BETWEEN 0 AND 3650),
    published          boolean NOT NULL DEFAULT false,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    -- Deferrable so a reorder can swap positions inside one transaction.
    CONSTRAINT lessons_program_position_key UNIQUE (program_id, position) DEFERRABLE INITIALLY IMMEDIATE
);

CREATE TABLE participants (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email      text NOT NULL CHECK (email = lower(btrim(email)) AND email LIKE '%_@_%' AND length(email) <= 254),
    name       text NOT NULL CHECK (length(name) <= 200),
    timezone   text NOT NULL DEFAULT 'UTC' CHECK (length(timezone) BETWEEN 1 AND 64),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX participants_email_key ON participants (email);
CREATE INDEX participants_name_lower_idx ON participants (lower(name));

CREATE TABLE participant_sessions (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    participant_id uuid NOT NULL REFERENCES participants (id) ON DELETE CASCADE,
    token_hash     bytea NOT NULL CHECK (length(token_hash) = 32),
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX participant_sessions_token_hash_key ON participant_sessions (token_hash);
CREATE INDEX participant_sessions_participant_id_idx ON participant_sessions (participant_id);

-- Magic links: a link token (exchanged by the portal page, never by a GET) and
-- a 6-digit code for typing in, both hashed.
CREATE TABLE login_links (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    participant_id uuid NOT NULL REFERENCES participants (id) ON DELETE CASCADE,
    token_hash     bytea NOT NULL CHECK (length(token_hash) = 32),
    code_hash      bytea NOT NULL CHECK (length(code_hash) = 32),
    code_attempts  integer NOT NULL DEFAULT 0 CHECK (code_attempts BETWEEN 0 AND 5),
    expires_at     timestamptz NOT NULL,
    used_at        timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX login_links_token_hash_key ON login_links (token_hash);
CREATE INDEX login_links_participant_id_idx ON login_links (participant_id, created_at DESC);

CREATE TABLE access_grants (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    participant_id uuid NOT NULL REFERENCES participants (id) ON DELETE CASCADE,
    program_id     uuid NOT NULL REFERENCES programs (id) ON DELETE RESTRICT,
    source         text NOT NULL CHECK (source IN ('free_access', 'enrollment', 'complimentary')),
    starts_at      timestamptz NOT NULL,
    revoked_at     timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now()
);
-- One free-access claim per woman per program: a second claim finds this row.
CREATE UNIQUE INDEX access_grants_free_access_key ON access_grants (participant_id, program_id) WHERE source = 'free_access';
CREATE INDEX access_grants_participant_program_idx ON access_grants (participant_id, program_id);
CREATE INDEX access_grants_program_id_idx ON access_grants (program_id);

-- Consent records are append-only evidence: what she agreed to, to which
-- text version, when, and from where.
CREATE TABLE consents (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    participant_id uuid NOT NULL REFERENCES participants (id) ON DELETE CASCADE,
    program_id     uuid REFERENCES programs (id) ON DELETE SET NULL,
    kind           text NOT NULL CHECK (kind IN ('disclaimer', 'marketing')),
    text_version   text NOT NULL CHECK (length(text_version) BETWEEN 1 AND 100),
    granted        boolean NOT NULL,
    ip             inet,
    user_agent     text CHECK (length(user_agent) <= 1000),
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX consents_participant_id_idx ON consents (participant_id, created_at);

CREATE TABLE lesson_completions (
    participant_id uuid NOT NULL REFERENCES participants (id) ON DELETE CASCADE,
    lesson_id      uuid NOT NULL REFERENCES lessons (id) ON DELETE CASCADE,
    completed_at   timestamptz NOT NULL,
    PRIMARY KEY (participant_id, lesson_id)
);
CREATE INDEX lesson_completions_lesson_id_idx ON lesson_completions (lesson_id);

-- The transactional outbox: an email row commits or rolls back with the
-- change that causes it. dedupe_key makes "send this once" a constraint.
CREATE TABLE outbox (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    template            text NOT NULL CHECK (template ~ '^[a-z0-9_]+$'),
    to_email            text NOT NULL CHECK (to_email = lower(btrim(to_email)) AND to_email LIKE '%_@_%'),
    to_name             text NOT NULL DEFAULT '',
    data                jsonb NOT NULL DEFAULT '{}'::jsonb,
    dedupe_key          text,
    status              text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'cancelled')),
    attempts            integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at     timestamptz NOT NULL DEFAULT now(),
    locked_until        timestamptz,
    last_error          text,
    provider_message_id text,
    sent_at             timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'sent') = (sent_at IS NOT NULL))
);
CREATE UNIQUE INDEX outbox_dedupe_key_key ON outbox (dedupe_key) WHERE dedupe_key IS NOT NULL;
CREATE INDEX outbox_due_idx ON outbox (next_attempt_at) WHERE status IN ('pending', 'sending');

-- Fixed-window counters for rate limits, shared by every instance.
CREATE TABLE rate_limits (
    key          text PRIMARY KEY,
    window_start timestamptz NOT NULL,
    hits         integer NOT NULL CHECK (hits >= 0)
);

-- +goose Down
DROP TABLE rate_limits;
DROP TABLE outbox;
DROP TABLE lesson_completions;
DROP TABLE consents;
DROP TABLE access_grants;
DROP TABLE login_links;
DROP TABLE participant_sessions;
DROP TABLE participants;
DROP TABLE lessons;
DROP TABLE programs;
DROP TABLE coach_action_tokens;
DROP TABLE coach_sessions;
DROP TABLE coaches;

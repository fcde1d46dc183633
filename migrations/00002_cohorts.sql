-- +goose Up
-- Cohorts, live sessions, enrollments with seat holds, the Stripe event log,
-- and the idempotency-key store. Seat counters live on the cohort row so a
-- hold is one guarded UPDATE; CHECKs make overselling impossible even for a
-- buggy caller.

CREATE TABLE cohorts (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    program_id           uuid NOT NULL REFERENCES programs (id) ON DELETE RESTRICT,
    name                 text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    starts_at            timestamptz NOT NULL,
    ends_at              timestamptz NOT NULL,
    timezone             text NOT NULL CHECK (length(timezone) BETWEEN 1 AND 64),
    capacity             integer NOT NULL CHECK (capacity BETWEEN 1 AND 10000),
    price_cents          bigint NOT NULL CHECK (price_cents >= 0 AND price_cents <= 100000000),
    currency             text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    enrollment_opens_at  timestamptz,
    enrollment_closes_at timestamptz,
    status               text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'open', 'closed', 'cancelled')),
    -- Seats: paid ones can never exceed capacity; holds only ever take a
    -- free seat (guarded UPDATE). overflow counts payments honoured after
    -- the coach lowered capacity below them, which the coach must resolve.
    seats_paid           integer NOT NULL DEFAULT 0,
    seats_held           integer NOT NULL DEFAULT 0,
    seats_overflow       integer NOT NULL DEFAULT 0,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT cohorts_dates_check CHECK (ends_at > starts_at),
    CONSTRAINT cohorts_enrollment_window_check CHECK (enrollment_closes_at IS NULL OR enrollment_opens_at IS NULL OR enrollment_closes_at > enrollment_opens_at),
    CONSTRAINT cohorts_seats_paid_check CHECK (seats_paid >= 0 AND seats_paid <= capacity),
    CONSTRAINT cohorts_seats_held_check CHECK (seats_held >= 0),
    CONSTRAINT cohorts_seats_overflow_check CHECK (seats_overflow >= 0)
);
CREATE INDEX cohorts_program_id_idx ON cohorts (program_id);
CREATE INDEX cohorts_starts_at_idx ON cohorts (starts_at, id);

CREATE TABLE cohort_coaches (
    cohort_id uuid NOT NULL REFERENCES cohorts (id) ON DELETE CASCADE,
    coach_id  uuid NOT NULL REFERENCES coaches (id) ON DELETE RESTRICT,
    lead      boolean NOT NULL DEFAULT false,
    PRIMARY KEY (cohort_id, coach_id)
);
CREATE UNIQUE INDEX cohort_coaches_one_lead_key ON cohort_coaches (cohort_id) WHERE lead;
CREATE INDEX cohort_coaches_coach_id_idx ON cohort_coaches (coach_id);

CREATE TABLE live_sessions (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    cohort_id        uuid NOT NULL REFERENCES cohorts (id) ON DELETE CASCADE,
    title            text NOT NULL CHECK (length(btrim(title)) BETWEEN 1 AND 200),
    starts_at        timestamptz NOT NULL,
    duration_minutes integer NOT NULL CHECK (duration_minutes BETWEEN 1 AND 1440),
    meeting_url      text CHECK (meeting_url ~ '^https?://'),
    recording_url    text CHECK (recording_url ~ '^https?://'),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX live_sessions_cohort_id_idx ON live_sessions (cohort_id, starts_at);

-- An enrollment is a participant's place in a cohort. Its status is derived
-- from recorded facts (paid, refunded amount, dispute state, expiry...) so
-- Stripe events applied in any order converge. seat says which counter of
-- the cohort this row occupies, so every transition moves counters once.
CREATE TABLE enrollments (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Checked at commit: an immediate check would take KEY SHARE on the
    -- cohort row that every concurrent checkout is updating, and Postgres
    -- then builds a MultiXact per waiter (a launch-day cohort ran at a
    -- quarter of the speed). At commit the checkout already holds that row.
    cohort_id             uuid NOT NULL REFERENCES cohorts (id) ON DELETE RESTRICT DEFERRABLE INITIALLY DEFERRED,
    participant_id        uuid NOT NULL REFERENCES participants (id) ON DELETE RESTRICT,
    status                text NOT NULL CHECK (status IN ('pending', 'awaiting_payment', 'active', 'expired', 'cancelled', 'refunded', 'disputed', 'waitlisted')),
    seat                  text NOT NULL DEFAULT 'none' CHECK (seat IN ('none', 'held', 'paid', 'overflow')),
    complimentary         boolean NOT NULL DEFAULT false,
    hold_expires_at       timestamptz,
    checkout_session_id   text,
    checkout_url          text,
    payment_intent_id     text,
    amount_paid_cents     bigint NOT NULL DEFAULT 0 CHECK (amount_paid_cents >= 0),
    amount_refunded_cents bigint NOT NULL DEFAULT 0 CHECK (amount_refunded_cents >= 0),
    currency              text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    -- Facts recorded from Stripe; status is a function of these.
    paid_at               timestamptz,
    awaiting_payment_at   timestamptz,
    payment_failed_at     timestamptz,
    expired_at            timestamptz,
    cancelled_at          timestamptz,
    dispute_status        text NOT NULL DEFAULT 'none' CHECK (dispute_status IN ('none', 'open', 'won', 'lost')),
    offered_at            timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT enrollments_held_has_expiry CHECK (seat <> 'held' OR hold_expires_at IS NOT NULL)
);
-- One live place per woman per cohort: a double click or a retry finds the
-- existing row instead of holding a second seat.
CREATE UNIQUE INDEX enrollments_live_key ON enrollments (cohort_id, participant_id)
    WHERE status IN ('pending', 'awaiting_payment', 'active', 'disputed', 'waitlisted');
CREATE UNIQUE INDEX enrollments_checkout_session_key ON enrollments (checkout_session_id) WHERE checkout_session_id IS NOT NULL;
CREATE INDEX enrollments_payment_intent_idx ON enrollments (payment_intent_id) WHERE payment_intent_id IS NOT NULL;
CREATE INDEX enrollments_participant_id_idx ON enrollments (participant_id);
CREATE INDEX enrollments_cohort_status_idx ON enrollments (cohort_id, status, created_at);
CREATE INDEX enrollments_hold_expiry_idx ON enrollments (hold_expires_at) WHERE seat = 'held';

-- Access that comes from an enrollment points at it, so a refund or dispute
-- revokes exactly that grant and the gate stays one query.
ALTER TABLE access_grants ADD COLUMN enrollment_id uuid REFERENCES enrollments (id) ON DELETE CASCADE;
CREATE UNIQUE INDEX access_grants_enrollment_key ON access_grants (enrollment_id) WHERE enrollment_id IS NOT NULL;
ALTER TABLE access_grants ADD CONSTRAINT access_grants_enrollment_source_check
    CHECK ((source = 'enrollment') = (enrollment_id IS NOT NULL));

-- Every Stripe event id is stored once; a replay is a no-op. Charge events
-- that arrive before we know their payment intent wait here (applied_at
-- NULL) until the checkout that names it is applied.
CREATE TABLE stripe_events (
    id                text PRIMARY KEY,
    type              text NOT NULL,
    payment_intent_id text,
    enrollment_id     uuid,
    payload           jsonb NOT NULL,
    received_at       timestamptz NOT NULL DEFAULT now(),
    applied_at        timestamptz
);
CREATE INDEX stripe_events_unapplied_pi_idx ON stripe_events (payment_intent_id) WHERE applied_at IS NULL;

-- Client Idempotency-Key store: a repeat of a POST with the same key gets
-- the first response.
CREATE TABLE idempotency_keys (
    scope          text NOT NULL,
    key            text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash   bytea NOT NULL,
    status_code    integer,
    response_body  bytea,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);

-- A participant's calendar feed token (hashed); rotating replaces it.
CREATE TABLE calendar_tokens (
    participant_id uuid PRIMARY KEY REFERENCES participants (id) ON DELETE CASCADE,
    token_hash     bytea NOT NULL CHECK (length(token_hash) = 32),
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX calendar_tokens_token_hash_key ON calendar_tokens (token_hash);

-- +goose Down
DROP TABLE calendar_tokens;
DROP TABLE idempotency_keys;
DROP TABLE stripe_events;
ALTER TABLE access_grants DROP CONSTRAINT access_grants_enrollment_source_check;
DROP INDEX access_grants_enrollment_key;
ALTER TABLE access_grants DROP COLUMN enrollment_id;
DROP TABLE enrollments;
DROP TABLE live_sessions;
DROP TABLE cohort_coaches;
DROP TABLE cohorts;

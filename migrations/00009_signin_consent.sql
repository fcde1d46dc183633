-- +goose Up
-- She has proven her address once she signs in or confirms a marketing
-- opt-in; until then no email greets her by the name a stranger may have
-- typed. A woman who already signed in has proven it.
ALTER TABLE participants ADD COLUMN email_verified_at timestamptz;
UPDATE participants p SET email_verified_at = s.first_at
FROM (SELECT participant_id, min(created_at) AS first_at FROM participant_sessions GROUP BY participant_id) s
WHERE s.participant_id = p.id;

-- Double opt-in: a form's yes to marketing email is only a request until
-- she follows the link in the confirmation email. The token is stored
-- hashed; the consent (with the confirming request's evidence) is written
-- when she confirms.
CREATE TABLE marketing_optins (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    participant_id uuid NOT NULL REFERENCES participants (id) ON DELETE CASCADE,
    program_id     uuid REFERENCES programs (id) ON DELETE SET NULL,
    token_hash     bytea NOT NULL CHECK (length(token_hash) = 32),
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    confirmed_at   timestamptz
);
CREATE UNIQUE INDEX marketing_optins_token_hash_key ON marketing_optins (token_hash);
CREATE INDEX marketing_optins_participant_idx ON marketing_optins (participant_id, created_at DESC);

-- Devices a coach signed in from (the signed grace_device cookie names
-- one): a correct password from one still works while a flood has her
-- address, network or the hash budget backed off. Revocable.
CREATE TABLE coach_devices (
    id           uuid PRIMARY KEY,
    coach_id     uuid NOT NULL REFERENCES coaches (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);
CREATE INDEX coach_devices_coach_idx ON coach_devices (coach_id) WHERE revoked_at IS NULL;

-- +goose Down
DROP TABLE coach_devices;
DROP TABLE marketing_optins;
ALTER TABLE participants DROP COLUMN email_verified_at;

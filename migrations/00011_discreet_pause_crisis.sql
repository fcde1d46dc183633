-- +goose Up
-- Discreet mode and pause are hers, read by every sender at send time.
-- discreet: every email to her goes out with a neutral sender, subject and
-- preview, and her calendar feed with neutral titles. A pause holds all
-- email but sign-in credentials from paused_at until paused_until, or until
-- she resumes when paused_until is NULL.
ALTER TABLE participants
    ADD COLUMN discreet     boolean NOT NULL DEFAULT false,
    ADD COLUMN paused_at    timestamptz,
    ADD COLUMN paused_until timestamptz,
    ADD CONSTRAINT participants_pause_check CHECK (paused_until IS NULL OR paused_at IS NOT NULL);

-- The crisis resources shown beside every participant-facing page: one
-- coach-edited text, Markdown and the sanitised HTML rendered on write.
-- One row at most (id is always true); updated_at is its version.
CREATE TABLE crisis_resources (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    body       text NOT NULL CHECK (length(body) BETWEEN 1 AND 20000),
    body_html  text NOT NULL,
    updated_by uuid REFERENCES coaches (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE crisis_resources;
ALTER TABLE participants
    DROP CONSTRAINT participants_pause_check,
    DROP COLUMN paused_until,
    DROP COLUMN paused_at,
    DROP COLUMN discreet;

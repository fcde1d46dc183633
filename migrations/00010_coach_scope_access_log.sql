-- +goose Up
-- A coach sees only her own participants: those of cohorts she leads or
-- co-leads, and those who claimed a program she leads (its free workshop).
-- A program's lead is set by an admin; a coach who leaves keeps her history
-- in the access log by name, so the program merely loses its lead.
ALTER TABLE programs ADD COLUMN lead_coach_id uuid REFERENCES coaches (id) ON DELETE SET NULL;
CREATE INDEX programs_lead_coach_id_idx ON programs (lead_coach_id) WHERE lead_coach_id IS NOT NULL;

-- Every read of a participant's personal data by a coach or an admin, shown
-- to her in the portal. The coach's name is copied as it was at the time:
-- a later rename or removal must not rewrite who looked.
CREATE TABLE participant_access_log (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    participant_id uuid NOT NULL REFERENCES participants (id) ON DELETE CASCADE,
    coach_id       uuid REFERENCES coaches (id) ON DELETE SET NULL,
    coach_name     text NOT NULL CHECK (length(coach_name) BETWEEN 1 AND 200),
    what           text NOT NULL CHECK (what IN ('profile_viewed', 'listed', 'enrollments_listed', 'deliveries_listed',
                                                 'email_previewed', 'exported', 'reflection_read')),
    created_at     timestamptz NOT NULL
);
CREATE INDEX participant_access_log_participant_idx ON participant_access_log (participant_id, created_at DESC, id DESC);
CREATE INDEX participant_access_log_coach_id_idx ON participant_access_log (coach_id) WHERE coach_id IS NOT NULL;

-- +goose Down
DROP TABLE participant_access_log;
ALTER TABLE programs DROP COLUMN lead_coach_id;

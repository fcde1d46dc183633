-- +goose Up
-- Her words stay hers. Lessons carry the coach's reflection prompts; a
-- participant's reflections are stored only as AES-256-GCM ciphertext under
-- a data key of her own, and that key only wrapped by a master key the
-- database never sees (REFLECTIONS_KEY). Deleting her key row makes every
-- copy of her reflections, backups included, unreadable.

-- Prompts as [{"markdown": ..., "html": ...}]: the sanitised HTML is rendered
-- on write beside its source, as with lesson bodies, and read in the same
-- row as the lesson, so the portal's lesson read stays one query.
ALTER TABLE lessons ADD COLUMN reflection_prompts jsonb NOT NULL DEFAULT '[]'
    CONSTRAINT lessons_reflection_prompts_check CHECK (
        CASE WHEN jsonb_typeof(reflection_prompts) = 'array' THEN jsonb_array_length(reflection_prompts) <= 10 ELSE false END);

-- One data key per participant, 32 random bytes, stored only as
-- nonce || AES-256-GCM(master key, data key). master_key_id names the master
-- key that wrapped it, so the master key can rotate.
CREATE TABLE participant_keys (
    participant_id uuid PRIMARY KEY REFERENCES participants (id) ON DELETE CASCADE,
    master_key_id  text NOT NULL CHECK (master_key_id ~ '^[A-Za-z0-9._-]{1,64}$'),
    wrapped_key    bytea NOT NULL CHECK (length(wrapped_key) = 12 + 32 + 16),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- A reflection is version || nonce || AES-256-GCM(her data key, text), with
-- her id and the lesson's bound in as associated data so no row can be moved
-- to another woman or lesson. lesson_id has no foreign key on purpose: a
-- coach deleting a lesson must not delete what she wrote (her export and
-- erasure still reach it). The shared copy is the snapshot she chose to
-- share, encrypted the same way (bound as "shared"); NULL when not shared.
CREATE TABLE reflections (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    participant_id    uuid NOT NULL REFERENCES participants (id) ON DELETE CASCADE,
    lesson_id         uuid NOT NULL,
    ciphertext        bytea NOT NULL CHECK (length(ciphertext) BETWEEN 1 + 12 + 16 + 1 AND 1 + 12 + 16 + 80000),
    version           bigint NOT NULL CHECK (version >= 1),
    shared_ciphertext bytea CHECK (length(shared_ciphertext) BETWEEN 1 + 12 + 16 + 1 AND 1 + 12 + 16 + 80000),
    shared_version    bigint CHECK (shared_version >= 1),
    shared_at         timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT reflections_participant_lesson_key UNIQUE (participant_id, lesson_id),
    CONSTRAINT reflections_share_check CHECK (
        (shared_ciphertext IS NULL) = (shared_at IS NULL) AND (shared_at IS NULL) = (shared_version IS NULL)
        AND (shared_version IS NULL OR shared_version <= version))
);
CREATE INDEX reflections_shared_idx ON reflections (participant_id, shared_at) WHERE shared_at IS NOT NULL;

-- +goose Down
DROP TABLE reflections;
DROP TABLE participant_keys;
ALTER TABLE lessons DROP COLUMN reflection_prompts;

-- +goose Up
-- An idempotency claim is fenced by a token the claimant draws, rather than
-- by the row's xmin: only the holder of the current claim may store its
-- answer or abandon it. A token says so in plain data; xmin also changes
-- on any other write to the row (and is a transaction id, which wraps).
-- Existing rows draw a token each; none of them is held under it, so a
-- claim in flight across the deploy is only taken over (after
-- IdempotencyInFlightTimeout) by a retry of its request.
ALTER TABLE idempotency_keys ADD COLUMN claim_token uuid NOT NULL DEFAULT gen_random_uuid();

-- +goose Down
ALTER TABLE idempotency_keys DROP COLUMN claim_token;

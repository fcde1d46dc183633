-- +goose Up
-- A signed Stripe event whose text PostgreSQL cannot hold (a \u0000 escape,
-- a lone surrogate, bytes that are not UTF-8) is still stored: answering it
-- 5xx would make Stripe redeliver it forever. payload then holds a
-- sanitised copy and payload_raw the bytes exactly as they were signed.
-- rejected_reason says why an event was stored but deliberately not
-- applied (a field the domain reads is unusable, or a payment does not
-- match the checkout Grace created); NULL for every other event.
ALTER TABLE stripe_events
    ADD COLUMN payload_raw bytea,
    ADD COLUMN rejected_reason text;

-- +goose Down
ALTER TABLE stripe_events
    DROP COLUMN rejected_reason,
    DROP COLUMN payload_raw;

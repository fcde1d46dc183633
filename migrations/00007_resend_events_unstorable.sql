-- +goose Up
-- A signed Resend event whose content PostgreSQL cannot hold as sent (a
-- NUL, a lone surrogate, invalid UTF-8, an email_id too long for its index)
-- is still stored, so Resend stops redelivering it: payload holds a
-- sanitised copy, payload_raw the bytes as received, and rejected says why
-- the event had no effect, when it had none.
ALTER TABLE resend_events ADD COLUMN payload_raw bytea, ADD COLUMN rejected text;

-- +goose Down
ALTER TABLE resend_events DROP COLUMN rejected, DROP COLUMN payload_raw;

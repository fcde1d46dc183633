-- +goose Up
-- A payment that does not match the checkout Grace created for a place (a
-- session we did not record, another currency, less than the price less the
-- discount Stripe reports) is never honoured; the place notes it for the
-- coaches to review. Like the other payment facts it only moves one way:
-- the earliest mismatch is kept, whatever order the events arrive in.
ALTER TABLE enrollments
    ADD COLUMN payment_review_at timestamptz,
    ADD COLUMN payment_review    text;

-- +goose Down
ALTER TABLE enrollments
    DROP COLUMN payment_review,
    DROP COLUMN payment_review_at;

-- +goose Up
-- Consent documents are data: each edit of a text is a new version, and
-- every consent row names the version she saw. The disclaimer's newest
-- version is what the portal asks her to accept.
CREATE TABLE consent_documents (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind       text NOT NULL CHECK (kind IN ('disclaimer', 'privacy', 'marketing')),
    version    integer NOT NULL CHECK (version >= 1),
    body       text NOT NULL CHECK (length(btrim(body)) BETWEEN 1 AND 100000),
    edited_by  uuid REFERENCES coaches (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT consent_documents_kind_version_key UNIQUE (kind, version)
);

INSERT INTO consent_documents (kind, version, body) VALUES
('disclaimer', 1, $md$## Coaching and education, not therapy

This program is **coaching and education**. It is not psychotherapy, counselling, medical care or legal advice, and it does not replace treatment by a therapist, doctor or lawyer.

The coaches are not your therapists and cannot respond to emergencies. If you are in danger, call your local emergency number. If you need support now, a domestic-abuse helpline in your country can help you confidentially.

You decide what you share and what you do with what you learn here. By accepting you confirm that you have read and understood this.$md$),
('marketing', 1, $md$## Emails about new programs

If you agree, we will occasionally email you about new programs, cohorts and free resources from your coach.

- These emails are separate from the emails you need for a program you joined (sign-in links, receipts, session reminders), which you always receive.
- Every marketing email has a one-click unsubscribe link; unsubscribing takes effect at once.
- We never share or sell your address.$md$),
('privacy', 1, $md$## What we keep about you, and for how long

We keep only what running your program needs:

- **Your account**: your email address, the name you gave and your time zone, for as long as you have an account.
- **Your programs**: your access, enrollments, lesson progress and live-session calendar.
- **Payments**: the amount, currency and date of each payment and refund. Card details are held by our payment provider (Stripe), never by us.
- **Your consents**: what you agreed to, which version of the text, and when. The network address and browser you agreed from are kept as evidence for 3 years, then deleted.
- **Emails we sent you**: the date and kind of each email. The content of a sent email is deleted after 90 days.
- **Sign-in sessions and links**: deleted once they expire.
- **Notices from our email and payment providers** (delivery, bounce, payment events): their content is deleted after 30 days.

You can download everything we hold about you from your portal at any time, as a file. You can also erase your account from your portal: your personal data is then deleted or made anonymous everywhere, payment records are kept only as anonymous amounts that accounting law requires, and your address is remembered only as a one-way fingerprint so that nobody can sign you up again without you.$md$);

ALTER TABLE consents DROP CONSTRAINT consents_kind_check;
ALTER TABLE consents ADD CONSTRAINT consents_kind_check CHECK (kind IN ('disclaimer', 'privacy', 'marketing'));
-- NULL for evidence recorded before documents were data whose wording is
-- not the seeded one; such rows stay valid.
ALTER TABLE consents ADD COLUMN document_id uuid REFERENCES consent_documents (id) ON DELETE RESTRICT;
CREATE INDEX consents_document_idx ON consents (participant_id, kind, document_id);
-- The versions the Go constants named are the seeded texts.
UPDATE consents c SET document_id = d.id FROM consent_documents d
WHERE d.version = 1 AND d.kind = c.kind
  AND c.text_version IN ('coaching-not-therapy-2026-11', 'marketing-email-2026-11');

-- Erasure: a participant row that remains only so payments keep their
-- anonymous amounts, and the fingerprints of erased addresses, so a later
-- claim with her address by someone else does not email her.
ALTER TABLE participants ADD COLUMN erased_at timestamptz;
CREATE TABLE erased_addresses (
    hash       bytea PRIMARY KEY CHECK (length(hash) = 32),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The code she confirms her own erasure with: one live code per woman.
CREATE TABLE erase_codes (
    participant_id uuid PRIMARY KEY REFERENCES participants (id) ON DELETE CASCADE,
    code_hash      bytea NOT NULL CHECK (length(code_hash) = 32),
    attempts       integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    expires_at     timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- Retention sweeps find what is due by these.
CREATE INDEX outbox_sent_at_idx ON outbox (sent_at) WHERE status = 'sent' AND data <> '{}'::jsonb;
CREATE INDEX email_deliveries_rendered_idx ON email_deliveries (sent_at) WHERE rendered IS NOT NULL AND status = 'sent';
CREATE INDEX consents_evidence_idx ON consents (created_at) WHERE ip IS NOT NULL OR user_agent IS NOT NULL;
CREATE INDEX stripe_events_received_idx ON stripe_events (received_at);
CREATE INDEX resend_events_received_idx ON resend_events (received_at);
CREATE INDEX participant_sessions_expires_idx ON participant_sessions (expires_at);
CREATE INDEX login_links_expires_idx ON login_links (expires_at);
CREATE INDEX coach_sessions_expires_idx ON coach_sessions (expires_at);
CREATE INDEX coach_action_tokens_expires_idx ON coach_action_tokens (expires_at);

-- +goose Down
DROP INDEX coach_action_tokens_expires_idx;
DROP INDEX coach_sessions_expires_idx;
DROP INDEX login_links_expires_idx;
DROP INDEX participant_sessions_expires_idx;
DROP INDEX resend_events_received_idx;
DROP INDEX stripe_events_received_idx;
DROP INDEX consents_evidence_idx;
DROP INDEX email_deliveries_rendered_idx;
DROP INDEX outbox_sent_at_idx;
DROP TABLE erase_codes;
DROP TABLE erased_addresses;
ALTER TABLE participants DROP COLUMN erased_at;
DROP INDEX consents_document_idx;
ALTER TABLE consents DROP COLUMN document_id;
DELETE FROM consents WHERE kind = 'privacy';
ALTER TABLE consents DROP CONSTRAINT consents_kind_check;
ALTER TABLE consents ADD CONSTRAINT consents_kind_check CHECK (kind IN ('disclaimer', 'marketing'));
DROP TABLE consent_documents;

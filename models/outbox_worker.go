package models

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// The outbox worker's side of the domain. A worker claims due rows under a
// lease, sends them, and reports back with one of the Mark functions. Each
// claim increments attempts, and the Mark functions only touch a row whose
// status is still 'sending' at the attempt the caller claimed: attempts is
// the lease's fencing token. A worker that stalled past its lease while
// another reclaimed the row therefore cannot overwrite the newer state.

// ErrOutboxLeaseLost is returned by the Mark functions when the row is no
// longer held by the caller's claim (its lease expired and another worker
// took it, or it was already settled). The caller must drop the message.
var ErrOutboxLeaseLost = errors.New("outbox: lease lost; the message was reclaimed or settled elsewhere")

// redactSecrets removes the data keys that carry a credential, the plaintext
// token and code of a login link, reset or invite, once the email is
// delivered or given up on.
const redactSecrets = `data - 'token' - 'code'`

// MaxOutboxError bounds last_error: an error message is for an operator,
// not a place to store a provider's whole response.
const MaxOutboxError = 2000

// ClaimOutbox leases up to limit due messages for lease and returns them
// with status 'sending' and attempts incremented. Due means pending, or
// 'sending' under an expired lease (its worker died mid-send), with
// next_attempt_at <= now. SKIP LOCKED lets many workers claim at once
// without ever handing the same row to two of them.
//
// Each message carries its recipient's choices as they stand at the claim,
// the moment before the send: whether the address is a participant's in
// discreet mode, and whether her email is paused. They are read here, not
// when the email was queued, because she may switch either on in between.
// The choice is the address's, so it also covers a coach's mail to an
// inbox that is a discreet participant's.
func (s *Kernel) ClaimOutbox(ctx context.Context, limit int, lease time.Duration) ([]OutboxMessage, error) {
	if limit <= 0 {
		return nil, nil
	}
	if lease <= 0 {
		return nil, errors.New("outbox: claim lease must be positive")
	}
	now := s.Now()
	var msgs []OutboxMessage
	err := s.DB.WithContext(ctx).Raw(`
		WITH due AS MATERIALIZED (
			SELECT o.id, COALESCE(p.discreet, false) AS discreet,
			       COALESCE(p.paused_at IS NOT NULL AND (p.paused_until IS NULL OR p.paused_until > ?), false) AS paused
			FROM outbox o LEFT JOIN participants p ON p.email = o.to_email
			WHERE (o.status = 'pending' OR (o.status = 'sending' AND o.locked_until < ?))
			  AND o.next_attempt_at <= ?
			ORDER BY o.next_attempt_at
			LIMIT ?
			FOR UPDATE OF o SKIP LOCKED
		)
		UPDATE outbox o
		SET status = 'sending', locked_until = ?, attempts = o.attempts + 1, updated_at = ?
		FROM due
		WHERE o.id = due.id
		RETURNING o.*, due.discreet AS recipient_discreet, due.paused AS recipient_paused`,
		now, now, now, limit, now.Add(lease), now,
	).Scan(&msgs).Error
	if err != nil {
		return nil, fmt.Errorf("claim outbox: %w", err)
	}
	return msgs, nil
}

// ExtendOutboxLease keeps a claimed message for lease from now, for a
// worker whose send is still in flight. It is fenced like the Mark
// functions: a worker that already lost the row (its lease ran out and
// another claimed it, or it was settled) gets ErrOutboxLeaseLost and must
// not extend what is no longer its own.
func (s *Kernel) ExtendOutboxLease(ctx context.Context, id uuid.UUID, attempt int, lease time.Duration) error {
	if lease <= 0 {
		return errors.New("outbox: lease must be positive")
	}
	now := s.Now()
	return s.settleOutbox(ctx, "extend outbox lease", `
		UPDATE outbox SET locked_until = ?, updated_at = ?
		WHERE id = ? AND status = 'sending' AND attempts = ?`,
		now.Add(lease), now, id, attempt)
}

// MarkOutboxSent settles a delivered message and removes its secrets from
// data: the plaintext token must not outlive its delivery in the database.
func (s *Kernel) MarkOutboxSent(ctx context.Context, id uuid.UUID, attempt int, providerID string) error {
	now := s.Now()
	var provider *string
	if providerID != "" {
		provider = &providerID
	}
	return s.settleOutbox(ctx, "mark outbox sent", `
		UPDATE outbox
		SET status = 'sent', sent_at = ?, provider_message_id = ?, locked_until = NULL,
		    last_error = NULL, data = `+redactSecrets+`, updated_at = ?
		WHERE id = ? AND status = 'sending' AND attempts = ?`,
		now, provider, now, id, attempt)
}

// MarkOutboxRetry returns a message to pending, due again at nextAttemptAt.
func (s *Kernel) MarkOutboxRetry(ctx context.Context, id uuid.UUID, attempt int, errMsg string, nextAttemptAt time.Time) error {
	now := s.Now()
	return s.settleOutbox(ctx, "mark outbox retry", `
		UPDATE outbox
		SET status = 'pending', next_attempt_at = ?, locked_until = NULL, last_error = ?, updated_at = ?
		WHERE id = ? AND status = 'sending' AND attempts = ?`,
		nextAttemptAt.UTC(), TruncateError(errMsg), now, id, attempt)
}

// MarkOutboxFailed gives up on a message (a permanent error, or attempts
// exhausted). Its secrets go too: an undeliverable token is useless, and a
// fresh request makes a fresh one.
func (s *Kernel) MarkOutboxFailed(ctx context.Context, id uuid.UUID, attempt int, errMsg string) error {
	return s.endOutbox(ctx, "mark outbox failed", OutboxFailed, id, attempt, errMsg)
}

// MarkOutboxCancelled settles a claimed message that must not be sent
// (her email is paused), with reason for the coach, and removes its secrets
// like a failure.
func (s *Kernel) MarkOutboxCancelled(ctx context.Context, id uuid.UUID, attempt int, reason string) error {
	return s.endOutbox(ctx, "mark outbox cancelled", OutboxCancelled, id, attempt, reason)
}

// endOutbox settles a claimed message unsent, with why, and its secrets gone.
func (s *Kernel) endOutbox(ctx context.Context, what string, status OutboxStatus, id uuid.UUID, attempt int, why string) error {
	return s.settleOutbox(ctx, what, `
		UPDATE outbox
		SET status = ?, locked_until = NULL, last_error = ?, data = `+redactSecrets+`, updated_at = ?
		WHERE id = ? AND status = 'sending' AND attempts = ?`,
		status, TruncateError(why), s.Now(), id, attempt)
}

func (s *Kernel) settleOutbox(ctx context.Context, what, sql string, args ...any) error {
	res := s.DB.WithContext(ctx).Exec(sql, args...)
	if res.Error != nil {
		return fmt.Errorf("%s: %w", what, res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrOutboxLeaseLost
	}
	return nil
}

// truncateError makes msg storable in a text column (valid UTF-8, no NUL,
// which Postgres rejects) and bounds its length.
func TruncateError(msg string) string {
	msg = strings.ReplaceAll(strings.ToValidUTF8(msg, "\uFFFD"), "\x00", "")
	if len(msg) <= MaxOutboxError {
		return msg
	}
	cut := MaxOutboxError
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + "…"
}

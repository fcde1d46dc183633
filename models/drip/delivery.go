package drip

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
)

// The drip worker's side of the domain. A worker forms a batch (one
// provider call of up to 100 emails) in one transaction: it claims due
// rows, re-checks that each may still be sent, renders the eligible ones
// and commits the batch, its members and their rendered payloads BEFORE
// anything is sent. The batch id is the call's Idempotency-Key, so a retry
// after a crash or a timeout repeats exactly that call, byte for byte, and
// the provider sends it once.
//
// A batch is leased like an outbox row: attempts is its fencing token, and
// the Record functions only touch a batch still 'sending' at the attempt
// the caller claimed. A worker that stalled past its lease while another
// reclaimed the batch cannot overwrite the newer outcome.

// DripGiveUpAfter is how long after a batch's first attempt automatic
// retries stop. Resend keeps an idempotency key for 24 hours; a retry after
// that could send twice, so the worker stops an hour short of it.
const DripGiveUpAfter = 23 * time.Hour

// DripRateLimiter is the send_rate_limits row every drip worker shares.
const DripRateLimiter = "resend"

// ErrDripLeaseLost is returned by the Record functions when the batch is no
// longer held by the caller's claim (its lease expired and another worker
// took it, or it was already settled). The caller must drop the batch.
var ErrDripLeaseLost = errors.New("drip: lease lost; the batch was reclaimed or settled elsewhere")

// DripBatch is one provider call.
type Batch struct {
	// ID is the call's Idempotency-Key.
	ID uuid.UUID
	// Attempt is the claim's fencing token; pass the batch back unchanged to
	// the Record functions.
	Attempt        int
	FirstAttemptAt time.Time
	// Members are in delivery id order, with the payloads frozen when the
	// batch was formed: a reclaim returns the same list, so the retry is the
	// same request.
	Members []BatchMember
}

// DripBatchMember is one email of a batch.
type BatchMember struct {
	DeliveryID uuid.UUID
	Email      string
	Rendered   RenderedEmail
}

// DripClaim is what ClaimDripBatch did.
type Claim struct {
	// Batch is the batch to send, nil when none was due.
	Batch *Batch
	// Cancelled counts due rows found ineligible and cancelled with their
	// reason (those skipped for her pause included); Failed counts rows
	// that could not be rendered and rows of batches given up on.
	Cancelled int
	Failed    int
}

// Worked reports whether the claim changed anything: a worker that gets
// false has nothing due and may pause.
func (c Claim) Worked() bool { return c.Batch != nil || c.Cancelled > 0 || c.Failed > 0 }

// DripSendResult is the provider's answer for one member: its id, or why
// it refused that one email.
type SendResult struct {
	DeliveryID uuid.UUID
	ResendID   string
	Error      string
}

// ClaimDripBatch returns a batch to send, leased for lease. A batch left
// 'sending' by a worker that died (lease expired) or waiting for its retry
// time comes first, with its members and payloads as they were; otherwise
// up to limit due deliveries form a new batch. A reclaimed batch past
// DripGiveUpAfter is failed instead of sent.
func (s *Service) ClaimDripBatch(ctx context.Context, limit int, lease time.Duration) (Claim, error) {
	var claim Claim
	if limit <= 0 || limit > 100 {
		return claim, fmt.Errorf("drip: batch limit %d out of 1..100", limit)
	}
	if lease <= 0 {
		return claim, errors.New("drip: claim lease must be positive")
	}
	for {
		b, gaveUp, err := s.reclaimDripBatch(ctx, lease)
		if err != nil {
			return claim, err
		}
		claim.Failed += gaveUp
		if b != nil {
			claim.Batch = b
			return claim, nil
		}
		if gaveUp == 0 {
			break
		}
	}
	err := s.formDripBatch(ctx, limit, lease, &claim)
	return claim, err
}

// reclaimDripBatch takes one batch due again, or gives up on one past the
// deadline (returning how many rows that failed).
func (s *Service) reclaimDripBatch(ctx context.Context, lease time.Duration) (*Batch, int, error) {
	now := s.Now()
	var out *Batch
	gaveUp := 0
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var b EmailBatch
		res := tx.Raw(`
			SELECT * FROM email_batches
			WHERE status = 'sending' AND next_attempt_at <= ? AND (locked_until IS NULL OR locked_until < ?)
			ORDER BY next_attempt_at
			LIMIT 1
			FOR UPDATE SKIP LOCKED`, now, now).Scan(&b)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return nil
		}
		first := b.CreatedAt
		if b.FirstAttemptAt != nil {
			first = *b.FirstAttemptAt
		}
		if !now.Before(first.Add(DripGiveUpAfter)) {
			reason := "no answer from Resend"
			if b.LastError != nil {
				reason = *b.LastError
			}
			n, err := settleDripBatch(tx, b.ID, now, BatchFailed, "gave_up: "+reason)
			gaveUp = n
			return err
		}
		attempt := b.Attempts + 1
		if err := tx.Exec(`
			UPDATE email_batches SET attempts = ?, locked_until = ?, updated_at = ? WHERE id = ?`,
			attempt, now.Add(lease), now, b.ID).Error; err != nil {
			return err
		}
		if err := tx.Exec(`
			UPDATE email_deliveries SET attempts = attempts + 1, updated_at = ?
			WHERE batch_id = ? AND status = 'sending'`, now, b.ID).Error; err != nil {
			return err
		}
		// Every row the batch was formed with, whatever its status now: the
		// retry must carry the payload the key was first used with.
		var rows []struct {
			ID       uuid.UUID
			Email    string
			Rendered []byte
		}
		if err := tx.Raw(`
			SELECT id, email, rendered FROM email_deliveries WHERE batch_id = ? ORDER BY id`, b.ID).Scan(&rows).Error; err != nil {
			return err
		}
		batch := &Batch{ID: b.ID, Attempt: attempt, FirstAttemptAt: first.UTC()}
		for _, r := range rows {
			m := BatchMember{DeliveryID: r.ID, Email: r.Email}
			if err := json.Unmarshal(r.Rendered, &m.Rendered); err != nil {
				return fmt.Errorf("delivery %s: stored payload: %w", r.ID, err)
			}
			batch.Members = append(batch.Members, m)
		}
		if len(batch.Members) == 0 {
			// Its rows were deleted with their participant: nothing to send.
			_, err := settleDripBatch(tx, b.ID, now, BatchFailed, "gave_up: the batch has no deliveries left")
			return err
		}
		out = batch
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("reclaim drip batch: %w", err)
	}
	return out, gaveUp, nil
}

// dueDelivery is a due row with what its eligibility re-check found and
// the values of its placeholders.
type dueDelivery struct {
	ID                      uuid.UUID
	Email                   string
	Timezone                string
	Reason                  string
	Kind                    SequenceKind
	Subject                 string
	Body                    string
	ParticipantName         string
	UnsubscribeToken        string
	ProgramTitle            string
	CohortName              string
	LessonTitle             string
	SessionStartsAt         *time.Time
	MarketingUnsubscribedAt *time.Time
	Discreet                bool
}

// erasedHashOfDeliverySQL fingerprints a delivery's address as erasure
// remembers it (models.ErasedAddressHash).
var erasedHashOfDeliverySQL = models.ErasedAddressSQL("d.email")

// dueDeliveriesSQL claims due rows and re-checks, in the same statement,
// that each may still be sent (the first reason that applies wins; NULL:
// eligible). Only the deliveries are locked; SKIP LOCKED lets every worker
// claim at once without two ever taking the same row.
var dueDeliveriesSQL = `
SELECT d.id, d.email, d.timezone,
       seq.kind, st.subject, st.body,
       CASE WHEN p.email_verified_at IS NOT NULL THEN p.name ELSE '' END AS participant_name, p.unsubscribe_token, p.discreet,
       COALESCE(pr.title, '') AS program_title, COALESCE(c.name, '') AS cohort_name,
       COALESCE(l.title, '') AS lesson_title, ls.starts_at AS session_starts_at,
       CASE
         WHEN seq.id IS NULL THEN 'sequence_deleted'
         WHEN st.id IS NULL THEN 'step_deleted'
         WHEN NOT seq.active THEN 'sequence_inactive'
         WHEN d.enrollment_id IS NOT NULL AND e.status <> 'active' THEN 'enrollment_' || e.status
         WHEN c.status = 'cancelled' THEN 'cohort_cancelled'
         WHEN seq.trigger = 'session_reminder' AND d.live_session_id IS NULL THEN 'session_deleted'
         WHEN seq.trigger = 'lesson_unlocked' AND d.lesson_id IS NULL THEN 'lesson_deleted'
         WHEN seq.exit_on_enrollment AND EXISTS (
                SELECT 1 FROM enrollments pe JOIN cohorts pc ON pc.id = pe.cohort_id
                WHERE pe.participant_id = d.participant_id AND pe.status = 'active' AND pc.price_cents > 0)
           THEN 'exited_on_enrollment'
         WHEN EXISTS (SELECT 1 FROM erased_addresses ea WHERE ea.hash = ` + erasedHashOfDeliverySQL + `)
           THEN 'erased: the owner of this address erased her account'
         WHEN sup.email IS NOT NULL THEN 'suppressed: ' || sup.reason
         -- Her pause: paused now, or this step fell due while she was
         -- (a worker that ran late must not send it after the pause).
         WHEN p.paused_at IS NOT NULL AND (
                (p.paused_until IS NULL OR p.paused_until > @now)
                OR (d.send_at >= p.paused_at AND d.send_at < p.paused_until))
           THEN 'paused: she paused her email from ' || to_char(p.paused_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"')
                || COALESCE(' until ' || to_char(p.paused_until AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"'), ' until she resumes')
         WHEN seq.kind = 'marketing' AND p.marketing_unsubscribed_at IS NOT NULL
           THEN 'unsubscribed: she stopped marketing email on ' || to_char(p.marketing_unsubscribed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"')
         -- Marketing needs her yes: the latest marketing consent she gave
         -- (a claim or checkout form) must be a grant. No record is a no.
         WHEN seq.kind = 'marketing' AND NOT COALESCE((
                SELECT c.granted FROM consents c
                WHERE c.participant_id = d.participant_id AND c.kind = 'marketing'
                ORDER BY c.created_at DESC, c.id DESC LIMIT 1), false)
           THEN 'no_marketing_consent: she did not agree to marketing email'
       END AS reason
FROM email_deliveries d
JOIN participants p ON p.id = d.participant_id
LEFT JOIN email_sequences seq ON seq.id = d.sequence_id
LEFT JOIN email_steps st ON st.id = d.step_id
LEFT JOIN enrollments e ON e.id = d.enrollment_id
LEFT JOIN cohorts c ON c.id = COALESCE(d.cohort_id, e.cohort_id)
LEFT JOIN lessons l ON l.id = d.lesson_id
LEFT JOIN programs pr ON pr.id = COALESCE(d.program_id, c.program_id, l.program_id, seq.program_id)
LEFT JOIN live_sessions ls ON ls.id = d.live_session_id
LEFT JOIN email_suppressions sup ON sup.email = d.email
WHERE d.status = 'scheduled' AND d.send_at <= @now
ORDER BY d.send_at
LIMIT @limit
FOR UPDATE OF d SKIP LOCKED`

// formDripBatch claims up to limit due rows, cancels the ineligible,
// fails the unrenderable and commits the rest as a new batch.
func (s *Service) formDripBatch(ctx context.Context, limit int, lease time.Duration, claim *Claim) error {
	if s.renderer == nil {
		return errors.New("drip: the service has no DripRenderer")
	}
	now := s.Now()
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var due []dueDelivery
		if err := tx.Raw(dueDeliveriesSQL, map[string]any{"now": now, "limit": limit}).Scan(&due).Error; err != nil {
			return err
		}
		if len(due) == 0 {
			return nil
		}
		type reasonRow struct {
			ID     uuid.UUID `json:"id"`
			Reason string    `json:"reason"`
		}
		type memberRow struct {
			ID       uuid.UUID       `json:"id"`
			Rendered json.RawMessage `json:"rendered"`
		}
		var cancelled, skipped, failed []reasonRow
		var members []memberRow
		batch := &Batch{ID: uuid.New(), Attempt: 1, FirstAttemptAt: now}
		zones := map[string]*time.Location{}
		for _, d := range due {
			if strings.HasPrefix(d.Reason, ReasonPaused+":") {
				// Skipped, not cancelled: she did not leave, she paused,
				// and the delivery log says which.
				skipped = append(skipped, reasonRow{d.ID, models.TruncateError(d.Reason)})
				continue
			}
			if d.Reason != "" {
				cancelled = append(cancelled, reasonRow{d.ID, models.TruncateError(d.Reason)})
				continue
			}
			rendered, err := s.renderer.RenderStep(s.dripRenderRequest(d, zones))
			var raw []byte
			if err == nil {
				raw, err = json.Marshal(storableEmail(rendered))
			}
			if err != nil {
				failed = append(failed, reasonRow{d.ID, models.TruncateError("render: " + err.Error())})
				continue
			}
			// What is sent is what a reclaim will read back: decode the
			// stored form, so both go through the same JSON.
			m := BatchMember{DeliveryID: d.ID, Email: d.Email}
			if err := json.Unmarshal(raw, &m.Rendered); err != nil {
				return err
			}
			batch.Members = append(batch.Members, m)
			members = append(members, memberRow{d.ID, raw})
		}
		if err := setDripStatus(tx, DeliveryCancelled, cancelled, now); err != nil {
			return err
		}
		if err := setDripStatus(tx, DeliveryFailed, failed, now); err != nil {
			return err
		}
		if err := setDripStatus(tx, DeliverySkipped, skipped, now); err != nil {
			return err
		}
		claim.Cancelled += len(cancelled) + len(skipped)
		claim.Failed += len(failed)
		if len(members) == 0 {
			return nil
		}
		if err := tx.Exec(`
			INSERT INTO email_batches (id, status, size, attempts, first_attempt_at, next_attempt_at, locked_until, created_at, updated_at)
			VALUES (?, 'sending', ?, 1, ?, ?, ?, ?, ?)`,
			batch.ID, len(members), now, now, now.Add(lease), now, now).Error; err != nil {
			return err
		}
		payload, err := json.Marshal(members)
		if err != nil {
			return err
		}
		if err := tx.Exec(`
			UPDATE email_deliveries d
			SET status = 'sending', batch_id = ?, rendered = x.rendered, attempts = d.attempts + 1,
			    first_attempt_at = COALESCE(d.first_attempt_at, ?), last_error = NULL, updated_at = ?
			FROM jsonb_to_recordset(?::jsonb) AS x(id uuid, rendered jsonb)
			WHERE d.id = x.id`, batch.ID, now, now, string(payload)).Error; err != nil {
			return err
		}
		slices.SortFunc(batch.Members, func(a, b BatchMember) int { return bytes.Compare(a.DeliveryID[:], b.DeliveryID[:]) })
		claim.Batch = batch
		return nil
	})
	if err != nil {
		claim.Batch, claim.Cancelled, claim.Failed = nil, 0, 0
		return fmt.Errorf("form drip batch: %w", err)
	}
	return nil
}

// setDripStatus settles rows with a reason each.
func setDripStatus[T any](tx *gorm.DB, status DeliveryStatus, rows []T, now time.Time) error {
	if len(rows) == 0 {
		return nil
	}
	payload, err := json.Marshal(rows)
	if err != nil {
		return err
	}
	return tx.Exec(`
		UPDATE email_deliveries d SET status = ?, last_error = x.reason, updated_at = ?
		FROM jsonb_to_recordset(?::jsonb) AS x(id uuid, reason text)
		WHERE d.id = x.id`, status, now, string(payload)).Error
}

// storableEmail drops NUL characters, which a jsonb column refuses.
func storableEmail(r RenderedEmail) RenderedEmail {
	clean := func(s string) string { return strings.ReplaceAll(s, "\x00", "") }
	out := RenderedEmail{Subject: clean(r.Subject), HTML: clean(r.HTML), Text: clean(r.Text), Discreet: r.Discreet}
	if len(r.Headers) > 0 {
		out.Headers = make(map[string]string, len(r.Headers))
		for k, v := range r.Headers {
			out.Headers[clean(k)] = clean(v)
		}
	}
	return out
}

// dripRenderRequest is one due row's step and placeholder values.
func (s *Service) dripRenderRequest(d dueDelivery, zones map[string]*time.Location) RenderRequest {
	req := RenderRequest{
		Step:      StepContent{Subject: d.Subject, Body: d.Body},
		Marketing: d.Kind == SequenceMarketing,
		// Read as the batch is formed: the last moment before it is frozen.
		Discreet: d.Discreet,
		Vars: Vars{
			ProgramTitle:   d.ProgramTitle,
			CohortName:     d.CohortName,
			PortalURL:      s.baseURL + "/portal",
			LessonTitle:    d.LessonTitle,
			UnsubscribeURL: s.dripUnsubscribeURL(d.UnsubscribeToken),
		},
	}
	// Empty until she proved the address: the renderer then greets her
	// without a name, since a stranger may have typed it.
	if f := strings.Fields(d.ParticipantName); len(f) > 0 {
		req.Vars.FirstName = f[0]
	}
	if d.SessionStartsAt != nil {
		req.Vars.SessionStartsAt = dripLocalTime(*d.SessionStartsAt, d.Timezone, zones)
	}
	if req.Marketing {
		req.UnsubscribeMailto = s.dripUnsubscribeMailto(d.UnsubscribeToken)
	}
	return req
}

// dripUnsubscribeURL is her one-click unsubscribe link (RFC 8058).
func (s *Service) dripUnsubscribeURL(token string) string {
	if s.unsubscribeURL == nil {
		return ""
	}
	return s.unsubscribeURL(token)
}

// dripUnsubscribeMailto is the mailto: form of List-Unsubscribe, "" when no
// mailbox is configured.
func (s *Service) dripUnsubscribeMailto(token string) string {
	if s.unsubscribeMailbox == "" {
		return ""
	}
	return "mailto:" + s.unsubscribeMailbox + "?subject=unsubscribe-" + token
}

// dripLocalTime shows an instant as a reader in zone would say it, with the
// zone named: "Tuesday 3 March 2026 at 18:00 (Europe/Paris)". An unknown
// zone falls back to UTC, named as such.
func dripLocalTime(t time.Time, zone string, zones map[string]*time.Location) string {
	loc, ok := zones[zone]
	if !ok {
		var err error
		if loc, err = time.LoadLocation(zone); err != nil {
			loc = nil
		}
		zones[zone] = loc
	}
	if loc == nil {
		loc, zone = time.UTC, "UTC"
	}
	return t.In(loc).Format("Monday 2 January 2006 at 15:04") + " (" + zone + ")"
}

// RecordDripBatchSent settles a batch the provider accepted: each member
// is sent with its provider id, or failed with the provider's reason when
// it refused that one email.
func (s *Service) RecordDripBatchSent(ctx context.Context, b *Batch, results []SendResult) error {
	now := s.Now()
	type sentRow struct {
		ID       uuid.UUID `json:"id"`
		ResendID string    `json:"resend_id"`
	}
	type reasonRow struct {
		ID     uuid.UUID `json:"id"`
		Reason string    `json:"reason"`
	}
	var sent []sentRow
	var rejected []reasonRow
	for _, r := range results {
		if r.Error != "" {
			rejected = append(rejected, reasonRow{r.DeliveryID, models.TruncateError("rejected: " + r.Error)})
		} else {
			sent = append(sent, sentRow{r.DeliveryID, r.ResendID})
		}
	}
	return s.settleDripFenced(ctx, "record drip batch sent", b, func(tx *gorm.DB) error {
		if err := tx.Exec(`
			UPDATE email_batches SET status = 'sent', locked_until = NULL, last_error = NULL, updated_at = ?
			WHERE id = ?`, now, b.ID).Error; err != nil {
			return err
		}
		if len(sent) > 0 {
			payload, err := json.Marshal(sent)
			if err != nil {
				return err
			}
			if err := tx.Exec(`
				UPDATE email_deliveries d
				SET status = 'sent', sent_at = ?, resend_id = NULLIF(x.resend_id, ''), last_error = NULL, updated_at = ?
				FROM jsonb_to_recordset(?::jsonb) AS x(id uuid, resend_id text)
				WHERE d.id = x.id AND d.batch_id = ? AND d.status = 'sending'`, now, now, string(payload), b.ID).Error; err != nil {
				return err
			}
		}
		if len(rejected) > 0 {
			payload, err := json.Marshal(rejected)
			if err != nil {
				return err
			}
			if err := tx.Exec(`
				UPDATE email_deliveries d SET status = 'failed', last_error = x.reason, updated_at = ?
				FROM jsonb_to_recordset(?::jsonb) AS x(id uuid, reason text)
				WHERE d.id = x.id AND d.batch_id = ? AND d.status = 'sending'`, now, string(payload), b.ID).Error; err != nil {
				return err
			}
		}
		return nil
	})
}

// RecordDripBatchRetry releases a batch that failed transiently (5xx,
// network, timeout, 429) to be claimed again at next with the same members
// and key. When next is past DripGiveUpAfter from the first attempt the
// batch and its rows are failed instead ("gave_up: errMsg") and gaveUp is
// true.
func (s *Service) RecordDripBatchRetry(ctx context.Context, b *Batch, errMsg string, next time.Time) (gaveUp bool, err error) {
	now := s.Now()
	if !next.Before(b.FirstAttemptAt.Add(DripGiveUpAfter)) {
		return true, s.RecordDripBatchFailed(ctx, b, "gave_up: "+errMsg)
	}
	msg := models.TruncateError(errMsg)
	return false, s.settleDripFenced(ctx, "record drip batch retry", b, func(tx *gorm.DB) error {
		if err := tx.Exec(`
			UPDATE email_batches SET next_attempt_at = ?, locked_until = NULL, last_error = ?, updated_at = ?
			WHERE id = ?`, next.UTC(), msg, now, b.ID).Error; err != nil {
			return err
		}
		// The coach sees why her email is late.
		return tx.Exec(`
			UPDATE email_deliveries SET last_error = ?, updated_at = ? WHERE batch_id = ? AND status = 'sending'`,
			msg, now, b.ID).Error
	})
}

// RecordDripBatchFailed fails a batch and its rows with reason, e.g.
// "rejected: <Resend's message>" for a permanent 4xx.
func (s *Service) RecordDripBatchFailed(ctx context.Context, b *Batch, reason string) error {
	now := s.Now()
	return s.settleDripFenced(ctx, "record drip batch failed", b, func(tx *gorm.DB) error {
		_, err := settleDripBatch(tx, b.ID, now, BatchFailed, reason)
		return err
	})
}

// ExtendDripBatchLease keeps a claimed batch for lease from now, for a
// worker that must wait (a send slot, a Retry-After) before sending it.
func (s *Service) ExtendDripBatchLease(ctx context.Context, b *Batch, lease time.Duration) error {
	now := s.Now()
	res := s.DB.WithContext(ctx).Exec(`
		UPDATE email_batches SET locked_until = ?, updated_at = ?
		WHERE id = ? AND status = 'sending' AND attempts = ?`, now.Add(lease), now, b.ID, b.Attempt)
	if res.Error != nil {
		return fmt.Errorf("extend drip batch lease: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrDripLeaseLost
	}
	return nil
}

// settleDripFenced runs fn in a transaction holding the batch, provided the
// batch is still 'sending' at the caller's attempt.
func (s *Service) settleDripFenced(ctx context.Context, what string, b *Batch, fn func(tx *gorm.DB) error) error {
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// Locks the batch row too, so a reclaim waits for this outcome.
		res := tx.Exec(`
			UPDATE email_batches SET updated_at = ? WHERE id = ? AND status = 'sending' AND attempts = ?`,
			s.Now(), b.ID, b.Attempt)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrDripLeaseLost
		}
		return fn(tx)
	})
	if err != nil && !errors.Is(err, ErrDripLeaseLost) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return err
}

// settleDripBatch ends a batch with status and its 'sending' rows failed
// with reason, returning how many rows.
func settleDripBatch(tx *gorm.DB, id uuid.UUID, now time.Time, status BatchStatus, reason string) (int, error) {
	reason = models.TruncateError(reason)
	if err := tx.Exec(`
		UPDATE email_batches SET status = ?, locked_until = NULL, last_error = ?, updated_at = ? WHERE id = ?`,
		status, reason, now, id).Error; err != nil {
		return 0, err
	}
	res := tx.Exec(`
		UPDATE email_deliveries SET status = 'failed', last_error = ?, updated_at = ?
		WHERE batch_id = ? AND status = 'sending'`, reason, now, id)
	return int(res.RowsAffected), res.Error
}

// TakeSendSlot reserves the next request slot of the named limiter, shared
// by every worker in every process, at rate requests per second, and
// returns how long the caller must wait before making its request. Slots
// are 1/rate apart: the slot is the later of the limiter's next free slot
// and now, and the next free slot moves one interval past it.
//
// This is physical time, not the domain's: it must mean the same thing to
// every process at once, and the injected clock may be a test's frozen
// fake or a skewed host clock. So it is the database server's clock, and
// clock_timestamp() (the moment of the statement), not now() (the start of
// the transaction).
func (s *Service) TakeSendSlot(ctx context.Context, name string, rate float64) (time.Duration, error) {
	if !(rate > 0) {
		return 0, fmt.Errorf("drip: send rate %v must be positive", rate)
	}
	interval := 1 / rate
	var waitSeconds float64
	err := s.DB.WithContext(ctx).Raw(`
		INSERT INTO send_rate_limits AS l (name, next_slot_at)
		VALUES (?, clock_timestamp() + make_interval(secs => ?))
		ON CONFLICT (name) DO UPDATE
		SET next_slot_at = GREATEST(l.next_slot_at, clock_timestamp()) + make_interval(secs => ?)
		RETURNING EXTRACT(EPOCH FROM (l.next_slot_at - make_interval(secs => ?) - clock_timestamp()))::float8`,
		name, interval, interval, interval).Scan(&waitSeconds).Error
	if err != nil {
		return 0, fmt.Errorf("take send slot: %w", err)
	}
	if waitSeconds <= 0 {
		return 0, nil
	}
	return time.Duration(waitSeconds * float64(time.Second)), nil
}

// DelaySendSlots pushes the named limiter's next free slot to at least d
// from now, for every worker: the provider answered 429 with Retry-After d.
func (s *Service) DelaySendSlots(ctx context.Context, name string, d time.Duration) error {
	err := s.DB.WithContext(ctx).Exec(`
		INSERT INTO send_rate_limits AS l (name, next_slot_at)
		VALUES (?, clock_timestamp() + make_interval(secs => ?))
		ON CONFLICT (name) DO UPDATE
		SET next_slot_at = GREATEST(l.next_slot_at, EXCLUDED.next_slot_at)`,
		name, d.Seconds()).Error
	if err != nil {
		return fmt.Errorf("delay send slots: %w", err)
	}
	return nil
}

// DeliveryStatus is where one email of a sequence stands, as the
// email_deliveries.status column and the delivery log spell it.
type DeliveryStatus string

const (
	DeliveryScheduled DeliveryStatus = "scheduled"
	DeliverySending   DeliveryStatus = "sending"
	DeliverySent      DeliveryStatus = "sent"
	DeliveryFailed    DeliveryStatus = "failed"
	DeliveryCancelled DeliveryStatus = "cancelled"
	DeliverySkipped   DeliveryStatus = "skipped"
)

// BatchStatus is where a batch of drip emails stands (email_batches.status).
type BatchStatus string

const (
	BatchSending BatchStatus = "sending"
	BatchSent    BatchStatus = "sent"
	BatchFailed  BatchStatus = "failed"
)

type EmailDelivery struct {
	ID             uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	ParticipantID  uuid.UUID `gorm:"type:uuid"`
	Email          string
	SequenceID     *uuid.UUID `gorm:"type:uuid"`
	StepID         *uuid.UUID `gorm:"type:uuid"`
	SubjectKey     string
	EnrollmentID   *uuid.UUID `gorm:"type:uuid"`
	CohortID       *uuid.UUID `gorm:"type:uuid"`
	ProgramID      *uuid.UUID `gorm:"type:uuid"`
	LiveSessionID  *uuid.UUID `gorm:"type:uuid"`
	LessonID       *uuid.UUID `gorm:"type:uuid"`
	AnchorAt       time.Time
	Timezone       string
	Status         DeliveryStatus
	SendAt         time.Time
	SentAt         *time.Time
	Attempts       int
	FirstAttemptAt *time.Time
	LockedUntil    *time.Time
	BatchID        *uuid.UUID `gorm:"type:uuid"`
	LastError      *string
	ResendID       *string
	Rendered       []byte `gorm:"type:jsonb"` // RenderedEmail as JSON, frozen in its batch
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

type EmailBatch struct {
	ID             uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	Status         BatchStatus
	Size           int
	Attempts       int
	FirstAttemptAt *time.Time
	NextAttemptAt  time.Time
	LockedUntil    *time.Time
	LastError      *string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

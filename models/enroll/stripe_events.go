package enroll

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
)

// Payment events are applied as facts recorded on the enrollment (a time set
// at its earliest, an amount that only grows, a dispute that only moves
// forward) and the enrollment is then settled by the state machine. Every
// fact update below is commutative and idempotent, so Stripe's deliveries in
// any order and any number of times converge on the same row.

// eventFacts is the part of a PaymentEvent the domain reads, stored with the
// event (under the payload's "_grace" key) so that a charge event parked
// before its payment intent was known can be applied later without the
// provider's parser.
type eventFacts struct {
	Created         time.Time `json:"created"`
	PaymentIntentID string    `json:"payment_intent_id,omitempty"`
	AmountCaptured  int64     `json:"amount_captured,omitempty"`
	AmountRefunded  int64     `json:"amount_refunded,omitempty"`
	DisputeStatus   string    `json:"dispute_status,omitempty"`
}

// factsKey is where eventFacts live inside the stored payload; the leading
// underscore keeps it apart from Stripe's own top-level keys.
const factsKey = "_grace"

var chargeEventTypes = []string{EventChargeRefunded, EventDisputeCreated, EventDisputeClosed}

func isChargeEvent(t string) bool { return slices.Contains(chargeEventTypes, t) }

func isCheckoutEvent(t string) bool {
	switch t {
	case EventCheckoutCompleted, EventCheckoutAsyncSucceeded, EventCheckoutAsyncFailed, EventCheckoutExpired:
		return true
	}
	return false
}

// ApplyPaymentEvent stores a verified provider event once and applies it to
// its enrollment in the same transaction. A replay of a stored event is a
// no-op. An event for an enrollment we do not know is logged and accepted.
// A charge event whose payment intent no checkout has named yet is parked
// and applied when that checkout event arrives. A database failure is
// returned (the caller answers 5xx so the provider retries); the rollback
// leaves no trace of the event, so the retry is applied afresh.
//
// The transaction's opening does not depend on what it finds, so it goes
// out with BEGIN in one round trip: the payment intent's lock, the event's
// INSERT and the lookup (and lock) of its enrollment. Each statement of a
// pipeline takes its own snapshot, so the lookup, after the lock, sees
// whatever the previous holder of the lock committed.
func (s *Service) ApplyPaymentEvent(ctx context.Context, ev PaymentEvent) error {
	if strings.TrimSpace(ev.ID) == "" || strings.TrimSpace(ev.Type) == "" {
		return models.E(models.KindBadRequest, "invalid_event", "The event has no id or type.")
	}
	if ev.Created.IsZero() {
		ev.Created = s.Now()
	}
	if field := unstorableField(ev); field != "" {
		return s.storeRejectedEvent(ctx, ev, RejectUnstorableText+": "+field)
	}
	payload, payloadRaw := models.StorableJSON(ev.Payload)
	facts := factsOf(ev)
	factsJSON, err := json.Marshal(facts)
	if err != nil {
		return err
	}
	var pi *string
	if facts.PaymentIntentID != "" {
		pi = &facts.PaymentIntentID
	}
	var (
		stored     bool
		enrollment *uuid.UUID // found and locked
	)
	findEnrollment := func(row pgx.Row) error {
		err := row.Scan(&enrollment)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		return err
	}
	first := func(b *pgx.Batch) {
		// The payment intent is locked before any enrollment row: a charge
		// event and the checkout event naming its payment intent then see
		// each other whichever commits first (no event is parked unseen),
		// and every path takes the locks in the same order.
		if pi != nil {
			b.Queue(lockPaymentIntentSQL, *pi)
		}
		b.Queue(`INSERT INTO stripe_events (id, type, payload, payload_raw, payment_intent_id, received_at)
			VALUES ($1, $2, $3::jsonb || jsonb_build_object('`+factsKey+`', $4::jsonb), $5, $6, $7)
			ON CONFLICT (id) DO NOTHING`, ev.ID, ev.Type, payload, string(factsJSON), payloadRaw, pi, s.Now(),
		).Exec(func(ct pgconn.CommandTag) error {
			stored = ct.RowsAffected() == 1
			return nil
		})
		switch {
		case isCheckoutEvent(ev.Type) && ev.Session != nil:
			// By the enrollment id we gave the provider, else by the
			// session id.
			var ref *uuid.UUID
			if id, err := uuid.Parse(strings.TrimSpace(ev.Session.EnrollmentID)); err == nil {
				ref = &id
			}
			var sessionID *string
			if ev.Session.ID != "" {
				sessionID = &ev.Session.ID
			}
			b.Queue(`SELECT id FROM enrollments WHERE id = $1 OR checkout_session_id = $2
				ORDER BY id = $1 DESC NULLS LAST LIMIT 1 FOR UPDATE`, ref, sessionID).QueryRow(findEnrollment)
		case isChargeEvent(ev.Type) && pi != nil:
			b.Queue(`SELECT id FROM enrollments WHERE payment_intent_id = $1
				ORDER BY created_at, id LIMIT 1 FOR UPDATE`, *pi).QueryRow(findEnrollment)
		}
	}
	return s.InTxPipelined(ctx, first, func(tx *gorm.DB) error {
		if !stored {
			return nil // delivered before: already stored and applied (or parked)
		}
		switch {
		case isCheckoutEvent(ev.Type):
			return s.applyCheckoutEvent(ctx, tx, ev, enrollment)
		case isChargeEvent(ev.Type):
			return s.applyChargeEvent(ctx, tx, ev.ID, ev.Type, facts, enrollment)
		}
		return nil // stored for the record; nothing of ours depends on it
	})
}

func factsOf(ev PaymentEvent) eventFacts {
	f := eventFacts{Created: ev.Created.UTC()}
	switch {
	case ev.Session != nil:
		f.PaymentIntentID = ev.Session.PaymentIntentID
	case isChargeEvent(ev.Type):
		f.PaymentIntentID = ev.ChargePaymentIntentID
		f.AmountCaptured, f.AmountRefunded, f.DisputeStatus = ev.AmountCaptured, ev.AmountRefunded, ev.DisputeStatus
	}
	f.PaymentIntentID = strings.TrimSpace(f.PaymentIntentID)
	return f
}

// lockPaymentIntent serialises, for the rest of tx, every event about one
// payment intent.
func lockPaymentIntent(tx *gorm.DB, pi string) error {
	return tx.Exec(lockPaymentIntentSQL, pi).Error
}

const lockPaymentIntentSQL = `SELECT pg_advisory_xact_lock(hashtextextended('stripe_payment_intent:' || $1, 0))`

// applyCheckoutEvent records what a checkout.session.* event says about its
// enrollment (found and locked by ApplyPaymentEvent; nil when we do not
// know it), applies the charge events that were waiting for the payment
// intent it names, and settles the enrollment.
func (s *Service) applyCheckoutEvent(ctx context.Context, tx *gorm.DB, ev PaymentEvent, enrollmentID *uuid.UUID) error {
	sess := ev.Session
	if sess == nil {
		s.Log.WarnContext(ctx, "payment event without its checkout session; ignored", "event_id", ev.ID, "type", ev.Type)
		return nil
	}
	if enrollmentID == nil {
		s.Log.WarnContext(ctx, "payment event for an unknown enrollment; ignored",
			"event_id", ev.ID, "type", ev.Type, "checkout_session_id", sess.ID, "enrollment_ref", sess.EnrollmentID)
		return nil
	}
	e := &Enrollment{}
	if err := tx.Where("id = ?", *enrollmentID).Take(e).Error; err != nil {
		return fmt.Errorf("read enrollment: %w", err)
	}
	if claimsPayment(ev.Type) {
		var c Cohort
		if err := tx.Where("id = ?", e.CohortID).Take(&c).Error; err != nil {
			return fmt.Errorf("read cohort: %w", err)
		}
		if why := paymentMismatch(e, &c, sess); why != "" {
			if err := s.flagPayment(ctx, tx, e, &c, sess, why, ev.Created, reviewKey(sess, ev.ID)); err != nil {
				return err
			}
			return markRejected(tx, ev.ID, e.ID, string(why))
		}
	} else if e.CheckoutSessionID == nil || *e.CheckoutSessionID != sess.ID {
		// A session that is not her checkout ending or failing says nothing
		// about her place (the sweeper asks about her own in time), and
		// claims no money: kept, not applied, nobody to alert.
		s.Log.WarnContext(ctx, "checkout event for a session not recorded on the enrollment; ignored",
			"event_id", ev.ID, "type", ev.Type, "enrollment_id", e.ID, "checkout_session_id", sess.ID)
		why := MismatchSession
		if e.CheckoutSessionID == nil {
			why = MismatchNoSession
		}
		return markRejected(tx, ev.ID, e.ID, string(why))
	}
	unpaidCancellation := e.CancelledAt != nil && e.PaidAt == nil
	recordCheckoutFacts(e, ev.Type, *sess, ev.Created)
	if unpaidCancellation && e.PaidAt != nil {
		// She paid for a place the coach cancelled before the money was
		// known (a checkout still open, a bank transfer under way). Money
		// is never kept without a place: she gets it back, on a free seat
		// or beyond capacity like any payment that finds none, and her
		// coaches are told (settleEnrollment) so they can refund instead.
		// A place cancelled after it was paid for stays cancelled: that was
		// the coach's decision with the payment in view.
		s.Log.WarnContext(ctx, "payment received for a cancelled enrollment; reinstated",
			"event_id", ev.ID, "enrollment_id", e.ID, "payment_intent_id", sess.PaymentIntentID)
		e.CancelledAt = nil
	}
	if err := s.applyParkedEvents(tx, e); err != nil {
		return err
	}
	if err := s.settleEnrollment(tx, e, false); err != nil {
		return err
	}
	return markApplied(tx, ev.ID, e.ID, s.Now())
}

// recordsPayment reports whether a checkout event says money was taken.
func recordsPayment(typ string, sess *CheckoutSession) bool {
	return typ == EventCheckoutAsyncSucceeded ||
		(typ == EventCheckoutCompleted && (sess.PaymentStatus == "paid" || sess.PaymentStatus == "no_payment_required"))
}

// recordCheckoutFacts writes what a checkout event of type says. Facts
// never move back: times keep their earliest value, amounts their largest.
func recordCheckoutFacts(e *Enrollment, typ string, sess CheckoutSession, at time.Time) {
	if e.CheckoutSessionID == nil && sess.ID != "" {
		e.CheckoutSessionID = &sess.ID
	}
	if pi := strings.TrimSpace(sess.PaymentIntentID); pi != "" && e.PaymentIntentID == nil {
		e.PaymentIntentID = &pi
	}
	paid := func() {
		e.PaidAt = earliest(e.PaidAt, at)
		e.AmountPaidCents = max(e.AmountPaidCents, sess.AmountTotal)
		if c := strings.ToUpper(strings.TrimSpace(sess.Currency)); len(c) == 3 {
			e.Currency = c
		}
	}
	switch typ {
	case EventCheckoutCompleted, EventCheckoutAsyncSucceeded:
		if recordsPayment(typ, &sess) {
			paid()
		} else {
			e.AwaitingPaymentAt = earliest(e.AwaitingPaymentAt, at)
		}
	case EventCheckoutAsyncFailed:
		e.PaymentFailedAt = earliest(e.PaymentFailedAt, at)
	case EventCheckoutExpired:
		e.ExpiredAt = earliest(e.ExpiredAt, at)
	}
}

// applyChargeEvent applies a charge.* event to the enrollment paid by its
// payment intent (found and locked by ApplyPaymentEvent), or parks it until
// a checkout event names that intent.
func (s *Service) applyChargeEvent(ctx context.Context, tx *gorm.DB, eventID, typ string, f eventFacts, enrollmentID *uuid.UUID) error {
	if f.PaymentIntentID == "" {
		s.Log.WarnContext(ctx, "charge event without a payment intent; ignored", "event_id", eventID, "type", typ)
		return nil
	}
	if enrollmentID == nil {
		// Stored with applied_at NULL: applyParkedEvents picks it up.
		s.Log.InfoContext(ctx, "charge event before its checkout; parked", "event_id", eventID, "type", typ)
		return nil
	}
	e := &Enrollment{}
	if err := tx.Where("id = ?", *enrollmentID).Take(e).Error; err != nil {
		return fmt.Errorf("read enrollment: %w", err)
	}
	recordChargeFacts(e, typ, f)
	if err := s.settleEnrollment(tx, e, false); err != nil {
		return err
	}
	return markApplied(tx, eventID, e.ID, s.Now())
}

// recordChargeFacts writes what a charge event of type says.
func recordChargeFacts(e *Enrollment, typ string, f eventFacts) {
	switch typ {
	case EventChargeRefunded:
		// Stripe reports cumulative amounts: the largest seen is the truth.
		e.AmountRefundedCents = max(e.AmountRefundedCents, f.AmountRefunded)
		e.AmountPaidCents = max(e.AmountPaidCents, f.AmountCaptured)
	case EventDisputeCreated:
		e.DisputeStatus = laterDispute(e.DisputeStatus, DisputeOpen)
	case EventDisputeClosed:
		e.DisputeStatus = laterDispute(e.DisputeStatus, disputeOutcome(f.DisputeStatus))
	}
}

// disputeOutcome maps the provider's status of a closed dispute. A
// warning (inquiry) that closed never took the money: she keeps her place.
func disputeOutcome(status string) DisputeStatus {
	switch status {
	case "won", "warning_closed":
		return DisputeWon
	case "lost":
		return DisputeLost
	}
	return DisputeOpen
}

// disputeRank orders dispute states so that they only move forward; of the
// two outcomes, lost (money gone) dominates.
var disputeRank = map[DisputeStatus]int{"": 0, DisputeNone: 0, DisputeOpen: 1, DisputeWon: 2, DisputeLost: 3}

func laterDispute(cur, next DisputeStatus) DisputeStatus {
	if disputeRank[next] > disputeRank[cur] {
		return next
	}
	if cur == "" {
		return DisputeNone
	}
	return cur
}

func earliest(cur *time.Time, t time.Time) *time.Time {
	t = t.UTC()
	if cur == nil || t.Before(*cur) {
		return &t
	}
	return cur
}

// applyParkedEvents applies to e, read FOR UPDATE with its payment intent
// just recorded, the charge events that arrived before that payment intent
// was known, in the order the provider created them. The caller settles e.
func (s *Service) applyParkedEvents(tx *gorm.DB, e *Enrollment) error {
	if e.PaymentIntentID == nil {
		return nil
	}
	var parked []struct {
		ID    string
		Type  string
		Facts []byte
	}
	err := tx.Raw(`SELECT id, type, payload->'`+factsKey+`' AS facts FROM stripe_events
		WHERE payment_intent_id = ? AND applied_at IS NULL AND type IN ? FOR UPDATE`, *e.PaymentIntentID, chargeEventTypes).Scan(&parked).Error
	if err != nil {
		return fmt.Errorf("find parked payment events: %w", err)
	}
	type item struct {
		id, typ string
		facts   eventFacts
	}
	items := make([]item, 0, len(parked))
	for _, p := range parked {
		var f eventFacts
		if err := json.Unmarshal(p.Facts, &f); err != nil {
			return fmt.Errorf("parked payment event %s: %w", p.ID, err)
		}
		items = append(items, item{p.ID, p.Type, f})
	}
	slices.SortFunc(items, func(a, b item) int {
		if c := a.facts.Created.Compare(b.facts.Created); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	now := s.Now()
	for _, it := range items {
		recordChargeFacts(e, it.typ, it.facts)
		if err := markApplied(tx, it.id, e.ID, now); err != nil {
			return err
		}
	}
	return nil
}

// markRejected links an event to the enrollment it named and says why it
// was not applied; applied_at stays NULL.
func markRejected(tx *gorm.DB, eventID string, enrollmentID uuid.UUID, reason string) error {
	return tx.Exec(`UPDATE stripe_events SET enrollment_id = ?, rejected_reason = ? WHERE id = ?`, enrollmentID, reason, eventID).Error
}

func markApplied(tx *gorm.DB, eventID string, enrollmentID uuid.UUID, at time.Time) error {
	return tx.Exec(`UPDATE stripe_events SET enrollment_id = ?, applied_at = ? WHERE id = ?`, enrollmentID, at, eventID).Error
}

// StripeEvent is one received Stripe event, stored once by id.
type StripeEvent struct {
	ID              string `gorm:"primaryKey"`
	Type            string
	PaymentIntentID *string
	EnrollmentID    *uuid.UUID
	Payload         []byte `gorm:"type:jsonb"`
	// PayloadRaw is the event as signed when Payload is a sanitised copy.
	PayloadRaw     []byte
	RejectedReason *string
	ReceivedAt     time.Time
	AppliedAt      *time.Time
}

package enroll

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
)

// HoldSweepGrace is how long after a checkout hold's expiry the sweeper waits
// for the provider's own checkout.session.expired event before asking it.
// The provider, not our clock, says whether the session was paid.
const HoldSweepGrace = time.Hour

// sweepBatch bounds one sweep; the next sweep takes the rest.
const sweepBatch = 200

// Payment statuses of a completed checkout session that mean the money is in.
const (
	sessionPaid              = "paid"
	sessionNoPaymentRequired = "no_payment_required"
)

// SweepHolds resolves the pending enrollments whose holds are overdue and
// returns how many it settled:
//   - a checkout hold HoldSweepGrace past expiry: the provider is asked; an
//     open session is expired first, a paid one fulfilled, an unpaid one
//     awaits payment, an expired one releases the seat;
//   - a hold without a session (a checkout that crashed before reaching the
//     provider) HoldSweepGrace past expiry: expired;
//   - a waitlist offer she never started paying: expired as soon as it
//     lapses, since we issued no session, and the seat is offered to the next.
//
// A provider failure leaves the enrollment for the next sweep.
func (s *Service) SweepHolds(ctx context.Context) (int, error) {
	now := s.Now()
	var ids []uuid.UUID
	err := s.DB.WithContext(ctx).Raw(`
		SELECT id FROM enrollments
		WHERE status = ? AND seat = ? AND (hold_expires_at < ?
			OR (offered_at IS NOT NULL AND checkout_session_id IS NULL AND hold_expires_at < ?))
		ORDER BY hold_expires_at, id
		LIMIT ?`, EnrollmentPending, SeatHeld, now.Add(-HoldSweepGrace), now, sweepBatch).Scan(&ids).Error
	if err != nil {
		return 0, err
	}
	settled := 0
	var firstErr error
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return settled, err
		}
		done, err := s.resolveHold(ctx, id, false)
		switch {
		case err == nil:
			if done {
				settled++
			}
		case models.IsCode(err, "payment_provider_error"):
			s.Log.WarnContext(ctx, "sweeper: provider failed; retrying next sweep", "enrollment_id", id, "err", err)
		default:
			s.Log.ErrorContext(ctx, "sweeper: resolve hold", "enrollment_id", id, "err", err)
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	return settled, firstErr
}

// resolveHold settles one overdue pending enrollment from what the provider
// says about its session. now (a new checkout of hers) skips the grace:
// she is asking now, and the provider's answer is authoritative either way.
func (s *Service) resolveHold(ctx context.Context, id uuid.UUID, now bool) (bool, error) {
	var e Enrollment
	err := s.DB.WithContext(ctx).Where("id = ?", id).Take(&e).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if e.Status != EnrollmentPending || e.HoldExpiresAt == nil {
		return false, nil
	}
	due := e.HoldExpiresAt.Add(HoldSweepGrace)
	if now || (e.OfferedAt != nil && e.CheckoutSessionID == nil) {
		due = *e.HoldExpiresAt
	}
	if s.Now().Before(due) {
		return false, nil
	}

	// The provider is asked outside any transaction; the answer is applied
	// below only if nobody (a webhook) settled the enrollment meanwhile.
	var sess *CheckoutSession
	if e.CheckoutSessionID != nil {
		if s.payments == nil {
			return false, errPaymentsUnavailable
		}
		got, err := s.payments.GetCheckoutSession(ctx, *e.CheckoutSessionID)
		if err != nil {
			return false, paymentProviderError(err)
		}
		if got.Status == SessionOpen {
			if got, err = s.payments.ExpireCheckoutSession(ctx, *e.CheckoutSessionID); err != nil {
				return false, paymentProviderError(err)
			}
		}
		sess = &got
	}

	settled := false
	err = s.InTx(ctx, func(tx *gorm.DB) error {
		// The same lock order as webhooks: the payment intent, then the
		// enrollment, so a refund racing this fulfilment is never lost.
		if sess != nil && sess.PaymentIntentID != "" {
			if err := lockPaymentIntent(tx, sess.PaymentIntentID); err != nil {
				return err
			}
		}
		var cur Enrollment
		if err := tx.Raw(`SELECT * FROM enrollments WHERE id = ? FOR UPDATE SKIP LOCKED`, id).Scan(&cur).Error; err != nil {
			return err
		}
		if cur.ID == uuid.Nil || cur.Status != EnrollmentPending || !models.SamePtr(cur.CheckoutSessionID, e.CheckoutSessionID) {
			return nil
		}
		at := s.Now()
		switch {
		case sess == nil:
			cur.ExpiredAt = &at
		case sess.Status == SessionComplete && (sess.PaymentStatus == sessionPaid || sess.PaymentStatus == sessionNoPaymentRequired):
			var c Cohort
			if err := tx.Where("id = ?", cur.CohortID).Take(&c).Error; err != nil {
				return err
			}
			if why := paymentMismatch(&cur, &c, sess); why != "" {
				// Her own session, paid, but not what the place costs (the
				// price changed, an odd discount): not honoured. The hold
				// lapses like an unpaid one so the seat is not kept
				// indefinitely; the coaches decide (comp her or refund).
				if err := s.flagPayment(ctx, tx, &cur, &c, sess, why, at, reviewKey(sess, cur.ID.String())); err != nil {
					return err
				}
				cur.ExpiredAt = &at
				break
			}
			cur.PaidAt = &at
			if cur.AmountPaidCents == 0 {
				cur.AmountPaidCents = sess.AmountTotal
			}
			if cur.PaymentIntentID == nil && sess.PaymentIntentID != "" {
				pi := sess.PaymentIntentID
				cur.PaymentIntentID = &pi
			}
		case sess.Status == SessionComplete:
			cur.AwaitingPaymentAt = &at
		case sess.Status == SessionExpired:
			cur.ExpiredAt = &at
		default:
			return nil // still open at the provider: the next sweep asks again
		}
		settled = true
		// Refunds or disputes that arrived before we knew this payment
		// intent were parked; they apply now, before settling.
		if err := s.applyParkedEvents(tx, &cur); err != nil {
			return err
		}
		return s.settleEnrollment(tx, &cur, false)
	})
	return settled && err == nil, err
}

// RunSweeper sweeps overdue holds every interval until ctx ends, and prunes
// stale rate-limit windows and idempotency keys about once an hour. The worker runs it.
func (s *Service) RunSweeper(ctx context.Context, every time.Duration) {
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	var lastPrune time.Time
	for {
		if n, err := s.SweepHolds(ctx); err != nil && ctx.Err() == nil {
			s.Log.ErrorContext(ctx, "sweep holds", "err", err, "settled", n)
		} else if n > 0 {
			s.Log.InfoContext(ctx, "swept holds", "settled", n)
		}
		// Wall time, not the domain clock: this is housekeeping cadence.
		if time.Since(lastPrune) >= time.Hour {
			if _, err := s.PruneRateLimits(ctx, 24*time.Hour); err != nil && ctx.Err() == nil {
				s.Log.ErrorContext(ctx, "prune rate limits", "err", err)
			}
			if _, err := s.PruneIdempotencyKeys(ctx); err != nil && ctx.Err() == nil {
				s.Log.ErrorContext(ctx, "prune idempotency keys", "err", err)
			}
			lastPrune = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

package enroll

import (
	"context"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/people"
)

// A signed event proves only that Stripe sent it, not that it pays for her
// place: any checkout on the account (a payment link takes a
// client_reference_id from its URL) can name her enrollment. A payment is
// honoured only on the session Grace created and recorded for the place,
// in the cohort's currency, for at least its price less the discount Stripe
// reports. Anything else is kept, noted on the place and sent to the
// coaches for review, and never activates it.

// PaymentMismatch is why a payment was not honoured for a place.
type PaymentMismatch string

const (
	// MismatchNoSession: no checkout session was recorded for the place,
	// so none can be shown to be ours.
	MismatchNoSession PaymentMismatch = "session_not_recorded"
	// MismatchSession: the session is not the one recorded for the place.
	MismatchSession PaymentMismatch = "session_mismatch"
	// MismatchCurrency: paid in another currency than the cohort's.
	MismatchCurrency PaymentMismatch = "currency_mismatch"
	// MismatchAmount: less than the price less the reported discount.
	MismatchAmount PaymentMismatch = "amount_short"
)

// claimsPayment reports whether a checkout event of typ, if believed,
// records money taken or on its way (and so moves her place forward).
func claimsPayment(typ string) bool {
	return typ == EventCheckoutCompleted || typ == EventCheckoutAsyncSucceeded
}

// paymentMismatch says why sess does not pay for e in c, or "" if it does.
func paymentMismatch(e *Enrollment, c *Cohort, sess *CheckoutSession) PaymentMismatch {
	switch {
	case e.CheckoutSessionID == nil:
		return MismatchNoSession
	case sess.ID != *e.CheckoutSessionID:
		return MismatchSession
	case !strings.EqualFold(strings.TrimSpace(sess.Currency), c.Currency):
		return MismatchCurrency
	case sess.AmountTotal < 0 || sess.AmountDiscount < 0 || sess.AmountTotal < c.PriceCents-sess.AmountDiscount:
		return MismatchAmount
	}
	return ""
}

// flagPayment notes on e (read FOR UPDATE in tx) that sess, seen at at,
// did not pay for it and why, and asks the coaches of c to review it, once
// per session. The note keeps the earliest mismatch (ties by reason), so
// events in any order leave the same row; her status does not move.
func (s *Service) flagPayment(ctx context.Context, tx *gorm.DB, e *Enrollment, c *Cohort, sess *CheckoutSession, why PaymentMismatch, at time.Time, key string) error {
	at = at.UTC()
	s.Log.WarnContext(ctx, "payment does not match its checkout; not honoured, coaches asked to review",
		"enrollment_id", e.ID, "reason", why, "checkout_session_id", sess.ID, "amount", sess.AmountTotal, "currency", sess.Currency)
	if e.PaymentReviewAt == nil || at.Before(*e.PaymentReviewAt) || (at.Equal(*e.PaymentReviewAt) && why < *e.PaymentReview) {
		e.PaymentReviewAt, e.PaymentReview = &at, &why
		e.UpdatedAt = s.Now()
		if err := tx.Model(&Enrollment{}).Where("id = ?", e.ID).Updates(map[string]any{
			"payment_review_at": at, "payment_review": why, "updated_at": e.UpdatedAt,
		}).Error; err != nil {
			return models.MapDBError(err, "enrollment")
		}
	}
	var p people.Participant
	if err := tx.Where("id = ?", e.ParticipantID).Take(&p).Error; err != nil {
		return models.MapDBError(err, "participant")
	}
	return s.tellCoaches(tx, TemplatePaymentReview, "payment_review:"+key, e, c, &p, map[string]any{
		"reason":              string(why),
		"checkout_session_id": sess.ID,
		"payment_intent_id":   sess.PaymentIntentID,
		"paid_cents":          sess.AmountTotal,
		"paid_currency":       strings.ToUpper(strings.TrimSpace(sess.Currency)),
		"discount_cents":      sess.AmountDiscount,
		"price_cents":         c.PriceCents,
		"currency":            c.Currency,
	})
}

// reviewKey keys the coaches' review email: once per session, whichever of
// its events (or the sweeper) saw it first.
func reviewKey(sess *CheckoutSession, fallback string) string {
	if sess.ID != "" {
		return sess.ID
	}
	return fallback
}

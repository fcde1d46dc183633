package enroll

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
)

// CheckoutHoldTTL is how long a checkout holds a seat. Stripe accepts a
// session expiry of 30 minutes to 24 hours from now; the extra minute keeps
// us inside that range despite clock skew and the round trip.
const CheckoutHoldTTL = 31 * time.Minute

// maxSessionTTL is Stripe's longest checkout session.
const maxSessionTTL = 24 * time.Hour

var (
	errPaymentsUnavailable = models.E(models.KindUnavailable, "payments_unavailable", "Online payment is not available right now. Please try again later or contact the coach.")
	errEnrollmentClosed    = models.E(models.KindConflict, "enrollment_closed", "Enrollment for this cohort is closed.")
	errAlreadyEnrolled     = models.E(models.KindConflict, "already_enrolled", "You are already enrolled in this cohort. Sign in to the portal to see it.")
	errCheckoutPending     = models.E(models.KindConflict, "checkout_pending", "Your previous checkout for this cohort is still being closed. Please try again in a few minutes.")
)

func paymentProviderError(err error) error {
	return &models.Error{Kind: models.KindUpstream, Code: "payment_provider_error",
		Message: "The payment provider could not be reached. No payment was taken; please try again in a moment.", Err: err}
}

// CheckoutInput is the checkout form.
type CheckoutInput struct {
	Email              string
	Name               string
	DisclaimerAccepted bool
	MarketingConsent   bool
}

// CheckoutResult is where to send her to pay (for a free cohort, where she
// lands enrolled; ExpiresAt is then the cohort's end). Created is false
// when an earlier checkout of hers (a double click, a retry, a waitlist
// offer) was found and resumed.
type CheckoutResult struct {
	Enrollment  *Enrollment
	CheckoutURL string
	ExpiresAt   time.Time
	Created     bool
}

// StartCheckout holds a seat for her and opens a hosted checkout for it.
//
// The seat is held in one short transaction (cohort open, her place, her
// consents, the guarded seat UPDATE last so the hot cohort row is locked
// only until commit; for a new woman, all of it in one round trip, see
// holdNewSeat); the provider is called after commit, never inside a
// transaction. A second checkout while her hold is live resumes it, so a
// double click never takes a second seat.
//
// A free cohort (price 0) has nothing to pay: she is enrolled at once, and
// CheckoutURL is the page a paid checkout returns to. It needs no payment
// provider; a paid cohort without one is payments_unavailable.
func (s *Service) StartCheckout(ctx context.Context, cohortID uuid.UUID, in CheckoutInput, client models.ClientInfo) (*CheckoutResult, error) {
	email := models.NormalizeEmail(in.Email)
	name := strings.TrimSpace(in.Name)
	var c models.Checker
	c.Email("email", email)
	c.PersonName("name", in.Name)
	if !in.DisclaimerAccepted {
		c.Add("disclaimer_accepted", "must be accepted: this program is coaching and education, not psychotherapy, and does not replace treatment by a therapist")
	}
	if err := c.Err(); err != nil {
		return nil, err
	}
	var (
		res    *CheckoutResult
		cohort Cohort
		err    error
	)
	// The common case, a new woman and a free seat, is one round trip; any
	// other case is declined by it without a trace and decided below.
	if s.payments != nil {
		res, err = s.holdNewSeat(ctx, cohortID, email, name, in.MarketingConsent, client, &cohort)
		if err != nil {
			return nil, err
		}
	}
	// A lost insert race or a stale hold of hers is resolved and the
	// transaction run again; twice is enough for both.
	for attempt := 0; res == nil && attempt < 3; attempt++ {
		res, err = s.holdSeat(ctx, cohortID, email, name, in.MarketingConsent, client, &cohort)
		var stale *staleHoldError
		switch {
		case errors.Is(err, errLiveRace):
			continue
		case errors.As(err, &stale):
			if attempt == 2 {
				return nil, errCheckoutPending
			}
			if _, err := s.resolveHold(ctx, stale.id, true); err != nil {
				return nil, err
			}
			continue
		}
		break
	}
	if errors.Is(err, errLiveRace) {
		return nil, errCheckoutPending
	}
	if err != nil {
		return nil, err
	}
	e := res.Enrollment
	if res.CheckoutURL != "" { // enrolled in a free cohort: nothing to pay
		return res, nil
	}
	if e.CheckoutURL != nil {
		res.CheckoutURL = *e.CheckoutURL
		return res, nil
	}
	if s.payments == nil { // holdSeat refuses a paid cohort first
		return nil, errPaymentsUnavailable
	}

	sess, err := s.payments.CreateCheckoutSession(ctx, CheckoutRequest{
		EnrollmentID:   e.ID,
		CustomerEmail:  email,
		ProductName:    cohort.Name,
		AmountCents:    cohort.PriceCents,
		Currency:       cohort.Currency,
		SuccessURL:     s.successURL(e.ID),
		CancelURL:      s.baseURL + "/cohorts/" + cohort.ID.String(),
		ExpiresAt:      *e.HoldExpiresAt,
		IdempotencyKey: "checkout:" + e.ID.String(),
	})
	if err != nil {
		s.Log.WarnContext(ctx, "create checkout session failed", "enrollment_id", e.ID, "err", err)
		// A hold she was offered or resumed stays hers (the sweeper closes it
		// if she never pays); a fresh one goes back to the next woman.
		// The release runs detached, with its own bound: ctx may be what
		// cut the call off (she closed the tab, or shutdown cancelled it).
		if res.Created {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseHoldTimeout)
			if rerr := s.releaseUnstartedHold(rctx, e.ID); rerr != nil {
				s.Log.ErrorContext(ctx, "release hold after provider failure", "enrollment_id", e.ID, "err", rerr)
			}
			cancel()
		}
		return nil, paymentProviderError(err)
	}
	if err := s.recordCheckoutSession(ctx, e.ID, sess); err != nil {
		return nil, models.MapDBError(err, "enrollment")
	}
	e.CheckoutSessionID, e.CheckoutURL = &sess.ID, &sess.URL
	res.CheckoutURL = sess.URL
	return res, nil
}

// recordCheckoutSession stores the session a hold was given, durably: a
// payment activates her enrollment only on the session recorded here (a
// session Grace did not create is flagged for review, never honoured), so
// losing this row in a crash would leave a woman who paid unenrolled
// until a coach looked.
func (s *Service) recordCheckoutSession(ctx context.Context, id uuid.UUID, sess CheckoutSession) error {
	return s.DB.WithContext(ctx).Exec(`UPDATE enrollments SET checkout_session_id = ?, checkout_url = ?, updated_at = ?
		WHERE id = ? AND (checkout_session_id IS NULL OR checkout_session_id = ?)`, sess.ID, sess.URL, s.Now(), id, sess.ID).Error
}

// successURL is the portal page a checkout returns to.
func (s *Service) successURL(enrollmentID uuid.UUID) string {
	return s.baseURL + "/checkout/success?enrollment=" + enrollmentID.String()
}

// releaseHoldTimeout bounds the release of a hold whose checkout failed.
const releaseHoldTimeout = 5 * time.Second

// releaseUnstartedHold gives back the seat of a checkout whose session could
// not be created. Should the provider have created it after all, a payment
// on it is still honoured (a paid fact outranks expiry).
func (s *Service) releaseUnstartedHold(ctx context.Context, id uuid.UUID) error {
	return s.InTx(ctx, func(tx *gorm.DB) error {
		var e Enrollment
		if err := tx.Raw(`SELECT * FROM enrollments WHERE id = ? FOR UPDATE`, id).Scan(&e).Error; err != nil {
			return err
		}
		if e.ID == uuid.Nil || e.Status != EnrollmentPending || e.CheckoutSessionID != nil {
			return nil
		}
		now := s.Now()
		e.ExpiredAt = &now
		return s.settleEnrollment(tx, &e, false)
	})
}

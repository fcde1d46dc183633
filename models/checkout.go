package models

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
)

// CheckoutHoldTTL is how long a checkout holds a seat. Stripe accepts a
// session expiry of 30 minutes to 24 hours from now; the extra minute keeps
// us inside that range despite clock skew and the round trip.
const CheckoutHoldTTL = 31 * time.Minute

// maxSessionTTL is Stripe's longest checkout session.
const maxSessionTTL = 24 * time.Hour

var (
	errPaymentsUnavailable = E(KindUnavailable, "payments_unavailable", "Online payment is not available right now. Please try again later or contact the coach.")
	errEnrollmentClosed    = E(KindConflict, "enrollment_closed", "Enrollment for this cohort is closed.")
	errAlreadyEnrolled     = E(KindConflict, "already_enrolled", "You are already enrolled in this cohort. Sign in to the portal to see it.")
	errCheckoutPending     = E(KindConflict, "checkout_pending", "Your previous checkout for this cohort is still being closed. Please try again in a few minutes.")
	errNotRefundable       = E(KindConflict, "not_refundable", "This enrollment has no payment left to refund.")
	errNotCancellable      = E(KindConflict, "not_cancellable", "This enrollment has already ended (expired or refunded).")
)

// errLiveRace aborts a transaction whose insert lost a race on
// enrollments_live_key; the caller retries and finds the winner's row.
var errLiveRace = errors.New("live enrollment inserted concurrently")

// staleHoldError aborts a checkout that found her own pending hold already
// past its expiry: the provider decides what became of it before she may
// start again.
type staleHoldError struct{ id uuid.UUID }

func (e *staleHoldError) Error() string { return "stale hold " + e.id.String() }

// liveStatuses are the statuses enrollments_live_key covers.
var liveStatuses = []string{EnrollmentPending, EnrollmentAwaitingPayment, EnrollmentActive, EnrollmentDisputed, EnrollmentWaitlisted}

func paymentProviderError(err error) error {
	return &Error{Kind: KindUpstream, Code: "payment_provider_error",
		Message: "The payment provider could not be reached. No payment was taken; please try again in a moment.", Err: err}
}

// soldOut is errSoldOut naming where to join the waitlist of the cohort.
func soldOut(cohortID uuid.UUID) error {
	e := *errSoldOut
	e.Links = map[string]string{"waitlist_url": "/v1/cohorts/" + cohortID.String() + "/waitlist"}
	return &e
}

// CheckoutInput is the checkout form.
type CheckoutInput struct {
	Email              string
	Name               string
	DisclaimerAccepted bool
	MarketingConsent   bool
}

// CheckoutResult is where to send her to pay. Created is false when an
// earlier checkout of hers (a double click, a retry, a waitlist offer) was
// found and resumed.
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
// only until commit); the provider is called after commit, never inside a
// transaction. A second checkout while her hold is live resumes it, so a
// double click never takes a second seat.
func (s *Service) StartCheckout(ctx context.Context, cohortID uuid.UUID, in CheckoutInput, client ClientInfo) (*CheckoutResult, error) {
	if s.payments == nil {
		return nil, errPaymentsUnavailable
	}
	email := NormalizeEmail(in.Email)
	name := strings.TrimSpace(in.Name)
	var c checker
	c.email("email", email)
	c.text("name", in.Name, 1, 200)
	if !in.DisclaimerAccepted {
		c.add("disclaimer_accepted", "must be accepted: this program is coaching and education, not psychotherapy, and does not replace treatment by a therapist")
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	var (
		res    *CheckoutResult
		cohort Cohort
		err    error
	)
	// A lost insert race or a stale hold of hers is resolved and the
	// transaction run again; twice is enough for both.
	for attempt := 0; attempt < 3; attempt++ {
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
	if e.CheckoutURL != nil {
		res.CheckoutURL = *e.CheckoutURL
		return res, nil
	}

	sess, err := s.payments.CreateCheckoutSession(ctx, CheckoutRequest{
		EnrollmentID:   e.ID,
		CustomerEmail:  email,
		ProductName:    cohort.Name,
		AmountCents:    cohort.PriceCents,
		Currency:       cohort.Currency,
		SuccessURL:     s.baseURL + "/checkout/success?enrollment=" + e.ID.String(),
		CancelURL:      s.baseURL + "/cohorts/" + cohort.ID.String(),
		ExpiresAt:      *e.HoldExpiresAt,
		IdempotencyKey: "checkout:" + e.ID.String(),
	})
	if err != nil {
		s.log.WarnContext(ctx, "create checkout session failed", "enrollment_id", e.ID, "err", err)
		// A hold she was offered or resumed stays hers (the sweeper closes it
		// if she never pays); a fresh one goes back to the next woman.
		if res.Created {
			if rerr := s.releaseUnstartedHold(ctx, e.ID); rerr != nil {
				s.log.ErrorContext(ctx, "release hold after provider failure", "enrollment_id", e.ID, "err", rerr)
			}
		}
		return nil, paymentProviderError(err)
	}
	err = s.db.WithContext(ctx).Exec(`
		UPDATE enrollments SET checkout_session_id = ?, checkout_url = ?, updated_at = ?
		WHERE id = ? AND (checkout_session_id IS NULL OR checkout_session_id = ?)`,
		sess.ID, sess.URL, s.Now(), e.ID, sess.ID).Error
	if err != nil {
		return nil, mapDBError(err, "enrollment")
	}
	e.CheckoutSessionID, e.CheckoutURL = &sess.ID, &sess.URL
	res.CheckoutURL = sess.URL
	return res, nil
}

// holdSeat is the checkout's transaction. cohort is filled for the caller.
func (s *Service) holdSeat(ctx context.Context, cohortID uuid.UUID, email, name string, marketing bool, client ClientInfo, cohort *Cohort) (*CheckoutResult, error) {
	var res *CheckoutResult
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		now := s.Now()
		// Counted in the checkout's own commit: one fsync fewer per hold on
		// a launch-day cohort. A refused attempt (sold out) rolls its hit
		// back, which is harmless: the limit exists to stop seat hoarding,
		// and every hold that succeeds is counted.
		if err := s.allowIn(tx, "checkout:ip:"+client.IP, s.limits.CheckoutPerIP); err != nil {
			return err
		}
		if err := tx.Where("id = ? AND status <> ?", cohortID, CohortDraft).Take(cohort).Error; err != nil {
			return mapDBError(err, "cohort")
		}
		if !cohort.EnrollmentOpen(now) {
			return errEnrollmentClosed
		}
		var existing Enrollment
		err := tx.Raw(`
			SELECT e.* FROM enrollments e JOIN participants p ON p.id = e.participant_id
			WHERE e.cohort_id = ? AND p.email = ? AND e.status IN ?
			FOR UPDATE OF e`, cohortID, email, liveStatuses).Scan(&existing).Error
		if err != nil {
			return err
		}
		if existing.ID != uuid.Nil {
			r, err := s.resumeCheckout(tx, &existing, cohort, now)
			if err != nil {
				return err
			}
			if r.Enrollment.CheckoutSessionID == nil {
				// She accepts the disclaimer on this form, not when she
				// joined the waitlist: record it before she pays.
				p := &Participant{ID: existing.ParticipantID}
				if err := s.recordClaimConsents(tx, p, cohort.ProgramID, true, marketing, client); err != nil {
					return err
				}
			}
			res = r
			return nil
		}
		// Cheap refusal before any write: the guarded UPDATE below is the
		// real check, this only spares the hot row a queue of losers.
		if cohort.SeatsLeft() == 0 {
			return soldOut(cohort.ID)
		}
		p, err := s.findOrCreateParticipant(tx, email, name)
		if err != nil {
			return err
		}
		if err := s.recordClaimConsents(tx, p, cohort.ProgramID, true, marketing, client); err != nil {
			return err
		}
		// A new hold is written in its settled state (pending, holding a
		// seat); only the seat counter is left to move, and that guarded
		// UPDATE is the last statement before commit.
		hold := now.Add(CheckoutHoldTTL)
		e := &Enrollment{ID: uuid.New(), CohortID: cohort.ID, ParticipantID: p.ID, Seat: SeatHeld,
			HoldExpiresAt: &hold, Currency: cohort.Currency, DisputeStatus: DisputeNone, CreatedAt: now, UpdatedAt: now}
		e.Status = deriveStatus(e)
		if err := tx.Create(e).Error; err != nil {
			if isUniqueViolation(err, "enrollments_live_key") {
				return errLiveRace
			}
			return mapDBError(err, "enrollment")
		}
		if _, err := moveSeat(tx, e, SeatNone, SeatHeld, true); err != nil {
			if IsCode(err, "sold_out") {
				return soldOut(cohort.ID)
			}
			return err
		}
		res = &CheckoutResult{Enrollment: e, ExpiresAt: hold, Created: true}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// resumeCheckout decides what a checkout finds when she already holds a
// live place in the cohort (read FOR UPDATE in tx).
func (s *Service) resumeCheckout(tx *gorm.DB, e *Enrollment, cohort *Cohort, now time.Time) (*CheckoutResult, error) {
	switch e.Status {
	case EnrollmentActive, EnrollmentAwaitingPayment, EnrollmentDisputed:
		return nil, errAlreadyEnrolled
	case EnrollmentWaitlisted:
		// She is waiting and a seat is free after all (capacity was raised):
		// she may take it like anyone else.
		hold := now.Add(CheckoutHoldTTL)
		e.HoldExpiresAt = &hold
		if err := s.settleEnrollment(tx, e, true); err != nil {
			if IsCode(err, "sold_out") {
				return nil, soldOut(cohort.ID)
			}
			return nil, err
		}
		return &CheckoutResult{Enrollment: e, ExpiresAt: hold}, nil
	}
	// Pending.
	if !e.HoldExpiresAt.After(now) {
		return nil, &staleHoldError{id: e.ID}
	}
	if e.CheckoutSessionID == nil {
		// A waitlist offer, or a checkout that crashed before reaching the
		// provider: a session is opened now, expiring with the hold. The
		// provider needs at least 30 minutes, so a nearly lapsed hold is
		// stretched to that; a session never outlives the hold.
		hold := *e.HoldExpiresAt
		if minHold := now.Add(CheckoutHoldTTL); hold.Before(minHold) {
			hold = minHold
		}
		if maxHold := now.Add(maxSessionTTL); hold.After(maxHold) {
			hold = maxHold
		}
		if !hold.Equal(*e.HoldExpiresAt) {
			if err := tx.Model(&Enrollment{}).Where("id = ?", e.ID).Updates(map[string]any{"hold_expires_at": hold, "updated_at": now}).Error; err != nil {
				return nil, mapDBError(err, "enrollment")
			}
			e.HoldExpiresAt = &hold
		}
	}
	return &CheckoutResult{Enrollment: e, ExpiresAt: *e.HoldExpiresAt}, nil
}

// releaseUnstartedHold gives back the seat of a checkout whose session could
// not be created. Should the provider have created it after all, a payment
// on it is still honoured (a paid fact outranks expiry).
func (s *Service) releaseUnstartedHold(ctx context.Context, id uuid.UUID) error {
	return s.inTx(ctx, func(tx *gorm.DB) error {
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

// JoinWaitlist puts her on the cohort's waitlist. The answer is the same
// whether or not she was already enrolled or waiting, so the form reveals
// nothing about anyone.
func (s *Service) JoinWaitlist(ctx context.Context, cohortID uuid.UUID, email, name string, client ClientInfo) error {
	email = NormalizeEmail(email)
	trimmed := strings.TrimSpace(name)
	var c checker
	c.email("email", email)
	c.text("name", name, 1, 200)
	if err := c.err(); err != nil {
		return err
	}
	if err := s.allow(ctx, "waitlist:ip:"+client.IP, s.limits.CheckoutPerIP); err != nil {
		return err
	}
	return s.inTx(ctx, func(tx *gorm.DB) error {
		now := s.Now()
		var cohort Cohort
		if err := tx.Where("id = ? AND status <> ?", cohortID, CohortDraft).Take(&cohort).Error; err != nil {
			return mapDBError(err, "cohort")
		}
		if cohort.Status == CohortCancelled || !now.Before(cohort.EndsAt) {
			return errEnrollmentClosed
		}
		p, err := s.findOrCreateParticipant(tx, email, trimmed)
		if err != nil {
			return err
		}
		// The live-key index answers "already has a place" atomically, also
		// against a concurrent join or checkout.
		res := tx.Exec(`
			INSERT INTO enrollments (cohort_id, participant_id, status, seat, currency, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (cohort_id, participant_id) WHERE status IN ('pending', 'awaiting_payment', 'active', 'disputed', 'waitlisted') DO NOTHING`,
			cohort.ID, p.ID, EnrollmentWaitlisted, SeatNone, cohort.Currency, now, now)
		if res.Error != nil {
			return mapDBError(res.Error, "enrollment")
		}
		if res.RowsAffected == 0 || cohort.SeatsLeft() == 0 || !cohort.EnrollmentOpen(now) {
			return nil
		}
		// Seats are free: the first woman waiting is offered one at once.
		return s.offerNextSeat(tx, cohort.ID)
	})
}

// EnrollmentDetail is an enrollment with the participant it belongs to.
type EnrollmentDetail struct {
	Enrollment `gorm:"embedded"`
	Email      string
	Name       string
}

// manageCohortEnrollments refuses (404, revealing nothing) a coach who
// neither is an admin nor leads or co-leads the cohort.
func (s *Service) manageCohortEnrollments(db *gorm.DB, actor *Coach, cohortID uuid.UUID) (*Cohort, error) {
	var cohort Cohort
	q := db.Where("id = ?", cohortID)
	if actor.Role != RoleAdmin {
		q = q.Where("EXISTS (SELECT 1 FROM cohort_coaches cc WHERE cc.cohort_id = cohorts.id AND cc.coach_id = ?)", actor.ID)
	}
	if err := q.Take(&cohort).Error; err != nil {
		return nil, mapDBError(err, "cohort")
	}
	return &cohort, nil
}

func (s *Service) enrollmentDetail(db *gorm.DB, id uuid.UUID) (*EnrollmentDetail, error) {
	var d EnrollmentDetail
	err := db.Raw(`SELECT e.*, p.email, p.name FROM enrollments e JOIN participants p ON p.id = e.participant_id WHERE e.id = ?`, id).
		Take(&d).Error
	if err != nil {
		return nil, mapDBError(err, "enrollment")
	}
	return &d, nil
}

// AddComplimentary gives her a seat without payment. A woman on the
// waitlist is moved into it; one who already has a place is refused.
func (s *Service) AddComplimentary(ctx context.Context, actor *Coach, cohortID uuid.UUID, email, name string) (*EnrollmentDetail, error) {
	email = NormalizeEmail(email)
	var c checker
	c.email("email", email)
	c.text("name", name, 1, 200)
	if err := c.err(); err != nil {
		return nil, err
	}
	var id uuid.UUID
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		cohort, err := s.manageCohortEnrollments(tx, actor, cohortID)
		if err != nil {
			return err
		}
		if cohort.Status == CohortCancelled {
			return errEnrollmentClosed
		}
		p, err := s.findOrCreateParticipant(tx, email, strings.TrimSpace(name))
		if err != nil {
			return err
		}
		now := s.Now()
		var e Enrollment
		err = tx.Raw(`SELECT * FROM enrollments WHERE cohort_id = ? AND participant_id = ? AND status IN ? FOR UPDATE`,
			cohort.ID, p.ID, liveStatuses).Scan(&e).Error
		if err != nil {
			return err
		}
		switch {
		case e.ID == uuid.Nil:
			e = Enrollment{ID: uuid.New(), CohortID: cohort.ID, ParticipantID: p.ID, Status: EnrollmentWaitlisted, Seat: SeatNone,
				Currency: cohort.Currency, DisputeStatus: DisputeNone, CreatedAt: now, UpdatedAt: now}
			if err := tx.Create(&e).Error; err != nil {
				if isUniqueViolation(err, "enrollments_live_key") {
					return errAlreadyEnrolled
				}
				return mapDBError(err, "enrollment")
			}
		case e.Status != EnrollmentWaitlisted:
			return errAlreadyEnrolled
		}
		e.Complimentary = true
		if err := s.settleEnrollment(tx, &e, true); err != nil {
			if IsCode(err, "sold_out") {
				return E(KindConflict, "sold_out", "This cohort is full. Raise its capacity to add another seat.")
			}
			return err
		}
		id = e.ID
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.enrollmentDetail(s.db.WithContext(ctx), id)
}

// CancelEnrollment ends her place (or waitlist place): the seat goes to the
// waitlist and her access ends at once. Cancelling again changes nothing;
// an enrollment that already ended another way is not_cancellable. A checkout still
// open at the provider is closed, so she cannot pay for a place she lost.
func (s *Service) CancelEnrollment(ctx context.Context, actor *Coach, enrollmentID uuid.UUID) (*EnrollmentDetail, error) {
	var openSession string
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		var e Enrollment
		if err := tx.Raw(`SELECT * FROM enrollments WHERE id = ? FOR UPDATE`, enrollmentID).Scan(&e).Error; err != nil {
			return err
		}
		if e.ID == uuid.Nil {
			return NotFound("enrollment")
		}
		if _, err := s.manageCohortEnrollments(tx, actor, e.CohortID); err != nil {
			return NotFound("enrollment")
		}
		if e.CancelledAt != nil {
			return nil
		}
		if e.Status == EnrollmentExpired || e.Status == EnrollmentRefunded {
			return errNotCancellable
		}
		if e.Status == EnrollmentPending && e.CheckoutSessionID != nil {
			openSession = *e.CheckoutSessionID
		}
		now := s.Now()
		e.CancelledAt = &now
		return s.settleEnrollment(tx, &e, false)
	})
	if err != nil {
		return nil, err
	}
	if openSession != "" && s.payments != nil {
		if _, err := s.payments.ExpireCheckoutSession(ctx, openSession); err != nil {
			// She may still pay it; the payment is recorded and the coach
			// refunds it. Nothing to undo here.
			s.log.WarnContext(ctx, "expire checkout session of a cancelled enrollment", "enrollment_id", enrollmentID, "err", err)
		}
	}
	return s.enrollmentDetail(s.db.WithContext(ctx), enrollmentID)
}

// RequestRefund asks the provider to refund amountCents (0: all that is left)
// of her payment. The state changes when the provider's charge.refunded
// event arrives; the idempotency key makes a double click one refund.
func (s *Service) RequestRefund(ctx context.Context, actor *Coach, enrollmentID uuid.UUID, amountCents int64) error {
	if amountCents < 0 {
		return Invalid(FieldError{Field: "amount_cents", Message: "must be positive"})
	}
	db := s.db.WithContext(ctx)
	var e Enrollment
	if err := db.Where("id = ?", enrollmentID).Take(&e).Error; err != nil {
		return mapDBError(err, "enrollment")
	}
	if _, err := s.manageCohortEnrollments(db, actor, e.CohortID); err != nil {
		return NotFound("enrollment")
	}
	if s.payments == nil {
		return errPaymentsUnavailable
	}
	left := e.AmountPaidCents - e.AmountRefundedCents
	if e.PaymentIntentID == nil || e.PaidAt == nil || left <= 0 {
		return errNotRefundable
	}
	if amountCents == 0 {
		amountCents = left
	}
	if amountCents > left {
		return Invalid(FieldError{Field: "amount_cents", Message: fmt.Sprintf("must be at most %d, the amount not yet refunded", left)})
	}
	_, err := s.payments.Refund(ctx, RefundRequest{
		PaymentIntentID: *e.PaymentIntentID,
		AmountCents:     amountCents,
		IdempotencyKey:  fmt.Sprintf("refund:%s:%d:%d", e.ID, amountCents, e.AmountRefundedCents),
	})
	if err != nil {
		s.log.WarnContext(ctx, "refund failed", "enrollment_id", e.ID, "err", err)
		return paymentProviderError(err)
	}
	return nil
}

// ListCohortEnrollments lists a cohort's enrollments, oldest first.
func (s *Service) ListCohortEnrollments(ctx context.Context, actor *Coach, cohortID uuid.UUID, page PageParams) (Page[EnrollmentDetail], error) {
	after, err := page.decode()
	if err != nil {
		return Page[EnrollmentDetail]{}, err
	}
	db := s.db.WithContext(ctx)
	if _, err := s.manageCohortEnrollments(db, actor, cohortID); err != nil {
		return Page[EnrollmentDetail]{}, err
	}
	limit := page.limit()
	args := []any{cohortID}
	keyset := ""
	if after != nil {
		keyset = "AND (e.created_at, e.id) > (?, ?)"
		args = append(args, after.At, after.ID)
	}
	args = append(args, limit+1)
	var rows []EnrollmentDetail
	err = db.Raw(`
		SELECT e.*, p.email, p.name FROM enrollments e JOIN participants p ON p.id = e.participant_id
		WHERE e.cohort_id = ? `+keyset+`
		ORDER BY e.created_at, e.id
		LIMIT ?`, args...).Scan(&rows).Error
	if err != nil {
		return Page[EnrollmentDetail]{}, err
	}
	return pageOf(rows, limit, func(d EnrollmentDetail) cursor { return cursor{At: d.CreatedAt, ID: d.ID} }), nil
}

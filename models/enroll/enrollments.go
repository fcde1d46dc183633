package enroll

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/people"
)

var (
	errNotRefundable  = models.E(models.KindConflict, "not_refundable", "This enrollment has no payment left to refund.")
	errNotCancellable = models.E(models.KindConflict, "not_cancellable", "This enrollment has already ended (expired or refunded).")
)

// EnrollmentDetail is an enrollment with the participant it belongs to.
type EnrollmentDetail struct {
	Enrollment `gorm:"embedded"`
	Email      string
	Name       string
}

// manageCohortEnrollments refuses (404, revealing nothing) a coach who
// neither is an admin nor leads or co-leads the cohort.
func (s *Service) manageCohortEnrollments(db *gorm.DB, actor *people.Coach, cohortID uuid.UUID) (*Cohort, error) {
	var cohort Cohort
	q := db.Where("id = ?", cohortID)
	if actor.Role != people.RoleAdmin {
		q = q.Where("EXISTS (SELECT 1 FROM cohort_coaches cc WHERE cc.cohort_id = cohorts.id AND cc.coach_id = ?)", actor.ID)
	}
	if err := q.Take(&cohort).Error; err != nil {
		return nil, models.MapDBError(err, "cohort")
	}
	return &cohort, nil
}

func (s *Service) enrollmentDetail(db *gorm.DB, id uuid.UUID) (*EnrollmentDetail, error) {
	var d EnrollmentDetail
	err := db.Raw(`SELECT e.*, p.email, p.name FROM enrollments e JOIN participants p ON p.id = e.participant_id WHERE e.id = ?`, id).
		Take(&d).Error
	if err != nil {
		return nil, models.MapDBError(err, "enrollment")
	}
	return &d, nil
}

// AddComplimentary gives her a seat without payment. A woman on the
// waitlist is moved into it; one who already has a place is refused.
func (s *Service) AddComplimentary(ctx context.Context, actor *people.Coach, cohortID uuid.UUID, email, name string) (*EnrollmentDetail, error) {
	email = models.NormalizeEmail(email)
	var c models.Checker
	c.Email("email", email)
	c.PersonName("name", name)
	if err := c.Err(); err != nil {
		return nil, err
	}
	var id uuid.UUID
	err := s.InTx(ctx, func(tx *gorm.DB) error {
		cohort, err := s.manageCohortEnrollments(tx, actor, cohortID)
		if err != nil {
			return err
		}
		if cohort.Status == CohortCancelled {
			return errEnrollmentClosed
		}
		p, err := s.people.FindOrCreateParticipant(tx, email, strings.TrimSpace(name))
		if err != nil {
			return err
		}
		now := s.Now()
		var e Enrollment
		err = tx.Raw(`SELECT * FROM enrollments WHERE cohort_id = ? AND participant_id = ? AND status IN (`+liveStatusesSQL+`) FOR UPDATE`,
			cohort.ID, p.ID).Scan(&e).Error
		if err != nil {
			return err
		}
		switch {
		case e.ID == uuid.Nil:
			e = Enrollment{ID: uuid.New(), CohortID: cohort.ID, ParticipantID: p.ID, Status: EnrollmentWaitlisted, Seat: SeatNone,
				Currency: cohort.Currency, DisputeStatus: DisputeNone, CreatedAt: now, UpdatedAt: now}
			if err := tx.Create(&e).Error; err != nil {
				if models.IsUniqueViolation(err, "enrollments_live_key") {
					return errAlreadyEnrolled
				}
				return models.MapDBError(err, "enrollment")
			}
		case e.Status != EnrollmentWaitlisted:
			return errAlreadyEnrolled
		}
		e.Complimentary = true
		if err := s.settleEnrollment(tx, &e, true); err != nil {
			if models.IsCode(err, "sold_out") {
				return models.E(models.KindConflict, "sold_out", "This cohort is full. Raise its capacity to add another seat.")
			}
			return err
		}
		id = e.ID
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.enrollmentDetail(s.DB.WithContext(ctx), id)
}

// CancelEnrollment ends her place (or waitlist place): the seat goes to the
// waitlist and her access ends at once. Cancelling again changes nothing;
// an enrollment that already ended another way is not_cancellable. A checkout still
// open at the provider is closed, so she cannot pay for a place she lost.
func (s *Service) CancelEnrollment(ctx context.Context, actor *people.Coach, enrollmentID uuid.UUID) (*EnrollmentDetail, error) {
	var openSession string
	err := s.InTx(ctx, func(tx *gorm.DB) error {
		var e Enrollment
		if err := tx.Raw(`SELECT * FROM enrollments WHERE id = ? FOR UPDATE`, enrollmentID).Scan(&e).Error; err != nil {
			return err
		}
		if e.ID == uuid.Nil {
			return models.NotFound("enrollment")
		}
		if _, err := s.manageCohortEnrollments(tx, actor, e.CohortID); err != nil {
			return models.NotFound("enrollment")
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
			s.Log.WarnContext(ctx, "expire checkout session of a cancelled enrollment", "enrollment_id", enrollmentID, "err", err)
		}
	}
	return s.enrollmentDetail(s.DB.WithContext(ctx), enrollmentID)
}

// RequestRefund asks the provider to refund amountCents (0: all that is left)
// of her payment. The state changes when the provider's charge.refunded
// event arrives; the idempotency key makes a double click one refund.
func (s *Service) RequestRefund(ctx context.Context, actor *people.Coach, enrollmentID uuid.UUID, amountCents int64) error {
	if amountCents < 0 {
		return models.Invalid(models.FieldError{Field: "amount_cents", Message: "must be positive"})
	}
	db := s.DB.WithContext(ctx)
	var e Enrollment
	if err := db.Where("id = ?", enrollmentID).Take(&e).Error; err != nil {
		return models.MapDBError(err, "enrollment")
	}
	if _, err := s.manageCohortEnrollments(db, actor, e.CohortID); err != nil {
		return models.NotFound("enrollment")
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
		return models.Invalid(models.FieldError{Field: "amount_cents", Message: fmt.Sprintf("must be at most %d, the amount not yet refunded", left)})
	}
	_, err := s.payments.Refund(ctx, RefundRequest{
		PaymentIntentID: *e.PaymentIntentID,
		AmountCents:     amountCents,
		IdempotencyKey:  fmt.Sprintf("refund:%s:%d:%d", e.ID, amountCents, e.AmountRefundedCents),
	})
	if err != nil {
		s.Log.WarnContext(ctx, "refund failed", "enrollment_id", e.ID, "err", err)
		return paymentProviderError(err)
	}
	return nil
}

// ListCohortEnrollments lists a cohort's enrollments, oldest first; each
// woman on the page is logged as seen in the enrollment list.
func (s *Service) ListCohortEnrollments(ctx context.Context, actor *people.Coach, cohortID uuid.UUID, page models.PageParams) (models.Page[EnrollmentDetail], error) {
	v, err := people.ViewerOf(actor)
	if err != nil {
		return models.Page[EnrollmentDetail]{}, err
	}
	after, err := page.Decode()
	if err != nil {
		return models.Page[EnrollmentDetail]{}, err
	}
	db := s.DB.WithContext(ctx)
	if _, err := s.manageCohortEnrollments(db, actor, cohortID); err != nil {
		return models.Page[EnrollmentDetail]{}, err
	}
	limit := page.PageSize()
	q := db.Table("enrollments e").Select("e.*, p.email, p.name").Joins("JOIN participants p ON p.id = e.participant_id").
		Where("e.cohort_id = ?", cohortID)
	if after != nil {
		q = q.Where("(e.created_at, e.id) > (?, ?)", after.At, after.ID)
	}
	q = q.Order("e.created_at, e.id").Limit(limit + 1)
	rows, err := people.ReadLogged[EnrollmentDetail](db, s.Now(), v, people.AccessEnrollmentsListed, q, "created_at, id", "participant_id", limit)
	if err != nil {
		return models.Page[EnrollmentDetail]{}, err
	}
	return models.PageOf(rows, limit, func(d EnrollmentDetail) models.Cursor { return models.Cursor{At: d.CreatedAt, ID: d.ID} }), nil
}

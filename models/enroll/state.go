package enroll

import (
	"fmt"
	"maps"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/people"
)

// Templates of the enrollment emails.
const (
	TemplateEnrollmentWelcome = "enrollment_welcome"
	TemplateWaitlistOffer     = "waitlist_offer"
	TemplateCohortOverbooked  = "cohort_overbooked"
	// TemplateEnrollmentReinstated tells coaches a cancelled place was paid
	// for after all and given back.
	TemplateEnrollmentReinstated = "enrollment_reinstated"
	// TemplatePaymentReview tells coaches a payment for a place did not
	// match its checkout and was not honoured.
	TemplatePaymentReview = "payment_review"
)

// deriveStatus is the enrollment state machine. Every input is a fact that
// only moves one way (a time set once, a refunded amount that only grows, a
// dispute that only closes), so the result does not depend on the order in
// which payment events arrived or how often.
func deriveStatus(e *Enrollment) EnrollmentStatus {
	switch {
	case e.CancelledAt != nil:
		return EnrollmentCancelled
	case e.PaidAt != nil || e.Complimentary:
		switch {
		case e.AmountPaidCents > 0 && e.AmountRefundedCents >= e.AmountPaidCents:
			return EnrollmentRefunded
		case e.DisputeStatus == DisputeOpen || e.DisputeStatus == DisputeLost:
			return EnrollmentDisputed
		}
		return EnrollmentActive
	case e.ExpiredAt != nil || e.PaymentFailedAt != nil:
		return EnrollmentExpired
	case e.AwaitingPaymentAt != nil:
		return EnrollmentAwaitingPayment
	case e.HoldExpiresAt != nil:
		return EnrollmentPending
	}
	return EnrollmentWaitlisted
}

// seatFor is the seat an enrollment in its derived status should occupy. A
// disputed payment keeps its seat while the dispute is open; a lost one
// gives it up.
func seatFor(e *Enrollment) Seat {
	switch e.Status {
	case EnrollmentPending, EnrollmentAwaitingPayment:
		return SeatHeld
	case EnrollmentActive:
		return SeatPaid
	case EnrollmentDisputed:
		if e.DisputeStatus == DisputeOpen {
			return SeatPaid
		}
	}
	return SeatNone
}

// errSoldOut is returned when no seat is free; the caller adds the waitlist.
var errSoldOut = models.E(models.KindConflict, "sold_out", "This cohort is full. Join the waitlist and you will be emailed if a seat frees up.")

// moveSeat moves e from seat from to seat to on its cohort's counters. A
// hold, or a seat without payment (strict), is only ever taken from a free
// seat; a payment that finds none is honoured as overflow, never lost.
func moveSeat(tx *gorm.DB, e *Enrollment, from, to Seat, strict bool) (overflowed bool, err error) {
	if from == to || (from == SeatOverflow && to == SeatPaid) {
		return false, nil
	}
	exec := func(sql string) (bool, error) {
		res := tx.Exec(sql, e.CohortID)
		return res.RowsAffected == 1, res.Error
	}
	release := map[Seat]string{SeatHeld: "seats_held = seats_held - 1", SeatPaid: "seats_paid = seats_paid - 1", SeatOverflow: "seats_overflow = seats_overflow - 1"}
	switch to {
	case SeatNone:
		if _, err := exec(`UPDATE cohorts SET ` + release[from] + `, updated_at = now() WHERE id = ?`); err != nil {
			return false, err
		}
	case SeatHeld:
		ok, err := exec(`UPDATE cohorts SET seats_held = seats_held + 1, updated_at = now() WHERE id = ? AND seats_paid + seats_held < capacity`)
		if err != nil {
			return false, err
		}
		if !ok {
			return false, errSoldOut
		}
	case SeatPaid:
		var ok bool
		if from == SeatHeld {
			ok, err = exec(`UPDATE cohorts SET seats_held = seats_held - 1, seats_paid = seats_paid + 1, updated_at = now() WHERE id = ? AND seats_paid < capacity`)
		} else {
			ok, err = exec(`UPDATE cohorts SET seats_paid = seats_paid + 1, updated_at = now() WHERE id = ? AND seats_paid + seats_held < capacity`)
		}
		if err != nil {
			return false, err
		}
		if ok {
			break
		}
		if strict {
			return false, errSoldOut
		}
		sql := `UPDATE cohorts SET seats_overflow = seats_overflow + 1, updated_at = now() WHERE id = ?`
		if from == SeatHeld {
			sql = `UPDATE cohorts SET seats_held = seats_held - 1, seats_overflow = seats_overflow + 1, updated_at = now() WHERE id = ?`
		}
		if _, err := exec(sql); err != nil {
			return false, err
		}
		e.Seat = SeatOverflow
		return true, nil
	}
	e.Seat = to
	return false, nil
}

// settleEnrollment brings e, read FOR UPDATE in tx with its facts just
// changed, to its derived status: seat counters, access grant, emails and,
// when a seat frees, the next waitlist offer all move in the same
// transaction. strict refuses (sold_out) rather than overflows a seat taken
// without payment.
//
// The guarded UPDATE of the cohort row comes last: on a launch-day cohort
// every checkout queues on that row lock, so it must be held for as little
// as the commit that follows it.
func (s *Service) settleEnrollment(tx *gorm.DB, e *Enrollment, strict bool) error {
	before, oldSeat := e.Status, e.Seat
	e.Status = deriveStatus(e)
	want := seatFor(e)
	if oldSeat == SeatOverflow && want == SeatPaid {
		want = SeatOverflow // stays honoured beyond capacity until a seat frees
	}
	e.Seat = want
	e.UpdatedAt = s.Now()
	if err := tx.Select("*").Omit("id", "created_at").Updates(e).Error; err != nil {
		return models.MapDBError(err, "enrollment")
	}

	// A new hold or a waitlist entry changes no access and sends nothing
	// here, so it skips straight to the seat.
	accessChanges := before == EnrollmentActive || e.Status == EnrollmentActive
	var cohort Cohort
	var p people.Participant
	load := func() error {
		if cohort.ID != uuid.Nil {
			return nil
		}
		if err := tx.Where("id = ?", e.CohortID).Take(&cohort).Error; err != nil {
			return models.MapDBError(err, "cohort")
		}
		return models.MapDBError(tx.Where("id = ?", e.ParticipantID).Take(&p).Error, "participant")
	}
	if accessChanges {
		if err := load(); err != nil {
			return err
		}
		if err := s.syncGrant(tx, e, &cohort); err != nil {
			return err
		}
	}
	if e.Status == EnrollmentActive && before != EnrollmentActive {
		err := s.EnqueueEmail(tx, TemplateEnrollmentWelcome, p.Email, p.GreetingName(), "enrollment_welcome:"+e.ID.String(), map[string]any{
			"name": p.GreetingName(), "enrollment_id": e.ID.String(), "cohort_id": cohort.ID.String(), "cohort_name": cohort.Name,
			"starts_at": cohort.StartsAt.UTC().Format(time.RFC3339), "timezone": cohort.Timezone,
		})
		if err != nil {
			return err
		}
	}
	if before == EnrollmentActive && e.Status != EnrollmentActive {
		// Her access ended: nothing more about this enrollment may reach her.
		if err := tx.Exec(`UPDATE outbox SET status = ?, updated_at = now() WHERE status = ? AND data->>'enrollment_id' = ?`,
			models.OutboxCancelled, models.OutboxPending, e.ID.String()).Error; err != nil {
			return err
		}
	}
	if err := s.drip.OnEnrollmentStatusChange(tx, e, before); err != nil { // drip emails (drip_schedule.go)
		return err
	}

	overflowed, err := moveSeat(tx, e, oldSeat, want, strict)
	if err != nil {
		return err
	}
	if overflowed {
		if err := tx.Exec(`UPDATE enrollments SET seat = ? WHERE id = ?`, SeatOverflow, e.ID).Error; err != nil {
			return err
		}
		if err := load(); err != nil {
			return err
		}
		if before != EnrollmentCancelled { // a reinstatement says so below
			// A payment was honoured without a seat: the coaches can raise
			// capacity or refund.
			s.Log.Warn("payment honoured beyond capacity", "enrollment_id", e.ID, "cohort_id", cohort.ID)
			if err := s.tellCoaches(tx, TemplateCohortOverbooked, "overbooked", e, &cohort, &p, nil); err != nil {
				return err
			}
		}
	}
	if before == EnrollmentCancelled && e.Status != EnrollmentCancelled && e.Seat != SeatNone {
		if err := load(); err != nil {
			return err
		}
		// A place a coach cancelled came back because its payment arrived
		// afterwards, on a free seat or beyond capacity: the coaches can
		// refund and cancel her again if they meant to remove her.
		if err := s.tellCoaches(tx, TemplateEnrollmentReinstated, "reinstated", e, &cohort, &p,
			map[string]any{"overbooked": e.Seat == SeatOverflow}); err != nil {
			return err
		}
	}
	if (oldSeat == SeatHeld || oldSeat == SeatPaid) && e.Seat == SeatNone {
		promoted, err := s.promoteOverflow(tx, e.CohortID)
		if err != nil || promoted {
			return err
		}
		return s.offerNextSeat(tx, e.CohortID)
	}
	return nil
}

// syncGrant makes her access to the program match the enrollment: an active
// enrollment holds a grant starting at the cohort's start (the lessons
// unlock on the cohort's schedule); any other status revokes it at once.
func (s *Service) syncGrant(tx *gorm.DB, e *Enrollment, c *Cohort) error {
	if e.Status == EnrollmentActive {
		return tx.Exec(`
			INSERT INTO access_grants (participant_id, program_id, source, starts_at, enrollment_id)
			VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (enrollment_id) WHERE enrollment_id IS NOT NULL DO UPDATE SET revoked_at = NULL, starts_at = excluded.starts_at`,
			e.ParticipantID, c.ProgramID, people.GrantEnrollment, c.StartsAt, e.ID).Error
	}
	return tx.Exec(`UPDATE access_grants SET revoked_at = ? WHERE enrollment_id = ? AND revoked_at IS NULL`, s.Now(), e.ID).Error
}

// tellCoaches emails each active coach of the cohort about her place (e in
// c), once per coach and enrollment (kind keys the email); extra adds to
// what every such email carries.
func (s *Service) tellCoaches(tx *gorm.DB, template, kind string, e *Enrollment, c *Cohort, p *people.Participant, extra map[string]any) error {
	var coaches []people.Coach
	if err := tx.Raw(`SELECT co.* FROM coaches co JOIN cohort_coaches cc ON cc.coach_id = co.id WHERE cc.cohort_id = ? AND co.active`, c.ID).Scan(&coaches).Error; err != nil {
		return err
	}
	for _, co := range coaches {
		data := map[string]any{
			"name": co.Name, "cohort_id": c.ID.String(), "cohort_name": c.Name, "capacity": c.Capacity,
			"participant_name": p.Name, "participant_email": p.Email,
		}
		maps.Copy(data, extra)
		if err := s.EnqueueEmail(tx, template, co.Email, co.Name, fmt.Sprintf("%s:%s:%s", kind, e.ID, co.ID), data); err != nil {
			return err
		}
	}
	return nil
}

// promoteOverflow gives a freed seat to a payment that was honoured beyond
// capacity, before anyone on the waitlist: she has already paid, and the
// cohort stops being overbooked.
func (s *Service) promoteOverflow(tx *gorm.DB, cohortID uuid.UUID) (bool, error) {
	var over Enrollment
	err := tx.Raw(`SELECT * FROM enrollments WHERE cohort_id = ? AND seat = ? ORDER BY paid_at, id LIMIT 1 FOR UPDATE SKIP LOCKED`,
		cohortID, SeatOverflow).Scan(&over).Error
	if err != nil || over.ID == uuid.Nil {
		return false, err
	}
	res := tx.Exec(`UPDATE cohorts SET seats_overflow = seats_overflow - 1, seats_paid = seats_paid + 1, updated_at = now()
		WHERE id = ? AND seats_paid < capacity`, cohortID)
	if res.Error != nil || res.RowsAffected == 0 {
		return false, res.Error
	}
	return true, tx.Exec(`UPDATE enrollments SET seat = ?, updated_at = ? WHERE id = ?`, SeatPaid, s.Now(), over.ID).Error
}

// EnrollmentStatus is where an enrollment stands; deriveStatus decides it.
type EnrollmentStatus string

const (
	EnrollmentPending         EnrollmentStatus = "pending"
	EnrollmentAwaitingPayment EnrollmentStatus = "awaiting_payment"
	EnrollmentActive          EnrollmentStatus = "active"
	EnrollmentExpired         EnrollmentStatus = "expired"
	EnrollmentCancelled       EnrollmentStatus = "cancelled"
	EnrollmentRefunded        EnrollmentStatus = "refunded"
	EnrollmentDisputed        EnrollmentStatus = "disputed"
	EnrollmentWaitlisted      EnrollmentStatus = "waitlisted"
)

// Seat is which of its cohort's seat counters an enrollment is counted in.
type Seat string

const (
	SeatNone     Seat = "none"
	SeatHeld     Seat = "held"
	SeatPaid     Seat = "paid"
	SeatOverflow Seat = "overflow"
)

// DisputeStatus is the state of a payment's dispute, in the order it can
// only move forward.
type DisputeStatus string

const (
	DisputeNone DisputeStatus = "none"
	DisputeOpen DisputeStatus = "open"
	DisputeWon  DisputeStatus = "won"
	DisputeLost DisputeStatus = "lost"
)

// Enrollment is a participant's place in a cohort. Status is never set by
// hand: it is derived from the facts below (see deriveStatus), each of which
// only ever moves one way, so payment events applied in any order and any
// number of times converge on the same state.
type Enrollment struct {
	ID                  uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	CohortID            uuid.UUID
	ParticipantID       uuid.UUID
	Status              EnrollmentStatus
	Seat                Seat
	Complimentary       bool
	HoldExpiresAt       *time.Time
	CheckoutSessionID   *string
	CheckoutURL         *string
	PaymentIntentID     *string
	AmountPaidCents     int64
	AmountRefundedCents int64
	Currency            string
	PaidAt              *time.Time
	AwaitingPaymentAt   *time.Time
	PaymentFailedAt     *time.Time
	ExpiredAt           *time.Time
	CancelledAt         *time.Time
	DisputeStatus       DisputeStatus
	OfferedAt           *time.Time
	// PaymentReviewAt and PaymentReview are the earliest payment that did
	// not match her checkout (see paymentMismatch): not honoured, flagged
	// to the coaches. They never change her status.
	PaymentReviewAt *time.Time
	PaymentReview   *PaymentMismatch
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

package models

import (
	"time"

	"github.com/google/uuid"
)

// Cohort statuses.
const (
	CohortDraft     = "draft"
	CohortOpen      = "open"
	CohortClosed    = "closed"
	CohortCancelled = "cancelled"
)

// Cohort is one dated run of a program. Seat counters are kept on the row so
// that taking a seat is one guarded UPDATE.
type Cohort struct {
	ID                 uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	ProgramID          uuid.UUID
	Name               string
	StartsAt           time.Time
	EndsAt             time.Time
	Timezone           string
	Capacity           int
	PriceCents         int64
	Currency           string
	EnrollmentOpensAt  *time.Time
	EnrollmentClosesAt *time.Time
	Status             string
	SeatsPaid          int
	SeatsHeld          int
	SeatsOverflow      int
	CreatedAt          time.Time
	UpdatedAt          time.Time
}

// SeatsLeft is what a new checkout can still take.
func (c *Cohort) SeatsLeft() int { return max(0, c.Capacity-c.SeatsPaid-c.SeatsHeld) }

// EnrollmentOpen reports whether a checkout may start at now.
func (c *Cohort) EnrollmentOpen(now time.Time) bool {
	if c.Status != CohortOpen {
		return false
	}
	if c.EnrollmentOpensAt != nil && now.Before(*c.EnrollmentOpensAt) {
		return false
	}
	return c.EnrollmentClosesAt == nil || now.Before(*c.EnrollmentClosesAt)
}

type CohortCoach struct {
	CohortID uuid.UUID `gorm:"type:uuid;primaryKey"`
	CoachID  uuid.UUID `gorm:"type:uuid;primaryKey"`
	Lead     bool
}

type LiveSession struct {
	ID              uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	CohortID        uuid.UUID
	Title           string
	StartsAt        time.Time
	DurationMinutes int
	MeetingURL      *string
	RecordingURL    *string
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// Enrollment statuses.
const (
	EnrollmentPending         = "pending"
	EnrollmentAwaitingPayment = "awaiting_payment"
	EnrollmentActive          = "active"
	EnrollmentExpired         = "expired"
	EnrollmentCancelled       = "cancelled"
	EnrollmentRefunded        = "refunded"
	EnrollmentDisputed        = "disputed"
	EnrollmentWaitlisted      = "waitlisted"
)

// Seats an enrollment can occupy.
const (
	SeatNone     = "none"
	SeatHeld     = "held"
	SeatPaid     = "paid"
	SeatOverflow = "overflow"
)

// Dispute states, in the order they can only move forward.
const (
	DisputeNone = "none"
	DisputeOpen = "open"
	DisputeWon  = "won"
	DisputeLost = "lost"
)

// Enrollment is a participant's place in a cohort. Status is never set by
// hand: it is derived from the facts below (see deriveStatus), each of which
// only ever moves one way, so payment events applied in any order and any
// number of times converge on the same state.
type Enrollment struct {
	ID                  uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	CohortID            uuid.UUID
	ParticipantID       uuid.UUID
	Status              string
	Seat                string
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
	DisputeStatus       string
	OfferedAt           *time.Time
	CreatedAt           time.Time
	UpdatedAt           time.Time
}

// StripeEvent is one received Stripe event, stored once by id.
type StripeEvent struct {
	ID              string `gorm:"primaryKey"`
	Type            string
	PaymentIntentID *string
	EnrollmentID    *uuid.UUID
	Payload         []byte `gorm:"type:jsonb"`
	ReceivedAt      time.Time
	AppliedAt       *time.Time
}

package enroll

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
)

// PaymentGateway is what the domain needs from a payment provider. The
// Stripe adapter (api/stripe) implements it; no Stripe type crosses it.
type PaymentGateway interface {
	// CreateCheckoutSession starts a hosted checkout. IdempotencyKey makes a
	// retry return the same session instead of a second one.
	CreateCheckoutSession(ctx context.Context, req CheckoutRequest) (CheckoutSession, error)
	// GetCheckoutSession reads a session's current state.
	GetCheckoutSession(ctx context.Context, id string) (CheckoutSession, error)
	// ExpireCheckoutSession closes an open session so it can no longer be paid.
	ExpireCheckoutSession(ctx context.Context, id string) (CheckoutSession, error)
	// Refund refunds amountCents (0: the rest) of a payment intent.
	Refund(ctx context.Context, req RefundRequest) (string, error)
	// DeleteCustomerData deletes her customer records at the provider
	// (those named and those holding her address), for her erasure.
	// Records already gone are not an error, so it is safe to repeat.
	DeleteCustomerData(ctx context.Context, req CustomerErasure) error
}

// CustomerErasure names the provider's customers of one woman.
type CustomerErasure struct {
	Email       string
	CustomerIDs []string
}

// CheckoutRequest is a one-off payment for one enrollment.
type CheckoutRequest struct {
	EnrollmentID   uuid.UUID
	CustomerEmail  string
	ProductName    string
	AmountCents    int64
	Currency       string // ISO 4217, upper case
	SuccessURL     string
	CancelURL      string
	ExpiresAt      time.Time
	IdempotencyKey string
}

// Checkout session states, as the provider reports them.
const (
	SessionOpen     = "open"
	SessionComplete = "complete"
	SessionExpired  = "expired"
)

// CheckoutSession is the provider's view of a checkout.
type CheckoutSession struct {
	ID              string
	URL             string
	Status          string // SessionOpen, SessionComplete or SessionExpired
	PaymentStatus   string // "paid", "unpaid" or "no_payment_required"
	PaymentIntentID string
	// AmountTotal is what she pays, in minor units of Currency, after
	// AmountDiscount (a promotion code) was taken off our price.
	AmountTotal    int64
	AmountDiscount int64
	Currency       string // ISO 4217, upper case
	EnrollmentID   string // from client_reference_id / metadata
	ExpiresAt      time.Time
}

type RefundRequest struct {
	PaymentIntentID string
	AmountCents     int64
	IdempotencyKey  string
}

// ErrPaymentProvider marks a failure of the provider (network, 5xx, refusal),
// as opposed to a rule of ours.
var ErrPaymentProvider = errors.New("payment provider failed")

// Payment event types the domain applies; others are stored and ignored.
const (
	EventCheckoutCompleted      = "checkout.session.completed"
	EventCheckoutAsyncSucceeded = "checkout.session.async_payment_succeeded"
	EventCheckoutAsyncFailed    = "checkout.session.async_payment_failed"
	EventCheckoutExpired        = "checkout.session.expired"
	EventChargeRefunded         = "charge.refunded"
	EventDisputeCreated         = "charge.dispute.created"
	EventDisputeClosed          = "charge.dispute.closed"
)

// PaymentEvent is a verified provider event, reduced to what the domain
// reads. The adapter fills the fields that its Type carries.
type PaymentEvent struct {
	ID      string
	Type    string
	Created time.Time
	Payload []byte // the raw event, kept for audit

	// checkout.session.*
	Session *CheckoutSession
	// charge.refunded: cumulative amounts of the charge
	ChargePaymentIntentID string
	AmountCaptured        int64
	AmountRefunded        int64
	// charge.dispute.*: status as Stripe reports it ("won", "lost", ...)
	DisputeStatus string
}

package api

import (
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/grace-coaching/grace/models/enroll"
)

// Checkout, the waitlist and the coach's enrollment actions.

type checkoutRequest struct {
	Email              string `json:"email"`
	Name               string `json:"name"`
	DisclaimerAccepted *bool  `json:"disclaimer_accepted" validate:"required"`
	MarketingConsent   *bool  `json:"marketing_consent" validate:"required"`
	// Discreet can only turn discreet mode on (people.TurnOnDiscreet).
	Discreet bool `json:"discreet"`
}

type checkoutResponse struct {
	EnrollmentID uuid.UUID `json:"enrollment_id"`
	CheckoutURL  string    `json:"checkout_url"`
	ExpiresAt    time.Time `json:"expires_at"`
}

// waitlistRequest is also the complimentary-seat form: both name a woman.
type waitlistRequest struct {
	Email string `json:"email"`
	Name  string `json:"name"`
}

// joinWaitlistRequest is the public waitlist form: a woman, and whether she
// asks for discreet mode.
type joinWaitlistRequest struct {
	Email    string `json:"email"`
	Name     string `json:"name"`
	Discreet bool   `json:"discreet"`
}

type refundRequest struct {
	AmountCents *int64 `json:"amount_cents" validate:"omitnil,min=1"`
}

type enrollmentResponse struct {
	ID                  uuid.UUID  `json:"id"`
	CohortID            uuid.UUID  `json:"cohort_id"`
	ParticipantID       uuid.UUID  `json:"participant_id"`
	Email               string     `json:"email"`
	Name                string     `json:"name"`
	Status              string     `json:"status"`
	AmountPaidCents     int64      `json:"amount_paid_cents"`
	AmountRefundedCents int64      `json:"amount_refunded_cents"`
	Currency            string     `json:"currency"`
	HoldExpiresAt       *time.Time `json:"hold_expires_at"`
	Complimentary       bool       `json:"complimentary"`
	Seat                string     `json:"seat"`
	CreatedAt           time.Time  `json:"created_at"`
	// PaymentReview is set when a payment for this place did not match
	// what Grace asked for and was kept for a coach to look at.
	PaymentReview *paymentReviewResponse `json:"payment_review"`
}

type paymentReviewResponse struct {
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

func toEnrollmentResponse(d enroll.EnrollmentDetail) enrollmentResponse {
	r := enrollmentResponse{
		ID: d.ID, CohortID: d.CohortID, ParticipantID: d.ParticipantID, Email: d.Email, Name: d.Name,
		Status: string(d.Status), AmountPaidCents: d.AmountPaidCents, AmountRefundedCents: d.AmountRefundedCents,
		Currency: d.Currency, Complimentary: d.Complimentary, Seat: string(d.Seat), CreatedAt: d.CreatedAt.UTC(),
	}
	// The hold only means something while it can still lapse.
	if d.Status == enroll.EnrollmentPending {
		r.HoldExpiresAt = utcPtr(d.HoldExpiresAt)
	}
	if d.PaymentReview != nil && d.PaymentReviewAt != nil {
		r.PaymentReview = &paymentReviewResponse{Reason: string(*d.PaymentReview), At: d.PaymentReviewAt.UTC()}
	}
	return r
}

func (h *handlers) startCheckout(c echo.Context) error {
	id, err := pathUUID(c, "id", "cohort")
	if err != nil {
		return err
	}
	var req checkoutRequest
	if err := h.bind(c, &req); err != nil {
		return err
	}
	in := enroll.CheckoutInput{Email: req.Email, Name: req.Name,
		DisclaimerAccepted: *req.DisclaimerAccepted, MarketingConsent: *req.MarketingConsent, Discreet: req.Discreet}
	if err := h.svc.Enroll.StartCheckout(c.Request().Context(), id, in, clientInfo(c)); err != nil {
		return err
	}
	// The same answer for every address: the checkout link goes to it.
	return c.JSON(http.StatusAccepted, accepted)
}

// checkoutLinkResponse describes what a checkout link books.
type checkoutLinkResponse struct {
	CohortID   uuid.UUID `json:"cohort_id"`
	CohortName string    `json:"cohort_name"`
	StartsAt   time.Time `json:"starts_at"`
	EndsAt     time.Time `json:"ends_at"`
	Timezone   string    `json:"timezone"`
	PriceCents int64     `json:"price_cents"`
	Currency   string    `json:"currency"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// getCheckoutLink: GET /v1/checkout-links/{token} describes, and changes
// nothing (mail scanners fetch links).
func (h *handlers) getCheckoutLink(c echo.Context) error {
	l, err := h.svc.Enroll.DescribeCheckoutLink(c.Request().Context(), c.Param("token"))
	if err != nil {
		return err
	}
	co := l.Cohort
	return c.JSON(http.StatusOK, checkoutLinkResponse{CohortID: co.ID, CohortName: co.Name, StartsAt: co.StartsAt.UTC(), EndsAt: co.EndsAt.UTC(),
		Timezone: co.Timezone, PriceCents: co.PriceCents, Currency: co.Currency, ExpiresAt: l.ExpiresAt.UTC()})
}

// redeemCheckoutLinkRequest is empty for a link from the checkout form,
// where she accepted the disclaimer; a waitlist offer's link needs it here.
type redeemCheckoutLinkRequest struct {
	DisclaimerAccepted bool `json:"disclaimer_accepted"`
}

// redeemCheckoutLink: POST /v1/checkout-links/{token} takes or resumes her
// hold and its checkout: the link is the form.
func (h *handlers) redeemCheckoutLink(c echo.Context) error {
	var req redeemCheckoutLinkRequest
	if err := h.bind(c, &req); err != nil {
		return err
	}
	res, err := h.svc.Enroll.RedeemCheckoutLinkAccepting(c.Request().Context(), c.Param("token"), req.DisclaimerAccepted, clientInfo(c))
	if err != nil {
		return err
	}
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
	}
	return c.JSON(status, checkoutResponse{EnrollmentID: res.Enrollment.ID, CheckoutURL: res.CheckoutURL, ExpiresAt: res.ExpiresAt.UTC()})
}

func (h *handlers) joinWaitlist(c echo.Context) error {
	id, err := pathUUID(c, "id", "cohort")
	if err != nil {
		return err
	}
	var req joinWaitlistRequest
	if err := h.bind(c, &req); err != nil {
		return err
	}
	if err := h.svc.Enroll.JoinWaitlist(c.Request().Context(), id, enroll.WaitlistInput{Email: req.Email, Name: req.Name, Discreet: req.Discreet}, clientInfo(c)); err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, accepted)
}

func (h *handlers) listCohortEnrollments(c echo.Context) error {
	id, err := pathUUID(c, "id", "cohort")
	if err != nil {
		return err
	}
	pp, err := pageParams(c)
	if err != nil {
		return err
	}
	page, err := h.svc.Enroll.ListCohortEnrollments(c.Request().Context(), currentCoach(c), id, pp)
	if err != nil {
		return err
	}
	return renderPage(c, page, toEnrollmentResponse)
}

func (h *handlers) addComplimentaryEnrollment(c echo.Context) error {
	id, err := pathUUID(c, "id", "cohort")
	if err != nil {
		return err
	}
	var req waitlistRequest
	if err := h.bind(c, &req); err != nil {
		return err
	}
	d, err := h.svc.Enroll.AddComplimentary(c.Request().Context(), currentCoach(c), id, req.Email, req.Name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toEnrollmentResponse(*d))
}

func (h *handlers) refundEnrollment(c echo.Context) error {
	id, err := pathUUID(c, "id", "enrollment")
	if err != nil {
		return err
	}
	var req refundRequest
	if err := h.bind(c, &req); err != nil {
		return err
	}
	var amount int64
	if req.AmountCents != nil {
		amount = *req.AmountCents
	}
	if err := h.svc.Enroll.RequestRefund(c.Request().Context(), currentCoach(c), id, amount); err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, accepted)
}

func (h *handlers) cancelEnrollment(c echo.Context) error {
	id, err := pathUUID(c, "id", "enrollment")
	if err != nil {
		return err
	}
	d, err := h.svc.Enroll.CancelEnrollment(c.Request().Context(), currentCoach(c), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toEnrollmentResponse(*d))
}

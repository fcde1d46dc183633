package stripetest

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/grace-coaching/grace/models/enroll"
)

// The helpers in this file build and sign webhook payloads shaped like the
// ones Stripe sends (API version 2023-10-16), so tests and the bench can
// exercise the webhook route without importing stripe-go. They live here,
// not in package stripe, so production code carries no test helpers.

// TestAPIVersion is the API version the test events claim to be rendered in.
const TestAPIVersion = "2023-10-16"

// SignTestPayload returns a Stripe-Signature header for payload signed with
// secret at the given time (zero: now). Sign with a time more than five
// minutes old to get a stale signature.
func SignTestPayload(payload []byte, secret string, at time.Time) string {
	if at.IsZero() {
		at = time.Now()
	}
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{
		Payload:   payload,
		Secret:    secret,
		Timestamp: at,
	}).Header
}

// CheckoutSessionEvent is a checkout.session.* event (eventType, e.g.
// models.EventCheckoutCompleted) carrying s. The enrollment id goes where
// our checkout puts it: client_reference_id and metadata.enrollment_id.
func CheckoutSessionEvent(eventID, eventType string, s enroll.CheckoutSession) []byte {
	obj := map[string]any{
		"id":                    s.ID,
		"object":                "checkout.session",
		"mode":                  "payment",
		"livemode":              false,
		"status":                nullIfEmpty(s.Status),
		"payment_status":        s.PaymentStatus,
		"payment_intent":        nullIfEmpty(s.PaymentIntentID),
		"amount_subtotal":       s.AmountTotal + s.AmountDiscount,
		"amount_total":          s.AmountTotal,
		"total_details":         map[string]any{"amount_discount": s.AmountDiscount, "amount_shipping": 0, "amount_tax": 0},
		"currency":              strings.ToLower(s.Currency),
		"client_reference_id":   nullIfEmpty(s.EnrollmentID),
		"metadata":              enrollmentMetadata(s.EnrollmentID),
		"url":                   nullIfEmpty(s.URL),
		"created":               time.Now().Unix(),
		"allow_promotion_codes": true,
		"customer_email":        nil,
		"customer":              nil,
		"payment_method_types":  []string{"card"},
	}
	if !s.ExpiresAt.IsZero() {
		obj["expires_at"] = s.ExpiresAt.Unix()
	} else {
		obj["expires_at"] = time.Now().Add(31 * time.Minute).Unix()
	}
	return eventJSON(eventID, eventType, obj)
}

// ChargeRefundedEvent is a charge.refunded event for the charge of
// paymentIntentID; captured and refunded are the charge's cumulative
// amounts, as Stripe reports them (a second partial refund carries the sum).
func ChargeRefundedEvent(eventID, paymentIntentID string, captured, refunded int64) []byte {
	obj := map[string]any{
		"id":              chargeIDFor(paymentIntentID),
		"object":          "charge",
		"livemode":        false,
		"amount":          captured,
		"amount_captured": captured,
		"amount_refunded": refunded,
		"captured":        true,
		"paid":            true,
		"refunded":        refunded >= captured,
		"currency":        "usd",
		"status":          "succeeded",
		"payment_intent":  paymentIntentID,
		"created":         time.Now().Unix(),
		"metadata":        map[string]string{},
	}
	return eventJSON(eventID, enroll.EventChargeRefunded, obj)
}

// DisputeEvent is a charge.dispute.* event (eventType, e.g.
// models.EventDisputeCreated) for the charge of paymentIntentID, with the
// dispute in status ("needs_response", "won", "lost", ...).
func DisputeEvent(eventID, eventType, paymentIntentID, status string) []byte {
	obj := map[string]any{
		"id":             "dp_" + strings.TrimPrefix(paymentIntentID, "pi_"),
		"object":         "dispute",
		"livemode":       false,
		"amount":         0,
		"currency":       "usd",
		"charge":         chargeIDFor(paymentIntentID),
		"payment_intent": paymentIntentID,
		"reason":         "fraudulent",
		"status":         status,
		"created":        time.Now().Unix(),
		"metadata":       map[string]string{},
	}
	return eventJSON(eventID, eventType, obj)
}

// GenericEvent is an event of any type whose data.object is obj, e.g. for
// types the domain ignores.
func GenericEvent(eventID, eventType string, obj map[string]any) []byte {
	return eventJSON(eventID, eventType, obj)
}

func eventJSON(eventID, eventType string, obj map[string]any) []byte {
	ev := map[string]any{
		"id":               eventID,
		"object":           "event",
		"api_version":      TestAPIVersion,
		"created":          time.Now().Unix(),
		"livemode":         false,
		"pending_webhooks": 1,
		"request":          map[string]any{"id": nil, "idempotency_key": nil},
		"type":             eventType,
		"data":             map[string]any{"object": obj},
	}
	b, err := json.Marshal(ev)
	if err != nil {
		panic(err) // only maps of plain values: cannot fail
	}
	return b
}

func chargeIDFor(paymentIntentID string) string {
	return "ch_" + strings.TrimPrefix(paymentIntentID, "pi_")
}

func enrollmentMetadata(id string) map[string]string {
	if id == "" {
		return map[string]string{}
	}
	return map[string]string{"enrollment_id": id}
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

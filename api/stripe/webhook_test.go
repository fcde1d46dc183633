package stripe_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/grace-coaching/grace/api/stripe"
	"github.com/grace-coaching/grace/api/stripe/stripetest"
	"github.com/grace-coaching/grace/models/enroll"
)

func webhookClient(t *testing.T, secret string) *stripe.Client {
	t.Helper()
	c, err := stripe.New(stripe.Config{SecretKey: "sk_test_123", WebhookSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestParseEventDecodesEachType(t *testing.T) {
	c := webhookClient(t, testWebhookSecret)
	expires := time.Date(2030, 3, 1, 10, 31, 0, 0, time.UTC)
	session := enroll.CheckoutSession{
		ID: "cs_test_1", URL: "https://checkout.stripe.com/c/pay/cs_test_1", Status: enroll.SessionComplete,
		PaymentStatus: "paid", PaymentIntentID: "pi_1", AmountTotal: 24900, AmountDiscount: 5000, Currency: "EUR",
		EnrollmentID: "0b6f3a0e-5d43-4c4f-9a55-7f2f0f0e7c11", ExpiresAt: expires,
	}
	tests := []struct {
		name    string
		payload []byte
		check   func(t *testing.T, ev enroll.PaymentEvent)
	}{
		{"checkout completed", stripetest.CheckoutSessionEvent("evt_1", enroll.EventCheckoutCompleted, session), func(t *testing.T, ev enroll.PaymentEvent) {
			if ev.Session == nil || *ev.Session != session {
				t.Errorf("session = %+v, want %+v", ev.Session, session)
			}
		}},
		{"checkout expired, enrollment only in metadata", checkoutEventWithoutReference(t), func(t *testing.T, ev enroll.PaymentEvent) {
			if ev.Session == nil || ev.Session.EnrollmentID != "e-from-metadata" || ev.Session.Status != enroll.SessionExpired {
				t.Errorf("session = %+v, want the enrollment id from metadata and status expired", ev.Session)
			}
		}},
		{"charge refunded", stripetest.ChargeRefundedEvent("evt_2", "pi_1", 29900, 10000), func(t *testing.T, ev enroll.PaymentEvent) {
			if ev.ChargePaymentIntentID != "pi_1" || ev.AmountCaptured != 29900 || ev.AmountRefunded != 10000 || ev.Session != nil {
				t.Errorf("event = %+v, want pi_1 29900/10000", ev)
			}
		}},
		{"dispute created", stripetest.DisputeEvent("evt_3", enroll.EventDisputeCreated, "pi_1", "needs_response"), func(t *testing.T, ev enroll.PaymentEvent) {
			if ev.ChargePaymentIntentID != "pi_1" || ev.DisputeStatus != "needs_response" {
				t.Errorf("event = %+v, want pi_1 needs_response", ev)
			}
		}},
		{"dispute closed", stripetest.DisputeEvent("evt_4", enroll.EventDisputeClosed, "pi_1", "won"), func(t *testing.T, ev enroll.PaymentEvent) {
			if ev.ChargePaymentIntentID != "pi_1" || ev.DisputeStatus != "won" {
				t.Errorf("event = %+v, want pi_1 won", ev)
			}
		}},
		{"unknown type", stripetest.GenericEvent("evt_5", "customer.created", map[string]any{"id": "cus_1", "object": "customer"}), func(t *testing.T, ev enroll.PaymentEvent) {
			if ev.Session != nil || ev.ChargePaymentIntentID != "" {
				t.Errorf("event = %+v, want only id, type and payload", ev)
			}
		}},
		{"other API version", otherAPIVersion(t, stripetest.ChargeRefundedEvent("evt_6", "pi_1", 100, 100)), func(t *testing.T, ev enroll.PaymentEvent) {
			if ev.AmountRefunded != 100 {
				t.Errorf("event = %+v, want refunded 100", ev)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := c.ParseEvent(tt.payload, stripetest.SignTestPayload(tt.payload, testWebhookSecret, time.Time{}))
			if err != nil {
				t.Fatalf("ParseEvent: %v", err)
			}
			if ev.ID == "" || ev.Type == "" || ev.Created.IsZero() || !bytes.Equal(ev.Payload, tt.payload) {
				t.Errorf("event = %+v, want id, type, created and the raw payload", ev)
			}
			tt.check(t, ev)
		})
	}
}

func TestParseEventRefusesUnverifiedPayloads(t *testing.T) {
	payload := stripetest.CheckoutSessionEvent("evt_1", enroll.EventCheckoutCompleted, enroll.CheckoutSession{ID: "cs_1", Status: enroll.SessionComplete, PaymentStatus: "paid", EnrollmentID: "e1"})
	good := stripetest.SignTestPayload(payload, testWebhookSecret, time.Time{})
	tampered := bytes.Replace(payload, []byte(`"paid"`), []byte(`"unpaid"`), 1)
	if bytes.Equal(tampered, payload) {
		t.Fatal("tampering changed nothing")
	}
	tests := []struct {
		name    string
		secret  string
		payload []byte
		header  string
	}{
		{"other secret", testWebhookSecret, payload, stripetest.SignTestPayload(payload, "whsec_other", time.Time{})},
		{"stale", testWebhookSecret, payload, stripetest.SignTestPayload(payload, testWebhookSecret, time.Now().Add(-10*time.Minute))},
		{"dated an hour ahead", testWebhookSecret, payload, stripetest.SignTestPayload(payload, testWebhookSecret, time.Now().Add(time.Hour))},
		{"dated just past the tolerance ahead", testWebhookSecret, payload, stripetest.SignTestPayload(payload, testWebhookSecret, time.Now().Add(stripe.SignatureTolerance+time.Minute))},
		{"tampered body", testWebhookSecret, tampered, good},
		{"no header", testWebhookSecret, payload, ""},
		{"garbage header", testWebhookSecret, payload, "not a signature"},
		{"no secret configured", "", payload, stripetest.SignTestPayload(payload, "", time.Time{})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := webhookClient(t, tt.secret).ParseEvent(tt.payload, tt.header)
			if !errors.Is(err, stripe.ErrBadSignature) {
				t.Fatalf("err = %v, want ErrBadSignature", err)
			}
		})
	}
	// The controls: the same client accepts the untouched payload, and a
	// sender's clock a minute ahead of ours is within the tolerance.
	for name, header := range map[string]string{
		"now":             good,
		"a minute ahead":  stripetest.SignTestPayload(payload, testWebhookSecret, time.Now().Add(time.Minute)),
		"a minute behind": stripetest.SignTestPayload(payload, testWebhookSecret, time.Now().Add(-time.Minute)),
	} {
		if _, err := webhookClient(t, testWebhookSecret).ParseEvent(payload, header); err != nil {
			t.Errorf("genuine payload signed %s refused: %v", name, err)
		}
	}
}

func TestParseEventRefusesSignedGarbage(t *testing.T) {
	c := webhookClient(t, testWebhookSecret)
	for _, payload := range [][]byte{[]byte(`not json`), []byte(`{"object":"event"}`)} {
		_, err := c.ParseEvent(payload, stripetest.SignTestPayload(payload, testWebhookSecret, time.Time{}))
		if !errors.Is(err, stripe.ErrMalformedEvent) {
			t.Errorf("ParseEvent(%s) err = %v, want ErrMalformedEvent", payload, err)
		}
	}
}

func checkoutEventWithoutReference(t *testing.T) []byte {
	t.Helper()
	return stripetest.GenericEvent("evt_x", enroll.EventCheckoutExpired, map[string]any{
		"id": "cs_2", "object": "checkout.session", "status": "expired", "payment_status": "unpaid",
		"client_reference_id": nil, "metadata": map[string]string{"enrollment_id": "e-from-metadata"},
	})
}

func otherAPIVersion(t *testing.T, payload []byte) []byte {
	t.Helper()
	out := bytes.Replace(payload, []byte(`"api_version":"`+stripetest.TestAPIVersion+`"`), []byte(`"api_version":"2024-06-20"`), 1)
	if bytes.Equal(out, payload) {
		t.Fatal("payload has no api_version to change")
	}
	return out
}

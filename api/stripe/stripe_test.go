package stripe_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/grace-coaching/grace/api/stripe"
	"github.com/grace-coaching/grace/api/stripe/stripetest"
	"github.com/grace-coaching/grace/models/enroll"
)

const testWebhookSecret = "whsec_test_secret"

func newClient(t *testing.T) *stripe.Client {
	t.Helper()
	c, err := stripe.New(stripe.Config{
		SecretKey:         "sk_test_123",
		APIURL:            stripetest.StartMock(t),
		WebhookSecret:     testWebhookSecret,
		HTTPClient:        &http.Client{Timeout: 10 * time.Second},
		MaxNetworkRetries: new(int64),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func checkoutRequest() enroll.CheckoutRequest {
	id := uuid.New()
	return enroll.CheckoutRequest{
		EnrollmentID:   id,
		CustomerEmail:  "ada@example.com",
		ProductName:    "Say No With Grace: spring cohort",
		AmountCents:    29900,
		Currency:       "EUR",
		SuccessURL:     "https://grace.test/checkout/success?enrollment=" + id.String(),
		CancelURL:      "https://grace.test/checkout/cancel?enrollment=" + id.String(),
		ExpiresAt:      time.Now().Add(31 * time.Minute),
		IdempotencyKey: "checkout-" + id.String(),
	}
}

func TestNewRequiresSecretKey(t *testing.T) {
	if _, err := stripe.New(stripe.Config{}); err == nil {
		t.Fatal("New without a secret key succeeded")
	}
}

// stripe-mock checks every request against Stripe's OpenAPI spec, so these
// prove our parameters are ones Stripe accepts; its answers are fixtures,
// so only their shape is asserted.
func TestGatewayAgainstStripeMock(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()

	s, err := c.CreateCheckoutSession(ctx, checkoutRequest())
	if err != nil {
		t.Fatalf("CreateCheckoutSession: %v", err)
	}
	if !strings.HasPrefix(s.ID, "cs_") || !strings.HasPrefix(s.URL, "https://") {
		t.Errorf("session = %+v, want an id cs_... and an https url", s)
	}
	if s.Currency != strings.ToUpper(s.Currency) {
		t.Errorf("currency %q is not upper case", s.Currency)
	}

	got, err := c.GetCheckoutSession(ctx, s.ID)
	if err != nil {
		t.Fatalf("GetCheckoutSession: %v", err)
	}
	if got.ID == "" || got.Status == "" {
		t.Errorf("GetCheckoutSession = %+v, want an id and a status", got)
	}

	expired, err := c.ExpireCheckoutSession(ctx, s.ID)
	if err != nil {
		t.Fatalf("ExpireCheckoutSession: %v", err)
	}
	if expired.ID == "" {
		t.Errorf("ExpireCheckoutSession = %+v, want an id", expired)
	}

	for _, amount := range []int64{0, 1500} {
		refundID, err := c.Refund(ctx, enroll.RefundRequest{PaymentIntentID: "pi_123", AmountCents: amount, IdempotencyKey: "refund-" + uuid.NewString()})
		if err != nil {
			t.Fatalf("Refund(%d): %v", amount, err)
		}
		if !strings.HasPrefix(refundID, "re_") {
			t.Errorf("Refund(%d) id = %q, want re_...", amount, refundID)
		}
	}
}

// Erasing her customer data lists the customers under her address and
// deletes them with the named ones; stripe-mock checks both requests.
func TestDeleteCustomerDataAgainstStripeMock(t *testing.T) {
	c := newClient(t)
	if err := c.DeleteCustomerData(context.Background(), enroll.CustomerErasure{Email: "ada@example.com", CustomerIDs: []string{"cus_123", "cus_123"}}); err != nil {
		t.Fatalf("DeleteCustomerData: %v", err)
	}
	if err := c.DeleteCustomerData(context.Background(), enroll.CustomerErasure{}); err != nil {
		t.Fatalf("DeleteCustomerData of nobody: %v", err)
	}
}

// A customer Stripe no longer has is already erased: a repeated erasure
// succeeds; any other refusal is the provider's failure.
func TestDeleteCustomerDataTreatsMissingAsDone(t *testing.T) {
	var deletes int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodGet:
			_, _ = io.WriteString(w, `{"object":"list","data":[{"id":"cus_gone","object":"customer"}],"has_more":false,"url":"/v1/customers"}`)
		case strings.HasSuffix(r.URL.Path, "/cus_gone"):
			deletes++
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":{"type":"invalid_request_error","code":"resource_missing","message":"No such customer"}}`)
		default:
			deletes++
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `{"error":{"type":"api_error","message":"boom"}}`)
		}
	}))
	defer srv.Close()
	c, err := stripe.New(stripe.Config{SecretKey: "sk_test_123", APIURL: srv.URL, MaxNetworkRetries: new(int64)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteCustomerData(context.Background(), enroll.CustomerErasure{Email: "ada@example.com"}); err != nil {
		t.Fatalf("missing customer: %v", err)
	}
	err = c.DeleteCustomerData(context.Background(), enroll.CustomerErasure{CustomerIDs: []string{"cus_other"}})
	if !errors.Is(err, enroll.ErrPaymentProvider) {
		t.Fatalf("refused delete: err = %v, want ErrPaymentProvider", err)
	}
	if deletes != 2 {
		t.Errorf("%d deletes, want 2", deletes)
	}
}

func TestGatewayErrorsArePaymentProviderErrors(t *testing.T) {
	ctx := context.Background()

	// stripe-mock accepts any currency, so a stand-in answers the way
	// Stripe refuses one.
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Request-Id", "req_refused")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":{"type":"invalid_request_error","code":"parameter_invalid_string","param":"line_items[0][price_data][currency]","message":"Invalid currency: zzz."}}`)
	}))
	defer refusing.Close()
	rc, err := stripe.New(stripe.Config{SecretKey: "sk_test_secretvalue", APIURL: refusing.URL, MaxNetworkRetries: new(int64)})
	if err != nil {
		t.Fatal(err)
	}
	bad := checkoutRequest()
	bad.Currency = "ZZZ"
	_, err = rc.CreateCheckoutSession(ctx, bad)
	if !errors.Is(err, enroll.ErrPaymentProvider) {
		t.Fatalf("invalid currency: err = %v, want ErrPaymentProvider", err)
	}
	for _, want := range []string{"400", "invalid_request_error", "req_refused", "Invalid currency"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "secretvalue") {
		t.Errorf("error %q leaks the secret key", err)
	}

	// Nothing listens: a network failure is the provider's failure too.
	down, err := stripe.New(stripe.Config{SecretKey: "sk_test_123", APIURL: "http://127.0.0.1:1", MaxNetworkRetries: new(int64)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := down.GetCheckoutSession(ctx, "cs_123"); !errors.Is(err, enroll.ErrPaymentProvider) {
		t.Fatalf("unreachable: err = %v, want ErrPaymentProvider", err)
	}
	if _, err := down.Refund(ctx, enroll.RefundRequest{PaymentIntentID: "pi_123"}); !errors.Is(err, enroll.ErrPaymentProvider) {
		t.Fatalf("unreachable refund: err = %v, want ErrPaymentProvider", err)
	}
}

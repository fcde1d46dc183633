package stripetest_test

import (
	"net/http"
	"testing"

	"github.com/grace-coaching/grace/api/stripe/stripetest"
)

func TestStartMockAnswersStripeCalls(t *testing.T) {
	url := stripetest.StartMock(t)
	req, _ := http.NewRequest(http.MethodGet, url+"/v1/checkout/sessions/cs_123", nil)
	req.Header.Set("Authorization", "Bearer sk_test_123")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET checkout session: %d", res.StatusCode)
	}
	// stripe-mock checks credentials like Stripe: a call without a key is
	// refused, so tests exercise real authentication handling.
	res, err = http.Get(url + "/v1/checkout/sessions/cs_123")
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET without a key: %d, want 401", res.StatusCode)
	}
}

func TestStartMockIsSharedWithinTheProcess(t *testing.T) {
	a, b := stripetest.StartMock(t), stripetest.StartMock(t)
	if a == "" || (a != b && stripetest.SharedExpected) {
		t.Fatalf("StartMock = %q then %q, want one shared mock", a, b)
	}
}

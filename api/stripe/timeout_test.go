package stripe_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grace-coaching/grace/api/stripe"
	"github.com/grace-coaching/grace/models/enroll"
)

func TestWorstCase(t *testing.T) {
	tests := []struct {
		timeout time.Duration
		retries int64
		want    time.Duration
	}{
		{10 * time.Second, 0, 10 * time.Second},
		{10 * time.Second, 2, 30*time.Second + 1500*time.Millisecond},
		// The SDK's sleep grows 0.5, 1, 2.5, 5 s and stops at 5.
		{time.Second, 5, 6*time.Second + 14*time.Second},
	}
	for _, tc := range tests {
		if got := stripe.WorstCase(tc.timeout, tc.retries); got != tc.want {
			t.Errorf("WorstCase(%s, %d) = %s, want %s", tc.timeout, tc.retries, got, tc.want)
		}
	}
}

// hungStripe stands in for api.stripe.com when it accepts connections and
// never answers; it counts the attempts.
func hungStripe(t *testing.T) (url string, attempts *atomic.Int32) {
	t.Helper()
	attempts = new(atomic.Int32)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attempts.Add(1)
		// Reading the body lets the server notice the client hang up,
		// which ends the request's context.
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	return srv.URL, attempts
}

// A hung Stripe costs a call at most its worst case, whatever client the
// caller passed, and a caller that goes away cuts it off at once.
func TestCallsAgainstAHungStripeAreBounded(t *testing.T) {
	const callTimeout = 200 * time.Millisecond
	tests := []struct {
		name         string
		cancelAfter  time.Duration // 0: never
		wantAttempts int32
		wantAtMost   time.Duration
	}{
		{"every attempt times out", 0, 3, stripe.WorstCase(callTimeout, 2) + time.Second},
		{"the caller goes away", 100 * time.Millisecond, 1, time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			url, attempts := hungStripe(t)
			c, err := stripe.New(stripe.Config{
				SecretKey:   "sk_test_123",
				APIURL:      url,
				CallTimeout: callTimeout,
				// The client's own timeout must not widen the bound.
				HTTPClient: &http.Client{Timeout: time.Hour},
			})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := c.WorstCase(), stripe.WorstCase(callTimeout, stripe.DefaultMaxNetworkRetries); got != want {
				t.Fatalf("client WorstCase = %s, want %s", got, want)
			}
			ctx := context.Background()
			if tc.cancelAfter > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.cancelAfter)
				defer cancel()
			}
			start := time.Now()
			_, err = c.CreateCheckoutSession(ctx, checkoutRequest())
			took := time.Since(start)
			if !errors.Is(err, enroll.ErrPaymentProvider) {
				t.Fatalf("err = %v, want ErrPaymentProvider", err)
			}
			if took > tc.wantAtMost {
				t.Errorf("the call took %s, want at most %s", took, tc.wantAtMost)
			}
			if n := attempts.Load(); n != tc.wantAttempts {
				t.Errorf("%d attempts, want %d", n, tc.wantAttempts)
			}
		})
	}
}

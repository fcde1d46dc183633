package enrolltest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/grace-coaching/grace/models/enroll"
	"github.com/grace-coaching/grace/models/enroll/enrolltest"
)

func checkoutReq(key string) enroll.CheckoutRequest {
	return enroll.CheckoutRequest{EnrollmentID: uuid.New(), AmountCents: 100, Currency: "EUR", IdempotencyKey: key}
}

func TestGatewayCreateIsIdempotentByKey(t *testing.T) {
	tests := []struct {
		name      string
		forgetful bool
		wantSame  bool
		wantKept  int
	}{
		{name: "remembers", wantSame: true, wantKept: 2},
		{name: "forgetful keeps only counts", forgetful: true, wantKept: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := enrolltest.New()
			g.Forgetful = tc.forgetful
			ctx := context.Background()
			a, err := g.CreateCheckoutSession(ctx, checkoutReq("k"))
			if err != nil {
				t.Fatal(err)
			}
			b, err := g.CreateCheckoutSession(ctx, checkoutReq("k"))
			if err != nil {
				t.Fatal(err)
			}
			if (a.ID == b.ID) != tc.wantSame || a.Status != enroll.SessionOpen {
				t.Fatalf("sessions %+v and %+v, want same: %v", a, b, tc.wantSame)
			}
			if creates, _, _, _ := g.Calls(); creates != 2 || len(g.Creates()) != tc.wantKept {
				t.Fatalf("creates counted %d, kept %d; want 2 and %d", creates, len(g.Creates()), tc.wantKept)
			}
		})
	}
}

func TestGatewayFailsAndRecovers(t *testing.T) {
	g := enrolltest.New()
	ctx := context.Background()
	boom := errors.New("stripe: 500")
	g.Fail(enrolltest.Refund, boom)
	if _, err := g.Refund(ctx, enroll.RefundRequest{PaymentIntentID: "pi_1"}); !errors.Is(err, boom) {
		t.Fatalf("refund err = %v, want %v", err, boom)
	}
	g.Fail(enrolltest.Refund, nil)
	if _, err := g.Refund(ctx, enroll.RefundRequest{PaymentIntentID: "pi_1"}); err != nil {
		t.Fatalf("refund after recovery: %v", err)
	}
	if _, _, _, refunds := g.Calls(); refunds != 2 || len(g.Refunds()) != 2 {
		t.Fatalf("refunds counted %d, kept %d; want 2 and 2", refunds, len(g.Refunds()))
	}
}

func TestGatewayBlocksUntilReleased(t *testing.T) {
	g := enrolltest.New()
	release := g.Block()
	done := make(chan error, 1)
	go func() {
		_, err := g.CreateCheckoutSession(context.Background(), checkoutReq("k"))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("create returned while blocked: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// A blocked call gives up with its context.
	g.Block()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := g.CreateCheckoutSession(ctx, checkoutReq("k2")); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// next records that a call reached it.
type next struct {
	enroll.PaymentGateway
	gets int
}

func (n *next) GetCheckoutSession(context.Context, string) (enroll.CheckoutSession, error) {
	n.gets++
	return enroll.CheckoutSession{Status: enroll.SessionOpen}, nil
}

func TestGatewayStandsInForNext(t *testing.T) {
	n := &next{}
	g := enrolltest.New()
	g.Next = n
	ctx := context.Background()
	g.SetSession(enroll.CheckoutSession{ID: "cs_paid", Status: enroll.SessionComplete})
	tests := []struct {
		id         string
		wantStatus string
		wantNext   int
	}{
		{"cs_paid", enroll.SessionComplete, 0},
		{"cs_other", enroll.SessionOpen, 1},
	}
	for _, tc := range tests {
		s, err := g.GetCheckoutSession(ctx, tc.id)
		if err != nil || s.Status != tc.wantStatus || n.gets != tc.wantNext {
			t.Fatalf("%s: %+v, %v after %d calls to next; want %s after %d", tc.id, s, err, n.gets, tc.wantStatus, tc.wantNext)
		}
	}
}

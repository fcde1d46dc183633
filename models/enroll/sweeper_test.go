package enroll_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/enroll"
	"github.com/grace-coaching/grace/models/enroll/enrolltest"
	"github.com/grace-coaching/grace/models/people"
)

func TestSweepHoldsAsksTheProvider(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// provider moves the session at Stripe before the sweep.
		provider     func(t *testing.T, g *enrolltest.Gateway, sessionID string)
		wantStatus   enroll.EnrollmentStatus
		wantPaid     int
		wantHeld     int
		wantExpireAt bool // the sweeper closed an open session itself
		wantGrant    bool
		wantReview   enroll.PaymentMismatch
	}{
		{name: "still open is expired and released", provider: func(*testing.T, *enrolltest.Gateway, string) {},
			wantStatus: enroll.EnrollmentExpired, wantExpireAt: true},
		{name: "expired at the provider is released", provider: func(_ *testing.T, g *enrolltest.Gateway, id string) {
			g.ExpireCheckoutSession(context.Background(), id)
		}, wantStatus: enroll.EnrollmentExpired},
		{name: "paid is fulfilled", provider: func(t *testing.T, g *enrolltest.Gateway, id string) { g.Complete(t, id, true) },
			wantStatus: enroll.EnrollmentActive, wantPaid: 1, wantGrant: true},
		{name: "paid short is flagged, not honoured", provider: func(_ *testing.T, g *enrolltest.Gateway, id string) {
			g.SetSession(enroll.CheckoutSession{ID: id, Status: enroll.SessionComplete, PaymentStatus: "paid",
				PaymentIntentID: "pi_" + id, AmountTotal: 100, Currency: "EUR"})
		}, wantStatus: enroll.EnrollmentExpired, wantReview: enroll.MismatchAmount},
		{name: "paid in another currency is flagged, not honoured", provider: func(_ *testing.T, g *enrolltest.Gateway, id string) {
			g.SetSession(enroll.CheckoutSession{ID: id, Status: enroll.SessionComplete, PaymentStatus: "paid",
				PaymentIntentID: "pi_" + id, AmountTotal: 49700, Currency: "USD"})
		}, wantStatus: enroll.EnrollmentExpired, wantReview: enroll.MismatchCurrency},
		{name: "completed unpaid awaits payment and keeps the seat", provider: func(t *testing.T, g *enrolltest.Gateway, id string) { g.Complete(t, id, false) },
			wantStatus: enroll.EnrollmentAwaitingPayment, wantHeld: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newCheckoutEnv(t)
			c := e.cohort(t, 3)
			lead := e.coach(t, "lead@example.com", people.RoleCoach, c.ID)
			res := e.checkout(t, c.ID, "ada@example.com")
			sid := *res.Enrollment.CheckoutSessionID
			tc.provider(t, e.gw, sid)
			_, _, expiresBefore, _ := e.gw.Calls()

			// Never on our clock alone: within an hour of the hold's expiry
			// the provider's own event is awaited and nobody is asked.
			e.clock.Advance(enroll.CheckoutHoldTTL + enroll.HoldSweepGrace - time.Second)
			if n, err := e.svc.Enroll.SweepHolds(ctx); err != nil || n != 0 {
				t.Fatalf("early sweep = %d, %v; want nothing", n, err)
			}
			if _, gets, _, _ := e.gw.Calls(); gets != 0 {
				t.Fatalf("provider asked %d times before hold + grace", gets)
			}
			if st := e.enrollment(t, res.Enrollment.ID).Status; st != enroll.EnrollmentPending {
				t.Fatalf("status before grace = %s", st)
			}

			e.clock.Advance(2 * time.Second)
			if n, err := e.svc.Enroll.SweepHolds(ctx); err != nil || n != 1 {
				t.Fatalf("sweep = %d, %v; want 1", n, err)
			}
			en := e.enrollment(t, res.Enrollment.ID)
			if en.Status != tc.wantStatus {
				t.Fatalf("status = %s, want %s", en.Status, tc.wantStatus)
			}
			if paid, held := e.seats(t, c.ID); paid != tc.wantPaid || held != tc.wantHeld {
				t.Fatalf("seats paid/held = %d/%d, want %d/%d", paid, held, tc.wantPaid, tc.wantHeld)
			}
			if _, _, expires, _ := e.gw.Calls(); (expires > expiresBefore) != tc.wantExpireAt {
				t.Fatalf("session expired by the sweeper: %v, want %v", expires > expiresBefore, tc.wantExpireAt)
			}
			grants := e.count(t, "access_grants", "enrollment_id = ? AND revoked_at IS NULL", en.ID)
			if (grants == 1) != tc.wantGrant {
				t.Fatalf("live grants = %d, want grant %v", grants, tc.wantGrant)
			}
			if tc.wantPaid == 1 && (en.AmountPaidCents != 49700 || en.PaymentIntentID == nil || en.PaidAt == nil) {
				t.Fatalf("paid facts not recorded: %+v", en)
			}
			if r := en.PaymentReview; (r == nil) != (tc.wantReview == "") || (r != nil && *r != tc.wantReview) {
				t.Fatalf("payment review = %v, want %q", r, tc.wantReview)
			}
			if tc.wantReview != "" && (en.PaidAt != nil || e.count(t, "outbox", "template = ? AND to_email = ?", enroll.TemplatePaymentReview, lead.Email) != 1) {
				t.Fatalf("a mismatched payment was recorded as paid (%v) or not sent for review", en.PaidAt)
			}

			// A second sweep finds nothing left to do.
			if n, err := e.svc.Enroll.SweepHolds(ctx); err != nil || n != 0 {
				t.Fatalf("second sweep = %d, %v", n, err)
			}
		})
	}
}

func TestSweepHoldsLeavesHoldsOnProviderFailure(t *testing.T) {
	ctx := context.Background()
	e := newCheckoutEnv(t)
	c := e.cohort(t, 3)
	res := e.checkout(t, c.ID, "ada@example.com")
	e.gw.Fail(enrolltest.Get, errors.New("stripe: timeout"))
	e.clock.Advance(enroll.CheckoutHoldTTL + enroll.HoldSweepGrace + time.Second)
	if n, err := e.svc.Enroll.SweepHolds(ctx); err != nil || n != 0 {
		t.Fatalf("sweep = %d, %v; want 0 and no error (retried next sweep)", n, err)
	}
	if st := e.enrollment(t, res.Enrollment.ID).Status; st != enroll.EnrollmentPending {
		t.Fatalf("status = %s, want still pending", st)
	}
	if _, held := e.seats(t, c.ID); held != 1 {
		t.Fatalf("seat released without the provider's word")
	}
	e.gw.Fail(enrolltest.Get, nil)
	if n, err := e.svc.Enroll.SweepHolds(ctx); err != nil || n != 1 {
		t.Fatalf("retry sweep = %d, %v; want 1", n, err)
	}
}

func TestSweepHoldsIgnoresSettledEnrollments(t *testing.T) {
	ctx := context.Background()
	e := newCheckoutEnv(t)
	c := e.cohort(t, 3)
	admin := e.coach(t, "admin@example.com", people.RoleAdmin)
	res := e.checkout(t, c.ID, "ada@example.com")
	// Settled by someone else (here the coach; in production a webhook).
	if _, err := e.svc.Enroll.CancelEnrollment(ctx, admin, res.Enrollment.ID); err != nil {
		t.Fatal(err)
	}
	_, getsBefore, _, _ := e.gw.Calls()
	e.clock.Advance(enroll.CheckoutHoldTTL + enroll.HoldSweepGrace + time.Second)
	if n, err := e.svc.Enroll.SweepHolds(ctx); err != nil || n != 0 {
		t.Fatalf("sweep = %d, %v; want nothing", n, err)
	}
	if _, gets, _, _ := e.gw.Calls(); gets != getsBefore {
		t.Fatal("provider asked about a settled enrollment")
	}
	if st := e.enrollment(t, res.Enrollment.ID).Status; st != enroll.EnrollmentCancelled {
		t.Fatalf("status = %s", st)
	}
}

// A checkout that crashed between its commit and the provider call has no
// session: its hold is expired after the grace, on our clock, since no
// session exists that could still be paid.
func TestSweepHoldsExpiresHoldsWithoutSession(t *testing.T) {
	ctx := context.Background()
	e := newCheckoutEnv(t)
	c := e.cohort(t, 3)
	res := e.checkout(t, c.ID, "ada@example.com")
	if err := e.db.Exec(`UPDATE enrollments SET checkout_session_id = NULL, checkout_url = NULL WHERE id = ?`, res.Enrollment.ID).Error; err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(enroll.CheckoutHoldTTL + time.Minute)
	if n, _ := e.svc.Enroll.SweepHolds(ctx); n != 0 {
		t.Fatalf("released a crashed hold before the grace")
	}
	e.clock.Advance(enroll.HoldSweepGrace)
	if n, err := e.svc.Enroll.SweepHolds(ctx); err != nil || n != 1 {
		t.Fatalf("sweep = %d, %v; want 1", n, err)
	}
	if _, held := e.seats(t, c.ID); held != 0 {
		t.Fatalf("seats held = %d, want 0", held)
	}
	if _, gets, _, _ := e.gw.Calls(); gets != 0 {
		t.Fatal("provider asked about a hold without a session")
	}
}

// Her new checkout after her hold lapsed asks the provider at once rather
// than making her wait for the sweeper.
func TestStartCheckoutAfterLapsedHoldResolvesIt(t *testing.T) {
	e := newCheckoutEnv(t)
	c := e.cohort(t, 1)
	first, link := e.checkoutLink(t, c.ID, "ada@example.com")
	e.gw.ExpireCheckoutSession(context.Background(), *first.Enrollment.CheckoutSessionID)
	e.clock.Advance(enroll.CheckoutHoldTTL + time.Second)
	// The cohort still counts her lapsed hold, so its form is sold out;
	// her link, valid for a day, is how she starts again.
	again, err := e.svc.Enroll.RedeemCheckoutLink(context.Background(), link, models.ClientInfo{})
	if err != nil {
		t.Fatalf("redeem her link after the lapse: %v", err)
	}
	if !again.Created || again.Enrollment.ID == first.Enrollment.ID {
		t.Fatalf("checkout after lapse = %+v, want a new hold", again)
	}
	if st := e.enrollment(t, first.Enrollment.ID).Status; st != enroll.EnrollmentExpired {
		t.Fatalf("lapsed hold = %s, want expired", st)
	}
	if _, held := e.seats(t, c.ID); held != 1 {
		t.Fatalf("seats held = %d, want 1", held)
	}
	var n int64
	e.db.Table("enrollments").Where("participant_id = ?", first.Enrollment.ParticipantID).Count(&n)
	if n != 2 {
		t.Fatalf("her enrollments = %d, want the lapsed one and the new one", n)
	}
}

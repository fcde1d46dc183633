package enroll_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/enroll"
	"github.com/grace-coaching/grace/models/people"
)

// TestLaunchDayRace is the race end to end: a thousand women press
// "pay" at once for twenty seats; then Stripe delivers, all at once and
// shuffled, checkout.session.completed three times for fifteen of the holds
// and checkout.session.expired twice for the other five. No seat is ever
// oversold, no enrollment duplicated, every expired hold is released, and a
// refund takes lesson access away on her very next read.
func TestLaunchDayRace(t *testing.T) {
	e := newCheckoutEnv(t)
	ctx := context.Background()
	c := e.cohort(t, 20)

	const buyers = 1000
	// Each woman filled in the form and has her link; then they all
	// click at once.
	tokens := e.checkoutLinks(t, c.ID, "launch", buyers)
	var wg sync.WaitGroup
	var mu sync.Mutex
	held, soldOut := 0, 0
	start := make(chan struct{})
	for i := range buyers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := e.svc.Enroll.RedeemCheckoutLink(ctx, tokens[i], models.ClientInfo{IP: "198.51.100.7"})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				held++
			case models.IsCode(err, "sold_out"):
				soldOut++
			default:
				t.Errorf("checkout %d: %v", i, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if held != 20 || soldOut != buyers-20 {
		t.Fatalf("holds/sold_out = %d/%d, want 20/%d", held, soldOut, buyers-20)
	}

	var holds []enroll.Enrollment
	if err := e.db.Where("cohort_id = ?", c.ID).Order("id").Find(&holds).Error; err != nil || len(holds) != 20 {
		t.Fatalf("%d holds (%v), want 20", len(holds), err)
	}
	var events []enroll.PaymentEvent
	for i, h := range holds {
		sess := &enroll.CheckoutSession{ID: *h.CheckoutSessionID, EnrollmentID: h.ID.String(), Currency: "EUR"}
		if i < 15 {
			sess.Status, sess.PaymentStatus, sess.AmountTotal = enroll.SessionComplete, "paid", c.PriceCents
			sess.PaymentIntentID = fmt.Sprintf("pi_launch_%02d", i)
			for range 3 {
				events = append(events, enroll.PaymentEvent{ID: "evt_paid_" + h.ID.String(), Type: enroll.EventCheckoutCompleted,
					Created: e.clock.Now(), Payload: []byte(`{}`), Session: sess})
			}
		} else {
			sess.Status, sess.PaymentStatus = enroll.SessionExpired, "unpaid"
			for range 2 {
				events = append(events, enroll.PaymentEvent{ID: "evt_expired_" + h.ID.String(), Type: enroll.EventCheckoutExpired,
					Created: e.clock.Now(), Payload: []byte(`{}`), Session: sess})
			}
		}
	}
	rand.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })
	start = make(chan struct{})
	for _, ev := range events {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if err := e.svc.Enroll.ApplyPaymentEvent(ctx, ev); err != nil {
				t.Errorf("apply %s: %v", ev.ID, err)
			}
		}()
	}
	close(start)
	wg.Wait()

	var cohort enroll.Cohort
	e.db.Where("id = ?", c.ID).Take(&cohort)
	if cohort.SeatsPaid != 15 || cohort.SeatsHeld != 0 || cohort.SeatsOverflow != 0 {
		t.Fatalf("seats paid/held/overflow = %d/%d/%d, want 15/0/0", cohort.SeatsPaid, cohort.SeatsHeld, cohort.SeatsOverflow)
	}
	counts := map[enroll.EnrollmentStatus]int64{}
	for _, status := range []enroll.EnrollmentStatus{enroll.EnrollmentActive, enroll.EnrollmentExpired} {
		counts[status] = e.count(t, "enrollments", "cohort_id = ? AND status = ?", c.ID, status)
	}
	if counts[enroll.EnrollmentActive] != 15 || counts[enroll.EnrollmentExpired] != 5 || e.count(t, "enrollments", "") != 20 {
		t.Fatalf("active/expired/all = %d/%d/%d, want 15/5/20", counts[enroll.EnrollmentActive], counts[enroll.EnrollmentExpired], e.count(t, "enrollments", ""))
	}
	if n := e.count(t, "enrollments", "status = ? AND seat <> ?", enroll.EnrollmentExpired, enroll.SeatNone); n != 0 {
		t.Fatalf("%d expired holds still occupy a seat", n)
	}
	if n := e.count(t, "access_grants", "enrollment_id IS NOT NULL AND revoked_at IS NULL"); n != 15 {
		t.Fatalf("%d live enrollment grants, want 15", n)
	}
	if n := e.count(t, "stripe_events", ""); n != 20 {
		t.Fatalf("%d stored events, want each of the 20 once", n)
	}
	// The CHECK constraint backs the counters: even a buggy write cannot
	// record more paid seats than the cohort has.
	if err := e.db.Exec(`UPDATE cohorts SET seats_paid = capacity + 1 WHERE id = ?`, c.ID).Error; err == nil {
		t.Fatal("the database accepted more paid seats than capacity")
	}

	// A full refund revokes her lesson access on the very next read.
	lesson := &catalog.Lesson{ProgramID: c.ProgramID, Position: 1, Title: "Why no contact", Body: "b", BodyHTML: "<p>b</p>", Published: true}
	if err := e.db.Create(lesson).Error; err != nil {
		t.Fatal(err)
	}
	e.clock.Set(c.StartsAt.Add(time.Hour)) // the cohort has begun: lesson 1 is open to its members
	var paid enroll.Enrollment
	e.db.Where("cohort_id = ? AND status = ?", c.ID, enroll.EnrollmentActive).Order("id").Take(&paid)
	var p people.Participant
	e.db.Where("id = ?", paid.ParticipantID).Take(&p)
	if _, err := e.svc.People.ReadLesson(ctx, &p, lesson.ID); err != nil {
		t.Fatalf("a paying member cannot read lesson 1: %v", err)
	}
	refund := enroll.PaymentEvent{ID: "evt_refund_" + uuid.NewString(), Type: enroll.EventChargeRefunded, Created: e.clock.Now(),
		Payload: []byte(`{}`), ChargePaymentIntentID: *paid.PaymentIntentID, AmountCaptured: c.PriceCents, AmountRefunded: c.PriceCents}
	if err := e.svc.Enroll.ApplyPaymentEvent(ctx, refund); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.People.ReadLesson(ctx, &p, lesson.ID); !models.IsCode(err, "no_access") {
		t.Fatalf("after a full refund: err = %v, want no_access", err)
	}
	e.db.Where("id = ?", c.ID).Take(&cohort)
	if cohort.SeatsPaid != 14 {
		t.Fatalf("seats paid after the refund = %d, want 14", cohort.SeatsPaid)
	}
}

// checkoutLinks has n women fill in the checkout form of cohortID (a few
// at a time, as the worker keeps up) and returns the tokens of the links
// they were emailed. No seat is held yet.
func (e *checkoutEnv) checkoutLinks(t *testing.T, cohortID uuid.UUID, prefix string, n int) []string {
	t.Helper()
	tokens := make([]string, n)
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range next {
				tokens[i], errs[i] = e.svc.Enroll.CheckoutLinkFor(context.Background(), cohortID,
					checkoutBuyer(fmt.Sprintf("%s%04d@example.com", prefix, i)), models.ClientInfo{IP: fmt.Sprintf("10.1.%d.%d", i/250, i%250+1)})
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, err := range errs {
		if err != nil || tokens[i] == "" {
			t.Fatalf("link %d: %q, %v", i, tokens[i], err)
		}
	}
	if _, held := e.seats(t, cohortID); held != 0 {
		t.Fatalf("the forms held %d seats; only links may", held)
	}
	return tokens
}

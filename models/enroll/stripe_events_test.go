package enroll_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/domain"
	"github.com/grace-coaching/grace/models/enroll"
	"github.com/grace-coaching/grace/models/modelstest"
	"github.com/grace-coaching/grace/models/people"
)

// payWorld is one fresh database with a cohort led by a coach. Enrollments
// are written straight to the tables with consistent seat counters, as a
// checkout would leave them, so these tests depend on nothing but the
// webhook path.
type payWorld struct {
	svc    *domain.Services
	clock  *models.FakeClock
	db     *gorm.DB
	cohort enroll.Cohort
	coach  people.Coach
}

func newPayWorld(t *testing.T, capacity int) *payWorld {
	t.Helper()
	svc, clock, db := modelstest.NewService(t)
	w := &payWorld{svc: svc, clock: clock, db: db}
	prog := catalog.Program{Slug: "say-no-with-grace", Title: "Say No With Grace", Summary: "S", Status: catalog.ProgramPublished, PriceCents: 9700, Currency: "EUR"}
	modelstest.MustDo(t, db.Create(&prog).Error)
	w.coach = people.Coach{Email: "grace@coach.test", Name: "Grace", Role: people.RoleCoach, Active: true}
	modelstest.MustDo(t, db.Create(&w.coach).Error)
	start := clock.Now().Add(14 * 24 * time.Hour)
	w.cohort = enroll.Cohort{ProgramID: prog.ID, Name: "Spring", StartsAt: start, EndsAt: start.Add(42 * 24 * time.Hour),
		Timezone: "Europe/London", Capacity: capacity, PriceCents: 9700, Currency: "EUR", Status: enroll.CohortOpen}
	modelstest.MustDo(t, db.Create(&w.cohort).Error)
	modelstest.MustDo(t, db.Create(&enroll.CohortCoach{CohortID: w.cohort.ID, CoachID: w.coach.ID, Lead: true}).Error)
	return w
}

// hold writes a pending enrollment holding a seat, with the checkout
// session sessionID, and counts the seat on the cohort.
func (w *payWorld) hold(t testing.TB, id uuid.UUID, email, sessionID string) enroll.Enrollment {
	t.Helper()
	p := people.Participant{Email: email, Name: "Woman " + email, Timezone: "Europe/London"}
	modelstest.MustDo(t, w.db.Create(&p).Error)
	exp := w.clock.Now().Add(31 * time.Minute)
	e := enroll.Enrollment{ID: id, CohortID: w.cohort.ID, ParticipantID: p.ID, Status: enroll.EnrollmentPending, Seat: enroll.SeatHeld,
		HoldExpiresAt: &exp, CheckoutSessionID: &sessionID, Currency: "EUR", DisputeStatus: enroll.DisputeNone}
	modelstest.MustDo(t, w.db.Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(&e).Error; err != nil {
			return err
		}
		res := tx.Exec(`UPDATE cohorts SET seats_held = seats_held + 1 WHERE id = ? AND seats_paid + seats_held < capacity`, w.cohort.ID)
		if res.Error == nil && res.RowsAffected != 1 {
			return fmt.Errorf("no free seat for the hold")
		}
		return res.Error
	}))
	return e
}

// payState is what a woman and her coach would notice about one enrollment.
type payState struct {
	Enrollment           enroll.Enrollment
	SeatsPaid, SeatsHeld int
	SeatsOverflow        int
	// HasAccess: an unrevoked grant. A grant revoked later and one never
	// given read the same to her.
	HasAccess                bool
	Events, EventsApplied    int64
	EventEnrollmentsRecorded int64
}

func (w *payWorld) state(t testing.TB, id uuid.UUID) payState {
	t.Helper()
	var s payState
	modelstest.MustDo(t, w.db.Where("id = ?", id).Take(&s.Enrollment).Error)
	// Ids of the fixture rows differ between databases; the rest must not.
	s.Enrollment.UpdatedAt, s.Enrollment.CreatedAt = time.Time{}, time.Time{}
	s.Enrollment.CohortID, s.Enrollment.ParticipantID = uuid.Nil, uuid.Nil
	var c enroll.Cohort
	modelstest.MustDo(t, w.db.Where("id = ?", w.cohort.ID).Take(&c).Error)
	s.SeatsPaid, s.SeatsHeld, s.SeatsOverflow = c.SeatsPaid, c.SeatsHeld, c.SeatsOverflow
	var grants []people.AccessGrant
	modelstest.MustDo(t, w.db.Raw(`SELECT * FROM access_grants WHERE enrollment_id = ?`, id).Scan(&grants).Error)
	if len(grants) > 1 {
		t.Fatalf("%d grants for one enrollment", len(grants))
	}
	s.HasAccess = len(grants) == 1 && grants[0].RevokedAt == nil
	modelstest.MustDo(t, w.db.Table("stripe_events").Count(&s.Events).Error)
	modelstest.MustDo(t, w.db.Table("stripe_events").Where("applied_at IS NOT NULL").Count(&s.EventsApplied).Error)
	modelstest.MustDo(t, w.db.Table("stripe_events").Where("enrollment_id = ?", id).Count(&s.EventEnrollmentsRecorded).Error)
	return s
}

// Event builders. Times are fixed so that two runs of one scenario record
// identical facts.
var evBase = time.Date(2026, 3, 2, 9, 5, 0, 0, time.UTC)

const (
	testSession = "cs_test_1"
	testPI      = "pi_test_1"
)

func completed(id string, min int, enrollmentID uuid.UUID, paymentStatus string, amount int64) enroll.PaymentEvent {
	return enroll.PaymentEvent{ID: id, Type: enroll.EventCheckoutCompleted, Created: evBase.Add(time.Duration(min) * time.Minute),
		Payload: []byte(`{"id":"` + id + `"}`),
		Session: &enroll.CheckoutSession{ID: testSession, Status: enroll.SessionComplete, PaymentStatus: paymentStatus,
			PaymentIntentID: testPI, AmountTotal: amount, Currency: "eur", EnrollmentID: enrollmentID.String()}}
}

func sessionEvent(id, typ string, min int, enrollmentID uuid.UUID, amount int64) enroll.PaymentEvent {
	ev := completed(id, min, enrollmentID, "paid", amount)
	ev.Type = typ
	if typ == enroll.EventCheckoutExpired {
		ev.Session.Status, ev.Session.PaymentStatus, ev.Session.PaymentIntentID, ev.Session.AmountTotal = enroll.SessionExpired, "unpaid", "", 0
	}
	return ev
}

// foreign is a paid checkout.session.completed that names her enrollment
// but is not the session recorded for it: another payment page on the
// account, its client_reference_id set to her enrollment id.
func foreign(id string, min int, enrollmentID uuid.UUID, amount int64, currency string) enroll.PaymentEvent {
	ev := completed(id, min, enrollmentID, "paid", amount)
	ev.Session.ID, ev.Session.PaymentIntentID, ev.Session.Currency = "cs_foreign", "pi_foreign", currency
	return ev
}

// paidWith is her own session paid amount in currency after discount.
func paidWith(id string, min int, enrollmentID uuid.UUID, amount, discount int64, currency string) enroll.PaymentEvent {
	ev := completed(id, min, enrollmentID, "paid", amount)
	ev.Session.AmountDiscount, ev.Session.Currency = discount, currency
	return ev
}

func refunded(id string, min int, captured, refundedCents int64) enroll.PaymentEvent {
	return enroll.PaymentEvent{ID: id, Type: enroll.EventChargeRefunded, Created: evBase.Add(time.Duration(min) * time.Minute),
		ChargePaymentIntentID: testPI, AmountCaptured: captured, AmountRefunded: refundedCents}
}

func dispute(id, typ string, min int, status string) enroll.PaymentEvent {
	return enroll.PaymentEvent{ID: id, Type: typ, Created: evBase.Add(time.Duration(min) * time.Minute),
		ChargePaymentIntentID: testPI, DisputeStatus: status}
}

type payScenario struct {
	name   string
	events func(id uuid.UUID) []enroll.PaymentEvent
	// the final state, whatever the order
	status               enroll.EnrollmentStatus
	seat                 enroll.Seat
	paid, held           int
	amountPaid, refunded int64
	dispute              enroll.DisputeStatus
	access               bool
	// review is the mismatch noted on the place; rejected counts the
	// events kept but not applied for it.
	review   enroll.PaymentMismatch
	rejected int
}

var payScenarios = []payScenario{
	{name: "paid", events: func(id uuid.UUID) []enroll.PaymentEvent {
		return []enroll.PaymentEvent{completed("evt_paid", 0, id, "paid", 9700)}
	}, status: enroll.EnrollmentActive, seat: enroll.SeatPaid, paid: 1, amountPaid: 9700, dispute: enroll.DisputeNone, access: true},
	{name: "free with a promotion code", events: func(id uuid.UUID) []enroll.PaymentEvent {
		ev := completed("evt_free", 0, id, "no_payment_required", 0)
		ev.Session.AmountDiscount = 9700
		return []enroll.PaymentEvent{ev}
	}, status: enroll.EnrollmentActive, seat: enroll.SeatPaid, paid: 1, dispute: enroll.DisputeNone, access: true},
	{name: "part paid with a promotion code", events: func(id uuid.UUID) []enroll.PaymentEvent {
		return []enroll.PaymentEvent{paidWith("evt_paid", 0, id, 4700, 5000, "eur")}
	}, status: enroll.EnrollmentActive, seat: enroll.SeatPaid, paid: 1, amountPaid: 4700, dispute: enroll.DisputeNone, access: true},
	{name: "a foreign session paying 100 USD cents is not honoured", events: func(id uuid.UUID) []enroll.PaymentEvent {
		return []enroll.PaymentEvent{foreign("evt_foreign", 0, id, 100, "usd")}
	}, status: enroll.EnrollmentPending, seat: enroll.SeatHeld, held: 1, dispute: enroll.DisputeNone,
		review: enroll.MismatchSession, rejected: 1},
	{name: "a foreign session at full price is not honoured either", events: func(id uuid.UUID) []enroll.PaymentEvent {
		return []enroll.PaymentEvent{foreign("evt_foreign", 0, id, 9700, "eur"), sessionEvent("evt_expired", enroll.EventCheckoutExpired, 31, id, 0)}
	}, status: enroll.EnrollmentExpired, seat: enroll.SeatNone, dispute: enroll.DisputeNone, review: enroll.MismatchSession, rejected: 1},
	{name: "a foreign session beside her own payment", events: func(id uuid.UUID) []enroll.PaymentEvent {
		return []enroll.PaymentEvent{foreign("evt_foreign", 0, id, 100, "usd"), completed("evt_paid", 5, id, "paid", 9700),
			foreign("evt_foreign_async", 60, id, 100, "usd")}
	}, status: enroll.EnrollmentActive, seat: enroll.SeatPaid, paid: 1, amountPaid: 9700, dispute: enroll.DisputeNone, access: true,
		review: enroll.MismatchSession, rejected: 2},
	{name: "her own session paying short", events: func(id uuid.UUID) []enroll.PaymentEvent {
		return []enroll.PaymentEvent{paidWith("evt_paid", 0, id, 100, 0, "eur")}
	}, status: enroll.EnrollmentPending, seat: enroll.SeatHeld, held: 1, dispute: enroll.DisputeNone, review: enroll.MismatchAmount, rejected: 1},
	{name: "her own session in another currency", events: func(id uuid.UUID) []enroll.PaymentEvent {
		return []enroll.PaymentEvent{paidWith("evt_paid", 0, id, 9700, 0, "usd")}
	}, status: enroll.EnrollmentPending, seat: enroll.SeatHeld, held: 1, dispute: enroll.DisputeNone, review: enroll.MismatchCurrency, rejected: 1},
	{name: "a foreign session expiring says nothing about hers", events: func(id uuid.UUID) []enroll.PaymentEvent {
		exp := sessionEvent("evt_foreign_expired", enroll.EventCheckoutExpired, 31, id, 0)
		exp.Session.ID = "cs_foreign"
		return []enroll.PaymentEvent{completed("evt_paid", 0, id, "paid", 9700), exp}
	}, status: enroll.EnrollmentActive, seat: enroll.SeatPaid, paid: 1, amountPaid: 9700, dispute: enroll.DisputeNone, access: true, rejected: 1},
	{name: "unpaid waits for the bank", events: func(id uuid.UUID) []enroll.PaymentEvent {
		return []enroll.PaymentEvent{completed("evt_unpaid", 0, id, "unpaid", 9700)}
	}, status: enroll.EnrollmentAwaitingPayment, seat: enroll.SeatHeld, held: 1, dispute: enroll.DisputeNone},
	{name: "async payment succeeds", events: func(id uuid.UUID) []enroll.PaymentEvent {
		return []enroll.PaymentEvent{completed("evt_unpaid", 0, id, "unpaid", 9700), sessionEvent("evt_async_ok", enroll.EventCheckoutAsyncSucceeded, 60, id, 9700)}
	}, status: enroll.EnrollmentActive, seat: enroll.SeatPaid, paid: 1, amountPaid: 9700, dispute: enroll.DisputeNone, access: true},
	{name: "async payment fails", events: func(id uuid.UUID) []enroll.PaymentEvent {
		return []enroll.PaymentEvent{completed("evt_unpaid", 0, id, "unpaid", 9700), sessionEvent("evt_async_fail", enroll.EventCheckoutAsyncFailed, 60, id, 9700)}
	}, status: enroll.EnrollmentExpired, seat: enroll.SeatNone, dispute: enroll.DisputeNone},
	{name: "session expires", events: func(id uuid.UUID) []enroll.PaymentEvent {
		return []enroll.PaymentEvent{sessionEvent("evt_expired", enroll.EventCheckoutExpired, 31, id, 0)}
	}, status: enroll.EnrollmentExpired, seat: enroll.SeatNone, dispute: enroll.DisputeNone},
	{name: "full refund", events: func(id uuid.UUID) []enroll.PaymentEvent {
		return []enroll.PaymentEvent{completed("evt_paid", 0, id, "paid", 9700), refunded("evt_refund", 90, 9700, 9700)}
	}, status: enroll.EnrollmentRefunded, seat: enroll.SeatNone, amountPaid: 9700, refunded: 9700, dispute: enroll.DisputeNone},
	{name: "partial refund", events: func(id uuid.UUID) []enroll.PaymentEvent {
		return []enroll.PaymentEvent{completed("evt_paid", 0, id, "paid", 9700), refunded("evt_refund", 90, 9700, 3000)}
	}, status: enroll.EnrollmentActive, seat: enroll.SeatPaid, paid: 1, amountPaid: 9700, refunded: 3000, dispute: enroll.DisputeNone, access: true},
	{name: "two partial refunds make a full one", events: func(id uuid.UUID) []enroll.PaymentEvent {
		return []enroll.PaymentEvent{completed("evt_paid", 0, id, "paid", 9700), refunded("evt_refund1", 90, 9700, 3000), refunded("evt_refund2", 120, 9700, 9700)}
	}, status: enroll.EnrollmentRefunded, seat: enroll.SeatNone, amountPaid: 9700, refunded: 9700, dispute: enroll.DisputeNone},
	{name: "dispute open", events: func(id uuid.UUID) []enroll.PaymentEvent {
		return []enroll.PaymentEvent{completed("evt_paid", 0, id, "paid", 9700), dispute("evt_dp_new", enroll.EventDisputeCreated, 200, "needs_response")}
	}, status: enroll.EnrollmentDisputed, seat: enroll.SeatPaid, paid: 1, amountPaid: 9700, dispute: enroll.DisputeOpen},
	{name: "dispute won", events: func(id uuid.UUID) []enroll.PaymentEvent {
		return []enroll.PaymentEvent{completed("evt_paid", 0, id, "paid", 9700), dispute("evt_dp_new", enroll.EventDisputeCreated, 200, "needs_response"),
			dispute("evt_dp_closed", enroll.EventDisputeClosed, 300, "won")}
	}, status: enroll.EnrollmentActive, seat: enroll.SeatPaid, paid: 1, amountPaid: 9700, dispute: enroll.DisputeWon, access: true},
	{name: "inquiry closed", events: func(id uuid.UUID) []enroll.PaymentEvent {
		return []enroll.PaymentEvent{completed("evt_paid", 0, id, "paid", 9700), dispute("evt_dp_new", enroll.EventDisputeCreated, 200, "warning_needs_response"),
			dispute("evt_dp_closed", enroll.EventDisputeClosed, 300, "warning_closed")}
	}, status: enroll.EnrollmentActive, seat: enroll.SeatPaid, paid: 1, amountPaid: 9700, dispute: enroll.DisputeWon, access: true},
	{name: "dispute lost", events: func(id uuid.UUID) []enroll.PaymentEvent {
		return []enroll.PaymentEvent{completed("evt_paid", 0, id, "paid", 9700), dispute("evt_dp_new", enroll.EventDisputeCreated, 200, "needs_response"),
			dispute("evt_dp_closed", enroll.EventDisputeClosed, 300, "lost")}
	}, status: enroll.EnrollmentDisputed, seat: enroll.SeatNone, amountPaid: 9700, dispute: enroll.DisputeLost},
}

// TestPaymentEventsConvergeInAnyOrder applies every scenario twice over: in
// the order Stripe usually sends it and reversed, each event delivered
// twice, on two fresh databases; the final rows must be identical.
func TestPaymentEventsConvergeInAnyOrder(t *testing.T) {
	ctx := context.Background()
	for _, sc := range payScenarios {
		t.Run(sc.name, func(t *testing.T) {
			id := uuid.New()
			run := func(t *testing.T, reverse bool) payState {
				w := newPayWorld(t, 5)
				w.hold(t, id, "amira@example.test", testSession)
				events := sc.events(id)
				if reverse {
					slices.Reverse(events)
				}
				for _, ev := range events {
					modelstest.MustDo(t, w.svc.Enroll.ApplyPaymentEvent(ctx, ev))
					first := w.state(t, id)
					modelstest.MustDo(t, w.svc.Enroll.ApplyPaymentEvent(ctx, ev))
					if again := w.state(t, id); !reflect.DeepEqual(first, again) {
						t.Fatalf("second delivery of %s changed the state:\nbefore %+v\nafter  %+v", ev.Type, first, again)
					}
				}
				got := w.state(t, id)
				e := got.Enrollment
				if e.Status != sc.status || e.Seat != sc.seat || got.SeatsPaid != sc.paid || got.SeatsHeld != sc.held || got.SeatsOverflow != 0 ||
					e.AmountPaidCents != sc.amountPaid || e.AmountRefundedCents != sc.refunded || e.DisputeStatus != sc.dispute ||
					got.HasAccess != sc.access {
					t.Errorf("reverse=%v: got status %s seat %s paid/held %d/%d overflow %d amount %d refunded %d dispute %s access %v; want %s %s %d/%d 0 %d %d %s %v",
						reverse, e.Status, e.Seat, got.SeatsPaid, got.SeatsHeld, got.SeatsOverflow, e.AmountPaidCents, e.AmountRefundedCents, e.DisputeStatus, got.HasAccess,
						sc.status, sc.seat, sc.paid, sc.held, sc.amountPaid, sc.refunded, sc.dispute, sc.access)
				}
				if n := int64(len(events)); got.Events != n || got.EventsApplied != n-int64(sc.rejected) || got.EventEnrollmentsRecorded != n {
					t.Errorf("reverse=%v: %d events stored, %d applied, %d linked to the enrollment; want %d, %d, %d",
						reverse, got.Events, got.EventsApplied, got.EventEnrollmentsRecorded, n, n-int64(sc.rejected), n)
				}
				if r := e.PaymentReview; (r == nil) != (sc.review == "") || (r != nil && *r != sc.review) {
					t.Errorf("reverse=%v: payment review %v, want %q", reverse, r, sc.review)
				}
				var reviews int64
				modelstest.MustDo(t, w.db.Model(&models.OutboxMessage{}).Where("template = ? AND to_email = ?", enroll.TemplatePaymentReview, w.coach.Email).Count(&reviews).Error)
				if want := map[bool]int64{true: 1, false: 0}[sc.review != ""]; reviews != want {
					t.Errorf("reverse=%v: %d review emails to the lead coach, want %d (one per foreign session)", reverse, reviews, want)
				}
				return got
			}
			forward := run(t, false)
			reversed := run(t, true)
			if !reflect.DeepEqual(forward, reversed) {
				t.Errorf("orders diverge:\nforward  %+v\nreversed %+v", forward, reversed)
			}
		})
	}
}

func TestPaymentEventForUnknownEnrollmentChangesNothing(t *testing.T) {
	ctx := context.Background()
	w := newPayWorld(t, 5)
	known := w.hold(t, uuid.New(), "amira@example.test", testSession)
	before := w.state(t, known.ID)

	for _, ev := range []enroll.PaymentEvent{
		{ID: "evt_stranger", Type: enroll.EventCheckoutCompleted, Created: evBase, Session: &enroll.CheckoutSession{
			ID: "cs_other", PaymentStatus: "paid", PaymentIntentID: "pi_other", AmountTotal: 9700, Currency: "eur", EnrollmentID: uuid.NewString()}},
		{ID: "evt_garbage_ref", Type: enroll.EventCheckoutExpired, Created: evBase, Session: &enroll.CheckoutSession{ID: "cs_other2", EnrollmentID: "not-a-uuid"}},
		{ID: "evt_other_product", Type: "invoice.paid", Created: evBase, Payload: []byte(`{"id":"evt_other_product"}`)},
	} {
		if err := w.svc.Enroll.ApplyPaymentEvent(ctx, ev); err != nil {
			t.Fatalf("%s: %v", ev.ID, err)
		}
	}
	after := w.state(t, known.ID)
	if after.Events != 3 || after.EventsApplied != 0 {
		t.Errorf("events stored/applied = %d/%d, want 3/0", after.Events, after.EventsApplied)
	}
	after.Events, after.EventsApplied = before.Events, before.EventsApplied
	if !reflect.DeepEqual(before, after) {
		t.Errorf("an event for someone else changed her enrollment:\nbefore %+v\nafter  %+v", before, after)
	}
}

// The enrollment id in the session is what we gave Stripe; should it be
// missing or mangled, the session id still finds her.
func TestPaymentEventFindsEnrollmentBySessionID(t *testing.T) {
	w := newPayWorld(t, 5)
	e := w.hold(t, uuid.New(), "amira@example.test", testSession)
	ev := completed("evt_paid", 0, e.ID, "paid", 9700)
	ev.Session.EnrollmentID = "garbled"
	modelstest.MustDo(t, w.svc.Enroll.ApplyPaymentEvent(context.Background(), ev))
	if got := w.state(t, e.ID); got.Enrollment.Status != enroll.EnrollmentActive {
		t.Errorf("status = %s, want active", got.Enrollment.Status)
	}
}

// A payment that finds every seat taken (the coach lowered capacity) is
// honoured and flagged to her coaches, never lost.
func TestPaymentWithoutASeatIsHonouredAndFlagged(t *testing.T) {
	ctx := context.Background()
	w := newPayWorld(t, 2)
	a := w.hold(t, uuid.New(), "amira@example.test", "cs_a")
	b := w.hold(t, uuid.New(), "beatriz@example.test", "cs_b")
	evA := completed("evt_a", 0, a.ID, "paid", 9700)
	evA.Session.ID, evA.Session.PaymentIntentID = "cs_a", "pi_a"
	modelstest.MustDo(t, w.svc.Enroll.ApplyPaymentEvent(ctx, evA))
	modelstest.MustDo(t, w.db.Exec(`UPDATE cohorts SET capacity = 1 WHERE id = ?`, w.cohort.ID).Error)
	evB := completed("evt_b", 1, b.ID, "paid", 9700)
	evB.Session.ID, evB.Session.PaymentIntentID = "cs_b", "pi_b"
	modelstest.MustDo(t, w.svc.Enroll.ApplyPaymentEvent(ctx, evB))

	got := w.state(t, b.ID)
	if got.Enrollment.Status != enroll.EnrollmentActive || got.Enrollment.Seat != enroll.SeatOverflow || !got.HasAccess {
		t.Errorf("overflowing payment: status %s seat %s access %v; want active, overflow, access", got.Enrollment.Status, got.Enrollment.Seat, got.HasAccess)
	}
	if got.SeatsPaid != 1 || got.SeatsHeld != 0 || got.SeatsOverflow != 1 {
		t.Errorf("seats paid/held/overflow = %d/%d/%d, want 1/0/1", got.SeatsPaid, got.SeatsHeld, got.SeatsOverflow)
	}
	var flagged int64
	modelstest.MustDo(t, w.db.Model(&models.OutboxMessage{}).Where("template = ? AND to_email = ?", enroll.TemplateCohortOverbooked, w.coach.Email).Count(&flagged).Error)
	if flagged != 1 {
		t.Errorf("%d cohort_overbooked emails to the lead coach, want 1", flagged)
	}
}

// When a paid seat frees in an overbooked cohort, the woman who paid beyond
// capacity takes it, before anyone on the waitlist: the overbooking clears.
func TestFreedSeatGoesToTheOverbookedPaymentFirst(t *testing.T) {
	ctx := context.Background()
	w := newPayWorld(t, 2)
	a := w.hold(t, uuid.New(), "amira@example.test", "cs_a")
	b := w.hold(t, uuid.New(), "beatriz@example.test", "cs_b")
	evA := completed("evt_a", 0, a.ID, "paid", 9700)
	evA.Session.ID, evA.Session.PaymentIntentID = "cs_a", "pi_a"
	modelstest.MustDo(t, w.svc.Enroll.ApplyPaymentEvent(ctx, evA))
	modelstest.MustDo(t, w.db.Exec(`UPDATE cohorts SET capacity = 1 WHERE id = ?`, w.cohort.ID).Error)
	evB := completed("evt_b", 1, b.ID, "paid", 9700)
	evB.Session.ID, evB.Session.PaymentIntentID = "cs_b", "pi_b"
	modelstest.MustDo(t, w.svc.Enroll.ApplyPaymentEvent(ctx, evB))

	refund := enroll.PaymentEvent{ID: "evt_refund_a", Type: enroll.EventChargeRefunded, Created: evB.Created.Add(time.Minute),
		ChargePaymentIntentID: "pi_a", AmountCaptured: 9700, AmountRefunded: 9700}
	modelstest.MustDo(t, w.svc.Enroll.ApplyPaymentEvent(ctx, refund))

	if got := w.state(t, a.ID); got.Enrollment.Status != enroll.EnrollmentRefunded || got.HasAccess {
		t.Errorf("refunded: status %s access %v", got.Enrollment.Status, got.HasAccess)
	}
	got := w.state(t, b.ID)
	if got.Enrollment.Seat != enroll.SeatPaid || got.SeatsPaid != 1 || got.SeatsOverflow != 0 || !got.HasAccess {
		t.Errorf("after the refund: seat %s, paid/overflow %d/%d, access %v; want paid, 1/0, access",
			got.Enrollment.Seat, got.SeatsPaid, got.SeatsOverflow, got.HasAccess)
	}
}

// A charge event and the checkout event naming its payment intent, racing:
// whichever commits first, the refund must land (it can never stay parked
// after its checkout was applied).
func TestRefundRacingItsCheckoutIsNeverLost(t *testing.T) {
	ctx := context.Background()
	w := newPayWorld(t, 20)
	const n = 12
	ids := make([]uuid.UUID, n)
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		ids[i] = uuid.New()
		sess, pi := fmt.Sprintf("cs_%d", i), fmt.Sprintf("pi_%d", i)
		w.hold(t, ids[i], fmt.Sprintf("w%d@example.test", i), sess)
		paid := completed(fmt.Sprintf("evt_paid_%d", i), 0, ids[i], "paid", 9700)
		paid.Session.ID, paid.Session.PaymentIntentID = sess, pi
		refund := refunded(fmt.Sprintf("evt_refund_%d", i), 5, 9700, 9700)
		refund.ChargePaymentIntentID = pi
		for _, ev := range []enroll.PaymentEvent{paid, refund} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- w.svc.Enroll.ApplyPaymentEvent(ctx, ev)
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		modelstest.MustDo(t, err)
	}
	for i, id := range ids {
		if got := w.state(t, id); got.Enrollment.Status != enroll.EnrollmentRefunded || got.Enrollment.Seat != enroll.SeatNone {
			t.Errorf("enrollment %d: status %s seat %s, want refunded none", i, got.Enrollment.Status, got.Enrollment.Seat)
		}
	}
	var parked int64
	modelstest.MustDo(t, w.db.Table("stripe_events").Where("applied_at IS NULL").Count(&parked).Error)
	var c enroll.Cohort
	modelstest.MustDo(t, w.db.Where("id = ?", w.cohort.ID).Take(&c).Error)
	if parked != 0 || c.SeatsPaid != 0 || c.SeatsHeld != 0 {
		t.Errorf("parked %d, seats paid/held %d/%d; want 0, 0/0", parked, c.SeatsPaid, c.SeatsHeld)
	}
}

// Stripe may deliver one event several times at once.
func TestConcurrentDuplicateDeliveriesApplyOnce(t *testing.T) {
	ctx := context.Background()
	w := newPayWorld(t, 5)
	e := w.hold(t, uuid.New(), "amira@example.test", testSession)
	ev := completed("evt_paid", 0, e.ID, "paid", 9700)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- w.svc.Enroll.ApplyPaymentEvent(ctx, ev)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		modelstest.MustDo(t, err)
	}
	got := w.state(t, e.ID)
	var welcomes int64
	modelstest.MustDo(t, w.db.Model(&models.OutboxMessage{}).Where("template = ?", enroll.TemplateEnrollmentWelcome).Count(&welcomes).Error)
	if got.Events != 1 || got.SeatsPaid != 1 || got.SeatsHeld != 0 || welcomes != 1 || got.Enrollment.Status != enroll.EnrollmentActive {
		t.Errorf("events %d, seats paid/held %d/%d, welcomes %d, status %s; want 1, 1/0, 1, active", got.Events, got.SeatsPaid, got.SeatsHeld, welcomes, got.Enrollment.Status)
	}
}

func TestPaymentEventWithoutIDIsRefused(t *testing.T) {
	w := newPayWorld(t, 5)
	err := w.svc.Enroll.ApplyPaymentEvent(context.Background(), enroll.PaymentEvent{Type: enroll.EventCheckoutCompleted})
	if !models.IsCode(err, "invalid_event") {
		t.Fatalf("err = %v, want invalid_event", err)
	}
}

// A payment that lands on a place the coach cancelled before the money was
// known gives her the place back: on a free seat if there is one, beyond
// capacity if not (like any payment without a seat), and her coaches are
// told either way so they can refund and cancel again. Money is never kept
// without a place.
func TestPaymentForACancelledPlaceReinstatesHer(t *testing.T) {
	tests := []struct {
		name       string
		seatTaken  bool // another woman holds the freed seat meanwhile
		wantSeat   enroll.Seat
		paid, over int
	}{
		{name: "seat still free", wantSeat: enroll.SeatPaid, paid: 1},
		{name: "seat taken meanwhile", seatTaken: true, wantSeat: enroll.SeatOverflow, over: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			w := newPayWorld(t, 1)
			e := w.hold(t, uuid.New(), "amira@example.test", testSession)
			if _, err := w.svc.Enroll.CancelEnrollment(ctx, &w.coach, e.ID); err != nil {
				t.Fatal(err)
			}
			if tc.seatTaken {
				w.hold(t, uuid.New(), "beatriz@example.test", "cs_b")
			}
			ev := completed("evt_paid", 0, e.ID, "paid", 9700)
			for range 2 { // a replay changes nothing
				modelstest.MustDo(t, w.svc.Enroll.ApplyPaymentEvent(ctx, ev))
			}

			got := w.state(t, e.ID)
			en := got.Enrollment
			if en.Status != enroll.EnrollmentActive || en.Seat != tc.wantSeat || en.CancelledAt != nil || en.PaidAt == nil || !got.HasAccess {
				t.Errorf("status %s seat %s cancelled %v access %v; want active on %s, not cancelled, with access",
					en.Status, en.Seat, en.CancelledAt, got.HasAccess, tc.wantSeat)
			}
			if got.SeatsPaid != tc.paid || got.SeatsOverflow != tc.over {
				t.Errorf("seats paid/overflow = %d/%d, want %d/%d", got.SeatsPaid, got.SeatsOverflow, tc.paid, tc.over)
			}
			var flags []models.OutboxMessage
			modelstest.MustDo(t, w.db.Where("to_email = ? AND template IN ?", w.coach.Email,
				[]string{enroll.TemplateEnrollmentReinstated, enroll.TemplateCohortOverbooked}).Find(&flags).Error)
			if len(flags) != 1 || flags[0].Template != enroll.TemplateEnrollmentReinstated ||
				flags[0].Data["overbooked"] != tc.seatTaken || flags[0].Data["participant_email"] != "amira@example.test" {
				t.Errorf("coach emails = %+v, want one enrollment_reinstated (overbooked %v)", flags, tc.seatTaken)
			}
			var welcomes int64
			modelstest.MustDo(t, w.db.Model(&models.OutboxMessage{}).Where("template = ? AND to_email = ?", enroll.TemplateEnrollmentWelcome, "amira@example.test").Count(&welcomes).Error)
			if welcomes != 1 {
				t.Errorf("welcome emails = %d, want 1", welcomes)
			}
		})
	}
}

// A place the coach cancelled after it was paid for stays cancelled when
// a late event about that payment arrives: she decided with the payment in
// view (and refunds separately).
func TestLatePaymentEventKeepsAPaidPlaceCancelled(t *testing.T) {
	ctx := context.Background()
	w := newPayWorld(t, 2)
	e := w.hold(t, uuid.New(), "amira@example.test", testSession)
	modelstest.MustDo(t, w.svc.Enroll.ApplyPaymentEvent(ctx, completed("evt_paid", 0, e.ID, "paid", 9700)))
	if _, err := w.svc.Enroll.CancelEnrollment(ctx, &w.coach, e.ID); err != nil {
		t.Fatal(err)
	}
	modelstest.MustDo(t, w.svc.Enroll.ApplyPaymentEvent(ctx, sessionEvent("evt_async_ok", enroll.EventCheckoutAsyncSucceeded, 5, e.ID, 9700)))

	got := w.state(t, e.ID)
	if got.Enrollment.Status != enroll.EnrollmentCancelled || got.Enrollment.Seat != enroll.SeatNone || got.HasAccess || got.SeatsPaid != 0 {
		t.Errorf("status %s seat %s access %v seats paid %d; want cancelled, no seat, no access",
			got.Enrollment.Status, got.Enrollment.Seat, got.HasAccess, got.SeatsPaid)
	}
	var flags int64
	modelstest.MustDo(t, w.db.Model(&models.OutboxMessage{}).Where("template = ?", enroll.TemplateEnrollmentReinstated).Count(&flags).Error)
	if flags != 0 {
		t.Errorf("%d reinstatement emails, want none", flags)
	}
}

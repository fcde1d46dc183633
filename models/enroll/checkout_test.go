package enroll_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/domain"
	"github.com/grace-coaching/grace/models/enroll"
	"github.com/grace-coaching/grace/models/enroll/enrolltest"
	"github.com/grace-coaching/grace/models/modelstest"
	"github.com/grace-coaching/grace/models/people"
)

type checkoutEnv struct {
	svc   *domain.Services
	clock *models.FakeClock
	db    *gorm.DB
	gw    *enrolltest.Gateway
}

// newCheckoutEnv is a service with the fake gateway and no rate limits, so
// a race of a thousand buyers is limited only by seats.
func newCheckoutEnv(t *testing.T) *checkoutEnv {
	t.Helper()
	db := modelstest.NewDB(t)
	clock := models.NewFakeClock(modelstest.Start)
	gw := enrolltest.New()
	svc := domain.New(domain.Deps{DB: db, Clock: clock, Payments: gw, AppBaseURL: "https://grace.test", Limits: &models.Limits{}})
	return &checkoutEnv{svc: svc, clock: clock, db: db, gw: gw}
}

// cohort inserts an open cohort of a fresh program; mod adjusts it first.
func (e *checkoutEnv) cohort(t *testing.T, capacity int, mod ...func(*enroll.Cohort)) *enroll.Cohort {
	t.Helper()
	now := e.clock.Now()
	p := &catalog.Program{Slug: "p-" + uuid.NewString()[:8], Title: "Say No With Grace", Status: catalog.ProgramPublished, PriceCents: 49700, Currency: "EUR"}
	if err := e.db.Create(p).Error; err != nil {
		t.Fatalf("create program: %v", err)
	}
	c := &enroll.Cohort{ProgramID: p.ID, Name: "Spring circle", StartsAt: now.Add(30 * 24 * time.Hour), EndsAt: now.Add(60 * 24 * time.Hour),
		Timezone: "Europe/Berlin", Capacity: capacity, PriceCents: 49700, Currency: "EUR", Status: enroll.CohortOpen}
	for _, m := range mod {
		m(c)
	}
	if err := e.db.Create(c).Error; err != nil {
		t.Fatalf("create cohort: %v", err)
	}
	return c
}

func (e *checkoutEnv) coach(t *testing.T, email string, role people.Role, leads ...uuid.UUID) *people.Coach {
	t.Helper()
	c := &people.Coach{Email: email, Name: "Coach " + email, Role: role, Active: true}
	if err := e.db.Create(c).Error; err != nil {
		t.Fatalf("create coach: %v", err)
	}
	for i, id := range leads {
		if err := e.db.Create(&enroll.CohortCoach{CohortID: id, CoachID: c.ID, Lead: i == 0}).Error; err != nil {
			t.Fatalf("create cohort coach: %v", err)
		}
	}
	return c
}

func (e *checkoutEnv) seats(t *testing.T, cohortID uuid.UUID) (paid, held int) {
	t.Helper()
	var c enroll.Cohort
	if err := e.db.Where("id = ?", cohortID).Take(&c).Error; err != nil {
		t.Fatalf("read cohort: %v", err)
	}
	return c.SeatsPaid, c.SeatsHeld
}

func (e *checkoutEnv) enrollment(t *testing.T, id uuid.UUID) *enroll.Enrollment {
	t.Helper()
	var en enroll.Enrollment
	if err := e.db.Where("id = ?", id).Take(&en).Error; err != nil {
		t.Fatalf("read enrollment: %v", err)
	}
	return &en
}

func (e *checkoutEnv) count(t *testing.T, table, where string, args ...any) int64 {
	t.Helper()
	var n int64
	q := e.db.Table(table)
	if where != "" {
		q = q.Where(where, args...)
	}
	if err := q.Count(&n).Error; err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

func (e *checkoutEnv) checkout(t *testing.T, cohortID uuid.UUID, email string) *enroll.CheckoutResult {
	t.Helper()
	res, err := e.svc.Enroll.CheckoutNow(context.Background(), cohortID, checkoutBuyer(email), models.ClientInfo{IP: "203.0.113.9", UserAgent: "test"})
	if err != nil {
		t.Fatalf("checkout %s: %v", email, err)
	}
	return res
}

// checkoutLink is the whole booking like checkout, and also returns the
// link she was emailed, for her to click again.
func (e *checkoutEnv) checkoutLink(t *testing.T, cohortID uuid.UUID, email string) (*enroll.CheckoutResult, string) {
	t.Helper()
	client := models.ClientInfo{IP: "203.0.113.9", UserAgent: "test"}
	token, err := e.svc.Enroll.CheckoutLinkFor(context.Background(), cohortID, checkoutBuyer(email), client)
	if err != nil || token == "" {
		t.Fatalf("checkout link of %s: %q, %v", email, token, err)
	}
	res, err := e.svc.Enroll.RedeemCheckoutLink(context.Background(), token, client)
	if err != nil {
		t.Fatalf("checkout %s: %v", email, err)
	}
	return res, token
}

// offerLink is the checkout link her waitlist offer carries.
func offerLink(t *testing.T, e *checkoutEnv, email string) string {
	t.Helper()
	msgs := checkoutOutbox(t, e, enroll.TemplateWaitlistOffer, email)
	if len(msgs) == 0 {
		t.Fatalf("no waitlist offer to %s", email)
	}
	token, _ := msgs[len(msgs)-1].Data["token"].(string)
	if token == "" {
		t.Fatalf("the offer to %s carries no checkout link", email)
	}
	return token
}

func checkoutBuyer(email string) enroll.CheckoutInput {
	// A name, not the address: a typed name may hold no email address.
	local, _, _ := strings.Cut(email, "@")
	name := strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return r
		}
		return -1
	}, local)
	return enroll.CheckoutInput{Email: email, Name: "Ada " + name, DisclaimerAccepted: true, MarketingConsent: true}
}

func TestStartCheckoutHoldsOneSeatAndResumesIt(t *testing.T) {
	e := newCheckoutEnv(t)
	c := e.cohort(t, 5)
	now := e.clock.Now()

	res := e.checkout(t, c.ID, "  Ada@Example.com ")
	if !res.Created || res.CheckoutURL == "" || !res.ExpiresAt.Equal(now.Add(enroll.CheckoutHoldTTL)) {
		t.Fatalf("result = %+v, want a new hold expiring in 31 minutes with a URL", res)
	}
	en := e.enrollment(t, res.Enrollment.ID)
	if en.Status != enroll.EnrollmentPending || en.Seat != enroll.SeatHeld || en.CheckoutSessionID == nil || *en.CheckoutURL != res.CheckoutURL || en.Currency != "EUR" {
		t.Fatalf("enrollment = %+v, want pending with its session stored", en)
	}
	if paid, held := e.seats(t, c.ID); paid != 0 || held != 1 {
		t.Fatalf("seats paid/held = %d/%d, want 0/1", paid, held)
	}
	// The disclaimer is consented on the form; marketing only requested,
	// for her to confirm by email (double opt-in).
	if n := e.count(t, "consents", "participant_id = ? AND program_id = ? AND granted", en.ParticipantID, c.ProgramID); n != 1 {
		t.Fatalf("granted consents = %d, want the disclaimer alone", n)
	}
	if n := e.count(t, "marketing_optins", "participant_id = ? AND program_id = ? AND confirmed_at IS NULL", en.ParticipantID, c.ProgramID); n != 1 {
		t.Fatalf("marketing opt-in requests = %d, want 1", n)
	}
	req := e.gw.Creates()[0]
	if req.IdempotencyKey != "checkout:"+en.ID.String() || req.EnrollmentID != en.ID || req.AmountCents != 49700 || req.Currency != "EUR" ||
		req.CustomerEmail != "ada@example.com" || !req.ExpiresAt.Equal(*en.HoldExpiresAt) ||
		!strings.HasPrefix(req.SuccessURL, "https://grace.test/") || !strings.Contains(req.SuccessURL, en.ID.String()) {
		t.Fatalf("checkout request = %+v", req)
	}

	again := e.checkout(t, c.ID, "ada@example.com")
	if again.Created || again.Enrollment.ID != en.ID || again.CheckoutURL != res.CheckoutURL {
		t.Fatalf("second checkout = %+v, want the first one resumed", again)
	}
	if _, held := e.seats(t, c.ID); held != 1 {
		t.Fatalf("seats held after double click = %d, want 1", held)
	}
	if creates, _, _, _ := e.gw.Calls(); creates != 1 {
		t.Fatalf("sessions created = %d, want 1", creates)
	}
}

func TestStartCheckoutConcurrentDoubleClickTakesOneSeat(t *testing.T) {
	e := newCheckoutEnv(t)
	c := e.cohort(t, 5)
	const clicks = 8
	ids := make([]uuid.UUID, clicks)
	errs := make([]error, clicks)
	var wg sync.WaitGroup
	for i := range clicks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := e.svc.Enroll.CheckoutNow(context.Background(), c.ID, checkoutBuyer("ada@example.com"), models.ClientInfo{IP: "203.0.113.9"})
			errs[i] = err
			if err == nil {
				ids[i] = res.Enrollment.ID
			}
		}()
	}
	wg.Wait()
	for i := range clicks {
		if errs[i] != nil {
			t.Fatalf("click %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("click %d got enrollment %s, click 0 got %s", i, ids[i], ids[0])
		}
	}
	if _, held := e.seats(t, c.ID); held != 1 {
		t.Fatalf("seats held = %d, want 1", held)
	}
	if n := e.count(t, "enrollments", ""); n != 1 {
		t.Fatalf("enrollments = %d, want 1", n)
	}
}

func TestStartCheckoutRefusals(t *testing.T) {
	past := modelstest.Start.Add(-time.Hour)
	future := modelstest.Start.Add(time.Hour)
	tests := []struct {
		name  string
		setup func(t *testing.T, e *checkoutEnv) uuid.UUID
		in    enroll.CheckoutInput
		code  string
		field string
	}{
		{name: "sold out", code: "sold_out", setup: func(t *testing.T, e *checkoutEnv) uuid.UUID {
			c := e.cohort(t, 1)
			e.checkout(t, c.ID, "first@example.com")
			return c.ID
		}},
		{name: "window closed", code: "enrollment_closed", setup: func(t *testing.T, e *checkoutEnv) uuid.UUID {
			return e.cohort(t, 5, func(c *enroll.Cohort) { c.EnrollmentClosesAt = &past }).ID
		}},
		{name: "window not yet open", code: "enrollment_closed", setup: func(t *testing.T, e *checkoutEnv) uuid.UUID {
			return e.cohort(t, 5, func(c *enroll.Cohort) { c.EnrollmentOpensAt = &future }).ID
		}},
		{name: "cohort closed", code: "enrollment_closed", setup: func(t *testing.T, e *checkoutEnv) uuid.UUID {
			return e.cohort(t, 5, func(c *enroll.Cohort) { c.Status = enroll.CohortClosed }).ID
		}},
		{name: "draft is not public", code: "not_found", setup: func(t *testing.T, e *checkoutEnv) uuid.UUID {
			return e.cohort(t, 5, func(c *enroll.Cohort) { c.Status = enroll.CohortDraft }).ID
		}},
		{name: "unknown cohort", code: "not_found", setup: func(t *testing.T, e *checkoutEnv) uuid.UUID { return uuid.New() }},
		{name: "already enrolled", code: "already_enrolled", setup: func(t *testing.T, e *checkoutEnv) uuid.UUID {
			c := e.cohort(t, 5)
			admin := e.coach(t, "admin@example.com", people.RoleAdmin)
			if _, err := e.svc.Enroll.AddComplimentary(context.Background(), admin, c.ID, "ada@example.com", "Ada"); err != nil {
				t.Fatal(err)
			}
			return c.ID
		}},
		{name: "disclaimer not accepted", code: "validation_failed", field: "disclaimer_accepted",
			in: enroll.CheckoutInput{Email: "ada@example.com", Name: "Ada"}},
		{name: "bad email", code: "validation_failed", field: "email",
			in: enroll.CheckoutInput{Email: "ada@", Name: "Ada", DisclaimerAccepted: true}},
		{name: "empty name", code: "validation_failed", field: "name",
			in: enroll.CheckoutInput{Email: "ada@example.com", Name: "  ", DisclaimerAccepted: true}},
		{name: "name too long", code: "validation_failed", field: "name",
			in: enroll.CheckoutInput{Email: "ada@example.com", Name: strings.Repeat("a", 201), DisclaimerAccepted: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newCheckoutEnv(t)
			var id uuid.UUID
			if tc.setup != nil {
				id = tc.setup(t, e)
			} else {
				id = e.cohort(t, 5).ID
			}
			in := tc.in
			if in.Email == "" {
				in = checkoutBuyer("ada@example.com")
			}
			before := e.count(t, "enrollments", "")
			beforeConsents := e.count(t, "consents", "")
			creates, _, _, _ := e.gw.Calls()
			_, err := e.svc.Enroll.CheckoutNow(context.Background(), id, in, models.ClientInfo{IP: "203.0.113.9"})
			modelstest.WantCode(t, err, tc.code)
			if tc.field != "" {
				de, _ := models.AsError(err)
				if len(de.Fields) != 1 || de.Fields[0].Field != tc.field {
					t.Fatalf("fields = %+v, want %s", de.Fields, tc.field)
				}
			}
			if tc.code == "sold_out" {
				de, _ := models.AsError(err)
				if de.Links[enroll.LinkWaitlist] != id.String() {
					t.Fatalf("links = %v, want the waitlist", de.Links)
				}
			}
			if got := e.count(t, "enrollments", ""); got != before {
				t.Fatalf("enrollments %d -> %d, want no new row", before, got)
			}
			if got := e.count(t, "consents", ""); got != beforeConsents {
				t.Fatalf("consents %d -> %d, want no new row", beforeConsents, got)
			}
			if after, _, _, _ := e.gw.Calls(); after != creates {
				t.Fatalf("provider called on a refused checkout")
			}
		})
	}
}

func TestStartCheckoutWithoutPaymentsIsUnavailable(t *testing.T) {
	svc, clock, db := modelstest.NewService(t)
	e := &checkoutEnv{svc: svc, clock: clock, db: db}
	c := e.cohort(t, 5)
	_, err := svc.Enroll.CheckoutNow(context.Background(), c.ID, checkoutBuyer("ada@example.com"), models.ClientInfo{})
	modelstest.WantCode(t, err, "payments_unavailable")
	for _, table := range []string{"enrollments", "participants", "consents", "rate_limits"} {
		if n := e.count(t, table, ""); n != 0 {
			t.Fatalf("%s = %d, want nothing written", table, n)
		}
	}
}

// A free cohort has nothing to pay: she is enrolled at once, exactly as a
// paid checkout ends, with or without a payment provider.
func TestStartCheckoutOfAFreeCohortEnrolsHer(t *testing.T) {
	for _, withPayments := range []bool{true, false} {
		t.Run(fmt.Sprintf("payments=%v", withPayments), func(t *testing.T) {
			e := newCheckoutEnv(t)
			if !withPayments {
				e.svc = domain.New(domain.Deps{DB: e.db, Clock: e.clock, AppBaseURL: "https://grace.test", Limits: &models.Limits{}})
			}
			ctx := context.Background()
			c := e.cohort(t, 1, func(c *enroll.Cohort) { c.PriceCents = 0 })

			res, link := e.checkoutLink(t, c.ID, "Ada@Example.com")
			en := e.enrollment(t, res.Enrollment.ID)
			if !res.Created || res.CheckoutURL != "https://grace.test/checkout/success?enrollment="+en.ID.String() || !res.ExpiresAt.Equal(c.EndsAt) {
				t.Fatalf("result = %+v, want a new enrollment sent to the success page", res)
			}
			if en.Status != enroll.EnrollmentActive || en.Seat != enroll.SeatPaid || en.PaidAt == nil || en.AmountPaidCents != 0 ||
				en.CheckoutSessionID != nil || en.HoldExpiresAt != nil || en.Complimentary {
				t.Fatalf("enrollment = %+v, want active on a paid seat, nothing paid, no session", en)
			}
			if paid, held := e.seats(t, c.ID); paid != 1 || held != 0 {
				t.Fatalf("seats paid/held = %d/%d, want 1/0", paid, held)
			}
			if n := e.count(t, "access_grants", "enrollment_id = ? AND revoked_at IS NULL", en.ID); n != 1 {
				t.Fatalf("access grants = %d, want 1", n)
			}
			if n := e.count(t, "consents", "participant_id = ? AND program_id = ?", en.ParticipantID, c.ProgramID); n != 1 {
				t.Fatalf("consents = %d, want the disclaimer alone (marketing waits for her confirmation)", n)
			}
			welcome := checkoutOutbox(t, e, enroll.TemplateEnrollmentWelcome, "ada@example.com")
			if len(welcome) != 1 || welcome[0].Data["enrollment_id"] != en.ID.String() {
				t.Fatalf("welcome emails = %+v, want one", welcome)
			}
			if creates, _, _, _ := e.gw.Calls(); creates != 0 {
				t.Fatalf("the provider was asked for a free cohort")
			}

			// A double click of her link finds her enrolled, like any paid
			// place.
			_, err := e.svc.Enroll.RedeemCheckoutLink(ctx, link, models.ClientInfo{})
			modelstest.WantCode(t, err, "already_enrolled")
			// Free seats run out like paid ones, for her form as for anyone's
			// (public state), and a refusal writes nothing.
			before := e.count(t, "participants", "")
			for _, email := range []string{"ada@example.com", "bea@example.com"} {
				_, err = e.svc.Enroll.CheckoutNow(ctx, c.ID, checkoutBuyer(email), models.ClientInfo{})
				modelstest.WantCode(t, err, "sold_out")
			}
			if n := e.count(t, "participants", ""); n != before {
				t.Fatalf("participants %d -> %d after sold_out", before, n)
			}
			if n := e.count(t, "enrollments", ""); n != 1 {
				t.Fatalf("enrollments = %d, want 1", n)
			}
		})
	}
}

// A woman on a free cohort's waitlist who follows her offer is enrolled at
// once, not sent to pay nothing.
func TestFreeCohortWaitlistOfferEnrolsHer(t *testing.T) {
	e := newCheckoutEnv(t)
	ctx := context.Background()
	c := e.cohort(t, 1, func(c *enroll.Cohort) { c.PriceCents = 0 })
	admin := e.coach(t, "admin@example.com", people.RoleAdmin)
	first := e.checkout(t, c.ID, "ada@example.com")
	if err := e.svc.Enroll.JoinWaitlistNow(ctx, c.ID, "bea@example.com", "Bea", models.ClientInfo{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Enroll.CancelEnrollment(ctx, admin, first.Enrollment.ID); err != nil {
		t.Fatal(err)
	}
	if len(checkoutOutbox(t, e, enroll.TemplateWaitlistOffer, "bea@example.com")) != 1 {
		t.Fatal("Bea was not offered the freed seat")
	}
	// The cohort is full (her offer holds the seat): the form is sold out
	// for her as for anyone, and her offer's link takes the seat.
	_, err := e.svc.Enroll.CheckoutNow(ctx, c.ID, checkoutBuyer("bea@example.com"), models.ClientInfo{})
	modelstest.WantCode(t, err, "sold_out")
	res, err := e.svc.Enroll.RedeemCheckoutLinkAccepting(ctx, offerLink(t, e, "bea@example.com"), true, models.ClientInfo{})
	if err != nil {
		t.Fatalf("redeem the offer: %v", err)
	}
	en := e.enrollment(t, res.Enrollment.ID)
	if res.Created || en.Status != enroll.EnrollmentActive || en.Seat != enroll.SeatPaid || !strings.Contains(res.CheckoutURL, "/checkout/success?enrollment="+en.ID.String()) {
		t.Fatalf("offer checkout = %+v, enrollment %+v; want her offer settled as an active place", res, en)
	}
	if paid, held := e.seats(t, c.ID); paid != 1 || held != 0 {
		t.Fatalf("seats paid/held = %d/%d, want 1/0", paid, held)
	}
	if n := e.count(t, "consents", "participant_id = ? AND kind = ?", en.ParticipantID, models.ConsentDisclaimer); n != 1 {
		t.Fatalf("disclaimer consents = %d, want recorded at checkout", n)
	}
	if len(checkoutOutbox(t, e, enroll.TemplateEnrollmentWelcome, "bea@example.com")) != 1 {
		t.Fatal("no welcome email")
	}
}

func TestStartCheckoutProviderFailureReleasesTheHold(t *testing.T) {
	e := newCheckoutEnv(t)
	c := e.cohort(t, 1)
	e.gw.Fail(enrolltest.Create, errors.New("stripe: 500"))
	_, err := e.svc.Enroll.CheckoutNow(context.Background(), c.ID, checkoutBuyer("ada@example.com"), models.ClientInfo{})
	modelstest.WantCode(t, err, "payment_provider_error")
	if _, held := e.seats(t, c.ID); held != 0 {
		t.Fatalf("seats held = %d after provider failure, want 0", held)
	}
	if n := e.count(t, "enrollments", "status = ?", enroll.EnrollmentExpired); n != 1 {
		t.Fatalf("expired enrollments = %d, want the failed hold expired", n)
	}

	// The seat is free again: she (or anyone) can retry.
	e.gw.Fail(enrolltest.Create, nil)
	res := e.checkout(t, c.ID, "ada@example.com")
	if !res.Created {
		t.Fatalf("retry resumed a released hold: %+v", res)
	}
	if _, held := e.seats(t, c.ID); held != 1 {
		t.Fatalf("seats held after retry = %d, want 1", held)
	}
}

// TestStartCheckoutRace: a thousand women click their checkout links at
// once for twenty seats; exactly twenty get a hold and nobody oversells.
func TestStartCheckoutRace(t *testing.T) {
	if testing.Short() {
		t.Skip("race of 1,000 checkouts")
	}
	e := newCheckoutEnv(t)
	c := e.cohort(t, 20)
	const buyers = 1000
	tokens := e.checkoutLinks(t, c.ID, "buyer", buyers)
	var (
		wg         sync.WaitGroup
		mu         sync.Mutex
		held, sold int
		unexpected []error
		start      = make(chan struct{})
	)
	for i := range buyers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := e.svc.Enroll.RedeemCheckoutLink(context.Background(), tokens[i], models.ClientInfo{IP: "198.51.100.1"})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				held++
			case models.IsCode(err, "sold_out"):
				sold++
			default:
				unexpected = append(unexpected, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(unexpected) > 0 {
		t.Fatalf("%d unexpected errors, first: %v", len(unexpected), unexpected[0])
	}
	if held != 20 || sold != buyers-20 {
		t.Fatalf("holds/sold_out = %d/%d, want 20/%d", held, sold, buyers-20)
	}
	if paid, h := e.seats(t, c.ID); paid != 0 || h != 20 {
		t.Fatalf("seats paid/held = %d/%d, want 0/20", paid, h)
	}
	if n := e.count(t, "enrollments", "status = ? AND seat = ?", enroll.EnrollmentPending, enroll.SeatHeld); n != 20 {
		t.Fatalf("pending holds = %d, want 20", n)
	}
	if n := e.count(t, "enrollments", ""); n != 20 {
		t.Fatalf("enrollment rows = %d, want 20 (losers leave nothing behind)", n)
	}
	if creates, _, _, _ := e.gw.Calls(); creates != 20 {
		t.Fatalf("sessions created = %d, want 20", creates)
	}
}

func checkoutOutbox(t *testing.T, e *checkoutEnv, template, email string) []models.OutboxMessage {
	t.Helper()
	var msgs []models.OutboxMessage
	if err := e.db.Where("template = ? AND to_email = ?", template, email).Find(&msgs).Error; err != nil {
		t.Fatal(err)
	}
	return msgs
}

func TestWaitlistGetsTheSeatOfAnExpiredHold(t *testing.T) {
	e := newCheckoutEnv(t)
	ctx := context.Background()
	c := e.cohort(t, 1)
	first := e.checkout(t, c.ID, "first@example.com")
	if err := e.svc.Enroll.JoinWaitlistNow(ctx, c.ID, "Bea@Example.com", "Bea", models.ClientInfo{}); err != nil {
		t.Fatal(err)
	}
	// Joining twice keeps one place in the queue.
	if err := e.svc.Enroll.JoinWaitlistNow(ctx, c.ID, "bea@example.com", "Bea", models.ClientInfo{}); err != nil {
		t.Fatal(err)
	}
	if n := e.count(t, "enrollments", "status = ?", enroll.EnrollmentWaitlisted); n != 1 {
		t.Fatalf("waitlisted = %d, want 1", n)
	}
	if msgs := checkoutOutbox(t, e, enroll.TemplateWaitlistOffer, "bea@example.com"); len(msgs) != 0 {
		t.Fatalf("offer sent while the seat is held")
	}

	// The first checkout lapses at Stripe; the sweeper learns it and the seat
	// goes to Bea for 24 hours.
	e.gw.ExpireCheckoutSession(ctx, *first.Enrollment.CheckoutSessionID)
	e.clock.Advance(enroll.CheckoutHoldTTL + enroll.HoldSweepGrace + time.Second)
	if n, err := e.svc.Enroll.SweepHolds(ctx); err != nil || n != 1 {
		t.Fatalf("sweep = %d, %v; want 1", n, err)
	}
	if st := e.enrollment(t, first.Enrollment.ID).Status; st != enroll.EnrollmentExpired {
		t.Fatalf("first hold = %s, want expired", st)
	}
	var bea enroll.Enrollment
	if err := e.db.Where("cohort_id = ? AND status = ?", c.ID, enroll.EnrollmentPending).Take(&bea).Error; err != nil {
		t.Fatalf("no pending offer: %v", err)
	}
	now := e.clock.Now()
	if bea.OfferedAt == nil || !bea.HoldExpiresAt.Equal(now.Add(enroll.WaitlistOfferTTL)) || bea.CheckoutSessionID != nil {
		t.Fatalf("offer = %+v, want a 24h hold with no session yet", bea)
	}
	msgs := checkoutOutbox(t, e, enroll.TemplateWaitlistOffer, "bea@example.com")
	if len(msgs) != 1 || msgs[0].Data["enrollment_id"] != bea.ID.String() {
		t.Fatalf("offer emails = %+v", msgs)
	}
	if _, held := e.seats(t, c.ID); held != 1 {
		t.Fatalf("seats held = %d, want Bea's offer", held)
	}

	// She follows the offer's link: her offer is resumed with a session
	// for it.
	res, err := e.svc.Enroll.RedeemCheckoutLinkAccepting(ctx, offerLink(t, e, "bea@example.com"), true, models.ClientInfo{})
	if err != nil {
		t.Fatalf("redeem the offer: %v", err)
	}
	if res.Created || res.Enrollment.ID != bea.ID || res.CheckoutURL == "" || !res.ExpiresAt.Equal(*bea.HoldExpiresAt) {
		t.Fatalf("offer checkout = %+v", res)
	}
	creates := e.gw.Creates()
	last := creates[len(creates)-1]
	if !last.ExpiresAt.Equal(*bea.HoldExpiresAt) || last.IdempotencyKey != "checkout:"+bea.ID.String() {
		t.Fatalf("offer session request = %+v", last)
	}
	if n := e.count(t, "consents", "participant_id = ? AND kind = ?", bea.ParticipantID, models.ConsentDisclaimer); n != 1 {
		t.Fatalf("disclaimer consents = %d, want recorded at checkout", n)
	}
}

func TestWaitlistOfferLapsesToTheNextWoman(t *testing.T) {
	e := newCheckoutEnv(t)
	ctx := context.Background()
	c := e.cohort(t, 1)
	admin := e.coach(t, "admin@example.com", people.RoleAdmin)
	gift, err := e.svc.Enroll.AddComplimentary(ctx, admin, c.ID, "ada@example.com", "Ada")
	if err != nil {
		t.Fatal(err)
	}
	for _, email := range []string{"bea@example.com", "cat@example.com"} {
		if err := e.svc.Enroll.JoinWaitlistNow(ctx, c.ID, email, "W "+email[:3], models.ClientInfo{}); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(time.Second) // a queue ordered by arrival
	}

	// The coach cancels Ada: Bea is offered the seat.
	cancelled, err := e.svc.Enroll.CancelEnrollment(ctx, admin, gift.ID)
	if err != nil || cancelled.Status != enroll.EnrollmentCancelled {
		t.Fatalf("cancel = %+v, %v", cancelled, err)
	}
	if len(checkoutOutbox(t, e, enroll.TemplateWaitlistOffer, "bea@example.com")) != 1 {
		t.Fatal("Bea was not offered the freed seat")
	}
	if len(checkoutOutbox(t, e, enroll.TemplateWaitlistOffer, "cat@example.com")) != 0 {
		t.Fatal("Cat was offered a seat out of turn")
	}

	// Nothing moves while Bea's 24 hours run...
	e.clock.Advance(enroll.WaitlistOfferTTL - time.Minute)
	if n, err := e.svc.Enroll.SweepHolds(ctx); err != nil || n != 0 {
		t.Fatalf("sweep before the offer lapsed = %d, %v", n, err)
	}
	// ...then the seat passes to Cat.
	e.clock.Advance(2 * time.Minute)
	if n, err := e.svc.Enroll.SweepHolds(ctx); err != nil || n != 1 {
		t.Fatalf("sweep after the offer lapsed = %d, %v; want 1", n, err)
	}
	if len(checkoutOutbox(t, e, enroll.TemplateWaitlistOffer, "cat@example.com")) != 1 {
		t.Fatal("Cat was not offered the seat after Bea's offer lapsed")
	}
	var statuses []string
	e.db.Raw(`SELECT e.status FROM enrollments e JOIN participants p ON p.id = e.participant_id WHERE e.cohort_id = ? ORDER BY p.email`, c.ID).Scan(&statuses)
	if strings.Join(statuses, ",") != "cancelled,expired,pending" {
		t.Fatalf("statuses ada,bea,cat = %v", statuses)
	}
	if _, held := e.seats(t, c.ID); held != 1 {
		t.Fatalf("seats held = %d, want Cat's offer", held)
	}
	// No provider call: offers are on our clock because we issued no session.
	if _, gets, expires, _ := e.gw.Calls(); gets+expires != 0 {
		t.Fatalf("provider asked about an offer without a session")
	}
}

func TestJoinWaitlist(t *testing.T) {
	ctx := context.Background()
	t.Run("free seat is offered at once", func(t *testing.T) {
		e := newCheckoutEnv(t)
		c := e.cohort(t, 2)
		if err := e.svc.Enroll.JoinWaitlistNow(ctx, c.ID, "bea@example.com", "Bea", models.ClientInfo{}); err != nil {
			t.Fatal(err)
		}
		if n := e.count(t, "enrollments", "status = ? AND offered_at IS NOT NULL", enroll.EnrollmentPending); n != 1 {
			t.Fatalf("pending offers = %d, want 1", n)
		}
		if len(checkoutOutbox(t, e, enroll.TemplateWaitlistOffer, "bea@example.com")) != 1 {
			t.Fatal("no offer email")
		}
	})
	t.Run("enrolled woman changes nothing", func(t *testing.T) {
		e := newCheckoutEnv(t)
		c := e.cohort(t, 2)
		res := e.checkout(t, c.ID, "ada@example.com")
		if err := e.svc.Enroll.JoinWaitlistNow(ctx, c.ID, "ada@example.com", "Ada", models.ClientInfo{}); err != nil {
			t.Fatal(err)
		}
		if n := e.count(t, "enrollments", ""); n != 1 {
			t.Fatalf("enrollments = %d, want 1", n)
		}
		if st := e.enrollment(t, res.Enrollment.ID).Status; st != enroll.EnrollmentPending {
			t.Fatalf("status = %s", st)
		}
	})
	refusals := []struct {
		name                   string
		status                 enroll.CohortStatus
		email, applicant, code string
	}{
		{"draft", enroll.CohortDraft, "bea@example.com", "Bea", "not_found"},
		{"cancelled", enroll.CohortCancelled, "bea@example.com", "Bea", "enrollment_closed"},
		{"bad email", enroll.CohortOpen, "bea", "Bea", "validation_failed"},
		{"empty name", enroll.CohortOpen, "bea@example.com", "", "validation_failed"},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			e := newCheckoutEnv(t)
			c := e.cohort(t, 2, func(c *enroll.Cohort) { c.Status = tc.status })
			modelstest.WantCode(t, e.svc.Enroll.JoinWaitlistNow(ctx, c.ID, tc.email, tc.applicant, models.ClientInfo{}), tc.code)
			if n := e.count(t, "enrollments", ""); n != 0 {
				t.Fatalf("enrollments = %d, want none", n)
			}
		})
	}
}

func TestAddComplimentary(t *testing.T) {
	ctx := context.Background()
	e := newCheckoutEnv(t)
	c := e.cohort(t, 1)
	other := e.cohort(t, 1)
	lead := e.coach(t, "lead@example.com", people.RoleCoach, c.ID)
	stranger := e.coach(t, "stranger@example.com", people.RoleCoach, other.ID)

	_, err := e.svc.Enroll.AddComplimentary(ctx, stranger, c.ID, "ada@example.com", "Ada")
	modelstest.WantCode(t, err, "not_found")
	_, err = e.svc.Enroll.AddComplimentary(ctx, lead, c.ID, "ada", "Ada")
	modelstest.WantCode(t, err, "validation_failed")

	d, err := e.svc.Enroll.AddComplimentary(ctx, lead, c.ID, "Ada@Example.com", "Ada")
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != enroll.EnrollmentActive || !d.Complimentary || d.Email != "ada@example.com" || d.Name != "Ada" || d.AmountPaidCents != 0 {
		t.Fatalf("complimentary = %+v", d)
	}
	if n := e.count(t, "access_grants", "enrollment_id = ? AND revoked_at IS NULL", d.ID); n != 1 {
		t.Fatalf("access grants = %d, want 1", n)
	}
	if len(checkoutOutbox(t, e, enroll.TemplateEnrollmentWelcome, "ada@example.com")) != 1 {
		t.Fatal("no welcome email")
	}
	_, err = e.svc.Enroll.AddComplimentary(ctx, lead, c.ID, "ada@example.com", "Ada")
	modelstest.WantCode(t, err, "already_enrolled")
	_, err = e.svc.Enroll.AddComplimentary(ctx, lead, c.ID, "bea@example.com", "Bea")
	modelstest.WantCode(t, err, "sold_out")
	if paid, _ := e.seats(t, c.ID); paid != 1 {
		t.Fatalf("seats paid = %d, want 1", paid)
	}
	if n := e.count(t, "enrollments", "cohort_id = ?", c.ID); n != 1 {
		t.Fatalf("enrollments = %d, want 1", n)
	}
}

func TestCancelEnrollment(t *testing.T) {
	ctx := context.Background()
	e := newCheckoutEnv(t)
	c := e.cohort(t, 2)
	admin := e.coach(t, "admin@example.com", people.RoleAdmin)
	stranger := e.coach(t, "stranger@example.com", people.RoleCoach)
	gift, err := e.svc.Enroll.AddComplimentary(ctx, admin, c.ID, "ada@example.com", "Ada")
	if err != nil {
		t.Fatal(err)
	}
	hold := e.checkout(t, c.ID, "bea@example.com")

	_, err = e.svc.Enroll.CancelEnrollment(ctx, stranger, gift.ID)
	modelstest.WantCode(t, err, "not_found")
	_, err = e.svc.Enroll.CancelEnrollment(ctx, admin, uuid.New())
	modelstest.WantCode(t, err, "not_found")

	for range 2 { // idempotent
		d, err := e.svc.Enroll.CancelEnrollment(ctx, admin, gift.ID)
		if err != nil || d.Status != enroll.EnrollmentCancelled {
			t.Fatalf("cancel = %+v, %v", d, err)
		}
	}
	if n := e.count(t, "access_grants", "enrollment_id = ? AND revoked_at IS NULL", gift.ID); n != 0 {
		t.Fatal("access not revoked")
	}
	if paid, held := e.seats(t, c.ID); paid != 0 || held != 1 {
		t.Fatalf("seats paid/held = %d/%d, want 0/1", paid, held)
	}

	// Cancelling a checkout in progress closes it at the provider too.
	if _, err := e.svc.Enroll.CancelEnrollment(ctx, admin, hold.Enrollment.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, expires, _ := e.gw.Calls(); expires != 1 {
		t.Fatalf("sessions expired = %d, want 1", expires)
	}
	if _, held := e.seats(t, c.ID); held != 0 {
		t.Fatalf("seats held = %d, want 0", held)
	}
}

// paidEnrollment runs a checkout to completion through the sweeper.
func (e *checkoutEnv) paidEnrollment(t *testing.T, cohortID uuid.UUID, email string) *enroll.Enrollment {
	t.Helper()
	res := e.checkout(t, cohortID, email)
	e.gw.Complete(t, *res.Enrollment.CheckoutSessionID, true)
	e.clock.Advance(enroll.CheckoutHoldTTL + enroll.HoldSweepGrace + time.Second)
	if _, err := e.svc.Enroll.SweepHolds(context.Background()); err != nil {
		t.Fatal(err)
	}
	en := e.enrollment(t, res.Enrollment.ID)
	if en.Status != enroll.EnrollmentActive {
		t.Fatalf("status = %s, want active", en.Status)
	}
	return en
}

func TestRequestRefund(t *testing.T) {
	ctx := context.Background()
	e := newCheckoutEnv(t)
	c := e.cohort(t, 3)
	lead := e.coach(t, "lead@example.com", people.RoleCoach, c.ID)
	stranger := e.coach(t, "stranger@example.com", people.RoleCoach)
	en := e.paidEnrollment(t, c.ID, "ada@example.com")
	gift, err := e.svc.Enroll.AddComplimentary(ctx, lead, c.ID, "bea@example.com", "Bea")
	if err != nil {
		t.Fatal(err)
	}

	modelstest.WantCode(t, e.svc.Enroll.RequestRefund(ctx, stranger, en.ID, 0), "not_found")
	modelstest.WantCode(t, e.svc.Enroll.RequestRefund(ctx, lead, gift.ID, 0), "not_refundable")
	modelstest.WantCode(t, e.svc.Enroll.RequestRefund(ctx, lead, en.ID, 49701), "validation_failed")
	modelstest.WantCode(t, e.svc.Enroll.RequestRefund(ctx, lead, en.ID, -1), "validation_failed")
	if _, _, _, refunds := e.gw.Calls(); refunds != 0 {
		t.Fatalf("refused refunds reached the provider")
	}

	// A double click sends the same idempotency key: one refund at Stripe.
	for range 2 {
		if err := e.svc.Enroll.RequestRefund(ctx, lead, en.ID, 0); err != nil {
			t.Fatal(err)
		}
	}
	want := enroll.RefundRequest{PaymentIntentID: *en.PaymentIntentID, AmountCents: 49700, IdempotencyKey: fmt.Sprintf("refund:%s:49700:0", en.ID)}
	if refunds := e.gw.Refunds(); len(refunds) != 2 || refunds[0] != want || refunds[1] != want {
		t.Fatalf("refunds = %+v, want twice %+v", refunds, want)
	}
	// The state waits for the provider's event.
	if st := e.enrollment(t, en.ID).Status; st != enroll.EnrollmentActive {
		t.Fatalf("status = %s, want active until charge.refunded", st)
	}

	e.gw.Fail(enrolltest.Refund, errors.New("stripe: 500"))
	modelstest.WantCode(t, e.svc.Enroll.RequestRefund(ctx, lead, en.ID, 100), "payment_provider_error")
}

func TestListCohortEnrollments(t *testing.T) {
	ctx := context.Background()
	e := newCheckoutEnv(t)
	c := e.cohort(t, 5)
	lead := e.coach(t, "lead@example.com", people.RoleCoach, c.ID)
	stranger := e.coach(t, "stranger@example.com", people.RoleCoach)
	for _, email := range []string{"a@example.com", "b@example.com", "c@example.com"} {
		e.checkout(t, c.ID, email)
		e.clock.Advance(time.Second)
	}
	_, err := e.svc.Enroll.ListCohortEnrollments(ctx, stranger, c.ID, models.PageParams{})
	modelstest.WantCode(t, err, "not_found")

	var emails []string
	page := models.PageParams{Limit: 2}
	for {
		p, err := e.svc.Enroll.ListCohortEnrollments(ctx, lead, c.ID, page)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range p.Items {
			emails = append(emails, d.Email)
		}
		if p.NextCursor == nil {
			break
		}
		page.Cursor = *p.NextCursor
	}
	if strings.Join(emails, ",") != "a@example.com,b@example.com,c@example.com" {
		t.Fatalf("emails = %v", emails)
	}
}

// A new hold is written whole or not at all: every refusal (sold out, the
// rate limit) leaves no participant, consent, enrollment, seat or rate-limit
// hit behind, a returning woman keeps her one participant row, and her
// double click on a cohort she just filled still finds her hold.
func TestStartCheckoutWritesAHoldWholeOrNothing(t *testing.T) {
	ctx := context.Background()
	e := newCheckoutEnv(t)
	e.svc = domain.New(domain.Deps{DB: e.db, Clock: e.clock, Payments: e.gw, AppBaseURL: "https://grace.test",
		Limits: &models.Limits{CheckoutPerIP: models.RateLimit{Max: 2, Window: 15 * time.Minute}}})
	c := e.cohort(t, 1)
	other := e.cohort(t, 5)
	from := func(ip string) models.ClientInfo { return models.ClientInfo{IP: ip, UserAgent: "test"} }
	hits := func(ip string) int {
		t.Helper()
		var n []int
		if err := e.db.Raw(`SELECT hits FROM rate_limits WHERE key = ?`, models.RateLimitKey("checkout:ip:"+ip)).Scan(&n).Error; err != nil {
			t.Fatal(err)
		}
		if len(n) == 0 {
			return 0
		}
		return n[0]
	}
	snapshot := func() string {
		t.Helper()
		paid, held := e.seats(t, c.ID)
		return fmt.Sprintf("participants=%d consents=%d enrollments=%d seats=%d/%d", e.count(t, "participants", ""),
			e.count(t, "consents", ""), e.count(t, "enrollments", ""), paid, held)
	}

	// A returning woman (she signed up elsewhere before) is found, not copied.
	if err := e.db.Create(&people.Participant{Email: "ada@example.com", Name: "Ada", Timezone: "UTC"}).Error; err != nil {
		t.Fatal(err)
	}
	link, err := e.svc.Enroll.CheckoutLinkFor(ctx, c.ID, checkoutBuyer("ada@example.com"), from("203.0.113.1"))
	if err != nil || link == "" {
		t.Fatalf("checkout link = %q, %v", link, err)
	}
	first, err := e.svc.Enroll.RedeemCheckoutLink(ctx, link, from("203.0.113.1"))
	if err != nil || !first.Created {
		t.Fatalf("first checkout = %+v, %v", first, err)
	}
	if n := e.count(t, "participants", "email = ?", "ada@example.com"); n != 1 {
		t.Fatalf("participants named ada = %d, want 1", n)
	}
	if hits("203.0.113.1") != 1 {
		t.Fatalf("hits = %d, want the hold counted", hits("203.0.113.1"))
	}

	// Sold out: nothing at all, not even the attempt's hit.
	before := snapshot()
	_, err = e.svc.Enroll.CheckoutNow(ctx, c.ID, checkoutBuyer("bea@example.com"), from("203.0.113.2"))
	modelstest.WantCode(t, err, "sold_out")
	if after := snapshot(); after != before || hits("203.0.113.2") != 0 {
		t.Fatalf("sold_out wrote: %s -> %s, hits %d", before, after, hits("203.0.113.2"))
	}

	// The full cohort's form is sold out for her too (public state), and
	// writes nothing; her double click on her link finds her hold.
	_, err = e.svc.Enroll.CheckoutNow(ctx, c.ID, checkoutBuyer("ada@example.com"), from("203.0.113.1"))
	modelstest.WantCode(t, err, "sold_out")
	if after := snapshot(); after != before {
		t.Fatalf("her sold_out form wrote: %s -> %s", before, after)
	}
	again, err := e.svc.Enroll.RedeemCheckoutLink(ctx, link, from("203.0.113.1"))
	if err != nil || again.Created || again.Enrollment.ID != first.Enrollment.ID || again.CheckoutURL != first.CheckoutURL {
		t.Fatalf("double click on a full cohort = %+v, %v; want her hold resumed", again, err)
	}

	// Past the limit: refused, and the refusal is not counted.
	if _, err := e.svc.Enroll.CheckoutNow(ctx, other.ID, checkoutBuyer("cat@example.com"), from("203.0.113.1")); idemCodeOf(err) != "rate_limited" {
		t.Fatalf("third hold from one address: %v, want rate_limited", err)
	}
	if n := hits("203.0.113.1"); n != 2 {
		t.Fatalf("hits = %d, want 2 (a refused attempt rolls back)", n)
	}
	// Her form's task wrote her participant row and sent her link; the
	// refused hold wrote no place of hers.
	if n := e.count(t, "enrollments", "participant_id IN (SELECT id FROM participants WHERE email = ?)", "cat@example.com"); n != 0 {
		t.Fatalf("a rate-limited checkout wrote her enrollment")
	}
	if _, held := e.seats(t, other.ID); held != 0 {
		t.Fatalf("a rate-limited checkout held a seat")
	}
}

func idemCodeOf(err error) string {
	if de, ok := models.AsError(err); ok {
		return de.Code
	}
	return fmt.Sprint(err)
}

package api_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/grace-coaching/grace/api"
	"github.com/grace-coaching/grace/api/apitest"
	"github.com/grace-coaching/grace/api/stripe"
	"github.com/grace-coaching/grace/api/stripe/stripetest"
	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/domain"
	"github.com/grace-coaching/grace/models/enroll"
	"github.com/grace-coaching/grace/models/enroll/enrolltest"
	"github.com/grace-coaching/grace/models/modelstest"
)

var (
	enrSpecOnce sync.Once
	enrSpec     *apitest.SpecChecker
	enrSpecErr  error
)

// enrEnv boots the API with payments through stripe-mock (so each request
// is checked against Stripe's API), behind the shared fake that records
// what was asked, can fail, and stands in for Stripe's state, which the
// stateless mock cannot keep.
func enrEnv(t *testing.T) (*apitest.Env, *enrolltest.Gateway) {
	t.Helper()
	client, err := stripe.New(stripe.Config{SecretKey: "sk_test_grace", APIURL: stripetest.StartMock(t)})
	if err != nil {
		t.Fatal(err)
	}
	gw := enrolltest.New()
	gw.Next = client
	db := modelstest.NewDB(t)
	clock := models.NewFakeClock(modelstest.Start)
	svc := domain.New(domain.Deps{DB: db, Clock: clock, Payments: gw, AppBaseURL: "https://grace.test"})
	enrSpecOnce.Do(func() { enrSpec, enrSpecErr = apitest.NewSpecChecker(api.OpenAPISpec()) })
	if enrSpecErr != nil {
		t.Fatalf("load api/openapi.yaml: %v", enrSpecErr)
	}
	return &apitest.Env{DB: db, Clock: clock, Svc: svc, Echo: api.New(api.Config{Service: svc}), Spec: enrSpec}, gw
}

// enrCohort inserts an open cohort (cohort CRUD is tested elsewhere).
func enrCohort(t *testing.T, env *apitest.Env, capacity int, mod ...func(*enroll.Cohort)) *enroll.Cohort {
	t.Helper()
	p := env.Program(t, "p-"+uuid.NewString()[:8], catalog.ProgramPublished, false)
	now := env.Clock.Now()
	c := &enroll.Cohort{ProgramID: p.ID, Name: "Spring circle", StartsAt: now.Add(30 * 24 * time.Hour), EndsAt: now.Add(60 * 24 * time.Hour),
		Timezone: "Europe/Berlin", Capacity: capacity, PriceCents: 49700, Currency: "EUR", Status: enroll.CohortOpen}
	for _, m := range mod {
		m(c)
	}
	if err := env.DB.Create(c).Error; err != nil {
		t.Fatalf("create cohort: %v", err)
	}
	return c
}

func enrSeats(t *testing.T, env *apitest.Env, cohortID uuid.UUID) (paid, held int) {
	t.Helper()
	var c enroll.Cohort
	if err := env.DB.Where("id = ?", cohortID).Take(&c).Error; err != nil {
		t.Fatal(err)
	}
	return c.SeatsPaid, c.SeatsHeld
}

type enrCheckoutBody struct {
	EnrollmentID string    `json:"enrollment_id"`
	CheckoutURL  string    `json:"checkout_url"`
	ExpiresAt    time.Time `json:"expires_at"`
}

func enrBuyer(email string) map[string]any {
	return map[string]any{"email": email, "name": "Ada", "disclaimer_accepted": true, "marketing_consent": false}
}

// enrRows counts every table a refused write must leave alone.
func enrRows(t *testing.T, env *apitest.Env) string {
	t.Helper()
	var parts []string
	for _, table := range []string{"enrollments", "participants", "consents", "outbox", "access_grants", "tasks", "checkout_links"} {
		parts = append(parts, fmt.Sprintf("%s=%d", table, env.Count(t, table)))
	}
	var seats []int
	env.DB.Raw(`SELECT seats_paid + seats_held FROM cohorts ORDER BY id`).Scan(&seats)
	return strings.Join(parts, " ") + fmt.Sprint(" seats=", seats)
}

type enrBadInput struct {
	name   string
	body   any
	status int
	code   string
	field  string
}

// enrBadInputs are the refusals every write route owes, then its own.
func enrBadInputs(own ...enrBadInput) []enrBadInput {
	cases := []enrBadInput{
		{name: "malformed json", body: `{"email": `, status: 400, code: "malformed_json"},
		{name: "not an object", body: `[1]`, status: 400, code: "malformed_json"},
		{name: "unknown field", body: `{"email": "ada@example.com", "coupon": "FREE"}`, status: 400, code: "unknown_field"},
		{name: "over 1 MiB", body: `{"name": "` + strings.Repeat("a", 1<<20) + `"}`, status: 413, code: "body_too_large"},
	}
	for _, c := range own {
		if c.status == 0 {
			c.status, c.code = 422, "validation_failed"
		}
		cases = append(cases, c)
	}
	return cases
}

func enrCheckRefusals(t *testing.T, env *apitest.Env, path string, cases []enrBadInput, opts ...apitest.Option) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := enrRows(t, env)
			p := env.Do(t, "POST", path, tc.body, opts...).ExpectProblem(t, tc.status, tc.code)
			if tc.field != "" && !slices.ContainsFunc(p.Errors, func(e struct {
				Field   string `json:"field"`
				Message string `json:"message"`
			}) bool {
				return e.Field == tc.field
			}) {
				t.Errorf("errors %+v do not name %q", p.Errors, tc.field)
			}
			if after := enrRows(t, env); after != before {
				t.Errorf("a refused request changed data:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

func TestCheckoutHoldsOneSeatAndRetriesFindIt(t *testing.T) {
	env, gw := enrEnv(t)
	c := enrCohort(t, env, 5)

	// The form answers 202; her click on the emailed link holds the seat.
	token := env.CheckoutToken(t, c.ID, enrBuyer("Ada@Example.com"))
	if _, held := enrSeats(t, env, c.ID); held != 0 {
		t.Fatalf("seats held after the form = %d, want 0: only her link takes one", held)
	}
	var first enrCheckoutBody
	env.Do(t, "POST", "/v1/checkout-links/"+token, nil).Expect(t, 201).JSON(t, &first)
	if first.CheckoutURL == "" || !first.ExpiresAt.Equal(env.Clock.Now().Add(31*time.Minute)) {
		t.Fatalf("checkout = %+v", first)
	}
	var en enroll.Enrollment
	if err := env.DB.Where("id = ?", first.EnrollmentID).Take(&en).Error; err != nil {
		t.Fatal(err)
	}
	if en.Status != enroll.EnrollmentPending || en.Seat != enroll.SeatHeld || en.CheckoutSessionID == nil || !strings.HasPrefix(*en.CheckoutSessionID, "cs_") {
		t.Fatalf("enrollment = %+v", en)
	}
	var consents []models.Consent
	env.DB.Where("participant_id = ?", en.ParticipantID).Order("kind").Find(&consents)
	// The disclaimer is accepted on the form. Her marketing no records
	// nothing (an anonymous form's answer withdraws nothing) and asks her
	// nothing (double opt-in).
	if len(consents) != 1 || consents[0].Kind != models.ConsentDisclaimer || !consents[0].Granted {
		t.Fatalf("consents = %+v, want the disclaimer granted alone", consents)
	}
	if n := env.Count(t, "marketing_optins"); n != 0 {
		t.Fatalf("marketing opt-in requests = %d after a no, want 0", n)
	}
	if req := gw.Creates()[0]; req.IdempotencyKey != "checkout:"+first.EnrollmentID || req.AmountCents != 49700 || req.CustomerEmail != "ada@example.com" {
		t.Fatalf("checkout session request = %+v", req)
	}

	// A double click (or a retry after a dropped response) gets the same
	// hold and the same page: 200, never a second seat; and so does the
	// link of a second form she filled in.
	var again enrCheckoutBody
	env.Do(t, "POST", "/v1/checkout-links/"+token, nil).Expect(t, 200).JSON(t, &again)
	if again != first {
		t.Fatalf("retry = %+v, want %+v", again, first)
	}
	var second enrCheckoutBody
	env.Checkout(t, c.ID, enrBuyer("ada@example.com")).Expect(t, 200).JSON(t, &second)
	if second != first {
		t.Fatalf("second form's link = %+v, want %+v", second, first)
	}
	if _, held := enrSeats(t, env, c.ID); held != 1 {
		t.Fatalf("seats held = %d, want 1", held)
	}
	if n := env.Count(t, "enrollments"); n != 1 {
		t.Fatalf("enrollments = %d, want 1", n)
	}
}

func TestCheckoutRefusals(t *testing.T) {
	env, _ := enrEnv(t)
	full := enrCohort(t, env, 1)
	env.Checkout(t, full.ID, enrBuyer("first@example.com"), apitest.FromIP("198.51.100.1")).Expect(t, 201)
	past := env.Clock.Now().Add(-time.Hour)
	closed := enrCohort(t, env, 5, func(c *enroll.Cohort) { c.EnrollmentClosesAt = &past })
	draft := enrCohort(t, env, 5, func(c *enroll.Cohort) { c.Status = enroll.CohortDraft })

	tests := []struct {
		name   string
		path   string
		status int
		code   string
	}{
		{"sold out", "/v1/cohorts/" + full.ID.String() + "/checkout", 409, "sold_out"},
		{"window closed", "/v1/cohorts/" + closed.ID.String() + "/checkout", 409, "enrollment_closed"},
		{"draft", "/v1/cohorts/" + draft.ID.String() + "/checkout", 404, "not_found"},
		{"unknown", "/v1/cohorts/" + uuid.NewString() + "/checkout", 404, "not_found"},
		{"malformed id", "/v1/cohorts/not-a-uuid/checkout", 404, "not_found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := enrRows(t, env)
			res := env.Do(t, "POST", tc.path, enrBuyer("ada@example.com"))
			res.ExpectProblem(t, tc.status, tc.code)
			if tc.code == "sold_out" {
				var p struct {
					WaitlistURL string `json:"waitlist_url"`
				}
				res.JSON(t, &p)
				if p.WaitlistURL != "/v1/cohorts/"+full.ID.String()+"/waitlist" {
					t.Fatalf("waitlist_url = %q", p.WaitlistURL)
				}
			}
			if after := enrRows(t, env); after != before {
				t.Fatalf("refused checkout changed data:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

func TestCheckoutBadInputWritesNothing(t *testing.T) {
	env, _ := enrEnv(t)
	c := enrCohort(t, env, 5)
	body := func(mod func(map[string]any)) map[string]any {
		b := enrBuyer("ada@example.com")
		mod(b)
		return b
	}
	enrCheckRefusals(t, env, "/v1/cohorts/"+c.ID.String()+"/checkout", enrBadInputs(
		enrBadInput{name: "disclaimer refused", body: body(func(b map[string]any) { b["disclaimer_accepted"] = false }), field: "disclaimer_accepted"},
		enrBadInput{name: "disclaimer missing", body: body(func(b map[string]any) { delete(b, "disclaimer_accepted") }), field: "disclaimer_accepted"},
		enrBadInput{name: "marketing missing", body: body(func(b map[string]any) { delete(b, "marketing_consent") }), field: "marketing_consent"},
		enrBadInput{name: "marketing not a bool", body: body(func(b map[string]any) { b["marketing_consent"] = "yes" }), field: "marketing_consent"},
		enrBadInput{name: "bad email", body: body(func(b map[string]any) { b["email"] = "ada@" }), field: "email"},
		enrBadInput{name: "empty name", body: body(func(b map[string]any) { b["name"] = " " }), field: "name"},
		enrBadInput{name: "long name", body: body(func(b map[string]any) { b["name"] = strings.Repeat("a", 201) }), field: "name"},
	))
}

func TestCheckoutWithoutPaymentsIsUnavailable(t *testing.T) {
	env := apitest.NewEnv(t)
	c := enrCohort(t, env, 5)
	before := enrRows(t, env)
	env.Do(t, "POST", "/v1/cohorts/"+c.ID.String()+"/checkout", enrBuyer("ada@example.com")).ExpectProblem(t, 503, "payments_unavailable")
	if after := enrRows(t, env); after != before {
		t.Fatalf("changed data:\nbefore %s\nafter  %s", before, after)
	}
}

// A free cohort enrols her at once, even with payments unconfigured, and
// answers like a checkout: checkout_url is where a paid one returns.
func TestCheckoutOfAFreeCohortEnrolsHer(t *testing.T) {
	env := apitest.NewEnv(t)
	c := enrCohort(t, env, 5, func(c *enroll.Cohort) { c.PriceCents = 0 })
	path := "/v1/cohorts/" + c.ID.String() + "/checkout"
	var got enrCheckoutBody
	token := env.CheckoutToken(t, c.ID, enrBuyer("ada@example.com"))
	env.Do(t, "POST", "/v1/checkout-links/"+token, nil).Expect(t, 201).JSON(t, &got)
	var en enroll.Enrollment
	if err := env.DB.Where("id = ?", got.EnrollmentID).Take(&en).Error; err != nil {
		t.Fatal(err)
	}
	if en.Status != enroll.EnrollmentActive || en.Seat != enroll.SeatPaid ||
		!strings.HasSuffix(got.CheckoutURL, "/checkout/success?enrollment="+en.ID.String()) || !got.ExpiresAt.Equal(c.EndsAt) {
		t.Fatalf("free checkout = %+v, enrollment %+v", got, en)
	}
	if paid, held := enrSeats(t, env, c.ID); paid != 1 || held != 0 {
		t.Fatalf("seats paid/held = %d/%d, want 1/0", paid, held)
	}
	// Her link again: she has her place. The form again: the same 202 as
	// for anyone, and an email saying she is enrolled, with no link.
	env.Do(t, "POST", "/v1/checkout-links/"+token, nil).ExpectProblem(t, 409, "already_enrolled")
	env.Do(t, "POST", path, enrBuyer("ada@example.com")).Expect(t, 202)
	env.RunTasks(t)
	if env.EmailData(t, "checkout_already_enrolled", "ada@example.com") == nil {
		t.Fatal("an enrolled address was not told it is enrolled")
	}
}

func TestCheckoutProviderFailureReleasesTheHold(t *testing.T) {
	env, gw := enrEnv(t)
	c := enrCohort(t, env, 1)
	gw.Fail(enrolltest.Create, fmt.Errorf("create checkout session: %w", enroll.ErrPaymentProvider))
	token := env.CheckoutToken(t, c.ID, enrBuyer("ada@example.com"))
	env.Do(t, "POST", "/v1/checkout-links/"+token, nil).ExpectProblem(t, 502, "payment_provider_error")
	if _, held := enrSeats(t, env, c.ID); held != 0 {
		t.Fatalf("seats held = %d, want the hold released", held)
	}
	// The freed seat is there for the retry.
	gw.Fail(enrolltest.Create, nil)
	env.Do(t, "POST", "/v1/checkout-links/"+token, nil).Expect(t, 201)
}

// The provider down for real (nothing listening): the adapter's error is
// mapped the same way.
func TestCheckoutProviderUnreachable(t *testing.T) {
	env, gw := enrEnv(t)
	dead, err := stripe.New(stripe.Config{SecretKey: "sk_test_grace", APIURL: "http://127.0.0.1:1", MaxNetworkRetries: new(int64)})
	if err != nil {
		t.Fatal(err)
	}
	gw.Next = dead
	c := enrCohort(t, env, 1)
	env.Checkout(t, c.ID, enrBuyer("ada@example.com")).ExpectProblem(t, 502, "payment_provider_error")
	if _, held := enrSeats(t, env, c.ID); held != 0 {
		t.Fatalf("seats held = %d, want 0", held)
	}
}

// Launch day through HTTP: thirty women click their checkout links at
// once for three seats. Exactly three hold one, the others are told it is
// sold out (with the waitlist), and nothing answers 5xx.
func TestCheckoutConcurrentBuyersNeverOversell(t *testing.T) {
	env, _ := enrEnv(t)
	c := enrCohort(t, env, 3)
	const buyers = 30
	tokens := make([]string, buyers)
	for i := range buyers {
		tokens[i] = env.CheckoutToken(t, c.ID, enrBuyer(fmt.Sprintf("b%02d@example.com", i)), apitest.FromIP(fmt.Sprintf("198.51.100.%d", i+1)))
	}
	statuses := make([]int, buyers)
	var wg sync.WaitGroup
	for i := range buyers {
		wg.Go(func() {
			res := env.Do(t, "POST", "/v1/checkout-links/"+tokens[i], nil, apitest.FromIP(fmt.Sprintf("198.51.100.%d", i+1)))
			statuses[i] = res.Status
		})
	}
	wg.Wait()
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	if count[201] != 3 || count[409] != buyers-3 {
		t.Fatalf("statuses = %v, want 3 x 201 and %d x 409", count, buyers-3)
	}
	if _, held := enrSeats(t, env, c.ID); held != 3 {
		t.Fatalf("seats held = %d, want 3", held)
	}
}

func TestWaitlistJoin(t *testing.T) {
	env, _ := enrEnv(t)
	full := enrCohort(t, env, 1)
	env.Checkout(t, full.ID, enrBuyer("first@example.com")).Expect(t, 201)
	path := "/v1/cohorts/" + full.ID.String() + "/waitlist"

	var body map[string]string
	env.Do(t, "POST", path, map[string]any{"email": "bea@example.com", "name": "Bea"}).Expect(t, 202).JSON(t, &body)
	if body["status"] != "accepted" {
		t.Fatalf("body = %v", body)
	}
	env.RunTasks(t)
	// Again, and by someone who holds a seat: the same answer, no new row.
	before := enrRows(t, env)
	for _, email := range []string{"bea@example.com", "first@example.com"} {
		env.Do(t, "POST", path, map[string]any{"email": email, "name": "X"}).Expect(t, 202)
	}
	env.RunTasks(t)
	if after := enrRows(t, env); after != before {
		t.Fatalf("repeat joins changed data:\nbefore %s\nafter  %s", before, after)
	}
	if n := env.Count(t, "enrollments"); n != 2 {
		t.Fatalf("enrollments = %d, want the hold and one waitlist place", n)
	}

	draft := enrCohort(t, env, 1, func(c *enroll.Cohort) { c.Status = enroll.CohortDraft })
	env.Do(t, "POST", "/v1/cohorts/"+draft.ID.String()+"/waitlist", map[string]any{"email": "bea@example.com", "name": "Bea"}).ExpectProblem(t, 404, "not_found")
	cancelled := enrCohort(t, env, 1, func(c *enroll.Cohort) { c.Status = enroll.CohortCancelled })
	env.Do(t, "POST", "/v1/cohorts/"+cancelled.ID.String()+"/waitlist", map[string]any{"email": "bea@example.com", "name": "Bea"}).ExpectProblem(t, 409, "enrollment_closed")

	enrCheckRefusals(t, env, path, enrBadInputs(
		enrBadInput{name: "bad email", body: map[string]any{"email": "bea", "name": "Bea"}, field: "email"},
		enrBadInput{name: "missing name", body: map[string]any{"email": "bea2@example.com"}, field: "name"},
		enrBadInput{name: "name not a string", body: map[string]any{"email": "bea2@example.com", "name": 7}, field: "name"},
	))
}

// enrPay fulfils a checkout the way the sweeper does when Stripe reports the
// session paid (the webhook path is tested with the webhooks).
func enrPay(t *testing.T, env *apitest.Env, gw *enrolltest.Gateway, enrollmentID string) {
	t.Helper()
	var en enroll.Enrollment
	if err := env.DB.Where("id = ?", enrollmentID).Take(&en).Error; err != nil {
		t.Fatal(err)
	}
	gw.SetSession(enroll.CheckoutSession{ID: *en.CheckoutSessionID, Status: enroll.SessionComplete, PaymentStatus: "paid",
		PaymentIntentID: "pi_" + strings.ReplaceAll(enrollmentID, "-", ""), AmountTotal: 49700, Currency: "EUR", EnrollmentID: enrollmentID})
	env.Clock.Advance(enroll.CheckoutHoldTTL + enroll.HoldSweepGrace + time.Second)
	if _, err := env.Svc.Enroll.SweepHolds(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := env.DB.Where("id = ?", enrollmentID).Take(&en).Error; err != nil || en.Status != enroll.EnrollmentActive {
		t.Fatalf("after payment: %+v, %v", en, err)
	}
}

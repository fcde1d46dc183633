package api_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/grace-coaching/grace/api/apitest"
	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/enroll"
	"github.com/grace-coaching/grace/models/people"
)

type enrEnrollment struct {
	ID                  string     `json:"id"`
	CohortID            string     `json:"cohort_id"`
	ParticipantID       string     `json:"participant_id"`
	Email               string     `json:"email"`
	Name                string     `json:"name"`
	Status              string     `json:"status"`
	AmountPaidCents     int64      `json:"amount_paid_cents"`
	AmountRefundedCents int64      `json:"amount_refunded_cents"`
	Currency            string     `json:"currency"`
	HoldExpiresAt       *time.Time `json:"hold_expires_at"`
	Complimentary       bool       `json:"complimentary"`
	Seat                string     `json:"seat"`
}

// enrLead makes a coach leading the cohort, and a coach of another cohort.
func enrLead(t *testing.T, env *apitest.Env, cohortID uuid.UUID) (lead, stranger string) {
	t.Helper()
	l, lt := env.Coach(t, "lead-"+cohortID.String()[:8]+"@example.com", people.RoleCoach)
	if err := env.DB.Create(&enroll.CohortCoach{CohortID: cohortID, CoachID: l.ID, Lead: true}).Error; err != nil {
		t.Fatal(err)
	}
	_, st := env.Coach(t, "stranger-"+cohortID.String()[:8]+"@example.com", people.RoleCoach)
	return lt, st
}

func TestComplimentaryEnrollment(t *testing.T) {
	env, _ := enrEnv(t)
	c := enrCohort(t, env, 1)
	lead, stranger := enrLead(t, env, c.ID)
	path := "/v1/admin/cohorts/" + c.ID.String() + "/enrollments"

	env.Do(t, "POST", path, map[string]any{"email": "ada@example.com", "name": "Ada"}).ExpectProblem(t, 401, "unauthorized")
	env.Do(t, "POST", path, map[string]any{"email": "ada@example.com", "name": "Ada"}, apitest.Token(stranger)).ExpectProblem(t, 404, "not_found")

	var got enrEnrollment
	env.Do(t, "POST", path, map[string]any{"email": "Ada@Example.com", "name": "Ada"}, apitest.Token(lead)).Expect(t, 201).JSON(t, &got)
	if got.Status != "active" || !got.Complimentary || got.Seat != "paid" || got.Email != "ada@example.com" || got.Name != "Ada" ||
		got.CohortID != c.ID.String() || got.HoldExpiresAt != nil || got.AmountPaidCents != 0 || got.Currency != "EUR" {
		t.Fatalf("enrollment = %+v", got)
	}
	if n := env.Count(t, "outbox"); n != 1 {
		t.Fatalf("outbox = %d, want the welcome email", n)
	}

	env.Do(t, "POST", path, map[string]any{"email": "ada@example.com", "name": "Ada"}, apitest.Token(lead)).ExpectProblem(t, 409, "already_enrolled")
	env.Do(t, "POST", path, map[string]any{"email": "bea@example.com", "name": "Bea"}, apitest.Token(lead)).ExpectProblem(t, 409, "sold_out")

	enrCheckRefusals(t, env, path, enrBadInputs(
		enrBadInput{name: "bad email", body: map[string]any{"email": "x", "name": "Bea"}, field: "email"},
		enrBadInput{name: "empty name", body: map[string]any{"email": "bea@example.com", "name": ""}, field: "name"},
		enrBadInput{name: "long name", body: map[string]any{"email": "bea@example.com", "name": strings.Repeat("n", 201)}, field: "name"},
	), apitest.Token(lead))
}

func TestListCohortEnrollments(t *testing.T) {
	env, _ := enrEnv(t)
	c := enrCohort(t, env, 2)
	lead, stranger := enrLead(t, env, c.ID)
	for i, email := range []string{"a@example.com", "b@example.com"} {
		env.Checkout(t, c.ID, enrBuyer(email), apitest.FromIP(fmt.Sprintf("198.51.100.%d", i+1))).Expect(t, 201)
		env.Clock.Advance(time.Second)
	}
	env.Do(t, "POST", "/v1/cohorts/"+c.ID.String()+"/waitlist", map[string]any{"email": "c@example.com", "name": "Cat"}).Expect(t, 202)
	env.RunTasks(t)

	path := "/v1/admin/cohorts/" + c.ID.String() + "/enrollments"
	env.Do(t, "GET", path, nil, apitest.Token(stranger)).ExpectProblem(t, 404, "not_found")
	env.Do(t, "GET", path+"?limit=0", nil, apitest.Token(lead)).ExpectProblem(t, 400, "invalid_query")

	var all []enrEnrollment
	next := path + "?limit=2"
	for next != "" {
		var page struct {
			Data       []enrEnrollment `json:"data"`
			NextCursor *string         `json:"next_cursor"`
		}
		env.Do(t, "GET", next, nil, apitest.Token(lead)).Expect(t, 200).JSON(t, &page)
		all = append(all, page.Data...)
		next = ""
		if page.NextCursor != nil {
			next = path + "?limit=2&cursor=" + *page.NextCursor
		}
	}
	var summary []string
	for _, e := range all {
		summary = append(summary, e.Email+":"+e.Status)
		if (e.Status == "pending") != (e.HoldExpiresAt != nil) {
			t.Errorf("%s: hold_expires_at = %v for status %s", e.Email, e.HoldExpiresAt, e.Status)
		}
	}
	if got := strings.Join(summary, ","); got != "a@example.com:pending,b@example.com:pending,c@example.com:waitlisted" {
		t.Fatalf("enrollments = %s", got)
	}
}

func TestCancelEnrollmentOffersTheSeat(t *testing.T) {
	env, _ := enrEnv(t)
	c := enrCohort(t, env, 1)
	lead, stranger := enrLead(t, env, c.ID)
	var gift enrEnrollment
	env.Do(t, "POST", "/v1/admin/cohorts/"+c.ID.String()+"/enrollments", map[string]any{"email": "ada@example.com", "name": "Ada"}, apitest.Token(lead)).
		Expect(t, 201).JSON(t, &gift)
	env.Do(t, "POST", "/v1/cohorts/"+c.ID.String()+"/waitlist", map[string]any{"email": "bea@example.com", "name": "Bea"}).Expect(t, 202)
	env.RunTasks(t)

	path := "/v1/admin/enrollments/" + gift.ID + "/cancel"
	env.Do(t, "POST", path, nil, apitest.Token(stranger)).ExpectProblem(t, 404, "not_found")
	env.Do(t, "POST", "/v1/admin/enrollments/"+uuid.NewString()+"/cancel", nil, apitest.Token(lead)).ExpectProblem(t, 404, "not_found")

	for range 2 { // cancelling again returns it unchanged
		var got enrEnrollment
		env.Do(t, "POST", path, nil, apitest.Token(lead)).Expect(t, 200).JSON(t, &got)
		if got.Status != "cancelled" || got.Seat != "none" {
			t.Fatalf("cancelled = %+v", got)
		}
	}
	if n := env.Count(t, "access_grants"); n != 1 {
		t.Fatalf("grants = %d", n)
	}
	var revoked int64
	env.DB.Table("access_grants").Where("revoked_at IS NOT NULL").Count(&revoked)
	if revoked != 1 {
		t.Fatal("access not revoked on cancel")
	}
	// Bea is offered the seat for 24 hours.
	var offers []models.OutboxMessage
	env.DB.Where("template = ? AND to_email = ?", enroll.TemplateWaitlistOffer, "bea@example.com").Find(&offers)
	if len(offers) != 1 {
		t.Fatalf("offers to Bea = %d, want 1", len(offers))
	}
	var bea enroll.Enrollment
	env.DB.Where("id = ?", offers[0].Data["enrollment_id"]).Take(&bea)
	if bea.Status != enroll.EnrollmentPending || !bea.HoldExpiresAt.Equal(env.Clock.Now().Add(24*time.Hour)) {
		t.Fatalf("offer = %+v", bea)
	}
	// The offer carries her checkout link, which opens a session for the
	// offer: 200; her address is in no URL.
	if _, inData := offers[0].Data["email"]; inData {
		t.Fatalf("the offer's data still carries her address: %v", offers[0].Data)
	}
	token, _ := offers[0].Data["token"].(string)
	var res enrCheckoutBody
	// A waitlist offer is her first booking step: she accepts the
	// disclaimer on it, and without that no seat is taken.
	env.Do(t, "POST", "/v1/checkout-links/"+token, nil).Expect(t, 422)
	env.Do(t, "POST", "/v1/checkout-links/"+token, map[string]any{"disclaimer_accepted": true}).Expect(t, 200).JSON(t, &res)
	if res.EnrollmentID != bea.ID.String() || res.CheckoutURL == "" {
		t.Fatalf("offer checkout = %+v", res)
	}

	// An enrollment that ended another way cannot be cancelled.
	env.DB.Exec(`UPDATE enrollments SET status = 'expired', seat = 'none', expired_at = now() WHERE id = ?`, bea.ID)
	env.Do(t, "POST", "/v1/admin/enrollments/"+bea.ID.String()+"/cancel", nil, apitest.Token(lead)).ExpectProblem(t, 409, "not_cancellable")
}

func TestRefundEnrollment(t *testing.T) {
	env, gw := enrEnv(t)
	c := enrCohort(t, env, 3)
	lead, stranger := enrLead(t, env, c.ID)
	var co enrCheckoutBody
	env.Checkout(t, c.ID, enrBuyer("ada@example.com")).Expect(t, 201).JSON(t, &co)
	enrPay(t, env, gw, co.EnrollmentID)
	var gift enrEnrollment
	env.Do(t, "POST", "/v1/admin/cohorts/"+c.ID.String()+"/enrollments", map[string]any{"email": "bea@example.com", "name": "Bea"}, apitest.Token(lead)).
		Expect(t, 201).JSON(t, &gift)

	path := "/v1/admin/enrollments/" + co.EnrollmentID + "/refund"
	env.Do(t, "POST", path, nil, apitest.Token(stranger)).ExpectProblem(t, 404, "not_found")
	env.Do(t, "POST", "/v1/admin/enrollments/"+gift.ID+"/refund", nil, apitest.Token(lead)).ExpectProblem(t, 409, "not_refundable")
	enrCheckRefusals(t, env, path, []enrBadInput{
		{name: "malformed json", body: `{"amount_cents": `, status: 400, code: "malformed_json"},
		{name: "unknown field", body: `{"amount_cents": 100, "reason": "x"}`, status: 400, code: "unknown_field"},
		{name: "over 1 MiB", body: `{"reason": "` + strings.Repeat("a", 1<<20) + `"}`, status: 413, code: "body_too_large"},
		{name: "zero", body: map[string]any{"amount_cents": 0}, status: 422, code: "validation_failed", field: "amount_cents"},
		{name: "not a number", body: map[string]any{"amount_cents": "all"}, status: 422, code: "validation_failed", field: "amount_cents"},
		{name: "more than paid", body: map[string]any{"amount_cents": 49701}, status: 422, code: "validation_failed", field: "amount_cents"},
	}, apitest.Token(lead))
	if refunds := gw.Refunds(); len(refunds) != 0 {
		t.Fatalf("refused refunds reached Stripe: %+v", refunds)
	}

	// Accepted: Stripe (the mock) is asked, with a key a double click repeats.
	for range 2 {
		var body map[string]string
		env.Do(t, "POST", path, map[string]any{"amount_cents": 1000}, apitest.Token(lead)).Expect(t, 202).JSON(t, &body)
		if body["status"] != "accepted" {
			t.Fatalf("body = %v", body)
		}
	}
	want := fmt.Sprintf("refund:%s:1000:0", co.EnrollmentID)
	if refunds := gw.Refunds(); len(refunds) != 2 || refunds[0].IdempotencyKey != want || refunds[1].IdempotencyKey != want || refunds[0].AmountCents != 1000 {
		t.Fatalf("refunds = %+v, want twice key %s", refunds, want)
	}
	// No body refunds the rest.
	env.Do(t, "POST", path, nil, apitest.Token(lead)).Expect(t, 202)
	refunds := gw.Refunds()
	if last := refunds[len(refunds)-1]; last.AmountCents != 49700 {
		t.Fatalf("full refund amount = %d", last.AmountCents)
	}
	// The enrollment changes only when Stripe's event arrives.
	var en enroll.Enrollment
	env.DB.Where("id = ?", co.EnrollmentID).Take(&en)
	if en.Status != enroll.EnrollmentActive {
		t.Fatalf("status = %s, want active until the webhook", en.Status)
	}
}

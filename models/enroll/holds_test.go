package enroll_test

import (
	"context"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/enroll"
	"github.com/grace-coaching/grace/models/modelstest"
	"github.com/grace-coaching/grace/models/people"
)

// holdRows is what a seat hold leaves behind for her in one cohort, with
// nothing that differs between two runs of the same fixture (ids, emails).
type holdRows struct {
	Code          string
	Created       bool
	ExpiresAt     time.Time
	Enrollments   int64
	Status        enroll.EnrollmentStatus
	Seat          enroll.Seat
	HoldExpiresAt *time.Time
	PaidAt        *time.Time
	Currency      string
	DisputeStatus enroll.DisputeStatus
	SeatsPaid     int
	SeatsHeld     int
	SeatsOverflow int
	Participants  string   // the names of participants with her email
	Consents      []string // kind, text version, granted, ip, user agent
	Grants        int64
	Emails        []string // templates queued to her
}

func (e *checkoutEnv) holdRows(t *testing.T, cohortID uuid.UUID, email string, res *enroll.CheckoutResult, err error) holdRows {
	t.Helper()
	var r holdRows
	if err != nil {
		r.Code = idemCodeOf(err)
	}
	if res != nil {
		r.Created, r.ExpiresAt = res.Created, res.ExpiresAt.UTC()
	}
	var en enroll.Enrollment
	modelstest.MustDo(t, e.db.Raw(`SELECT e.* FROM enrollments e JOIN participants p ON p.id = e.participant_id
		WHERE e.cohort_id = ? AND p.email = ? ORDER BY e.created_at DESC LIMIT 1`, cohortID, email).Scan(&en).Error)
	r.Status, r.Seat, r.Currency, r.DisputeStatus = en.Status, en.Seat, en.Currency, en.DisputeStatus
	r.HoldExpiresAt, r.PaidAt = utcPtr(en.HoldExpiresAt), utcPtr(en.PaidAt)
	modelstest.MustDo(t, e.db.Raw(`SELECT count(*) FROM enrollments WHERE cohort_id = ?`, cohortID).Scan(&r.Enrollments).Error)
	var c enroll.Cohort
	modelstest.MustDo(t, e.db.Where("id = ?", cohortID).Take(&c).Error)
	r.SeatsPaid, r.SeatsHeld, r.SeatsOverflow = c.SeatsPaid, c.SeatsHeld, c.SeatsOverflow
	modelstest.MustDo(t, e.db.Raw(`SELECT coalesce(string_agg(name, ',' ORDER BY name), '') FROM participants WHERE email = ?`, email).Scan(&r.Participants).Error)
	modelstest.MustDo(t, e.db.Raw(`
		SELECT c.kind || '/' || c.text_version || '/' || c.granted || '/' || coalesce(host(c.ip), '') || '/' || coalesce(c.user_agent, '')
		FROM consents c JOIN participants p ON p.id = c.participant_id
		WHERE p.email = ? AND c.program_id = ? ORDER BY 1`, email, c.ProgramID).Scan(&r.Consents).Error)
	modelstest.MustDo(t, e.db.Raw(`SELECT count(*) FROM access_grants g JOIN participants p ON p.id = g.participant_id
		WHERE p.email = ? AND g.revoked_at IS NULL`, email).Scan(&r.Grants).Error)
	modelstest.MustDo(t, e.db.Raw(`SELECT template FROM outbox WHERE to_email = ? ORDER BY template`, email).Scan(&r.Emails).Error)
	return r
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// The one-round-trip hold (newHoldSQL) and the transaction (holdSeat)
// decide the same rule twice. On the same fixtures, checkout as it runs
// (the fast path, then holdSeat if it declines) and holdSeat alone must
// leave the same rows and the same errors, and the fast path must either
// take the seat or decline having written nothing.
func TestHoldPathsAgree(t *testing.T) {
	ctx := context.Background()
	client := models.ClientInfo{IP: "203.0.113.9", UserAgent: "test"}
	e := newCheckoutEnv(t)
	now := e.clock.Now()
	holdFor := func(email string) func(t *testing.T, e *checkoutEnv, cohortID uuid.UUID, _ string) {
		return func(t *testing.T, e *checkoutEnv, cohortID uuid.UUID, _ string) {
			t.Helper()
			in := checkoutBuyer(email)
			in.Name = "Ada" // the same in both runs
			if _, err := e.svc.Enroll.HoldSeat(ctx, cohortID, in, client); err != nil {
				t.Fatalf("earlier hold: %v", err)
			}
		}
	}
	tests := []struct {
		name      string
		capacity  int
		cohort    func(*enroll.Cohort)
		before    func(t *testing.T, e *checkoutEnv, cohortID uuid.UUID, email string)
		marketing bool
		fast      bool   // the fast path takes it
		code      string // the error both give
	}{
		{name: "free seat", capacity: 5, fast: true},
		{name: "last seat", capacity: 1, fast: true},
		{name: "marketing consent", capacity: 5, marketing: true, fast: true},
		{name: "returning woman", capacity: 5, fast: true, before: func(t *testing.T, e *checkoutEnv, _ uuid.UUID, email string) {
			t.Helper()
			modelstest.MustDo(t, e.db.Create(&people.Participant{Email: email, Name: "Ada Earlier", Timezone: "Europe/Berlin"}).Error)
		}},
		{name: "sold out", capacity: 1, code: "sold_out", before: func(t *testing.T, e *checkoutEnv, cohortID uuid.UUID, email string) {
			t.Helper()
			holdFor("other-"+email)(t, e, cohortID, email)
		}},
		{name: "already holding", capacity: 5, before: func(t *testing.T, e *checkoutEnv, cohortID uuid.UUID, email string) {
			t.Helper()
			holdFor(email)(t, e, cohortID, email)
		}},
		{name: "free cohort", capacity: 5, cohort: func(c *enroll.Cohort) { c.PriceCents = 0 }},
		{name: "closed", capacity: 5, code: "enrollment_closed", cohort: func(c *enroll.Cohort) { c.Status = enroll.CohortClosed }},
		{name: "cancelled", capacity: 5, code: "enrollment_closed", cohort: func(c *enroll.Cohort) { c.Status = enroll.CohortCancelled }},
		{name: "draft", capacity: 5, code: "not_found", cohort: func(c *enroll.Cohort) { c.Status = enroll.CohortDraft }},
		{name: "not yet open", capacity: 5, code: "enrollment_closed", cohort: func(c *enroll.Cohort) {
			opens := now.Add(time.Hour)
			c.EnrollmentOpensAt = &opens
		}},
		{name: "window closed", capacity: 5, code: "enrollment_closed", cohort: func(c *enroll.Cohort) {
			closes := now.Add(-time.Hour)
			c.EnrollmentClosesAt = &closes
		}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mods []func(*enroll.Cohort)
			if tc.cohort != nil {
				mods = append(mods, tc.cohort)
			}
			run := func(path string, hold func(uuid.UUID, enroll.CheckoutInput) (*enroll.CheckoutResult, error)) holdRows {
				t.Helper()
				c := e.cohort(t, tc.capacity, mods...)
				email := fmt.Sprintf("ada-%d-%s@example.com", i, path)
				if tc.before != nil {
					tc.before(t, e, c.ID, email)
				}
				in := checkoutBuyer(email)
				in.Name, in.MarketingConsent = "Ada", tc.marketing
				res, err := hold(c.ID, in)
				return e.holdRows(t, c.ID, email, res, err)
			}
			tookFast := false
			asCheckout := run("checkout", func(id uuid.UUID, in enroll.CheckoutInput) (*enroll.CheckoutResult, error) {
				// Her participant exists before any hold: the form's task
				// wrote it when it emailed her link.
				modelstest.MustDo(t, e.svc.Enroll.EnsureParticipant(ctx, in))
				before := e.holdRows(t, id, in.Email, nil, nil)
				res, err := e.svc.Enroll.HoldNewSeat(ctx, id, in, client)
				if err != nil {
					t.Fatalf("fast path failed instead of declining: %v", err)
				}
				if res != nil {
					tookFast = true
					return res, nil
				}
				if after := e.holdRows(t, id, in.Email, nil, nil); !reflect.DeepEqual(after, before) {
					t.Fatalf("fast path declined but wrote:\nbefore %+v\nafter  %+v", before, after)
				}
				return e.svc.Enroll.HoldSeat(ctx, id, in, client)
			})
			txOnly := run("tx", func(id uuid.UUID, in enroll.CheckoutInput) (*enroll.CheckoutResult, error) {
				return e.svc.Enroll.HoldSeat(ctx, id, in, client)
			})
			if tookFast != tc.fast {
				t.Fatalf("fast path took it: %v, want %v", tookFast, tc.fast)
			}
			if asCheckout.Code != tc.code {
				t.Fatalf("code = %q, want %q", asCheckout.Code, tc.code)
			}
			if !reflect.DeepEqual(asCheckout, txOnly) {
				t.Fatalf("paths disagree:\ncheckout %+v\nholdSeat %+v", asCheckout, txOnly)
			}
		})
	}
}

// enrollments_live_key (migrations) and the Go list of live statuses must
// name the same statuses: a status live in one and not the other would let
// a woman hold two places, or find none where the index says she has one.
func TestLiveStatusesAreTheLiveKey(t *testing.T) {
	db := modelstest.NewDB(t)
	var def string
	modelstest.MustDo(t, db.Raw(`SELECT pg_get_indexdef('enrollments_live_key'::regclass)`).Scan(&def).Error)
	quoted := regexp.MustCompile(`'([a-z_]+)'`)
	names := func(s string) []string {
		var out []string
		for _, m := range quoted.FindAllStringSubmatch(s, -1) {
			out = append(out, m[1])
		}
		slices.Sort(out)
		return out
	}
	inIndex, inGo := names(def), names(enroll.LiveStatusesSQL)
	all := []enroll.EnrollmentStatus{enroll.EnrollmentPending, enroll.EnrollmentAwaitingPayment, enroll.EnrollmentActive,
		enroll.EnrollmentExpired, enroll.EnrollmentCancelled, enroll.EnrollmentRefunded, enroll.EnrollmentDisputed, enroll.EnrollmentWaitlisted}
	for _, st := range all {
		t.Run(string(st), func(t *testing.T) {
			if idx, gol := slices.Contains(inIndex, string(st)), slices.Contains(inGo, string(st)); idx != gol {
				t.Fatalf("live in the index: %v, in Go: %v (index: %s)", idx, gol, def)
			}
		})
	}
	for _, name := range inIndex {
		if !slices.Contains(all, enroll.EnrollmentStatus(name)) {
			t.Fatalf("the index names %q, which is no enrollment status (index: %s)", name, def)
		}
	}
}

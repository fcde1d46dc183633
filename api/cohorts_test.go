package api_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/grace-coaching/grace/api/apitest"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/enroll"
	"github.com/grace-coaching/grace/models/people"
)

// Helpers of the cohort tests carry a coh prefix: other features' tests
// share this package.

type cohCohort struct {
	ID                 string     `json:"id"`
	ProgramID          string     `json:"program_id"`
	Name               string     `json:"name"`
	StartsAt           time.Time  `json:"starts_at"`
	EndsAt             time.Time  `json:"ends_at"`
	Timezone           string     `json:"timezone"`
	Capacity           int        `json:"capacity"`
	PriceCents         int64      `json:"price_cents"`
	Currency           string     `json:"currency"`
	EnrollmentOpensAt  *time.Time `json:"enrollment_opens_at"`
	EnrollmentClosesAt *time.Time `json:"enrollment_closes_at"`
	Status             string     `json:"status"`
	CoachIDs           []string   `json:"coach_ids"`
	SeatsPaid          int        `json:"seats_paid"`
	SeatsHeld          int        `json:"seats_held"`
	SeatsLeft          int        `json:"seats_left"`
	WaitlistCount      int        `json:"waitlist_count"`
	SeatsOverflow      int        `json:"seats_overflow"`
}

type cohSession struct {
	ID              string    `json:"id"`
	CohortID        string    `json:"cohort_id"`
	Title           string    `json:"title"`
	StartsAt        time.Time `json:"starts_at"`
	DurationMinutes int       `json:"duration_minutes"`
	MeetingURL      *string   `json:"meeting_url"`
	RecordingURL    *string   `json:"recording_url"`
}

type cohList[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

// cohStart is a whole-second start a month after the test clock's now.
func cohStart(env *apitest.Env) time.Time {
	return env.Clock.Now().Add(30 * 24 * time.Hour).Truncate(time.Second).UTC()
}

// cohBody is a valid create body for program; extra overrides fields.
func cohBody(env *apitest.Env, programID uuid.UUID, extra map[string]any) map[string]any {
	start := cohStart(env)
	b := map[string]any{
		"program_id": programID.String(), "name": "Spring circle", "starts_at": start.Format(time.RFC3339),
		"ends_at": start.Add(42 * 24 * time.Hour).Format(time.RFC3339), "timezone": "Europe/Berlin",
		"capacity": 12, "price_cents": 49000, "currency": "EUR",
	}
	for k, v := range extra {
		if v == nil {
			delete(b, k)
			continue
		}
		b[k] = v
	}
	return b
}

func cohCreate(t *testing.T, env *apitest.Env, tok string, body map[string]any) cohCohort {
	t.Helper()
	var c cohCohort
	env.Do(t, "POST", "/v1/admin/cohorts", body, apitest.Token(tok)).Expect(t, 201).JSON(t, &c)
	return c
}

func cohAddSession(t *testing.T, env *apitest.Env, tok, cohortID string, body map[string]any) cohSession {
	t.Helper()
	var s cohSession
	env.Do(t, "POST", "/v1/admin/cohorts/"+cohortID+"/sessions", body, apitest.Token(tok)).Expect(t, 201).JSON(t, &s)
	return s
}

// cohEnroll writes an enrollment straight to the database in the state
// status, with the seat and (for active) the access grant the enrollment
// state machine would have left behind.
func cohEnroll(t *testing.T, env *apitest.Env, cohortID string, participantID uuid.UUID, status enroll.EnrollmentStatus) uuid.UUID {
	t.Helper()
	cid := uuid.MustParse(cohortID)
	now := env.Clock.Now()
	e := &enroll.Enrollment{CohortID: cid, ParticipantID: participantID, Status: status, Seat: enroll.SeatNone, Currency: "EUR", DisputeStatus: enroll.DisputeNone}
	counter := ""
	switch status {
	case enroll.EnrollmentActive:
		e.Seat, e.PaidAt, e.AmountPaidCents, counter = enroll.SeatPaid, &now, 49000, "seats_paid"
	case enroll.EnrollmentPending:
		hold := now.Add(31 * time.Minute)
		e.Seat, e.HoldExpiresAt, counter = enroll.SeatHeld, &hold, "seats_held"
	}
	if err := env.DB.Create(e).Error; err != nil {
		t.Fatalf("create enrollment: %v", err)
	}
	if counter != "" {
		if err := env.DB.Exec(`UPDATE cohorts SET `+counter+` = `+counter+` + 1 WHERE id = ?`, cid).Error; err != nil {
			t.Fatalf("take seat: %v", err)
		}
	}
	if status == enroll.EnrollmentActive {
		err := env.DB.Exec(`INSERT INTO access_grants (participant_id, program_id, source, starts_at, enrollment_id)
			SELECT ?, program_id, 'enrollment', starts_at, ? FROM cohorts WHERE id = ?`, participantID, e.ID, cid).Error
		if err != nil {
			t.Fatalf("grant access: %v", err)
		}
	}
	return e.ID
}

// cohSnapshot fingerprints every row the cohort routes can write.
func cohSnapshot(t *testing.T, env *apitest.Env) string {
	t.Helper()
	var s string
	err := env.DB.Raw(`SELECT concat_ws(' | ',
		(SELECT string_agg(concat_ws(',', id, program_id, name, starts_at, ends_at, timezone, capacity, price_cents, currency, enrollment_opens_at, enrollment_closes_at, status, seats_paid, seats_held, updated_at), ';' ORDER BY id) FROM cohorts),
		(SELECT string_agg(concat_ws(',', cohort_id, coach_id, lead), ';' ORDER BY cohort_id, coach_id) FROM cohort_coaches),
		(SELECT string_agg(concat_ws(',', id, cohort_id, title, starts_at, duration_minutes, meeting_url, recording_url, updated_at), ';' ORDER BY id) FROM live_sessions),
		(SELECT string_agg(concat_ws(',', id, starts_at, revoked_at), ';' ORDER BY id) FROM access_grants))`).Scan(&s).Error
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type cohBadInput struct {
	name   string
	body   any
	status int    // defaults to 422
	code   string // defaults to validation_failed
	field  string // for 422: a field that must be named
}

// cohBadInputs are the refusals every write route owes (malformed JSON,
// unknown field, over 1 MiB), then the route's own.
func cohBadInputs(invalid ...cohBadInput) []cohBadInput {
	cases := []cohBadInput{
		{name: "malformed json", body: `{"name": `, status: 400, code: "malformed_json"},
		{name: "not an object", body: `[1]`, status: 400, code: "malformed_json"},
		{name: "unknown field", body: `{"name": "x", "owner": "me"}`, status: 400, code: "unknown_field"},
		{name: "over 1 MiB", body: `{"name": "` + strings.Repeat("a", 1<<20) + `"}`, status: 413, code: "body_too_large"},
	}
	for _, c := range invalid {
		if c.status == 0 {
			c.status, c.code = 422, "validation_failed"
		}
		cases = append(cases, c)
	}
	return cases
}

func cohCheckRefusals(t *testing.T, env *apitest.Env, method, path, tok string, cases []cohBadInput) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := cohSnapshot(t, env)
			p := env.Do(t, method, path, tc.body, apitest.Token(tok)).ExpectProblem(t, tc.status, tc.code)
			if tc.field != "" && !slices.ContainsFunc(p.Errors, func(e struct {
				Field   string `json:"field"`
				Message string `json:"message"`
			}) bool {
				return e.Field == tc.field
			}) {
				t.Errorf("errors %+v do not name %q", p.Errors, tc.field)
			}
			if after := cohSnapshot(t, env); after != before {
				t.Errorf("a refused request changed data:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

func TestCohortCreateReadUpdateDelete(t *testing.T) {
	env := apitest.NewEnv(t)
	coach, tok := env.Coach(t, "lead@example.com", people.RoleCoach)
	prog := env.Program(t, "say-no", catalog.ProgramPublished, false)

	start := cohStart(env)
	c := cohCreate(t, env, tok, cohBody(env, prog.ID, map[string]any{
		"enrollment_opens_at": start.Add(-20 * 24 * time.Hour).Format(time.RFC3339),
	}))
	if c.Status != "draft" || c.Capacity != 12 || c.SeatsLeft != 12 || c.SeatsPaid != 0 || c.WaitlistCount != 0 ||
		!slices.Equal(c.CoachIDs, []string{coach.ID.String()}) || !c.StartsAt.Equal(start) || c.EnrollmentClosesAt != nil ||
		c.EnrollmentOpensAt == nil || c.ProgramID != prog.ID.String() {
		t.Errorf("created cohort: %+v", c)
	}

	var got cohCohort
	env.Do(t, "GET", "/v1/admin/cohorts/"+c.ID, nil, apitest.Token(tok)).Expect(t, 200).JSON(t, &got)
	if got.ID != c.ID || got.Name != "Spring circle" || got.Timezone != "Europe/Berlin" {
		t.Errorf("read back: %+v", got)
	}

	var upd cohCohort
	env.Do(t, "PATCH", "/v1/admin/cohorts/"+c.ID, map[string]any{
		"name": "Spring circle (evenings)", "capacity": 15, "status": "open", "enrollment_opens_at": nil,
	}, apitest.Token(tok)).Expect(t, 200).JSON(t, &upd)
	if upd.Name != "Spring circle (evenings)" || upd.Capacity != 15 || upd.SeatsLeft != 15 || upd.Status != "open" ||
		upd.EnrollmentOpensAt != nil || upd.Timezone != "Europe/Berlin" {
		t.Errorf("updated: %+v", upd)
	}

	// Only a draft may be deleted: an open cohort is cancelled instead.
	env.Do(t, "DELETE", "/v1/admin/cohorts/"+c.ID, nil, apitest.Token(tok)).ExpectProblem(t, 409, "cohort_in_use")
	env.Do(t, "PATCH", "/v1/admin/cohorts/"+c.ID, map[string]any{"status": "draft"}, apitest.Token(tok)).Expect(t, 200)
	cohAddSession(t, env, tok, c.ID, map[string]any{"title": "Week 1", "starts_at": start.Format(time.RFC3339), "duration_minutes": 90})
	env.Do(t, "DELETE", "/v1/admin/cohorts/"+c.ID, nil, apitest.Token(tok)).Expect(t, 204)
	env.Do(t, "GET", "/v1/admin/cohorts/"+c.ID, nil, apitest.Token(tok)).ExpectProblem(t, 404, "not_found")
	if n := env.Count(t, "live_sessions"); n != 0 {
		t.Errorf("%d live sessions outlived their cohort", n)
	}
	env.Do(t, "GET", "/v1/admin/cohorts/not-a-uuid", nil, apitest.Token(tok)).ExpectProblem(t, 404, "not_found")
}

func TestCohortDeleteRefusedOnceAnyoneEnrolled(t *testing.T) {
	env := apitest.NewEnv(t)
	_, tok := env.Coach(t, "admin@example.com", people.RoleAdmin)
	prog := env.Program(t, "say-no", catalog.ProgramPublished, false)
	c := cohCreate(t, env, tok, cohBody(env, prog.ID, nil))
	p, _ := env.Participant(t, "ana@example.com")
	cohEnroll(t, env, c.ID, p.ID, enroll.EnrollmentWaitlisted)

	env.Do(t, "DELETE", "/v1/admin/cohorts/"+c.ID, nil, apitest.Token(tok)).ExpectProblem(t, 409, "cohort_in_use")
	// Nor can a cohort anyone enrolled in go back into hiding as a draft.
	env.Do(t, "PATCH", "/v1/admin/cohorts/"+c.ID, map[string]any{"status": "open"}, apitest.Token(tok)).Expect(t, 200)
	env.Do(t, "PATCH", "/v1/admin/cohorts/"+c.ID, map[string]any{"status": "draft"}, apitest.Token(tok)).ExpectProblem(t, 409, "cohort_in_use")
	if n := env.Count(t, "cohorts"); n != 1 {
		t.Errorf("cohorts = %d, want 1", n)
	}
	var got cohCohort
	env.Do(t, "GET", "/v1/admin/cohorts/"+c.ID, nil, apitest.Token(tok)).Expect(t, 200).JSON(t, &got)
	if got.WaitlistCount != 1 {
		t.Errorf("waitlist_count = %d, want 1", got.WaitlistCount)
	}
}

func TestCohortCreateRefusesBadInput(t *testing.T) {
	env := apitest.NewEnv(t)
	_, tok := env.Coach(t, "lead@example.com", people.RoleCoach)
	other, _ := env.Coach(t, "other@example.com", people.RoleCoach)
	gone, _ := env.Coach(t, "gone@example.com", people.RoleCoach)
	env.DB.Model(&people.Coach{}).Where("id = ?", gone.ID).Update("active", false)
	prog := env.Program(t, "say-no", catalog.ProgramPublished, false)
	start := cohStart(env)
	b := func(extra map[string]any) map[string]any { return cohBody(env, prog.ID, extra) }

	cohCheckRefusals(t, env, "POST", "/v1/admin/cohorts", tok, cohBadInputs(
		cohBadInput{name: "missing name", body: b(map[string]any{"name": nil}), field: "name"},
		cohBadInput{name: "blank name", body: b(map[string]any{"name": "   "}), field: "name"},
		cohBadInput{name: "name too long", body: b(map[string]any{"name": strings.Repeat("n", 201)}), field: "name"},
		cohBadInput{name: "line break in name", body: b(map[string]any{"name": "Spring\r\nATTENDEE:x"}), field: "name"},
		cohBadInput{name: "missing price", body: b(map[string]any{"price_cents": nil}), field: "price_cents"},
		cohBadInput{name: "negative price", body: b(map[string]any{"price_cents": -1}), field: "price_cents"},
		cohBadInput{name: "missing currency", body: b(map[string]any{"currency": nil}), field: "currency"},
		cohBadInput{name: "lowercase currency", body: b(map[string]any{"currency": "eur"}), field: "currency"},
		cohBadInput{name: "capacity zero", body: b(map[string]any{"capacity": 0}), field: "capacity"},
		cohBadInput{name: "capacity too big", body: b(map[string]any{"capacity": 10001}), field: "capacity"},
		cohBadInput{name: "capacity not a number", body: b(map[string]any{"capacity": "12"}), field: "capacity"},
		cohBadInput{name: "unknown time zone", body: b(map[string]any{"timezone": "Mars/Olympus"}), field: "timezone"},
		cohBadInput{name: "ends before it starts", body: b(map[string]any{"ends_at": start.Add(-time.Hour).Format(time.RFC3339)}), field: "ends_at"},
		cohBadInput{name: "ends as it starts", body: b(map[string]any{"ends_at": start.Format(time.RFC3339)}), field: "ends_at"},
		cohBadInput{name: "window closes before it opens", body: b(map[string]any{
			"enrollment_opens_at": start.Add(-24 * time.Hour).Format(time.RFC3339), "enrollment_closes_at": start.Add(-48 * time.Hour).Format(time.RFC3339),
		}), field: "enrollment_closes_at"},
		cohBadInput{name: "unknown status", body: b(map[string]any{"status": "live"}), field: "status"},
		cohBadInput{name: "unknown program", body: b(map[string]any{"program_id": uuid.NewString()}), field: "program_id"},
		cohBadInput{name: "empty coach list", body: b(map[string]any{"coach_ids": []string{}}), field: "coach_ids"},
		cohBadInput{name: "unknown coach", body: b(map[string]any{"coach_ids": []string{uuid.NewString()}}), field: "coach_ids"},
		cohBadInput{name: "deactivated coach", body: b(map[string]any{"coach_ids": []string{gone.ID.String()}}), field: "coach_ids"},
		cohBadInput{name: "coach without herself", body: b(map[string]any{"coach_ids": []string{other.ID.String()}}), field: "coach_ids"},
		cohBadInput{name: "date not RFC 3339", body: b(map[string]any{"starts_at": "next tuesday"})},
	))
	if n := env.Count(t, "cohorts"); n != 0 {
		t.Errorf("%d cohorts written by refused requests", n)
	}
}

func TestCohortCoachListPutsLeadFirst(t *testing.T) {
	env := apitest.NewEnv(t)
	admin, tok := env.Coach(t, "admin@example.com", people.RoleAdmin)
	co1, _ := env.Coach(t, "co1@example.com", people.RoleCoach)
	co2, _ := env.Coach(t, "co2@example.com", people.RoleCoach)
	prog := env.Program(t, "say-no", catalog.ProgramPublished, false)

	ids := []string{co2.ID.String(), admin.ID.String(), co1.ID.String()}
	c := cohCreate(t, env, tok, cohBody(env, prog.ID, map[string]any{"coach_ids": ids}))
	if c.CoachIDs[0] != co2.ID.String() || len(c.CoachIDs) != 3 {
		t.Errorf("coach_ids = %v, want lead %s first", c.CoachIDs, co2.ID)
	}
	var leads []uuid.UUID
	env.DB.Raw(`SELECT coach_id FROM cohort_coaches WHERE cohort_id = ? AND lead`, c.ID).Scan(&leads)
	if !slices.Equal(leads, []uuid.UUID{co2.ID}) {
		t.Errorf("leads = %v, want only %s", leads, co2.ID)
	}
	var got cohList[cohCohort]
	env.Do(t, "GET", "/v1/admin/cohorts", nil, apitest.Token(tok)).Expect(t, 200).JSON(t, &got)
	if len(got.Data) != 1 || got.Data[0].CoachIDs[0] != co2.ID.String() {
		t.Errorf("list: %+v", got.Data)
	}

	// Replacing the team makes the new first id the lead.
	var upd cohCohort
	env.Do(t, "PATCH", "/v1/admin/cohorts/"+c.ID, map[string]any{"coach_ids": []string{co1.ID.String()}}, apitest.Token(tok)).Expect(t, 200).JSON(t, &upd)
	if !slices.Equal(upd.CoachIDs, []string{co1.ID.String()}) {
		t.Errorf("coach_ids after patch = %v", upd.CoachIDs)
	}
}

func TestCohortScopedToItsCoaches(t *testing.T) {
	env := apitest.NewEnv(t)
	_, adminTok := env.Coach(t, "admin@example.com", people.RoleAdmin)
	_, aliceTok := env.Coach(t, "alice@example.com", people.RoleCoach)
	bea, beaTok := env.Coach(t, "bea@example.com", people.RoleCoach)
	prog := env.Program(t, "say-no", catalog.ProgramPublished, false)
	start := cohStart(env)

	alices := cohCreate(t, env, aliceTok, cohBody(env, prog.ID, map[string]any{"name": "Alice's circle"}))
	sess := cohAddSession(t, env, aliceTok, alices.ID, map[string]any{"title": "Week 1", "starts_at": start.Format(time.RFC3339), "duration_minutes": 60})
	beas := cohCreate(t, env, beaTok, cohBody(env, prog.ID, map[string]any{"name": "Bea's circle"}))

	listNames := func(tok, query string) []string {
		var l cohList[cohCohort]
		env.Do(t, "GET", "/v1/admin/cohorts"+query, nil, apitest.Token(tok)).Expect(t, 200).JSON(t, &l)
		var names []string
		for _, c := range l.Data {
			names = append(names, c.Name)
		}
		slices.Sort(names)
		return names
	}
	if got := listNames(beaTok, ""); !slices.Equal(got, []string{"Bea's circle"}) {
		t.Errorf("bea lists %v", got)
	}
	if got := listNames(adminTok, ""); !slices.Equal(got, []string{"Alice's circle", "Bea's circle"}) {
		t.Errorf("admin lists %v", got)
	}
	if got := listNames(adminTok, "?program_id="+uuid.NewString()); len(got) != 0 {
		t.Errorf("another program's filter lists %v", got)
	}
	if got := listNames(adminTok, "?program_id="+prog.ID.String()); len(got) != 2 {
		t.Errorf("the program's filter lists %v", got)
	}
	env.Do(t, "GET", "/v1/admin/cohorts?program_id=nope", nil, apitest.Token(adminTok)).ExpectProblem(t, 400, "invalid_query")

	before := cohSnapshot(t, env)
	for _, r := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/v1/admin/cohorts/" + alices.ID, nil},
		{"PATCH", "/v1/admin/cohorts/" + alices.ID, map[string]any{"name": "Mine now"}},
		{"DELETE", "/v1/admin/cohorts/" + alices.ID, nil},
		{"POST", "/v1/admin/cohorts/" + alices.ID + "/clone", map[string]any{"name": "Copy", "starts_at": start.Format(time.RFC3339)}},
		{"GET", "/v1/admin/cohorts/" + alices.ID + "/sessions", nil},
		{"POST", "/v1/admin/cohorts/" + alices.ID + "/sessions", map[string]any{"title": "Mine", "starts_at": start.Format(time.RFC3339), "duration_minutes": 60}},
		{"PATCH", "/v1/admin/sessions/" + sess.ID, map[string]any{"title": "Mine"}},
		{"DELETE", "/v1/admin/sessions/" + sess.ID, nil},
	} {
		env.Do(t, r.method, r.path, r.body, apitest.Token(beaTok)).ExpectProblem(t, 404, "not_found")
	}
	if after := cohSnapshot(t, env); after != before {
		t.Errorf("another coach changed Alice's cohort:\nbefore %s\nafter  %s", before, after)
	}
	if n := env.Count(t, "cohorts"); n != 2 {
		t.Errorf("cohorts = %d, want 2 (no clone)", n)
	}

	// The admin manages every cohort, and can make Bea a co-coach.
	var upd cohCohort
	env.Do(t, "PATCH", "/v1/admin/cohorts/"+alices.ID, map[string]any{"coach_ids": append(slices.Clone(alices.CoachIDs), bea.ID.String())},
		apitest.Token(adminTok)).Expect(t, 200).JSON(t, &upd)
	env.Do(t, "GET", "/v1/admin/cohorts/"+alices.ID, nil, apitest.Token(beaTok)).Expect(t, 200)
	env.Do(t, "PATCH", "/v1/admin/sessions/"+sess.ID, map[string]any{"title": "Week 1 (Bea)"}, apitest.Token(beaTok)).Expect(t, 200)
	env.Do(t, "GET", "/v1/admin/cohorts/"+beas.ID, nil, apitest.Token(adminTok)).Expect(t, 200)
}

func TestCohortUpdateRefusesBadInput(t *testing.T) {
	env := apitest.NewEnv(t)
	_, tok := env.Coach(t, "lead@example.com", people.RoleCoach)
	prog := env.Program(t, "say-no", catalog.ProgramPublished, false)
	c := cohCreate(t, env, tok, cohBody(env, prog.ID, nil))
	cohCheckRefusals(t, env, "PATCH", "/v1/admin/cohorts/"+c.ID, tok, cohBadInputs(
		cohBadInput{name: "null name", body: map[string]any{"name": nil}, field: "name"},
		cohBadInput{name: "null capacity", body: map[string]any{"capacity": nil}, field: "capacity"},
		cohBadInput{name: "empty name", body: map[string]any{"name": ""}, field: "name"},
		cohBadInput{name: "ends before start", body: map[string]any{"ends_at": c.StartsAt.Add(-time.Minute).Format(time.RFC3339)}, field: "ends_at"},
		cohBadInput{name: "starts after end", body: map[string]any{"starts_at": c.EndsAt.Add(time.Minute).Format(time.RFC3339)}, field: "ends_at"},
		cohBadInput{name: "bad time zone", body: map[string]any{"timezone": "Local"}, field: "timezone"},
		cohBadInput{name: "bad status", body: map[string]any{"status": "paused"}, field: "status"},
		cohBadInput{name: "moving to another program", body: map[string]any{"program_id": uuid.NewString()}, status: 400, code: "unknown_field"},
		cohBadInput{name: "no coaches", body: map[string]any{"coach_ids": []string{}}, field: "coach_ids"},
	))
}

func TestCohortCapacityCannotFallBelowPaidSeats(t *testing.T) {
	env := apitest.NewEnv(t)
	_, tok := env.Coach(t, "admin@example.com", people.RoleAdmin)
	prog := env.Program(t, "say-no", catalog.ProgramPublished, false)
	c := cohCreate(t, env, tok, cohBody(env, prog.ID, map[string]any{"status": "open"}))
	for i := range 3 {
		p, _ := env.Participant(t, "p"+string(rune('a'+i))+"@example.com")
		cohEnroll(t, env, c.ID, p.ID, enroll.EnrollmentActive)
	}
	p, _ := env.Participant(t, "holder@example.com")
	cohEnroll(t, env, c.ID, p.ID, enroll.EnrollmentPending)

	before := cohSnapshot(t, env)
	env.Do(t, "PATCH", "/v1/admin/cohorts/"+c.ID, map[string]any{"capacity": 2, "name": "Smaller"}, apitest.Token(tok)).ExpectProblem(t, 409, "capacity_below_paid")
	if after := cohSnapshot(t, env); after != before {
		t.Errorf("a refused capacity change wrote:\nbefore %s\nafter  %s", before, after)
	}
	var got cohCohort
	env.Do(t, "PATCH", "/v1/admin/cohorts/"+c.ID, map[string]any{"capacity": 3}, apitest.Token(tok)).Expect(t, 200).JSON(t, &got)
	if got.Capacity != 3 || got.SeatsPaid != 3 || got.SeatsHeld != 1 || got.SeatsLeft != 0 {
		t.Errorf("at paid seats: %+v", got)
	}
}

func TestCohortNewStartMovesEnrolledAccess(t *testing.T) {
	env := apitest.NewEnv(t)
	_, tok := env.Coach(t, "admin@example.com", people.RoleAdmin)
	prog := env.Program(t, "say-no", catalog.ProgramPublished, false)
	c := cohCreate(t, env, tok, cohBody(env, prog.ID, map[string]any{"status": "open"}))
	other := cohCreate(t, env, tok, cohBody(env, prog.ID, map[string]any{"name": "Other run"}))
	ana, _ := env.Participant(t, "ana@example.com")
	bea, _ := env.Participant(t, "bea@example.com")
	anaEnrollment := cohEnroll(t, env, c.ID, ana.ID, enroll.EnrollmentActive)
	beaEnrollment := cohEnroll(t, env, other.ID, bea.ID, enroll.EnrollmentActive)
	free := env.Grant(t, ana.ID, prog.ID, people.GrantFreeAccess, env.Clock.Now())

	grantStart := func(where string, arg any) time.Time {
		var ts time.Time
		if err := env.DB.Raw(`SELECT starts_at FROM access_grants WHERE `+where, arg).Scan(&ts).Error; err != nil {
			t.Fatal(err)
		}
		return ts.UTC()
	}
	newStart := c.StartsAt.Add(7 * 24 * time.Hour)
	env.Do(t, "PATCH", "/v1/admin/cohorts/"+c.ID, map[string]any{
		"starts_at": newStart.Format(time.RFC3339), "ends_at": c.EndsAt.Add(7 * 24 * time.Hour).Format(time.RFC3339),
	}, apitest.Token(tok)).Expect(t, 200)

	if got := grantStart("enrollment_id = ?", anaEnrollment); !got.Equal(newStart) {
		t.Errorf("her enrollment grant starts %v, want the new cohort start %v", got, newStart)
	}
	if got := grantStart("enrollment_id = ?", beaEnrollment); !got.Equal(other.StartsAt) {
		t.Errorf("another cohort's grant moved to %v", got)
	}
	if got := grantStart("id = ?", free.ID); !got.Equal(free.StartsAt.UTC().Truncate(time.Microsecond)) {
		t.Errorf("her free-access grant moved to %v", got)
	}
}

func TestCohortCloneShiftsEverySession(t *testing.T) {
	env := apitest.NewEnv(t)
	lead, tok := env.Coach(t, "lead@example.com", people.RoleCoach)
	co, _ := env.Coach(t, "co@example.com", people.RoleCoach)
	prog := env.Program(t, "say-no", catalog.ProgramPublished, false)
	start := cohStart(env)
	opens, closes := start.Add(-14*24*time.Hour), start.Add(-24*time.Hour)
	old := cohCreate(t, env, tok, cohBody(env, prog.ID, map[string]any{
		"status": "open", "coach_ids": []string{lead.ID.String(), co.ID.String()},
		"enrollment_opens_at": opens.Format(time.RFC3339), "enrollment_closes_at": closes.Format(time.RFC3339),
	}))
	meet := "https://meet.example.com/spring"
	oldSessions := []cohSession{
		cohAddSession(t, env, tok, old.ID, map[string]any{"title": "Week 1", "starts_at": start.Add(18 * time.Hour).Format(time.RFC3339),
			"duration_minutes": 90, "meeting_url": meet, "recording_url": "https://video.example.com/w1"}),
		cohAddSession(t, env, tok, old.ID, map[string]any{"title": "Week 2", "starts_at": start.Add(7*24*time.Hour + 18*time.Hour).Format(time.RFC3339),
			"duration_minutes": 60}),
	}
	p, _ := env.Participant(t, "ana@example.com")
	cohEnroll(t, env, old.ID, p.ID, enroll.EnrollmentActive)

	// Not a whole number of days: the shift must be exact, not rounded.
	delta := 91*24*time.Hour + 30*time.Minute
	var clone cohCohort
	env.Do(t, "POST", "/v1/admin/cohorts/"+old.ID+"/clone", map[string]any{"name": "Summer circle", "starts_at": start.Add(delta).Format(time.RFC3339)},
		apitest.Token(tok)).Expect(t, 201).JSON(t, &clone)
	if clone.ID == old.ID || clone.Name != "Summer circle" || clone.Status != "draft" || clone.SeatsPaid != 0 || clone.SeatsHeld != 0 ||
		clone.SeatsLeft != old.Capacity || clone.Capacity != old.Capacity || clone.PriceCents != old.PriceCents || clone.Timezone != old.Timezone ||
		!clone.StartsAt.Equal(start.Add(delta)) || !clone.EndsAt.Equal(old.EndsAt.Add(delta)) ||
		clone.EnrollmentOpensAt == nil || !clone.EnrollmentOpensAt.Equal(opens.Add(delta)) ||
		clone.EnrollmentClosesAt == nil || !clone.EnrollmentClosesAt.Equal(closes.Add(delta)) ||
		!slices.Equal(clone.CoachIDs, old.CoachIDs) {
		t.Errorf("clone: %+v\nold:   %+v", clone, old)
	}

	var got cohList[cohSession]
	env.Do(t, "GET", "/v1/admin/cohorts/"+clone.ID+"/sessions", nil, apitest.Token(tok)).Expect(t, 200).JSON(t, &got)
	if len(got.Data) != len(oldSessions) {
		t.Fatalf("clone has %d sessions, want %d", len(got.Data), len(oldSessions))
	}
	for i, s := range got.Data {
		o := oldSessions[i]
		if s.ID == o.ID || s.CohortID != clone.ID || s.Title != o.Title || s.DurationMinutes != o.DurationMinutes ||
			!s.StartsAt.Equal(o.StartsAt.Add(delta)) || s.RecordingURL != nil || !equalPtr(s.MeetingURL, o.MeetingURL) {
			t.Errorf("session %d: %+v, from %+v", i, s, o)
		}
	}
	var oldNow cohList[cohSession]
	env.Do(t, "GET", "/v1/admin/cohorts/"+old.ID+"/sessions", nil, apitest.Token(tok)).Expect(t, 200).JSON(t, &oldNow)
	if len(oldNow.Data) != 2 || oldNow.Data[0].RecordingURL == nil || !oldNow.Data[0].StartsAt.Equal(oldSessions[0].StartsAt) {
		t.Errorf("the original's sessions changed: %+v", oldNow.Data)
	}
	if n := env.Count(t, "enrollments"); n != 1 {
		t.Errorf("enrollments = %d: a clone must not copy them", n)
	}

	cohCheckRefusals(t, env, "POST", "/v1/admin/cohorts/"+old.ID+"/clone", tok, cohBadInputs(
		cohBadInput{name: "missing name", body: map[string]any{"starts_at": start.Format(time.RFC3339)}, field: "name"},
		cohBadInput{name: "missing start", body: map[string]any{"name": "x"}, field: "starts_at"},
	))
}

func equalPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func TestLiveSessionsCRUDAndValidation(t *testing.T) {
	env := apitest.NewEnv(t)
	_, tok := env.Coach(t, "lead@example.com", people.RoleCoach)
	prog := env.Program(t, "say-no", catalog.ProgramPublished, false)
	c := cohCreate(t, env, tok, cohBody(env, prog.ID, nil))
	start := cohStart(env)

	late := cohAddSession(t, env, tok, c.ID, map[string]any{"title": "Closing circle", "starts_at": start.Add(48 * time.Hour).Format(time.RFC3339), "duration_minutes": 120})
	early := cohAddSession(t, env, tok, c.ID, map[string]any{"title": "Opening circle", "starts_at": start.Format(time.RFC3339),
		"duration_minutes": 90, "meeting_url": "https://meet.example.com/a"})
	if early.RecordingURL != nil || early.MeetingURL == nil || early.CohortID != c.ID {
		t.Errorf("created: %+v", early)
	}
	var l cohList[cohSession]
	env.Do(t, "GET", "/v1/admin/cohorts/"+c.ID+"/sessions", nil, apitest.Token(tok)).Expect(t, 200).JSON(t, &l)
	if len(l.Data) != 2 || l.Data[0].ID != early.ID || l.Data[1].ID != late.ID {
		t.Errorf("sessions not in start order: %+v", l.Data)
	}
	env.Do(t, "GET", "/v1/admin/cohorts/"+c.ID+"/sessions?limit=1", nil, apitest.Token(tok)).Expect(t, 200).JSON(t, &l)
	if len(l.Data) != 1 || l.NextCursor == nil {
		t.Fatalf("first page: %+v", l)
	}
	env.Do(t, "GET", "/v1/admin/cohorts/"+c.ID+"/sessions?limit=1&cursor="+*l.NextCursor, nil, apitest.Token(tok)).Expect(t, 200).JSON(t, &l)
	if len(l.Data) != 1 || l.Data[0].ID != late.ID || l.NextCursor != nil {
		t.Errorf("second page: %+v", l)
	}

	var upd cohSession
	env.Do(t, "PATCH", "/v1/admin/sessions/"+early.ID, map[string]any{"meeting_url": nil, "recording_url": "https://video.example.com/1", "duration_minutes": 100},
		apitest.Token(tok)).Expect(t, 200).JSON(t, &upd)
	if upd.MeetingURL != nil || upd.RecordingURL == nil || upd.DurationMinutes != 100 || upd.Title != "Opening circle" {
		t.Errorf("updated: %+v", upd)
	}

	valid := map[string]any{"title": "T", "starts_at": start.Format(time.RFC3339), "duration_minutes": 60}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for kk, vv := range valid {
			m[kk] = vv
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	cohCheckRefusals(t, env, "POST", "/v1/admin/cohorts/"+c.ID+"/sessions", tok, cohBadInputs(
		cohBadInput{name: "no title", body: with("title", nil), field: "title"},
		cohBadInput{name: "blank title", body: with("title", "  "), field: "title"},
		cohBadInput{name: "line break in title", body: with("title", "Week 1\nURL:https://evil.example.com"), field: "title"},
		cohBadInput{name: "no start", body: with("starts_at", nil), field: "starts_at"},
		cohBadInput{name: "zero minutes", body: with("duration_minutes", 0), field: "duration_minutes"},
		cohBadInput{name: "over a day", body: with("duration_minutes", 1441), field: "duration_minutes"},
		cohBadInput{name: "not a link", body: with("meeting_url", "javascript:alert(1)"), field: "meeting_url"},
		cohBadInput{name: "ftp recording", body: with("recording_url", "ftp://files.example.com/x"), field: "recording_url"},
	))
	cohCheckRefusals(t, env, "PATCH", "/v1/admin/sessions/"+early.ID, tok, cohBadInputs(
		cohBadInput{name: "null title", body: map[string]any{"title": nil}, field: "title"},
		cohBadInput{name: "null duration", body: map[string]any{"duration_minutes": nil}, field: "duration_minutes"},
		cohBadInput{name: "bad link", body: map[string]any{"meeting_url": "meet.example.com"}, field: "meeting_url"},
	))
	env.Do(t, "POST", "/v1/admin/cohorts/"+uuid.NewString()+"/sessions", valid, apitest.Token(tok)).ExpectProblem(t, 404, "not_found")

	env.Do(t, "DELETE", "/v1/admin/sessions/"+early.ID, nil, apitest.Token(tok)).Expect(t, 204)
	env.Do(t, "DELETE", "/v1/admin/sessions/"+early.ID, nil, apitest.Token(tok)).ExpectProblem(t, 404, "not_found")
	if n := env.Count(t, "live_sessions"); n != 1 {
		t.Errorf("live sessions = %d, want 1", n)
	}
}

func TestPublicCohortHidesDraftsAndLinks(t *testing.T) {
	env := apitest.NewEnv(t)
	_, tok := env.Coach(t, "lead@example.com", people.RoleCoach)
	prog := env.Program(t, "say-no", catalog.ProgramPublished, false)
	draft := cohCreate(t, env, tok, cohBody(env, prog.ID, nil))
	open := cohCreate(t, env, tok, cohBody(env, prog.ID, map[string]any{"status": "open", "capacity": 5, "name": "Open circle"}))
	start := cohStart(env)
	for _, id := range []string{draft.ID, open.ID} {
		cohAddSession(t, env, tok, id, map[string]any{"title": "Week 1", "starts_at": start.Format(time.RFC3339), "duration_minutes": 60,
			"meeting_url": "https://meet.example.com/secret-room", "recording_url": "https://video.example.com/secret-rec"})
	}
	p, _ := env.Participant(t, "ana@example.com")
	cohEnroll(t, env, open.ID, p.ID, enroll.EnrollmentActive)

	env.Do(t, "GET", "/v1/cohorts/"+draft.ID, nil).ExpectProblem(t, 404, "not_found")
	env.Do(t, "GET", "/v1/cohorts/"+uuid.NewString(), nil).ExpectProblem(t, 404, "not_found")

	res := env.Do(t, "GET", "/v1/cohorts/"+open.ID, nil).Expect(t, 200)
	if body := string(res.Body); strings.Contains(body, "secret") || strings.Contains(body, "meeting_url") || strings.Contains(body, "coach_ids") {
		t.Errorf("the public page leaks links or the team: %s", body)
	}
	var got struct {
		Name           string       `json:"name"`
		ProgramSlug    string       `json:"program_slug"`
		SeatsLeft      int          `json:"seats_left"`
		Status         string       `json:"status"`
		EnrollmentOpen bool         `json:"enrollment_open"`
		Sessions       []cohSession `json:"sessions"`
	}
	res.JSON(t, &got)
	if got.Name != "Open circle" || got.ProgramSlug != "say-no" || got.SeatsLeft != 4 || got.Status != "open" || !got.EnrollmentOpen || len(got.Sessions) != 1 {
		t.Errorf("public cohort: %+v", got)
	}

	// Closing it keeps the page (she may have the link) but stops sign-ups.
	env.Do(t, "PATCH", "/v1/admin/cohorts/"+open.ID, map[string]any{"status": "closed"}, apitest.Token(tok)).Expect(t, 200)
	env.Do(t, "GET", "/v1/cohorts/"+open.ID, nil).Expect(t, 200).JSON(t, &got)
	if got.Status != "closed" || got.EnrollmentOpen {
		t.Errorf("closed cohort: %+v", got)
	}
}

type cohPortalEnrollment struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Cohort struct {
		ID       string `json:"id"`
		Name     string `json:"name"`
		Timezone string `json:"timezone"`
	} `json:"cohort"`
	Program struct {
		Slug string `json:"slug"`
	} `json:"program"`
	Sessions []cohSession `json:"sessions"`
}

func TestPortalEnrollmentsShowLinksOnlyWhenActive(t *testing.T) {
	env := apitest.NewEnv(t)
	_, tok := env.Coach(t, "lead@example.com", people.RoleCoach)
	prog := env.Program(t, "say-no", catalog.ProgramPublished, false)
	first := cohCreate(t, env, tok, cohBody(env, prog.ID, map[string]any{"status": "open", "name": "First"}))
	second := cohCreate(t, env, tok, cohBody(env, prog.ID, map[string]any{"status": "open", "name": "Second"}))
	start := cohStart(env)
	for _, id := range []string{first.ID, second.ID} {
		cohAddSession(t, env, tok, id, map[string]any{"title": "Week 1", "starts_at": start.Format(time.RFC3339), "duration_minutes": 60,
			"meeting_url": "https://meet.example.com/" + id, "recording_url": "https://video.example.com/" + id})
	}
	ana, anaTok := env.Participant(t, "ana@example.com")
	bea, beaTok := env.Participant(t, "bea@example.com")
	anaActive := cohEnroll(t, env, first.ID, ana.ID, enroll.EnrollmentActive)
	env.Clock.Advance(time.Minute)
	anaPending := cohEnroll(t, env, second.ID, ana.ID, enroll.EnrollmentPending)
	beaActive := cohEnroll(t, env, second.ID, bea.ID, enroll.EnrollmentActive)

	var l cohList[cohPortalEnrollment]
	env.Do(t, "GET", "/v1/portal/enrollments", nil, apitest.Token(anaTok)).Expect(t, 200).JSON(t, &l)
	if len(l.Data) != 2 {
		t.Fatalf("she sees %d enrollments, want her 2: %+v", len(l.Data), l.Data)
	}
	pending, active := l.Data[0], l.Data[1] // newest first
	if pending.ID != anaPending.String() || active.ID != anaActive.String() {
		t.Fatalf("enrollments %s, %s; want %s, %s", pending.ID, active.ID, anaPending, anaActive)
	}
	if active.Status != "active" || active.Cohort.Name != "First" || active.Cohort.Timezone != "Europe/Berlin" || active.Program.Slug != "say-no" ||
		len(active.Sessions) != 1 || active.Sessions[0].MeetingURL == nil || active.Sessions[0].RecordingURL == nil {
		t.Errorf("active enrollment: %+v", active)
	}
	if pending.Status != "pending" || len(pending.Sessions) != 1 || pending.Sessions[0].MeetingURL != nil || pending.Sessions[0].RecordingURL != nil {
		t.Errorf("a pending enrollment shows links: %+v", pending)
	}

	env.Do(t, "GET", "/v1/portal/enrollments", nil, apitest.Token(beaTok)).Expect(t, 200).JSON(t, &l)
	if len(l.Data) != 1 || l.Data[0].ID != beaActive.String() || l.Data[0].Sessions[0].MeetingURL == nil {
		t.Errorf("bea sees %+v", l.Data)
	}
	env.Do(t, "GET", "/v1/portal/enrollments?limit=1", nil, apitest.Token(anaTok)).Expect(t, 200).JSON(t, &l)
	if len(l.Data) != 1 || l.NextCursor == nil {
		t.Fatalf("first page: %+v", l)
	}
	env.Do(t, "GET", "/v1/portal/enrollments?limit=1&cursor="+*l.NextCursor, nil, apitest.Token(anaTok)).Expect(t, 200).JSON(t, &l)
	if len(l.Data) != 1 || l.Data[0].ID != anaActive.String() {
		t.Errorf("second page: %+v", l.Data)
	}
	env.Do(t, "GET", "/v1/portal/enrollments", nil).ExpectProblem(t, 401, "unauthorized")
}

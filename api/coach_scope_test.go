package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/grace-coaching/grace/api/apitest"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/drip"
	"github.com/grace-coaching/grace/models/enroll"
	"github.com/grace-coaching/grace/models/people"
)

// Helpers of the coach-scope tests carry a scope prefix: other features'
// tests share this package.

const (
	scopeIP = "203.0.113.77"
	scopeUA = "Mozilla/5.0 (ScopeTest; her-own-phone)"
)

// scopeWorld is two coaches with a cohort each in one program, an admin,
// and a woman in each cohort whose consents carry an IP and a user agent.
type scopeWorld struct {
	env                *apitest.Env
	admin, anna, bea   *people.Coach
	adminTok           string
	annaTok, beaTok    string
	program            *catalog.Program
	annaCohort, beaCoh *enroll.CohortView
	ada, bella         *people.Participant // Ada is Anna's, Bella is Bea's
	adaTok, bellaTok   string
}

func scopeNewWorld(t *testing.T) *scopeWorld {
	t.Helper()
	env := apitest.NewEnv(t)
	w := &scopeWorld{env: env}
	w.admin, w.adminTok = env.Coach(t, "admin@coach.test", people.RoleAdmin)
	w.anna, w.annaTok = env.Coach(t, "anna@coach.test", people.RoleCoach)
	w.bea, w.beaTok = env.Coach(t, "bea@coach.test", people.RoleCoach)
	ok(t, env.DB.Model(&people.Coach{}).Where("id = ?", w.anna.ID).Update("name", "Anna Berg").Error)
	ok(t, env.DB.Model(&people.Coach{}).Where("id = ?", w.bea.ID).Update("name", "Bea Stone").Error)
	w.program = env.Program(t, "say-no", catalog.ProgramPublished, true)
	w.annaCohort = scopeCohort(t, env, w.admin, w.program.ID, "Anna's Spring Circle", w.anna)
	w.beaCoh = scopeCohort(t, env, w.admin, w.program.ID, "Bea's Autumn Circle", w.bea)
	w.ada, w.adaTok = env.Participant(t, "ada@example.com")
	w.bella, w.bellaTok = env.Participant(t, "bella@example.com")
	// Both signed in from their inboxes, so their addresses are proven and
	// an email greets them by name.
	ok(t, env.DB.Model(&people.Participant{}).Where("id = ?", w.ada.ID).
		Updates(map[string]any{"name": "Ada Lovelace", "email_verified_at": env.Clock.Now()}).Error)
	ok(t, env.DB.Model(&people.Participant{}).Where("id = ?", w.bella.ID).
		Updates(map[string]any{"name": "Bella Swan", "email_verified_at": env.Clock.Now()}).Error)
	cohEnroll(t, env, w.annaCohort.ID.String(), w.ada.ID, enroll.EnrollmentActive)
	cohEnroll(t, env, w.beaCoh.ID.String(), w.bella.ID, enroll.EnrollmentActive)
	for _, p := range []*people.Participant{w.ada, w.bella} {
		ok(t, env.DB.Exec(`INSERT INTO consents (participant_id, program_id, kind, text_version, granted, ip, user_agent, created_at)
			VALUES (?, ?, 'disclaimer', 'disclaimer-test', true, ?, ?, ?)`, p.ID, w.program.ID, scopeIP, scopeUA, env.Clock.Now()).Error)
	}
	return w
}

func (w *scopeWorld) inactiveCoach(t *testing.T) uuid.UUID {
	t.Helper()
	c, _ := w.env.Coach(t, "gone@coach.test", people.RoleCoach)
	ok(t, w.env.DB.Model(&people.Coach{}).Where("id = ?", c.ID).Update("active", false).Error)
	return c.ID
}

func scopeCohort(t *testing.T, env *apitest.Env, admin *people.Coach, programID uuid.UUID, name string, lead *people.Coach) *enroll.CohortView {
	t.Helper()
	start := env.Clock.Now().Add(14 * 24 * time.Hour)
	co, err := env.Svc.Enroll.CreateCohort(t.Context(), admin, enroll.CohortInput{
		ProgramID: programID, Name: name, StartsAt: start, EndsAt: start.Add(30 * 24 * time.Hour),
		Timezone: "Europe/London", Capacity: 10, PriceCents: 30000, Currency: "EUR", CoachIDs: []uuid.UUID{lead.ID},
	})
	if err != nil {
		t.Fatalf("create cohort: %v", err)
	}
	return co
}

func scopeListEmails(t *testing.T, env *apitest.Env, tok, q string) []string {
	t.Helper()
	var page catList[catParticipant]
	env.Do(t, http.MethodGet, "/v1/admin/participants?q="+url.QueryEscape(q), nil, apitest.Token(tok)).Expect(t, http.StatusOK).JSON(t, &page)
	out := []string{}
	for _, p := range page.Data {
		out = append(out, p.Email)
	}
	slices.Sort(out)
	return out
}

// scopeProblemShape is a problem body without its request id, for
// comparing two answers byte for byte.
func scopeProblemShape(t *testing.T, r *apitest.Response) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("problem body %s: %v", r.Body, err)
	}
	delete(m, "request_id")
	delete(m, "instance")
	b, _ := json.Marshal(m)
	return fmt.Sprintf("%d %s %s", r.Status, r.Header.Get("Content-Type"), b)
}

func scopeNoEvidence(t *testing.T, what string, body []byte) {
	t.Helper()
	if bytes.Contains(body, []byte(scopeIP)) || bytes.Contains(body, []byte("ScopeTest")) {
		t.Errorf("%s carries consent evidence: %s", what, body)
	}
}

// Before the fix, Bea listed and searched every participant and read Ada's
// profile with her IP address and user agent.
func TestCoachSeesOnlyHerParticipants(t *testing.T) {
	w := scopeNewWorld(t)
	env := w.env
	tests := []struct {
		name, tok, q string
		want         []string
	}{
		{"admin lists everyone", w.adminTok, "", []string{"ada@example.com", "bella@example.com"}},
		{"anna lists hers", w.annaTok, "", []string{"ada@example.com"}},
		{"bea lists hers", w.beaTok, "", []string{"bella@example.com"}},
		{"bea searches for ada", w.beaTok, "ada", []string{}},
		{"bea searches by ada's name", w.beaTok, "Lovelace", []string{}},
		{"anna searches for ada", w.annaTok, "lovelace", []string{"ada@example.com"}},
		{"bea searches the common domain", w.beaTok, "example.com", []string{"bella@example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := scopeListEmails(t, env, tt.tok, tt.q); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}

	// Out of scope and unknown are the same 404, byte for byte.
	outside := env.Do(t, http.MethodGet, "/v1/admin/participants/"+w.ada.ID.String(), nil, apitest.Token(w.beaTok))
	outside.ExpectProblem(t, http.StatusNotFound, "not_found")
	unknown := env.Do(t, http.MethodGet, "/v1/admin/participants/"+uuid.NewString(), nil, apitest.Token(w.beaTok))
	if a, b := scopeProblemShape(t, outside), scopeProblemShape(t, unknown); a != b {
		t.Errorf("out of scope answers\n%s\nunknown answers\n%s", a, b)
	}
	scopeNoEvidence(t, "bea's 404", outside.Body)

	// Her own coach sees her, without the evidence; the admin with it.
	var d catParticipantDetail
	r := env.Do(t, http.MethodGet, "/v1/admin/participants/"+w.ada.ID.String(), nil, apitest.Token(w.annaTok)).Expect(t, http.StatusOK)
	scopeNoEvidence(t, "anna's view of ada", r.Body)
	r.JSON(t, &d)
	if len(d.Consents) != 1 || d.Consents[0].IP != nil || d.Consents[0].UserAgent != nil || len(d.Grants) != 1 {
		t.Errorf("anna's view: consents %+v, grants %+v", d.Consents, d.Grants)
	}
	env.Do(t, http.MethodGet, "/v1/admin/participants/"+w.ada.ID.String(), nil, apitest.Token(w.adminTok)).Expect(t, http.StatusOK).JSON(t, &d)
	if len(d.Consents) != 1 || d.Consents[0].IP == nil || *d.Consents[0].IP != scopeIP || d.Consents[0].UserAgent == nil || *d.Consents[0].UserAgent != scopeUA {
		t.Errorf("admin's view: consents %+v", d.Consents)
	}

	// Her enrollment list is Anna's cohort's; Bea does not find it.
	env.Do(t, http.MethodGet, "/v1/admin/cohorts/"+w.annaCohort.ID.String()+"/enrollments", nil, apitest.Token(w.beaTok)).ExpectProblem(t, http.StatusNotFound, "not_found")
	r = env.Do(t, http.MethodGet, "/v1/admin/cohorts/"+w.annaCohort.ID.String()+"/enrollments", nil, apitest.Token(w.annaTok)).Expect(t, http.StatusOK)
	if !bytes.Contains(r.Body, []byte("ada@example.com")) {
		t.Errorf("anna's enrollment list: %s", r.Body)
	}
	scopeNoEvidence(t, "anna's enrollment list", r.Body)

	// The suppression list is the admins'.
	env.Do(t, http.MethodGet, "/v1/admin/suppressions", nil, apitest.Token(w.beaTok)).ExpectProblem(t, http.StatusForbidden, "forbidden")
	env.Do(t, http.MethodDelete, "/v1/admin/suppressions/ada@example.com", nil, apitest.Token(w.beaTok)).ExpectProblem(t, http.StatusForbidden, "forbidden")
	env.Do(t, http.MethodGet, "/v1/admin/suppressions", nil, apitest.Token(w.adminTok)).Expect(t, http.StatusOK)
}

// A woman who shares a woman between two coaches (she came to both
// cohorts) is each coach's, but each sees only her own part of her story.
func TestCoachSeesOnlyHerPartOfASharedParticipant(t *testing.T) {
	w := scopeNewWorld(t)
	env := w.env
	other := env.Program(t, "boundaries", catalog.ProgramPublished, true)
	otherCohort := scopeCohort(t, env, w.admin, other.ID, "Anna's Boundaries Group", w.anna)
	cohEnroll(t, env, otherCohort.ID.String(), w.bella.ID, enroll.EnrollmentActive)
	ok(t, env.DB.Exec(`INSERT INTO consents (participant_id, program_id, kind, text_version, granted, created_at)
		VALUES (?, ?, 'marketing', 'marketing-test', true, ?)`, w.bella.ID, other.ID, env.Clock.Now()).Error)

	var d catParticipantDetail
	env.Do(t, http.MethodGet, "/v1/admin/participants/"+w.bella.ID.String(), nil, apitest.Token(w.beaTok)).Expect(t, http.StatusOK).JSON(t, &d)
	if len(d.Grants) != 1 || d.Grants[0].ProgramID != w.program.ID.String() {
		t.Errorf("bea sees grants %+v, want only her program's", d.Grants)
	}
	for _, c := range d.Consents {
		if c.ProgramID != nil && *c.ProgramID == other.ID.String() {
			t.Errorf("bea sees a consent given to anna's program: %+v", c)
		}
	}
	env.Do(t, http.MethodGet, "/v1/admin/participants/"+w.bella.ID.String(), nil, apitest.Token(w.adminTok)).Expect(t, http.StatusOK).JSON(t, &d)
	if len(d.Grants) != 2 || len(d.Consents) != 2 {
		t.Errorf("admin sees grants %+v consents %+v, want all", d.Grants, d.Consents)
	}
}

// Before the fix, Bea previewed a global step with Ada's id and read Ada's
// name and Anna's cohort's name.
func TestCoachCannotPreviewAnotherCoachsParticipant(t *testing.T) {
	w := scopeNewWorld(t)
	env := w.env
	seq := createSequenceAPI(t, env, w.adminTok, map[string]any{"name": "Everyone", "trigger": "enrollment_activated", "kind": "transactional"})
	st := createStepAPI(t, env, w.adminTok, seq.ID, map[string]any{"offset_minutes": 5, "subject": "Hello {{first_name}}", "body": "Welcome to {{cohort_name}}."})
	preview := func(tok string, participantID any) *apitest.Response {
		return env.Do(t, http.MethodPost, "/v1/admin/steps/"+st.ID+"/preview", map[string]any{"participant_id": participantID}, apitest.Token(tok))
	}

	outside := preview(w.beaTok, w.ada.ID)
	outside.ExpectProblem(t, http.StatusUnprocessableEntity, "validation_failed")
	if bytes.Contains(outside.Body, []byte("Ada")) || bytes.Contains(outside.Body, []byte("Anna")) {
		t.Errorf("refused preview names her: %s", outside.Body)
	}
	unknown := preview(w.beaTok, uuid.New())
	if a, b := scopeProblemShape(t, outside), scopeProblemShape(t, unknown); a != b {
		t.Errorf("out of scope answers\n%s\nunknown answers\n%s", a, b)
	}

	// Bella came to Anna's cohort last, and to Bea's before: Bea's preview
	// shows Bea's cohort, never Anna's.
	env.Clock.Advance(time.Hour)
	cohEnroll(t, env, w.annaCohort.ID.String(), w.bella.ID, enroll.EnrollmentActive)
	var out struct {
		Subject string `json:"subject"`
		HTML    string `json:"html"`
		Text    string `json:"text"`
	}
	preview(w.beaTok, w.bella.ID).Expect(t, http.StatusOK).JSON(t, &out)
	if out.Subject != "Hello Bella" || !strings.Contains(out.Text, "Bea's Autumn Circle") || strings.Contains(out.Text+out.HTML, "Anna") {
		t.Errorf("bea's preview: %q\n%s", out.Subject, out.Text)
	}
	preview(w.adminTok, w.bella.ID).Expect(t, http.StatusOK).JSON(t, &out)
	if !strings.Contains(out.Text, "Anna's Spring Circle") {
		t.Errorf("admin's preview shows her latest cohort: %s", out.Text)
	}
	// Sample data stays open to every coach.
	env.Do(t, http.MethodPost, "/v1/admin/steps/"+st.ID+"/preview", nil, apitest.Token(w.beaTok)).Expect(t, http.StatusOK)
	env.Do(t, http.MethodPost, "/v1/admin/steps/"+st.ID+"/test-send", map[string]any{"to": "bea@coach.test"}, apitest.Token(w.beaTok)).Expect(t, http.StatusAccepted)
	var test struct{ Data string }
	ok(t, env.DB.Raw(`SELECT data::text FROM outbox WHERE template = 'drip_test'`).Scan(&test.Data).Error)
	if strings.Contains(test.Data, "Ada") || strings.Contains(test.Data, "Bella") || strings.Contains(test.Data, "Circle") {
		t.Errorf("test send carries a participant's data: %s", test.Data)
	}
}

// Before the fix, Bea's global sequence emailed Ada, who is Anna's.
func TestCoachCannotWriteGlobalSequences(t *testing.T) {
	w := scopeNewWorld(t)
	env := w.env
	for _, body := range []map[string]any{
		{"name": "To everyone", "trigger": "enrollment_activated", "kind": "transactional", "active": true},
		{"name": "To the program", "trigger": "enrollment_activated", "kind": "transactional", "active": true, "program_id": w.program.ID},
	} {
		env.Do(t, http.MethodPost, "/v1/admin/sequences", body, apitest.Token(w.beaTok)).ExpectProblem(t, http.StatusForbidden, "forbidden")
	}
	if n := env.Count(t, "email_sequences"); n != 0 {
		t.Fatalf("%d sequences written by a refused coach", n)
	}

	// Her own cohort's sequence cannot be widened to everyone.
	mine := createSequenceAPI(t, env, w.beaTok, map[string]any{"name": "Mine", "trigger": "enrollment_activated", "kind": "transactional", "cohort_id": w.beaCoh.ID})
	env.Do(t, http.MethodPatch, "/v1/admin/sequences/"+mine.ID, map[string]any{"cohort_id": nil, "active": true}, apitest.Token(w.beaTok)).ExpectProblem(t, http.StatusForbidden, "forbidden")

	// The admin's global sequence is readable, not writable.
	global := createSequenceAPI(t, env, w.adminTok, map[string]any{"name": "Global", "trigger": "enrollment_activated", "kind": "transactional"})
	step := createStepAPI(t, env, w.adminTok, global.ID, map[string]any{"offset_minutes": 5, "subject": "Hi", "body": "Hi {{first_name}}"})
	env.Do(t, http.MethodGet, "/v1/admin/sequences/"+global.ID, nil, apitest.Token(w.beaTok)).Expect(t, http.StatusOK)
	for _, r := range []struct {
		method, path string
		body         any
	}{
		{http.MethodPatch, "/v1/admin/sequences/" + global.ID, map[string]any{"active": true}},
		{http.MethodDelete, "/v1/admin/sequences/" + global.ID, nil},
		{http.MethodPost, "/v1/admin/sequences/" + global.ID + "/steps", map[string]any{"offset_minutes": 0, "subject": "s", "body": "b"}},
		{http.MethodPatch, "/v1/admin/steps/" + step.ID, map[string]any{"subject": "Hijacked"}},
		{http.MethodDelete, "/v1/admin/steps/" + step.ID, nil},
	} {
		env.Do(t, r.method, r.path, r.body, apitest.Token(w.beaTok)).ExpectProblem(t, http.StatusForbidden, "forbidden")
	}
	var active bool
	ok(t, env.DB.Raw(`SELECT active FROM email_sequences WHERE id = ?`, global.ID).Scan(&active).Error)
	var subject string
	ok(t, env.DB.Raw(`SELECT subject FROM email_steps WHERE id = ?`, step.ID).Scan(&subject).Error)
	if active || subject != "Hi" {
		t.Errorf("refused writes changed the global sequence: active %v, subject %q", active, subject)
	}
	var toAda int64
	ok(t, env.DB.Model(&drip.EmailDelivery{}).Where("participant_id = ?", w.ada.ID).Count(&toAda).Error)
	if toAda != 0 {
		t.Errorf("%d emails scheduled to Ada by Bea's attempts", toAda)
	}
}

// A program's lead coach sees the women who claimed it; only an admin
// names her.
func TestProgramLeadSeesHerClaimants(t *testing.T) {
	w := scopeNewWorld(t)
	env := w.env
	workshop := env.Program(t, "free-workshop", catalog.ProgramPublished, true)
	path := "/v1/admin/programs/" + workshop.ID.String()
	env.Do(t, http.MethodPatch, path, map[string]any{"lead_coach_id": w.anna.ID}, apitest.Token(w.annaTok)).ExpectProblem(t, http.StatusForbidden, "forbidden")
	// (A string that is no UUID is refused by the shared JSON binder as a
	// 422 that names the value's format, not the field.)
	env.Do(t, http.MethodPatch, path, map[string]any{"lead_coach_id": "not-a-uuid"}, apitest.Token(w.adminTok)).ExpectProblem(t, http.StatusUnprocessableEntity, "validation_failed")
	for _, body := range []map[string]any{{"lead_coach_id": uuid.NewString()}, {"lead_coach_id": w.inactiveCoach(t).String()}, {"lead_coach_id": 7}} {
		r := env.Do(t, http.MethodPatch, path, body, apitest.Token(w.adminTok))
		if r.Status != http.StatusUnprocessableEntity && r.Status != http.StatusBadRequest {
			t.Errorf("PATCH %v = %d %s, want a 4xx", body, r.Status, r.Body)
		} else if p := r.Problem(t); len(p.Errors) == 0 || p.Errors[0].Field != "lead_coach_id" {
			t.Errorf("PATCH %v: errors %+v, want lead_coach_id named", body, p.Errors)
		}
	}
	var prog struct {
		LeadCoachID *string `json:"lead_coach_id"`
	}
	env.Do(t, http.MethodPatch, path, map[string]any{"lead_coach_id": w.anna.ID}, apitest.Token(w.adminTok)).Expect(t, http.StatusOK).JSON(t, &prog)
	if prog.LeadCoachID == nil || *prog.LeadCoachID != w.anna.ID.String() {
		t.Fatalf("lead_coach_id = %v", prog.LeadCoachID)
	}
	// A coach still edits the program's content.
	env.Do(t, http.MethodPatch, path, map[string]any{"title": "Free workshop"}, apitest.Token(w.beaTok)).Expect(t, http.StatusOK).JSON(t, &prog)
	if prog.LeadCoachID == nil {
		t.Errorf("an edit by a coach dropped the lead")
	}

	env.Do(t, http.MethodPost, "/v1/programs/free-workshop/free-access", map[string]any{
		"email": "cara@example.com", "name": "Cara", "disclaimer_accepted": true, "marketing_consent": false,
	}).Expect(t, http.StatusAccepted)
	if got := scopeListEmails(t, env, w.annaTok, "cara"); !slices.Equal(got, []string{"cara@example.com"}) {
		t.Errorf("anna, the lead, sees %v", got)
	}
	if got := scopeListEmails(t, env, w.beaTok, "cara"); len(got) != 0 {
		t.Errorf("bea sees %v", got)
	}

	env.Do(t, http.MethodPatch, path, map[string]any{"lead_coach_id": nil}, apitest.Token(w.adminTok)).Expect(t, http.StatusOK).JSON(t, &prog)
	if prog.LeadCoachID != nil {
		t.Errorf("lead_coach_id = %v after clearing", *prog.LeadCoachID)
	}
	if got := scopeListEmails(t, env, w.annaTok, "cara"); len(got) != 0 {
		t.Errorf("anna sees %v after losing the lead", got)
	}
}

// The delivery log shows a coach only her participants' email.
func TestDeliveryLogShowsOnlyHerParticipants(t *testing.T) {
	w := scopeNewWorld(t)
	env := w.env
	workshop := env.Program(t, "free-workshop", catalog.ProgramPublished, true)
	ok(t, env.DB.Model(&catalog.Program{}).Where("id = ?", workshop.ID).Update("lead_coach_id", w.bea.ID).Error)
	seq := drip.EmailSequence{Name: "Any", Trigger: drip.TriggerEnrollmentActivated, Kind: drip.SequenceTransactional, Active: true}
	ok(t, env.DB.Create(&seq).Error)
	minutes := 5
	st := drip.EmailStep{SequenceID: seq.ID, Position: 1, OffsetMinutes: &minutes, Subject: "Hi", Body: "Hi"}
	ok(t, env.DB.Create(&st).Error)
	deliver := func(p *people.Participant, cohortID, programID *uuid.UUID) uuid.UUID {
		env.Clock.Advance(time.Minute)
		now := env.Clock.Now()
		d := drip.EmailDelivery{ParticipantID: p.ID, Email: p.Email, SequenceID: &seq.ID, StepID: &st.ID, CohortID: cohortID, ProgramID: programID,
			SubjectKey: "scope:" + uuid.NewString(), AnchorAt: now, Timezone: "UTC", Status: drip.DeliveryScheduled, SendAt: now.Add(time.Hour), CreatedAt: now}
		ok(t, env.DB.Create(&d).Error)
		return d.ID
	}
	toAda := deliver(w.ada, &w.annaCohort.ID, nil)
	toBella := deliver(w.bella, &w.beaCoh.ID, nil)
	toAdaGlobal := deliver(w.ada, nil, nil)
	toAdaWorkshop := deliver(w.ada, nil, &workshop.ID) // she claimed Bea's workshop too
	ok(t, env.DB.Exec(`INSERT INTO access_grants (participant_id, program_id, source, starts_at) VALUES (?, ?, 'free_access', ?)`, w.ada.ID, workshop.ID, env.Clock.Now()).Error)

	tests := []struct {
		name, tok, query string
		want             []uuid.UUID
	}{
		{"admin", w.adminTok, "", []uuid.UUID{toAdaWorkshop, toAdaGlobal, toBella, toAda}},
		{"anna", w.annaTok, "", []uuid.UUID{toAda}},
		{"bea", w.beaTok, "", []uuid.UUID{toAdaWorkshop, toBella}},
		{"bea filters on ada", w.beaTok, "?participant_id=" + w.ada.ID.String(), []uuid.UUID{toAdaWorkshop}},
		{"anna filters on bella", w.annaTok, "?participant_id=" + w.bella.ID.String(), []uuid.UUID{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var list deliveryList
			r := env.Do(t, http.MethodGet, "/v1/admin/emails"+tt.query, nil, apitest.Token(tt.tok)).Expect(t, http.StatusOK)
			r.JSON(t, &list)
			if fmt.Sprint(list.ids()) != fmt.Sprint(tt.want) {
				t.Errorf("ids = %v, want %v", list.ids(), tt.want)
			}
		})
	}
}

type scopeAccessEntry struct {
	ID        string    `json:"id"`
	CoachName string    `json:"coach_name"`
	What      string    `json:"what"`
	At        time.Time `json:"at"`
}

func scopeAccessLog(t *testing.T, env *apitest.Env, path, tok string) []scopeAccessEntry {
	t.Helper()
	var all []scopeAccessEntry
	cursor := ""
	for range 20 {
		var page catList[scopeAccessEntry]
		env.Do(t, http.MethodGet, path+"?limit=2"+cursor, nil, apitest.Token(tok)).Expect(t, http.StatusOK).JSON(t, &page)
		all = append(all, page.Data...)
		if page.NextCursor == nil {
			return all
		}
		cursor = "&cursor=" + *page.NextCursor
	}
	t.Fatal("access log does not end")
	return nil
}

func scopeEntries(entries []scopeAccessEntry) []string {
	out := []string{}
	for _, e := range entries {
		out = append(out, e.CoachName+" "+e.What)
	}
	return out
}

// Every read of her data is in her access log, newest first, and she sees
// hers and no one else's.
func TestAccessLogRecordsEachRead(t *testing.T) {
	w := scopeNewWorld(t)
	env := w.env
	step := func() { env.Clock.Advance(time.Minute) }
	env.Do(t, http.MethodGet, "/v1/admin/participants/"+w.ada.ID.String(), nil, apitest.Token(w.annaTok)).Expect(t, http.StatusOK)
	step()
	env.Do(t, http.MethodGet, "/v1/admin/participants/"+w.ada.ID.String(), nil, apitest.Token(w.beaTok)).ExpectProblem(t, http.StatusNotFound, "not_found")
	env.Do(t, http.MethodGet, "/v1/admin/participants", nil, apitest.Token(w.annaTok)).Expect(t, http.StatusOK)
	step()
	env.Do(t, http.MethodGet, "/v1/admin/cohorts/"+w.annaCohort.ID.String()+"/enrollments", nil, apitest.Token(w.annaTok)).Expect(t, http.StatusOK)
	step()
	seq := createSequenceAPI(t, env, w.annaTok, map[string]any{"name": "Mine", "trigger": "enrollment_activated", "kind": "transactional", "cohort_id": w.annaCohort.ID})
	st := createStepAPI(t, env, w.annaTok, seq.ID, map[string]any{"offset_minutes": 5, "subject": "Hi {{first_name}}", "body": "Hi"})
	env.Do(t, http.MethodPost, "/v1/admin/steps/"+st.ID+"/preview", map[string]any{"participant_id": w.ada.ID}, apitest.Token(w.annaTok)).Expect(t, http.StatusOK)
	env.Do(t, http.MethodPost, "/v1/admin/steps/"+st.ID+"/preview", nil, apitest.Token(w.annaTok)).Expect(t, http.StatusOK)
	step()
	env.Do(t, http.MethodGet, "/v1/admin/participants?q=ada", nil, apitest.Token(w.adminTok)).Expect(t, http.StatusOK)
	step()
	env.Do(t, http.MethodGet, "/v1/admin/emails", nil, apitest.Token(w.beaTok)).Expect(t, http.StatusOK)

	wantAda := []string{"Coach admin@coach.test listed", "Anna Berg email_previewed", "Anna Berg enrollments_listed", "Anna Berg listed", "Anna Berg profile_viewed"}
	ada := scopeAccessLog(t, env, "/v1/portal/access-log", w.adaTok)
	if got := scopeEntries(ada); !slices.Equal(got, wantAda) {
		t.Errorf("ada's access log:\n%v\nwant\n%v", got, wantAda)
	}
	if got := scopeEntries(scopeAccessLog(t, env, "/v1/admin/participants/"+w.ada.ID.String()+"/access-log", w.adminTok)); !slices.Equal(got, wantAda) {
		t.Errorf("admin's view of ada's access log: %v", got)
	}
	for i := 1; i < len(ada); i++ {
		if ada[i].At.After(ada[i-1].At) {
			t.Errorf("entries not newest first: %v", ada)
		}
	}
	if got := scopeEntries(scopeAccessLog(t, env, "/v1/portal/access-log", w.bellaTok)); len(got) != 0 {
		t.Errorf("bella's access log: %v, want empty (no one read her data)", got)
	}

	// The log names a coach as she was named when she looked.
	ok(t, env.DB.Model(&people.Coach{}).Where("id = ?", w.anna.ID).Update("name", "Anna Renamed").Error)
	if got := scopeEntries(scopeAccessLog(t, env, "/v1/portal/access-log", w.adaTok)); !slices.Equal(got, wantAda) {
		t.Errorf("after a rename: %v", got)
	}

	// Only admins read it per participant; bad input is a 4xx.
	adaLog := "/v1/admin/participants/" + w.ada.ID.String() + "/access-log"
	env.Do(t, http.MethodGet, adaLog, nil, apitest.Token(w.annaTok)).ExpectProblem(t, http.StatusForbidden, "forbidden")
	env.Do(t, http.MethodGet, adaLog, nil).ExpectProblem(t, http.StatusUnauthorized, "unauthorized")
	env.Do(t, http.MethodGet, "/v1/admin/participants/"+uuid.NewString()+"/access-log", nil, apitest.Token(w.adminTok)).ExpectProblem(t, http.StatusNotFound, "not_found")
	env.Do(t, http.MethodGet, "/v1/admin/participants/nope/access-log", nil, apitest.Token(w.adminTok)).ExpectProblem(t, http.StatusNotFound, "not_found")
	for _, q := range []string{"?limit=0", "?limit=101", "?limit=x", "?cursor=garbage"} {
		r := env.Do(t, http.MethodGet, "/v1/portal/access-log"+q, nil, apitest.Token(w.adaTok))
		if r.Status != http.StatusBadRequest {
			t.Errorf("%s = %d, want 400", q, r.Status)
		}
		env.Do(t, http.MethodGet, adaLog+q, nil, apitest.Token(w.adminTok)).Expect(t, http.StatusBadRequest)
	}
	env.Do(t, http.MethodGet, "/v1/portal/access-log", nil).ExpectProblem(t, http.StatusUnauthorized, "unauthorized")
	env.Do(t, http.MethodGet, "/v1/portal/access-log", nil, apitest.Token(w.annaTok)).ExpectProblem(t, http.StatusUnauthorized, "invalid_token")
}

// A list logs the women on the page it shows, not the one fetched to learn
// that another page follows.
func TestAccessLogListsLogOnlyThePageShown(t *testing.T) {
	w := scopeNewWorld(t)
	env := w.env
	env.Do(t, http.MethodGet, "/v1/admin/participants?limit=1", nil, apitest.Token(w.adminTok)).Expect(t, http.StatusOK)
	var n int64
	ok(t, env.DB.Model(&people.AccessEntry{}).Count(&n).Error)
	if n != 1 {
		t.Errorf("%d entries after a page of one, want 1", n)
	}
}

// If the log cannot be written, the read fails: nothing is shown unlogged.
func TestAccessLogFailureFailsTheRead(t *testing.T) {
	w := scopeNewWorld(t)
	env := w.env
	ok(t, env.DB.Exec(`
		CREATE FUNCTION scope_test_refuse_log() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'access log unavailable'; END $$;
		CREATE TRIGGER scope_test_refuse_log BEFORE INSERT ON participant_access_log
		FOR EACH ROW WHEN (NEW.coach_name = 'Anna Berg') EXECUTE FUNCTION scope_test_refuse_log();`).Error)
	for _, path := range []string{
		"/v1/admin/participants/" + w.ada.ID.String(),
		"/v1/admin/participants",
		"/v1/admin/cohorts/" + w.annaCohort.ID.String() + "/enrollments",
	} {
		r := env.Do(t, http.MethodGet, path, nil, apitest.Token(w.annaTok))
		if r.Status < 500 || bytes.Contains(r.Body, []byte("ada@example.com")) {
			t.Errorf("GET %s with the log failing = %d %s", path, r.Status, r.Body)
		}
	}
	var n int64
	ok(t, env.DB.Model(&people.AccessEntry{}).Count(&n).Error)
	if n != 0 {
		t.Errorf("%d entries written", n)
	}
	// Another coach's reads still work and are logged.
	env.Do(t, http.MethodGet, "/v1/admin/participants/"+w.ada.ID.String(), nil, apitest.Token(w.adminTok)).Expect(t, http.StatusOK)
}

package api_test

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/grace-coaching/grace/api/apitest"
	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/drip"
	"github.com/grace-coaching/grace/models/enroll"
	"github.com/grace-coaching/grace/models/people"
)

type sequenceJSON struct {
	ID               string  `json:"id"`
	Name             string  `json:"name"`
	Trigger          string  `json:"trigger"`
	ProgramID        *string `json:"program_id"`
	CohortID         *string `json:"cohort_id"`
	Kind             string  `json:"kind"`
	Active           bool    `json:"active"`
	ExitOnEnrollment bool    `json:"exit_on_enrollment"`
}

type stepJSON struct {
	ID            string  `json:"id"`
	SequenceID    string  `json:"sequence_id"`
	Position      int     `json:"position"`
	OffsetMinutes *int    `json:"offset_minutes"`
	OffsetDays    *int    `json:"offset_days"`
	SendAtLocal   *string `json:"send_at_local"`
	Subject       string  `json:"subject"`
	Body          string  `json:"body"`
}

func createSequenceAPI(t *testing.T, env *apitest.Env, token string, body map[string]any) sequenceJSON {
	t.Helper()
	var s sequenceJSON
	env.Do(t, http.MethodPost, "/v1/admin/sequences", body, apitest.Token(token)).Expect(t, http.StatusCreated).JSON(t, &s)
	return s
}

func createStepAPI(t *testing.T, env *apitest.Env, token, seqID string, body map[string]any) stepJSON {
	t.Helper()
	var s stepJSON
	env.Do(t, http.MethodPost, "/v1/admin/sequences/"+seqID+"/steps", body, apitest.Token(token)).Expect(t, http.StatusCreated).JSON(t, &s)
	return s
}

func sequenceCohort(t *testing.T, env *apitest.Env, admin *people.Coach, programID uuid.UUID, lead *people.Coach) *enroll.CohortView {
	t.Helper()
	start := env.Clock.Now().Add(14 * 24 * time.Hour)
	co, err := env.Svc.Enroll.CreateCohort(context.Background(), admin, enroll.CohortInput{
		ProgramID: programID, Name: "Spring Circle", StartsAt: start, EndsAt: start.Add(30 * 24 * time.Hour),
		Timezone: "Europe/London", Capacity: 10, PriceCents: 30000, Currency: "EUR", CoachIDs: []uuid.UUID{lead.ID},
	})
	if err != nil {
		t.Fatalf("create cohort: %v", err)
	}
	return co
}

func TestSequenceAndStepCRUD(t *testing.T) {
	env := apitest.NewEnv(t)
	_, token := env.Coach(t, "admin@example.com", people.RoleAdmin)
	prog := env.Program(t, "say-no", catalog.ProgramPublished, true)

	seq := createSequenceAPI(t, env, token, map[string]any{
		"name": "Welcome", "trigger": "free_access_claimed", "program_id": prog.ID, "kind": "marketing", "exit_on_enrollment": true,
	})
	if seq.Name != "Welcome" || seq.Trigger != "free_access_claimed" || seq.ProgramID == nil || *seq.ProgramID != prog.ID.String() ||
		seq.CohortID != nil || seq.Kind != "marketing" || seq.Active || !seq.ExitOnEnrollment {
		t.Fatalf("created %+v", seq)
	}
	var got sequenceJSON
	env.Do(t, http.MethodGet, "/v1/admin/sequences/"+seq.ID, nil, apitest.Token(token)).Expect(t, 200).JSON(t, &got)
	if !reflect.DeepEqual(got, seq) {
		t.Errorf("GET %+v, want %+v", got, seq)
	}
	var list struct {
		Data []sequenceJSON `json:"data"`
	}
	env.Do(t, http.MethodGet, "/v1/admin/sequences", nil, apitest.Token(token)).Expect(t, 200).JSON(t, &list)
	if len(list.Data) != 1 || list.Data[0].ID != seq.ID {
		t.Errorf("list %+v", list.Data)
	}
	env.Do(t, http.MethodPatch, "/v1/admin/sequences/"+seq.ID, map[string]any{"name": "Welcome series", "active": true},
		apitest.Token(token)).Expect(t, 200).JSON(t, &got)
	if got.Name != "Welcome series" || !got.Active || got.Trigger != "free_access_claimed" {
		t.Errorf("PATCH %+v", got)
	}

	first := createStepAPI(t, env, token, seq.ID, map[string]any{"offset_minutes": 5, "subject": "Welcome, {{first_name}}", "body": "Start here: {{portal_url}}"})
	second := createStepAPI(t, env, token, seq.ID, map[string]any{"offset_days": 2, "send_at_local": "09:00", "subject": "Day two", "body": "Hello {{first_name}}"})
	zeroth := createStepAPI(t, env, token, seq.ID, map[string]any{"position": 1, "offset_minutes": 0, "subject": "Right away", "body": "Hi"})
	if first.Position != 1 || second.Position != 2 || zeroth.Position != 1 || second.OffsetMinutes != nil || *second.OffsetDays != 2 || *second.SendAtLocal != "09:00" {
		t.Fatalf("steps %+v %+v %+v", first, second, zeroth)
	}
	var steps struct {
		Data []stepJSON `json:"data"`
	}
	env.Do(t, http.MethodGet, "/v1/admin/sequences/"+seq.ID+"/steps", nil, apitest.Token(token)).Expect(t, 200).JSON(t, &steps)
	if len(steps.Data) != 3 || steps.Data[0].ID != zeroth.ID || steps.Data[1].ID != first.ID || steps.Data[2].ID != second.ID {
		t.Fatalf("steps in order: %+v", steps.Data)
	}

	var patched stepJSON
	env.Do(t, http.MethodPatch, "/v1/admin/steps/"+second.ID, map[string]any{"offset_minutes": 2880, "position": 1},
		apitest.Token(token)).Expect(t, 200).JSON(t, &patched)
	if patched.Position != 1 || patched.OffsetMinutes == nil || *patched.OffsetMinutes != 2880 || patched.OffsetDays != nil || patched.SendAtLocal != nil {
		t.Errorf("PATCH step %+v", patched)
	}
	env.Do(t, http.MethodDelete, "/v1/admin/steps/"+zeroth.ID, nil, apitest.Token(token)).Expect(t, http.StatusNoContent)
	env.Do(t, http.MethodGet, "/v1/admin/sequences/"+seq.ID+"/steps", nil, apitest.Token(token)).Expect(t, 200).JSON(t, &steps)
	if len(steps.Data) != 2 || steps.Data[0].ID != second.ID || steps.Data[1].Position != 2 {
		t.Errorf("after delete: %+v", steps.Data)
	}

	env.Do(t, http.MethodDelete, "/v1/admin/sequences/"+seq.ID, nil, apitest.Token(token)).Expect(t, http.StatusNoContent)
	env.Do(t, http.MethodGet, "/v1/admin/sequences/"+seq.ID, nil, apitest.Token(token)).ExpectProblem(t, 404, "not_found")
	env.Do(t, http.MethodPatch, "/v1/admin/steps/"+first.ID, map[string]any{"subject": "x"}, apitest.Token(token)).ExpectProblem(t, 404, "not_found")
	env.Do(t, http.MethodGet, "/v1/admin/sequences/not-a-uuid", nil, apitest.Token(token)).ExpectProblem(t, 404, "not_found")
	if n := env.Count(t, "email_steps"); n != 0 {
		t.Errorf("%d steps left after deleting the sequence", n)
	}
	env.Do(t, http.MethodGet, "/v1/admin/sequences", nil).ExpectProblem(t, 401, "unauthorized")
}

// Admins manage every sequence; a coach reads the program-wide and global
// ones and manages those of the cohorts she leads or co-leads. Another coach's cohort
// sequence is not found for her, and she cannot scope one to that cohort.
func TestSequenceScopingCoachVersusAdmin(t *testing.T) {
	env := apitest.NewEnv(t)
	admin, adminToken := env.Coach(t, "admin@example.com", people.RoleAdmin)
	lead, leadToken := env.Coach(t, "lead@example.com", people.RoleCoach)
	_, otherToken := env.Coach(t, "other@example.com", people.RoleCoach)
	prog := env.Program(t, "say-no", catalog.ProgramPublished, false)
	co := sequenceCohort(t, env, admin, prog.ID, lead)

	cohortSeq := createSequenceAPI(t, env, leadToken, map[string]any{"name": "Onboarding", "trigger": "cohort_start", "cohort_id": co.ID, "kind": "transactional"})
	createSequenceAPI(t, env, adminToken, map[string]any{"name": "Welcome", "trigger": "free_access_claimed", "program_id": prog.ID, "kind": "marketing"})
	step := createStepAPI(t, env, leadToken, cohortSeq.ID, map[string]any{"offset_days": -7, "send_at_local": "09:00", "subject": "One week to go", "body": "Hi {{first_name}}"})

	count := func(token string) int {
		var list struct {
			Data []sequenceJSON `json:"data"`
		}
		env.Do(t, http.MethodGet, "/v1/admin/sequences", nil, apitest.Token(token)).Expect(t, 200).JSON(t, &list)
		return len(list.Data)
	}
	if a, l, o := count(adminToken), count(leadToken), count(otherToken); a != 2 || l != 2 || o != 1 {
		t.Errorf("admin sees %d, lead %d, other coach %d; want 2, 2, 1", a, l, o)
	}
	for _, r := range []struct {
		method, path string
		body         any
	}{
		{http.MethodGet, "/v1/admin/sequences/" + cohortSeq.ID, nil},
		{http.MethodPatch, "/v1/admin/sequences/" + cohortSeq.ID, map[string]any{"active": true}},
		{http.MethodDelete, "/v1/admin/sequences/" + cohortSeq.ID, nil},
		{http.MethodGet, "/v1/admin/sequences/" + cohortSeq.ID + "/steps", nil},
		{http.MethodPost, "/v1/admin/sequences/" + cohortSeq.ID + "/steps", map[string]any{"offset_minutes": 0, "subject": "s", "body": "b"}},
		{http.MethodPatch, "/v1/admin/steps/" + step.ID, map[string]any{"subject": "Hijacked"}},
		{http.MethodDelete, "/v1/admin/steps/" + step.ID, nil},
		{http.MethodPost, "/v1/admin/steps/" + step.ID + "/preview", map[string]any{}},
		{http.MethodPost, "/v1/admin/steps/" + step.ID + "/test-send", map[string]any{"to": "other@example.com"}},
	} {
		env.Do(t, r.method, r.path, r.body, apitest.Token(otherToken)).ExpectProblem(t, 404, "not_found")
	}
	p := env.Do(t, http.MethodPost, "/v1/admin/sequences", map[string]any{"name": "Mine now", "trigger": "cohort_start", "cohort_id": co.ID, "kind": "transactional"},
		apitest.Token(otherToken)).ExpectProblem(t, 422, "validation_failed")
	if len(p.Errors) != 1 || p.Errors[0].Field != "cohort_id" {
		t.Errorf("errors %+v", p.Errors)
	}
	if n := env.Count(t, "email_sequences"); n != 2 {
		t.Errorf("%d sequences, want 2", n)
	}
	if n := env.Count(t, "outbox"); n != 0 {
		t.Errorf("%d outbox rows after refused test send", n)
	}
	// The admin manages it all.
	env.Do(t, http.MethodPatch, "/v1/admin/steps/"+step.ID, map[string]any{"subject": "Seven days to go"}, apitest.Token(adminToken)).Expect(t, 200)
}

// Bad input is a 4xx problem naming the field, and writes nothing.
func TestSequenceAndStepBadInput(t *testing.T) {
	env := apitest.NewEnv(t)
	_, token := env.Coach(t, "admin@example.com", people.RoleAdmin)
	prog := env.Program(t, "say-no", catalog.ProgramPublished, false)

	seqTests := []struct {
		name   string
		body   any
		status int
		code   string
		field  string
	}{
		{"unknown trigger", map[string]any{"name": "x", "trigger": "birthday", "kind": "marketing"}, 422, "validation_failed", "trigger"},
		{"unknown kind", map[string]any{"name": "x", "trigger": "cohort_start", "kind": "newsletter"}, 422, "validation_failed", "kind"},
		{"both scopes", map[string]any{"name": "x", "trigger": "cohort_start", "kind": "marketing", "program_id": prog.ID, "cohort_id": uuid.New()}, 422, "validation_failed", "cohort_id"},
		{"unknown program", map[string]any{"name": "x", "trigger": "cohort_start", "kind": "marketing", "program_id": uuid.New()}, 422, "validation_failed", "program_id"},
		{"missing name", map[string]any{"trigger": "cohort_start", "kind": "marketing"}, 422, "validation_failed", "name"},
		{"unknown field", map[string]any{"name": "x", "trigger": "cohort_start", "kind": "marketing", "colour": "red"}, 400, "unknown_field", "colour"},
	}
	for _, tt := range seqTests {
		t.Run("sequence/"+tt.name, func(t *testing.T) {
			p := env.Do(t, http.MethodPost, "/v1/admin/sequences", tt.body, apitest.Token(token)).ExpectProblem(t, tt.status, tt.code)
			if len(p.Errors) == 0 || p.Errors[0].Field != tt.field {
				t.Errorf("errors %+v, want one on %s", p.Errors, tt.field)
			}
		})
	}
	if n := env.Count(t, "email_sequences"); n != 0 {
		t.Fatalf("%d sequences written by refused requests", n)
	}

	seq := createSequenceAPI(t, env, token, map[string]any{"name": "Welcome", "trigger": "free_access_claimed", "program_id": prog.ID, "kind": "marketing"})
	stepTests := []struct {
		name    string
		body    map[string]any
		field   string
		message string
	}{
		{"unknown placeholder", map[string]any{"offset_minutes": 5, "subject": "Hi", "body": "Dear {{last_name}},"}, "body", "{{last_name}}"},
		{"unknown placeholder in subject", map[string]any{"offset_minutes": 5, "subject": "Hi {{nickname}}", "body": "b"}, "subject", "{{nickname}}"},
		{"unclosed braces", map[string]any{"offset_minutes": 5, "subject": "Hi", "body": "Dear {{first_name,"}, "body", "not closed"},
		{"stray closing braces", map[string]any{"offset_minutes": 5, "subject": "Hi", "body": "Dear first_name}}"}, "body", "}}"},
		{"both offset kinds", map[string]any{"offset_minutes": 5, "offset_days": 1, "send_at_local": "09:00", "subject": "Hi", "body": "b"}, "offset_minutes", "not both"},
		{"no offset", map[string]any{"subject": "Hi", "body": "b"}, "offset_minutes", "required"},
		{"bad local time", map[string]any{"offset_days": 1, "send_at_local": "9am", "subject": "Hi", "body": "b"}, "send_at_local", "HH:MM"},
	}
	for _, tt := range stepTests {
		t.Run("step/"+tt.name, func(t *testing.T) {
			p := env.Do(t, http.MethodPost, "/v1/admin/sequences/"+seq.ID+"/steps", tt.body, apitest.Token(token)).ExpectProblem(t, 422, "validation_failed")
			found := false
			for _, e := range p.Errors {
				found = found || (e.Field == tt.field && strings.Contains(e.Message, tt.message))
			}
			if !found {
				t.Errorf("errors %+v, want one on %s mentioning %q", p.Errors, tt.field, tt.message)
			}
		})
	}
	if n := env.Count(t, "email_steps"); n != 0 {
		t.Fatalf("%d steps written by refused requests", n)
	}

	// The same on edit: the step keeps what it had.
	st := createStepAPI(t, env, token, seq.ID, map[string]any{"offset_minutes": 5, "subject": "Hi {{first_name}}", "body": "Welcome"})
	env.Do(t, http.MethodPatch, "/v1/admin/steps/"+st.ID, map[string]any{"body": "Hi {{frist_name}}"}, apitest.Token(token)).ExpectProblem(t, 422, "validation_failed")
	env.Do(t, http.MethodPatch, "/v1/admin/steps/"+st.ID, map[string]any{"subject": nil}, apitest.Token(token)).ExpectProblem(t, 422, "validation_failed")
	var steps struct {
		Data []stepJSON `json:"data"`
	}
	env.Do(t, http.MethodGet, "/v1/admin/sequences/"+seq.ID+"/steps", nil, apitest.Token(token)).Expect(t, 200).JSON(t, &steps)
	if len(steps.Data) != 1 || steps.Data[0].Body != "Welcome" || steps.Data[0].Subject != "Hi {{first_name}}" {
		t.Errorf("step after refused edits: %+v", steps.Data)
	}
	env.Do(t, http.MethodPost, "/v1/admin/steps/"+st.ID+"/test-send", map[string]any{"to": "not an email"}, apitest.Token(token)).ExpectProblem(t, 422, "validation_failed")
	env.Do(t, http.MethodPost, "/v1/admin/steps/"+st.ID+"/preview", map[string]any{"participant_id": uuid.New()}, apitest.Token(token)).ExpectProblem(t, 422, "validation_failed")
	if n := env.Count(t, "outbox"); n != 0 {
		t.Errorf("%d outbox rows after a refused test send", n)
	}
}

func TestPreviewRendersHerName(t *testing.T) {
	env := apitest.NewEnv(t)
	_, token := env.Coach(t, "admin@example.com", people.RoleAdmin)
	prog := env.Program(t, "say-no", catalog.ProgramPublished, true)
	p, _ := env.Participant(t, "ana@example.com")
	// She has signed in from her inbox: a proven address is greeted by name.
	if err := env.DB.Model(&people.Participant{}).Where("id = ?", p.ID).
		Updates(map[string]any{"name": "Ana Lopez", "email_verified_at": env.Clock.Now()}).Error; err != nil {
		t.Fatal(err)
	}
	env.Grant(t, p.ID, prog.ID, people.GrantFreeAccess, env.Clock.Now())
	seq := createSequenceAPI(t, env, token, map[string]any{"name": "Welcome", "trigger": "free_access_claimed", "program_id": prog.ID, "kind": "marketing"})
	st := createStepAPI(t, env, token, seq.ID, map[string]any{"offset_minutes": 5,
		"subject": "Welcome to {{program_title}}, {{first_name}}", "body": "Dear {{first_name}},\n\nYour first lesson is waiting at {{portal_url}}."})

	var out struct {
		Subject string `json:"subject"`
		HTML    string `json:"html"`
		Text    string `json:"text"`
	}
	env.Do(t, http.MethodPost, "/v1/admin/steps/"+st.ID+"/preview", map[string]any{"participant_id": p.ID}, apitest.Token(token)).Expect(t, 200).JSON(t, &out)
	if out.Subject != "Welcome to "+prog.Title+", Ana" {
		t.Errorf("subject %q", out.Subject)
	}
	for part, body := range map[string]string{"html": out.HTML, "text": out.Text} {
		if !strings.Contains(body, "Dear Ana,") || !strings.Contains(body, "http://portal.test/portal") || strings.Contains(body, "{{") {
			t.Errorf("%s part:\n%s", part, body)
		}
	}
	// Without a participant: sample values; and no body at all is fine.
	env.Do(t, http.MethodPost, "/v1/admin/steps/"+st.ID+"/preview", nil, apitest.Token(token)).Expect(t, 200).JSON(t, &out)
	if strings.Contains(out.Subject, "Ana") || strings.Contains(out.Subject, "{{") {
		t.Errorf("sample subject %q", out.Subject)
	}
	if n := env.Count(t, "outbox"); n != 0 {
		t.Errorf("a preview queued %d emails", n)
	}
}

func TestTestSendEnqueuesOneOutboxEmail(t *testing.T) {
	env := apitest.NewEnv(t)
	// A program-wide sequence is an admin's to write.
	_, token := env.Coach(t, "admin@example.com", people.RoleAdmin)
	prog := env.Program(t, "say-no", catalog.ProgramPublished, true)
	seq := createSequenceAPI(t, env, token, map[string]any{"name": "Welcome", "trigger": "free_access_claimed", "program_id": prog.ID, "kind": "marketing"})
	st := createStepAPI(t, env, token, seq.ID, map[string]any{"offset_minutes": 5, "subject": "Welcome, {{first_name}}", "body": "Start {{program_title}} today."})

	env.Do(t, http.MethodPost, "/v1/admin/steps/"+st.ID+"/test-send", map[string]any{"to": "Coach@Example.com"}, apitest.Token(token)).Expect(t, http.StatusAccepted)
	var rows []models.OutboxMessage
	if err := env.DB.Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("%d outbox rows, want 1", len(rows))
	}
	m := rows[0]
	if m.Template != drip.TemplateDripTest || m.ToEmail != "coach@example.com" || m.Status != models.OutboxPending {
		t.Errorf("outbox row %+v", m)
	}
	subject, _ := m.Data["subject"].(string)
	text, _ := m.Data["text"].(string)
	if strings.Contains(subject, "{{") || !strings.HasPrefix(subject, "Welcome, ") || !strings.Contains(text, prog.Title) || m.Data["html"] == "" {
		t.Errorf("outbox data %+v", m.Data)
	}
}

// Deleting a step or its sequence cancels what is still scheduled at once,
// and keeps the log of what was sent.
func TestSequenceDeletionCancelsScheduledDeliveries(t *testing.T) {
	env := apitest.NewEnv(t)
	_, token := env.Coach(t, "admin@example.com", people.RoleAdmin)
	prog := env.Program(t, "say-no", catalog.ProgramPublished, true)
	p, _ := env.Participant(t, "ana@example.com")
	seq := createSequenceAPI(t, env, token, map[string]any{"name": "Welcome", "trigger": "free_access_claimed", "program_id": prog.ID, "kind": "marketing"})
	a := createStepAPI(t, env, token, seq.ID, map[string]any{"offset_minutes": 5, "subject": "A", "body": "a"})
	b := createStepAPI(t, env, token, seq.ID, map[string]any{"offset_days": 2, "send_at_local": "09:00", "subject": "B", "body": "b"})
	now := env.Clock.Now()
	deliver := func(stepID string, status drip.DeliveryStatus) uuid.UUID {
		t.Helper()
		seqID, sid := uuid.MustParse(seq.ID), uuid.MustParse(stepID)
		d := &drip.EmailDelivery{ParticipantID: p.ID, Email: p.Email, SequenceID: &seqID, StepID: &sid,
			SubjectKey: "program:" + prog.ID.String() + "/" + string(status), ProgramID: &prog.ID, AnchorAt: now, Timezone: "UTC", Status: status, SendAt: now.Add(time.Hour)}
		if status == drip.DeliverySent {
			d.SentAt = &now
		}
		if err := env.DB.Create(d).Error; err != nil {
			t.Fatal(err)
		}
		return d.ID
	}
	aScheduled, aSent, bScheduled := deliver(a.ID, drip.DeliveryScheduled), deliver(a.ID, drip.DeliverySent), deliver(b.ID, drip.DeliveryScheduled)
	state := func(id uuid.UUID) string {
		t.Helper()
		var d drip.EmailDelivery
		if err := env.DB.Where("id = ?", id).Take(&d).Error; err != nil {
			t.Fatal(err)
		}
		if d.LastError != nil {
			return string(d.Status) + " " + *d.LastError
		}
		return string(d.Status)
	}

	env.Do(t, http.MethodDelete, "/v1/admin/steps/"+a.ID, nil, apitest.Token(token)).Expect(t, http.StatusNoContent)
	if got := state(aScheduled); !strings.HasPrefix(got, "cancelled step_deleted") {
		t.Errorf("scheduled row of the deleted step: %s", got)
	}
	if got := state(aSent); got != "sent" {
		t.Errorf("sent row of the deleted step: %s", got)
	}
	if got := state(bScheduled); got != "scheduled" {
		t.Errorf("row of another step: %s", got)
	}
	env.Do(t, http.MethodDelete, "/v1/admin/sequences/"+seq.ID, nil, apitest.Token(token)).Expect(t, http.StatusNoContent)
	if got := state(bScheduled); !strings.HasPrefix(got, "cancelled sequence_deleted") {
		t.Errorf("scheduled row of the deleted sequence: %s", got)
	}
	if n := env.Count(t, "email_deliveries"); n != 3 {
		t.Errorf("%d delivery rows, want the whole log of 3", n)
	}
}

// Once emails went out, the trigger and scope stay: 409 sequence_in_use.
func TestSequenceTriggerFrozenOnceUsed(t *testing.T) {
	env := apitest.NewEnv(t)
	_, token := env.Coach(t, "admin@example.com", people.RoleAdmin)
	prog := env.Program(t, "say-no", catalog.ProgramPublished, true)
	p, _ := env.Participant(t, "ana@example.com")
	seq := createSequenceAPI(t, env, token, map[string]any{"name": "Welcome", "trigger": "free_access_claimed", "program_id": prog.ID, "kind": "marketing"})
	st := createStepAPI(t, env, token, seq.ID, map[string]any{"offset_minutes": 5, "subject": "A", "body": "a"})
	seqID, stepID, now := uuid.MustParse(seq.ID), uuid.MustParse(st.ID), env.Clock.Now()
	if err := env.DB.Create(&drip.EmailDelivery{ParticipantID: p.ID, Email: p.Email, SequenceID: &seqID, StepID: &stepID,
		SubjectKey: "program:" + prog.ID.String(), AnchorAt: now, Timezone: "UTC", Status: drip.DeliverySent, SendAt: now, SentAt: &now}).Error; err != nil {
		t.Fatal(err)
	}
	env.Do(t, http.MethodPatch, "/v1/admin/sequences/"+seq.ID, map[string]any{"program_id": nil}, apitest.Token(token)).ExpectProblem(t, 409, "sequence_in_use")
	env.Do(t, http.MethodPatch, "/v1/admin/sequences/"+seq.ID, map[string]any{"active": true, "name": "Renamed"}, apitest.Token(token)).Expect(t, 200)
}

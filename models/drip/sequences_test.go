package drip_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/domain"
	"github.com/grace-coaching/grace/models/drip"
	"github.com/grace-coaching/grace/models/enroll"
	"github.com/grace-coaching/grace/models/modelstest"
	"github.com/grace-coaching/grace/models/people"
)

// sqRenderer is a stand-in for emails/drip: it substitutes the placeholders
// and records what it was asked to render.
type sqRenderer struct {
	mu   sync.Mutex
	last drip.RenderRequest
}

func (r *sqRenderer) RenderStep(req drip.RenderRequest) (drip.RenderedEmail, error) {
	r.mu.Lock()
	r.last = req
	r.mu.Unlock()
	v := req.Vars
	rep := strings.NewReplacer("{{first_name}}", v.FirstName, "{{program_title}}", v.ProgramTitle, "{{cohort_name}}", v.CohortName,
		"{{portal_url}}", v.PortalURL, "{{lesson_title}}", v.LessonTitle, "{{session_starts_at}}", v.SessionStartsAt,
		"{{unsubscribe_url}}", v.UnsubscribeURL)
	body := rep.Replace(req.Step.Body)
	return drip.RenderedEmail{Subject: rep.Replace(req.Step.Subject), HTML: "<p>" + body + "</p>", Text: body}, nil
}

func (r *sqRenderer) lastRequest() drip.RenderRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

type sqEnv struct {
	svc      *domain.Services
	db       *gorm.DB
	clock    *models.FakeClock
	renderer *sqRenderer
	admin    *people.Coach
	program  *catalog.Program
}

func newSqEnv(t *testing.T) *sqEnv {
	t.Helper()
	db := modelstest.NewDB(t)
	clock := models.NewFakeClock(modelstest.Start)
	r := &sqRenderer{}
	svc := domain.New(domain.Deps{DB: db, Clock: clock, DripRenderer: r, AppBaseURL: "https://app.test",
		UnsubscribeURL: unsubscribeAt("https://api.test"), UnsubscribeMailbox: "unsubscribe@example.com"})
	e := &sqEnv{svc: svc, db: db, clock: clock, renderer: r}
	e.admin = sqCoach(t, db, "admin@example.com", people.RoleAdmin)
	var err error
	e.program, err = svc.Catalog.CreateProgram(context.Background(), catalog.ProgramInput{Slug: "say-no", Title: "Say No With Grace"})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func sqCoach(t *testing.T, db *gorm.DB, email string, role people.Role) *people.Coach {
	t.Helper()
	c := &people.Coach{Email: email, Name: email, Role: role, Active: true}
	if err := db.Create(c).Error; err != nil {
		t.Fatalf("create coach: %v", err)
	}
	return c
}

func (e *sqEnv) cohort(t *testing.T, name string, lead *people.Coach) *enroll.CohortView {
	t.Helper()
	start := e.clock.Now().Add(14 * 24 * time.Hour)
	co, err := e.svc.Enroll.CreateCohort(context.Background(), e.admin, enroll.CohortInput{
		ProgramID: e.program.ID, Name: name, StartsAt: start, EndsAt: start.Add(30 * 24 * time.Hour),
		Timezone: "America/Los_Angeles", Capacity: 10, PriceCents: 30000, Currency: "EUR", CoachIDs: []uuid.UUID{lead.ID},
	})
	if err != nil {
		t.Fatalf("create cohort: %v", err)
	}
	return co
}

func (e *sqEnv) sequence(t *testing.T, actor *people.Coach, in drip.SequenceInput) *drip.EmailSequence {
	t.Helper()
	if in.Name == "" {
		in.Name = "Welcome"
	}
	if in.Trigger == "" {
		in.Trigger = drip.TriggerFreeAccessClaimed
	}
	if in.Kind == "" {
		in.Kind = drip.SequenceMarketing
	}
	seq, err := e.svc.Drip.CreateSequence(context.Background(), actor, in)
	if err != nil {
		t.Fatalf("create sequence: %v", err)
	}
	return seq
}

func sqMinutes(m int) *int { return &m }

func (e *sqEnv) step(t *testing.T, seqID uuid.UUID, subject string, pos int) *drip.EmailStep {
	t.Helper()
	st, err := e.svc.Drip.CreateStep(context.Background(), e.admin, seqID, drip.StepInput{
		Position: pos, OffsetMinutes: sqMinutes(5), Subject: subject, Body: "Hello {{first_name}}",
	})
	if err != nil {
		t.Fatalf("create step %q: %v", subject, err)
	}
	return st
}

func (e *sqEnv) stepOrder(t *testing.T, seqID uuid.UUID) string {
	t.Helper()
	var steps []drip.EmailStep
	if err := e.db.Where("sequence_id = ?", seqID).Order("position").Find(&steps).Error; err != nil {
		t.Fatal(err)
	}
	var out []string
	for i, st := range steps {
		if st.Position != i+1 {
			t.Fatalf("positions not dense: %q at %d, want %d", st.Subject, st.Position, i+1)
		}
		out = append(out, st.Subject)
	}
	return strings.Join(out, ",")
}

func (e *sqEnv) participant(t *testing.T, email, name string) *people.Participant {
	t.Helper()
	// Her address is verified, so email may greet her by name.
	verified := e.clock.Now().Add(-24 * time.Hour)
	p := &people.Participant{Email: email, Name: name, Timezone: "UTC", EmailVerifiedAt: &verified}
	if err := e.db.Create(p).Error; err != nil {
		t.Fatal(err)
	}
	return p
}

// delivery writes a delivery row of step for p as the scheduler would.
func (e *sqEnv) delivery(t *testing.T, p *people.Participant, st *drip.EmailStep, status drip.DeliveryStatus, anchor, sendAt time.Time, tz string) *drip.EmailDelivery {
	t.Helper()
	d := &drip.EmailDelivery{ParticipantID: p.ID, Email: p.Email, SequenceID: &st.SequenceID, StepID: &st.ID,
		SubjectKey: "program:" + uuid.NewString(), AnchorAt: anchor, Timezone: tz, Status: status, SendAt: sendAt}
	if status == drip.DeliverySent {
		at := sendAt
		d.SentAt = &at
	}
	if err := e.db.Create(d).Error; err != nil {
		t.Fatalf("create delivery: %v", err)
	}
	return d
}

func sqFieldError(t *testing.T, err error, field, contains string) {
	t.Helper()
	de, ok := models.AsError(err)
	if !ok || de.Kind != models.KindInvalid {
		t.Fatalf("err = %v, want a validation error on %s", err, field)
	}
	for _, f := range de.Fields {
		if f.Field == field && strings.Contains(f.Message, contains) {
			return
		}
	}
	t.Fatalf("no error on %s containing %q in %+v", field, contains, de.Fields)
}

func TestSequenceCreateRefusesBadInputWithoutWriting(t *testing.T) {
	e := newSqEnv(t)
	ctx := context.Background()
	lead := sqCoach(t, e.db, "lead@example.com", people.RoleCoach)
	other := sqCoach(t, e.db, "other@example.com", people.RoleCoach)
	co := e.cohort(t, "Spring", lead)
	missing := uuid.New()
	tests := []struct {
		name   string
		actor  *people.Coach
		in     drip.SequenceInput
		field  string
		substr string
	}{
		{"blank name", e.admin, drip.SequenceInput{Name: " ", Trigger: "cohort_start", Kind: "marketing"}, "name", "empty"},
		{"two-line name", e.admin, drip.SequenceInput{Name: "a\nb", Trigger: "cohort_start", Kind: "marketing"}, "name", "single line"},
		{"unknown trigger", e.admin, drip.SequenceInput{Name: "x", Trigger: "birthday", Kind: "marketing"}, "trigger", "lesson_unlocked"},
		{"unknown kind", e.admin, drip.SequenceInput{Name: "x", Trigger: "cohort_start", Kind: "newsletter"}, "kind", "transactional"},
		{"both scopes", e.admin, drip.SequenceInput{Name: "x", Trigger: "cohort_start", Kind: "marketing", ProgramID: &e.program.ID, CohortID: &co.ID}, "cohort_id", "not both"},
		{"missing program", e.admin, drip.SequenceInput{Name: "x", Trigger: "cohort_start", Kind: "marketing", ProgramID: &missing}, "program_id", "existing program"},
		{"missing cohort", e.admin, drip.SequenceInput{Name: "x", Trigger: "cohort_start", Kind: "marketing", CohortID: &missing}, "cohort_id", "existing cohort"},
		{"free access on a cohort", e.admin, drip.SequenceInput{Name: "x", Trigger: "free_access_claimed", Kind: "marketing", CohortID: &co.ID}, "cohort_id", "per program"},
		{"another coach's cohort", other, drip.SequenceInput{Name: "x", Trigger: "cohort_start", Kind: "transactional", CohortID: &co.ID}, "cohort_id", "lead or co-lead"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.svc.Drip.CreateSequence(ctx, tt.actor, tt.in)
			sqFieldError(t, err, tt.field, tt.substr)
		})
	}
	var n int64
	e.db.Model(&drip.EmailSequence{}).Count(&n)
	if n != 0 {
		t.Fatalf("%d sequences written by refused creates", n)
	}
}

// A coach manages the sequences of the cohorts she leads or co-leads and
// reads the program-wide and global ones, which only admins write: they
// reach every coach's participants. Another coach's cohort sequence does
// not exist for her.
func TestSequenceScopingCoachVersusAdmin(t *testing.T) {
	e := newSqEnv(t)
	ctx := context.Background()
	lead := sqCoach(t, e.db, "lead@example.com", people.RoleCoach)
	other := sqCoach(t, e.db, "other@example.com", people.RoleCoach)
	co := e.cohort(t, "Spring", lead)

	cohortSeq := e.sequence(t, lead, drip.SequenceInput{Name: "Onboarding", Trigger: drip.TriggerCohortStart, CohortID: &co.ID, Kind: drip.SequenceTransactional})
	e.clock.Advance(time.Second)
	programSeq := e.sequence(t, e.admin, drip.SequenceInput{Name: "Welcome", ProgramID: &e.program.ID})
	e.clock.Advance(time.Second)
	globalSeq := e.sequence(t, e.admin, drip.SequenceInput{Name: "Reminders", Trigger: drip.TriggerSessionReminder, Kind: drip.SequenceTransactional})

	list := func(actor *people.Coach) []string {
		page, err := e.svc.Drip.ListSequences(ctx, actor, models.PageParams{})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range page.Items {
			names = append(names, s.Name)
		}
		return names
	}
	if got := strings.Join(list(e.admin), ","); got != "Onboarding,Welcome,Reminders" {
		t.Errorf("admin sees %s", got)
	}
	if got := strings.Join(list(lead), ","); got != "Onboarding,Welcome,Reminders" {
		t.Errorf("lead sees %s", got)
	}
	if got := strings.Join(list(other), ","); got != "Welcome,Reminders" {
		t.Errorf("other coach sees %s", got)
	}

	if _, err := e.svc.Drip.GetSequence(ctx, other, cohortSeq.ID); !models.IsCode(err, "not_found") {
		t.Errorf("other coach gets the cohort sequence: %v", err)
	}
	if _, err := e.svc.Drip.UpdateSequence(ctx, other, cohortSeq.ID, drip.SequencePatch{Active: models.Some(true)}); !models.IsCode(err, "not_found") {
		t.Errorf("other coach updates the cohort sequence: %v", err)
	}
	if err := e.svc.Drip.DeleteSequence(ctx, other, cohortSeq.ID); !models.IsCode(err, "not_found") {
		t.Errorf("other coach deletes the cohort sequence: %v", err)
	}
	st := e.step(t, cohortSeq.ID, "Welcome", 0)
	if _, err := e.svc.Drip.CreateStep(ctx, other, cohortSeq.ID, drip.StepInput{OffsetMinutes: sqMinutes(1), Subject: "s", Body: "b"}); !models.IsCode(err, "not_found") {
		t.Errorf("other coach adds a step: %v", err)
	}
	if _, err := e.svc.Drip.UpdateStep(ctx, other, st.ID, drip.StepPatch{Subject: models.Some("x")}); !models.IsCode(err, "not_found") {
		t.Errorf("other coach edits a step: %v", err)
	}
	if err := e.svc.Drip.DeleteStep(ctx, other, st.ID); !models.IsCode(err, "not_found") {
		t.Errorf("other coach deletes a step: %v", err)
	}
	if _, err := e.svc.Drip.PreviewStep(ctx, other, st.ID, nil); !models.IsCode(err, "not_found") {
		t.Errorf("other coach previews a step: %v", err)
	}
	// Nor may she move her own sequence onto a cohort she does not lead.
	otherCo := e.cohort(t, "Autumn", other)
	otherSeq := e.sequence(t, other, drip.SequenceInput{Name: "Hers", Trigger: drip.TriggerCohortStart, CohortID: &otherCo.ID, Kind: drip.SequenceTransactional})
	_, err := e.svc.Drip.UpdateSequence(ctx, other, otherSeq.ID, drip.SequencePatch{CohortID: models.Some(co.ID)})
	sqFieldError(t, err, "cohort_id", "lead or co-lead")
	// Nor widen it to everyone.
	if _, err := e.svc.Drip.UpdateSequence(ctx, other, otherSeq.ID, drip.SequencePatch{CohortID: models.Optional[uuid.UUID]{Set: true, Null: true}}); !models.IsCode(err, "forbidden") {
		t.Errorf("a coach widens her sequence to everyone: %v", err)
	}

	for _, id := range []uuid.UUID{programSeq.ID, globalSeq.ID} {
		if _, err := e.svc.Drip.GetSequence(ctx, lead, id); err != nil {
			t.Errorf("a coach reads a program-wide or global sequence: %v", err)
		}
		if _, err := e.svc.Drip.UpdateSequence(ctx, lead, id, drip.SequencePatch{Name: models.Some("Renamed")}); !models.IsCode(err, "forbidden") {
			t.Errorf("a coach edits a program-wide or global sequence: %v", err)
		}
		if _, err := e.svc.Drip.UpdateSequence(ctx, e.admin, id, drip.SequencePatch{Name: models.Some("Renamed")}); err != nil {
			t.Errorf("an admin edits a program-wide or global sequence: %v", err)
		}
	}
	for _, in := range []drip.SequenceInput{{Name: "x", Trigger: drip.TriggerCohortStart, Kind: drip.SequenceTransactional},
		{Name: "x", Trigger: drip.TriggerCohortStart, Kind: drip.SequenceTransactional, ProgramID: &e.program.ID}} {
		if _, err := e.svc.Drip.CreateSequence(ctx, lead, in); !models.IsCode(err, "forbidden") {
			t.Errorf("a coach creates a sequence for everyone (%v): %v", in.ProgramID, err)
		}
	}
	if err := e.svc.Drip.DeleteSequence(ctx, lead, cohortSeq.ID); err != nil {
		t.Fatalf("lead deletes her cohort's sequence: %v", err)
	}
}

func TestStepRefusesBadContentWithoutWriting(t *testing.T) {
	e := newSqEnv(t)
	ctx := context.Background()
	seq := e.sequence(t, e.admin, drip.SequenceInput{})
	nine := "09:00"
	tests := []struct {
		name   string
		in     drip.StepInput
		field  string
		substr string
	}{
		{"unknown placeholder in body", drip.StepInput{OffsetMinutes: sqMinutes(0), Subject: "Hi", Body: "Dear {{last_name}}"}, "body", "unknown placeholder {{last_name}}"},
		{"unknown placeholder in subject", drip.StepInput{OffsetMinutes: sqMinutes(0), Subject: "Hi {{firstname}}", Body: "b"}, "subject", "{{firstname}}"},
		{"unclosed braces", drip.StepInput{OffsetMinutes: sqMinutes(0), Subject: "Hi", Body: "Dear {{first_name, welcome"}, "body", "not closed"},
		{"braces reopened", drip.StepInput{OffsetMinutes: sqMinutes(0), Subject: "Hi", Body: "Dear {{first_name {{cohort_name}}"}, "body", "not closed"},
		{"stray closing braces", drip.StepInput{OffsetMinutes: sqMinutes(0), Subject: "Hi", Body: "Dear first_name}}"}, "body", `"}}" without`},
		{"two words", drip.StepInput{OffsetMinutes: sqMinutes(0), Subject: "Hi", Body: "Dear {{first name}}"}, "body", "{{first name}} is not a placeholder"},
		{"empty braces", drip.StepInput{OffsetMinutes: sqMinutes(0), Subject: "Hi {{}}", Body: "b"}, "subject", "malformed"},
		{"both offset kinds", drip.StepInput{OffsetMinutes: sqMinutes(5), OffsetDays: sqMinutes(1), SendAtLocal: &nine, Subject: "s", Body: "b"}, "offset_minutes", "not both"},
		{"no offset", drip.StepInput{Subject: "s", Body: "b"}, "offset_minutes", "required"},
		{"days without time", drip.StepInput{OffsetDays: sqMinutes(1), Subject: "s", Body: "b"}, "send_at_local", "required"},
		{"time without days", drip.StepInput{SendAtLocal: &nine, Subject: "s", Body: "b"}, "offset_days", "required"},
		{"bad local time", drip.StepInput{OffsetDays: sqMinutes(1), SendAtLocal: modelstest.Ptr("9am"), Subject: "s", Body: "b"}, "send_at_local", "HH:MM"},
		{"minutes out of range", drip.StepInput{OffsetMinutes: sqMinutes(600000), Subject: "s", Body: "b"}, "offset_minutes", "must be from"},
		{"days out of range", drip.StepInput{OffsetDays: sqMinutes(-400), SendAtLocal: &nine, Subject: "s", Body: "b"}, "offset_days", "must be from"},
		{"two-line subject", drip.StepInput{OffsetMinutes: sqMinutes(0), Subject: "a\r\nBcc: x@example.com", Body: "b"}, "subject", "single line"},
		{"long subject", drip.StepInput{OffsetMinutes: sqMinutes(0), Subject: strings.Repeat("a", 301), Body: "b"}, "subject", "too long"},
		{"empty body", drip.StepInput{OffsetMinutes: sqMinutes(0), Subject: "s", Body: "  "}, "body", "empty"},
		{"bad position", drip.StepInput{Position: -1, OffsetMinutes: sqMinutes(0), Subject: "s", Body: "b"}, "position", "at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.svc.Drip.CreateStep(ctx, e.admin, seq.ID, tt.in)
			sqFieldError(t, err, tt.field, tt.substr)
		})
	}
	var n int64
	e.db.Model(&drip.EmailStep{}).Count(&n)
	if n != 0 {
		t.Fatalf("%d steps written by refused creates", n)
	}

	// Every known placeholder passes, in subject and body alike.
	var all strings.Builder
	for _, p := range drip.Placeholders {
		all.WriteString("{{" + p + "}} ")
	}
	if _, err := e.svc.Drip.CreateStep(ctx, e.admin, seq.ID, drip.StepInput{OffsetDays: sqMinutes(-7), SendAtLocal: &nine,
		Subject: "For {{ first_name }}: {{program_title}}", Body: all.String() + "{single braces} are text"}); err != nil {
		t.Fatalf("known placeholders refused: %v", err)
	}
	// The same rules hold on edit, and a refused edit changes nothing.
	st := e.step(t, seq.ID, "Second", 0)
	_, err := e.svc.Drip.UpdateStep(ctx, e.admin, st.ID, drip.StepPatch{Body: models.Some("Hi {{nickname}}")})
	sqFieldError(t, err, "body", "{{nickname}}")
	_, err = e.svc.Drip.UpdateStep(ctx, e.admin, st.ID, drip.StepPatch{OffsetMinutes: models.Some(5), OffsetDays: models.Some(1), SendAtLocal: models.Some("09:00")})
	sqFieldError(t, err, "offset_minutes", "not both")
	got, err := e.svc.Drip.GetStep(ctx, e.admin, st.ID)
	if err != nil || got.Body != "Hello {{first_name}}" || got.OffsetMinutes == nil || *got.OffsetMinutes != 5 || got.OffsetDays != nil {
		t.Fatalf("refused edits changed the step: %+v, %v", got, err)
	}
}

// Positions work like lessons: append by default, insert shifts the rest,
// a move shifts those in between, delete closes the gap.
func TestStepPositions(t *testing.T) {
	e := newSqEnv(t)
	ctx := context.Background()
	seq := e.sequence(t, e.admin, drip.SequenceInput{})
	e.step(t, seq.ID, "A", 0)
	b := e.step(t, seq.ID, "B", 0)
	e.step(t, seq.ID, "C", 0)
	e.step(t, seq.ID, "X", 1)
	e.step(t, seq.ID, "Y", 99)
	if got := e.stepOrder(t, seq.ID); got != "X,A,B,C,Y" {
		t.Fatalf("after creates: %s", got)
	}
	if _, err := e.svc.Drip.UpdateStep(ctx, e.admin, b.ID, drip.StepPatch{Position: models.Some(1)}); err != nil {
		t.Fatal(err)
	}
	if got := e.stepOrder(t, seq.ID); got != "B,X,A,C,Y" {
		t.Fatalf("after moving B first: %s", got)
	}
	moved, err := e.svc.Drip.UpdateStep(ctx, e.admin, b.ID, drip.StepPatch{Position: models.Some(50)})
	if err != nil || moved.Position != 5 {
		t.Fatalf("move past the end: %+v, %v", moved, err)
	}
	if got := e.stepOrder(t, seq.ID); got != "X,A,C,Y,B" {
		t.Fatalf("after moving B last: %s", got)
	}
	if err := e.svc.Drip.DeleteStep(ctx, e.admin, moved.ID); err != nil {
		t.Fatal(err)
	}
	page, err := e.svc.Drip.ListSteps(ctx, e.admin, seq.ID, models.PageParams{Limit: 2})
	if err != nil || len(page.Items) != 2 || page.NextCursor == nil {
		t.Fatalf("first page: %+v, %v", page, err)
	}
	page2, err := e.svc.Drip.ListSteps(ctx, e.admin, seq.ID, models.PageParams{Limit: 2, Cursor: *page.NextCursor})
	if err != nil || len(page2.Items) != 2 || page2.Items[0].Subject != "C" {
		t.Fatalf("second page: %+v, %v", page2, err)
	}
	// Deleting from the middle compacts.
	if err := e.svc.Drip.DeleteStep(ctx, e.admin, page.Items[1].ID); err != nil {
		t.Fatal(err)
	}
	if got := e.stepOrder(t, seq.ID); got != "X,C,Y" {
		t.Fatalf("after deleting A: %s", got)
	}
}

func TestStepPatchSwitchesOffsetKind(t *testing.T) {
	e := newSqEnv(t)
	ctx := context.Background()
	seq := e.sequence(t, e.admin, drip.SequenceInput{})
	st := e.step(t, seq.ID, "A", 0)
	got, err := e.svc.Drip.UpdateStep(ctx, e.admin, st.ID, drip.StepPatch{OffsetDays: models.Some(2), SendAtLocal: models.Some("09:00")})
	if err != nil || got.OffsetMinutes != nil || got.OffsetDays == nil || *got.OffsetDays != 2 || *got.SendAtLocal != "09:00" {
		t.Fatalf("to days: %+v, %v", got, err)
	}
	got, err = e.svc.Drip.UpdateStep(ctx, e.admin, st.ID, drip.StepPatch{OffsetMinutes: models.Some(-60)})
	if err != nil || got.OffsetMinutes == nil || *got.OffsetMinutes != -60 || got.OffsetDays != nil || got.SendAtLocal != nil {
		t.Fatalf("back to minutes: %+v, %v", got, err)
	}
	var stored drip.EmailStep
	e.db.Where("id = ?", st.ID).Take(&stored)
	if stored.OffsetMinutes == nil || *stored.OffsetMinutes != -60 || stored.OffsetDays != nil || stored.SendAtLocal != nil {
		t.Fatalf("stored: %+v", stored)
	}
	_, err = e.svc.Drip.UpdateStep(ctx, e.admin, st.ID, drip.StepPatch{OffsetMinutes: models.Optional[int]{Set: true, Null: true}})
	sqFieldError(t, err, "offset_minutes", "required")
}

// Deleting a step or a sequence cancels what is still scheduled, in the
// same transaction, and keeps the log of what was sent.
func TestDeletionCancelsScheduledDeliveries(t *testing.T) {
	e := newSqEnv(t)
	ctx := context.Background()
	seq := e.sequence(t, e.admin, drip.SequenceInput{})
	a := e.step(t, seq.ID, "A", 0)
	b := e.step(t, seq.ID, "B", 0)
	p := e.participant(t, "ana@example.com", "Ana Lopez")
	now := e.clock.Now()
	aScheduled := e.delivery(t, p, a, drip.DeliveryScheduled, now, now.Add(time.Hour), "UTC")
	aSent := e.delivery(t, p, a, drip.DeliverySent, now.Add(-time.Hour), now.Add(-time.Hour), "UTC")
	bScheduled := e.delivery(t, p, b, drip.DeliveryScheduled, now, now.Add(2*time.Hour), "UTC")

	status := func(d *drip.EmailDelivery) (drip.DeliveryStatus, string, *uuid.UUID) {
		t.Helper()
		var got drip.EmailDelivery
		if err := e.db.Where("id = ?", d.ID).Take(&got).Error; err != nil {
			t.Fatal(err)
		}
		reason := ""
		if got.LastError != nil {
			reason = *got.LastError
		}
		return got.Status, reason, got.StepID
	}

	if err := e.svc.Drip.DeleteStep(ctx, e.admin, a.ID); err != nil {
		t.Fatal(err)
	}
	if s, r, step := status(aScheduled); s != drip.DeliveryCancelled || !strings.HasPrefix(r, "step_deleted") || step != nil {
		t.Errorf("scheduled row of the deleted step: %s %q step=%v", s, r, step)
	}
	if s, r, _ := status(aSent); s != drip.DeliverySent || r != "" {
		t.Errorf("sent row of the deleted step: %s %q", s, r)
	}
	if s, _, _ := status(bScheduled); s != drip.DeliveryScheduled {
		t.Errorf("another step's row: %s", s)
	}

	if err := e.svc.Drip.DeleteSequence(ctx, e.admin, seq.ID); err != nil {
		t.Fatal(err)
	}
	if s, r, _ := status(bScheduled); s != drip.DeliveryCancelled || !strings.HasPrefix(r, "sequence_deleted") {
		t.Errorf("scheduled row of the deleted sequence: %s %q", s, r)
	}
	var n int64
	e.db.Model(&drip.EmailDelivery{}).Count(&n)
	if n != 3 {
		t.Errorf("%d delivery rows left, want the whole log of 3", n)
	}
}

// grant gives p free access to the program from startsAt, as a claim would
// (the trigger itself is SCHED's; these tests backfill by switching a
// sequence on).
func (e *sqEnv) grant(t *testing.T, p *people.Participant, startsAt time.Time) {
	t.Helper()
	g := &people.AccessGrant{ParticipantID: p.ID, ProgramID: e.program.ID, Source: people.GrantFreeAccess, StartsAt: startsAt}
	if err := e.db.Create(g).Error; err != nil {
		t.Fatal(err)
	}
}

func (e *sqEnv) deliveriesOf(t *testing.T, stepID uuid.UUID) map[string]drip.EmailDelivery {
	t.Helper()
	var rows []drip.EmailDelivery
	if err := e.db.Where("step_id = ?", stepID).Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	out := map[string]drip.EmailDelivery{}
	for _, d := range rows {
		out[d.Email] = d
	}
	return out
}

// Switching a sequence on, adding its first step while it is on, and
// adding a later step all schedule the women its trigger covers, in the
// same transaction.
func TestActiveSequenceSchedulesNewSteps(t *testing.T) {
	e := newSqEnv(t)
	ctx := context.Background()
	ana := e.participant(t, "ana@example.com", "Ana")
	e.grant(t, ana, e.clock.Now().Add(-time.Hour))

	// Active from the start, no steps: its first step is scheduled for her.
	seq := e.sequence(t, e.admin, drip.SequenceInput{ProgramID: &e.program.ID, Active: true})
	first := e.step(t, seq.ID, "First", 0)
	if d, ok := e.deliveriesOf(t, first.ID)["ana@example.com"]; !ok || d.Status != drip.DeliveryScheduled {
		t.Fatalf("first step on an active sequence: %+v", e.deliveriesOf(t, first.ID))
	}
	second := e.step(t, seq.ID, "Second", 0)
	if d, ok := e.deliveriesOf(t, second.ID)["ana@example.com"]; !ok || !d.SendAt.Equal(d.AnchorAt.Add(5*time.Minute)) {
		t.Fatalf("later step on an active sequence: %+v", e.deliveriesOf(t, second.ID))
	}

	// Inactive: nothing until it is switched on.
	off := e.sequence(t, e.admin, drip.SequenceInput{Name: "Later", ProgramID: &e.program.ID})
	st := e.step(t, off.ID, "Off", 0)
	if n := len(e.deliveriesOf(t, st.ID)); n != 0 {
		t.Fatalf("inactive sequence scheduled %d", n)
	}
	if _, err := e.svc.Drip.UpdateSequence(ctx, e.admin, off.ID, drip.SequencePatch{Active: models.Some(true)}); err != nil {
		t.Fatal(err)
	}
	if n := len(e.deliveriesOf(t, st.ID)); n != 1 {
		t.Fatalf("switching on scheduled %d, want 1", n)
	}
}

// A new offset moves the step's scheduled emails from their anchor, in her
// zone, across DST; one that would now be long past is skipped rather than
// sent late.
func TestUpdateStepOffsetReplansScheduledDeliveries(t *testing.T) {
	e := newSqEnv(t)
	ctx := context.Background()
	la := e.participant(t, "la@example.com", "La")
	e.db.Model(&people.Participant{}).Where("id = ?", la.ID).Updates(map[string]any{"timezone": "America/Los_Angeles", "timezone_set": true})
	old := e.participant(t, "old@example.com", "Old")
	now := e.clock.Now() // Monday 2 March 2026, 09:00 UTC
	// Her access starts on Friday 6 March 2026, 10:00 in Los Angeles (18:00
	// UTC, PST); US clocks go forward on Sunday 8 March.
	anchor := time.Date(2026, 3, 6, 18, 0, 0, 0, time.UTC)
	e.grant(t, la, anchor)
	e.grant(t, old, now.Add(-5*24*time.Hour))

	seq := e.sequence(t, e.admin, drip.SequenceInput{ProgramID: &e.program.ID})
	st, err := e.svc.Drip.CreateStep(ctx, e.admin, seq.ID, drip.StepInput{OffsetMinutes: sqMinutes(7 * 24 * 60), Subject: "A week in", Body: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Drip.UpdateSequence(ctx, e.admin, seq.ID, drip.SequencePatch{Active: models.Some(true)}); err != nil {
		t.Fatal(err)
	}
	rows := e.deliveriesOf(t, st.ID)
	if rows["la@example.com"].Status != drip.DeliveryScheduled || rows["old@example.com"].Status != drip.DeliveryScheduled {
		t.Fatalf("before the change: %+v", rows)
	}

	if _, err := e.svc.Drip.UpdateStep(ctx, e.admin, st.ID, drip.StepPatch{OffsetDays: models.Some(3), SendAtLocal: models.Some("09:00")}); err != nil {
		t.Fatal(err)
	}
	rows = e.deliveriesOf(t, st.ID)
	// Monday 9 March 09:00 PDT is 16:00 UTC.
	if got, want := rows["la@example.com"], time.Date(2026, 3, 9, 16, 0, 0, 0, time.UTC); !got.SendAt.Equal(want) || got.Status != drip.DeliveryScheduled {
		t.Errorf("replanned send_at %v (%s), want %v", got.SendAt.UTC(), got.Status, want)
	}
	if got := rows["old@example.com"]; got.Status != drip.DeliverySkipped || got.LastError == nil || !strings.HasPrefix(*got.LastError, "late") {
		t.Errorf("stale row: %s %v at %v, want skipped as late", got.Status, got.LastError, got.SendAt)
	}

	if _, err := e.svc.Drip.UpdateStep(ctx, e.admin, st.ID, drip.StepPatch{OffsetMinutes: models.Some(-60)}); err != nil {
		t.Fatal(err)
	}
	if got, want := e.deliveriesOf(t, st.ID)["la@example.com"], anchor.Add(-time.Hour); !got.SendAt.Equal(want) {
		t.Errorf("replanned send_at %v, want %v", got.SendAt.UTC(), want)
	}
}

// Once emails of a sequence exist, its trigger and scope stay as they were,
// so the log still says why each went out.
func TestSequenceTriggerAndScopeFreezeOnceUsed(t *testing.T) {
	e := newSqEnv(t)
	ctx := context.Background()
	seq := e.sequence(t, e.admin, drip.SequenceInput{ProgramID: &e.program.ID})
	// Unused: anything may change.
	got, err := e.svc.Drip.UpdateSequence(ctx, e.admin, seq.ID, drip.SequencePatch{Trigger: models.Some(drip.TriggerEnrollmentActivated),
		ProgramID: models.Optional[uuid.UUID]{Set: true, Null: true}, Kind: models.Some(drip.SequenceTransactional)})
	if err != nil || got.Trigger != drip.TriggerEnrollmentActivated || got.ProgramID != nil || got.Kind != drip.SequenceTransactional {
		t.Fatalf("update unused sequence: %+v, %v", got, err)
	}
	if stored, err := e.svc.Drip.GetSequence(ctx, e.admin, seq.ID); err != nil || stored.ProgramID != nil || stored.Trigger != drip.TriggerEnrollmentActivated {
		t.Fatalf("stored after update: %+v, %v", stored, err)
	}
	st := e.step(t, seq.ID, "A", 0)
	e.delivery(t, e.participant(t, "p@example.com", "P"), st, drip.DeliverySent, e.clock.Now(), e.clock.Now(), "UTC")
	if _, err := e.svc.Drip.UpdateSequence(ctx, e.admin, seq.ID, drip.SequencePatch{Trigger: models.Some(drip.TriggerCohortStart)}); !models.IsCode(err, "sequence_in_use") {
		t.Fatalf("trigger change on a used sequence: %v", err)
	}
	got, err = e.svc.Drip.UpdateSequence(ctx, e.admin, seq.ID, drip.SequencePatch{Name: models.Some("Renamed"), Active: models.Some(true), ExitOnEnrollment: models.Some(true)})
	if err != nil || got.Name != "Renamed" || !got.Active || !got.ExitOnEnrollment {
		t.Fatalf("other fields of a used sequence: %+v, %v", got, err)
	}
	_, err = e.svc.Drip.UpdateSequence(ctx, e.admin, seq.ID, drip.SequencePatch{Name: models.Optional[string]{Set: true, Null: true}})
	sqFieldError(t, err, "name", "null")
}

func TestPreviewStepRendersHerValues(t *testing.T) {
	e := newSqEnv(t)
	ctx := context.Background()
	lead := sqCoach(t, e.db, "lead@example.com", people.RoleCoach)
	co := e.cohort(t, "Spring Circle", lead)
	sessionAt := e.clock.Now().Add(15 * 24 * time.Hour)
	if err := e.db.Create(&enroll.LiveSession{CohortID: co.ID, Title: "Week 1", StartsAt: sessionAt, DurationMinutes: 60}).Error; err != nil {
		t.Fatal(err)
	}
	p := e.participant(t, "ana@example.com", "Ana Lopez")
	if err := e.db.Create(&enroll.Enrollment{CohortID: co.ID, ParticipantID: p.ID, Status: enroll.EnrollmentActive, Seat: enroll.SeatPaid,
		Currency: "EUR", DisputeStatus: enroll.DisputeNone}).Error; err != nil {
		t.Fatal(err)
	}
	seq := e.sequence(t, e.admin, drip.SequenceInput{Name: "Reminders", Trigger: drip.TriggerSessionReminder, ProgramID: &e.program.ID, Kind: drip.SequenceTransactional})
	st, err := e.svc.Drip.CreateStep(ctx, e.admin, seq.ID, drip.StepInput{OffsetMinutes: sqMinutes(-60),
		Subject: "{{first_name}}, {{cohort_name}} meets soon", Body: "See you at {{session_starts_at}} for {{program_title}}: {{portal_url}}"})
	if err != nil {
		t.Fatal(err)
	}

	out, err := e.svc.Drip.PreviewStep(ctx, lead, st.ID, &p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if out.Subject != "Ana, Spring Circle meets soon" {
		t.Errorf("subject %q", out.Subject)
	}
	// She chose no zone, so the cohort's: 17 March 2026 09:00 UTC is 02:00 PDT.
	want := "See you at Tuesday 17 March 2026 at 02:00 (America/Los_Angeles) for Say No With Grace: https://app.test/portal"
	if out.Text != want {
		t.Errorf("text %q\nwant %q", out.Text, want)
	}
	if req := e.renderer.lastRequest(); req.Marketing || req.UnsubscribeMailto != "" {
		t.Errorf("transactional preview asked for marketing rendering: %+v", req)
	}

	// Her own zone wins once she set it.
	e.db.Model(&people.Participant{}).Where("id = ?", p.ID).Updates(map[string]any{"timezone": "Asia/Tehran", "timezone_set": true})
	out, err = e.svc.Drip.PreviewStep(ctx, lead, st.ID, &p.ID)
	if err != nil || !strings.Contains(out.Text, "at 12:30 (Asia/Tehran)") {
		t.Errorf("in her zone: %q, %v", out.Text, err)
	}

	// Before she proved the address the name is only what a form typed:
	// the preview, like the email, greets nobody.
	e.db.Model(&people.Participant{}).Where("id = ?", p.ID).Update("email_verified_at", nil)
	out, err = e.svc.Drip.PreviewStep(ctx, lead, st.ID, &p.ID)
	if err != nil || out.Subject != ", Spring Circle meets soon" {
		t.Errorf("unverified: subject %q, %v", out.Subject, err)
	}

	// Without a participant: sample values.
	out, err = e.svc.Drip.PreviewStep(ctx, lead, st.ID, nil)
	if err != nil || out.Subject != "Maya, Sample Cohort meets soon" {
		t.Errorf("sample preview: %q, %v", out.Subject, err)
	}
	missing := uuid.New()
	_, err = e.svc.Drip.PreviewStep(ctx, lead, st.ID, &missing)
	sqFieldError(t, err, "participant_id", "one of your participants")

	// Marketing: the unsubscribe link is a stand-in, never her token.
	mseq := e.sequence(t, e.admin, drip.SequenceInput{ProgramID: &e.program.ID})
	mst, err := e.svc.Drip.CreateStep(ctx, e.admin, mseq.ID, drip.StepInput{OffsetMinutes: sqMinutes(5), Subject: "Hi", Body: "Leave: {{unsubscribe_url}}"})
	if err != nil {
		t.Fatal(err)
	}
	out, err = e.svc.Drip.PreviewStep(ctx, e.admin, mst.ID, &p.ID)
	if err != nil {
		t.Fatal(err)
	}
	var token string
	e.db.Raw(`SELECT unsubscribe_token FROM participants WHERE id = ?`, p.ID).Scan(&token)
	if !strings.HasPrefix(out.Text, "Leave: https://api.test/v1/unsubscribe/") || strings.Contains(out.Text, token) {
		t.Errorf("marketing preview unsubscribe link %q", out.Text)
	}
	if req := e.renderer.lastRequest(); !req.Marketing || !strings.HasPrefix(req.UnsubscribeMailto, "mailto:unsubscribe@example.com?subject=unsubscribe-") {
		t.Errorf("marketing preview request: %+v", req)
	}
}

func TestPreviewAndTestSendNeedARenderer(t *testing.T) {
	svc, _, db := modelstest.NewService(t)
	ctx := context.Background()
	admin := sqCoach(t, db, "admin@example.com", people.RoleAdmin)
	seq, err := svc.Drip.CreateSequence(ctx, admin, drip.SequenceInput{Name: "W", Trigger: drip.TriggerEnrollmentActivated, Kind: drip.SequenceMarketing})
	if err != nil {
		t.Fatal(err)
	}
	st, err := svc.Drip.CreateStep(ctx, admin, seq.ID, drip.StepInput{OffsetMinutes: sqMinutes(0), Subject: "s", Body: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Drip.PreviewStep(ctx, admin, st.ID, nil); !models.IsCode(err, "unavailable") {
		t.Errorf("preview without a renderer: %v", err)
	}
	if err := svc.Drip.TestSendStep(ctx, admin, st.ID, "coach@example.com"); !models.IsCode(err, "unavailable") {
		t.Errorf("test send without a renderer: %v", err)
	}
}

func TestTestSendQueuesOneOutboxEmail(t *testing.T) {
	e := newSqEnv(t)
	ctx := context.Background()
	seq := e.sequence(t, e.admin, drip.SequenceInput{ProgramID: &e.program.ID})
	st, err := e.svc.Drip.CreateStep(ctx, e.admin, seq.ID, drip.StepInput{OffsetMinutes: sqMinutes(5),
		Subject: "Welcome, {{first_name}}", Body: "Start {{program_title}} today."})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Drip.TestSendStep(ctx, e.admin, st.ID, "not an email"); err == nil {
		t.Fatal("test send to a bad address accepted")
	} else {
		sqFieldError(t, err, "to", "email")
	}
	if err := e.svc.Drip.TestSendStep(ctx, e.admin, st.ID, " Coach@Example.com "); err != nil {
		t.Fatal(err)
	}
	var msgs []models.OutboxMessage
	e.db.Find(&msgs)
	if len(msgs) != 1 {
		t.Fatalf("%d outbox rows, want 1", len(msgs))
	}
	m := msgs[0]
	if m.Template != drip.TemplateDripTest || m.ToEmail != "coach@example.com" || m.Status != models.OutboxPending {
		t.Errorf("outbox row %+v", m)
	}
	if m.Data["subject"] != "Welcome, Maya" || m.Data["text"] != "Start Say No With Grace today." || m.Data["html"] == "" {
		t.Errorf("outbox data %+v", m.Data)
	}
}

// Concurrent inserts into one sequence queue on its row lock, so positions
// stay dense and unique.
func TestStepConcurrentCreatesKeepPositionsDense(t *testing.T) {
	e := newSqEnv(t)
	seq := e.sequence(t, e.admin, drip.SequenceInput{})
	e.step(t, seq.ID, "base", 0)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.svc.Drip.CreateStep(context.Background(), e.admin, seq.ID, drip.StepInput{Position: 1 + i%2,
				OffsetMinutes: sqMinutes(i), Subject: "s", Body: "b"})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var positions []int
	e.db.Model(&drip.EmailStep{}).Where("sequence_id = ?", seq.ID).Order("position").Pluck("position", &positions)
	for i, p := range positions {
		if p != i+1 {
			t.Fatalf("positions %v, want 1..9", positions)
		}
	}
	if len(positions) != 9 {
		t.Fatalf("%d steps, want 9", len(positions))
	}
}

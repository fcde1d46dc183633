package seed_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/drip"
	"github.com/grace-coaching/grace/models/modelstest"
	"github.com/grace-coaching/grace/models/people"
	"github.com/grace-coaching/grace/models/seed"
)

func TestRunSeedsTheWorkshopOnceAndIsIdempotent(t *testing.T) {
	svc, clock, db := modelstest.NewService(t)
	ctx := context.Background()

	var first bytes.Buffer
	if err := seed.Run(ctx, svc, &first); err != nil {
		t.Fatalf("first seed: %v", err)
	}
	if !strings.Contains(first.String(), "created admin coach "+seed.AdminEmail+" with password ") {
		t.Fatalf("first seed should print the admin password once; printed:\n%s", first.String())
	}

	var second bytes.Buffer
	if err := seed.Run(ctx, svc, &second); err != nil {
		t.Fatalf("second seed: %v", err)
	}
	if strings.Contains(second.String(), "password") {
		t.Fatalf("second seed printed a password again:\n%s", second.String())
	}

	steps := 0
	for _, q := range seed.Sequences {
		steps += len(q.Steps)
	}
	counts := map[string]int64{"programs": 1, "lessons": int64(len(seed.Lessons)), "coaches": 1,
		"email_sequences": int64(len(seed.Sequences)), "email_steps": int64(steps)}
	for table, want := range counts {
		var n int64
		db.Table(table).Count(&n)
		if n != want {
			t.Errorf("%s: %d rows after two seeds, want %d", table, n, want)
		}
	}

	prog, err := svc.Catalog.GetPublishedProgram(ctx, seed.ProgramSlug)
	if err != nil {
		t.Fatalf("seeded program is not public: %v", err)
	}
	if !prog.FreeAccessOpen {
		t.Error("free-access window should be open after seeding")
	}
	if prog.Program.FreeAccessUntil == nil || !prog.Program.FreeAccessUntil.Equal(clock.Now().Add(30*24*time.Hour)) {
		t.Errorf("free access until %v, want 30 days from now", prog.Program.FreeAccessUntil)
	}

	var lessons []catalog.Lesson
	db.Where("program_id = ?", prog.Program.ID).Order("position").Find(&lessons)
	if len(lessons) < 6 {
		t.Fatalf("%d lessons, want at least 6", len(lessons))
	}
	for i, l := range lessons {
		if l.Title != seed.Lessons[i].Title || !l.Published || l.BodyHTML == "" || strings.Contains(l.BodyHTML, "<script") {
			t.Errorf("lesson %d = %q published=%v html=%d bytes; want %q published with rendered body", i+1, l.Title, l.Published, len(l.BodyHTML), seed.Lessons[i].Title)
		}
	}

	if _, _, _, err := svc.People.Login(ctx, seed.AdminEmail, "not the password", models.ClientInfo{IP: "127.0.0.1"}); !models.IsCode(err, "invalid_credentials") {
		t.Errorf("wrong password for the seeded admin: err = %v", err)
	}
}

// The seed adds the welcome series for free-workshop claimers, the cohort
// onboarding emails and the session reminders, switched on, each once; a
// second run leaves what the coach changed alone.
func TestRunSeedsTheDripSequences(t *testing.T) {
	svc, _, db := modelstest.NewService(t)
	ctx := context.Background()
	if err := seed.Run(ctx, svc, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	var program catalog.Program
	if err := db.Where("slug = ?", seed.ProgramSlug).Take(&program).Error; err != nil {
		t.Fatal(err)
	}
	type stepShape struct {
		minutes, days *int
		local         *string
	}
	mins := func(m int) stepShape { return stepShape{minutes: &m} }
	at9 := func(d int) stepShape { l := "09:00"; return stepShape{days: &d, local: &l} }
	tests := []struct {
		trigger drip.Trigger
		kind    drip.SequenceKind
		program bool
		exit    bool
		steps   []stepShape
	}{
		{drip.TriggerFreeAccessClaimed, drip.SequenceMarketing, true, true, []stepShape{mins(5), at9(2), at9(5), at9(9), at9(13)}},
		{drip.TriggerCohortStart, drip.SequenceTransactional, false, false, []stepShape{at9(-7), at9(-1), at9(0)}},
		{drip.TriggerSessionReminder, drip.SequenceTransactional, false, false, []stepShape{mins(-1440), mins(-60)}},
	}
	for _, tt := range tests {
		t.Run(string(tt.trigger), func(t *testing.T) {
			var seqs []drip.EmailSequence
			db.Where("trigger = ?", tt.trigger).Find(&seqs)
			if len(seqs) != 1 {
				t.Fatalf("%d %s sequences, want 1", len(seqs), tt.trigger)
			}
			q := seqs[0]
			if !q.Active || q.Kind != tt.kind || q.ExitOnEnrollment != tt.exit || q.CohortID != nil ||
				(q.ProgramID != nil) != tt.program || (tt.program && *q.ProgramID != program.ID) {
				t.Errorf("sequence %+v", q)
			}
			page, err := svc.Drip.ListSteps(ctx, &people.Coach{Role: people.RoleAdmin}, q.ID, models.PageParams{})
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Items) != len(tt.steps) {
				t.Fatalf("%d steps, want %d", len(page.Items), len(tt.steps))
			}
			eq := func(a, b *int) bool { return (a == nil && b == nil) || (a != nil && b != nil && *a == *b) }
			for i, st := range page.Items {
				want := tt.steps[i]
				if !eq(st.OffsetMinutes, want.minutes) || !eq(st.OffsetDays, want.days) || (st.SendAtLocal == nil) != (want.local == nil) ||
					(want.local != nil && *st.SendAtLocal != *want.local) {
					t.Errorf("step %d offsets %v %v %v", i+1, st.OffsetMinutes, st.OffsetDays, st.SendAtLocal)
				}
				if !strings.Contains(st.Body, "{{first_name}}") {
					t.Errorf("step %d does not greet her by name", i+1)
				}
			}
			if tt.trigger == drip.TriggerFreeAccessClaimed {
				first, last := strings.ToLower(page.Items[0].Body), strings.ToLower(page.Items[len(page.Items)-1].Body)
				if !strings.Contains(first, "not therapy") || !strings.Contains(first, "coaching and education") {
					t.Error("the first welcome email lacks the coaching-not-therapy note")
				}
				if !strings.Contains(last, "next cohort") {
					t.Error("the last welcome email does not invite her to the next cohort")
				}
			}
			if tt.trigger == drip.TriggerSessionReminder {
				for i, st := range page.Items {
					if !strings.Contains(st.Body, "{{session_starts_at}}") {
						t.Errorf("reminder %d does not say when", i+1)
					}
				}
			}
		})
	}

	// The coach deletes a welcome email; the next seed does not bring it back.
	var welcome drip.EmailSequence
	db.Where("trigger = ?", drip.TriggerFreeAccessClaimed).Take(&welcome)
	var st drip.EmailStep
	db.Where("sequence_id = ? AND position = 3", welcome.ID).Take(&st)
	admin := &people.Coach{Role: people.RoleAdmin}
	if err := svc.Drip.DeleteStep(ctx, admin, st.ID); err != nil {
		t.Fatal(err)
	}
	if err := seed.Run(ctx, svc, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	var n int64
	db.Model(&drip.EmailStep{}).Where("sequence_id = ?", welcome.ID).Count(&n)
	if n != 4 {
		t.Errorf("welcome series has %d steps after a re-seed, want the coach's 4", n)
	}
}

// Someone who claims the free workshop after seeding is scheduled the
// welcome series: the seeded content passes the step checks and the
// trigger finds it.
func TestSeededWelcomeSeriesIsScheduledOnClaim(t *testing.T) {
	svc, _, db := modelstest.NewService(t)
	ctx := context.Background()
	if err := seed.Run(ctx, svc, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	err := svc.People.ClaimFreeAccess(ctx, seed.ProgramSlug, people.FreeAccessInput{Email: "ana@example.com", Name: "Ana", MarketingConsent: true, DisclaimerAccepted: true},
		models.ClientInfo{IP: "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Kernel.RunTasksOnce(ctx); err != nil { // the worker's turn
		t.Fatal(err)
	}
	var n int64
	db.Model(&drip.EmailDelivery{}).Where("email = ? AND status = ?", "ana@example.com", drip.DeliveryScheduled).Count(&n)
	if n != 5 {
		t.Errorf("%d welcome emails scheduled, want 5", n)
	}
}

// TestRunSeedsCrisisResourcesOnce: the seeded crisis resources are on the
// public page, name an emergency number, a helpline finder and the
// coaching disclaimer, and a second seed keeps the admin's edit.
func TestRunSeedsCrisisResourcesOnce(t *testing.T) {
	svc, _, _ := modelstest.NewService(t)
	ctx := context.Background()
	if err := seed.Run(ctx, svc, io.Discard); err != nil {
		t.Fatal(err)
	}
	prog, err := svc.Catalog.GetPublishedProgram(ctx, seed.ProgramSlug)
	if err != nil {
		t.Fatal(err)
	}
	if prog.Crisis == nil {
		t.Fatal("no crisis resources on the seeded program page")
	}
	for _, want := range []string{"local emergency number", "https://www.hotpeachpages.net", "not psychotherapy"} {
		if !strings.Contains(prog.Crisis.Body, want) || !strings.Contains(prog.Crisis.BodyHTML, want) {
			t.Errorf("seeded crisis resources do not say %q", want)
		}
	}
	admin := modelstest.NewCoach(t, svc.Kernel.DB, "boss@example.com", people.RoleAdmin)
	if _, err := svc.Catalog.PutCrisisResources(ctx, admin.ID, catalog.CrisisInput{Body: "Her own words."}); err != nil {
		t.Fatal(err)
	}
	if err := seed.Run(ctx, svc, io.Discard); err != nil {
		t.Fatal(err)
	}
	if got, _ := svc.Catalog.GetCrisisResources(ctx); got == nil || got.Body != "Her own words." {
		t.Fatalf("a second seed overwrote the edit: %+v", got)
	}
}

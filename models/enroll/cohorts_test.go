package enroll_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	ics "github.com/arran4/golang-ical"
	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/enroll"
	"github.com/grace-coaching/grace/models/modelstest"
	"github.com/grace-coaching/grace/models/people"
)

func cohortInput(programID uuid.UUID, name string, start time.Time) enroll.CohortInput {
	return enroll.CohortInput{
		ProgramID: programID, Name: name, StartsAt: start, EndsAt: start.Add(30 * 24 * time.Hour),
		Timezone: "Europe/London", Capacity: 10, PriceCents: 30000, Currency: "EUR",
	}
}

func waitlist(t *testing.T, db *gorm.DB, cohortID uuid.UUID, n int) {
	t.Helper()
	for range n {
		p := &people.Participant{Email: uuid.NewString() + "@example.com", Name: "W", Timezone: "Europe/London"}
		if err := db.Create(p).Error; err != nil {
			t.Fatal(err)
		}
		e := &enroll.Enrollment{CohortID: cohortID, ParticipantID: p.ID, Status: enroll.EnrollmentWaitlisted, Seat: enroll.SeatNone,
			Currency: "EUR", DisputeStatus: enroll.DisputeNone}
		if err := db.Create(e).Error; err != nil {
			t.Fatal(err)
		}
	}
}

// The derived fields are computed for a whole page at once; each cohort must
// still get its own coaches (lead first) and its own waitlist count, on
// every page.
func TestListCohortsDerivesEachCohortsTeamAndWaitlist(t *testing.T) {
	svc, clock, db := modelstest.NewService(t)
	ctx := context.Background()
	admin := modelstest.NewCoach(t, db, "admin@example.com", people.RoleAdmin)
	coA := modelstest.NewCoach(t, db, "a@example.com", people.RoleCoach)
	coB := modelstest.NewCoach(t, db, "b@example.com", people.RoleCoach)
	prog, err := svc.Catalog.CreateProgram(ctx, catalog.ProgramInput{Slug: "say-no", Title: "Say No"})
	if err != nil {
		t.Fatal(err)
	}
	start := clock.Now().Add(24 * time.Hour)
	teams := [][]uuid.UUID{{coA.ID}, {coB.ID, coA.ID}, {admin.ID, coB.ID}}
	waiting := []int{2, 0, 3}
	var ids []uuid.UUID
	for i, team := range teams {
		in := cohortInput(prog.ID, "Run", start.Add(time.Duration(i)*time.Hour))
		in.CoachIDs = team
		c, err := svc.Enroll.CreateCohort(ctx, admin, in)
		if err != nil {
			t.Fatalf("create cohort %d: %v", i, err)
		}
		waitlist(t, db, c.ID, waiting[i])
		ids = append(ids, c.ID)
	}

	var got []enroll.CohortView
	pp := models.PageParams{Limit: 2}
	for {
		page, err := svc.Enroll.ListCohorts(ctx, admin, nil, pp)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, page.Items...)
		if page.NextCursor == nil {
			break
		}
		pp.Cursor = *page.NextCursor
	}
	if len(got) != 3 {
		t.Fatalf("listed %d cohorts, want 3", len(got))
	}
	for i, v := range got {
		if v.ID != ids[i] || !slices.Equal(v.CoachIDs, teams[i]) || v.WaitlistCount != waiting[i] {
			t.Errorf("cohort %d: id %s team %v waiting %d; want %s %v %d", i, v.ID, v.CoachIDs, v.WaitlistCount, ids[i], teams[i], waiting[i])
		}
	}

	// A coach lists only the cohorts whose team she is on.
	page, err := svc.Enroll.ListCohorts(ctx, coB, nil, models.PageParams{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 2 || page.Items[0].ID != ids[1] || page.Items[1].ID != ids[2] {
		t.Errorf("coach B lists %d cohorts", len(page.Items))
	}
	if _, err := svc.Enroll.GetCohort(ctx, coB, ids[0]); !models.IsCode(err, "not_found") {
		t.Errorf("coach B reads cohort 0: %v, want not_found", err)
	}
}

// A coach's text reaches her participants' calendars: a line break in a
// title must not become a new property (an attendee, an alarm, a URL).
func TestCalendarFeedKeepsTextOnItsLine(t *testing.T) {
	svc, clock, db := modelstest.NewService(t)
	ctx := context.Background()
	admin := modelstest.NewCoach(t, db, "admin@example.com", people.RoleAdmin)
	prog, err := svc.Catalog.CreateProgram(ctx, catalog.ProgramInput{Slug: "say-no", Title: "Say No"})
	if err != nil {
		t.Fatal(err)
	}
	in := cohortInput(prog.ID, "Spring", clock.Now().Add(24*time.Hour))
	in.Status = enroll.CohortOpen
	c, err := svc.Enroll.CreateCohort(ctx, admin, in)
	if err != nil {
		t.Fatal(err)
	}
	// Validation refuses line breaks now; rows written before it did not.
	name, title := "Spring\r\nATTENDEE:mailto:evil@example.com", "Week 1\nURL:https://evil.example.com"
	if _, err := svc.Enroll.CreateLiveSession(ctx, admin, c.ID, enroll.LiveSessionInput{Title: title, StartsAt: c.StartsAt, DurationMinutes: 60}); !models.IsCode(err, "validation_failed") {
		t.Errorf("a title with a line break: %v, want validation_failed", err)
	}
	if _, err := svc.Enroll.UpdateCohort(ctx, admin, c.ID, enroll.CohortPatch{Name: models.Some(name)}); !models.IsCode(err, "validation_failed") {
		t.Errorf("a name with a line break: %v, want validation_failed", err)
	}
	if err := db.Create(&enroll.LiveSession{CohortID: c.ID, Title: title, StartsAt: c.StartsAt, DurationMinutes: 60}).Error; err != nil {
		t.Fatal(err)
	}
	if err := db.Model(&enroll.Cohort{}).Where("id = ?", c.ID).Update("name", name).Error; err != nil {
		t.Fatal(err)
	}
	p := &people.Participant{Email: "ana@example.com", Name: "Ana", Timezone: "Europe/London"}
	if err := db.Create(p).Error; err != nil {
		t.Fatal(err)
	}
	now := clock.Now()
	e := &enroll.Enrollment{CohortID: c.ID, ParticipantID: p.ID, Status: enroll.EnrollmentActive, Seat: enroll.SeatPaid,
		Currency: "EUR", DisputeStatus: enroll.DisputeNone, PaidAt: &now}
	if err := db.Create(e).Error; err != nil {
		t.Fatal(err)
	}
	token, err := svc.Enroll.RotateCalendarToken(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	feed, err := svc.Enroll.CalendarFeed(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	cal, err := ics.ParseCalendar(bytes.NewReader(feed))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, feed)
	}
	events := cal.Events()
	if len(events) != 1 {
		t.Fatalf("%d events", len(events))
	}
	if len(events[0].Attendees()) != 0 || events[0].GetProperty(ics.ComponentPropertyUrl) != nil {
		t.Errorf("text injected properties:\n%s", feed)
	}
	// A bare CR is a line break to some calendar apps.
	if bytes.Count(feed, []byte("\r")) != bytes.Count(feed, []byte("\r\n")) {
		t.Errorf("the feed has a bare CR:\n%q", feed)
	}
	for _, line := range strings.Split(string(feed), "\r\n") {
		if strings.HasPrefix(line, "ATTENDEE") || strings.HasPrefix(line, "URL:https://evil") {
			t.Errorf("injected line %q", line)
		}
	}

	if _, err := svc.Enroll.CalendarFeed(ctx, ""); !models.IsCode(err, "not_found") {
		t.Errorf("empty token: %v, want not_found", err)
	}
}

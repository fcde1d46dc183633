package api_test

import (
	"bytes"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	ics "github.com/arran4/golang-ical"

	"github.com/grace-coaching/grace/api/apitest"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/enroll"
	"github.com/grace-coaching/grace/models/people"
)

type calToken struct {
	Token string `json:"token"`
	URL   string `json:"url"`
	Path  string `json:"path"`
}

func calRotate(t *testing.T, env *apitest.Env, tok string) calToken {
	t.Helper()
	var ct calToken
	env.Do(t, "POST", "/v1/portal/calendar-token", nil, apitest.Token(tok)).Expect(t, 201).JSON(t, &ct)
	if ct.Token == "" || ct.Path != "/v1/portal/calendar.ics?token="+url.QueryEscape(ct.Token) || !strings.HasSuffix(ct.URL, ct.Path) ||
		!strings.HasPrefix(ct.URL, "http") {
		t.Fatalf("calendar token: %+v", ct)
	}
	return ct
}

// calFetch gets the feed with no bearer token, as a calendar app would, and
// parses it back as RFC 5545.
func calFetch(t *testing.T, env *apitest.Env, path string) (*ics.Calendar, []byte) {
	t.Helper()
	res := env.Do(t, "GET", path, nil).Expect(t, 200)
	if ct := res.Header.Get("Content-Type"); ct != "text/calendar; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	if bytes.Count(res.Body, []byte("\n")) != bytes.Count(res.Body, []byte("\r\n")) {
		t.Errorf("lines are not CRLF-terminated as RFC 5545 requires")
	}
	cal, err := ics.ParseCalendar(bytes.NewReader(res.Body))
	if err != nil {
		t.Fatalf("parse feed: %v\n%s", err, res.Body)
	}
	return cal, res.Body
}

func calProp(e *ics.VEvent, p ics.ComponentProperty) string {
	if prop := e.GetProperty(p); prop != nil {
		return ics.FromText(prop.Value)
	}
	return ""
}

func TestCalendarFeedListsHerActiveSessions(t *testing.T) {
	env := apitest.NewEnv(t)
	_, coachTok := env.Coach(t, "lead@example.com", people.RoleCoach)
	prog := env.Program(t, "say-no", catalog.ProgramPublished, false)
	active := cohCreate(t, env, coachTok, cohBody(env, prog.ID, map[string]any{"status": "open", "name": "Spring; circle, evenings", "timezone": "America/New_York"}))
	pending := cohCreate(t, env, coachTok, cohBody(env, prog.ID, map[string]any{"status": "open", "name": "Pending circle"}))
	start := cohStart(env)
	meet := "https://meet.example.com/spring?pwd=abc"
	s1 := cohAddSession(t, env, coachTok, active.ID, map[string]any{"title": "Week 1", "starts_at": start.Add(18 * time.Hour).Format(time.RFC3339),
		"duration_minutes": 90, "meeting_url": meet})
	s2 := cohAddSession(t, env, coachTok, active.ID, map[string]any{"title": "Week 2", "starts_at": start.Add(7*24*time.Hour + 18*time.Hour).Format(time.RFC3339),
		"duration_minutes": 60})
	cohAddSession(t, env, coachTok, pending.ID, map[string]any{"title": "Not hers yet", "starts_at": start.Format(time.RFC3339),
		"duration_minutes": 60, "meeting_url": "https://meet.example.com/pending"})

	ana, anaTok := env.Participant(t, "ana@example.com")
	cohEnroll(t, env, active.ID, ana.ID, enroll.EnrollmentActive)
	cohEnroll(t, env, pending.ID, ana.ID, enroll.EnrollmentPending)
	bea, beaTok := env.Participant(t, "bea@example.com")
	cohEnroll(t, env, pending.ID, bea.ID, enroll.EnrollmentActive)

	ct := calRotate(t, env, anaTok)
	cal, first := calFetch(t, env, ct.Path)
	if !bytes.Contains(first, []byte("PRODID:")) {
		t.Errorf("no PRODID:\n%s", first)
	}
	events := cal.Events()
	if len(events) != 2 {
		t.Fatalf("%d events, want her 2 active sessions:\n%s", len(events), first)
	}
	if strings.Contains(string(first), "pending") {
		t.Errorf("the feed shows a cohort she has not paid for:\n%s", first)
	}
	for i, want := range []cohSession{s1, s2} {
		e := events[i]
		if e.Id() != want.ID+"@grace" {
			t.Errorf("UID = %q, want %q", e.Id(), want.ID+"@grace")
		}
		startAt, err := e.GetStartAt()
		if err != nil || !startAt.Equal(want.StartsAt) || startAt.Location() != time.UTC {
			t.Errorf("DTSTART = %v (%v), want %v in UTC", startAt, err, want.StartsAt)
		}
		if raw := e.GetProperty(ics.ComponentPropertyDtStart).Value; !strings.HasSuffix(raw, "Z") {
			t.Errorf("DTSTART %q is not UTC", raw)
		}
		endAt, err := e.GetEndAt()
		if err != nil || !endAt.Equal(want.StartsAt.Add(time.Duration(want.DurationMinutes)*time.Minute)) {
			t.Errorf("DTEND = %v (%v)", endAt, err)
		}
		if got := calProp(e, ics.ComponentPropertySummary); got != "Spring; circle, evenings: "+want.Title {
			t.Errorf("SUMMARY = %q", got)
		}
		if got := calProp(e, ics.ComponentPropertyDescription); !strings.Contains(got, "America/New_York") {
			t.Errorf("DESCRIPTION %q does not name the cohort's time zone", got)
		}
		if e.GetProperty(ics.ComponentPropertyDtstamp) == nil {
			t.Errorf("no DTSTAMP")
		}
	}
	if got := calProp(events[0], ics.ComponentPropertyLocation); got != meet {
		t.Errorf("LOCATION = %q, want %q", got, meet)
	}
	if got := calProp(events[0], ics.ComponentPropertyUrl); got != meet {
		t.Errorf("URL = %q, want %q", got, meet)
	}
	if events[1].GetProperty(ics.ComponentPropertyLocation) != nil {
		t.Errorf("a session without a link has a LOCATION")
	}

	// A second fetch is the same calendar: apps see nothing to change.
	env.Clock.Advance(time.Hour)
	_, second := calFetch(t, env, ct.Path)
	if !bytes.Equal(first, second) {
		t.Errorf("two fetches differ:\n%s\n---\n%s", first, second)
	}

	// Moving a session moves the event: same UID, new time.
	moved := start.Add(20 * time.Hour)
	env.Do(t, "PATCH", "/v1/admin/sessions/"+s1.ID, map[string]any{"starts_at": moved.Format(time.RFC3339)}, apitest.Token(coachTok)).Expect(t, 200)
	cal, _ = calFetch(t, env, ct.Path)
	var uids []string
	for _, e := range cal.Events() {
		uids = append(uids, e.Id())
	}
	if !slices.Contains(uids, s1.ID+"@grace") || len(uids) != 2 {
		t.Errorf("UIDs after a move: %v", uids)
	}

	// Bea's feed is hers alone.
	beaCal, _ := calFetch(t, env, calRotate(t, env, beaTok).Path)
	if n := len(beaCal.Events()); n != 1 || calProp(beaCal.Events()[0], ics.ComponentPropertySummary) != "Pending circle: Not hers yet" {
		t.Errorf("bea's feed: %d events", n)
	}
}

func TestCalendarTokenRotationKillsTheOldURL(t *testing.T) {
	env := apitest.NewEnv(t)
	_, tok := env.Participant(t, "ana@example.com")

	old := calRotate(t, env, tok)
	cal, _ := calFetch(t, env, old.Path)
	if len(cal.Events()) != 0 {
		t.Errorf("a woman with no enrollment has events")
	}
	fresh := calRotate(t, env, tok)
	if fresh.Token == old.Token {
		t.Fatal("rotation returned the same token")
	}
	env.Do(t, "GET", old.Path, nil).ExpectProblem(t, 404, "not_found")
	calFetch(t, env, fresh.Path)
	if n := env.Count(t, "calendar_tokens"); n != 1 {
		t.Errorf("calendar_tokens = %d, want 1", n)
	}

	for _, path := range []string{
		"/v1/portal/calendar.ics?token=not-a-real-token",
		"/v1/portal/calendar.ics?token=" + url.QueryEscape(fresh.Token+"x"),
		"/v1/portal/calendar.ics",
	} {
		// Never 401: a calendar app would ask her for a password.
		env.Do(t, "GET", path, nil).ExpectProblem(t, 404, "not_found")
	}
	// Rotating needs her session; the feed itself is the only route without one.
	env.Do(t, "POST", "/v1/portal/calendar-token", nil).ExpectProblem(t, 401, "unauthorized")
}

package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	ics "github.com/arran4/golang-ical"

	"github.com/grace-coaching/grace/api/apitest"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/enroll"
	"github.com/grace-coaching/grace/models/people"
)

type meBody struct {
	Email           string     `json:"email"`
	Discreet        bool       `json:"discreet"`
	Paused          bool       `json:"paused"`
	PausedUntil     *time.Time `json:"paused_until"`
	CrisisResources *struct {
		Body      string    `json:"body"`
		BodyHTML  string    `json:"body_html"`
		UpdatedAt time.Time `json:"updated_at"`
	} `json:"crisis_resources"`
}

func TestDiscreetModeIsHersToSwitch(t *testing.T) {
	env := apitest.NewEnv(t)
	_, tok := env.Participant(t, "ana@example.com")
	var me meBody
	env.Do(t, "GET", "/v1/portal/me", nil, apitest.Token(tok)).Expect(t, 200).JSON(t, &me)
	if me.Discreet || me.Paused || me.PausedUntil != nil {
		t.Fatalf("a new participant: %+v", me)
	}
	env.Do(t, "PATCH", "/v1/portal/me", map[string]any{"discreet": true}, apitest.Token(tok)).Expect(t, 200).JSON(t, &me)
	if !me.Discreet {
		t.Fatal("PATCH discreet true did not switch it on")
	}
	env.Do(t, "PATCH", "/v1/portal/me", map[string]any{"discreet": false}, apitest.Token(tok)).Expect(t, 200).JSON(t, &me)
	if me.Discreet {
		t.Fatal("she could not switch it off")
	}
	for _, body := range []map[string]any{{"discreet": nil}, {"discreet": "yes"}} {
		res := env.Do(t, "PATCH", "/v1/portal/me", body, apitest.Token(tok))
		if res.Status != 400 && res.Status != 422 {
			t.Errorf("PATCH %v = %d, want 4xx", body, res.Status)
		}
	}
}

// TestFormsTurnDiscreetOnNeverOff: the claim, checkout and waitlist forms
// accept discreet; true switches it on, false leaves it on.
func TestFormsTurnDiscreetOnNeverOff(t *testing.T) {
	env := apitest.NewEnv(t)
	prog := env.Program(t, "say-no", catalog.ProgramPublished, true)
	_, coachTok := env.Coach(t, "lead@example.com", people.RoleCoach)
	full := cohCreate(t, env, coachTok, cohBody(env, prog.ID, map[string]any{"status": "open", "capacity": 1, "price_cents": 0}))
	discreet := func(email string) bool {
		t.Helper()
		var p people.Participant
		if err := env.DB.Where("email = ?", email).Take(&p).Error; err != nil {
			t.Fatal(err)
		}
		return p.Discreet
	}
	claim := func(email string, d bool) {
		env.Do(t, "POST", "/v1/programs/say-no/free-access", map[string]any{"email": email, "name": "Ana",
			"marketing_consent": false, "disclaimer_accepted": true, "discreet": d}).Expect(t, http.StatusAccepted)
	}
	claim("ana@example.com", true)
	claim("ana@example.com", false)
	if !discreet("ana@example.com") {
		t.Fatal("a claim with discreet false switched it off")
	}
	env.Do(t, "POST", "/v1/cohorts/"+full.ID+"/checkout", map[string]any{"email": "bea@example.com", "name": "Bea",
		"marketing_consent": false, "disclaimer_accepted": true, "discreet": true}).Expect(t, http.StatusAccepted)
	if !discreet("bea@example.com") {
		t.Fatal("checkout with discreet true did not switch it on")
	}
	env.Do(t, "POST", "/v1/cohorts/"+full.ID+"/waitlist", map[string]any{"email": "cat@example.com", "name": "Cat", "discreet": true}).
		Expect(t, http.StatusAccepted)
	env.Do(t, "POST", "/v1/cohorts/"+full.ID+"/waitlist", map[string]any{"email": "cat@example.com", "name": "Cat", "discreet": false}).
		Expect(t, http.StatusAccepted)
	if !discreet("cat@example.com") {
		t.Fatal("the waitlist form did not keep discreet on")
	}
	env.Do(t, "POST", "/v1/cohorts/"+full.ID+"/waitlist", map[string]any{"email": "dee@example.com", "name": "Dee", "discreet": "on"}).
		Expect(t, http.StatusUnprocessableEntity)
}

func TestPauseAndResume(t *testing.T) {
	env := apitest.NewEnv(t)
	_, tok := env.Participant(t, "ana@example.com")
	now := env.Clock.Now()
	var me meBody
	until := now.Add(72 * time.Hour).UTC().Truncate(time.Second)
	env.Do(t, "POST", "/v1/portal/pause", map[string]any{"until": until.Format(time.RFC3339)}, apitest.Token(tok)).Expect(t, 200).JSON(t, &me)
	if !me.Paused || me.PausedUntil == nil || !me.PausedUntil.Equal(until) {
		t.Fatalf("paused until %s: %+v", until, me)
	}
	env.Do(t, "GET", "/v1/portal/me", nil, apitest.Token(tok)).Expect(t, 200).JSON(t, &me)
	if !me.Paused {
		t.Fatal("GET /v1/portal/me does not show the pause")
	}
	// A date is the start of that day in her zone (UTC here).
	day := now.AddDate(0, 0, 10).UTC()
	env.Do(t, "POST", "/v1/portal/pause", map[string]any{"until": day.Format(time.DateOnly)}, apitest.Token(tok)).Expect(t, 200).JSON(t, &me)
	if want := time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, time.UTC); me.PausedUntil == nil || !me.PausedUntil.Equal(want) {
		t.Fatalf("paused until %v, want %s", me.PausedUntil, want)
	}
	env.Do(t, "POST", "/v1/portal/pause", map[string]any{"until": nil}, apitest.Token(tok)).Expect(t, 200).JSON(t, &me)
	if !me.Paused || me.PausedUntil != nil {
		t.Fatalf("paused until she resumes: %+v", me)
	}
	env.Do(t, "DELETE", "/v1/portal/pause", nil, apitest.Token(tok)).Expect(t, 200).JSON(t, &me)
	if me.Paused || me.PausedUntil != nil {
		t.Fatalf("resumed: %+v", me)
	}
	for _, until := range []any{now.Add(-time.Minute).Format(time.RFC3339), now.Format(time.DateOnly), "next week", "2026-02-30"} {
		res := env.Do(t, "POST", "/v1/portal/pause", map[string]any{"until": until}, apitest.Token(tok))
		if res.Status != 422 || !strings.Contains(string(res.Body), `"until"`) {
			t.Errorf("pause until %v = %d %s, want 422 naming until", until, res.Status, res.Body)
		}
	}
	env.Do(t, "POST", "/v1/portal/pause", map[string]any{"until": 5}, apitest.Token(tok)).Expect(t, 422)
	env.Do(t, "POST", "/v1/portal/pause", map[string]any{}).Expect(t, 401)
}

func TestCalendarIsNeutralWhenDiscreet(t *testing.T) {
	env := apitest.NewEnv(t)
	_, coachTok := env.Coach(t, "lead@example.com", people.RoleCoach)
	prog := env.Program(t, "say-no", catalog.ProgramPublished, false)
	co := cohCreate(t, env, coachTok, cohBody(env, prog.ID, map[string]any{"status": "open", "name": "Say No Spring Circle"}))
	cohAddSession(t, env, coachTok, co.ID, map[string]any{"title": "Boundaries after abuse", "starts_at": cohStart(env).Format(time.RFC3339),
		"duration_minutes": 60, "meeting_url": "https://meet.example.com/x"})
	ana, tok := env.Participant(t, "ana@example.com")
	cohEnroll(t, env, co.ID, ana.ID, enroll.EnrollmentActive)
	ct := calRotate(t, env, tok)

	cal, _ := calFetch(t, env, ct.Path)
	if s := calProp(cal.Events()[0], ics.ComponentPropertySummary); !strings.Contains(s, "Say No Spring Circle") {
		t.Fatalf("the usual title is %q", s)
	}
	env.Do(t, "PATCH", "/v1/portal/me", map[string]any{"discreet": true}, apitest.Token(tok)).Expect(t, 200)
	cal, raw := calFetch(t, env, ct.Path)
	ev := cal.Events()[0]
	if s := calProp(ev, ics.ComponentPropertySummary); s != "Appointment" {
		t.Errorf("discreet title %q", s)
	}
	if d := calProp(ev, ics.ComponentPropertyDescription); d != "Join: https://meet.example.com/x" {
		t.Errorf("discreet description %q", d)
	}
	for _, w := range []string{"Say No", "Spring", "abuse", "Boundaries", "Grace", "cohort", "Live session"} {
		if strings.Contains(string(raw), w) {
			t.Errorf("the discreet feed says %q:\n%s", w, raw)
		}
	}
}

func TestCrisisResources(t *testing.T) {
	env := apitest.NewEnv(t)
	_, adminTok := env.Coach(t, "admin@example.com", people.RoleAdmin)
	_, coachTok := env.Coach(t, "coach@example.com", people.RoleCoach)
	prog := env.Program(t, "say-no", catalog.ProgramPublished, true)
	lesson := env.Lesson(t, prog.ID, "Day 1", true, true, 0)
	ana, tok := env.Participant(t, "ana@example.com")
	env.Grant(t, ana.ID, prog.ID, people.GrantFreeAccess, env.Clock.Now())

	// None written yet: null everywhere, 404 for the editor.
	var page struct {
		CrisisResources *struct {
			BodyHTML string `json:"body_html"`
		} `json:"crisis_resources"`
	}
	env.Do(t, "GET", "/v1/programs/say-no", nil).Expect(t, 200).JSON(t, &page)
	if page.CrisisResources != nil {
		t.Fatalf("crisis resources before any were written: %+v", page.CrisisResources)
	}
	env.Do(t, "GET", "/v1/admin/settings/crisis-resources", nil, apitest.Token(adminTok)).Expect(t, 404)

	// A coach may not edit; nobody unsigned may.
	body := map[string]any{"body": "Call **112**. <script>alert(1)</script> [Helplines](https://www.hotpeachpages.net)"}
	env.Do(t, "PUT", "/v1/admin/settings/crisis-resources", body, apitest.Token(coachTok)).Expect(t, 403)
	env.Do(t, "GET", "/v1/admin/settings/crisis-resources", nil, apitest.Token(coachTok)).Expect(t, 403)
	env.Do(t, "PUT", "/v1/admin/settings/crisis-resources", body).Expect(t, 401)

	var v1 meBody
	env.Do(t, "PUT", "/v1/admin/settings/crisis-resources", body, apitest.Token(adminTok)).Expect(t, 200).JSON(t, &v1.CrisisResources)
	if h := v1.CrisisResources.BodyHTML; !strings.Contains(h, "<strong>112</strong>") || strings.Contains(h, "<script>") {
		t.Fatalf("rendered %q", h)
	}

	// The cached program page and every portal answer show it at once.
	check := func(want string) {
		t.Helper()
		for _, path := range []string{"/v1/programs/say-no", "/v1/portal/me", "/v1/portal/programs", "/v1/portal/programs/say-no/lessons",
			"/v1/portal/lessons/" + lesson.ID.String()} {
			var got struct {
				CrisisResources *struct {
					Body string `json:"body"`
				} `json:"crisis_resources"`
			}
			env.Do(t, "GET", path, nil, apitest.Token(tok)).Expect(t, 200).JSON(t, &got)
			if got.CrisisResources == nil || got.CrisisResources.Body != want {
				t.Errorf("%s: crisis resources %+v, want %q", path, got.CrisisResources, want)
			}
		}
	}
	check(body["body"].(string))

	// An edit naming the version it loaded wins; a stale one is 409.
	edit := map[string]any{"body": "Call your local emergency number.", "updated_at": v1.CrisisResources.UpdatedAt.Format(time.RFC3339Nano)}
	env.Do(t, "PUT", "/v1/admin/settings/crisis-resources", edit, apitest.Token(adminTok)).Expect(t, 200)
	check("Call your local emergency number.")
	edit["body"] = "An edit made on an old copy"
	env.Do(t, "PUT", "/v1/admin/settings/crisis-resources", edit, apitest.Token(adminTok)).Expect(t, 409)
	check("Call your local emergency number.")

	// The lesson read does not touch the table: the text comes from memory,
	// so the hottest route stays one round trip.
	if err := env.DB.Exec(`ALTER TABLE crisis_resources RENAME TO crisis_resources_away`).Error; err != nil {
		t.Fatal(err)
	}
	check("Call your local emergency number.")
	if err := env.DB.Exec(`ALTER TABLE crisis_resources_away RENAME TO crisis_resources`).Error; err != nil {
		t.Fatal(err)
	}

	for _, bad := range []map[string]any{{}, {"body": ""}, {"body": strings.Repeat("x", catalog.CrisisMaxLength+1)}, {"body": 3}} {
		res := env.Do(t, "PUT", "/v1/admin/settings/crisis-resources", bad, apitest.Token(adminTok))
		if res.Status < 400 || res.Status >= 500 {
			t.Errorf("PUT %v = %d, want 4xx", bad, res.Status)
		}
	}
}

package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/grace-coaching/grace/api/apitest"
	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/people"
)

// gateWorld is one published program with a lesson of every kind, a draft
// program, and three participants: one with access from now, one who never
// had any, and one whose access was revoked.
type gateWorld struct {
	env                                  *apitest.Env
	prog, draft                          *catalog.Program
	preview, day0, day3, hidden, drafted *catalog.Lesson
	granted, stranger, revoked           string // session tokens
	grantedP                             *people.Participant
}

func newGateWorld(t *testing.T) *gateWorld {
	t.Helper()
	env := apitest.NewEnv(t)
	w := &gateWorld{env: env}
	w.prog = env.Program(t, "say-no-with-grace", catalog.ProgramPublished, true)
	w.preview = env.Lesson(t, w.prog.ID, "Why no contact", true, true, 0)
	w.day0 = env.Lesson(t, w.prog.ID, "Setting boundaries", true, false, 0)
	w.day3 = env.Lesson(t, w.prog.ID, "Recognising hoovering", true, false, 3)
	w.hidden = env.Lesson(t, w.prog.ID, "Work in progress", false, false, 0)
	w.draft = env.Program(t, "next-program", catalog.ProgramDraft, false)
	w.drafted = env.Lesson(t, w.draft.ID, "Not out yet", true, true, 0)

	w.grantedP, w.granted = env.Participant(t, "granted@example.com")
	env.Grant(t, w.grantedP.ID, w.prog.ID, people.GrantFreeAccess, env.Clock.Now())
	env.Grant(t, w.grantedP.ID, w.draft.ID, people.GrantComplimentary, env.Clock.Now())
	_, w.stranger = env.Participant(t, "stranger@example.com")
	rp, revoked := env.Participant(t, "revoked@example.com")
	w.revoked = revoked
	g := env.Grant(t, rp.ID, w.prog.ID, people.GrantComplimentary, env.Clock.Now().Add(-24*time.Hour))
	env.DB.Model(g).Update("revoked_at", env.Clock.Now())
	return w
}

type gateLesson struct {
	ID               string     `json:"id"`
	ProgramID        string     `json:"program_id"`
	Title            string     `json:"title"`
	Body             string     `json:"body"`
	BodyHTML         string     `json:"body_html"`
	FreePreview      bool       `json:"free_preview"`
	UnlockOffsetDays int        `json:"unlock_offset_days"`
	Published        bool       `json:"published"`
	Locked           bool       `json:"locked"`
	UnlockAt         *time.Time `json:"unlock_at"`
	Completed        bool       `json:"completed"`
}

type gateSummary struct {
	ID          string     `json:"id"`
	Position    int        `json:"position"`
	FreePreview bool       `json:"free_preview"`
	Locked      bool       `json:"locked"`
	UnlockAt    *time.Time `json:"unlock_at"`
	Completed   bool       `json:"completed"`
}

type gateSummaryList struct {
	Data       []gateSummary `json:"data"`
	NextCursor *string       `json:"next_cursor"`
}

type gateProgram struct {
	ID               string    `json:"id"`
	Slug             string    `json:"slug"`
	AccessStartsAt   time.Time `json:"access_starts_at"`
	LessonsTotal     int       `json:"lessons_total"`
	LessonsCompleted int       `json:"lessons_completed"`
}

type gateProgramList struct {
	Data       []gateProgram `json:"data"`
	NextCursor *string       `json:"next_cursor"`
}

func lessonPath(id uuid.UUID) string { return "/v1/portal/lessons/" + id.String() }

func TestGateReadLesson(t *testing.T) {
	w := newGateWorld(t)
	start := w.env.Clock.Now()
	day3 := start.AddDate(0, 0, 3) // Europe/London is on GMT all of early March
	for _, tc := range []struct {
		name     string
		token    string
		path     string
		status   int
		code     string
		unlockAt *time.Time
	}{
		{"free preview with access", w.granted, lessonPath(w.preview.ID), 200, "", nil},
		{"free preview without access", w.stranger, lessonPath(w.preview.ID), 200, "", nil},
		{"free preview after revocation", w.revoked, lessonPath(w.preview.ID), 200, "", nil},
		{"day-0 lesson with access", w.granted, lessonPath(w.day0.ID), 200, "", &start},
		{"day-0 lesson without access", w.stranger, lessonPath(w.day0.ID), 403, "no_access", nil},
		{"day-0 lesson after revocation", w.revoked, lessonPath(w.day0.ID), 403, "no_access", nil},
		{"day-3 lesson too early", w.granted, lessonPath(w.day3.ID), 403, "lesson_locked", &day3},
		{"day-3 lesson without access", w.stranger, lessonPath(w.day3.ID), 403, "no_access", nil},
		{"unpublished lesson", w.granted, lessonPath(w.hidden.ID), 404, "not_found", nil},
		{"lesson of a draft program, even with a grant", w.granted, lessonPath(w.drafted.ID), 404, "not_found", nil},
		{"unknown lesson", w.granted, lessonPath(uuid.New()), 404, "not_found", nil},
		{"malformed id", w.granted, "/v1/portal/lessons/not-a-uuid", 404, "not_found", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := w.env.Do(t, http.MethodGet, tc.path, nil, apitest.Token(tc.token))
			if tc.status != http.StatusOK {
				p := res.ExpectProblem(t, tc.status, tc.code)
				want := ""
				if tc.unlockAt != nil {
					want = tc.unlockAt.UTC().Format(time.RFC3339)
				}
				if p.UnlockAt != want {
					t.Errorf("unlock_at = %q, want %q", p.UnlockAt, want)
				}
				return
			}
			var l gateLesson
			res.Expect(t, http.StatusOK).JSON(t, &l)
			if l.Locked || !l.Published || l.Completed {
				t.Errorf("lesson = %+v", l)
			}
			if (l.UnlockAt == nil) != (tc.unlockAt == nil) || (l.UnlockAt != nil && !l.UnlockAt.Equal(*tc.unlockAt)) {
				t.Errorf("unlock_at = %v, want %v", l.UnlockAt, tc.unlockAt)
			}
		})
	}
}

func TestGateLessonUnlocksOnTime(t *testing.T) {
	w := newGateWorld(t)
	unlock := w.env.Clock.Now().AddDate(0, 0, 3)

	w.env.Clock.Set(unlock.Add(-time.Second))
	w.env.Do(t, http.MethodGet, lessonPath(w.day3.ID), nil, apitest.Token(w.granted)).ExpectProblem(t, 403, "lesson_locked")
	w.env.Do(t, http.MethodPut, lessonPath(w.day3.ID)+"/completion", nil, apitest.Token(w.granted)).ExpectProblem(t, 403, "lesson_locked")

	w.env.Clock.Set(unlock)
	var l gateLesson
	w.env.Do(t, http.MethodGet, lessonPath(w.day3.ID), nil, apitest.Token(w.granted)).Expect(t, http.StatusOK).JSON(t, &l)
	if l.ID != w.day3.ID.String() || l.UnlockAt == nil || !l.UnlockAt.Equal(unlock) || l.Body != w.day3.Body || l.BodyHTML != w.day3.BodyHTML {
		t.Errorf("lesson = %+v, want day-3 lesson unlocked at %v", l, unlock)
	}
	// Still closed to a woman without access, whatever the time.
	w.env.Do(t, http.MethodGet, lessonPath(w.day3.ID), nil, apitest.Token(w.stranger)).ExpectProblem(t, 403, "no_access")
}

func TestGateUnlockCountsDaysInHerTimeZone(t *testing.T) {
	for _, tc := range []struct {
		name     string
		timezone string
		start    time.Time
		days     int
		unlockAt string
	}{
		// The UK moves to BST on 29 March 2026: 09:00 GMT + 3 days is 09:00 BST.
		{"London across the spring change", "Europe/London", time.Date(2026, 3, 27, 9, 0, 0, 0, time.UTC), 3, "2026-03-30T08:00:00Z"},
		{"UTC has no change", "UTC", time.Date(2026, 3, 27, 9, 0, 0, 0, time.UTC), 3, "2026-03-30T09:00:00Z"},
		// The US moves to EDT on 8 March 2026.
		{"New York across the spring change", "America/New_York", time.Date(2026, 3, 6, 14, 0, 0, 0, time.UTC), 3, "2026-03-09T13:00:00Z"},
		// The UK returns to GMT on 25 October 2026.
		{"London across the autumn change", "Europe/London", time.Date(2026, 10, 24, 8, 0, 0, 0, time.UTC), 1, "2026-10-25T09:00:00Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := apitest.NewEnv(t)
			env.Clock.Set(tc.start)
			prog := env.Program(t, "say-no-with-grace", catalog.ProgramPublished, false)
			lesson := env.Lesson(t, prog.ID, "Later", true, false, tc.days)
			p, token := env.Participant(t, "jane@example.com")
			env.DB.Model(p).Update("timezone", tc.timezone)
			env.Grant(t, p.ID, prog.ID, people.GrantComplimentary, tc.start)

			prob := env.Do(t, http.MethodGet, lessonPath(lesson.ID), nil, apitest.Token(token)).ExpectProblem(t, 403, "lesson_locked")
			if prob.UnlockAt != tc.unlockAt {
				t.Fatalf("unlock_at = %s, want %s", prob.UnlockAt, tc.unlockAt)
			}
			var list gateSummaryList
			env.Do(t, http.MethodGet, "/v1/portal/programs/say-no-with-grace/lessons", nil, apitest.Token(token)).Expect(t, 200).JSON(t, &list)
			if len(list.Data) != 1 || list.Data[0].UnlockAt == nil || list.Data[0].UnlockAt.UTC().Format(time.RFC3339) != tc.unlockAt {
				t.Errorf("listed unlock_at = %+v, want %s", list.Data, tc.unlockAt)
			}
			at, _ := time.Parse(time.RFC3339, tc.unlockAt)
			env.Clock.Set(at)
			env.Do(t, http.MethodGet, lessonPath(lesson.ID), nil, apitest.Token(token)).Expect(t, http.StatusOK)
		})
	}
}

func TestGateUsesEarliestActiveGrant(t *testing.T) {
	env := apitest.NewEnv(t)
	now := env.Clock.Now()
	prog := env.Program(t, "say-no-with-grace", catalog.ProgramPublished, true)
	lesson := env.Lesson(t, prog.ID, "Day 2", true, false, 2)
	p, token := env.Participant(t, "jane@example.com")
	env.DB.Model(p).Update("timezone", "UTC")
	env.Grant(t, p.ID, prog.ID, people.GrantFreeAccess, now)
	revoked := env.Grant(t, p.ID, prog.ID, people.GrantComplimentary, now.AddDate(0, 0, -10))
	env.DB.Model(revoked).Update("revoked_at", now)

	// The revoked, older grant does not count: she is on day 0.
	prob := env.Do(t, http.MethodGet, lessonPath(lesson.ID), nil, apitest.Token(token)).ExpectProblem(t, 403, "lesson_locked")
	if want := now.AddDate(0, 0, 2).Format(time.RFC3339); prob.UnlockAt != want {
		t.Errorf("unlock_at = %s, want %s", prob.UnlockAt, want)
	}
	// An enrolment that started earlier moves her schedule forward.
	env.Grant(t, p.ID, prog.ID, people.GrantComplimentary, now.AddDate(0, 0, -5))
	env.Do(t, http.MethodGet, lessonPath(lesson.ID), nil, apitest.Token(token)).Expect(t, http.StatusOK)
}

func TestGateGrantStartingLater(t *testing.T) {
	env := apitest.NewEnv(t)
	start := env.Clock.Now().Add(48 * time.Hour)
	prog := env.Program(t, "say-no-with-grace", catalog.ProgramPublished, false)
	lesson := env.Lesson(t, prog.ID, "Welcome", true, false, 0)
	p, token := env.Participant(t, "jane@example.com")
	env.Grant(t, p.ID, prog.ID, people.GrantComplimentary, start)

	prob := env.Do(t, http.MethodGet, lessonPath(lesson.ID), nil, apitest.Token(token)).ExpectProblem(t, 403, "lesson_locked")
	if prob.UnlockAt != start.Format(time.RFC3339) {
		t.Errorf("unlock_at = %s, want %s", prob.UnlockAt, start.Format(time.RFC3339))
	}
}

func TestGateArchivedProgramKeepsAccess(t *testing.T) {
	env := apitest.NewEnv(t)
	prog := env.Program(t, "say-no-with-grace", catalog.ProgramArchived, false)
	lesson := env.Lesson(t, prog.ID, "Welcome", true, false, 0)
	p, token := env.Participant(t, "jane@example.com")
	env.Grant(t, p.ID, prog.ID, people.GrantComplimentary, env.Clock.Now())
	env.Do(t, http.MethodGet, lessonPath(lesson.ID), nil, apitest.Token(token)).Expect(t, http.StatusOK)

	var progs gateProgramList
	env.Do(t, http.MethodGet, "/v1/portal/programs", nil, apitest.Token(token)).Expect(t, 200).JSON(t, &progs)
	if len(progs.Data) != 1 || progs.Data[0].ID != prog.ID.String() {
		t.Errorf("programs = %+v, want the archived one she holds", progs.Data)
	}
}

func TestGateLessonBodyIsSanitised(t *testing.T) {
	env := apitest.NewEnv(t)
	prog := env.Program(t, "say-no-with-grace", catalog.ProgramPublished, true)
	lesson := env.Lesson(t, prog.ID, "Boundaries", true, true, 0)
	body := "# Boundaries\n\nSay no.<script>alert('x')</script>\n\n<img src=x onerror=alert(1)>\n\n[click](javascript:alert(1))"
	env.DB.Model(lesson).Updates(map[string]any{"body": body, "body_html": models.RenderMarkdown(body)})
	_, token := env.Participant(t, "jane@example.com")

	var l gateLesson
	env.Do(t, http.MethodGet, lessonPath(lesson.ID), nil, apitest.Token(token)).Expect(t, http.StatusOK).JSON(t, &l)
	lower := strings.ToLower(l.BodyHTML)
	// Escaped as text is fine; a live tag, handler or URL is not.
	for _, bad := range []string{"<script", "<img", "javascript:"} {
		if strings.Contains(lower, bad) {
			t.Errorf("body_html contains %q: %s", bad, l.BodyHTML)
		}
	}
	if !strings.Contains(l.BodyHTML, "<h1") || !strings.Contains(l.BodyHTML, "Say no.") {
		t.Errorf("body_html lost the lesson: %s", l.BodyHTML)
	}
	if l.Body != body {
		t.Errorf("body = %q, want the Markdown as written", l.Body)
	}
}

func TestGateCompletion(t *testing.T) {
	w := newGateWorld(t)
	env := w.env
	completion := func(l *catalog.Lesson) string { return lessonPath(l.ID) + "/completion" }
	completions := func() []people.LessonCompletion {
		var cs []people.LessonCompletion
		env.DB.Find(&cs)
		return cs
	}

	env.Do(t, http.MethodPut, completion(w.day0), nil, apitest.Token(w.granted)).Expect(t, http.StatusNoContent)
	first := env.Clock.Now()
	env.Clock.Advance(time.Hour)
	env.Do(t, http.MethodPut, completion(w.day0), nil, apitest.Token(w.granted)).Expect(t, http.StatusNoContent)
	cs := completions()
	if len(cs) != 1 || cs[0].ParticipantID != w.grantedP.ID || cs[0].LessonID != w.day0.ID || !cs[0].CompletedAt.Equal(first) {
		t.Fatalf("completions = %+v, want one at %v", cs, first)
	}
	var l gateLesson
	env.Do(t, http.MethodGet, lessonPath(w.day0.ID), nil, apitest.Token(w.granted)).Expect(t, 200).JSON(t, &l)
	if !l.Completed {
		t.Error("completed = false after PUT")
	}

	// Refusals write nothing.
	for _, tc := range []struct {
		name   string
		token  string
		path   string
		status int
		code   string
	}{
		{"locked lesson", w.granted, completion(w.day3), 403, "lesson_locked"},
		{"no access", w.stranger, completion(w.day0), 403, "no_access"},
		{"revoked access", w.revoked, completion(w.day0), 403, "no_access"},
		{"unpublished lesson", w.granted, completion(w.hidden), 404, "not_found"},
		{"draft program", w.granted, completion(w.drafted), 404, "not_found"},
		{"unknown lesson", w.granted, lessonPath(uuid.New()) + "/completion", 404, "not_found"},
		{"malformed id", w.granted, "/v1/portal/lessons/123/completion", 404, "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env.Do(t, http.MethodPut, tc.path, nil, apitest.Token(tc.token)).ExpectProblem(t, tc.status, tc.code)
			if n := len(completions()); n != 1 {
				t.Errorf("completions = %d, want 1", n)
			}
		})
	}

	// A free preview can be completed without access.
	env.Do(t, http.MethodPut, completion(w.preview), nil, apitest.Token(w.stranger)).Expect(t, http.StatusNoContent)
	if n := len(completions()); n != 2 {
		t.Fatalf("completions = %d, want 2", n)
	}

	env.Do(t, http.MethodDelete, completion(w.day0), nil, apitest.Token(w.granted)).Expect(t, http.StatusNoContent)
	env.Do(t, http.MethodDelete, completion(w.day0), nil, apitest.Token(w.granted)).Expect(t, http.StatusNoContent)
	cs = completions()
	if len(cs) != 1 || cs[0].LessonID != w.preview.ID {
		t.Errorf("completions = %+v, want only the stranger's preview", cs)
	}
	env.Do(t, http.MethodGet, lessonPath(w.day0.ID), nil, apitest.Token(w.granted)).Expect(t, 200).JSON(t, &l)
	if l.Completed {
		t.Error("completed = true after DELETE")
	}
	env.Do(t, http.MethodDelete, lessonPath(uuid.New())+"/completion", nil, apitest.Token(w.granted)).ExpectProblem(t, 404, "not_found")
	env.Do(t, http.MethodDelete, completion(w.hidden), nil, apitest.Token(w.granted)).ExpectProblem(t, 404, "not_found")
}

func TestGateParticipantsSeeOnlyTheirOwnProgress(t *testing.T) {
	w := newGateWorld(t)
	env := w.env
	b, tokenB := env.Participant(t, "b@example.com")
	env.Grant(t, b.ID, w.prog.ID, people.GrantFreeAccess, env.Clock.Now())

	env.Do(t, http.MethodPut, lessonPath(w.day0.ID)+"/completion", nil, apitest.Token(w.granted)).Expect(t, http.StatusNoContent)
	env.Do(t, http.MethodPut, lessonPath(w.preview.ID)+"/completion", nil, apitest.Token(w.granted)).Expect(t, http.StatusNoContent)

	for _, tc := range []struct {
		who       string
		token     string
		completed int
	}{{"A", w.granted, 2}, {"B", tokenB, 0}} {
		t.Run(tc.who, func(t *testing.T) {
			var l gateLesson
			env.Do(t, http.MethodGet, lessonPath(w.day0.ID), nil, apitest.Token(tc.token)).Expect(t, 200).JSON(t, &l)
			if l.Completed != (tc.completed > 0) {
				t.Errorf("lesson completed = %v", l.Completed)
			}
			var list gateSummaryList
			env.Do(t, http.MethodGet, "/v1/portal/programs/say-no-with-grace/lessons", nil, apitest.Token(tc.token)).Expect(t, 200).JSON(t, &list)
			n := 0
			for _, s := range list.Data {
				if s.Completed {
					n++
				}
			}
			if n != tc.completed {
				t.Errorf("listed completions = %d, want %d", n, tc.completed)
			}
			var progs gateProgramList
			env.Do(t, http.MethodGet, "/v1/portal/programs", nil, apitest.Token(tc.token)).Expect(t, 200).JSON(t, &progs)
			if len(progs.Data) != 1 || progs.Data[0].LessonsCompleted != tc.completed || progs.Data[0].LessonsTotal != 3 {
				t.Errorf("programs = %+v, want 3 lessons, %d completed", progs.Data, tc.completed)
			}
		})
	}

	// B un-completing A's lesson touches only her own (absent) row.
	env.Do(t, http.MethodDelete, lessonPath(w.day0.ID)+"/completion", nil, apitest.Token(tokenB)).Expect(t, http.StatusNoContent)
	if n := env.Count(t, "lesson_completions"); n != 2 {
		t.Errorf("completions = %d, want A's 2 untouched", n)
	}
}

func TestGateListPrograms(t *testing.T) {
	w := newGateWorld(t)
	env := w.env
	start := env.Clock.Now()
	second := env.Program(t, "second-program", catalog.ProgramPublished, false)
	env.Lesson(t, second.ID, "One", true, false, 0)
	env.Lesson(t, second.ID, "Hidden", false, false, 0)
	env.Grant(t, w.grantedP.ID, second.ID, people.GrantComplimentary, start.Add(time.Hour))
	env.Grant(t, w.grantedP.ID, second.ID, people.GrantComplimentary, start.Add(2*time.Hour))
	other := env.Program(t, "other-program", catalog.ProgramPublished, false)
	g := env.Grant(t, w.grantedP.ID, other.ID, people.GrantComplimentary, start)
	env.DB.Model(g).Update("revoked_at", start)

	var all gateProgramList
	env.Do(t, http.MethodGet, "/v1/portal/programs", nil, apitest.Token(w.granted)).Expect(t, 200).JSON(t, &all)
	if len(all.Data) != 2 || all.NextCursor != nil {
		t.Fatalf("programs = %+v, want the two she holds (not the draft, not the revoked)", all)
	}
	want := []gateProgram{
		{ID: w.prog.ID.String(), Slug: "say-no-with-grace", AccessStartsAt: start, LessonsTotal: 3},
		{ID: second.ID.String(), Slug: "second-program", AccessStartsAt: start.Add(time.Hour), LessonsTotal: 1},
	}
	for i, p := range all.Data {
		if p.ID != want[i].ID || p.Slug != want[i].Slug || !p.AccessStartsAt.Equal(want[i].AccessStartsAt) ||
			p.LessonsTotal != want[i].LessonsTotal || p.LessonsCompleted != 0 {
			t.Errorf("program %d = %+v, want %+v", i, p, want[i])
		}
	}

	var page1, page2 gateProgramList
	env.Do(t, http.MethodGet, "/v1/portal/programs?limit=1", nil, apitest.Token(w.granted)).Expect(t, 200).JSON(t, &page1)
	if len(page1.Data) != 1 || page1.NextCursor == nil || page1.Data[0].ID != want[0].ID {
		t.Fatalf("page 1 = %+v", page1)
	}
	env.Do(t, http.MethodGet, "/v1/portal/programs?limit=1&cursor="+*page1.NextCursor, nil, apitest.Token(w.granted)).Expect(t, 200).JSON(t, &page2)
	if len(page2.Data) != 1 || page2.NextCursor != nil || page2.Data[0].ID != want[1].ID {
		t.Fatalf("page 2 = %+v", page2)
	}

	var none gateProgramList
	env.Do(t, http.MethodGet, "/v1/portal/programs", nil, apitest.Token(w.stranger)).Expect(t, 200).JSON(t, &none)
	if len(none.Data) != 0 {
		t.Errorf("stranger's programs = %+v, want none", none.Data)
	}
	env.Do(t, http.MethodGet, "/v1/portal/programs?limit=0", nil, apitest.Token(w.granted)).ExpectProblem(t, 400, "invalid_query")
	env.Do(t, http.MethodGet, "/v1/portal/programs?cursor=garbage", nil, apitest.Token(w.granted)).ExpectProblem(t, 400, "invalid_cursor")
}

func TestGateListLessons(t *testing.T) {
	w := newGateWorld(t)
	env := w.env
	start := env.Clock.Now()
	day3 := start.AddDate(0, 0, 3)
	const path = "/v1/portal/programs/say-no-with-grace/lessons"

	type want struct {
		id       uuid.UUID
		locked   bool
		unlockAt *time.Time
	}
	for _, tc := range []struct {
		name  string
		token string
		want  []want
	}{
		{"with access", w.granted, []want{{w.preview.ID, false, nil}, {w.day0.ID, false, &start}, {w.day3.ID, true, &day3}}},
		{"without access, through the free preview", w.stranger, []want{{w.preview.ID, false, nil}, {w.day0.ID, true, nil}, {w.day3.ID, true, nil}}},
		{"after revocation", w.revoked, []want{{w.preview.ID, false, nil}, {w.day0.ID, true, nil}, {w.day3.ID, true, nil}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var list gateSummaryList
			env.Do(t, http.MethodGet, path, nil, apitest.Token(tc.token)).Expect(t, 200).JSON(t, &list)
			if len(list.Data) != len(tc.want) {
				t.Fatalf("lessons = %+v, want %d (unpublished hidden)", list.Data, len(tc.want))
			}
			for i, s := range list.Data {
				wt := tc.want[i]
				if s.ID != wt.id.String() || s.Position != i+1 || s.Locked != wt.locked ||
					(s.UnlockAt == nil) != (wt.unlockAt == nil) || (s.UnlockAt != nil && !s.UnlockAt.Equal(*wt.unlockAt)) {
					t.Errorf("lesson %d = %+v, want %+v", i, s, wt)
				}
			}
		})
	}

	var page1, page2 gateSummaryList
	env.Do(t, http.MethodGet, path+"?limit=2", nil, apitest.Token(w.granted)).Expect(t, 200).JSON(t, &page1)
	if len(page1.Data) != 2 || page1.NextCursor == nil {
		t.Fatalf("page 1 = %+v", page1)
	}
	env.Do(t, http.MethodGet, path+"?limit=2&cursor="+*page1.NextCursor, nil, apitest.Token(w.granted)).Expect(t, 200).JSON(t, &page2)
	if len(page2.Data) != 1 || page2.NextCursor != nil || page2.Data[0].ID != w.day3.ID.String() {
		t.Fatalf("page 2 = %+v", page2)
	}

	// A program with no free preview is closed to a woman without access.
	closed := env.Program(t, "closed-program", catalog.ProgramPublished, false)
	env.Lesson(t, closed.ID, "Members only", true, false, 0)
	env.Lesson(t, closed.ID, "Unpublished preview", false, true, 0)
	env.Do(t, http.MethodGet, "/v1/portal/programs/closed-program/lessons", nil, apitest.Token(w.stranger)).ExpectProblem(t, 403, "no_access")
	env.Do(t, http.MethodGet, "/v1/portal/programs/no-such-program/lessons", nil, apitest.Token(w.granted)).ExpectProblem(t, 404, "not_found")
	env.Do(t, http.MethodGet, "/v1/portal/programs/next-program/lessons", nil, apitest.Token(w.granted)).ExpectProblem(t, 404, "not_found")
	env.Do(t, http.MethodGet, path+"?limit=101", nil, apitest.Token(w.granted)).ExpectProblem(t, 400, "invalid_query")
}

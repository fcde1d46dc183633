package api_test

import (
	"bytes"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/grace-coaching/grace/api"
	"github.com/grace-coaching/grace/api/apitest"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/enroll"
	"github.com/grace-coaching/grace/models/people"
)

type reflShare struct {
	Version  int64     `json:"version"`
	SharedAt time.Time `json:"shared_at"`
	Current  bool      `json:"current"`
}

type reflReflection struct {
	LessonID string     `json:"lesson_id"`
	Text     string     `json:"text"`
	Version  int64      `json:"version"`
	Shared   *reflShare `json:"shared"`
}

type reflShared struct {
	LessonID    string `json:"lesson_id"`
	LessonTitle string `json:"lesson_title"`
	Text        string `json:"text"`
	Version     int64  `json:"version"`
}

// reflWorld is a program with two open lessons and a locked one, a cohort
// of it led by a coach, her participant enrolled, and a coach of another
// cohort.
type reflWorld struct {
	env                  *apitest.Env
	admin, lead, other   string // coach tokens
	her                  *people.Participant
	herToken             string
	open, second, locked *catalog.Lesson
	logs                 *syncBuffer
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newReflWorld(t *testing.T) *reflWorld {
	t.Helper()
	env := apitest.NewEnv(t)
	w := &reflWorld{env: env, logs: &syncBuffer{}}
	// Every log line, the domain's and the HTTP layer's, at debug, so a
	// test can say her words never reach one.
	log := slog.New(slog.NewJSONHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	env.Svc.Kernel.Log = log
	env.Echo = api.New(api.Config{Service: env.Svc, Log: log, CORSOrigins: []string{"http://portal.test"}})

	_, w.admin = env.Coach(t, "admin@example.com", people.RoleAdmin)
	lead, leadToken := env.Coach(t, "lead@example.com", people.RoleCoach)
	other, otherToken := env.Coach(t, "other@example.com", people.RoleCoach)
	w.lead, w.other = leadToken, otherToken
	prog := env.Program(t, "circle", catalog.ProgramPublished, false)
	w.open = env.Lesson(t, prog.ID, "Saying no", true, false, 0)
	w.second = env.Lesson(t, prog.ID, "Boundaries", true, false, 0)
	w.locked = env.Lesson(t, prog.ID, "Later", true, false, 7)

	now := env.Clock.Now()
	mine := &enroll.Cohort{ProgramID: prog.ID, Name: "Spring circle", StartsAt: now, EndsAt: now.Add(60 * 24 * time.Hour),
		Timezone: "Europe/Berlin", Capacity: 10, PriceCents: 49700, Currency: "EUR", Status: enroll.CohortOpen}
	theirs := *mine
	theirs.Name = "Autumn circle"
	for _, c := range []*enroll.Cohort{mine, &theirs} {
		if err := env.DB.Create(c).Error; err != nil {
			t.Fatal(err)
		}
	}
	for _, cc := range []enroll.CohortCoach{{CohortID: mine.ID, CoachID: lead.ID, Lead: true}, {CohortID: theirs.ID, CoachID: other.ID, Lead: true}} {
		if err := env.DB.Create(&cc).Error; err != nil {
			t.Fatal(err)
		}
	}
	w.her, w.herToken = env.Participant(t, "her@example.com")
	cohEnroll(t, env, mine.ID.String(), w.her.ID, enroll.EnrollmentActive)
	return w
}

func (w *reflWorld) path(l *catalog.Lesson) string {
	return "/v1/portal/lessons/" + l.ID.String() + "/reflection"
}

func (w *reflWorld) put(t *testing.T, l *catalog.Lesson, text string, etag string) *apitest.Response {
	t.Helper()
	opts := []apitest.Option{apitest.Token(w.herToken)}
	if etag != "" {
		opts = append(opts, apitest.Header("If-Match", etag))
	}
	return w.env.Do(t, "PUT", w.path(l), map[string]any{"text": text}, opts...)
}

func (w *reflWorld) shared(t *testing.T, token string) []reflShared {
	t.Helper()
	var out struct{ Data []reflShared }
	w.env.Do(t, "GET", "/v1/admin/participants/"+w.her.ID.String()+"/reflections", nil, apitest.Token(token)).Expect(t, 200).JSON(t, &out)
	return out.Data
}

func TestReflectionRoundTripAndPreconditions(t *testing.T) {
	w := newReflWorld(t)
	env := w.env
	const first = "Today I said no to him on the phone.\nMy hands shook."

	env.Do(t, "GET", w.path(w.open), nil, apitest.Token(w.herToken)).ExpectProblem(t, 404, "reflection_not_found")
	res := w.put(t, w.open, first, "").Expect(t, 200)
	etag := res.Header.Get("ETag")
	if !strings.HasPrefix(etag, `"`) || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("headers %v", res.Header)
	}
	var got reflReflection
	res.JSON(t, &got)
	if got.Text != first || got.Version != 1 || got.Shared != nil || got.LessonID != w.open.ID.String() {
		t.Fatalf("saved %+v", got)
	}
	res = env.Do(t, "GET", w.path(w.open), nil, apitest.Token(w.herToken)).Expect(t, 200)
	res.JSON(t, &got)
	if got.Text != first || res.Header.Get("ETag") != etag || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("read back %+v, etag %q", got, res.Header.Get("ETag"))
	}

	// The autosave fires again with nothing changed, and a retry of a lost
	// response comes without If-Match: the same version either way.
	for _, match := range []string{"", etag} {
		res := w.put(t, w.open, first, match).Expect(t, 200)
		if res.Header.Get("ETag") != etag {
			t.Fatalf("same text again moved the ETag to %q", res.Header.Get("ETag"))
		}
	}

	w.put(t, w.open, "overwriting blindly", "").ExpectProblem(t, 428, "precondition_required")
	w.put(t, w.open, "from a stale tab", `"`+uuid.NewString()+`.1"`).ExpectProblem(t, 412, "precondition_failed")
	w.put(t, w.open, "weak tags never match", "W/"+etag).ExpectProblem(t, 412, "precondition_failed")
	for _, bad := range []string{"abc", `"unterminated`, `"a" "b"`, ","} {
		p := w.put(t, w.open, "bad header", bad).ExpectProblem(t, 400, "invalid_if_match")
		if len(p.Errors) != 1 || p.Errors[0].Field != "If-Match" {
			t.Fatalf("If-Match %q: errors %+v", bad, p.Errors)
		}
	}
	env.Do(t, "GET", w.path(w.open), nil, apitest.Token(w.herToken)).Expect(t, 200).JSON(t, &got)
	if got.Text != first || got.Version != 1 {
		t.Fatalf("a refused write changed %+v", got)
	}

	res = w.put(t, w.open, first+"\nAnd I did not call back.", `"x", `+etag).Expect(t, 200)
	res.JSON(t, &got)
	second := res.Header.Get("ETag")
	if got.Version != 2 || second == etag {
		t.Fatalf("second save %+v etag %q", got, second)
	}
	w.put(t, w.open, "the old tab again", etag).ExpectProblem(t, 412, "precondition_failed")
	w.put(t, w.open, "any version", "*").Expect(t, 200).JSON(t, &got)
	if got.Version != 3 {
		t.Fatalf("If-Match * gave %+v", got)
	}

	// Empty text deletes.
	w.put(t, w.open, "", "*").Expect(t, 204)
	env.Do(t, "GET", w.path(w.open), nil, apitest.Token(w.herToken)).ExpectProblem(t, 404, "reflection_not_found")
	w.put(t, w.open, "", "").Expect(t, 204)
	if n := env.Count(t, "reflections"); n != 0 {
		t.Fatalf("%d reflections after deleting", n)
	}
}

func TestReflectionBadInput(t *testing.T) {
	w := newReflWorld(t)
	env := w.env
	tok := apitest.Token(w.herToken)
	path := w.path(w.open)
	env.Do(t, "PUT", path, []byte(`{"text":"caf`+"\xe9"+`"}`), tok).ExpectProblem(t, 400, "invalid_text")
	env.Do(t, "PUT", path, `{"text":`, tok).ExpectProblem(t, 400, "malformed_json")
	env.Do(t, "PUT", path, map[string]any{"text": "x", "mood": "ok"}, tok).ExpectProblem(t, 400, "unknown_field")
	for name, body := range map[string]any{
		"missing":       map[string]any{},
		"null":          map[string]any{"text": nil},
		"not a string":  map[string]any{"text": 42},
		"too long":      map[string]any{"text": strings.Repeat("ü", 20001)},
		"control chars": map[string]any{"text": "a\x07b"},
	} {
		t.Run(name, func(t *testing.T) {
			p := env.Do(t, "PUT", path, body, tok).ExpectProblem(t, 422, "validation_failed")
			if len(p.Errors) != 1 || p.Errors[0].Field != "text" {
				t.Fatalf("errors %+v", p.Errors)
			}
		})
	}
	env.Do(t, "PUT", path, map[string]any{"text": strings.Repeat("ü", 20000)}, tok).Expect(t, 200)
	if n := env.Count(t, "reflections"); n != 1 {
		t.Fatalf("%d reflections", n)
	}
}

// Only for a lesson she may read: the gate's answers, unchanged.
func TestReflectionFollowsTheGate(t *testing.T) {
	w := newReflWorld(t)
	env := w.env
	tok := apitest.Token(w.herToken)
	_, strangerToken := env.Participant(t, "stranger@example.com")

	env.Do(t, "GET", w.path(w.open), nil).ExpectProblem(t, 401, "unauthorized")
	env.Do(t, "PUT", w.path(w.open), map[string]any{"text": "x"}, apitest.Token("nope")).ExpectProblem(t, 401, "invalid_token")
	w.put(t, w.locked, "too early", "").ExpectProblem(t, 403, "lesson_locked")
	env.Do(t, "GET", w.path(w.locked), nil, tok).ExpectProblem(t, 403, "lesson_locked")
	env.Do(t, "PUT", w.path(w.open), map[string]any{"text": "not her program"}, apitest.Token(strangerToken)).ExpectProblem(t, 403, "no_access")
	env.Do(t, "POST", w.path(w.open)+"/share", nil, apitest.Token(strangerToken)).ExpectProblem(t, 403, "no_access")
	env.Do(t, "PUT", "/v1/portal/lessons/"+uuid.NewString()+"/reflection", map[string]any{"text": "x"}, tok).ExpectProblem(t, 404, "not_found")
	env.Do(t, "PUT", "/v1/portal/lessons/not-a-uuid/reflection", map[string]any{"text": "x"}, tok).ExpectProblem(t, 404, "not_found")
	env.Do(t, "POST", w.path(w.open)+"/share", nil, tok).ExpectProblem(t, 404, "reflection_not_found")
	if n := env.Count(t, "reflections"); n != 0 {
		t.Fatalf("%d reflections written past the gate", n)
	}
}

// No coach reads a word until she shares; then her coach reads the
// snapshot she shared, until she takes it back. Coaches of other cohorts
// never do.
func TestSharedReflectionsReachOnlyHerCoach(t *testing.T) {
	w := newReflWorld(t)
	env := w.env
	tok := apitest.Token(w.herToken)
	const private = "I am afraid he will find this address."
	res := w.put(t, w.open, private, "").Expect(t, 200)
	w.put(t, w.second, "Only for me, never shared.", "").Expect(t, 200)

	if got := w.shared(t, w.lead); len(got) != 0 {
		t.Fatalf("the coach reads %+v before she shared anything", got)
	}
	for _, coach := range []string{w.lead, w.admin} {
		if body := env.Do(t, "GET", "/v1/admin/participants/"+w.her.ID.String(), nil, apitest.Token(coach)).Expect(t, 200).Body; bytes.Contains(body, []byte("afraid")) {
			t.Fatalf("her detail shows her reflection: %s", body)
		}
	}

	var r reflReflection
	env.Do(t, "POST", w.path(w.open)+"/share", nil, tok, apitest.Header("If-Match", res.Header.Get("ETag"))).Expect(t, 200).JSON(t, &r)
	if r.Shared == nil || r.Shared.Version != 1 || !r.Shared.Current {
		t.Fatalf("shared = %+v", r.Shared)
	}
	for _, coach := range []string{w.lead, w.admin} {
		got := w.shared(t, coach)
		if len(got) != 1 || got[0].Text != private || got[0].LessonTitle != "Saying no" || got[0].Version != 1 {
			t.Fatalf("a coach of hers reads %+v", got)
		}
	}
	env.Do(t, "GET", "/v1/admin/participants/"+w.her.ID.String()+"/reflections", nil, apitest.Token(w.other)).ExpectProblem(t, 404, "not_found")
	env.Do(t, "GET", "/v1/admin/participants/"+uuid.NewString()+"/reflections", nil, apitest.Token(w.admin)).ExpectProblem(t, 404, "not_found")
	env.Do(t, "GET", "/v1/admin/participants/"+w.her.ID.String()+"/reflections", nil).ExpectProblem(t, 401, "unauthorized")

	// She edits after sharing: the coach still reads what was shared,
	// until she shares again.
	w.put(t, w.open, private+" I moved.", res.Header.Get("ETag")).Expect(t, 200).JSON(t, &r)
	if r.Shared == nil || r.Shared.Current || r.Shared.Version != 1 {
		t.Fatalf("after an edit, shared = %+v", r.Shared)
	}
	if got := w.shared(t, w.lead); len(got) != 1 || got[0].Text != private {
		t.Fatalf("after her edit the coach reads %+v, want the snapshot", got)
	}
	env.Do(t, "POST", w.path(w.open)+"/share", nil, tok).Expect(t, 200)
	if got := w.shared(t, w.lead); len(got) != 1 || got[0].Text != private+" I moved." || got[0].Version != 2 {
		t.Fatalf("after sharing again the coach reads %+v", got)
	}

	for range 2 { // idempotent
		env.Do(t, "DELETE", w.path(w.open)+"/share", nil, tok).Expect(t, 204)
	}
	if got := w.shared(t, w.lead); len(got) != 0 {
		t.Fatalf("after revoking the coach reads %+v", got)
	}
	env.Do(t, "GET", w.path(w.open), nil, tok).Expect(t, 200).JSON(t, &r)
	if r.Shared != nil || r.Text != private+" I moved." {
		t.Fatalf("after revoking she has %+v", r)
	}

	// Her cohort place ends: her coach no longer reads even what she shared.
	env.Do(t, "POST", w.path(w.open)+"/share", nil, tok).Expect(t, 200)
	if err := env.DB.Exec(`UPDATE enrollments SET status = 'cancelled', seat = 'none', cancelled_at = now() WHERE participant_id = ?`, w.her.ID).Error; err != nil {
		t.Fatal(err)
	}
	env.Do(t, "GET", "/v1/admin/participants/"+w.her.ID.String()+"/reflections", nil, apitest.Token(w.lead)).ExpectProblem(t, 404, "not_found")

	// Her words are in no log line, and in no coach view of her.
	for _, words := range []string{private, "Only for me", "I moved"} {
		if strings.Contains(w.logs.String(), words) {
			t.Errorf("the log holds %q", words)
		}
	}
	if w.logs.String() == "" {
		t.Fatal("no log lines captured: the check above proves nothing")
	}
}

// The coach writes prompts with the lesson; the portal's lesson read, the
// one-query hot path, serves them rendered and sanitised.
func TestLessonReflectionPrompts(t *testing.T) {
	w := newReflWorld(t)
	env := w.env
	admin := apitest.Token(w.admin)
	prog := env.Program(t, "prompts", catalog.ProgramPublished, true)
	var lesson struct {
		ID                string   `json:"id"`
		ReflectionPrompts []string `json:"reflection_prompts"`
	}
	prompts := []string{"What did **your body** say?", "<script>alert(1)</script> [link](javascript:alert(1))"}
	env.Do(t, "POST", "/v1/admin/programs/"+prog.ID.String()+"/lessons",
		map[string]any{"title": "With prompts", "published": true, "free_preview": true, "reflection_prompts": prompts}, admin).Expect(t, 201).JSON(t, &lesson)
	if len(lesson.ReflectionPrompts) != 2 || lesson.ReflectionPrompts[0] != prompts[0] {
		t.Fatalf("created %+v", lesson)
	}
	var plain struct {
		ReflectionPrompts []string `json:"reflection_prompts"`
	}
	env.Do(t, "POST", "/v1/admin/programs/"+prog.ID.String()+"/lessons", map[string]any{"title": "Without"}, admin).Expect(t, 201).JSON(t, &plain)
	if plain.ReflectionPrompts == nil || len(plain.ReflectionPrompts) != 0 {
		t.Fatalf("a lesson without prompts answers %v, want []", plain.ReflectionPrompts)
	}

	var portal struct {
		ReflectionPrompts []struct{ Markdown, HTML string } `json:"reflection_prompts"`
	}
	env.Do(t, "GET", "/v1/portal/lessons/"+lesson.ID, nil, apitest.Token(w.herToken)).Expect(t, 200).JSON(t, &portal)
	if len(portal.ReflectionPrompts) != 2 || !strings.Contains(portal.ReflectionPrompts[0].HTML, "<strong>your body</strong>") ||
		strings.Contains(portal.ReflectionPrompts[1].HTML, "<script") || strings.Contains(portal.ReflectionPrompts[1].HTML, "href") {
		t.Fatalf("portal prompts %+v", portal.ReflectionPrompts)
	}

	path := "/v1/admin/lessons/" + lesson.ID
	env.Do(t, "PATCH", path, map[string]any{"reflection_prompts": []string{"Only this one"}}, admin).Expect(t, 200).JSON(t, &lesson)
	if len(lesson.ReflectionPrompts) != 1 || lesson.ReflectionPrompts[0] != "Only this one" {
		t.Fatalf("patched %+v", lesson)
	}
	env.Do(t, "GET", "/v1/portal/lessons/"+lesson.ID, nil, apitest.Token(w.herToken)).Expect(t, 200).JSON(t, &portal)
	if len(portal.ReflectionPrompts) != 1 || portal.ReflectionPrompts[0].HTML != "<p>Only this one</p>\n" {
		t.Fatalf("portal after patch %+v", portal.ReflectionPrompts)
	}
	for name, tc := range map[string]struct {
		value any
		field string
	}{
		"null":      {nil, "reflection_prompts"},
		"too many":  {make([]string, 11), "reflection_prompts"},
		"empty one": {[]string{"fine", " "}, "reflection_prompts[1]"},
		"too long":  {[]string{strings.Repeat("a", 2001)}, "reflection_prompts[0]"},
		"not text":  {[]int{1}, "reflection_prompts"},
	} {
		t.Run(name, func(t *testing.T) {
			p := env.Do(t, "PATCH", path, map[string]any{"reflection_prompts": tc.value}, admin).ExpectProblem(t, 422, "validation_failed")
			if len(p.Errors) == 0 || p.Errors[0].Field != tc.field {
				t.Fatalf("errors %+v, want field %s", p.Errors, tc.field)
			}
		})
	}
	p := env.Do(t, "POST", "/v1/admin/programs/"+prog.ID.String()+"/lessons",
		map[string]any{"title": "Bad", "reflection_prompts": []string{""}}, admin).ExpectProblem(t, 422, "validation_failed")
	if p.Errors[0].Field != "reflection_prompts[0]" {
		t.Fatalf("errors %+v", p.Errors)
	}
}

// The browser clients may send If-Match and read ETag across origins.
func TestReflectionCORS(t *testing.T) {
	w := newReflWorld(t)
	req := httptest.NewRequest("OPTIONS", w.path(w.open), nil)
	req.Header.Set("Origin", "http://portal.test")
	req.Header.Set("Access-Control-Request-Method", "PUT")
	req.Header.Set("Access-Control-Request-Headers", "if-match, authorization, content-type")
	rec := httptest.NewRecorder()
	w.env.Echo.ServeHTTP(rec, req)
	if allowed := strings.ToLower(rec.Header().Get("Access-Control-Allow-Headers")); !strings.Contains(allowed, "if-match") {
		t.Fatalf("preflight allows %q", allowed)
	}
	w.put(t, w.open, "x", "").Expect(t, 200)
	req = httptest.NewRequest("GET", w.path(w.open), nil)
	req.Header.Set("Origin", "http://portal.test")
	req.Header.Set("Authorization", "Bearer "+w.herToken)
	rec = httptest.NewRecorder()
	w.env.Echo.ServeHTTP(rec, req)
	if exposed := rec.Header().Get("Access-Control-Expose-Headers"); !strings.Contains(exposed, "ETag") {
		t.Fatalf("exposed headers %q", exposed)
	}
}

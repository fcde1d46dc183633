package api_test

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/grace-coaching/grace/api/apitest"
	"github.com/grace-coaching/grace/models/catalog"
)

type catLesson struct {
	ID               string    `json:"id"`
	ProgramID        string    `json:"program_id"`
	Position         int       `json:"position"`
	Title            string    `json:"title"`
	Body             string    `json:"body"`
	MediaURL         *string   `json:"media_url"`
	DurationSeconds  *int      `json:"duration_seconds"`
	FreePreview      bool      `json:"free_preview"`
	UnlockOffsetDays int       `json:"unlock_offset_days"`
	Published        bool      `json:"published"`
	CreatedAt        time.Time `json:"created_at"`
	UpdatedAt        time.Time `json:"updated_at"`
}

func catCreateLesson(t *testing.T, env *apitest.Env, tok, programID string, body map[string]any) catLesson {
	t.Helper()
	var l catLesson
	env.Do(t, "POST", "/v1/admin/programs/"+programID+"/lessons", body, apitest.Token(tok)).Expect(t, 201).JSON(t, &l)
	return l
}

// catLessonOrder lists the program's lessons through the API (one page) and
// checks their positions are 1..n.
func catLessonOrder(t *testing.T, env *apitest.Env, tok, programID string) []string {
	t.Helper()
	var page catList[catLesson]
	env.Do(t, "GET", "/v1/admin/programs/"+programID+"/lessons?limit=100", nil, apitest.Token(tok)).Expect(t, 200).JSON(t, &page)
	titles := make([]string, len(page.Data))
	for i, l := range page.Data {
		if l.Position != i+1 {
			t.Fatalf("positions are not 1..n: %q at %d, want %d", l.Title, l.Position, i+1)
		}
		titles[i] = l.Title
	}
	return titles
}

func TestLessonCRUD(t *testing.T) {
	env := apitest.NewEnv(t)
	tok := catCoach(t, env)
	p := env.Program(t, "p", catalog.ProgramDraft, false)
	pid := p.ID.String()

	minimal := catCreateLesson(t, env, tok, pid, map[string]any{"title": "Why no contact"})
	if minimal.Position != 1 || minimal.ProgramID != pid || minimal.Body != "" || minimal.MediaURL != nil ||
		minimal.DurationSeconds != nil || minimal.FreePreview || minimal.UnlockOffsetDays != 0 || minimal.Published {
		t.Errorf("defaults: %+v", minimal)
	}
	full := catCreateLesson(t, env, tok, pid, map[string]any{
		"title": "Boundaries", "body": "# Say *no*", "media_url": "https://media.example.com/2.mp3",
		"duration_seconds": 1680, "free_preview": true, "unlock_offset_days": 3, "published": true,
	})
	var got catLesson
	env.Do(t, "GET", "/v1/admin/lessons/"+full.ID, nil, apitest.Token(tok)).Expect(t, 200).JSON(t, &got)
	if got.Position != 2 || got.Title != "Boundaries" || got.Body != "# Say *no*" || got.MediaURL == nil ||
		*got.MediaURL != "https://media.example.com/2.mp3" || got.DurationSeconds == nil || *got.DurationSeconds != 1680 ||
		!got.FreePreview || got.UnlockOffsetDays != 3 || !got.Published {
		t.Errorf("round trip: %+v", got)
	}

	env.Do(t, "DELETE", "/v1/admin/lessons/"+minimal.ID, nil, apitest.Token(tok)).Expect(t, 204)
	env.Do(t, "GET", "/v1/admin/lessons/"+minimal.ID, nil, apitest.Token(tok)).ExpectProblem(t, 404, "not_found")
	env.Do(t, "DELETE", "/v1/admin/lessons/"+minimal.ID, nil, apitest.Token(tok)).ExpectProblem(t, 404, "not_found")
	env.Do(t, "GET", "/v1/admin/lessons/nope", nil, apitest.Token(tok)).ExpectProblem(t, 404, "not_found")
	if got := catLessonOrder(t, env, tok, pid); !slices.Equal(got, []string{"Boundaries"}) {
		t.Errorf("after delete: %v", got)
	}

	unknown := uuid.NewString()
	env.Do(t, "GET", "/v1/admin/programs/"+unknown+"/lessons", nil, apitest.Token(tok)).ExpectProblem(t, 404, "not_found")
	env.Do(t, "POST", "/v1/admin/programs/"+unknown+"/lessons", map[string]any{"title": "x"}, apitest.Token(tok)).ExpectProblem(t, 404, "not_found")
}

func TestLessonInsertAtPosition(t *testing.T) {
	tests := []struct {
		name     string
		position any // nil: not sent
		want     []string
		wantPos  int
	}{
		{"omitted goes last", nil, []string{"a", "b", "c", "new"}, 4},
		{"first", 1, []string{"new", "a", "b", "c"}, 1},
		{"middle", 3, []string{"a", "b", "new", "c"}, 3},
		{"right after the last", 4, []string{"a", "b", "c", "new"}, 4},
		{"far past the end goes last", 1000, []string{"a", "b", "c", "new"}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := apitest.NewEnv(t)
			tok := catCoach(t, env)
			pid := env.Program(t, "p", catalog.ProgramDraft, false).ID.String()
			for _, title := range []string{"a", "b", "c"} {
				catCreateLesson(t, env, tok, pid, map[string]any{"title": title})
			}
			body := map[string]any{"title": "new"}
			if tt.position != nil {
				body["position"] = tt.position
			}
			if l := catCreateLesson(t, env, tok, pid, body); l.Position != tt.wantPos {
				t.Errorf("position = %d, want %d", l.Position, tt.wantPos)
			}
			if got := catLessonOrder(t, env, tok, pid); !slices.Equal(got, tt.want) {
				t.Errorf("order = %v, want %v", got, tt.want)
			}
		})
	}
}

// Twenty coaches' tabs adding a lesson at the same moment: every request
// succeeds and the program ends with positions 1..20, no duplicates, no 500.
func TestLessonConcurrentCreates(t *testing.T) {
	env := apitest.NewEnv(t)
	tok := catCoach(t, env)
	pid := env.Program(t, "p", catalog.ProgramDraft, false).ID.String()

	const n = 20
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := map[string]any{"title": fmt.Sprintf("lesson %d", i)}
			if i%3 == 0 {
				body["position"] = 1 // some insert at the front, shifting the rest
			}
			statuses[i] = env.Do(t, "POST", "/v1/admin/programs/"+pid+"/lessons", body, apitest.Token(tok)).Status
		}()
	}
	wg.Wait()
	for i, s := range statuses {
		if s != 201 {
			t.Errorf("request %d: status %d, want 201", i, s)
		}
	}
	if got := catLessonOrder(t, env, tok, pid); len(got) != n {
		t.Errorf("%d lessons, want %d", len(got), n)
	}
}

func TestLessonCreateRefusesBadInput(t *testing.T) {
	env := apitest.NewEnv(t)
	tok := catCoach(t, env)
	pid := env.Program(t, "p", catalog.ProgramDraft, false).ID.String()
	catCreateLesson(t, env, tok, pid, map[string]any{"title": "existing"})

	cases := catBadInputs(
		catBadInput{name: "missing title", body: map[string]any{"body": "b"}, fields: []string{"title"}},
		catBadInput{name: "blank title", body: map[string]any{"title": " \t "}, fields: []string{"title"}},
		catBadInput{name: "title too long", body: map[string]any{"title": strings.Repeat("a", 201)}, fields: []string{"title"}},
		catBadInput{name: "body too long", body: map[string]any{"title": "t", "body": strings.Repeat("a", 200001)}, fields: []string{"body"}},
		catBadInput{name: "javascript media", body: map[string]any{"title": "t", "media_url": "javascript:alert(1)"}, fields: []string{"media_url"}},
		catBadInput{name: "relative media", body: map[string]any{"title": "t", "media_url": "/a.mp3"}, fields: []string{"media_url"}},
		catBadInput{name: "empty media", body: map[string]any{"title": "t", "media_url": ""}, fields: []string{"media_url"}},
		catBadInput{name: "upper-case scheme", body: map[string]any{"title": "t", "media_url": "HTTPS://media.example.com/a.mp3"}, fields: []string{"media_url"}},
		catBadInput{name: "negative duration", body: map[string]any{"title": "t", "duration_seconds": -1}, fields: []string{"duration_seconds"}},
		catBadInput{name: "duration over a day", body: map[string]any{"title": "t", "duration_seconds": 86401}, fields: []string{"duration_seconds"}},
		catBadInput{name: "negative unlock", body: map[string]any{"title": "t", "unlock_offset_days": -1}, fields: []string{"unlock_offset_days"}},
		catBadInput{name: "unlock after ten years", body: map[string]any{"title": "t", "unlock_offset_days": 3651}, fields: []string{"unlock_offset_days"}},
		catBadInput{name: "position zero", body: map[string]any{"title": "t", "position": 0}, fields: []string{"position"}},
		catBadInput{name: "negative position", body: map[string]any{"title": "t", "position": -2}, fields: []string{"position"}},
		catBadInput{name: "published as a string", body: map[string]any{"title": "t", "published": "yes"}, fields: []string{"published"}},
	)
	catCheckRefusals(t, env, "POST", "/v1/admin/programs/"+pid+"/lessons", tok, cases)
}

func TestLessonPatchChangesOnlySentFields(t *testing.T) {
	base := map[string]any{
		"title": "T", "body": "B", "media_url": "https://media.example.com/a.mp3", "duration_seconds": 300,
		"free_preview": false, "unlock_offset_days": 2, "published": false,
	}
	str := func(s string) *string { return &s }
	num := func(n int) *int { return &n }
	tests := []struct {
		name  string
		patch map[string]any
		want  func(l *catLesson)
	}{
		{"nothing", map[string]any{}, func(l *catLesson) {}},
		{"title", map[string]any{"title": "New"}, func(l *catLesson) { l.Title = "New" }},
		{"body", map[string]any{"body": "## New body"}, func(l *catLesson) { l.Body = "## New body" }},
		{"media cleared", map[string]any{"media_url": nil}, func(l *catLesson) { l.MediaURL = nil }},
		{"media changed", map[string]any{"media_url": "http://media.example.com/b.mp3"}, func(l *catLesson) { l.MediaURL = str("http://media.example.com/b.mp3") }},
		{"duration cleared", map[string]any{"duration_seconds": nil}, func(l *catLesson) { l.DurationSeconds = nil }},
		{"duration zero", map[string]any{"duration_seconds": 0}, func(l *catLesson) { l.DurationSeconds = num(0) }},
		{"flags", map[string]any{"free_preview": true, "published": true}, func(l *catLesson) { l.FreePreview, l.Published = true, true }},
		{"unlock", map[string]any{"unlock_offset_days": 0}, func(l *catLesson) { l.UnlockOffsetDays = 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := apitest.NewEnv(t)
			tok := catCoach(t, env)
			pid := env.Program(t, "p", catalog.ProgramDraft, false).ID.String()
			created := catCreateLesson(t, env, tok, pid, base)
			env.Clock.Advance(time.Hour)
			var got, stored catLesson
			env.Do(t, "PATCH", "/v1/admin/lessons/"+created.ID, tt.patch, apitest.Token(tok)).Expect(t, 200).JSON(t, &got)
			env.Do(t, "GET", "/v1/admin/lessons/"+created.ID, nil, apitest.Token(tok)).Expect(t, 200).JSON(t, &stored)
			want := created
			tt.want(&want)
			if len(tt.patch) > 0 {
				want.UpdatedAt = env.Clock.Now()
			}
			for _, l := range []catLesson{got, stored} {
				if !catSameLesson(l, want) {
					t.Errorf("got  %+v\nwant %+v", l, want)
				}
			}
		})
	}
}

func catSameLesson(a, b catLesson) bool {
	sameStr := func(x, y *string) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	sameInt := func(x, y *int) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return a.ID == b.ID && a.ProgramID == b.ProgramID && a.Position == b.Position && a.Title == b.Title && a.Body == b.Body &&
		sameStr(a.MediaURL, b.MediaURL) && sameInt(a.DurationSeconds, b.DurationSeconds) && a.FreePreview == b.FreePreview &&
		a.UnlockOffsetDays == b.UnlockOffsetDays && a.Published == b.Published && a.CreatedAt.Equal(b.CreatedAt) && a.UpdatedAt.Equal(b.UpdatedAt)
}

func TestLessonPatchRefusesBadInput(t *testing.T) {
	env := apitest.NewEnv(t)
	tok := catCoach(t, env)
	pid := env.Program(t, "p", catalog.ProgramDraft, false).ID.String()
	l := catCreateLesson(t, env, tok, pid, map[string]any{"title": "T"})

	cases := catBadInputs(
		catBadInput{name: "null title", body: map[string]any{"title": nil}, fields: []string{"title"}},
		catBadInput{name: "null body", body: map[string]any{"body": nil}, fields: []string{"body"}},
		catBadInput{name: "null flags", body: map[string]any{"published": nil, "free_preview": nil, "unlock_offset_days": nil}, fields: []string{"published", "free_preview", "unlock_offset_days"}},
		catBadInput{name: "empty title", body: map[string]any{"title": ""}, fields: []string{"title"}},
		catBadInput{name: "data media", body: map[string]any{"media_url": "data:audio/mp3;base64,AAAA"}, fields: []string{"media_url"}},
		catBadInput{name: "duration too long", body: map[string]any{"duration_seconds": 100000}, fields: []string{"duration_seconds"}},
		catBadInput{name: "unlock too late", body: map[string]any{"title": "fine", "unlock_offset_days": 4000}, fields: []string{"unlock_offset_days"}},
		catBadInput{name: "position is not patchable", body: map[string]any{"position": 2}},
	)
	// Moving a lesson is the lesson-order route's job: position is an unknown field here.
	cases[len(cases)-1].status, cases[len(cases)-1].code, cases[len(cases)-1].fields = 400, "unknown_field", []string{"position"}
	catCheckRefusals(t, env, "PATCH", "/v1/admin/lessons/"+l.ID, tok, cases)
	env.Do(t, "PATCH", "/v1/admin/lessons/"+uuid.NewString(), map[string]any{"title": "x"}, apitest.Token(tok)).ExpectProblem(t, 404, "not_found")
}

func TestLessonBodyScriptNeverReachesBodyHTML(t *testing.T) {
	env := apitest.NewEnv(t)
	tok := catCoach(t, env)
	pid := env.Program(t, "p", catalog.ProgramDraft, false).ID.String()
	stored := func(id string) string {
		var html string
		if err := env.DB.Raw(`SELECT body_html FROM lessons WHERE id = ?`, id).Scan(&html).Error; err != nil {
			t.Fatal(err)
		}
		return html
	}
	l := catCreateLesson(t, env, tok, pid, map[string]any{"title": "t", "body": "Hello **you** <script>alert(document.cookie)</script> [x](javascript:alert(1))"})
	if h := stored(l.ID); strings.Contains(h, "<script") || strings.Contains(h, "javascript:") || !strings.Contains(h, "<strong>you</strong>") {
		t.Errorf("body_html after create: %q", h)
	}
	if l.Body != "Hello **you** <script>alert(document.cookie)</script> [x](javascript:alert(1))" {
		t.Errorf("the coach's source should come back as she wrote it: %q", l.Body)
	}
	env.Do(t, "PATCH", "/v1/admin/lessons/"+l.ID, map[string]any{"body": "<img src=x onerror=alert(1)> *new*"}, apitest.Token(tok)).Expect(t, 200)
	if h := stored(l.ID); strings.Contains(h, "<img") || strings.Contains(h, "Hello") || !strings.Contains(h, "<em>new</em>") {
		t.Errorf("body_html after patch: %q", h)
	}
}

func TestLessonReorder(t *testing.T) {
	env := apitest.NewEnv(t)
	tok := catCoach(t, env)
	pid := env.Program(t, "p", catalog.ProgramDraft, false).ID.String()
	otherID := env.Program(t, "other", catalog.ProgramDraft, false).ID.String()
	var ids []string
	for _, title := range []string{"a", "b", "c"} {
		ids = append(ids, catCreateLesson(t, env, tok, pid, map[string]any{"title": title}).ID)
	}
	stranger := catCreateLesson(t, env, tok, otherID, map[string]any{"title": "x"}).ID
	a, b, c := ids[0], ids[1], ids[2]
	path := "/v1/admin/programs/" + pid + "/lesson-order"

	cases := catBadInputs(
		catBadInput{name: "missing lesson_ids", body: map[string]any{}, fields: []string{"lesson_ids"}},
		catBadInput{name: "null lesson_ids", body: map[string]any{"lesson_ids": nil}, fields: []string{"lesson_ids"}},
		catBadInput{name: "one missing", body: map[string]any{"lesson_ids": []string{c, a}}, fields: []string{"lesson_ids"}},
		catBadInput{name: "duplicate", body: map[string]any{"lesson_ids": []string{c, a, b, a}}, fields: []string{"lesson_ids"}},
		catBadInput{name: "duplicate instead of one", body: map[string]any{"lesson_ids": []string{c, a, a}}, fields: []string{"lesson_ids"}},
		catBadInput{name: "foreign lesson added", body: map[string]any{"lesson_ids": []string{c, a, b, stranger}}, fields: []string{"lesson_ids"}},
		catBadInput{name: "foreign instead of one", body: map[string]any{"lesson_ids": []string{c, a, stranger}}, fields: []string{"lesson_ids"}},
		catBadInput{name: "unknown id", body: map[string]any{"lesson_ids": []string{c, a, b, uuid.NewString()}}, fields: []string{"lesson_ids"}},
		catBadInput{name: "empty", body: map[string]any{"lesson_ids": []string{}}, fields: []string{"lesson_ids"}},
		catBadInput{name: "not uuids", body: map[string]any{"lesson_ids": []string{"a", "b", "c"}}, code: "undecodable"},
	)
	catCheckRefusals(t, env, "PUT", path, tok, cases)

	var out catList[catLesson]
	env.Do(t, "PUT", path, map[string]any{"lesson_ids": []string{c, a, b}}, apitest.Token(tok)).Expect(t, 200).JSON(t, &out)
	var returned []string
	for _, l := range out.Data {
		returned = append(returned, l.Title)
	}
	if want := []string{"c", "a", "b"}; !slices.Equal(returned, want) || out.NextCursor != nil {
		t.Errorf("returned %v (next %v), want %v", returned, out.NextCursor, want)
	}
	if got := catLessonOrder(t, env, tok, pid); !slices.Equal(got, []string{"c", "a", "b"}) {
		t.Errorf("stored order = %v", got)
	}
	if got := catLessonOrder(t, env, tok, otherID); !slices.Equal(got, []string{"x"}) {
		t.Errorf("other program changed: %v", got)
	}
	env.Do(t, "PUT", "/v1/admin/programs/"+uuid.NewString()+"/lesson-order", map[string]any{"lesson_ids": []string{}}, apitest.Token(tok)).ExpectProblem(t, 404, "not_found")
}

func TestLessonDeleteCompactsPositions(t *testing.T) {
	env := apitest.NewEnv(t)
	tok := catCoach(t, env)
	pid := env.Program(t, "p", catalog.ProgramDraft, false).ID.String()
	ids := map[string]string{}
	for _, title := range []string{"a", "b", "c", "d", "e"} {
		ids[title] = catCreateLesson(t, env, tok, pid, map[string]any{"title": title}).ID
	}
	for _, step := range []struct {
		del  string
		want []string
	}{
		{"b", []string{"a", "c", "d", "e"}},
		{"a", []string{"c", "d", "e"}},
		{"e", []string{"c", "d"}},
	} {
		env.Do(t, "DELETE", "/v1/admin/lessons/"+ids[step.del], nil, apitest.Token(tok)).Expect(t, 204)
		if got := catLessonOrder(t, env, tok, pid); !slices.Equal(got, step.want) {
			t.Fatalf("after deleting %s: %v, want %v", step.del, got, step.want)
		}
	}
	// A new lesson still lands right after the last one.
	if l := catCreateLesson(t, env, tok, pid, map[string]any{"title": "f"}); l.Position != 3 {
		t.Errorf("new lesson at %d, want 3", l.Position)
	}
}

func TestLessonListPagination(t *testing.T) {
	env := apitest.NewEnv(t)
	tok := catCoach(t, env)
	pid := env.Program(t, "p", catalog.ProgramDraft, false).ID.String()
	var want []string
	for i := range 5 {
		title := fmt.Sprintf("l%d", i)
		catCreateLesson(t, env, tok, pid, map[string]any{"title": title})
		want = append(want, title)
	}
	var got []string
	cursor, pages := "", 0
	for {
		u := "/v1/admin/programs/" + pid + "/lessons?limit=2"
		if cursor != "" {
			u += "&cursor=" + url.QueryEscape(cursor)
		}
		var page catList[catLesson]
		env.Do(t, "GET", u, nil, apitest.Token(tok)).Expect(t, 200).JSON(t, &page)
		pages++
		for _, l := range page.Data {
			got = append(got, l.Title)
		}
		if page.NextCursor == nil || pages > 5 {
			break
		}
		cursor = *page.NextCursor
	}
	if pages != 3 || !slices.Equal(got, want) {
		t.Errorf("%d pages: %v, want 3 pages: %v", pages, got, want)
	}
	env.Do(t, "GET", "/v1/admin/programs/"+pid+"/lessons?cursor=%7B%7D", nil, apitest.Token(tok)).ExpectProblem(t, 400, "invalid_cursor")
}

package api_test

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grace-coaching/grace/api/apitest"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/people"
)

// Helpers of the catalogue tests (programs, lessons, the public catalogue,
// admin participant views) carry a cat prefix: other features' tests share
// this package.

type catProgram struct {
	ID              string     `json:"id"`
	Slug            string     `json:"slug"`
	Title           string     `json:"title"`
	Summary         string     `json:"summary"`
	Description     string     `json:"description"`
	Status          string     `json:"status"`
	FreeAccessUntil *time.Time `json:"free_access_until"`
	PriceCents      int64      `json:"price_cents"`
	Currency        string     `json:"currency"`
	CreatedAt       time.Time  `json:"created_at"`
	UpdatedAt       time.Time  `json:"updated_at"`
}

type catList[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

type catPublicProgram struct {
	ID              string     `json:"id"`
	Slug            string     `json:"slug"`
	Title           string     `json:"title"`
	Description     *string    `json:"description"`
	FreeAccessUntil *time.Time `json:"free_access_until"`
	FreeAccessOpen  bool       `json:"free_access_open"`
	Lessons         []map[string]any
}

// catCoach is a coach (role coach, not admin) with a live token.
func catCoach(t *testing.T, env *apitest.Env) string {
	t.Helper()
	_, tok := env.Coach(t, "coach@example.com", people.RoleCoach)
	return tok
}

func catCreateProgram(t *testing.T, env *apitest.Env, tok string, body map[string]any) catProgram {
	t.Helper()
	var p catProgram
	env.Do(t, "POST", "/v1/admin/programs", body, apitest.Token(tok)).Expect(t, 201).JSON(t, &p)
	return p
}

// catSnapshot fingerprints every row the catalogue routes can write, so a
// refused request can be shown to have changed nothing.
func catSnapshot(t *testing.T, env *apitest.Env) string {
	t.Helper()
	var s string
	err := env.DB.Raw(`SELECT concat_ws(' | ',
		(SELECT string_agg(concat_ws(',', id, slug, title, summary, md5(description), status, free_access_until, price_cents, currency, updated_at), ';' ORDER BY id) FROM programs),
		(SELECT string_agg(concat_ws(',', id, program_id, position, title, md5(body), md5(body_html), media_url, duration_seconds, free_preview, unlock_offset_days, published, updated_at), ';' ORDER BY id) FROM lessons))`).Scan(&s).Error
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type catBadInput struct {
	name   string
	body   any
	status int      // 0 with code "undecodable": 400 or 422
	code   string   // defaults to validation_failed (422)
	fields []string // for 422: the fields named in errors
}

// catBadInputs are the refusals every write route owes: malformed JSON, an
// unknown field, a body over 1 MiB; then the route's own 422 cases.
func catBadInputs(invalid ...catBadInput) []catBadInput {
	cases := []catBadInput{
		{name: "malformed json", body: `{"title": `, status: 400, code: "malformed_json"},
		{name: "not an object", body: `[1, 2]`, status: 400, code: "malformed_json"},
		{name: "two objects", body: `{} {}`, status: 400, code: "malformed_json"},
		{name: "unknown field", body: `{"title": "A title", "owner": "me"}`, status: 400, code: "unknown_field"},
		{name: "over 1 MiB", body: `{"title": "t", "description": "` + strings.Repeat("a", 1<<20) + `"}`, status: 413, code: "body_too_large"},
	}
	for _, c := range invalid {
		if c.status == 0 && c.code == "" {
			c.status, c.code = 422, "validation_failed"
		}
		cases = append(cases, c)
	}
	return cases
}

// catCheckRefusals sends every bad input to the route and checks it is
// refused with the right problem and that nothing changed.
func catCheckRefusals(t *testing.T, env *apitest.Env, method, path, tok string, cases []catBadInput) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := catSnapshot(t, env)
			res := env.Do(t, method, path, tc.body, apitest.Token(tok))
			var p apitest.Problem
			if tc.code == "undecodable" {
				// A value a field's own decoder refuses (a date, a UUID): 400
				// or 422 are both fair refusals, as long as nothing is written.
				if res.Status != 400 && res.Status != 422 {
					t.Fatalf("status = %d, want 400 or 422; body: %s", res.Status, res.Body)
				}
				p = res.Problem(t)
			} else {
				p = res.ExpectProblem(t, tc.status, tc.code)
			}
			if tc.fields != nil {
				var got []string
				for _, e := range p.Errors {
					got = append(got, e.Field)
				}
				slices.Sort(got)
				want := slices.Sorted(slices.Values(tc.fields))
				if !slices.Equal(got, want) {
					t.Errorf("error fields = %v, want %v", got, want)
				}
			}
			if after := catSnapshot(t, env); after != before {
				t.Errorf("a refused request changed the catalogue:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

func TestProgramCreateDefaultsAndRoundTrip(t *testing.T) {
	env := apitest.NewEnv(t)
	tok := catCoach(t, env)

	minimal := catCreateProgram(t, env, tok, map[string]any{"slug": "say-no-with-grace", "title": "Say No With Grace"})
	if minimal.Status != "draft" || minimal.Currency != "EUR" || minimal.PriceCents != 0 || minimal.FreeAccessUntil != nil || minimal.Summary != "" || minimal.Description != "" {
		t.Errorf("defaults: %+v", minimal)
	}
	if !minimal.CreatedAt.Equal(env.Clock.Now()) || minimal.CreatedAt.Location() != time.UTC {
		t.Errorf("created_at = %v, want %v in UTC", minimal.CreatedAt, env.Clock.Now())
	}

	// Sent with nanoseconds and an offset: stored, and answered, in UTC to
	// the microsecond, the same by the create and by a later read.
	until := env.Clock.Now().Add(14*24*time.Hour + 123456789)
	full := catCreateProgram(t, env, tok, map[string]any{
		"slug": "no-contact-reset", "title": "The No-Contact Reset", "summary": "Thirty days.",
		"description": "# Welcome\n\nYou are *safe* here.", "status": "published",
		"free_access_until": until.In(time.FixedZone("CET", 3600)).Format(time.RFC3339Nano), "price_cents": 4900, "currency": "GBP",
	})
	until = until.Truncate(time.Microsecond)
	var got catProgram
	env.Do(t, "GET", "/v1/admin/programs/"+full.ID, nil, apitest.Token(tok)).Expect(t, 200).JSON(t, &got)
	if !catSameProgram(full, got) || got.FreeAccessUntil.Location() != time.UTC {
		t.Errorf("create answered %+v, a read %+v", full, got)
	}
	if got.Slug != "no-contact-reset" || got.Title != "The No-Contact Reset" || got.Summary != "Thirty days." ||
		got.Description != "# Welcome\n\nYou are *safe* here." || got.Status != "published" || got.PriceCents != 4900 ||
		got.Currency != "GBP" || got.FreeAccessUntil == nil || !got.FreeAccessUntil.Equal(until) {
		t.Errorf("round trip: %+v", got)
	}

	env.Do(t, "GET", "/v1/admin/programs/00000000-0000-4000-8000-000000000000", nil, apitest.Token(tok)).ExpectProblem(t, 404, "not_found")
	env.Do(t, "GET", "/v1/admin/programs/not-a-uuid", nil, apitest.Token(tok)).ExpectProblem(t, 404, "not_found")
}

func TestProgramCreateRefusesBadInput(t *testing.T) {
	env := apitest.NewEnv(t)
	tok := catCoach(t, env)
	catCreateProgram(t, env, tok, map[string]any{"slug": "taken", "title": "Taken"})

	cases := catBadInputs(
		catBadInput{name: "missing slug and title", body: map[string]any{}, fields: []string{"slug", "title"}},
		catBadInput{name: "bad slug", body: map[string]any{"slug": "Say No", "title": "t"}, fields: []string{"slug"}},
		catBadInput{name: "slug with trailing dash", body: map[string]any{"slug": "say-no-", "title": "t"}, fields: []string{"slug"}},
		catBadInput{name: "slug too long", body: map[string]any{"slug": strings.Repeat("a", 101), "title": "t"}, fields: []string{"slug"}},
		catBadInput{name: "blank title", body: map[string]any{"slug": "s", "title": "   "}, fields: []string{"title"}},
		catBadInput{name: "title too long", body: map[string]any{"slug": "s", "title": strings.Repeat("é", 201)}, fields: []string{"title"}},
		catBadInput{name: "summary too long", body: map[string]any{"slug": "s", "title": "t", "summary": strings.Repeat("a", 1001)}, fields: []string{"summary"}},
		catBadInput{name: "description too long", body: map[string]any{"slug": "s", "title": "t", "description": strings.Repeat("a", 100001)}, fields: []string{"description"}},
		catBadInput{name: "unknown status", body: map[string]any{"slug": "s", "title": "t", "status": "live"}, fields: []string{"status"}},
		catBadInput{name: "negative price", body: map[string]any{"slug": "s", "title": "t", "price_cents": -1}, fields: []string{"price_cents"}},
		catBadInput{name: "absurd price", body: map[string]any{"slug": "s", "title": "t", "price_cents": catalog.MaxPriceCents + 1}, fields: []string{"price_cents"}},
		catBadInput{name: "fractional price", body: map[string]any{"slug": "s", "title": "t", "price_cents": 49.5}, fields: []string{"price_cents"}},
		catBadInput{name: "lowercase currency", body: map[string]any{"slug": "s", "title": "t", "currency": "eur"}, fields: []string{"currency"}},
		catBadInput{name: "long currency", body: map[string]any{"slug": "s", "title": "t", "currency": "EURO"}, fields: []string{"currency"}},
		catBadInput{name: "title of the wrong type", body: map[string]any{"slug": "s", "title": 7}, fields: []string{"title"}},
		catBadInput{name: "free_access_until not a date", body: map[string]any{"slug": "s", "title": "t", "free_access_until": "next friday"}, code: "undecodable"},
	)
	catCheckRefusals(t, env, "POST", "/v1/admin/programs", tok, cases)

	t.Run("slug taken", func(t *testing.T) {
		before := env.Count(t, "programs")
		p := env.Do(t, "POST", "/v1/admin/programs", map[string]any{"slug": "taken", "title": "Another"}, apitest.Token(tok)).ExpectProblem(t, 409, "slug_taken")
		if !strings.Contains(p.Detail, `"taken"`) {
			t.Errorf("detail does not name the slug: %q", p.Detail)
		}
		if env.Count(t, "programs") != before {
			t.Error("a program was written")
		}
	})
}

func TestProgramPatchChangesOnlySentFields(t *testing.T) {
	until := time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)
	base := map[string]any{
		"slug": "base", "title": "Base", "summary": "Sum", "description": "Desc", "status": "draft",
		"free_access_until": until.Format(time.RFC3339), "price_cents": 9700, "currency": "EUR",
	}
	tests := []struct {
		name  string
		patch map[string]any
		want  func(p *catProgram)
	}{
		{"nothing", map[string]any{}, func(p *catProgram) {}},
		{"slug", map[string]any{"slug": "renamed"}, func(p *catProgram) { p.Slug = "renamed" }},
		{"title", map[string]any{"title": "New title"}, func(p *catProgram) { p.Title = "New title" }},
		{"summary to empty", map[string]any{"summary": ""}, func(p *catProgram) { p.Summary = "" }},
		{"description", map[string]any{"description": "## New"}, func(p *catProgram) { p.Description = "## New" }},
		{"status", map[string]any{"status": "published"}, func(p *catProgram) { p.Status = "published" }},
		{"price and currency", map[string]any{"price_cents": 0, "currency": "USD"}, func(p *catProgram) { p.PriceCents, p.Currency = 0, "USD" }},
		{"free access moved", map[string]any{"free_access_until": "2026-05-01T08:30:00+02:00"}, func(p *catProgram) {
			u := time.Date(2026, 5, 1, 6, 30, 0, 0, time.UTC)
			p.FreeAccessUntil = &u
		}},
		{"free access closed with null", map[string]any{"free_access_until": nil}, func(p *catProgram) { p.FreeAccessUntil = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := apitest.NewEnv(t)
			tok := catCoach(t, env)
			created := catCreateProgram(t, env, tok, base)
			env.Clock.Advance(time.Hour)
			var got catProgram
			env.Do(t, "PATCH", "/v1/admin/programs/"+created.ID, tt.patch, apitest.Token(tok)).Expect(t, 200).JSON(t, &got)
			want := created
			tt.want(&want)
			if len(tt.patch) > 0 {
				want.UpdatedAt = env.Clock.Now()
			}
			var stored catProgram
			env.Do(t, "GET", "/v1/admin/programs/"+created.ID, nil, apitest.Token(tok)).Expect(t, 200).JSON(t, &stored)
			for _, p := range []catProgram{got, stored} {
				if !catSameProgram(p, want) {
					t.Errorf("got  %+v\nwant %+v", p, want)
				}
			}
		})
	}
}

func catSameProgram(a, b catProgram) bool {
	sameTime := func(x, y *time.Time) bool { return (x == nil) == (y == nil) && (x == nil || x.Equal(*y)) }
	return a.ID == b.ID && a.Slug == b.Slug && a.Title == b.Title && a.Summary == b.Summary && a.Description == b.Description &&
		a.Status == b.Status && sameTime(a.FreeAccessUntil, b.FreeAccessUntil) && a.PriceCents == b.PriceCents &&
		a.Currency == b.Currency && a.CreatedAt.Equal(b.CreatedAt) && a.UpdatedAt.Equal(b.UpdatedAt)
}

func TestProgramPatchRefusesBadInput(t *testing.T) {
	env := apitest.NewEnv(t)
	tok := catCoach(t, env)
	p := catCreateProgram(t, env, tok, map[string]any{"slug": "mine", "title": "Mine"})
	catCreateProgram(t, env, tok, map[string]any{"slug": "theirs", "title": "Theirs"})
	path := "/v1/admin/programs/" + p.ID

	cases := catBadInputs(
		catBadInput{name: "null title", body: map[string]any{"title": nil}, fields: []string{"title"}},
		catBadInput{name: "null slug and status", body: map[string]any{"slug": nil, "status": nil}, fields: []string{"slug", "status"}},
		catBadInput{name: "null price", body: map[string]any{"price_cents": nil}, fields: []string{"price_cents"}},
		catBadInput{name: "empty title", body: map[string]any{"title": ""}, fields: []string{"title"}},
		catBadInput{name: "bad slug", body: map[string]any{"slug": "UPPER"}, fields: []string{"slug"}},
		catBadInput{name: "bad status", body: map[string]any{"status": "deleted"}, fields: []string{"status"}},
		catBadInput{name: "bad currency", body: map[string]any{"currency": "€"}, fields: []string{"currency"}},
		catBadInput{name: "negative price", body: map[string]any{"price_cents": -5}, fields: []string{"price_cents"}},
		catBadInput{name: "good field with a bad one", body: map[string]any{"title": "Fine", "price_cents": -5}, fields: []string{"price_cents"}},
		catBadInput{name: "status of the wrong type", body: map[string]any{"status": true}, fields: []string{"status"}},
		catBadInput{name: "free_access_until not a date", body: map[string]any{"free_access_until": "2026-13-45"}, code: "undecodable"},
	)
	catCheckRefusals(t, env, "PATCH", path, tok, cases)

	t.Run("slug taken", func(t *testing.T) {
		before := catSnapshot(t, env)
		env.Do(t, "PATCH", path, map[string]any{"slug": "theirs", "title": "Changed"}, apitest.Token(tok)).ExpectProblem(t, 409, "slug_taken")
		if catSnapshot(t, env) != before {
			t.Error("a refused patch changed the program")
		}
	})
	t.Run("unknown program", func(t *testing.T) {
		env.Do(t, "PATCH", "/v1/admin/programs/00000000-0000-4000-8000-000000000000", map[string]any{"title": "x"}, apitest.Token(tok)).ExpectProblem(t, 404, "not_found")
	})
}

func TestProgramFreeAccessWindowOnThePublicPage(t *testing.T) {
	env := apitest.NewEnv(t)
	tok := catCoach(t, env)
	p := catCreateProgram(t, env, tok, map[string]any{
		"slug": "workshop", "title": "Workshop", "status": "published",
		"free_access_until": env.Clock.Now().Add(48 * time.Hour).Format(time.RFC3339),
	})
	public := func() catPublicProgram {
		var out catPublicProgram
		env.Do(t, "GET", "/v1/programs/workshop", nil).Expect(t, 200).JSON(t, &out)
		return out
	}
	if pub := public(); !pub.FreeAccessOpen || pub.FreeAccessUntil == nil {
		t.Fatalf("window should be open: %+v", pub)
	}
	env.Clock.Advance(49 * time.Hour)
	if pub := public(); pub.FreeAccessOpen {
		t.Errorf("window should have closed by itself: %+v", pub)
	}
	env.Do(t, "PATCH", "/v1/admin/programs/"+p.ID, map[string]any{"free_access_until": env.Clock.Now().Add(time.Hour)}, apitest.Token(tok)).Expect(t, 200)
	if pub := public(); !pub.FreeAccessOpen {
		t.Errorf("window should be open again: %+v", pub)
	}
	env.Do(t, "PATCH", "/v1/admin/programs/"+p.ID, map[string]any{"free_access_until": nil}, apitest.Token(tok)).Expect(t, 200)
	if pub := public(); pub.FreeAccessOpen || pub.FreeAccessUntil != nil {
		t.Errorf("null should close the window: %+v", pub)
	}
}

func TestProgramDelete(t *testing.T) {
	env := apitest.NewEnv(t)
	tok := catCoach(t, env)
	free := env.Program(t, "unused", catalog.ProgramDraft, false)
	env.Lesson(t, free.ID, "One", true, false, 0)
	env.Lesson(t, free.ID, "Two", false, false, 0)

	env.Do(t, "DELETE", "/v1/admin/programs/"+free.ID.String(), nil, apitest.Token(tok)).Expect(t, 204)
	if n := env.Count(t, "lessons"); n != 0 {
		t.Errorf("%d lessons left after deleting their program", n)
	}
	env.Do(t, "GET", "/v1/admin/programs/"+free.ID.String(), nil, apitest.Token(tok)).ExpectProblem(t, 404, "not_found")
	env.Do(t, "DELETE", "/v1/admin/programs/"+free.ID.String(), nil, apitest.Token(tok)).ExpectProblem(t, 404, "not_found")

	// Even a revoked grant keeps the program: her history refers to it.
	for _, revoked := range []bool{false, true} {
		t.Run(fmt.Sprintf("granted, revoked=%v", revoked), func(t *testing.T) {
			p := env.Program(t, fmt.Sprintf("granted-%v", revoked), catalog.ProgramPublished, true)
			env.Lesson(t, p.ID, "One", true, false, 0)
			who, _ := env.Participant(t, fmt.Sprintf("jane-%v@example.com", revoked))
			g := env.Grant(t, who.ID, p.ID, people.GrantFreeAccess, env.Clock.Now())
			if revoked {
				env.DB.Model(g).Update("revoked_at", env.Clock.Now())
			}
			before := catSnapshot(t, env)
			prob := env.Do(t, "DELETE", "/v1/admin/programs/"+p.ID.String(), nil, apitest.Token(tok)).ExpectProblem(t, 409, "program_in_use")
			if !strings.Contains(prob.Detail, "archive") {
				t.Errorf("detail should tell her to archive: %q", prob.Detail)
			}
			if catSnapshot(t, env) != before {
				t.Error("a refused delete changed the catalogue")
			}
		})
	}
}

func TestProgramListPagination(t *testing.T) {
	env := apitest.NewEnv(t)
	tok := catCoach(t, env)
	var created []string
	for i := range 5 {
		status := "draft"
		if i%2 == 0 {
			status = "published"
		}
		p := catCreateProgram(t, env, tok, map[string]any{"slug": fmt.Sprintf("p%d", i), "title": "P", "status": status})
		created = append(created, p.Slug)
		env.Clock.Advance(time.Minute)
	}
	newestFirst := slices.Clone(created)
	slices.Reverse(newestFirst)

	walk := func(path string) (slugs []string, pages int) {
		t.Helper()
		cursor := ""
		for {
			u := path + "limit=2"
			if cursor != "" {
				u += "&cursor=" + url.QueryEscape(cursor)
			}
			var page catList[catProgram]
			env.Do(t, "GET", u, nil, apitest.Token(tok)).Expect(t, 200).JSON(t, &page)
			pages++
			for _, p := range page.Data {
				slugs = append(slugs, p.Slug)
			}
			if page.NextCursor == nil {
				return slugs, pages
			}
			if pages > 10 {
				t.Fatal("pagination does not end")
			}
			cursor = *page.NextCursor
		}
	}
	slugs, pages := walk("/v1/admin/programs?")
	if pages != 3 || !slices.Equal(slugs, newestFirst) {
		t.Errorf("walked %d pages: %v, want 3 pages: %v", pages, slugs, newestFirst)
	}
	slugs, _ = walk("/v1/admin/programs?status=published&")
	if want := []string{"p4", "p2", "p0"}; !slices.Equal(slugs, want) {
		t.Errorf("published = %v, want %v", slugs, want)
	}

	for _, tc := range []struct{ name, query, code string }{
		{"tampered cursor", "cursor=not-a-cursor", "invalid_cursor"},
		{"cursor without id", "cursor=" + base64.RawURLEncoding.EncodeToString([]byte(`{"t":"2026-01-01T00:00:00Z"}`)), "invalid_cursor"},
		{"limit zero", "limit=0", "invalid_query"},
		{"limit too big", "limit=101", "invalid_query"},
		{"unknown status", "status=live", "invalid_query"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env.Do(t, "GET", "/v1/admin/programs?"+tc.query, nil, apitest.Token(tok)).ExpectProblem(t, 400, tc.code)
		})
	}
}

func TestProgramManagementForBothCoachRoles(t *testing.T) {
	for _, role := range []people.Role{people.RoleAdmin, people.RoleCoach} {
		t.Run(string(role), func(t *testing.T) {
			env := apitest.NewEnv(t)
			_, tok := env.Coach(t, "c@example.com", role)
			p := catCreateProgram(t, env, tok, map[string]any{"slug": "p", "title": "P"})
			env.Do(t, "PATCH", "/v1/admin/programs/"+p.ID, map[string]any{"status": "published"}, apitest.Token(tok)).Expect(t, 200)
			var l catLesson
			env.Do(t, "POST", "/v1/admin/programs/"+p.ID+"/lessons", map[string]any{"title": "L"}, apitest.Token(tok)).Expect(t, 201).JSON(t, &l)
			env.Do(t, "PATCH", "/v1/admin/lessons/"+l.ID, map[string]any{"published": true}, apitest.Token(tok)).Expect(t, 200)
			env.Do(t, "PUT", "/v1/admin/programs/"+p.ID+"/lesson-order", map[string]any{"lesson_ids": []string{l.ID}}, apitest.Token(tok)).Expect(t, 200)
			env.Do(t, "GET", "/v1/admin/participants", nil, apitest.Token(tok)).Expect(t, 200)
			env.Do(t, "DELETE", "/v1/admin/lessons/"+l.ID, nil, apitest.Token(tok)).Expect(t, 204)
			env.Do(t, "DELETE", "/v1/admin/programs/"+p.ID, nil, apitest.Token(tok)).Expect(t, 204)
		})
	}
}

func TestProgramAdminRoutesNeedACoachToken(t *testing.T) {
	env := apitest.NewEnv(t)
	p := env.Program(t, "p", catalog.ProgramPublished, false)
	l := env.Lesson(t, p.ID, "L", true, false, 0)
	who, participantToken := env.Participant(t, "jane@example.com")
	routes := []struct{ method, path string }{
		{"GET", "/v1/admin/programs"},
		{"POST", "/v1/admin/programs"},
		{"GET", "/v1/admin/programs/" + p.ID.String()},
		{"PATCH", "/v1/admin/programs/" + p.ID.String()},
		{"DELETE", "/v1/admin/programs/" + p.ID.String()},
		{"GET", "/v1/admin/programs/" + p.ID.String() + "/lessons"},
		{"POST", "/v1/admin/programs/" + p.ID.String() + "/lessons"},
		{"PUT", "/v1/admin/programs/" + p.ID.String() + "/lesson-order"},
		{"GET", "/v1/admin/lessons/" + l.ID.String()},
		{"PATCH", "/v1/admin/lessons/" + l.ID.String()},
		{"DELETE", "/v1/admin/lessons/" + l.ID.String()},
		{"GET", "/v1/admin/participants"},
		{"GET", "/v1/admin/participants/" + who.ID.String()},
	}
	before := catSnapshot(t, env)
	for _, r := range routes {
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			env.Do(t, r.method, r.path, nil).ExpectProblem(t, 401, "unauthorized")
			env.Do(t, r.method, r.path, nil, apitest.Token(participantToken)).ExpectProblem(t, 401, "invalid_token")
		})
	}
	if catSnapshot(t, env) != before {
		t.Error("an unauthenticated request changed the catalogue")
	}
}

func TestPublicCatalogueShowsOnlyPublished(t *testing.T) {
	env := apitest.NewEnv(t)
	pub := env.Program(t, "published-one", catalog.ProgramPublished, true)
	env.Program(t, "a-draft", catalog.ProgramDraft, true)
	env.Program(t, "archived-one", catalog.ProgramArchived, false)
	closed := env.Program(t, "published-closed", catalog.ProgramPublished, false)

	var list catList[map[string]any]
	env.Do(t, "GET", "/v1/programs", nil).Expect(t, 200).JSON(t, &list)
	open := map[string]bool{}
	for _, p := range list.Data {
		open[p["slug"].(string)] = p["free_access_open"].(bool)
		if _, ok := p["description"]; ok {
			t.Errorf("catalogue list carries the description: %v", p)
		}
	}
	if want := map[string]bool{pub.Slug: true, closed.Slug: false}; len(open) != 2 || open[pub.Slug] != true || open[closed.Slug] != false {
		t.Errorf("catalogue = %v, want %v", open, want)
	}

	for _, slug := range []string{"a-draft", "archived-one", "no-such-program", "Not_A_Slug", strings.Repeat("a", 101)} {
		t.Run(slug, func(t *testing.T) {
			env.Do(t, "GET", "/v1/programs/"+slug, nil).ExpectProblem(t, 404, "not_found")
		})
	}

	// Cursor walk of the public list.
	for i := range 3 {
		env.Program(t, fmt.Sprintf("more-%d", i), catalog.ProgramPublished, false)
	}
	seen := map[string]bool{}
	cursor := ""
	for range 10 {
		u := "/v1/programs?limit=2"
		if cursor != "" {
			u += "&cursor=" + url.QueryEscape(cursor)
		}
		var page catList[map[string]any]
		env.Do(t, "GET", u, nil).Expect(t, 200).JSON(t, &page)
		for _, p := range page.Data {
			slug := p["slug"].(string)
			if seen[slug] {
				t.Errorf("%s on two pages", slug)
			}
			seen[slug] = true
		}
		if page.NextCursor == nil {
			break
		}
		cursor = *page.NextCursor
	}
	if len(seen) != 5 {
		t.Errorf("walked %d published programs, want 5: %v", len(seen), seen)
	}
	env.Do(t, "GET", "/v1/programs?cursor=zzz", nil).ExpectProblem(t, 400, "invalid_cursor")
}

func TestPublicProgramPageOutlinesPublishedLessons(t *testing.T) {
	env := apitest.NewEnv(t)
	tok := catCoach(t, env)
	p := catCreateProgram(t, env, tok, map[string]any{
		"slug": "say-no", "title": "Say No", "status": "published", "description": "# About\n\n<b>raw</b>",
	})
	for _, l := range []map[string]any{
		{"title": "Welcome", "body": "secret body 1", "published": true, "free_preview": true, "duration_seconds": 60},
		{"title": "Hidden draft", "body": "secret body 2", "published": false},
		{"title": "Day two", "body": "secret body 3", "published": true, "unlock_offset_days": 2, "media_url": "https://media.example.com/2.mp3"},
	} {
		env.Do(t, "POST", "/v1/admin/programs/"+p.ID+"/lessons", l, apitest.Token(tok)).Expect(t, 201)
	}

	res := env.Do(t, "GET", "/v1/programs/say-no", nil).Expect(t, 200)
	var page catPublicProgram
	res.JSON(t, &page)
	if page.Description == nil || *page.Description != "# About\n\n<b>raw</b>" {
		t.Errorf("description should be the Markdown source: %v", page.Description)
	}
	var titles []string
	for _, l := range page.Lessons {
		titles = append(titles, l["title"].(string))
		for _, field := range []string{"body", "body_html", "media_url", "published"} {
			if _, ok := l[field]; ok {
				t.Errorf("outline of %q carries %s", l["title"], field)
			}
		}
	}
	if want := []string{"Welcome", "Day two"}; !slices.Equal(titles, want) {
		t.Errorf("outline = %v, want %v", titles, want)
	}
	if page.Lessons[0]["free_preview"] != true || page.Lessons[0]["duration_seconds"] != float64(60) || page.Lessons[1]["unlock_offset_days"] != float64(2) || page.Lessons[1]["position"] != float64(3) {
		t.Errorf("outline details: %v", page.Lessons)
	}
	if strings.Contains(string(res.Body), "secret body") {
		t.Error("a lesson body leaked onto the public page")
	}
}

func TestPublicProgramPageOfAProgramWithoutLessons(t *testing.T) {
	env := apitest.NewEnv(t)
	env.Program(t, "empty", catalog.ProgramPublished, false)
	res := env.Do(t, "GET", "/v1/programs/empty", nil).Expect(t, 200)
	if !strings.Contains(string(res.Body), `"lessons":[]`) {
		t.Errorf("lessons should be an empty array: %s", res.Body)
	}
}

package api_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/grace-coaching/grace/api/apitest"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/people"
)

// FuzzEveryRoute sends arbitrary path parameters, query strings and bodies
// to every route, signed in as an admin, as a participant, or not at all,
// and requires that none answers a server error: whatever a client sends,
// the answer is a 4xx it can act on. The seeds are the inputs that once
// reached PostgreSQL and answered 500; `go test` runs them every time, and
// `go test -fuzz FuzzEveryRoute ./api/` explores further.
func FuzzEveryRoute(f *testing.F) {
	env := apitest.NewEnv(f)
	_, admin := env.Coach(f, "admin@example.com", people.RoleAdmin)
	_, ana := env.Participant(f, "ana@example.com")
	prog := env.Program(f, "say-no", catalog.ProgramPublished, true)
	env.Lesson(f, prog.ID, "One", true, true, 0)
	type route struct{ method, path string }
	var routes []route
	for _, r := range env.Echo.Routes() {
		if strings.HasPrefix(r.Path, "/v1/") {
			routes = append(routes, route{r.Method, r.Path})
		}
	}
	slices.SortFunc(routes, func(a, b route) int { return strings.Compare(a.method+a.path, b.method+b.path) })
	find := func(method, path string) uint16 {
		i := slices.Index(routes, route{method, path})
		if i < 0 {
			f.Fatalf("no route %s %s", method, path)
		}
		return uint16(i)
	}
	nul := func(field string) string {
		return `{"` + field + `":"a\u0000b","email":"x@example.com","disclaimer_accepted":true}`
	}
	cursor := func(pos int64) string {
		b, _ := json.Marshal(map[string]any{"i": uuid.NewString(), "p": pos})
		return "cursor=" + base64.RawURLEncoding.EncodeToString(b)
	}
	for _, seed := range []struct {
		route       uint16
		param, q    string
		body        []byte
		credentials uint8
	}{
		{find("POST", "/v1/programs/:slug/free-access"), prog.Slug, "", []byte(nul("name")), 0},
		{find("POST", "/v1/cohorts/:id/waitlist"), uuid.NewString(), "", []byte(nul("name")), 0},
		{find("POST", "/v1/admin/cohorts/:id/enrollments"), uuid.NewString(), "", []byte(nul("name")), 1},
		{find("POST", "/v1/admin/cohorts/:id/clone"), uuid.NewString(), "", []byte(nul("name")), 1},
		{find("PATCH", "/v1/portal/me"), "", "", []byte(nul("name")), 2},
		{find("PATCH", "/v1/admin/coaches/:id"), uuid.NewString(), "", []byte(nul("name")), 1},
		{find("POST", "/v1/auth/login"), "", "", []byte(`{"email":"a\u0000@example.com","password":"x"}`), 0},
		{find("DELETE", "/v1/admin/suppressions/:email"), "a\x00b", "", nil, 1},
		{find("GET", "/v1/portal/programs/:slug/lessons"), "\x00", "", nil, 2},
		{find("GET", "/v1/admin/programs/:id/lessons"), prog.ID.String(), cursor(2147483648), nil, 1},
		{find("GET", "/v1/admin/sequences/:id/steps"), uuid.NewString(), cursor(2147483648), nil, 1},
		{find("POST", "/v1/portal/login-links"), "", "", []byte("{\"email\":\"\xff\xfe@example.com\"}"), 0},
		{find("POST", "/v1/portal/login-links"), "", "", []byte(`{"email":"\ud800@example.com"}`), 0},
		{find("GET", "/v1/admin/participants"), "", "q=%00&limit=99999999999999999999", nil, 1},
		{find("POST", "/v1/webhooks/stripe"), "", "", []byte(`{"id":"evt_\u0000"}`), 0},
		{find("POST", "/v1/webhooks/resend"), "", "", []byte(`{"type":"email.bounced","data":{"email_id":"` + strings.Repeat("x", 7000) + `"}}`), 0},
	} {
		f.Add(seed.route, seed.param, seed.q, seed.body, seed.credentials)
	}
	f.Fuzz(func(t *testing.T, ri uint16, param, query string, body []byte, credentials uint8) {
		r := routes[int(ri)%len(routes)]
		segs := strings.Split(r.path, "/")
		for i, s := range segs {
			if strings.HasPrefix(s, ":") || s == "*" {
				segs[i] = url.PathEscape(param)
			}
		}
		target := strings.Join(segs, "/")
		if query != "" {
			target += "?" + query
		}
		req, err := http.NewRequest(r.method, target, bytes.NewReader(body))
		if err != nil {
			t.Skip("not a request a client could send")
		}
		req.Header.Set("Content-Type", "application/json")
		switch credentials % 3 {
		case 1:
			req.Header.Set("Authorization", "Bearer "+admin)
		case 2:
			req.Header.Set("Authorization", "Bearer "+ana)
		}
		rec := httptest.NewRecorder()
		env.Echo.ServeHTTP(rec, req)
		if rec.Code < 500 {
			return
		}
		var p apitest.Problem
		_ = json.Unmarshal(rec.Body.Bytes(), &p)
		// Unconfigured payments and webhooks are honest 503s, not faults.
		if rec.Code == http.StatusServiceUnavailable && (p.Code == "payments_unavailable" || p.Code == "webhooks_unavailable") {
			return
		}
		t.Fatalf("%s %q with %q -> %d %s", r.method, target, body, rec.Code, rec.Body)
	})
}

package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/grace-coaching/grace/api"
	"github.com/grace-coaching/grace/api/apitest"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/domain"
	"github.com/grace-coaching/grace/models/people"
)

// deadDSN is a database URL on a loopback port where nothing listens: a
// Postgres that is down.
func deadDSN(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "postgres://postgres@" + addr + "/grace?sslmode=disable&connect_timeout=2"
}

// lockedLog collects the server's JSON log lines; requests here run one
// at a time.
type lockedLog struct {
	buf bytes.Buffer
}

func (l *lockedLog) errorLines() int {
	n := 0
	for _, line := range strings.Split(l.buf.String(), "\n") {
		if strings.Contains(line, `"level":"ERROR"`) {
			n++
		}
	}
	return n
}

// While the database is down every request that needs it is a 503 with
// Retry-After (the request was fine: try again), never a 500, and the log
// says so once, with a count, rather than once per request.
func TestDatabaseOutageIs503AndLoggedOnce(t *testing.T) {
	db, err := gorm.Open(postgres.New(postgres.Config{DSN: deadDSN(t)}), &gorm.Config{DisableAutomaticPing: true, Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	var sink lockedLog
	log := slog.New(slog.NewJSONHandler(&sink.buf, nil))
	e := api.New(api.Config{Service: domain.New(domain.Deps{DB: db}), Log: log})
	for _, tc := range []struct {
		name, method, path, body, token string
	}{
		{"public program page", "GET", "/v1/programs/say-no-with-grace", "", ""},
		{"free-access claim", "POST", "/v1/programs/say-no-with-grace/free-access",
			`{"email":"ana@example.com","name":"Ana","disclaimer_accepted":true,"marketing_consent":false}`, ""},
		{"portal lesson", "GET", "/v1/portal/lessons/" + uuid.NewString(), "", "some-token"},
		{"coach route", "GET", "/v1/admin/programs", "", "some-token"},
		{"login link", "POST", "/v1/portal/login-links", `{"email":"ana@example.com"}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 10 {
				req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
				if tc.body != "" {
					req.Header.Set("Content-Type", "application/json")
				}
				if tc.token != "" {
					req.Header.Set("Authorization", "Bearer "+tc.token)
				}
				rec := httptest.NewRecorder()
				e.ServeHTTP(rec, req)
				if rec.Code != http.StatusServiceUnavailable {
					t.Fatalf("status %d, want 503: %s", rec.Code, rec.Body)
				}
				var p apitest.Problem
				if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Code != "service_unavailable" {
					t.Fatalf("body %s (%v), want code service_unavailable", rec.Body, err)
				}
				if got := rec.Header().Get("Retry-After"); got != "5" {
					t.Fatalf("Retry-After %q, want 5", got)
				}
			}
		})
	}
	if n := sink.errorLines(); n != 1 {
		t.Errorf("%d ERROR lines for 50 failed requests, want 1:\n%s", n, sink.buf.String())
	}
}

// A cursor is opaque to clients, so a forged one is a 400, even when it
// decodes: a position outside the int4 column must never reach Postgres.
func TestForgedCursorIsRefused(t *testing.T) {
	env := apitest.NewEnv(t)
	_, tok := env.Coach(t, "admin@example.com", people.RoleAdmin)
	prog := env.Program(t, "p", catalog.ProgramPublished, false)
	env.Lesson(t, prog.ID, "One", true, false, 0)
	forged := func(v map[string]any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	id := uuid.NewString()
	for _, tc := range []struct {
		name   string
		cursor string
	}{
		{"position past int4", forged(map[string]any{"i": id, "p": 2147483648})},
		{"negative position", forged(map[string]any{"i": id, "p": -1})},
		{"no id", forged(map[string]any{"p": 1})},
		{"not base64", "not*base64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env.Do(t, "GET", "/v1/admin/programs/"+prog.ID.String()+"/lessons?cursor="+tc.cursor, nil,
				apitest.Token(tok)).ExpectProblem(t, 400, "invalid_cursor")
		})
	}
}

// A client that hangs up mid-request (a load generator stopping, a phone
// losing signal) is logged as 499 at info, not as a server error.
func TestClientGoneIs499NotAnError(t *testing.T) {
	env := apitest.NewEnv(t)
	var sink lockedLog
	e := api.New(api.Config{Service: env.Svc, Log: slog.New(slog.NewJSONHandler(&sink.buf, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequest("GET", "/v1/programs/say-no-with-grace", nil).WithContext(ctx)
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	if rec.Code != 499 {
		t.Fatalf("status %d, want 499", rec.Code)
	}
	if n := sink.errorLines(); n != 0 {
		t.Errorf("%d ERROR lines for a client that left:\n%s", n, sink.buf.String())
	}
	if !strings.Contains(sink.buf.String(), `"status":499`) {
		t.Errorf("access log does not record the 499:\n%s", sink.buf.String())
	}
}

// Text that PostgreSQL cannot store (NUL, invalid UTF-8) or that is never
// legitimate in a form (control characters) is refused before any handler
// runs, naming the field: a 4xx the client can act on, never a 500.
func TestTextGate(t *testing.T) {
	env := apitest.NewEnv(t)
	_, admin := env.Coach(t, "admin@example.com", people.RoleAdmin)
	_, ana := env.Participant(t, "ana@example.com")
	prog := env.Program(t, "say-no", catalog.ProgramPublished, true)
	claim := func(name string) string {
		b, _ := json.Marshal(map[string]any{"email": "x@example.com", "name": name, "disclaimer_accepted": true})
		return string(b)
	}
	for _, tc := range []struct {
		name, method, path string
		body               any
		token              string
		status             int
		code, field        string
	}{
		{"NUL in a claim's name", "POST", "/v1/programs/" + prog.Slug + "/free-access", claim("An\x00a"), "", 422, "validation_failed", "name"},
		{"escape in a claim's name", "POST", "/v1/programs/" + prog.Slug + "/free-access",
			`{"email":"x@example.com","name":"An\u0000a","disclaimer_accepted":true}`, "", 422, "validation_failed", "name"},
		{"bell in a claim's name", "POST", "/v1/programs/" + prog.Slug + "/free-access", claim("An\aa"), "", 422, "validation_failed", "name"},
		{"NUL in a login email", "POST", "/v1/auth/login", `{"email":"a\u0000@example.com","password":"x"}`, "", 422, "validation_failed", "email"},
		{"NUL in a portal name", "PATCH", "/v1/portal/me", `{"name":"A\u0000"}`, ana, 422, "validation_failed", "name"},
		{"invalid UTF-8 body", "POST", "/v1/portal/login-links", []byte("{\"email\":\"\xff@example.com\"}"), "", 400, "invalid_text", ""},
		{"NUL in a path segment", "DELETE", "/v1/admin/suppressions/a%00b", nil, admin, 400, "invalid_text", "email"},
		{"NUL as a slug", "GET", "/v1/portal/programs/%00/lessons", nil, ana, 400, "invalid_text", "slug"},
		{"invalid UTF-8 in a query", "GET", "/v1/admin/participants?q=%ff", nil, admin, 400, "invalid_text", "q"},
		{"line break in a query", "GET", "/v1/admin/participants?q=a%0Ab", nil, admin, 400, "invalid_text", "q"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []apitest.Option
			if tc.token != "" {
				opts = append(opts, apitest.Token(tc.token))
			}
			p := env.Do(t, tc.method, tc.path, tc.body, opts...).ExpectProblem(t, tc.status, tc.code)
			if tc.field == "" {
				return
			}
			for _, f := range p.Errors {
				if f.Field == tc.field {
					return
				}
			}
			t.Errorf("errors %+v do not name %s", p.Errors, tc.field)
		})
	}
	// The refusals wrote nothing.
	if n := env.Count(t, "participants"); n != 1 {
		t.Errorf("%d participants, want only Ana", n)
	}
}

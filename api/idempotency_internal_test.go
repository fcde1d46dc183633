package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/modelstest"
)

// idemServer is a tiny API with one idempotent route whose handler counts
// its runs and answers with something that differs on every run, so a
// replay is told apart from a second run.
type idemServer struct {
	e    *echo.Echo
	keys func() int64 // rows in idempotency_keys
	runs atomic.Int64
	// answer decides the response of run n.
	answer func(c echo.Context, n int64) error
}

func newIdemServer(t *testing.T) *idemServer {
	t.Helper()
	svc, _, db := modelstest.NewService(t)
	h := &handlers{svc: svc, log: slog.New(slog.DiscardHandler), validator: newValidator()}
	s := &idemServer{e: echo.New()}
	s.e.HTTPErrorHandler = errorHandler(h.log)
	s.answer = func(c echo.Context, n int64) error {
		return c.JSON(http.StatusCreated, map[string]any{"run": n, "path": c.Param("id")})
	}
	s.e.POST("/things/:id", func(c echo.Context) error {
		return s.answer(c, s.runs.Add(1))
	}, h.idempotent("test"))
	s.keys = func() int64 {
		var n int64
		if err := db.Table("idempotency_keys").Count(&n).Error; err != nil {
			t.Fatalf("count: %v", err)
		}
		return n
	}
	return s
}

type idemResponse struct {
	status int
	header http.Header
	body   string
}

func (s *idemServer) post(path, body string, headers ...string) idemResponse {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	s.e.ServeHTTP(rec, req)
	return idemResponse{rec.Code, rec.Header(), rec.Body.String()}
}

func problemCode(t *testing.T, r idemResponse) string {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want problem+json; body %s", ct, r.body)
	}
	var p struct{ Code string }
	if err := json.Unmarshal([]byte(r.body), &p); err != nil {
		t.Fatal(err)
	}
	return p.Code
}

func TestIdempotentReplaysTheFirstAnswer(t *testing.T) {
	s := newIdemServer(t)
	first := s.post("/things/a", `{"x":1}`, "Idempotency-Key", "key-1")
	if first.status != http.StatusCreated || first.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first = %+v", first)
	}
	for range 3 {
		again := s.post("/things/a", `{"x":1}`, "Idempotency-Key", "key-1")
		if again.status != first.status || again.body != first.body {
			t.Fatalf("repeat = %d %s, want %d %s", again.status, again.body, first.status, first.body)
		}
		if again.header.Get("Idempotent-Replayed") != "true" || !strings.HasPrefix(again.header.Get("Content-Type"), "application/json") {
			t.Fatalf("repeat headers = %v", again.header)
		}
	}
	if n := s.runs.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}

	// The key is bound to the request: another body, path or caller is
	// refused, and does not run.
	for _, tc := range []struct {
		name, path, body string
		headers          []string
	}{
		{"other body", "/things/a", `{"x":2}`, nil},
		{"other path", "/things/b", `{"x":1}`, nil},
		{"other caller", "/things/a", `{"x":1}`, []string{"Authorization", "Bearer someone-else"}},
	} {
		r := s.post(tc.path, tc.body, append([]string{"Idempotency-Key", "key-1"}, tc.headers...)...)
		if r.status != http.StatusUnprocessableEntity || problemCode(t, r) != "idempotency_key_reused" {
			t.Errorf("%s: %d %s, want 422 idempotency_key_reused", tc.name, r.status, r.body)
		}
	}
	if n := s.runs.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}

	// Another key is another request.
	if r := s.post("/things/a", `{"x":1}`, "Idempotency-Key", "key-2"); r.status != http.StatusCreated || r.body == first.body {
		t.Fatalf("new key = %d %s, want a fresh 201", r.status, r.body)
	}
}

func TestIdempotentWithoutHeaderAlwaysRuns(t *testing.T) {
	s := newIdemServer(t)
	a, b := s.post("/things/a", `{}`), s.post("/things/a", `{}`)
	if a.status != 201 || b.status != 201 || a.body == b.body || s.runs.Load() != 2 {
		t.Fatalf("runs = %d, answers %s / %s; want two distinct runs", s.runs.Load(), a.body, b.body)
	}
	if n := s.keys(); n != 0 {
		t.Fatalf("%d keys stored without a header", n)
	}
}

func TestIdempotentRejectsBadKeys(t *testing.T) {
	s := newIdemServer(t)
	for name, headers := range map[string][]string{
		"empty":    {"Idempotency-Key", ""},
		"too long": {"Idempotency-Key", strings.Repeat("k", 256)},
		"control":  {"Idempotency-Key", "a\x01b"},
		"two keys": {"Idempotency-Key", "a", "Idempotency-Key", "b"},
	} {
		r := s.post("/things/a", `{}`, headers...)
		if r.status != http.StatusBadRequest || problemCode(t, r) != "invalid_idempotency_key" {
			t.Errorf("%s: %d %s, want 400 invalid_idempotency_key", name, r.status, r.body)
		}
	}
	if s.runs.Load() != 0 || s.keys() != 0 {
		t.Fatalf("runs = %d, keys = %d; want none", s.runs.Load(), s.keys())
	}
	// 255 characters is still a key.
	if r := s.post("/things/a", `{}`, "Idempotency-Key", strings.Repeat("k", 255)); r.status != http.StatusCreated {
		t.Fatalf("255-char key: %d %s", r.status, r.body)
	}
}

func TestIdempotentKeepsClientErrorsButNotServerErrors(t *testing.T) {
	s := newIdemServer(t)
	var flakyCalls atomic.Int64
	s.answer = func(c echo.Context, n int64) error {
		switch c.Param("id") {
		case "invalid":
			return models.Invalid(models.FieldError{Field: "email", Message: fmt.Sprintf("bad (run %d)", n)})
		case "limited":
			return &models.Error{Kind: models.KindRateLimited, Code: "rate_limited", Message: "slow down"}
		default:
			if flakyCalls.Add(1) == 1 {
				return errors.New("database unreachable")
			}
			return c.JSON(http.StatusCreated, map[string]any{"run": n})
		}
	}

	// A 4xx is the answer to that request: replayed, not re-run.
	first := s.post("/things/invalid", `{}`, "Idempotency-Key", "k-invalid")
	again := s.post("/things/invalid", `{}`, "Idempotency-Key", "k-invalid")
	if first.status != 422 || again.status != 422 || again.body != first.body || again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("4xx: first %d %s, again %d %s", first.status, first.body, again.status, again.body)
	}
	if problemCode(t, again) != "validation_failed" {
		t.Fatal("replayed 4xx lost its problem document")
	}

	// A 5xx is our failure: the retry runs and its success is kept.
	failed := s.post("/things/flaky", `{}`, "Idempotency-Key", "k-flaky")
	retried := s.post("/things/flaky", `{}`, "Idempotency-Key", "k-flaky")
	replayed := s.post("/things/flaky", `{}`, "Idempotency-Key", "k-flaky")
	if failed.status != 500 || retried.status != 201 || replayed.body != retried.body || replayed.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("5xx: %d, then %d %s, then %d %s", failed.status, retried.status, retried.body, replayed.status, replayed.body)
	}

	// A 429 says "later", so later must run again.
	before := s.runs.Load()
	s.post("/things/limited", `{}`, "Idempotency-Key", "k-limited")
	s.post("/things/limited", `{}`, "Idempotency-Key", "k-limited")
	if got := s.runs.Load() - before; got != 2 {
		t.Fatalf("429 ran %d times for two tries, want 2", got)
	}
}

func TestIdempotentConcurrentDuplicatesRunOnce(t *testing.T) {
	s := newIdemServer(t)
	release := make(chan struct{})
	started := make(chan struct{})
	s.answer = func(c echo.Context, n int64) error {
		close(started) // a second run would panic here: the test's own check
		<-release
		return c.JSON(http.StatusCreated, map[string]any{"run": n})
	}
	const dup = 10
	var wg sync.WaitGroup
	results := make([]idemResponse, dup)
	first := make(chan idemResponse, 1)
	go func() { first <- s.post("/things/a", `{"x":1}`, "Idempotency-Key", "race") }()
	<-started
	for i := range dup {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = s.post("/things/a", `{"x":1}`, "Idempotency-Key", "race")
		}()
	}
	wg.Wait()
	close(release)
	winner := <-first
	if winner.status != http.StatusCreated {
		t.Fatalf("first = %d %s", winner.status, winner.body)
	}
	for _, r := range results {
		if r.status != http.StatusConflict || problemCode(t, r) != "idempotency_in_progress" {
			t.Errorf("duplicate while running = %d %s, want 409 idempotency_in_progress", r.status, r.body)
		}
	}
	after := s.post("/things/a", `{"x":1}`, "Idempotency-Key", "race")
	if after.body != winner.body || s.runs.Load() != 1 {
		t.Fatalf("after: %s (runs %d), want the winner's %s", after.body, s.runs.Load(), winner.body)
	}
}

func TestIdempotentPanicFreesTheKey(t *testing.T) {
	s := newIdemServer(t)
	s.e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("panic: %v", r)
				}
			}()
			return next(c)
		}
	})
	s.answer = func(c echo.Context, n int64) error {
		if n == 1 {
			panic("boom")
		}
		return c.JSON(http.StatusCreated, map[string]any{"run": n})
	}
	if r := s.post("/things/a", `{}`, "Idempotency-Key", "p"); r.status != 500 {
		t.Fatalf("panicking run = %d", r.status)
	}
	if r := s.post("/things/a", `{}`, "Idempotency-Key", "p"); r.status != 201 || !bytes.Contains([]byte(r.body), []byte(`"run":2`)) {
		t.Fatalf("retry after panic = %d %s, want run 2", r.status, r.body)
	}
}

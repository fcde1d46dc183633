package openapitest

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

const (
	id1         = "5f0c8f0e-7a52-4c1b-8d0e-8d8f2b1f6c3a"
	id2         = "9d1e4a63-2b7c-4f0a-b5d8-61c2e3f4a5b6"
	coachJSON   = `{"id":"0b6b1c7e-3f5a-4c8e-9a37-2f7d9d4b1a10","email":"grace@example.com","name":"Grace Hart","role":"admin","active":true,"created_at":"2025-03-01T09:00:00Z"}`
	programJSON = `{"id":"5f0c8f0e-7a52-4c1b-8d0e-8d8f2b1f6c3a","slug":"no-contact-reset","title":"The No-Contact Reset","summary":"","description":"# Welcome","status":"draft","free_access_until":null,"price_cents":0,"currency":"EUR","lead_coach_id":null,"created_at":"2025-03-01T09:00:00Z","updated_at":"2025-03-01T09:00:00Z"}`
)

// graceChecker checks against Grace's own contract: the richest document at
// hand, and the one the API tests depend on this package to enforce.
func graceChecker(t *testing.T) *Checker {
	t.Helper()
	spec, err := os.ReadFile("../../api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(spec)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newRequest(method, url, body, token string) *http.Request {
	r := httptest.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return r
}

func jsonHeader(contentType string) http.Header {
	h := http.Header{}
	h.Set("Content-Type", contentType)
	return h
}

// exchange is one recorded request and response, valid unless a test changes it.
type exchange struct {
	method, url, reqBody, token string
	status                      int
	contentType                 string
	header                      http.Header
	respBody                    string
}

func (e exchange) check(c *Checker, checkRequest bool) error {
	h := e.header
	if h == nil {
		h = http.Header{}
	}
	if e.contentType != "" {
		h.Set("Content-Type", e.contentType)
	}
	return c.Check(newRequest(e.method, e.url, e.reqBody, e.token), []byte(e.reqBody), e.status, h, []byte(e.respBody), checkRequest)
}

// wantViolation fails unless the checker refused the exchange, and logs
// why it did, so a refusal for the wrong reason shows in -v.
func wantViolation(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("Check passed; want an error")
	}
	t.Log(err)
}

func loginExchange() exchange {
	return exchange{
		method:      http.MethodPost,
		url:         "http://127.0.0.1:8080/v1/auth/login",
		reqBody:     `{"email":"grace@example.com","password":"correct horse battery"}`,
		status:      http.StatusOK,
		contentType: "application/json; charset=UTF-8",
		respBody:    `{"token":"opaque-token","expires_at":"2025-03-31T09:00:00Z","coach":` + coachJSON + `}`,
	}
}

func TestValidExchangesPass(t *testing.T) {
	c := graceChecker(t)
	retry := http.Header{}
	retry.Set("Retry-After", "30")
	cases := map[string]exchange{
		"login":      loginExchange(),
		"logout 204": {method: http.MethodPost, url: "/v1/auth/logout", token: "t", status: http.StatusNoContent},
		"list with nullable fields and query": {
			method: http.MethodGet, url: "/v1/admin/programs?status=draft&limit=10", token: "t",
			status: http.StatusOK, contentType: "application/json",
			respBody: `{"data":[` + programJSON + `],"next_cursor":null}`,
		},
		"create with defaults omitted": {
			method: http.MethodPost, url: "/v1/admin/programs", token: "t",
			reqBody: `{"slug":"no-contact-reset","title":"The No-Contact Reset","free_access_until":null}`,
			status:  http.StatusCreated, contentType: "application/json", respBody: programJSON,
		},
		"problem with field errors": {
			method: http.MethodPost, url: "/v1/admin/programs", token: "t",
			reqBody: `{"slug":"ok","title":"T"}`,
			status:  http.StatusUnprocessableEntity, contentType: "application/problem+json",
			respBody: `{"type":"https://grace.dev/problems/validation-failed","title":"Unprocessable Entity","status":422,` +
				`"detail":"title: is required","code":"validation_failed","request_id":"abc","errors":[{"field":"title","message":"is required"}]}`,
		},
		"429 with Retry-After": {
			method: http.MethodPost, url: "/v1/portal/login-links", reqBody: `{"email":"jane@example.com"}`,
			status: http.StatusTooManyRequests, contentType: "application/problem+json", header: retry,
			respBody: `{"type":"https://grace.dev/problems/rate-limited","title":"Too Many Requests","status":429,"detail":"Slow down.","code":"rate_limited","retry_after_seconds":30}`,
		},
		"500 through default": {
			method: http.MethodGet, url: "/v1/auth/me", token: "t",
			status: http.StatusInternalServerError, contentType: "application/problem+json",
			respBody: `{"type":"about:blank","title":"Internal Server Error","status":500,"detail":"Something went wrong.","code":"internal_error"}`,
		},
		"portal session by code (oneOf)": {
			method: http.MethodPost, url: "/v1/portal/sessions", reqBody: `{"email":"jane@example.com","code":"042917"}`,
			status: http.StatusCreated, contentType: "application/json",
			respBody: `{"token":"t","expires_at":"2025-03-31T09:00:00Z","participant":{"id":"5f0c8f0e-7a52-4c1b-8d0e-8d8f2b1f6c3a","email":"jane@example.com","name":"Jane","timezone":"Europe/London","created_at":"2025-03-01T09:00:00Z"}}`,
		},
		"lesson locked": {
			method: http.MethodGet, url: "/v1/portal/lessons/5f0c8f0e-7a52-4c1b-8d0e-8d8f2b1f6c3a", token: "t",
			status: http.StatusForbidden, contentType: "application/problem+json",
			respBody: `{"type":"https://grace.dev/problems/lesson-locked","title":"Forbidden","status":403,"detail":"Not yet.","code":"lesson_locked","unlock_at":"2025-03-08T09:00:00Z"}`,
		},
		"docs page": {method: http.MethodGet, url: "/docs", status: http.StatusOK, contentType: "text/html; charset=UTF-8", respBody: "<!DOCTYPE html>"},
		"readyz":    {method: http.MethodGet, url: "/readyz", status: http.StatusOK, contentType: "application/json", respBody: `{"status":"ready","schema_version":1}`},
		"free access": {
			method: http.MethodPost, url: "/v1/programs/no-contact-reset/free-access",
			reqBody: `{"email":"jane@example.com","name":"Jane","marketing_consent":false,"disclaimer_accepted":true}`,
			status:  http.StatusAccepted, contentType: "application/json", respBody: `{"status":"accepted"}`,
		},
		"public program detail": {
			method: http.MethodGet, url: "/v1/programs/no-contact-reset", status: http.StatusOK, contentType: "application/json",
			respBody: `{"id":"` + id1 + `","slug":"no-contact-reset","title":"T","summary":"S","description":"D","price_cents":4900,"currency":"EUR",` +
				`"free_access_until":"2025-04-01T00:00:00Z","free_access_open":true,` +
				`"lessons":[{"id":"` + id2 + `","position":1,"title":"L","free_preview":true,"unlock_offset_days":0,"duration_seconds":null}],"crisis_resources":null}`,
		},
		"admin lesson": {
			method: http.MethodPatch, url: "/v1/admin/lessons/" + id2, token: "t", reqBody: `{"media_url":null,"published":true}`,
			status: http.StatusOK, contentType: "application/json",
			respBody: `{"id":"` + id2 + `","program_id":"` + id1 + `","position":2,"title":"L","body":"","media_url":"https://media.example.com/a.mp4",` +
				`"duration_seconds":540,"free_preview":false,"unlock_offset_days":7,"published":true,"reflection_prompts":["What did you notice?"],"created_at":"2025-03-01T09:00:00Z","updated_at":"2025-03-01T09:00:00Z"}`,
		},
		"participant detail": {
			method: http.MethodGet, url: "/v1/admin/participants/" + id1, token: "t", status: http.StatusOK, contentType: "application/json",
			respBody: `{"id":"` + id1 + `","email":"jane@example.com","name":"Jane","timezone":"Europe/London","created_at":"2025-03-01T09:00:00Z",` +
				`"grants":[{"id":"` + id2 + `","program_id":"` + id1 + `","program_slug":"no-contact-reset","program_title":"T","source":"free_access",` +
				`"starts_at":"2025-03-01T09:00:00Z","revoked_at":null,"created_at":"2025-03-01T09:00:00Z"}],` +
				`"consents":[{"id":"` + id2 + `","kind":"disclaimer","text_version":"v1","granted":true,"program_id":"` + id1 + `","ip":"203.0.113.7","user_agent":null,"created_at":"2025-03-01T09:00:00Z"}],` +
				`"progress":[{"program_id":"` + id1 + `","lesson_id":"` + id2 + `","completed_at":"2025-03-02T09:00:00Z"}]}`,
		},
		"portal lessons": {
			method: http.MethodGet, url: "/v1/portal/programs/no-contact-reset/lessons", token: "t", status: http.StatusOK, contentType: "application/json",
			respBody: `{"data":[{"id":"` + id2 + `","title":"L","position":1,"free_preview":false,"locked":true,"unlock_at":"2025-03-08T09:00:00Z","completed":false,"duration_seconds":null}],"next_cursor":"b3BhcXVl","crisis_resources":{"body":"Call **112**.","body_html":"<p>Call <strong>112</strong>.</p>","updated_at":"2025-03-01T09:00:00Z"}}`,
		},
		"portal lesson": {
			method: http.MethodGet, url: "/v1/portal/lessons/" + id2, token: "t", status: http.StatusOK, contentType: "application/json",
			respBody: `{"id":"` + id2 + `","program_id":"` + id1 + `","position":1,"title":"L","body":"# Hi","body_html":"<h1>Hi</h1>","media_url":null,` +
				`"duration_seconds":null,"free_preview":false,"unlock_offset_days":0,"published":true,"locked":false,"unlock_at":"2025-03-01T09:00:00Z",` +
				`"completed":true,"reflection_prompts":[{"markdown":"What did you notice?","html":"<p>What did you notice?</p>\n"}],"created_at":"2025-03-01T09:00:00Z","updated_at":"2025-03-01T09:00:00Z","crisis_resources":{"body":"Call **112**.","body_html":"<p>Call <strong>112</strong>.</p>","updated_at":"2025-03-01T09:00:00Z"}}`,
		},
		"portal programs": {
			method: http.MethodGet, url: "/v1/portal/programs?limit=1&cursor=abc", token: "t", status: http.StatusOK, contentType: "application/json",
			respBody: `{"data":[{"id":"` + id1 + `","slug":"no-contact-reset","title":"T","summary":"S","access_starts_at":"2025-03-01T09:00:00Z","lessons_total":7,"lessons_completed":2}],"next_cursor":null,"crisis_resources":null}`,
		},
	}
	for name, e := range cases {
		t.Run(name, func(t *testing.T) {
			if err := e.check(c, true); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestResponseViolationsFail(t *testing.T) {
	c := graceChecker(t)
	cases := map[string]func(*exchange){
		"undocumented field": func(e *exchange) {
			e.respBody = strings.Replace(e.respBody, `"token":`, `"refresh_token":"x","token":`, 1)
		},
		"undocumented nested field": func(e *exchange) {
			e.respBody = strings.Replace(e.respBody, `"role":"admin"`, `"role":"admin","password_hash":"x"`, 1)
		},
		"wrong type":             func(e *exchange) { e.respBody = strings.Replace(e.respBody, `"active":true`, `"active":"yes"`, 1) },
		"missing required field": func(e *exchange) { e.respBody = strings.Replace(e.respBody, `"active":true,`, ``, 1) },
		"null for non-nullable":  func(e *exchange) { e.respBody = strings.Replace(e.respBody, `"name":"Grace Hart"`, `"name":null`, 1) },
		"bad uuid format":        func(e *exchange) { e.respBody = strings.Replace(e.respBody, `"0b6b1c7e-`, `"not-a-uuid-`, 1) },
		"bad date-time format": func(e *exchange) {
			e.respBody = strings.Replace(e.respBody, `"2025-03-31T09:00:00Z"`, `"31/03/2025"`, 1)
		},
		"enum violation":      func(e *exchange) { e.respBody = strings.Replace(e.respBody, `"role":"admin"`, `"role":"owner"`, 1) },
		"undocumented status": func(e *exchange) { e.status = http.StatusNotFound },
		"4xx only covered by default": func(e *exchange) {
			e.status, e.contentType = http.StatusTeapot, "application/problem+json"
			e.respBody = `{"type":"about:blank","title":"I'm a teapot","status":418,"detail":"No.","code":"teapot"}`
		},
		"undocumented content type": func(e *exchange) { e.contentType = "text/plain" },
		"empty body":                func(e *exchange) { e.respBody = "" },
		"not JSON":                  func(e *exchange) { e.respBody = "{" },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			e := loginExchange()
			mutate(&e)
			wantViolation(t, e.check(c, true))
		})
	}

	t.Run("body on a 204", func(t *testing.T) {
		e := exchange{method: http.MethodPost, url: "/v1/auth/logout", token: "t", status: http.StatusNoContent, contentType: "application/json", respBody: `{}`}
		wantViolation(t, e.check(c, true))
	})
	t.Run("429 without Retry-After", func(t *testing.T) {
		e := exchange{
			method: http.MethodPost, url: "/v1/auth/login", reqBody: `{"email":"a@example.com","password":"p"}`,
			status: http.StatusTooManyRequests, contentType: "application/problem+json",
			respBody: `{"type":"about:blank","title":"Too Many Requests","status":429,"detail":"Slow down.","code":"rate_limited"}`,
		}
		wantViolation(t, e.check(c, true))
	})
}

func TestUnknownOperationsFail(t *testing.T) {
	c := graceChecker(t)
	for name, e := range map[string]exchange{
		"unknown path":   {method: http.MethodGet, url: "/v1/nope", status: http.StatusOK, contentType: "application/json", respBody: `{}`},
		"unknown method": {method: http.MethodDelete, url: "/v1/auth/login", status: http.StatusNoContent},
		"trailing slash": {method: http.MethodGet, url: "/v1/programs/", status: http.StatusOK, contentType: "application/json", respBody: `{"data":[],"next_cursor":null}`},
	} {
		t.Run(name, func(t *testing.T) {
			// Even without request checking: the operation must exist.
			wantViolation(t, e.check(c, false))
		})
	}
}

func TestRequestCheckingIsOptional(t *testing.T) {
	c := graceChecker(t)
	badRequests := map[string]exchange{
		"unknown field": {method: http.MethodPost, url: "/v1/auth/login", reqBody: `{"email":"a@example.com","password":"p","remember":true}`},
		"missing field": {method: http.MethodPost, url: "/v1/auth/login", reqBody: `{"email":"a@example.com"}`},
		"bad query":     {method: http.MethodGet, url: "/v1/admin/programs?limit=500", token: "t"},
		"no token":      {method: http.MethodGet, url: "/v1/admin/programs"},
		"oneOf neither": {method: http.MethodPost, url: "/v1/portal/sessions", reqBody: `{"token":"x","code":"123456"}`},
	}
	problem := `{"type":"about:blank","title":"Bad Request","status":400,"detail":"Nope.","code":"bad_request"}`
	for name, e := range badRequests {
		t.Run(name, func(t *testing.T) {
			e.status, e.contentType, e.respBody = http.StatusBadRequest, "application/problem+json", problem
			if name == "no token" {
				e.status, e.respBody = http.StatusUnauthorized, strings.Replace(strings.Replace(problem, "400", "401", 1), "bad_request", "unauthorized", 1)
			}
			if err := e.check(c, true); err == nil {
				t.Fatal("Check with request checking passed; want an error")
			} else {
				t.Log(err)
			}
			if err := e.check(c, false); err != nil {
				t.Fatalf("Check without request checking: %v", err)
			}
		})
	}
}

func TestCheckIsSafeForConcurrentUse(t *testing.T) {
	c := graceChecker(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Go(func() {
			e := loginExchange()
			if i%2 == 1 {
				e.respBody = strings.Replace(e.respBody, `"active":true`, `"active":1`, 1)
			}
			err := e.check(c, true)
			if (err == nil) != (i%2 == 0) {
				errs <- errors.New("wrong verdict under concurrency")
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestResendRequests(t *testing.T) {
	path := filepath.Join("..", "..", "..", "shared", "specs", "resend.openapi.yaml")
	spec, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("Resend spec not found at %s (it lives in shared/, beside the repository, not in it)", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(spec)
	if err != nil {
		t.Fatal(err)
	}
	send := func(body string) error {
		// The spec's server is https://api.resend.com; tests talk to a fake.
		r := newRequest(http.MethodPost, "http://127.0.0.1:54321/emails", body, "re_test_key")
		r.Header.Set("Idempotency-Key", "outbox-42")
		return c.CheckRequestOnly(r, []byte(body))
	}
	if err := send(`{"from":"Grace <hello@grace.dev>","to":["jane@example.com"],"subject":"Your sign-in link","html":"<p>Hi</p>","text":"Hi"}`); err != nil {
		t.Fatalf("valid send: %v", err)
	}
	if err := send(`{"from":"Grace <hello@grace.dev>","subject":"Your sign-in link","html":"<p>Hi</p>"}`); err == nil {
		t.Fatal("send without `to` passed; want an error")
	} else {
		t.Log(err)
	}
	if err := c.Check(newRequest(http.MethodPost, "http://127.0.0.1:54321/emails", `{}`, "k"), []byte(`{}`),
		http.StatusOK, jsonHeader("application/json"), []byte(`{"id":"49a3999c-0ce1-4ea6-ab68-afcd6dc2e794"}`), false); err != nil {
		t.Fatalf("valid Resend response: %v", err)
	}
}

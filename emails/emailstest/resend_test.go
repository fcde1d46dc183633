package emailstest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// recordingTB captures what the fake reports, so these tests can assert that
// it catches a bad request instead of failing themselves.
type recordingTB struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recordingTB) errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errs...)
}

func post(t *testing.T, f *Resend, path, auth, key string, body any) (int, map[string]any) {
	t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, f.URL+path, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

var validEmail = map[string]any{
	"from": "Grace <hello@grace.example>", "to": []string{"ana@example.com"},
	"subject": "Hi", "html": "<p>Hi</p>", "text": "Hi",
}

func TestFakeResendChecksRequestsAgainstTheSpec(t *testing.T) {
	rec := &recordingTB{TB: t}
	f := NewResend(rec)
	if !f.SpecChecked() {
		t.Skip("Resend's OpenAPI description is absent; nothing to check against")
	}
	tests := []struct {
		name string
		path string
		body any
	}{
		{"missing subject", "/emails", map[string]any{"from": "hello@grace.example", "to": "ana@example.com"}},
		{"to is a number", "/emails", map[string]any{"from": "hello@grace.example", "to": 42, "subject": "Hi"}},
		{"tags are not objects", "/emails", map[string]any{"from": "hello@grace.example", "to": "ana@example.com", "subject": "Hi", "tags": []string{"x"}}},
		{"unknown path", "/email", validEmail},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(rec.errors())
			status, _ := post(t, f, tc.path, "Bearer "+f.APIKey, "", tc.body)
			if status < 400 {
				t.Errorf("status %d for a request the spec forbids", status)
			}
			if len(rec.errors()) == before {
				t.Errorf("the fake did not report the violation")
			}
		})
	}
	if n := len(f.Delivered()); n != 0 {
		t.Fatalf("delivered %d invalid emails", n)
	}

	before := len(rec.errors())
	if status, out := post(t, f, "/emails", "Bearer "+f.APIKey, "k-valid", validEmail); status != 200 || out["id"] == "" {
		t.Fatalf("valid request: %d %v", status, out)
	}
	if errs := rec.errors()[before:]; len(errs) != 0 {
		t.Fatalf("valid request reported: %v", errs)
	}
}

func TestFakeResendAuthenticates(t *testing.T) {
	rec := &recordingTB{TB: t}
	f := NewResend(rec)
	tests := []struct {
		auth string
		want int
		// The spec requires a bearer Authorization header, so with the spec
		// loaded the fake reports these as client bugs before answering.
		specRejects bool
	}{
		{"", http.StatusUnauthorized, true},
		{"Basic " + f.APIKey, http.StatusForbidden, true},
		{"Bearer re_wrong", http.StatusForbidden, false},
		{"Bearer " + f.APIKey, http.StatusOK, false},
	}
	for _, tc := range tests {
		before := len(rec.errors())
		status, _ := post(t, f, "/emails", tc.auth, "", validEmail)
		reported := len(rec.errors()) > before
		if f.SpecChecked() && tc.specRejects {
			if !reported || status != http.StatusUnprocessableEntity {
				t.Errorf("Authorization %q: status %d, reported %v; want the spec violation reported", tc.auth, status, reported)
			}
			continue
		}
		if status != tc.want || reported {
			t.Errorf("Authorization %q: status %d (reported %v), want %d", tc.auth, status, reported, tc.want)
		}
	}
	if n := len(f.Delivered()); n != 1 {
		t.Fatalf("delivered %d, want only the authenticated one", n)
	}
}

func TestFakeResendIdempotency(t *testing.T) {
	f := NewResend(t)
	auth := "Bearer " + f.APIKey

	_, first := post(t, f, "/emails", auth, "key-1", validEmail)
	status, again := post(t, f, "/emails", auth, "key-1", validEmail)
	if status != 200 || again["id"] != first["id"] {
		t.Fatalf("repeat: %d %v, want the first id %v", status, again, first["id"])
	}
	changed := map[string]any{"from": "hello@grace.example", "to": "ana@example.com", "subject": "Other"}
	if status, out := post(t, f, "/emails", auth, "key-1", changed); status != http.StatusConflict || out["name"] != "invalid_idempotent_request" {
		t.Fatalf("same key, other payload: %d %v", status, out)
	}
	if status, _ := post(t, f, "/emails", auth, "key-2", validEmail); status != 200 {
		t.Fatalf("new key: %d", status)
	}
	if n := len(f.Delivered()); n != 2 {
		t.Fatalf("delivered %d, want 2 (one per key)", n)
	}
}

func TestFakeResendInjectedFailures(t *testing.T) {
	f := NewResend(t)
	auth := "Bearer " + f.APIKey
	f.FailNext(2, 500)
	f.FailNext(1, 422)
	var got []int
	for range 4 {
		status, _ := post(t, f, "/emails", auth, "key-f", validEmail)
		got = append(got, status)
	}
	if want := []int{500, 500, 422, 200}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("statuses %v, want %v", got, want)
	}
	if n := len(f.Delivered()); n != 1 {
		t.Fatalf("delivered %d, want 1: a failed request records nothing", n)
	}
	if !strings.HasPrefix(f.APIKey, "re_") {
		t.Fatalf("api key %q", f.APIKey)
	}
}

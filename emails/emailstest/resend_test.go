package emailstest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
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
	status, _, out := send(t, f, path, map[string]string{"Authorization": auth, "Idempotency-Key": key}, body)
	return status, out
}

// send posts body as JSON to the fake with the headers that are not "".
func send(t *testing.T, f *Resend, path string, headers map[string]string, body any) (int, http.Header, map[string]any) {
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
	for k, v := range headers {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, resp.Header, out
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

func batchOf(addrs ...string) []map[string]any {
	out := make([]map[string]any, len(addrs))
	for i, a := range addrs {
		out[i] = map[string]any{"from": "Grace <hello@grace.example>", "to": []string{a}, "subject": "Hi", "text": "Hi",
			"tags": []map[string]string{{"name": "delivery_id", "value": fmt.Sprint(i)}}}
	}
	return out
}

func postBatch(t *testing.T, f *Resend, key string, permissive bool, body any) (int, http.Header, map[string]any) {
	t.Helper()
	headers := map[string]string{"Authorization": "Bearer " + f.APIKey, "Idempotency-Key": key}
	if permissive {
		headers["x-batch-validation"] = "permissive"
	}
	return send(t, f, "/emails/batch", headers, body)
}

func TestFakeResendBatch(t *testing.T) {
	f := NewResend(t)
	f.Reject("bad@example.com", "The email address is on a suppression list.")

	status, _, out := postBatch(t, f, "b-1", true, batchOf("a@example.com", "bad@example.com", "c@example.com"))
	if status != 200 {
		t.Fatalf("permissive batch: %d %v", status, out)
	}
	data, _ := out["data"].([]any)
	errs, _ := out["errors"].([]any)
	if len(data) != 2 || len(errs) != 1 {
		t.Fatalf("permissive batch answered %v", out)
	}
	if e := errs[0].(map[string]any); e["index"] != float64(1) || !strings.Contains(e["message"].(string), "suppression") {
		t.Fatalf("per-email error %v", e)
	}

	// The same key and payload replays the answer and delivers nothing new;
	// another payload under the key is a 409.
	status, _, again := postBatch(t, f, "b-1", true, batchOf("a@example.com", "bad@example.com", "c@example.com"))
	if status != 200 || fmt.Sprint(again) != fmt.Sprint(out) {
		t.Fatalf("replay: %d %v, want %v", status, again, out)
	}
	if status, _, _ := postBatch(t, f, "b-1", true, batchOf("a@example.com")); status != http.StatusConflict {
		t.Fatalf("same key, other batch: %d, want 409", status)
	}
	if n := len(f.Delivered()); n != 2 {
		t.Fatalf("delivered %d, want 2", n)
	}
	calls := f.Calls()
	if !calls[1].Replayed || calls[0].Replayed || len(calls[1].Tags) != 3 || calls[1].Tags[2]["delivery_id"] != "2" {
		t.Fatalf("calls %+v", calls)
	}

	// Strict (the default) refuses the whole batch for one bad email.
	if status, _, out := postBatch(t, f, "b-2", false, batchOf("a@example.com", "bad@example.com")); status != http.StatusUnprocessableEntity {
		t.Fatalf("strict batch with a bad email: %d %v", status, out)
	}
	if status, _, _ := postBatch(t, f, "b-3", true, batchOf()); status < 400 {
		t.Fatalf("empty batch: %d", status)
	}
	if n := len(f.Delivered()); n != 2 {
		t.Fatalf("delivered %d after refusals, want 2", n)
	}
}

func TestFakeResendBatchChecksEachEmailAgainstTheSpec(t *testing.T) {
	rec := &recordingTB{TB: t}
	f := NewResend(rec)
	if !f.SpecChecked() {
		t.Skip("Resend's OpenAPI description is absent; nothing to check against")
	}
	bad := batchOf("a@example.com", "b@example.com")
	delete(bad[1], "subject")
	if status, _, _ := postBatch(t, f, "s-1", true, bad); status != http.StatusUnprocessableEntity || len(rec.errors()) == 0 {
		t.Fatalf("a batch with an email missing its subject: %d, reported %v", status, rec.errors())
	}
}

func TestFakeResendRateLimitAndRetryAfter(t *testing.T) {
	f := NewResend(t)
	f.RateLimitNext(1, "2")
	status, h, _ := postBatch(t, f, "r-1", true, batchOf("a@example.com", "b@example.com"))
	if status != http.StatusTooManyRequests || h.Get("Retry-After") != "2" {
		t.Fatalf("injected 429: %d Retry-After %q", status, h.Get("Retry-After"))
	}

	f.SetRateLimit(5, 1)
	var limited int
	for i := range 4 {
		status, h, _ := postBatch(t, f, fmt.Sprint("r-", i+2), true, batchOf("a@example.com", "b@example.com"))
		if status == http.StatusTooManyRequests {
			limited++
			if h.Get("Retry-After") == "" {
				t.Errorf("a 429 without Retry-After")
			}
		}
	}
	if limited < 2 {
		t.Fatalf("%d of 4 back-to-back requests limited at 5/s with a burst of 1; want at least 2", limited)
	}
}

func TestFakeResendConcurrentKeyAndLatency(t *testing.T) {
	f := NewResend(t)
	f.SetLatency(200 * time.Millisecond)
	var wg sync.WaitGroup
	statuses := make([]int, 2)
	start := time.Now()
	for i := range 2 {
		wg.Go(func() {
			statuses[i], _, _ = postBatch(t, f, "same", true, batchOf("a@example.com", "b@example.com"))
		})
	}
	wg.Wait()
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Fatalf("latency ignored: %s", took)
	}
	slices.Sort(statuses)
	if statuses[0] != 200 || statuses[1] != http.StatusConflict {
		t.Fatalf("two concurrent requests under one key: %v, want one 200 and one 409", statuses)
	}
	if n := len(f.Delivered()); n != 2 {
		t.Fatalf("delivered %d, want 2", n)
	}
}

// Package emailstest holds test doubles for the emails package: a fake
// Resend API that checks every request against Resend's published OpenAPI
// description and behaves like Resend where delivery correctness depends on
// it (authentication, idempotency keys, error statuses).
package emailstest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
)

// Email is one message the fake delivered.
type Email struct {
	ID             string
	IdempotencyKey string
	From           string
	To             []string
	Subject        string
	HTML           string
	Text           string
	Tags           map[string]string
}

// Call is one request the fake answered, delivered or not.
type Call struct {
	IdempotencyKey string
	Status         int
	ID             string // the email id answered, on success
}

type faultKind int

const (
	faultStatus       faultKind = iota // answer with a status, deliver nothing
	faultHang                          // never answer, deliver nothing
	faultDropResponse                  // deliver, then never answer
)

type fault struct {
	kind   faultKind
	status int
}

type keyState struct {
	id      string
	payload string
}

// Resend is a fake of Resend's POST /emails.
type Resend struct {
	// URL is the base URL to give emails.NewResendSender.
	URL string
	// APIKey is the only key the fake accepts.
	APIKey string

	t    testing.TB
	srv  *httptest.Server
	spec *specChecker
	stop chan struct{}

	mu        sync.Mutex
	delivered []Email
	calls     []Call
	keys      map[string]*keyState
	faults    []fault
}

// NewResend starts a fake Resend for the test and stops it when the test
// ends. When Resend's OpenAPI description is present beside the repository
// every request is checked against it and a violation fails the test; when
// it is absent that check alone is skipped, with a note in the test log.
func NewResend(t testing.TB) *Resend {
	t.Helper()
	spec, missing, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	if missing != "" {
		t.Log(missing)
	}
	f := &Resend{
		APIKey: "re_test_" + strings.ReplaceAll(uuid.NewString(), "-", ""),
		t:      t,
		spec:   spec,
		stop:   make(chan struct{}),
		keys:   map[string]*keyState{},
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	f.URL = f.srv.URL
	t.Cleanup(func() {
		close(f.stop) // release hanging handlers, or Close waits for them
		f.srv.Close()
	})
	return f
}

// SpecChecked reports whether requests are checked against the OpenAPI
// description (false when the file is absent).
func (f *Resend) SpecChecked() bool { return f.spec != nil }

// FailNext makes the next n requests fail with status (500, 422, 429...)
// before anything is delivered or any idempotency key is recorded.
func (f *Resend) FailNext(n, status int) {
	f.addFaults(n, fault{kind: faultStatus, status: status})
}

// HangNext makes the next n requests hang without delivering until the
// client gives up: a timeout before Resend did anything.
func (f *Resend) HangNext(n int) { f.addFaults(n, fault{kind: faultHang}) }

// DropResponseNext makes the next n requests deliver and record their
// idempotency key, then hang until the client gives up: the email went out
// but the client never heard, the case idempotency keys exist for.
func (f *Resend) DropResponseNext(n int) { f.addFaults(n, fault{kind: faultDropResponse}) }

func (f *Resend) addFaults(n int, ft fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		f.faults = append(f.faults, ft)
	}
}

// Delivered returns the emails delivered so far, in order.
func (f *Resend) Delivered() []Email {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.delivered)
}

// Calls returns every request answered (or hung) so far, in order.
func (f *Resend) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// sendRequest is the part of Resend's SendEmailRequest the fake reads.
type sendRequest struct {
	From    string          `json:"from"`
	To      json.RawMessage `json:"to"`
	Subject string          `json:"subject"`
	HTML    string          `json:"html"`
	Text    string          `json:"text"`
	Tags    []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"tags"`
}

func (f *Resend) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		f.t.Errorf("fake Resend: read request body: %v", err)
		writeError(w, http.StatusBadRequest, "validation_error", "Unreadable body.")
		return
	}
	key := r.Header.Get("Idempotency-Key")

	if f.spec != nil {
		if err := f.spec.check(r, body); err != nil {
			f.t.Errorf("fake Resend: %v", err)
			f.answer(w, key, "", http.StatusUnprocessableEntity, "validation_error", "Request does not match the API description.")
			return
		}
	}
	if r.Method != http.MethodPost || r.URL.Path != "/emails" {
		f.t.Errorf("fake Resend: unexpected request %s %s", r.Method, r.URL.Path)
		f.answer(w, key, "", http.StatusNotFound, "not_found", "The requested endpoint does not exist.")
		return
	}

	auth := r.Header.Get("Authorization")
	switch {
	case auth == "":
		f.answer(w, key, "", http.StatusUnauthorized, "missing_api_key", "Missing API key in the authorization header.")
		return
	case auth != "Bearer "+f.APIKey:
		f.answer(w, key, "", http.StatusForbidden, "invalid_api_key", "API key is invalid.")
		return
	}

	var req sendRequest
	if err := json.Unmarshal(body, &req); err != nil {
		f.answer(w, key, "", http.StatusBadRequest, "validation_error", "Invalid JSON.")
		return
	}
	to, ok := recipients(req.To)
	if !ok || req.From == "" || req.Subject == "" {
		f.answer(w, key, "", http.StatusUnprocessableEntity, "validation_error", "Invalid `to`, `from` or `subject` field.")
		return
	}
	for _, addr := range append([]string{req.From}, to...) {
		if _, err := mail.ParseAddress(addr); err != nil {
			f.answer(w, key, "", http.StatusUnprocessableEntity, "validation_error", fmt.Sprintf("Invalid address: %s.", addr))
			return
		}
	}

	f.mu.Lock()
	var ft *fault
	if len(f.faults) > 0 {
		ft = &f.faults[0]
		f.faults = f.faults[1:]
	}
	f.mu.Unlock()
	if ft != nil {
		switch ft.kind {
		case faultStatus:
			f.answer(w, key, "", ft.status, errorName(ft.status), "Injected failure.")
			return
		case faultHang:
			f.record(Call{IdempotencyKey: key})
			f.hang(r)
			return
		}
	}

	// Resend's idempotency: a key seen before with the same payload answers
	// the first id and sends nothing; with another payload it is a 409.
	// (Resend also answers 409 to a repeat while the first is still being
	// processed; here processing is instantaneous, under the lock.)
	payload := canonical(body)
	f.mu.Lock()
	if key != "" {
		if st, seen := f.keys[key]; seen {
			f.mu.Unlock()
			if st.payload != payload {
				f.answer(w, key, "", http.StatusConflict, "invalid_idempotent_request", "Same idempotency key used with a different request payload.")
				return
			}
			f.answer(w, key, st.id, http.StatusOK, "", "")
			return
		}
	}
	email := Email{
		ID:             uuid.NewString(),
		IdempotencyKey: key,
		From:           req.From,
		To:             to,
		Subject:        req.Subject,
		HTML:           req.HTML,
		Text:           req.Text,
		Tags:           map[string]string{},
	}
	for _, tag := range req.Tags {
		email.Tags[tag.Name] = tag.Value
	}
	f.delivered = append(f.delivered, email)
	if key != "" {
		f.keys[key] = &keyState{id: email.ID, payload: payload}
	}
	f.mu.Unlock()

	if ft != nil && ft.kind == faultDropResponse {
		f.record(Call{IdempotencyKey: key, ID: email.ID})
		f.hang(r)
		return
	}
	f.answer(w, key, email.ID, http.StatusOK, "", "")
}

func (f *Resend) record(c Call) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
}

func (f *Resend) hang(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-f.stop:
	}
}

// answer records the call and writes Resend's success or error body.
func (f *Resend) answer(w http.ResponseWriter, key, id string, status int, name, message string) {
	f.record(Call{IdempotencyKey: key, Status: status, ID: id})
	if status == http.StatusOK {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"id": id})
		return
	}
	writeError(w, status, name, message)
}

func writeError(w http.ResponseWriter, status int, name, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"statusCode": status, "name": name, "message": message})
}

func errorName(status int) string {
	switch {
	case status == http.StatusTooManyRequests:
		return "rate_limit_exceeded"
	case status == http.StatusUnprocessableEntity:
		return "validation_error"
	case status >= 500:
		return "application_error"
	}
	return "error"
}

// recipients reads `to`, which Resend accepts as a string or an array.
func recipients(raw json.RawMessage) ([]string, bool) {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, one != ""
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil && len(many) > 0 && len(many) <= 50 {
		return many, true
	}
	return nil, false
}

// canonical re-encodes a JSON body with sorted keys, so payloads compare
// by content rather than by byte layout.
func canonical(body []byte) string {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return string(body)
	}
	var buf bytes.Buffer
	_ = json.NewEncoder(&buf).Encode(v)
	return buf.String()
}

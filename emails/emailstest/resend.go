// Package emailstest holds test doubles for the emails package: a fake
// Resend API that checks every request against Resend's published OpenAPI
// description and behaves like Resend where delivery correctness depends on
// it (authentication, idempotency keys, batch sends, error statuses, rate
// limits).
package emailstest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/grace-coaching/grace/internal/openapitest"
)

// Email is one message the fake delivered.
type Email struct {
	ID             string
	IdempotencyKey string
	// Path is the endpoint it came through: /emails or /emails/batch.
	Path    string
	From    string
	To      []string
	Subject string
	HTML    string
	Text    string
	Tags    map[string]string
	Headers map[string]string
}

// Call is one request the fake answered, delivered or not.
type Call struct {
	// At is when the request arrived, Took how long it was answered after.
	At             time.Time
	Took           time.Duration
	Path           string
	IdempotencyKey string
	Status         int
	// ErrorName is Resend's error name on a failure, e.g.
	// "invalid_idempotent_request" (a used key with another payload), or
	// "aborted" when the client went away before its body arrived.
	ErrorName string
	ID        string   // the email id answered by POST /emails, on success
	IDs       []string // the ids answered by POST /emails/batch, on success
	// Replayed is true when the answer came from the idempotency store: the
	// key was seen before with the same payload, and nothing was sent.
	Replayed bool
	// Tags are the request's emails' tags, in request order (one entry for
	// POST /emails), whatever the answer: what a repeat carried.
	Tags []map[string]string
}

type faultKind int

const (
	faultStatus       faultKind = iota // answer with a status, deliver nothing
	faultHang                          // never answer, deliver nothing
	faultDropResponse                  // deliver, then never answer
)

type fault struct {
	kind       faultKind
	status     int
	retryAfter string
}

// keyState is what Resend remembers of an idempotency key: the payload it
// came with and the answer, or that the first request is still running.
type keyState struct {
	payload  string
	inFlight bool
	status   int
	body     []byte
}

// Options configures Start.
type Options struct {
	// Report receives every request that breaks Resend's API description:
	// a client bug. NewResend makes it the test's Errorf. nil: ignored.
	Report func(format string, args ...any)
	// Log receives notes (the description file is absent). nil: ignored.
	Log func(args ...any)
	// NoSpecCheck skips the OpenAPI check, for a benchmark that times the
	// client and not the fake.
	NoSpecCheck bool
}

// Resend is a fake of Resend's POST /emails and POST /emails/batch.
type Resend struct {
	// URL is the base URL to give emails.NewResendSender.
	URL string
	// APIKey is the only key the fake accepts.
	APIKey string

	report func(format string, args ...any)
	srv    *httptest.Server
	spec   *openapitest.Checker
	stop   chan struct{}
	once   sync.Once

	mu        sync.Mutex
	delivered []Email
	calls     []Call
	keys      map[string]*keyState
	faults    []fault
	rejects   map[string]string // address -> per-email error message
	latency   time.Duration
	// A token bucket standing in for Resend's own request limit.
	limitRate   float64
	limitBurst  float64
	limitTokens float64
	limitAt     time.Time
}

// NewResend starts a fake Resend for the test and stops it when the test
// ends. When Resend's OpenAPI description is present beside the repository
// every request is checked against it and a violation fails the test; when
// it is absent that check alone is skipped, with a note in the test log.
func NewResend(t testing.TB) *Resend {
	t.Helper()
	f, err := Start(Options{Report: t.Errorf, Log: t.Log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

// Start starts a fake Resend outside a test (a benchmark); Close stops it.
func Start(opts Options) (*Resend, error) {
	f := &Resend{
		APIKey:  "re_test_" + strings.ReplaceAll(uuid.NewString(), "-", ""),
		report:  opts.Report,
		stop:    make(chan struct{}),
		keys:    map[string]*keyState{},
		rejects: map[string]string{},
	}
	if f.report == nil {
		f.report = func(string, ...any) {}
	}
	if !opts.NoSpecCheck {
		spec, missing, err := loadSpec()
		if err != nil {
			return nil, err
		}
		if missing != "" && opts.Log != nil {
			opts.Log(missing)
		}
		f.spec = spec
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	f.URL = f.srv.URL
	return f, nil
}

// Close releases hanging handlers and stops the server.
func (f *Resend) Close() {
	f.once.Do(func() {
		close(f.stop) // or Close waits for the hanging handlers
		f.srv.Close()
	})
}

// SpecChecked reports whether requests are checked against the OpenAPI
// description (false when the file is absent).
func (f *Resend) SpecChecked() bool { return f.spec != nil }

// FailNext makes the next n requests fail with status (500, 422, 429...)
// before anything is delivered or any idempotency key is recorded.
func (f *Resend) FailNext(n, status int) {
	f.addFaults(n, fault{kind: faultStatus, status: status})
}

// RateLimitNext makes the next n requests answer 429 with the given
// Retry-After header value ("" for none), delivering nothing.
func (f *Resend) RateLimitNext(n int, retryAfter string) {
	f.addFaults(n, fault{kind: faultStatus, status: http.StatusTooManyRequests, retryAfter: retryAfter})
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

// Reject makes Resend refuse every email to addr with message: in a
// permissive batch that email alone is reported in errors[]; a strict batch
// or a single send answers 422.
func (f *Resend) Reject(addr, message string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rejects[strings.ToLower(addr)] = message
}

// SetLatency makes every answer wait d first, as a remote API does.
func (f *Resend) SetLatency(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.latency = d
}

// SetRateLimit makes the fake enforce its own request limit, like Resend's
// per-team limit: a token bucket of burst requests refilled at rate per
// second. A request over it is answered 429 with Retry-After and counts in
// Calls. rate 0 turns the limit off.
func (f *Resend) SetRateLimit(rate float64, burst int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.limitRate, f.limitBurst = rate, float64(max(burst, 1))
	f.limitTokens, f.limitAt = f.limitBurst, time.Now()
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
	From    string            `json:"from"`
	To      json.RawMessage   `json:"to"`
	Subject string            `json:"subject"`
	HTML    string            `json:"html"`
	Text    string            `json:"text"`
	Headers map[string]string `json:"headers"`
	Tags    []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"tags"`
}

func (r sendRequest) tags() map[string]string {
	m := make(map[string]string, len(r.Tags))
	for _, tag := range r.Tags {
		m[tag.Name] = tag.Value
	}
	return m
}

// answer is one response, written once everything is recorded.
type answer struct {
	status     int
	errorName  string
	body       []byte
	retryAfter string
	id         string
	ids        []string
	replayed   bool
}

func (f *Resend) serve(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		// The client went away mid-request (a killed worker): nothing was
		// processed, and there is no one to answer.
		f.record(Call{At: arrived, Path: r.URL.Path, IdempotencyKey: r.Header.Get("Idempotency-Key"), ErrorName: "aborted"})
		return
	}
	key := r.Header.Get("Idempotency-Key")
	call := Call{At: arrived, Path: r.URL.Path, IdempotencyKey: key}

	if f.spec != nil {
		if err := f.spec.CheckRequestOnly(r, body); err != nil {
			f.report("fake Resend: %v", err)
			f.finish(w, call, errorAnswer(http.StatusUnprocessableEntity, "validation_error", "Request does not match the API description."))
			return
		}
	}
	batch := r.URL.Path == "/emails/batch"
	if r.Method != http.MethodPost || (r.URL.Path != "/emails" && !batch) {
		f.report("fake Resend: unexpected request %s %s", r.Method, r.URL.Path)
		f.finish(w, call, errorAnswer(http.StatusNotFound, "not_found", "The requested endpoint does not exist."))
		return
	}

	switch auth := r.Header.Get("Authorization"); {
	case auth == "":
		f.finish(w, call, errorAnswer(http.StatusUnauthorized, "missing_api_key", "Missing API key in the authorization header."))
		return
	case auth != "Bearer "+f.APIKey:
		f.finish(w, call, errorAnswer(http.StatusForbidden, "invalid_api_key", "API key is invalid."))
		return
	}

	var reqs []sendRequest
	if batch {
		err = json.Unmarshal(body, &reqs)
	} else {
		reqs = make([]sendRequest, 1)
		err = json.Unmarshal(body, &reqs[0])
	}
	if err != nil {
		f.finish(w, call, errorAnswer(http.StatusBadRequest, "validation_error", "Invalid JSON."))
		return
	}
	for _, req := range reqs {
		call.Tags = append(call.Tags, req.tags())
	}
	if batch && (len(reqs) == 0 || len(reqs) > 100) {
		f.finish(w, call, errorAnswer(http.StatusUnprocessableEntity, "validation_error", "A batch holds 1 to 100 emails."))
		return
	}

	f.mu.Lock()
	latency := f.latency
	limited, wait := f.overLimitLocked()
	var ft *fault
	if !limited && len(f.faults) > 0 {
		ft = &f.faults[0]
		f.faults = f.faults[1:]
	}
	f.mu.Unlock()
	if limited {
		a := errorAnswer(http.StatusTooManyRequests, "rate_limit_exceeded", "Too many requests. You can only make 2 requests per second.")
		a.retryAfter = strconv.Itoa(int(math.Ceil(wait.Seconds())))
		f.finish(w, call, a)
		return
	}
	if ft != nil {
		switch ft.kind {
		case faultStatus:
			a := errorAnswer(ft.status, errorName(ft.status), "Injected failure.")
			a.retryAfter = ft.retryAfter
			f.finish(w, call, a)
			return
		case faultHang:
			f.record(call)
			f.hang(r)
			return
		}
	}

	// Resend's idempotency: a key seen before with the same payload answers
	// the first response and sends nothing; with another payload it is a
	// 409, and so is a repeat while the first is still being processed.
	payload := r.URL.Path + "\n" + digest(body)
	if key != "" {
		f.mu.Lock()
		st, seen := f.keys[key]
		switch {
		case seen && st.payload != payload:
			f.mu.Unlock()
			f.finish(w, call, errorAnswer(http.StatusConflict, "invalid_idempotent_request", "Same idempotency key used with a different request payload."))
			return
		case seen && st.inFlight:
			f.mu.Unlock()
			f.finish(w, call, errorAnswer(http.StatusConflict, "concurrent_idempotent_requests", "Same idempotency key used while original request is still in progress."))
			return
		case seen:
			f.mu.Unlock()
			if latency > 0 && !f.sleep(r.Context(), latency) {
				f.record(call)
				return
			}
			a := answer{status: st.status, body: st.body, replayed: true}
			a.id, a.ids = idsOf(batch, st.body)
			f.finish(w, call, a)
			return
		}
		f.keys[key] = &keyState{payload: payload, inFlight: true}
		f.mu.Unlock()
	}
	// The latency is Resend's processing time: a repeat of the key meanwhile
	// finds it in flight.
	if latency > 0 && !f.sleep(r.Context(), latency) {
		if key != "" {
			f.mu.Lock()
			delete(f.keys, key)
			f.mu.Unlock()
		}
		f.record(call)
		return
	}

	a := f.deliver(key, r.URL.Path, batch, r.Header.Get("x-batch-validation") == "permissive", reqs)
	if key != "" {
		f.mu.Lock()
		if a.status >= 500 || a.status == http.StatusTooManyRequests {
			delete(f.keys, key) // Resend keeps only answers to processed requests
		} else {
			f.keys[key] = &keyState{payload: payload, status: a.status, body: a.body}
		}
		f.mu.Unlock()
	}
	if ft != nil && ft.kind == faultDropResponse {
		call.Status, call.ID, call.IDs = a.status, a.id, a.ids
		f.record(call)
		f.hang(r)
		return
	}
	f.finish(w, call, a)
}

// deliver validates and delivers reqs, returning the answer. A strict
// batch or a single send is refused whole by one bad email; a permissive
// batch delivers the others and lists the bad ones by index.
func (f *Resend) deliver(key, path string, batch, permissive bool, reqs []sendRequest) answer {
	f.mu.Lock()
	defer f.mu.Unlock()
	type batchError struct {
		Index   int    `json:"index"`
		Message string `json:"message"`
	}
	var errs []batchError
	for i, req := range reqs {
		if msg := f.invalidLocked(req); msg != "" {
			errs = append(errs, batchError{Index: i, Message: msg})
		}
	}
	if len(errs) > 0 && (!batch || !permissive) {
		msg := errs[0].Message
		if batch {
			msg = fmt.Sprintf("emails[%d]: %s", errs[0].Index, msg)
		}
		return errorAnswer(http.StatusUnprocessableEntity, "validation_error", msg)
	}
	var ids []string
	bad := 0
	for i, req := range reqs {
		if bad < len(errs) && errs[bad].Index == i {
			bad++
			continue
		}
		to, _ := recipients(req.To)
		email := Email{
			ID:             uuid.NewString(),
			IdempotencyKey: key,
			Path:           path,
			From:           req.From,
			To:             to,
			Subject:        req.Subject,
			HTML:           req.HTML,
			Text:           req.Text,
			Tags:           req.tags(),
			Headers:        req.Headers,
		}
		f.delivered = append(f.delivered, email)
		ids = append(ids, email.ID)
	}
	if !batch {
		body, _ := json.Marshal(map[string]string{"id": ids[0]})
		return answer{status: http.StatusOK, body: body, id: ids[0]}
	}
	out := map[string]any{"data": []map[string]string{}}
	data := make([]map[string]string, len(ids))
	for i, id := range ids {
		data[i] = map[string]string{"id": id}
	}
	out["data"] = data
	if permissive {
		if errs == nil {
			errs = []batchError{}
		}
		out["errors"] = errs
	}
	body, _ := json.Marshal(out)
	return answer{status: http.StatusOK, body: body, ids: ids}
}

// invalidLocked says why Resend would refuse req, or "".
func (f *Resend) invalidLocked(req sendRequest) string {
	to, ok := recipients(req.To)
	if !ok || req.From == "" || req.Subject == "" {
		return "Invalid `to`, `from` or `subject` field."
	}
	for _, addr := range append([]string{req.From}, to...) {
		if _, err := mail.ParseAddress(addr); err != nil {
			return fmt.Sprintf("Invalid address: %s.", addr)
		}
	}
	for _, addr := range to {
		if msg, ok := f.rejects[strings.ToLower(addr)]; ok {
			return msg
		}
	}
	return ""
}

// overLimitLocked takes a token from the bucket, or says how long until
// one is free.
func (f *Resend) overLimitLocked() (bool, time.Duration) {
	if f.limitRate <= 0 {
		return false, 0
	}
	now := time.Now()
	f.limitTokens = min(f.limitBurst, f.limitTokens+now.Sub(f.limitAt).Seconds()*f.limitRate)
	f.limitAt = now
	if f.limitTokens >= 1 {
		f.limitTokens--
		return false, 0
	}
	return true, time.Duration((1 - f.limitTokens) / f.limitRate * float64(time.Second))
}

func idsOf(batch bool, body []byte) (string, []string) {
	if !batch {
		var one struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(body, &one)
		return one.ID, nil
	}
	var many struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	_ = json.Unmarshal(body, &many)
	ids := make([]string, len(many.Data))
	for i, d := range many.Data {
		ids[i] = d.ID
	}
	return "", ids
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

// sleep waits d unless the client leaves or the fake stops first.
func (f *Resend) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-f.stop:
	}
	return false
}

// finish records the call with its answer and writes the answer.
func (f *Resend) finish(w http.ResponseWriter, c Call, a answer) {
	c.Status, c.ErrorName, c.ID, c.IDs, c.Replayed = a.status, a.errorName, a.id, a.ids, a.replayed
	c.Took = time.Since(c.At)
	f.record(c)
	writeAnswer(w, a)
}

func writeAnswer(w http.ResponseWriter, a answer) {
	w.Header().Set("Content-Type", "application/json")
	if a.retryAfter != "" {
		w.Header().Set("Retry-After", a.retryAfter)
	}
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
}

func errorAnswer(status int, name, message string) answer {
	body, _ := json.Marshal(map[string]any{"statusCode": status, "name": name, "message": message})
	return answer{status: status, errorName: name, body: body}
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

// digest identifies a payload byte for byte. Resend compares payloads by
// content; the fake is stricter on purpose: a retry under a key must be
// the same bytes, which is what the senders promise.
func digest(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

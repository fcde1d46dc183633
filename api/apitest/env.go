package apitest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/labstack/echo/v4"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/api"
	"github.com/grace-coaching/grace/emails/drip"
	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/domain"
	"github.com/grace-coaching/grace/models/enroll"
	"github.com/grace-coaching/grace/models/modelstest"
)

// Env is one API under test: a fresh database, a fake clock, the real Echo
// server, and a checker that holds every exchange to api/openapi.yaml.
type Env struct {
	DB    *gorm.DB
	Clock *models.FakeClock
	Svc   *domain.Services
	Echo  *echo.Echo
	Spec  *SpecChecker
}

var (
	specOnce    sync.Once
	specChecker *SpecChecker
	specErr     error
)

// EnvOption changes how NewEnv builds the API.
type EnvOption func(*envOptions)

type envOptions struct {
	payments   enroll.PaymentGateway
	webhook    api.PaymentWebhook
	emailHook  api.EmailWebhook
	appBaseURL string
}

// WithPayments gives the service a payment gateway and the API a webhook
// verifier (either may be nil: not configured). With the Stripe adapter on
// stripe-mock: gw, _ := stripe.New(stripe.Config{SecretKey: "sk_test_x",
// APIURL: stripetest.StartMock(t), WebhookSecret: secret}), then
// WithPayments(gw, gw).
func WithPayments(gateway enroll.PaymentGateway, webhook api.PaymentWebhook) EnvOption {
	return func(o *envOptions) { o.payments, o.webhook = gateway, webhook }
}

// WithEmailWebhook gives the API a Resend webhook verifier, e.g.
// emails.NewWebhookVerifier(secret); without it the webhook answers 503.
func WithEmailWebhook(v api.EmailWebhook) EnvOption {
	return func(o *envOptions) { o.emailHook = v }
}

// WithAppBaseURL sets the portal URL the domain builds links with
// (checkout return URLs); the default is http://portal.test.
func WithAppBaseURL(url string) EnvOption {
	return func(o *envOptions) { o.appBaseURL = url }
}

// NewEnv boots the API on a fresh database for this test. Without options
// payments are not configured (checkout answers payments_unavailable,
// webhooks are refused).
func NewEnv(t testing.TB, opts ...EnvOption) *Env {
	t.Helper()
	o := envOptions{appBaseURL: "http://portal.test"}
	for _, opt := range opts {
		opt(&o)
	}
	db := modelstest.NewDB(t)
	if recordDir != "" {
		countIDsInDB(t, db)
	}
	clock := models.NewFakeClock(modelstest.Start)
	// The real drip renderer, so step previews and test sends render as
	// they would be sent.
	dripRenderer, err := drip.NewRenderer("Grace")
	if err != nil {
		t.Fatalf("drip renderer: %v", err)
	}
	svc := domain.New(domain.Deps{DB: db, Clock: clock, Limits: modelstest.Limits(), Payments: o.payments, AppBaseURL: o.appBaseURL, DripRenderer: dripRenderer,
		UnsubscribeURL: api.UnsubscribeURL(o.appBaseURL), ConsentConfirmURL: api.ConsentConfirmURL(o.appBaseURL), Reflections: modelstest.Keyring(t)})
	specOnce.Do(func() { specChecker, specErr = NewSpecChecker(api.OpenAPISpec()) })
	if specErr != nil {
		t.Fatalf("load api/openapi.yaml: %v", specErr)
	}
	e := api.New(api.Config{Service: svc, CORSOrigins: []string{"http://portal.test"}, StripeWebhook: o.webhook, EmailWebhook: o.emailHook})
	return &Env{DB: db, Clock: clock, Svc: svc, Echo: e, Spec: specChecker}
}

// Response is what a test request got back.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Problem is a problem+json error body.
type Problem struct {
	Type              string `json:"type"`
	Title             string `json:"title"`
	Status            int    `json:"status"`
	Detail            string `json:"detail"`
	Code              string `json:"code"`
	RequestID         string `json:"request_id"`
	UnlockAt          string `json:"unlock_at"`
	RetryAfterSeconds int    `json:"retry_after_seconds"`
	Errors            []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
}

// Option changes one request.
type Option func(*http.Request)

// Token sends Authorization: Bearer token.
func Token(token string) Option {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
}

// Header sets a request header.
func Header(k, v string) Option { return func(r *http.Request) { r.Header.Set(k, v) } }

// FromIP makes the request come from ip (rate limits are per IP).
func FromIP(ip string) Option { return func(r *http.Request) { r.RemoteAddr = ip + ":40000" } }

// Do sends one request through the server. body may be nil, a string or
// []byte (sent as is: for malformed input) or any value (sent as JSON).
// Every response is checked against the OpenAPI contract; the request is too
// when the server accepted it (a 2xx), since a bad request must be refused,
// not described. After a 202 it runs the task worker, as the worker would a
// moment after the answer (the public forms leave their work to it): the
// test sees what she would see once her email arrived. Send answers
// without running it, for a test of the moment in between.
func (e *Env) Do(t testing.TB, method, path string, body any, opts ...Option) *Response {
	t.Helper()
	res := e.Send(t, method, path, body, opts...)
	if res.Status == http.StatusAccepted {
		e.RunTasks(t)
	}
	return res
}

// Send is Do without running the task worker after it.
func (e *Env) Send(t testing.TB, method, path string, body any, opts ...Option) *Response {
	t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			t.Fatalf("marshal request body: %v", err)
		}
	}
	req := httptest.NewRequest(method, path, bytes.NewReader(raw))
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, o := range opts {
		o(req)
	}
	rec := httptest.NewRecorder()
	e.Echo.ServeHTTP(rec, req)
	res := &Response{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
	record(t, false, method, req.URL.RequestURI(), raw, res.Status, res.Header, res.Body)
	checkReq := httptest.NewRequest(method, path, bytes.NewReader(raw))
	checkReq.Header = req.Header.Clone()
	if err := e.Spec.Check(checkReq, raw, res.Status, res.Header, res.Body, res.Status < 300); err != nil {
		t.Errorf("%s %s -> %d does not match api/openapi.yaml: %v\nresponse: %s", method, path, res.Status, err, truncate(res.Body))
	}
	return res
}

func truncate(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + "..."
	}
	return string(b)
}

// Expect fails the test unless the response has the status.
func (r *Response) Expect(t testing.TB, status int) *Response {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status = %d, want %d; body: %s", r.Status, status, truncate(r.Body))
	}
	return r
}

// JSON decodes the body into v.
func (r *Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode response %q: %v", truncate(r.Body), err)
	}
}

// Problem decodes a problem+json body, failing if it is not one.
func (r *Response) Problem(t testing.TB) Problem {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Fatalf("Content-Type = %q, want application/problem+json; body: %s", ct, truncate(r.Body))
	}
	var p Problem
	r.JSON(t, &p)
	if p.Status != r.Status || p.Code == "" || p.Title == "" || p.Detail == "" {
		t.Fatalf("incomplete problem document: %s", truncate(r.Body))
	}
	return p
}

// ExpectProblem fails unless the response is a problem with status and code.
func (r *Response) ExpectProblem(t testing.TB, status int, code string) Problem {
	t.Helper()
	r.Expect(t, status)
	p := r.Problem(t)
	if p.Code != code {
		t.Fatalf("problem code = %q, want %q; body: %s", p.Code, code, truncate(r.Body))
	}
	return p
}

// Count returns the number of rows in table, for "no row written" checks.
func (e *Env) Count(t testing.TB, table string) int64 {
	t.Helper()
	var n int64
	if err := e.DB.Table(table).Count(&n).Error; err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

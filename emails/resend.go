package emails

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/resend/resend-go/v2"
)

// DefaultResendBaseURL is Resend's API.
const DefaultResendBaseURL = "https://api.resend.com/"

// ResendSender sends through Resend's HTTP API. This file is the only place
// that knows the SDK; nothing of it crosses the Sender interface.
type ResendSender struct {
	client *resend.Client
}

var _ Sender = (*ResendSender)(nil)

// NewResendSender builds a sender for apiKey. baseURL "" means Resend's API
// (tests point it at a fake); httpClient nil means a client with a 30s
// timeout. The worker bounds each send with its own deadline as well.
func NewResendSender(apiKey, baseURL string, httpClient *http.Client) (*ResendSender, error) {
	apiKey = strings.TrimSpace(apiKey)
	if apiKey == "" {
		return nil, errors.New("emails: the Resend API key is empty")
	}
	if baseURL == "" {
		baseURL = DefaultResendBaseURL
	}
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("emails: Resend base URL %q must be an absolute http(s) URL", baseURL)
	}
	// The SDK resolves "emails" against the base, which drops a last path
	// segment that has no trailing slash.
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}

	hc := &http.Client{Timeout: 30 * time.Second}
	if httpClient != nil {
		clone := *httpClient
		hc = &clone
	}
	next := hc.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	hc.Transport = statusRecorder{next: next}

	client := resend.NewCustomClient(hc, apiKey)
	client.BaseURL = u
	return &ResendSender{client: client}, nil
}

// Send posts msg to /emails with Idempotency-Key = msg.ID: Resend answers a
// repeat of the key with the first send's id instead of sending again, which
// is what makes a retry after a timeout or a crash safe.
func (s *ResendSender) Send(ctx context.Context, msg Message) (string, error) {
	if strings.TrimSpace(msg.To) == "" {
		return "", MarkPermanent(errors.New("resend: message has no recipient"))
	}
	if len(msg.ID) > 256 {
		return "", MarkPermanent(errors.New("resend: idempotency key longer than 256 characters"))
	}
	req := &resend.SendEmailRequest{
		From: msg.From,
		// The bare address: a display name with quotes, commas or non-ASCII
		// letters is one more way for the API to reject a login email, and
		// the greeting already uses her name.
		To:      []string{msg.To},
		Subject: msg.Subject,
		Html:    msg.HTML,
		Text:    msg.Text,
		Tags:    resendTags(msg.Tags),
	}

	status := &statusBox{}
	ctx = context.WithValue(ctx, statusKey{}, status)
	resp, err := s.client.Emails.SendWithOptions(ctx, req, &resend.SendEmailOptions{IdempotencyKey: msg.ID})
	if err != nil {
		return "", classifyResend(status, err)
	}
	return resp.Id, nil
}

// resendTags keeps tags inside Resend's alphabet ([A-Za-z0-9_-], at most 256
// characters) and in a stable order: a retry under the same idempotency key
// must send the same payload, or Resend rejects it as a different request.
func resendTags(tags map[string]string) []resend.Tag {
	if len(tags) == 0 {
		return nil
	}
	out := make([]resend.Tag, 0, len(tags))
	for name, value := range tags {
		name, value = tagSafe(name), tagSafe(value)
		if name == "" || value == "" {
			continue
		}
		out = append(out, resend.Tag{Name: name, Value: value})
	}
	slices.SortFunc(out, func(a, b resend.Tag) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func tagSafe(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	if len(b) > 256 {
		b = b[:256]
	}
	return string(b)
}

// classifyResend decides whether a failed send is worth retrying. The SDK
// flattens most failures into a bare error, so the status (and a 429's
// Retry-After) comes from the transport. The error is a *ProviderError.
//
// Transient: no response at all (network, timeout), 5xx, 429 (rate or quota
// limits), 409 (a concurrent request with the same idempotency key is still
// in flight), 408, and 401/403: a missing, revoked or restricted API key is
// an operator's mistake that fixing the configuration cures, so the message
// waits through the backoff instead of failing at once. Every other 4xx
// (invalid address, validation) is permanent.
func classifyResend(box *statusBox, err error) error {
	e := &ProviderError{Status: box.code, Message: strings.TrimPrefix(err.Error(), "[ERROR]: ")}
	if e.Status == http.StatusTooManyRequests {
		e.RetryAfter = box.retryAfter
	}
	switch status := e.Status; {
	case status == 0:
		return e
	case status >= 500, status == http.StatusTooManyRequests, status == http.StatusConflict,
		status == http.StatusRequestTimeout, status == http.StatusUnauthorized, status == http.StatusForbidden:
		return e
	case status >= 400:
		return MarkPermanent(e)
	}
	// A 2xx whose body could not be read: the email may have gone out, and a
	// retry under the same key returns its id without sending again.
	return e
}

type statusKey struct{}

type statusBox struct {
	code       int
	retryAfter time.Duration
}

// statusRecorder notes the HTTP status and Retry-After of each response in
// the request's context, for classifyResend: the SDK types only a 429, and
// keeps its Retry-After as an unparsed string.
type statusRecorder struct{ next http.RoundTripper }

func (t statusRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if resp != nil {
		if box, ok := req.Context().Value(statusKey{}).(*statusBox); ok {
			box.code = resp.StatusCode
			box.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		}
	}
	return resp, err
}

// parseRetryAfter reads Retry-After as seconds (fractions allowed) or an
// HTTP date; anything else, or a wait in the past, is 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs <= 0 || secs > 86400 {
			return 0
		}
		return time.Duration(secs * float64(time.Second))
	}
	if at, err := http.ParseTime(v); err == nil && at.After(now) {
		return at.Sub(now)
	}
	return 0
}

// SendBatch sends b in one call under Idempotency-Key = b.Key: POST
// /emails/batch for two or more emails, POST /emails for one. The batch is
// sent permissive, so one bad address fails only its own email (reported
// in BatchResult.Errors) and not the other 99. A retry of b after a timeout
// or a crash must carry the same emails in the same order: Resend answers
// a repeated key with the first call's ids and sends nothing.
func (s *ResendSender) SendBatch(ctx context.Context, b Batch) (BatchResult, error) {
	n := len(b.Emails)
	switch {
	case n == 0:
		return BatchResult{}, MarkPermanent(errors.New("resend: empty batch"))
	case n > MaxBatch:
		return BatchResult{}, MarkPermanent(fmt.Errorf("resend: batch of %d emails, at most %d allowed", n, MaxBatch))
	case b.Key == "" || len(b.Key) > 256:
		return BatchResult{}, MarkPermanent(errors.New("resend: a batch needs an idempotency key of 1 to 256 characters"))
	}
	reqs := make([]*resend.SendEmailRequest, n)
	for i, e := range b.Emails {
		if strings.TrimSpace(e.To) == "" {
			return BatchResult{}, MarkPermanent(fmt.Errorf("resend: email %d of the batch has no recipient", i))
		}
		from := b.From
		if e.From != "" {
			from = e.From
		}
		reqs[i] = &resend.SendEmailRequest{
			From:    from,
			To:      []string{e.To},
			Subject: e.Subject,
			Html:    e.HTML,
			Text:    e.Text,
			Headers: e.Headers,
			Tags:    resendTags(e.Tags),
		}
	}
	res := BatchResult{IDs: make([]string, n), Errors: make([]string, n)}
	status := &statusBox{}
	ctx = context.WithValue(ctx, statusKey{}, status)

	if n == 1 {
		resp, err := s.client.Emails.SendWithOptions(ctx, reqs[0], &resend.SendEmailOptions{IdempotencyKey: b.Key})
		if err != nil {
			return BatchResult{}, classifyResend(status, err)
		}
		res.IDs[0] = resp.Id
		return res, nil
	}

	resp, err := s.client.Batch.SendWithOptions(ctx, reqs, &resend.BatchSendEmailOptions{
		IdempotencyKey:  b.Key,
		BatchValidation: resend.BatchValidationPermissive,
	})
	if err != nil {
		return BatchResult{}, classifyResend(status, err)
	}
	// Permissive answers carry the refused emails by index and the ids of
	// the accepted ones, in request order.
	for _, e := range resp.Errors {
		if e.Index >= 0 && e.Index < n {
			res.Errors[e.Index] = cmp.Or(e.Message, "refused by Resend")
		}
	}
	ids := resp.Data
	for i := range n {
		if res.Errors[i] != "" || len(ids) == 0 {
			continue
		}
		res.IDs[i], ids = ids[0].Id, ids[1:]
	}
	return res, nil
}

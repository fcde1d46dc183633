package emails_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/grace-coaching/grace/emails"
	"github.com/grace-coaching/grace/emails/emailstest"
)

func testMessage(id string) emails.Message {
	return emails.Message{
		ID:      id,
		From:    "Grace <hello@grace.example>",
		To:      "ana@example.com",
		ToName:  `Ana "the brave", O'Neil`,
		Subject: "Your link to sign in to Grace",
		HTML:    "<p>Hello</p>",
		Text:    "Hello",
		Tags:    map[string]string{"template": "login_link", "outbox_id": id, "odd key!": "a b"},
	}
}

func newResendSender(t *testing.T, fake *emailstest.Resend, apiKey string, client *http.Client) *emails.ResendSender {
	t.Helper()
	s, err := emails.NewResendSender(apiKey, fake.URL, client)
	if err != nil {
		t.Fatalf("NewResendSender: %v", err)
	}
	return s
}

func TestResendSenderSendsOnceUnderOneIdempotencyKey(t *testing.T) {
	fake := emailstest.NewResend(t)
	s := newResendSender(t, fake, fake.APIKey, nil)
	ctx := context.Background()

	first, err := s.Send(ctx, testMessage("0b5c9a4e-1111-4f0e-9f0a-000000000001"))
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	again, err := s.Send(ctx, testMessage("0b5c9a4e-1111-4f0e-9f0a-000000000001"))
	if err != nil {
		t.Fatalf("repeat Send: %v", err)
	}
	if first == "" || again != first {
		t.Fatalf("provider ids %q then %q; a repeat must answer the first id", first, again)
	}

	got := fake.Delivered()
	if len(got) != 1 {
		t.Fatalf("delivered %d emails, want 1", len(got))
	}
	e := got[0]
	if e.ID != first || e.IdempotencyKey != "0b5c9a4e-1111-4f0e-9f0a-000000000001" {
		t.Errorf("delivered id %q key %q", e.ID, e.IdempotencyKey)
	}
	if e.From != "Grace <hello@grace.example>" || len(e.To) != 1 || e.To[0] != "ana@example.com" ||
		e.Subject != "Your link to sign in to Grace" || e.HTML != "<p>Hello</p>" || e.Text != "Hello" {
		t.Errorf("delivered %+v", e)
	}
	if e.Tags["template"] != "login_link" || e.Tags["odd_key_"] != "a_b" {
		t.Errorf("tags %v: want them kept inside Resend's alphabet", e.Tags)
	}
	if n := len(fake.Calls()); n != 2 {
		t.Errorf("fake saw %d calls, want 2", n)
	}
}

func TestResendSenderClassifiesFailures(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(*emailstest.Resend)
		apiKey    string // "" means the fake's key
		timeout   time.Duration
		permanent bool
	}{
		{"server error is transient", func(f *emailstest.Resend) { f.FailNext(1, 500) }, "", 0, false},
		{"bad gateway is transient", func(f *emailstest.Resend) { f.FailNext(1, 502) }, "", 0, false},
		{"rate limit is transient", func(f *emailstest.Resend) { f.FailNext(1, 429) }, "", 0, false},
		{"validation error is permanent", func(f *emailstest.Resend) { f.FailNext(1, 422) }, "", 0, true},
		{"bad request is permanent", func(f *emailstest.Resend) { f.FailNext(1, 400) }, "", 0, true},
		{"a wrong API key waits for the operator", func(*emailstest.Resend) {}, "re_wrong", 0, false},
		{"a timeout is transient", func(f *emailstest.Resend) { f.HangNext(1) }, "", 200 * time.Millisecond, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := emailstest.NewResend(t)
			tc.setup(fake)
			key := tc.apiKey
			if key == "" {
				key = fake.APIKey
			}
			s := newResendSender(t, fake, key, nil)
			ctx := context.Background()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			id, err := s.Send(ctx, testMessage("0b5c9a4e-1111-4f0e-9f0a-000000000002"))
			if err == nil {
				t.Fatalf("Send succeeded with id %q", id)
			}
			if got := emails.Permanent(err); got != tc.permanent {
				t.Fatalf("Permanent(%v) = %v, want %v", err, got, tc.permanent)
			}
			if len(fake.Delivered()) != 0 {
				t.Fatal("a failed send delivered an email")
			}
		})
	}
}

func TestResendSenderRejectsMissingRecipientWithoutCalling(t *testing.T) {
	fake := emailstest.NewResend(t)
	s := newResendSender(t, fake, fake.APIKey, nil)
	msg := testMessage("0b5c9a4e-1111-4f0e-9f0a-000000000003")
	msg.To = " "
	if _, err := s.Send(context.Background(), msg); !emails.Permanent(err) {
		t.Fatalf("err = %v, want a permanent error", err)
	}
	if n := len(fake.Calls()); n != 0 {
		t.Fatalf("fake saw %d calls", n)
	}
}

func TestResendSenderHonoursTheHTTPClient(t *testing.T) {
	fake := emailstest.NewResend(t)
	fake.HangNext(1)
	s := newResendSender(t, fake, fake.APIKey, &http.Client{Timeout: 100 * time.Millisecond})
	start := time.Now()
	_, err := s.Send(context.Background(), testMessage("0b5c9a4e-1111-4f0e-9f0a-000000000004"))
	if err == nil || emails.Permanent(err) {
		t.Fatalf("err = %v, want a transient timeout", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the client's timeout was ignored: took %s", took)
	}
}

func TestNewResendSenderValidates(t *testing.T) {
	if _, err := emails.NewResendSender(" ", "", nil); err == nil {
		t.Error("accepted an empty API key")
	}
	if _, err := emails.NewResendSender("re_x", "api.resend.com", nil); err == nil {
		t.Error("accepted a base URL without a scheme")
	}
	if _, err := emails.NewResendSender("re_x", "", nil); err != nil {
		t.Errorf("default base URL: %v", err)
	}
}

func TestPermanentWrapping(t *testing.T) {
	base := context.DeadlineExceeded
	if emails.Permanent(base) || emails.Permanent(nil) {
		t.Fatal("plain errors are transient")
	}
	wrapped := emails.MarkPermanent(base)
	if !emails.Permanent(wrapped) || wrapped.Error() != base.Error() {
		t.Fatalf("MarkPermanent: %v", wrapped)
	}
	if !strings.Contains(emails.MarkPermanent(base).Error(), "deadline") {
		t.Fatal("MarkPermanent lost the message")
	}
	if emails.MarkPermanent(nil) != nil {
		t.Fatal("MarkPermanent(nil) must be nil")
	}
}

func testBatch(key string, addrs ...string) emails.Batch {
	b := emails.Batch{Key: key, From: "Grace <hello@grace.example>"}
	for i, a := range addrs {
		b.Emails = append(b.Emails, emails.BatchEmail{
			To: a, Subject: "Day 1", HTML: "<p>Hi</p>", Text: "Hi",
			Headers: map[string]string{
				"List-Unsubscribe":      "<https://api.example.com/v1/unsubscribe/tok>, <mailto:unsubscribe@example.com?subject=unsubscribe-tok>",
				"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
			},
			Tags: map[string]string{"delivery_id": "d" + strings.Repeat("x", i)},
		})
	}
	return b
}

func TestResendSenderBatchSendsOncePerKeyAndMapsErrorsByIndex(t *testing.T) {
	fake := emailstest.NewResend(t)
	fake.Reject("bounced@example.com", "The recipient is on the suppression list.")
	s := newResendSender(t, fake, fake.APIKey, nil)
	ctx := context.Background()
	b := testBatch("6f1d2c3b-0000-4000-8000-000000000001", "a@example.com", "bounced@example.com", "c@example.com")

	first, err := s.SendBatch(ctx, b)
	if err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	if first.IDs[0] == "" || first.IDs[1] != "" || first.IDs[2] == "" || !strings.Contains(first.Errors[1], "suppression") ||
		first.Errors[0] != "" || first.Errors[2] != "" {
		t.Fatalf("result %+v: want email 1 refused alone", first)
	}
	again, err := s.SendBatch(ctx, b)
	if err != nil || strings.Join(again.IDs, ",") != strings.Join(first.IDs, ",") {
		t.Fatalf("repeat: %+v %v, want the first ids", again, err)
	}
	got := fake.Delivered()
	if len(got) != 2 {
		t.Fatalf("delivered %d, want 2", len(got))
	}
	for _, e := range got {
		if e.Path != "/emails/batch" || e.IdempotencyKey != b.Key || e.Headers["List-Unsubscribe-Post"] != "List-Unsubscribe=One-Click" ||
			!strings.HasPrefix(e.Headers["List-Unsubscribe"], "<https://") || e.Tags["delivery_id"] == "" {
			t.Errorf("delivered %+v", e)
		}
	}
}

func TestResendSenderBatchOfOneUsesSingleSend(t *testing.T) {
	fake := emailstest.NewResend(t)
	s := newResendSender(t, fake, fake.APIKey, nil)
	b := testBatch("6f1d2c3b-0000-4000-8000-000000000002", "a@example.com")
	res, err := s.SendBatch(context.Background(), b)
	if err != nil || res.IDs[0] == "" {
		t.Fatalf("SendBatch: %+v %v", res, err)
	}
	got := fake.Delivered()
	if len(got) != 1 || got[0].Path != "/emails" || got[0].IdempotencyKey != b.Key || got[0].Headers["List-Unsubscribe-Post"] == "" {
		t.Fatalf("delivered %+v", got)
	}

	fake.Reject("no@example.com", "Invalid recipient.")
	_, err = s.SendBatch(context.Background(), testBatch("6f1d2c3b-0000-4000-8000-000000000003", "no@example.com"))
	var pe *emails.ProviderError
	if !emails.Permanent(err) || !errors.As(err, &pe) || pe.Status != 422 || pe.Message != "Invalid recipient." {
		t.Fatalf("a refused single email: %v, want a permanent 422 carrying Resend's message", err)
	}
}

func TestResendSenderBatchClassifiesFailures(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(*emailstest.Resend)
		permanent  bool
		status     int
		retryAfter time.Duration
		limited    bool
	}{
		{"429 with Retry-After", func(f *emailstest.Resend) { f.RateLimitNext(1, "2") }, false, 429, 2 * time.Second, true},
		{"429 with an HTTP date", func(f *emailstest.Resend) {
			f.RateLimitNext(1, time.Now().Add(3*time.Second).UTC().Format(http.TimeFormat))
		}, false, 429, 3 * time.Second, true},
		{"429 without Retry-After", func(f *emailstest.Resend) { f.FailNext(1, 429) }, false, 429, 0, true},
		{"500 is transient", func(f *emailstest.Resend) { f.FailNext(1, 500) }, false, 500, 0, false},
		{"503 is transient", func(f *emailstest.Resend) { f.FailNext(1, 503) }, false, 503, 0, false},
		{"400 is permanent", func(f *emailstest.Resend) { f.FailNext(1, 400) }, true, 400, 0, false},
		{"422 is permanent", func(f *emailstest.Resend) { f.FailNext(1, 422) }, true, 422, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := emailstest.NewResend(t)
			tc.setup(fake)
			s := newResendSender(t, fake, fake.APIKey, nil)
			_, err := s.SendBatch(context.Background(), testBatch("6f1d2c3b-0000-4000-8000-000000000004", "a@example.com", "b@example.com"))
			var pe *emails.ProviderError
			if err == nil || !errors.As(err, &pe) || pe.Status != tc.status || emails.Permanent(err) != tc.permanent {
				t.Fatalf("err = %v, want status %d permanent %v", err, tc.status, tc.permanent)
			}
			wait, limited := emails.RateLimited(err)
			if limited != tc.limited || wait > tc.retryAfter || wait < tc.retryAfter-time.Second {
				t.Fatalf("RateLimited = %s %v, want about %s %v", wait, limited, tc.retryAfter, tc.limited)
			}
			if len(fake.Delivered()) != 0 {
				t.Fatal("a failed call delivered")
			}
		})
	}
}

func TestResendSenderBatchTimeoutThenRetryDeliversOnce(t *testing.T) {
	fake := emailstest.NewResend(t)
	fake.DropResponseNext(1)
	s := newResendSender(t, fake, fake.APIKey, nil)
	b := testBatch("6f1d2c3b-0000-4000-8000-000000000005", "a@example.com", "b@example.com")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	_, err := s.SendBatch(ctx, b)
	cancel()
	if err == nil || emails.Permanent(err) {
		t.Fatalf("a lost response: %v, want a transient error", err)
	}
	res, err := s.SendBatch(context.Background(), b)
	if err != nil || res.IDs[0] == "" || res.IDs[1] == "" {
		t.Fatalf("retry: %+v %v", res, err)
	}
	if n := len(fake.Delivered()); n != 2 {
		t.Fatalf("delivered %d, want 2: the retry must not send again", n)
	}
}

func TestResendSenderBatchRefusesBadBatchesWithoutCalling(t *testing.T) {
	fake := emailstest.NewResend(t)
	s := newResendSender(t, fake, fake.APIKey, nil)
	big := testBatch("k", make([]string, emails.MaxBatch+1)...)
	for _, b := range []emails.Batch{{Key: "k", From: "a@b.c"}, testBatch("", "a@example.com"), big, testBatch("k", " ")} {
		if _, err := s.SendBatch(context.Background(), b); !emails.Permanent(err) {
			t.Errorf("batch of %d with key %q: %v, want permanent", len(b.Emails), b.Key, err)
		}
	}
	if n := len(fake.Calls()); n != 0 {
		t.Fatalf("fake saw %d calls", n)
	}
}

func TestDevSenderLogsDripBatches(t *testing.T) {
	var buf strings.Builder
	d := emails.DevSender{Log: slog.New(slog.NewTextHandler(&buf, nil))}
	res, err := d.SendBatch(context.Background(), testBatch("k-dev", "a@example.com", "b@example.com"))
	if err != nil || len(res.IDs) != 2 || !strings.HasPrefix(res.IDs[0], "dev-") || res.Errors[1] != "" {
		t.Fatalf("SendBatch: %+v %v", res, err)
	}
	out := buf.String()
	if strings.Count(out, "DEV MODE") != 2 || !strings.Contains(out, "to=b@example.com") || !strings.Contains(out, "text=Hi") {
		t.Fatalf("log:\n%s", out)
	}
}

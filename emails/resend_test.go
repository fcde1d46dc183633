package emails_test

import (
	"context"
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

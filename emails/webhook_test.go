package emails_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/grace-coaching/grace/emails"
)

const bouncedBody = `{"type":"email.bounced","created_at":"2026-03-02T09:15:00.123Z","data":{"created_at":"2026-03-02T09:14:59.000000+00:00","email_id":"4ef9a417-02e9-4d39-ad75-9611e0fcc33c","from":"Grace <grace@example.com>","to":["Jane <Jane@Example.com>"],"subject":"Welcome","bounce":{"message":"550 5.1.1 mailbox does not exist","subType":"General","type":"Permanent"}}}`

func verifier(t *testing.T, secret string) *emails.WebhookVerifier {
	t.Helper()
	v, err := emails.NewWebhookVerifier(secret)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestWebhookVerifierParsesASignedBounce(t *testing.T) {
	secret := emails.NewTestWebhookSecret("parse")
	v := verifier(t, secret)
	h := emails.SignTestWebhook(secret, "msg_2bounce", time.Now(), []byte(bouncedBody))
	ev, err := v.ParseEmailEvent([]byte(bouncedBody), h)
	if err != nil {
		t.Fatal(err)
	}
	if ev.SvixID != "msg_2bounce" || ev.Type != "email.bounced" || ev.ResendEmailID != "4ef9a417-02e9-4d39-ad75-9611e0fcc33c" {
		t.Errorf("event ids = %+v", ev)
	}
	if len(ev.To) != 1 || ev.To[0] != "Jane@Example.com" {
		t.Errorf("To = %q, want the bare address", ev.To)
	}
	if ev.BounceType != "Permanent" || ev.BounceSubType != "General" || !strings.Contains(ev.BounceMessage, "5.1.1") {
		t.Errorf("bounce = %q %q %q", ev.BounceType, ev.BounceSubType, ev.BounceMessage)
	}
	if want := time.Date(2026, 3, 2, 9, 15, 0, 123e6, time.UTC); !ev.OccurredAt.Equal(want) {
		t.Errorf("OccurredAt = %v, want the event's created_at %v", ev.OccurredAt, want)
	}
	if string(ev.Payload) != bouncedBody {
		t.Error("the payload must be the body exactly as signed")
	}
}

func TestWebhookVerifierRefusesWhatResendDidNotSign(t *testing.T) {
	secret := emails.NewTestWebhookSecret("refuse")
	v := verifier(t, secret)
	body := []byte(bouncedBody)
	now := time.Now()
	tests := []struct {
		name   string
		body   []byte
		header func() http.Header
	}{
		{"tampered body", []byte(strings.Replace(bouncedBody, "Permanent", "Transient", 1)),
			func() http.Header { return emails.SignTestWebhook(secret, "msg_1", now, body) }},
		{"another secret", body,
			func() http.Header {
				return emails.SignTestWebhook(emails.NewTestWebhookSecret("other"), "msg_1", now, body)
			}},
		{"another event id", body, func() http.Header {
			h := emails.SignTestWebhook(secret, "msg_1", now, body)
			h.Set(emails.HeaderSvixID, "msg_2")
			return h
		}},
		{"stale: six minutes old", body, func() http.Header { return emails.SignTestWebhook(secret, "msg_1", now.Add(-6*time.Minute), body) }},
		{"from the future", body, func() http.Header { return emails.SignTestWebhook(secret, "msg_1", now.Add(6*time.Minute), body) }},
		{"no signature", body, func() http.Header {
			h := emails.SignTestWebhook(secret, "msg_1", now, body)
			h.Del(emails.HeaderSvixSignature)
			return h
		}},
		{"no id", body, func() http.Header {
			h := emails.SignTestWebhook(secret, "msg_1", now, body)
			h.Del(emails.HeaderSvixID)
			return h
		}},
		{"signed but not JSON", []byte("not json"), func() http.Header { return emails.SignTestWebhook(secret, "msg_1", now, []byte("not json")) }},
		{"signed but no type", []byte(`{"data":{}}`), func() http.Header { return emails.SignTestWebhook(secret, "msg_1", now, []byte(`{"data":{}}`)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ev, err := v.ParseEmailEvent(tt.body, tt.header()); err == nil {
				t.Fatalf("accepted: %+v", ev)
			}
		})
	}
}

// While a secret is rotated Svix sends one signature per secret; any
// matching one is enough.
func TestWebhookVerifierAcceptsOneOfSeveralSignatures(t *testing.T) {
	secret := emails.NewTestWebhookSecret("rotation")
	v := verifier(t, secret)
	body := []byte(`{"type":"email.delivered","created_at":"2026-03-02T09:00:00Z","data":{"email_id":"e1","to":"jane@example.com"}}`)
	now := time.Now()
	old := emails.SignTestWebhook(emails.NewTestWebhookSecret("old"), "msg_r", now, body)
	h := emails.SignTestWebhook(secret, "msg_r", now, body)
	h.Set(emails.HeaderSvixSignature, old.Get(emails.HeaderSvixSignature)+" "+h.Get(emails.HeaderSvixSignature))
	ev, err := v.ParseEmailEvent(body, h)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.To) != 1 || ev.To[0] != "jane@example.com" {
		t.Errorf("a single-string to = %q", ev.To)
	}
}

func TestWebhookEventTimeFallsBackToTheSignedTimestamp(t *testing.T) {
	secret := emails.NewTestWebhookSecret("time")
	v := verifier(t, secret)
	body := []byte(`{"type":"contact.created","data":{}}`)
	at := time.Now().Truncate(time.Second)
	ev, err := v.ParseEmailEvent(body, emails.SignTestWebhook(secret, "msg_t", at, body))
	if err != nil {
		t.Fatal(err)
	}
	if !ev.OccurredAt.Equal(at) || ev.ResendEmailID != "" || len(ev.To) != 0 {
		t.Errorf("event = %+v, want the signed time %v and no email", ev, at)
	}
}

func TestNewWebhookVerifierRefusesMalformedSecrets(t *testing.T) {
	for _, s := range []string{"", "secret", "whsec_", "whsec_***"} {
		if _, err := emails.NewWebhookVerifier(s); err == nil {
			t.Errorf("NewWebhookVerifier(%q) accepted", s)
		}
	}
}

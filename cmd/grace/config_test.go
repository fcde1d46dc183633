package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadConfigDefaults(t *testing.T) {
	c, err := loadConfig(envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.DatabaseURL != defaultDatabaseURL || c.HTTPAddr != ":8080" || !c.Worker || c.LogLevel != slog.LevelInfo {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	if c.ResendRateLimit != 2 || c.APIBaseURL != c.AppBaseURL || c.UnsubscribeMailbox != "unsubscribe@grace.localhost" ||
		c.DripLease != 5*time.Minute {
		t.Fatalf("unexpected drip defaults: rate %v api %q mailbox %q lease %s", c.ResendRateLimit, c.APIBaseURL, c.UnsubscribeMailbox, c.DripLease)
	}
}

func TestLoadConfigRetention(t *testing.T) {
	c, err := loadConfig(envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	day := 24 * time.Hour
	if c.Retention.EmailBodies != 90*day || c.Retention.ConsentEvidence != 1095*day || c.Retention.WebhookPayloads != 30*day {
		t.Fatalf("retention defaults %+v", c.Retention)
	}
	c, err = loadConfig(envOf(map[string]string{"RETENTION_EMAIL_DAYS": "30", "RETENTION_CONSENT_EVIDENCE_DAYS": "730", "RETENTION_WEBHOOK_DAYS": "7"}))
	if err != nil || c.Retention.EmailBodies != 30*day || c.Retention.ConsentEvidence != 730*day || c.Retention.WebhookPayloads != 7*day {
		t.Fatalf("retention %+v %v", c.Retention, err)
	}
}

func TestLoadConfigDripSettings(t *testing.T) {
	c, err := loadConfig(envOf(map[string]string{
		"EMAIL_FROM":        "Maya <hello@say-no.example>",
		"APP_BASE_URL":      "https://portal.say-no.example/",
		"RESEND_RATE_LIMIT": "4.5",
		"DRIP_LEASE":        "90s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.ResendRateLimit != 4.5 || c.APIBaseURL != "https://portal.say-no.example" ||
		c.UnsubscribeMailbox != "unsubscribe@say-no.example" || c.DripLease != 90*time.Second {
		t.Fatalf("config %+v", c)
	}
	c, err = loadConfig(envOf(map[string]string{
		"API_BASE_URL": "https://api.say-no.example/", "UNSUBSCRIBE_MAILBOX": "stop@say-no.example",
	}))
	if err != nil || c.APIBaseURL != "https://api.say-no.example" || c.UnsubscribeMailbox != "stop@say-no.example" {
		t.Fatalf("config %+v %v", c, err)
	}
}

// Shutdown outlasts a checkout against a hung Stripe: every attempt timing
// out plus the SDK's backoff, plus the database work around the call.
func TestLoadConfigShutdownGrace(t *testing.T) {
	tests := []struct {
		name        string
		env         map[string]string
		wantTimeout time.Duration
		wantGrace   time.Duration
	}{
		{"defaults", nil, 10 * time.Second, 3*10*time.Second + 1500*time.Millisecond + 15*time.Second},
		{"derived from STRIPE_TIMEOUT", map[string]string{"STRIPE_TIMEOUT": "2s"}, 2 * time.Second, 3*2*time.Second + 1500*time.Millisecond + 15*time.Second},
		{"set longer", map[string]string{"SHUTDOWN_GRACE": "2m"}, 10 * time.Second, 2 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadConfig(envOf(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if c.StripeTimeout != tt.wantTimeout || c.ShutdownGrace != tt.wantGrace {
				t.Fatalf("STRIPE_TIMEOUT %s SHUTDOWN_GRACE %s, want %s and %s", c.StripeTimeout, c.ShutdownGrace, tt.wantTimeout, tt.wantGrace)
			}
		})
	}
	// A grace that fits the default timeout's worst case is too short for a
	// longer one.
	if _, err := loadConfig(envOf(map[string]string{"STRIPE_TIMEOUT": "15s", "SHUTDOWN_GRACE": "50s"})); err == nil || !strings.Contains(err.Error(), "SHUTDOWN_GRACE") {
		t.Fatalf("err = %v, want SHUTDOWN_GRACE refused", err)
	}
}

func TestLoadConfigRejectsBadValues(t *testing.T) {
	tests := []struct {
		key, value string
	}{
		{"DATABASE_URL", "mysql://x/y"},
		{"DATABASE_URL", "postgres://127.0.0.1:5432"},
		{"HTTP_ADDR", "8080"},
		{"APP_BASE_URL", "portal.example.com"},
		{"CORS_ORIGINS", "https://ok.example.com, not a url"},
		{"EMAIL_FROM", "nobody"},
		{"RESEND_WEBHOOK_SECRET", "secret"},
		{"STRIPE_SECRET_KEY", "pk_test_123"},
		{"STRIPE_WEBHOOK_SECRET", "nope"},
		{"STRIPE_API_URL", "localhost:12111"},
		{"WORKER", "maybe"},
		{"RESEND_RATE_LIMIT", "0"},
		{"RESEND_RATE_LIMIT", "-1"},
		{"RESEND_RATE_LIMIT", "fast"},
		{"RESEND_RATE_LIMIT", "NaN"},
		{"API_BASE_URL", "api.example.com"},
		{"UNSUBSCRIBE_MAILBOX", "Stop <stop@example.com>"},
		{"UNSUBSCRIBE_MAILBOX", "nobody"},
		{"DRIP_LEASE", "5"},
		{"DRIP_LEASE", "100ms"},
		{"RETENTION_EMAIL_DAYS", "0"},
		{"RETENTION_EMAIL_DAYS", "90d"},
		{"RETENTION_CONSENT_EVIDENCE_DAYS", "-1"},
		{"RETENTION_WEBHOOK_DAYS", "99999"},
		{"STRIPE_TIMEOUT", "500ms"},
		{"STRIPE_TIMEOUT", "1m"},
		{"STRIPE_TIMEOUT", "slow"},
		{"SHUTDOWN_GRACE", "30s"}, // the 30 s that cut checkouts off mid-call
		{"SHUTDOWN_GRACE", "1h"},
		{"SHUTDOWN_GRACE", "soon"},
		{"LOG_LEVEL", "loud"},
		{"TRUSTED_PROXIES", "10.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			_, err := loadConfig(envOf(map[string]string{tt.key: tt.value}))
			if err == nil || !strings.Contains(err.Error(), tt.key) {
				t.Fatalf("err = %v, want one naming %s", err, tt.key)
			}
		})
	}
}

func TestLoadConfigReportsEveryProblemAtOnce(t *testing.T) {
	_, err := loadConfig(envOf(map[string]string{"HTTP_ADDR": "x", "WORKER": "x", "LOG_LEVEL": "x"}))
	for _, key := range []string{"HTTP_ADDR", "WORKER", "LOG_LEVEL"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("err = %v, want it to name %s", err, key)
		}
	}
}

func TestConfigLogNeverShowsSecrets(t *testing.T) {
	secrets := map[string]string{
		"DATABASE_URL":          "postgres://grace:db-password-123@db:5432/grace",
		"RESEND_API_KEY":        "re_secret_value_123",
		"RESEND_WEBHOOK_SECRET": "whsec_resend_secret_123",
		"STRIPE_SECRET_KEY":     "sk_test_secret_value_123",
		"STRIPE_WEBHOOK_SECRET": "whsec_stripe_secret_123",
	}
	c, err := loadConfig(envOf(secrets))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "config", c)
	for key, v := range secrets {
		secret := v
		if key == "DATABASE_URL" {
			secret = "db-password-123"
		}
		if strings.Contains(buf.String(), secret) {
			t.Errorf("log line shows %s: %s", key, buf.String())
		}
	}
	if !strings.Contains(buf.String(), `"stripe_secret_key_set":true`) {
		t.Errorf("log line should say the Stripe key is set: %s", buf.String())
	}
}

package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
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

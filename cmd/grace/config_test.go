package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/grace-coaching/grace/models/journal"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// devEnv is m in dev mode, where nothing else is required: the tests of
// single settings need no sender.
func devEnv(m map[string]string) func(string) string {
	env := map[string]string{"GRACE_ENV": "dev"}
	for k, v := range m {
		env[k] = v
	}
	return envOf(env)
}

// prodEnv is the least production configuration that starts, with m on top.
func prodEnv(m map[string]string) map[string]string {
	env := map[string]string{
		"RESEND_API_KEY":  "re_live_123",
		"EMAIL_FROM":      "Maya <hello@say-no.example>",
		"APP_BASE_URL":    "https://portal.say-no.example",
		"REFLECTIONS_KEY": journal.NewMasterKey("test").String(),
	}
	for k, v := range m {
		env[k] = v
	}
	return env
}

func TestLoadConfigDefaults(t *testing.T) {
	c, err := loadConfig(devEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Env != EnvDev || c.DatabaseURL != defaultDatabaseURL || c.HTTPAddr != ":8080" || !c.Worker || c.LogLevel != slog.LevelInfo {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	if c.ResendRateLimit != 2 || c.APIBaseURL != c.AppBaseURL || c.UnsubscribeMailbox != "unsubscribe@grace.localhost" ||
		c.DripLease != 5*time.Minute {
		t.Fatalf("unexpected drip defaults: rate %v api %q mailbox %q lease %s", c.ResendRateLimit, c.APIBaseURL, c.UnsubscribeMailbox, c.DripLease)
	}
}

func TestLoadConfigRetention(t *testing.T) {
	c, err := loadConfig(devEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	day := 24 * time.Hour
	if c.Retention.EmailBodies != 90*day || c.Retention.ConsentEvidence != 1095*day || c.Retention.WebhookPayloads != 30*day {
		t.Fatalf("retention defaults %+v", c.Retention)
	}
	c, err = loadConfig(devEnv(map[string]string{"RETENTION_EMAIL_DAYS": "30", "RETENTION_CONSENT_EVIDENCE_DAYS": "730", "RETENTION_WEBHOOK_DAYS": "7"}))
	if err != nil || c.Retention.EmailBodies != 30*day || c.Retention.ConsentEvidence != 730*day || c.Retention.WebhookPayloads != 7*day {
		t.Fatalf("retention %+v %v", c.Retention, err)
	}
}

func TestLoadConfigDripSettings(t *testing.T) {
	c, err := loadConfig(devEnv(map[string]string{
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
	c, err = loadConfig(devEnv(map[string]string{
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
			c, err := loadConfig(devEnv(tt.env))
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
	if _, err := loadConfig(devEnv(map[string]string{"STRIPE_TIMEOUT": "15s", "SHUTDOWN_GRACE": "50s"})); err == nil || !strings.Contains(err.Error(), "SHUTDOWN_GRACE") {
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
		{"CORS_ORIGINS", "*"},
		{"CORS_ORIGINS", "https://*.example.com"},
		{"GRACE_ENV", "staging"},
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
		{"GRACE_ENV", "staging"},
		{"REFLECTIONS_KEY", "no-id-here"},
		{"REFLECTIONS_KEY", "k1:c2hvcnQ="}, // 5 bytes
		{"REFLECTIONS_KEY", "bad id:" + journal.NewMasterKey("x").String()[2:]},
		{"REFLECTIONS_PREVIOUS_KEYS", "old:!!!"},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			_, err := loadConfig(devEnv(map[string]string{tt.key: tt.value}))
			if err == nil || !strings.Contains(err.Error(), tt.key) {
				t.Fatalf("err = %v, want one naming %s", err, tt.key)
			}
		})
	}
}

func TestLoadConfigReportsEveryProblemAtOnce(t *testing.T) {
	_, err := loadConfig(devEnv(map[string]string{"HTTP_ADDR": "x", "WORKER": "x", "LOG_LEVEL": "x"}))
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
		"REFLECTIONS_KEY":       journal.NewMasterKey("2026-01").String(),
		"GRACE_DEVICE_KEY":      "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
	}
	c, err := loadConfig(devEnv(secrets))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "config", c)
	for key, v := range secrets {
		secret := v
		switch key {
		case "DATABASE_URL":
			secret = "db-password-123"
		case "REFLECTIONS_KEY":
			secret = strings.TrimPrefix(v, "2026-01:")
		}
		if strings.Contains(buf.String(), secret) {
			t.Errorf("log line shows %s: %s", key, buf.String())
		}
	}
	if !strings.Contains(buf.String(), `"reflections_key_ids":["2026-01"]`) {
		t.Errorf("log line should name the reflections key id: %s", buf.String())
	}
	if !strings.Contains(buf.String(), `"stripe_secret_key_set":true`) {
		t.Errorf("log line should say the Stripe key is set: %s", buf.String())
	}
}

// Profiles are served only where no one but the machine's operator can
// reach them: a loopback address, and off unless set.
func TestLoadConfigPprofAddr(t *testing.T) {
	tests := []struct {
		addr    string
		wantErr bool
	}{
		{"", false},
		{"127.0.0.1:6060", false},
		{"[::1]:6060", false},
		{"localhost:6060", false},
		{"127.0.0.1:0", false},
		{":6060", true},
		{"0.0.0.0:6060", true},
		{"10.0.0.5:6060", true},
		{"127.0.0.1", true},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			c, err := loadConfig(devEnv(map[string]string{"GRACE_PPROF_ADDR": tt.addr}))
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), "GRACE_PPROF_ADDR") {
					t.Fatalf("GRACE_PPROF_ADDR=%q: err %v, want one naming GRACE_PPROF_ADDR", tt.addr, err)
				}
				return
			}
			if err != nil || c.PprofAddr != tt.addr {
				t.Fatalf("GRACE_PPROF_ADDR=%q: addr %q, err %v", tt.addr, c.PprofAddr, err)
			}
		})
	}
}

// Production is the default, and it refuses what would harm a participant:
// no sender (her sign-in link would go to the log), Stripe without its
// webhook secret (she pays and never gets in), plain-http links and
// origins, and secret keys sent over plain http.
func TestLoadConfigProductionRefusesUnsafeSettings(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string // each named in the error; none: it starts
	}{
		{"nothing set", nil, []string{"RESEND_API_KEY and EMAIL_FROM must be set", "APP_BASE_URL must be an https:// URL"}},
		{"no sender", prodEnv(map[string]string{"RESEND_API_KEY": "", "EMAIL_FROM": ""}), []string{"RESEND_API_KEY and EMAIL_FROM must be set"}},
		{"no from address", prodEnv(map[string]string{"EMAIL_FROM": ""}), []string{"EMAIL_FROM must be set"}},
		{"explicitly production", prodEnv(map[string]string{"GRACE_ENV": "production", "RESEND_API_KEY": ""}), []string{"RESEND_API_KEY must be set"}},
		{"stripe without webhook secret", prodEnv(map[string]string{"STRIPE_SECRET_KEY": "sk_live_123"}), []string{"STRIPE_WEBHOOK_SECRET must be set"}},
		{"http portal", prodEnv(map[string]string{"APP_BASE_URL": "http://portal.say-no.example"}), []string{"APP_BASE_URL"}},
		{"http api", prodEnv(map[string]string{"API_BASE_URL": "http://api.say-no.example"}), []string{"API_BASE_URL"}},
		{"http origin", prodEnv(map[string]string{"CORS_ORIGINS": "https://admin.say-no.example,http://portal.say-no.example"}), []string{"CORS_ORIGINS"}},
		{"resend over http", prodEnv(map[string]string{"RESEND_API_URL": "http://resend.internal"}), []string{"RESEND_API_URL"}},
		{"stripe over http", prodEnv(map[string]string{"STRIPE_SECRET_KEY": "sk_live_1", "STRIPE_WEBHOOK_SECRET": "whsec_1", "STRIPE_API_URL": "http://stripe.internal"}), []string{"STRIPE_API_URL"}},
		{"complete", prodEnv(map[string]string{"CORS_ORIGINS": "https://admin.say-no.example", "STRIPE_SECRET_KEY": "sk_live_1", "STRIPE_WEBHOOK_SECRET": "whsec_1"}), nil},
		{"a provider on this machine", prodEnv(map[string]string{"RESEND_API_URL": "http://127.0.0.1:4010", "STRIPE_SECRET_KEY": "sk_test_1", "STRIPE_WEBHOOK_SECRET": "whsec_1", "STRIPE_API_URL": "http://localhost:12111"}), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadConfig(envOf(tt.env))
			if len(tt.want) == 0 {
				if err != nil || c.Env != EnvProduction {
					t.Fatalf("env %s, err %v; want production to start", c.Env, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("production started with %v", tt.env)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nwant it to say %q", err, w)
				}
			}
			// Each problem is one line an operator can act on.
			for _, line := range strings.Split(err.Error(), "\n")[1:] {
				if !strings.Contains(line, "GRACE_ENV") && !strings.Contains(line, ":") {
					t.Errorf("line %q does not name its setting", line)
				}
			}
		})
	}
	// The same settings start in dev mode, which says what it fakes.
	c, err := loadConfig(devEnv(nil))
	if err != nil || c.Env != EnvDev {
		t.Fatalf("dev: env %s, err %v", c.Env, err)
	}
	if n := devModeNotice(c); !strings.HasPrefix(n, "DEV MODE") || !strings.Contains(n, "emails are printed") || !strings.Contains(n, "payments are off") {
		t.Fatalf("dev notice %q", n)
	}
}

// Production never starts without the reflections key; dev mode derives a
// stand-in, the same on every start, and says so.
func TestReflectionsKeyRequiredOutsideDev(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	c, err := loadConfig(envOf(prodEnv(map[string]string{"REFLECTIONS_KEY": ""})))
	if err == nil || !strings.Contains(err.Error(), "REFLECTIONS_KEY") {
		t.Fatalf("production without a key: err = %v, want a refusal naming REFLECTIONS_KEY", err)
	}
	if _, err := c.reflectionsKeyring(log); err == nil || !strings.Contains(err.Error(), "REFLECTIONS_KEY") {
		t.Fatalf("production without a key: err = %v, want a refusal naming REFLECTIONS_KEY", err)
	}
	var out bytes.Buffer
	if err := run(t.Context(), []string{"serve"}, envOf(prodEnv(map[string]string{"DATABASE_URL": "postgres://127.0.0.1:1/none", "REFLECTIONS_KEY": ""})), nil, &out); err == nil ||
		!strings.Contains(err.Error(), "REFLECTIONS_KEY") {
		t.Fatalf("grace serve without a key: err = %v, want a refusal naming REFLECTIONS_KEY before the database is tried", err)
	}

	c, err = loadConfig(envOf(map[string]string{"GRACE_ENV": "dev"}))
	if err != nil {
		t.Fatal(err)
	}
	first, err := c.reflectionsKeyring(log)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := c.reflectionsKeyring(log)
	if first.CurrentID() != "dev" || !strings.Contains(logs.String(), "DEV MODE, REFLECTIONS_KEY is not set") {
		t.Fatalf("dev keyring %q, log %s", first.CurrentID(), logs.String())
	}
	if journal.DevMasterKey(c.DatabaseURL).String() != journal.DevMasterKey(c.DatabaseURL).String() || again.CurrentID() != "dev" {
		t.Fatal("the dev key must be the same on every start, or yesterday's reflections would not open")
	}

	key := journal.NewMasterKey("2026-02")
	old := journal.NewMasterKey("2026-01")
	c, err = loadConfig(envOf(prodEnv(map[string]string{"REFLECTIONS_KEY": key.String(), "REFLECTIONS_PREVIOUS_KEYS": old.String()})))
	if err != nil {
		t.Fatal(err)
	}
	ring, err := c.reflectionsKeyring(log)
	if err != nil || ring.CurrentID() != "2026-02" {
		t.Fatalf("configured keyring %v, %v", ring, err)
	}
}

package main

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/grace-coaching/grace/api/stripe"
	"github.com/grace-coaching/grace/emails"
	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/journal"
	"github.com/grace-coaching/grace/models/privacy"
)

// Env is how Grace runs, decided once by GRACE_ENV and passed down: in
// production (the default) nothing is faked, and start-up refuses a
// configuration that would print sign-in links to the log or take payments
// without their webhooks; in dev, email without a Resend key is written to
// the log and payments without a Stripe key are unavailable, announced at
// start-up.
type Env string

const (
	EnvProduction Env = "production"
	EnvDev        Env = "dev"
)

// Config is every setting Grace reads, all from the environment, all here.
type Config struct {
	Env         Env
	DatabaseURL string
	HTTPAddr    string
	AppBaseURL  string
	CORSOrigins []string
	EmailFrom   string
	// Discreet is how email to a woman in discreet mode looks unopened:
	// DISCREET_SENDER_NAME, DISCREET_EMAIL_FROM (a bare address on a domain
	// that does not name the practice), DISCREET_SUBJECT, DISCREET_PREVIEW.
	Discreet            emails.Discreet
	ResendAPIKey        string
	ResendAPIURL        string
	ResendWebhookSecret string
	// ResendRateLimit is Resend's request budget, requests per second,
	// shared by every drip worker of every process.
	ResendRateLimit float64
	// PasswordHashesPerCore sizes the login hash budget shared by every
	// instance (models.HashBudget).
	PasswordHashesPerCore float64
	// APIBaseURL is this API's public URL, for one-click unsubscribe links.
	APIBaseURL string
	// UnsubscribeMailbox receives mailto: unsubscribes (List-Unsubscribe).
	UnsubscribeMailbox string
	// DripLease is how long a drip worker holds a batch before another may
	// take it over (its worker presumed dead).
	DripLease           time.Duration
	StripeSecretKey     string
	StripeWebhookSecret string
	StripeAPIURL        string
	// StripeTimeout bounds each attempt of a Stripe call; with the
	// adapter's retries it gives a checkout's worst case.
	StripeTimeout time.Duration
	// ShutdownGrace is how long shutdown waits for in-flight requests; it
	// exceeds a checkout's worst case, so none is cut off with its seat
	// held.
	ShutdownGrace time.Duration
	Worker        bool
	// Retention is how long email bodies (RETENTION_EMAIL_DAYS), consent
	// evidence (RETENTION_CONSENT_EVIDENCE_DAYS) and webhook payloads
	// (RETENTION_WEBHOOK_DAYS) are kept.
	Retention      privacy.Retention
	LogLevel       slog.Level
	TrustedProxies []*net.IPNet
	// PprofAddr, when set, serves Go's profiles (net/http/pprof) on this
	// loopback address, apart from the API; off by default.
	PprofAddr string
	// ReflectionsKey is the master key reflections are encrypted under
	// (REFLECTIONS_KEY), nil when not set; ReflectionsPreviousKeys only
	// unwrap data keys not yet rewrapped after a rotation.
	ReflectionsKey          *journal.MasterKey
	ReflectionsPreviousKeys []journal.MasterKey
	// DeviceKey signs coaches' known-device cookies (GRACE_DEVICE_KEY, 32+
	// bytes as hex or base64); empty derives a random one at start-up.
	DeviceKey []byte
}

// reflectionsKeyring is the keyring reflections are encrypted under. In
// production REFLECTIONS_KEY is required; dev mode derives a stand-in from
// DATABASE_URL, stable across restarts and protecting nothing.
func (c Config) reflectionsKeyring(log *slog.Logger) (*journal.Keyring, error) {
	current := c.ReflectionsKey
	if current == nil {
		if c.Env != EnvDev {
			return nil, errors.New("REFLECTIONS_KEY is not set: reflections cannot be stored encrypted. " +
				"Generate one with `grace reflections-key` and keep it apart from the database backups " +
				"(or set GRACE_ENV=dev for a local demo)")
		}
		k := journal.DevMasterKey(c.DatabaseURL)
		current = &k
		log.Warn("reflections: DEV MODE, REFLECTIONS_KEY is not set: reflections are encrypted under a key derived from DATABASE_URL, which protects nothing")
	}
	return journal.NewKeyring(*current, c.ReflectionsPreviousKeys...)
}

// limits are the domain's rate limits with the configured hash budget.
func (c Config) limits() *models.Limits {
	l := models.DefaultLimits()
	l.PasswordHashes = models.HashBudget(c.PasswordHashesPerCore)
	return &l
}

const defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/grace?sslmode=disable"

// loadConfig reads and validates the environment, reporting every bad value
// at once so start-up fails with one clear message.
func loadConfig(getenv func(string) string) (Config, error) {
	get := func(key, def string) string {
		if v := strings.TrimSpace(getenv(key)); v != "" {
			return v
		}
		return def
	}
	c := Config{
		DatabaseURL:         get("DATABASE_URL", defaultDatabaseURL),
		HTTPAddr:            get("HTTP_ADDR", ":8080"),
		AppBaseURL:          strings.TrimRight(get("APP_BASE_URL", "http://localhost:8080"), "/"),
		EmailFrom:           get("EMAIL_FROM", "Grace <hello@grace.localhost>"),
		ResendAPIKey:        get("RESEND_API_KEY", ""),
		ResendAPIURL:        get("RESEND_API_URL", "https://api.resend.com"),
		ResendWebhookSecret: get("RESEND_WEBHOOK_SECRET", ""),
		StripeSecretKey:     get("STRIPE_SECRET_KEY", ""),
		StripeWebhookSecret: get("STRIPE_WEBHOOK_SECRET", ""),
		StripeAPIURL:        get("STRIPE_API_URL", ""),
	}
	c.APIBaseURL = strings.TrimRight(get("API_BASE_URL", c.AppBaseURL), "/")
	c.Discreet = emails.Discreet{
		SenderName: get("DISCREET_SENDER_NAME", emails.DefaultDiscreetSenderName),
		Address:    get("DISCREET_EMAIL_FROM", ""),
		Subject:    get("DISCREET_SUBJECT", emails.DefaultDiscreetSubject),
		Preview:    get("DISCREET_PREVIEW", ""),
	}
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}

	switch env := Env(strings.ToLower(get("GRACE_ENV", string(EnvProduction)))); env {
	case EnvProduction, EnvDev:
		c.Env = env
	default:
		bad("GRACE_ENV", "must be production (the default) or dev, got %q", getenv("GRACE_ENV"))
		c.Env = EnvProduction
	}

	if u, err := url.Parse(c.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || strings.Trim(u.Path, "/") == "" {
		bad("DATABASE_URL", "must be a postgres:// URL naming a database")
	}
	if _, port, err := net.SplitHostPort(c.HTTPAddr); err != nil || port == "" {
		bad("HTTP_ADDR", "must be host:port or :port, got %q", c.HTTPAddr)
	}
	if !isHTTPURL(c.AppBaseURL) {
		bad("APP_BASE_URL", "must be an absolute http(s) URL, got %q", c.AppBaseURL)
	}
	for _, o := range strings.Split(getenv("CORS_ORIGINS"), ",") {
		if o = strings.TrimRight(strings.TrimSpace(o), "/"); o == "" {
			continue
		}
		// No wildcard: the portal and the admin panel send credentials,
		// and an origin allowed with them may read her data.
		if u, err := url.Parse(o); err != nil || !isHTTPURL(o) || u.Path != "" || strings.Contains(o, "*") {
			bad("CORS_ORIGINS", "%q is not an origin like https://portal.example.com (no wildcards)", o)
			continue
		}
		c.CORSOrigins = append(c.CORSOrigins, o)
	}
	if _, err := mail.ParseAddress(c.EmailFrom); err != nil {
		bad("EMAIL_FROM", "must be an address like \"Grace <hello@example.com>\"")
	}
	if err := c.Discreet.Validate(); err != nil {
		bad("DISCREET_*", "%v", err)
	}
	if !isHTTPURL(c.ResendAPIURL) {
		bad("RESEND_API_URL", "must be an absolute http(s) URL")
	}
	if !isHTTPURL(c.APIBaseURL) {
		bad("API_BASE_URL", "must be an absolute http(s) URL, got %q", c.APIBaseURL)
	}
	rate, err := strconv.ParseFloat(get("RESEND_RATE_LIMIT", "2"), 64)
	if err != nil || !(rate > 0) || rate > 1000 {
		bad("RESEND_RATE_LIMIT", "must be a number of requests per second above 0 (at most 1000), got %q", getenv("RESEND_RATE_LIMIT"))
	}
	c.ResendRateLimit = rate
	c.UnsubscribeMailbox = get("UNSUBSCRIBE_MAILBOX", "")
	if c.UnsubscribeMailbox == "" {
		if from, err := mail.ParseAddress(c.EmailFrom); err == nil {
			c.UnsubscribeMailbox = "unsubscribe@" + from.Address[strings.LastIndexByte(from.Address, '@')+1:]
		}
	}
	if a, err := mail.ParseAddress(c.UnsubscribeMailbox); c.UnsubscribeMailbox != "" && (err != nil || a.Name != "" || a.Address != c.UnsubscribeMailbox) {
		bad("UNSUBSCRIBE_MAILBOX", "must be a bare address like unsubscribe@example.com, got %q", c.UnsubscribeMailbox)
	}
	lease, err := time.ParseDuration(get("DRIP_LEASE", "5m"))
	if err != nil || lease < time.Second || lease > time.Hour {
		bad("DRIP_LEASE", "must be a duration between 1s and 1h such as 5m, got %q", getenv("DRIP_LEASE"))
	}
	c.DripLease = lease
	c.PasswordHashesPerCore, err = strconv.ParseFloat(get("PASSWORD_HASHES_PER_CORE", strconv.Itoa(models.DefaultHashesPerCore)), 64)
	if err != nil || !(c.PasswordHashesPerCore > 0) || c.PasswordHashesPerCore > 100 {
		bad("PASSWORD_HASHES_PER_CORE", "must be a number of hashes per second per core above 0 (at most 100), got %q", getenv("PASSWORD_HASHES_PER_CORE"))
	}
	if c.ResendWebhookSecret != "" && !strings.HasPrefix(c.ResendWebhookSecret, "whsec_") {
		bad("RESEND_WEBHOOK_SECRET", "must start with whsec_")
	}
	if c.StripeSecretKey != "" && !strings.HasPrefix(c.StripeSecretKey, "sk_") && !strings.HasPrefix(c.StripeSecretKey, "rk_") {
		bad("STRIPE_SECRET_KEY", "must start with sk_ or rk_")
	}
	if c.StripeWebhookSecret != "" && !strings.HasPrefix(c.StripeWebhookSecret, "whsec_") {
		bad("STRIPE_WEBHOOK_SECRET", "must start with whsec_")
	}
	if c.StripeAPIURL != "" && !isHTTPURL(c.StripeAPIURL) {
		bad("STRIPE_API_URL", "must be an absolute http(s) URL")
	}
	c.StripeTimeout, err = time.ParseDuration(get("STRIPE_TIMEOUT", stripe.DefaultCallTimeout.String()))
	if err != nil || c.StripeTimeout < time.Second || c.StripeTimeout > maxStripeTimeout {
		bad("STRIPE_TIMEOUT", "must be a duration between 1s and %s such as 10s, got %q", maxStripeTimeout, getenv("STRIPE_TIMEOUT"))
		c.StripeTimeout = stripe.DefaultCallTimeout
	}
	minGrace := minShutdownGrace(c.StripeTimeout)
	c.ShutdownGrace, err = time.ParseDuration(get("SHUTDOWN_GRACE", minGrace.String()))
	if err != nil || c.ShutdownGrace < minGrace || c.ShutdownGrace > maxShutdownGrace {
		bad("SHUTDOWN_GRACE", "must be a duration between %s (a checkout's worst case with STRIPE_TIMEOUT=%s, plus %s) and %s, got %q",
			minGrace, c.StripeTimeout, shutdownSlack, maxShutdownGrace, getenv("SHUTDOWN_GRACE"))
	}
	days := func(key string, def time.Duration, min, max int) time.Duration {
		d := int(def / (24 * time.Hour))
		n, err := strconv.Atoi(get(key, strconv.Itoa(d)))
		if err != nil || n < min || n > max {
			bad(key, "must be a number of days between %d and %d, got %q", min, max, getenv(key))
			return def
		}
		return time.Duration(n) * 24 * time.Hour
	}
	def := privacy.DefaultRetention()
	c.Retention = privacy.Retention{
		EmailBodies:     days("RETENTION_EMAIL_DAYS", def.EmailBodies, 1, 3650),
		ConsentEvidence: days("RETENTION_CONSENT_EVIDENCE_DAYS", def.ConsentEvidence, 1, 3650),
		WebhookPayloads: days("RETENTION_WEBHOOK_DAYS", def.WebhookPayloads, 1, 3650),
	}
	switch w := strings.ToLower(get("WORKER", "on")); w {
	case "on", "true", "1":
		c.Worker = true
	case "off", "false", "0":
	default:
		bad("WORKER", "must be on or off, got %q", w)
	}
	if err := c.LogLevel.UnmarshalText([]byte(get("LOG_LEVEL", "info"))); err != nil {
		bad("LOG_LEVEL", "must be debug, info, warn or error")
	}
	for _, cidr := range strings.Split(getenv("TRUSTED_PROXIES"), ",") {
		if cidr = strings.TrimSpace(cidr); cidr == "" {
			continue
		}
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			bad("TRUSTED_PROXIES", "%q is not a CIDR such as 10.0.0.0/8", cidr)
			continue
		}
		c.TrustedProxies = append(c.TrustedProxies, n)
	}
	// Profiles show a request's code paths and timings to whoever can read
	// them, so they are only ever served on loopback, never with the API.
	if c.PprofAddr = get("GRACE_PPROF_ADDR", ""); c.PprofAddr != "" {
		host, port, err := net.SplitHostPort(c.PprofAddr)
		if ip := net.ParseIP(host); err != nil || port == "" || ((ip == nil || !ip.IsLoopback()) && host != "localhost") {
			bad("GRACE_PPROF_ADDR", "must be a loopback host:port such as 127.0.0.1:6060, got %q", c.PprofAddr)
		}
	}
	if v := get("REFLECTIONS_KEY", ""); v != "" {
		k, err := journal.ParseMasterKey(v)
		if err != nil {
			bad("REFLECTIONS_KEY", "%v", err)
		} else {
			c.ReflectionsKey = &k
		}
	}
	for _, v := range strings.Split(getenv("REFLECTIONS_PREVIOUS_KEYS"), ",") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		k, err := journal.ParseMasterKey(v)
		if err != nil {
			bad("REFLECTIONS_PREVIOUS_KEYS", "%v", err)
			continue
		}
		c.ReflectionsPreviousKeys = append(c.ReflectionsPreviousKeys, k)
	}
	if k := get("GRACE_DEVICE_KEY", ""); k != "" {
		if c.DeviceKey = decodeKey(k); len(c.DeviceKey) < 32 {
			bad("GRACE_DEVICE_KEY", "must be at least 32 random bytes as hex or base64 (e.g. openssl rand -hex 32)")
		}
	}
	if c.Env == EnvProduction {
		errs = append(errs, productionProblems(c, getenv)...)
	}
	if len(errs) > 0 {
		return Config{}, fmt.Errorf("invalid configuration:\n  %w", errors.Join(errs...))
	}
	return c, nil
}

// productionProblems are the settings that are fine on a laptop and unsafe
// in front of participants, each one line naming its variables. Without a
// sender the sign-in links would be written to the log, which is not a
// private channel; Stripe without its webhook secret takes payments that
// never activate a seat; a plain-http link in an email carries her sign-in
// token in clear.
func productionProblems(c Config, getenv func(string) string) []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("production (GRACE_ENV is not dev): "+format, args...))
	}
	var missing []string
	if c.ResendAPIKey == "" {
		missing = append(missing, "RESEND_API_KEY")
	}
	if strings.TrimSpace(getenv("EMAIL_FROM")) == "" {
		missing = append(missing, "EMAIL_FROM")
	}
	if len(missing) > 0 {
		bad("%s must be set to send email (or set GRACE_ENV=dev to print emails to the log instead)", strings.Join(missing, " and "))
	}
	if c.ReflectionsKey == nil {
		bad("REFLECTIONS_KEY must be set: reflections are stored encrypted under it (generate one with `grace reflections-key` and keep it apart from database backups)")
	}
	if c.StripeSecretKey != "" && c.StripeWebhookSecret == "" {
		bad("STRIPE_WEBHOOK_SECRET must be set when STRIPE_SECRET_KEY is, or paid enrollments never activate")
	}
	for _, u := range []struct{ key, value string }{{"APP_BASE_URL", c.AppBaseURL}, {"API_BASE_URL", c.APIBaseURL}} {
		if isHTTPURL(u.value) && !strings.HasPrefix(u.value, "https://") {
			bad("%s must be an https:// URL (links in emails carry sign-in tokens), got %q", u.key, u.value)
		}
	}
	for _, o := range c.CORSOrigins {
		if !strings.HasPrefix(o, "https://") {
			bad("CORS_ORIGINS must list https:// origins only, got %q", o)
		}
	}
	// Provider overrides carry the secret keys: https, or a sidecar on
	// this machine.
	for _, u := range []struct{ key, value string }{{"RESEND_API_URL", c.ResendAPIURL}, {"STRIPE_API_URL", c.StripeAPIURL}} {
		if isHTTPURL(u.value) && !strings.HasPrefix(u.value, "https://") && !isLoopbackURL(u.value) {
			bad("%s must be an https:// URL (it is sent the secret key), got %q", u.key, u.value)
		}
	}
	return errs
}

func isLoopbackURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	if u.Hostname() == "localhost" {
		return true
	}
	ip := net.ParseIP(u.Hostname())
	return ip != nil && ip.IsLoopback()
}

// Shutdown bounds. A request's slowest step is its Stripe call (a
// checkout's, three attempts plus backoff); shutdownSlack covers the
// database work around it, the hold's release after a failure included.
// maxStripeTimeout keeps that worst case inside the server's 60 s write
// timeout, so a browser behind a hung Stripe still gets its 502.
const (
	shutdownSlack    = 15 * time.Second
	maxStripeTimeout = 15 * time.Second
	maxShutdownGrace = 10 * time.Minute
)

// minShutdownGrace is the least SHUTDOWN_GRACE, and its default: a
// checkout's worst case against a hung Stripe, plus shutdownSlack.
func minShutdownGrace(stripeTimeout time.Duration) time.Duration {
	return stripe.WorstCase(stripeTimeout, stripe.DefaultMaxNetworkRetries) + shutdownSlack
}

// decodeKey reads a key given as hex or as (URL-safe or standard) base64;
// nil if it is neither.
func decodeKey(s string) []byte {
	if b, err := hex.DecodeString(s); err == nil {
		return b
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b
		}
	}
	return nil
}

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.RawQuery == "" && u.Fragment == ""
}

// LogValue logs the configuration without its secrets: only whether each
// is set.
func (c Config) LogValue() slog.Value {
	dbURL := c.DatabaseURL
	if u, err := url.Parse(dbURL); err == nil {
		dbURL = u.Redacted()
	}
	return slog.GroupValue(
		slog.String("env", string(c.Env)),
		slog.String("database_url", dbURL),
		slog.String("http_addr", c.HTTPAddr),
		slog.String("app_base_url", c.AppBaseURL),
		slog.Any("cors_origins", c.CORSOrigins),
		slog.String("email_from", c.EmailFrom),
		slog.String("discreet_email_from", c.Discreet.Address),
		slog.Bool("resend_api_key_set", c.ResendAPIKey != ""),
		slog.String("resend_api_url", c.ResendAPIURL),
		slog.Bool("resend_webhook_secret_set", c.ResendWebhookSecret != ""),
		slog.Float64("resend_rate_limit", c.ResendRateLimit),
		slog.String("api_base_url", c.APIBaseURL),
		slog.String("unsubscribe_mailbox", c.UnsubscribeMailbox),
		slog.Duration("drip_lease", c.DripLease),
		slog.Float64("password_hashes_per_core", c.PasswordHashesPerCore),
		slog.Bool("stripe_secret_key_set", c.StripeSecretKey != ""),
		slog.Bool("stripe_webhook_secret_set", c.StripeWebhookSecret != ""),
		slog.String("stripe_api_url", c.StripeAPIURL),
		slog.Duration("stripe_timeout", c.StripeTimeout),
		slog.Duration("shutdown_grace", c.ShutdownGrace),
		slog.Bool("device_key_set", len(c.DeviceKey) > 0),
		slog.Bool("worker", c.Worker),
		slog.String("log_level", c.LogLevel.String()),
		slog.String("pprof_addr", c.PprofAddr),
		slog.Any("reflections_key_ids", c.reflectionsKeyIDs()),
	)
}

// reflectionsKeyIDs names the configured master keys, current first: the
// ids are not secret, the keys are.
func (c Config) reflectionsKeyIDs() []string {
	var ids []string
	if c.ReflectionsKey != nil {
		ids = append(ids, c.ReflectionsKey.ID)
	}
	for _, k := range c.ReflectionsPreviousKeys {
		ids = append(ids, k.ID)
	}
	return ids
}

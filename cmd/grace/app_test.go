package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grace-coaching/grace/api/apitest"
	"github.com/grace-coaching/grace/emails/emailstest"
	"github.com/grace-coaching/grace/migrations"
	"github.com/grace-coaching/grace/models/journal"
	"github.com/grace-coaching/grace/models/modelstest"
	"github.com/grace-coaching/grace/models/seed"
)

// lockedWriter lets several goroutines log into one buffer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// bootEnv is the environment a fresh deployment would have, pointed at a
// fresh database and a fake Resend, in the mode the test says.
func bootEnv(t *testing.T, env Env, resendURL, resendKey string) map[string]string {
	t.Helper()
	return map[string]string{
		"GRACE_ENV":      string(env),
		"DATABASE_URL":   modelstest.URL(t),
		"HTTP_ADDR":      "127.0.0.1:0",
		"APP_BASE_URL":   "https://portal.example.com",
		"EMAIL_FROM":     "Grace <hello@example.com>",
		"RESEND_API_KEY": resendKey,
		"RESEND_API_URL": resendURL,
		// Production refuses to start without it.
		"REFLECTIONS_KEY": journal.NewMasterKey("test").String(),
	}
}

func call(t *testing.T, method, url, token string, body any) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	var sent []byte
	if body != nil {
		sent, _ = json.Marshal(body)
		r = bytes.NewReader(sent)
	}
	req, _ := http.NewRequest(method, url, r)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	apitest.Record(t, method, req.URL.RequestURI(), sent, res.StatusCode, res.Header, raw)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return res.StatusCode, out
}

// TestServeWalkthrough boots Grace as `grace serve` does (migrate, worker,
// HTTP) and walks the funnel a woman would: claim the free workshop, get
// the login email, exchange its link, read the first lesson.
func TestServeWalkthrough(t *testing.T) {
	ctx := context.Background()
	resend := emailstest.NewResend(t)
	cfg, err := loadConfig(envOf(bootEnv(t, EnvProduction, resend.URL, resend.APIKey)))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := newLogger(&lockedWriter{w: &logs}, cfg.LogLevel)

	a, err := openApp(ctx, cfg, log, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	var seedOut bytes.Buffer
	if err := seed.Run(ctx, a.svc, &seedOut); err != nil {
		t.Fatal(err)
	}
	if err := a.startWorker(); err != nil {
		t.Fatal(err)
	}
	if err := a.startHTTP(); err != nil {
		t.Fatal(err)
	}
	base := "http://" + a.Addr()

	if status, body := call(t, "GET", base+"/readyz", "", nil); status != 200 || body["status"] != "ready" {
		t.Fatalf("readyz = %d %v", status, body)
	}
	if status, _ := call(t, "GET", base+"/healthz", "", nil); status != 200 {
		t.Fatalf("healthz = %d", status)
	}

	status, _ := call(t, "POST", base+"/v1/programs/"+seed.ProgramSlug+"/free-access", "", map[string]any{
		"email": "Ana@Example.com ", "name": "Ana", "marketing_consent": true, "disclaimer_accepted": true,
	})
	if status != 202 {
		t.Fatalf("free-access claim = %d", status)
	}

	// The claim brings her sign-in email, and (she ticked marketing) the
	// request to confirm it; the sign-in email is the one with the link.
	loginLink := regexp.MustCompile(`https://portal\.example\.com/login\?token=([A-Za-z0-9_-]{43})`)
	var (
		email emailstest.Email
		m     []string
	)
	deadline := time.Now().Add(15 * time.Second)
	for m == nil {
		for _, d := range resend.Delivered() {
			if m = loginLink.FindStringSubmatch(d.Text); m != nil {
				email = d
				break
			}
		}
		if m == nil && time.Now().After(deadline) {
			t.Fatalf("the worker delivered no login email within 15s (delivered: %d)", len(resend.Delivered()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(email.To) != 1 || email.To[0] != "ana@example.com" {
		t.Fatalf("login email went to %v", email.To)
	}

	status, session := call(t, "POST", base+"/v1/portal/sessions", "", map[string]any{"token": m[1]})
	if status != 201 {
		t.Fatalf("exchange login token = %d %v", status, session)
	}
	token, _ := session["token"].(string)

	status, lessons := call(t, "GET", base+"/v1/portal/programs/"+seed.ProgramSlug+"/lessons", token, nil)
	if status != 200 {
		t.Fatalf("list lessons = %d %v", status, lessons)
	}
	data, _ := lessons["data"].([]any)
	if len(data) != len(seed.Lessons) {
		t.Fatalf("%d lessons listed, want %d", len(data), len(seed.Lessons))
	}
	first := data[0].(map[string]any)
	status, lesson := call(t, "GET", fmt.Sprintf("%s/v1/portal/lessons/%s", base, first["id"]), token, nil)
	if status != 200 || !strings.Contains(lesson["body_html"].(string), "<") {
		t.Fatalf("read first lesson = %d %v", status, lesson)
	}
	last := data[len(data)-1].(map[string]any)
	if last["locked"] != true {
		t.Fatalf("the last lesson should still be locked on day one: %v", last)
	}

	if err := a.Close(); err != nil {
		t.Fatalf("graceful close: %v", err)
	}
	if strings.Contains(logs.String(), m[1]) {
		t.Error("the login token appeared in the logs")
	}
}

// TestCoachCreateCommand creates a coach the way an operator would and logs
// her in.
func TestCoachCreateCommand(t *testing.T) {
	env := bootEnv(t, EnvDev, "http://127.0.0.1:1", "")
	var out bytes.Buffer
	args := []string{"coach", "create", "--email", "Maya@Example.com", "--name", "Maya", "--role", "admin", "--password-stdin"}
	if err := run(context.Background(), args, envOf(env), strings.NewReader("a long enough password\n"), &out); err != nil {
		t.Fatalf("coach create: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "created admin coach Maya <maya@example.com>") {
		t.Fatalf("output: %s", out.String())
	}
	err := run(context.Background(), args, envOf(env), strings.NewReader("short\n"), &out)
	if err == nil || !strings.Contains(err.Error(), "password") {
		t.Fatalf("a short password should be refused naming the field, got %v", err)
	}
}

func TestMigrateCommand(t *testing.T) {
	env := bootEnv(t, EnvDev, "http://127.0.0.1:1", "")
	latest, err := migrations.Latest()
	if err != nil {
		t.Fatal(err)
	}
	names, _ := fs.Glob(migrations.FS, "*.sql")
	newest := names[len(names)-1]
	for _, step := range []struct{ args, want string }{
		{"migrate status", "applied"},
		{"migrate down", "rolled back " + newest},
		{"migrate status", "pending"},
		{"migrate up", fmt.Sprintf("schema at version %d", latest)},
	} {
		var out bytes.Buffer
		if err := run(context.Background(), strings.Fields(step.args), envOf(env), nil, &out); err != nil {
			t.Fatalf("%s: %v", step.args, err)
		}
		if !strings.Contains(out.String(), step.want) {
			t.Fatalf("%s printed %q, want %q", step.args, out.String(), step.want)
		}
	}
}

func TestRunRejectsUnknownCommandAndBadConfig(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"fly"}, envOf(map[string]string{"GRACE_ENV": "dev"}), nil, &out); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Fatalf("err = %v", err)
	}
	if err := run(context.Background(), []string{"serve"}, envOf(map[string]string{"GRACE_ENV": "dev", "HTTP_ADDR": "nope"}), nil, &out); err == nil || !strings.Contains(err.Error(), "HTTP_ADDR") {
		t.Fatalf("err = %v", err)
	}
}

// Production is the default: without a sender, serve and worker stop before
// touching the database, with one line naming what is missing, instead of
// writing sign-in links to the log.
func TestProductionRefusesToStartWithoutASender(t *testing.T) {
	env := map[string]string{
		// Nothing listens here: start-up must fail before connecting.
		"DATABASE_URL": "postgres://postgres@127.0.0.1:1/grace?sslmode=disable",
		"APP_BASE_URL": "https://portal.example.com",
	}
	for _, cmd := range []string{"serve", "worker"} {
		t.Run(cmd, func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), []string{cmd}, envOf(env), nil, &out)
			if err == nil || !strings.Contains(err.Error(), "RESEND_API_KEY and EMAIL_FROM must be set") {
				t.Fatalf("err = %v, want the missing sender named", err)
			}
			if strings.Contains(err.Error(), "connect") {
				t.Fatalf("start-up reached the database: %v", err)
			}
		})
	}
	// And an App that somehow got this far still refuses the log sender.
	a := &App{cfg: Config{Env: EnvProduction}, log: newLogger(io.Discard, slog.LevelInfo)}
	if _, err := a.sender(); err == nil {
		t.Fatal("production built a sender without RESEND_API_KEY")
	}
	a.cfg.Env = EnvDev
	if s, err := a.sender(); err != nil || s == nil {
		t.Fatalf("dev sender: %v", err)
	}
}

// Dev mode says so first thing, so nobody mistakes it for a live instance.
func TestDevModeIsAnnouncedAtStartUp(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"migrate", "status"}, envOf(bootEnv(t, EnvDev, "http://127.0.0.1:1", "")), nil, &out); err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(out.String(), "\n")
	if !strings.Contains(first, `"level":"WARN"`) || !strings.Contains(first, "DEV MODE (GRACE_ENV=dev): emails are printed to this log, not sent") ||
		!strings.Contains(first, "payments are off") {
		t.Fatalf("first line %q, want the dev mode notice", first)
	}
}

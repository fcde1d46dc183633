package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/grace-coaching/grace/emails/drip/driptest"
	"github.com/grace-coaching/grace/emails/emailstest"
	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/drip"
	"github.com/grace-coaching/grace/models/journal"
	"github.com/grace-coaching/grace/models/modelstest"
)

// buildGrace compiles this command into a temporary directory, with the
// race detector when the test runs under it.
func buildGrace(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "grace")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, ".")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestWorkerProcessSurvivesSIGKILL runs `grace worker` as a real process
// over 10,000 due drip deliveries and kills it with SIGKILL every one to
// three seconds, restarting it each time, until every delivery is settled.
// Then every delivery reached Resend exactly once after idempotency-key
// deduplication, and every raw repeat was a repeat of a whole batch under
// its own key: a batch's members and payload are committed before its call
// is made, so a process that dies anywhere leaves a call to be repeated,
// never a different one.
func TestWorkerProcessSurvivesSIGKILL(t *testing.T) {
	const total = 10_000
	bin := buildGrace(t)
	ctx := context.Background()
	dsn := modelstest.URL(t)
	db, err := models.OpenDB(ctx, dsn, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if sqlDB, err := db.DB(); err == nil {
			_ = sqlDB.Close()
		}
	})
	seeded, err := driptest.SeedDue(ctx, db, total, time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	fake := emailstest.NewResend(t)
	// A call takes a little while, so kills land between a batch's commit,
	// its call and its outcome.
	fake.SetLatency(20 * time.Millisecond)

	env := []string{
		"GRACE_ENV=production",
		"DATABASE_URL=" + dsn,
		"APP_BASE_URL=https://portal.example.com",
		"EMAIL_FROM=Grace <hello@example.com>",
		"RESEND_API_KEY=" + fake.APIKey,
		"RESEND_API_URL=" + fake.URL,
		"RESEND_RATE_LIMIT=40",
		// A killed worker's batches are taken over two seconds later.
		"DRIP_LEASE=2s",
		"LOG_LEVEL=warn",
		"REFLECTIONS_KEY=" + journal.NewMasterKey("test").String(),
		"PATH=" + os.Getenv("PATH"),
	}
	logs := t.TempDir()
	// About 12 s on two cores, 30 s under the race detector (which slows
	// the fake's spec check and the worker alike); the limit is only a
	// guard against a worker that never drains, generous because the other
	// packages' tests share the two cores with it in CI.
	start := time.Now()
	deadline := start.Add(4 * time.Minute)
	kills := 0
	var raced []string
	for run := 1; ; run++ {
		pending, err := driptest.Pending(ctx, db, seeded)
		if err != nil {
			t.Fatal(err)
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries still pending after %d runs", pending, run-1)
		}
		logPath := filepath.Join(logs, fmt.Sprintf("run-%d.log", run))
		logFile, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "worker")
		cmd.Env, cmd.Stdout, cmd.Stderr = env, logFile, logFile
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		life := time.Second + rand.N(2*time.Second)
		for end := time.Now().Add(life); time.Now().Before(end); {
			time.Sleep(100 * time.Millisecond)
			if n, err := driptest.Pending(ctx, db, seeded); err == nil && n == 0 {
				break
			}
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
		err = cmd.Wait()
		logFile.Close()
		out, _ := os.ReadFile(logPath)
		if bytes.Contains(out, []byte("DATA RACE")) {
			raced = append(raced, string(out))
		}
		if cmd.ProcessState.Exited() {
			t.Fatalf("grace worker exited by itself (%v):\n%s", err, out)
		}
		kills++
	}
	drained := time.Since(start)
	for _, out := range raced {
		t.Errorf("grace worker raced:\n%s", out)
	}

	// Exactly once, after deduplication by key: each delivery id is in
	// exactly one delivered email, and its row records that email's id.
	delivered := map[string][]emailstest.Email{}
	for _, e := range fake.Delivered() {
		id := e.Tags["delivery_id"]
		delivered[id] = append(delivered[id], e)
	}
	var rows []struct {
		ID       string
		Status   string
		ResendID *string
	}
	if err := db.Raw(`SELECT id::text, status, resend_id FROM email_deliveries WHERE sequence_id = ?`, seeded.SequenceID).Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	lost, dups := 0, 0
	for _, r := range rows {
		es := delivered[r.ID]
		switch {
		case len(es) == 0:
			lost++
		case len(es) > 1:
			dups++
		case r.Status != string(drip.DeliverySent) || r.ResendID == nil || *r.ResendID != es[0].ID:
			t.Errorf("delivery %s: status %s resend_id %v, want sent as %s", r.ID, r.Status, r.ResendID, es[0].ID)
		}
	}
	if len(rows) != total || lost != 0 || dups != 0 || len(delivered) != total {
		t.Fatalf("%d rows: %d lost, %d delivered more than once, %d distinct delivered; want %d, 0, 0, %d",
			len(rows), lost, dups, len(delivered), total, total)
	}

	// Raw repeats: a delivery only ever travelled under one key, and every
	// call under a key carried the same members.
	keyOf := map[string]string{}
	members := map[string]string{}
	calls := fake.Calls()
	repeats := 0
	for _, c := range calls {
		if c.ErrorName == "invalid_idempotent_request" {
			t.Errorf("key %s was reused with another payload", c.IdempotencyKey)
		}
		if c.ErrorName == "aborted" {
			continue // the process died while sending the body; Resend saw nothing
		}
		var ids []string
		for _, tags := range c.Tags {
			id := tags["delivery_id"]
			ids = append(ids, id)
			if k, ok := keyOf[id]; ok && k != c.IdempotencyKey {
				t.Errorf("delivery %s was sent under keys %s and %s", id, k, c.IdempotencyKey)
			}
			keyOf[id] = c.IdempotencyKey
		}
		m := strings.Join(ids, ",")
		if prev, ok := members[c.IdempotencyKey]; ok {
			repeats++
			if prev != m {
				t.Errorf("key %s repeated with other members", c.IdempotencyKey)
			}
			continue
		}
		members[c.IdempotencyKey] = m
	}
	if kills < 2 {
		t.Errorf("the worker was killed %d times; the test needs it killed mid-drain", kills)
	}
	t.Logf("%d deliveries in %d batches drained in %s: %d kills, %d calls, %d raw repeats of a batch, 0 lost, 0 duplicates",
		total, len(members), drained.Round(100*time.Millisecond), kills, len(calls), repeats)
}

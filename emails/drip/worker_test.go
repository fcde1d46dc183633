package drip_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/emails"
	"github.com/grace-coaching/grace/emails/drip"
	"github.com/grace-coaching/grace/emails/drip/driptest"
	"github.com/grace-coaching/grace/emails/emailstest"
	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/domain"
	dripdom "github.com/grace-coaching/grace/models/drip"
	"github.com/grace-coaching/grace/models/modelstest"
)

// cmd/grace hands the worker the drip engine; this keeps the two in step.
var _ drip.Source = (*dripdom.Service)(nil)

// node is one worker process's view of the system: its own connection
// pool and service on the shared database.
type node struct {
	db  *gorm.DB
	svc *domain.Services
}

func newNode(t *testing.T, dsn string, clock models.Clock) node {
	t.Helper()
	db, err := models.OpenDB(context.Background(), dsn, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if sqlDB, err := db.DB(); err == nil {
			_ = sqlDB.Close()
		}
	})
	svc := domain.New(domain.Deps{DB: db, Clock: clock, DripRenderer: newRenderer(t),
		AppBaseURL: "https://portal.example.com", UnsubscribeURL: func(token string) string { return "https://api.example.com/v1/unsubscribe/" + token },
		UnsubscribeMailbox: "unsubscribe@example.com"})
	return node{db: db, svc: svc}
}

func newSender(t *testing.T, fake *emailstest.Resend) *emails.ResendSender {
	t.Helper()
	s, err := emails.NewResendSender(fake.APIKey, fake.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newWorker(t *testing.T, n node, sender emails.BatchSender, cfg drip.WorkerConfig) *drip.Worker {
	t.Helper()
	cfg.Source, cfg.Sender, cfg.From = n.svc.Drip, sender, "Grace <hello@grace.example>"
	if cfg.Rate == 0 {
		cfg.Rate = 1000
	}
	w, err := drip.NewWorker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// drain steps a worker until nothing is due.
func drain(t *testing.T, w *drip.Worker) {
	t.Helper()
	for range 1000 {
		n, err := w.RunOnce(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
	t.Fatal("the worker never ran dry")
}

type deliveryRow struct {
	ID        uuid.UUID
	Email     string
	Status    dripdom.DeliveryStatus
	Attempts  int
	LastError *string
	ResendID  *string
	BatchID   *uuid.UUID
}

func rows(t *testing.T, db *gorm.DB, s driptest.Seeded) []deliveryRow {
	t.Helper()
	var out []deliveryRow
	if err := db.Raw(`SELECT id, email, status, attempts, last_error, resend_id, batch_id FROM email_deliveries
		WHERE sequence_id = ? ORDER BY email`, s.SequenceID).Scan(&out).Error; err != nil {
		t.Fatal(err)
	}
	return out
}

// fakeClockWorld is one node on a fresh database with a fake clock and n
// deliveries due.
func fakeClockWorld(t *testing.T, n int) (node, *models.FakeClock, driptest.Seeded) {
	t.Helper()
	clock := models.NewFakeClock(modelstest.Start)
	nd := newNode(t, modelstest.URL(t), clock)
	seeded, err := driptest.SeedDue(context.Background(), nd.db, n, clock.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	return nd, clock, seeded
}

// deliveredOnce checks that every delivery reached the fake exactly once
// and that each row records the id the fake gave its email.
func deliveredOnce(t *testing.T, fake *emailstest.Resend, got []deliveryRow) {
	t.Helper()
	byDelivery := map[string][]emailstest.Email{}
	for _, e := range fake.Delivered() {
		byDelivery[e.Tags["delivery_id"]] = append(byDelivery[e.Tags["delivery_id"]], e)
	}
	dups := 0
	for _, r := range got {
		es := byDelivery[r.ID.String()]
		switch {
		case len(es) == 0:
			t.Errorf("delivery %s never reached Resend (status %s)", r.ID, r.Status)
		case len(es) > 1:
			dups++
		case r.Status != dripdom.DeliverySent || r.ResendID == nil || *r.ResendID != es[0].ID:
			t.Errorf("delivery %s: status %s resend_id %v, want sent as %s", r.ID, r.Status, r.ResendID, es[0].ID)
		case len(es[0].To) != 1 || es[0].To[0] != r.Email:
			t.Errorf("delivery %s went to %v, want %s", r.ID, es[0].To, r.Email)
		}
	}
	if dups > 0 {
		t.Errorf("%d deliveries reached Resend more than once", dups)
	}
	if len(byDelivery) != len(got) {
		t.Errorf("Resend got %d distinct deliveries, want %d", len(byDelivery), len(got))
	}
}

// repeatsCarryTheirBatch checks that every call under a key already used
// carried the same emails as the first, and that nothing was ever refused
// as a different payload under a used key.
func repeatsCarryTheirBatch(t *testing.T, fake *emailstest.Resend) (repeats int) {
	t.Helper()
	first := map[string]string{}
	for _, c := range fake.Calls() {
		if c.ErrorName == "invalid_idempotent_request" {
			t.Errorf("key %s was reused with another payload", c.IdempotencyKey)
		}
		if c.ErrorName == "aborted" {
			continue
		}
		var ids []string
		for _, tags := range c.Tags {
			ids = append(ids, tags["delivery_id"])
		}
		members := strings.Join(ids, ",")
		if prev, ok := first[c.IdempotencyKey]; ok {
			repeats++
			if prev != members {
				t.Errorf("key %s repeated with other members", c.IdempotencyKey)
			}
			continue
		}
		first[c.IdempotencyKey] = members
	}
	return repeats
}

func TestWorkerSendsBatchesOfAHundred(t *testing.T) {
	nd, _, seeded := fakeClockWorld(t, 250)
	fake := emailstest.NewResend(t)
	w := newWorker(t, nd, newSender(t, fake), drip.WorkerConfig{})
	drain(t, w)

	got := rows(t, nd.db, seeded)
	deliveredOnce(t, fake, got)
	var sizes []int
	for _, c := range fake.Calls() {
		if c.Path != "/emails/batch" || c.Status != 200 {
			t.Errorf("call %s status %d", c.Path, c.Status)
		}
		sizes = append(sizes, len(c.Tags))
	}
	if fmt.Sprint(sizes) != "[100 100 50]" {
		t.Errorf("batch sizes %v, want [100 100 50]", sizes)
	}
	for _, r := range got {
		if r.Attempts != 1 || r.LastError != nil {
			t.Fatalf("row %+v", r)
		}
	}
	e := fake.Delivered()[0]
	if !strings.HasPrefix(e.Subject, "Welcome, Woman") || !strings.Contains(e.HTML, "<strong>Say No With Grace</strong>") ||
		e.Headers["List-Unsubscribe-Post"] != "List-Unsubscribe=One-Click" ||
		!strings.HasPrefix(e.Headers["List-Unsubscribe"], "<https://api.example.com/v1/unsubscribe/") ||
		!strings.Contains(e.Headers["List-Unsubscribe"], "<mailto:unsubscribe@example.com?subject=unsubscribe-") {
		t.Errorf("delivered email %+v", e)
	}
}

func TestWorkerSendsOneEmailAlone(t *testing.T) {
	nd, _, seeded := fakeClockWorld(t, 1)
	fake := emailstest.NewResend(t)
	drain(t, newWorker(t, nd, newSender(t, fake), drip.WorkerConfig{}))
	deliveredOnce(t, fake, rows(t, nd.db, seeded))
	if calls := fake.Calls(); len(calls) != 1 || calls[0].Path != "/emails" {
		t.Fatalf("calls %+v, want one POST /emails", calls)
	}
}

func TestWorkerHonoursRetryAfterWithoutCountingAFailure(t *testing.T) {
	nd, _, seeded := fakeClockWorld(t, 3)
	fake := emailstest.NewResend(t)
	fake.RateLimitNext(1, "1")
	w := newWorker(t, nd, newSender(t, fake), drip.WorkerConfig{})
	start := time.Now()
	if _, err := w.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 900*time.Millisecond {
		t.Fatalf("resent after %s; Retry-After said 1s", took)
	}
	calls := fake.Calls()
	if len(calls) != 2 || calls[0].Status != 429 || calls[1].Status != 200 || calls[0].IdempotencyKey != calls[1].IdempotencyKey {
		t.Fatalf("calls %+v, want a 429 then the same batch accepted", calls)
	}
	got := rows(t, nd.db, seeded)
	deliveredOnce(t, fake, got)
	for _, r := range got {
		if r.Attempts != 1 || r.LastError != nil {
			t.Fatalf("a 429 counted as a failure: %+v", r)
		}
	}
	// The limiter moved for every worker: the next slot is about a second
	// after the 429, not 1 ms.
	var next time.Time
	if err := nd.db.Raw(`SELECT next_slot_at FROM send_rate_limits WHERE name = ?`, dripdom.DripRateLimiter).Row().Scan(&next); err != nil {
		t.Fatal(err)
	}
	if next.Before(start.Add(900 * time.Millisecond)) {
		t.Fatalf("next slot %s, want past the Retry-After", next)
	}
}

func TestWorkerRetriesServerErrorsUnderTheSameKey(t *testing.T) {
	nd, clock, seeded := fakeClockWorld(t, 4)
	fake := emailstest.NewResend(t)
	fake.FailNext(1, 503)
	fake.DropResponseNext(1) // the retry goes out but its answer is lost
	w := newWorker(t, nd, newSender(t, fake), drip.WorkerConfig{
		SendTimeout: 300 * time.Millisecond, Backoff: func(int) time.Duration { return time.Minute },
	})
	for i := range 3 {
		if _, err := w.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			for _, r := range rows(t, nd.db, seeded) {
				if r.Status != dripdom.DeliverySending || r.LastError == nil {
					t.Fatalf("after failure %d: %+v", i+1, r)
				}
			}
			if n, _ := w.RunOnce(context.Background()); n != 0 {
				t.Fatal("retried before the backoff")
			}
			clock.Advance(time.Minute)
		}
	}
	calls := fake.Calls()
	if len(calls) != 3 || calls[0].Status != 503 || !calls[2].Replayed {
		t.Fatalf("calls %+v, want 503, lost answer, replay", calls)
	}
	for _, c := range calls {
		if c.IdempotencyKey != calls[0].IdempotencyKey {
			t.Fatalf("keys differ across retries: %+v", calls)
		}
	}
	got := rows(t, nd.db, seeded)
	deliveredOnce(t, fake, got)
	if got[0].Attempts != 3 {
		t.Errorf("attempts %d, want 3", got[0].Attempts)
	}
}

func TestWorkerPerEmailErrorFailsOnlyThatEmail(t *testing.T) {
	nd, _, seeded := fakeClockWorld(t, 5)
	fake := emailstest.NewResend(t)
	before := rows(t, nd.db, seeded)
	bad := before[2]
	fake.Reject(bad.Email, "The email address is invalid.")
	drain(t, newWorker(t, nd, newSender(t, fake), drip.WorkerConfig{}))
	for _, r := range rows(t, nd.db, seeded) {
		if r.ID == bad.ID {
			if r.Status != dripdom.DeliveryFailed || r.LastError == nil || *r.LastError != "rejected: The email address is invalid." {
				t.Errorf("refused row %+v", r)
			}
			continue
		}
		if r.Status != dripdom.DeliverySent || r.ResendID == nil {
			t.Errorf("row %+v, want sent", r)
		}
	}
	if n := len(fake.Delivered()); n != 4 {
		t.Fatalf("delivered %d, want 4", n)
	}
}

func TestWorkerFailsAClientErrorWithResendsMessage(t *testing.T) {
	nd, _, seeded := fakeClockWorld(t, 3)
	fake := emailstest.NewResend(t)
	fake.FailNext(1, 422)
	drain(t, newWorker(t, nd, newSender(t, fake), drip.WorkerConfig{}))
	for _, r := range rows(t, nd.db, seeded) {
		if r.Status != dripdom.DeliveryFailed || r.LastError == nil || *r.LastError != "rejected: Injected failure." {
			t.Fatalf("row %+v", r)
		}
	}
	if n := len(fake.Calls()); n != 1 {
		t.Fatalf("a permanent failure was retried: %d calls", n)
	}
}

func TestWorkerGivesUpAfter23Hours(t *testing.T) {
	nd, clock, seeded := fakeClockWorld(t, 2)
	fake := emailstest.NewResend(t)
	fake.FailNext(100, 500)
	w := newWorker(t, nd, newSender(t, fake), drip.WorkerConfig{Backoff: func(int) time.Duration { return 5 * time.Hour }})
	// Tries at 0, 5, 10, 15, 20 hours; the next would be at 25 h.
	for range 5 {
		if _, err := w.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		clock.Advance(5 * time.Hour)
	}
	for _, r := range rows(t, nd.db, seeded) {
		if r.Status != dripdom.DeliveryFailed || r.LastError == nil || !strings.HasPrefix(*r.LastError, "gave_up: resend: HTTP 500") {
			t.Fatalf("row %+v", r)
		}
	}
	if n := len(fake.Calls()); n != 5 {
		t.Fatalf("%d calls, want 5", n)
	}
	if n, _ := w.RunOnce(context.Background()); n != 0 {
		t.Fatal("a given-up batch was claimed again")
	}
}

func TestWorkerSendsNothingIneligible(t *testing.T) {
	nd, _, seeded := fakeClockWorld(t, 4)
	fake := emailstest.NewResend(t)
	before := rows(t, nd.db, seeded)
	ctx := context.Background()
	if err := nd.db.Exec(`UPDATE participants SET marketing_unsubscribed_at = now() WHERE email = ?`, before[0].Email).Error; err != nil {
		t.Fatal(err)
	}
	if err := nd.db.Exec(`INSERT INTO email_suppressions (email, reason) VALUES (?, 'complained')`, before[1].Email).Error; err != nil {
		t.Fatal(err)
	}
	drain(t, newWorker(t, nd, newSender(t, fake), drip.WorkerConfig{}))
	counts, err := driptest.Counts(ctx, nd.db, seeded)
	if err != nil {
		t.Fatal(err)
	}
	if counts[dripdom.DeliveryCancelled] != 2 || counts[dripdom.DeliverySent] != 2 || len(fake.Delivered()) != 2 {
		t.Fatalf("counts %v, delivered %d", counts, len(fake.Delivered()))
	}
	for _, e := range fake.Delivered() {
		if e.To[0] == before[0].Email || e.To[0] == before[1].Email {
			t.Fatalf("mailed %s", e.To[0])
		}
	}
}

func TestWorkersShareTheRateLimit(t *testing.T) {
	dsn := modelstest.URL(t)
	clock := models.SystemClock{}
	first := newNode(t, dsn, clock)
	seeded, err := driptest.SeedDue(context.Background(), first.db, 150, time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	fake := emailstest.NewResend(t)
	const rate = 20.0
	// Resend's own limit, with a burst of 5: a request that reaches the
	// fake late (a busy machine: CI runs every package's tests at once
	// under the race detector) bunches with the next few, and that is
	// jitter, not a second limiter. Per-process limiters would send at
	// three times the rate and be refused by the dozen.
	fake.SetRateLimit(rate, 5)
	sender := newSender(t, fake)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 3 {
		nd := first
		if i > 0 {
			nd = newNode(t, dsn, clock)
		}
		w := newWorker(t, nd, sender, drip.WorkerConfig{Rate: rate, BatchSize: 5, PollInterval: 20 * time.Millisecond})
		wg.Go(func() { _ = w.Run(ctx) })
	}
	waitSettled(t, first.db, seeded, 30*time.Second)
	took := time.Since(start)
	cancel()
	wg.Wait()

	calls := fake.Calls()
	limited := 0
	var gaps []string
	for i, c := range calls {
		if c.Status == 429 {
			limited++
		}
		if i > 0 {
			gaps = append(gaps, fmt.Sprintf("%d:%s", c.Status, c.At.Sub(calls[i-1].At).Round(time.Millisecond)))
		}
	}
	if limited > 0 {
		t.Errorf("Resend refused %d of %d calls for the rate: the limiter is not shared; gaps between arrivals: %v", limited, len(calls), gaps)
	}
	// 30 calls at 20/s: the first is free, the other 29 wait their slots.
	if min := time.Duration(29/rate*float64(time.Second)) - 100*time.Millisecond; took < min {
		t.Errorf("30 calls took %s, faster than %g/s allows", took, rate)
	}
	deliveredOnce(t, fake, rows(t, first.db, seeded))
}

func waitSettled(t *testing.T, db *gorm.DB, s driptest.Seeded, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		n, err := driptest.Pending(context.Background(), db, s)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries still pending after %s", n, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRaceWorkersDeliverEachEmailOnce is the acceptance race: two workers
// (standing in for two `grace worker` processes, each with its own pool)
// and the in-process one drain 2,000 due deliveries while Resend fails,
// hangs and loses answers now and then. Every delivery reaches Resend
// exactly once after its idempotency key.
func TestRaceWorkersDeliverEachEmailOnce(t *testing.T) {
	const total = 2000
	dsn := modelstest.URL(t)
	clock := models.SystemClock{}
	first := newNode(t, dsn, clock)
	seeded, err := driptest.SeedDue(context.Background(), first.db, total, time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	fake := emailstest.NewResend(t)
	fake.SetLatency(5 * time.Millisecond)
	fake.FailNext(2, 500)
	fake.DropResponseNext(3)
	fake.HangNext(2)
	sender := newSender(t, fake)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for i := range 3 {
		nd := first
		if i > 0 {
			nd = newNode(t, dsn, clock)
		}
		w := newWorker(t, nd, sender, drip.WorkerConfig{
			// Two loops each: the spec check serialises the fake, and under
			// -race a 100-email batch takes it ~200 ms to check.
			Rate: 500, Concurrency: 2, PollInterval: 20 * time.Millisecond,
			Lease: 15 * time.Second, SendTimeout: 5 * time.Second,
			Backoff: func(int) time.Duration { return 100 * time.Millisecond },
		})
		wg.Go(func() { _ = w.Run(ctx) })
	}
	waitSettled(t, first.db, seeded, 90*time.Second)
	cancel()
	wg.Wait()

	got := rows(t, first.db, seeded)
	if len(got) != total {
		t.Fatalf("%d rows, want %d", len(got), total)
	}
	deliveredOnce(t, fake, got)
	repeats := repeatsCarryTheirBatch(t, fake)
	if repeats == 0 {
		t.Error("no call was ever repeated: the faults did not exercise the retry path")
	}
	keys := map[string]bool{}
	for _, c := range fake.Calls() {
		keys[c.IdempotencyKey] = true
	}
	t.Logf("%d deliveries in %d batches, %d calls (%d repeats of a key)", total, len(keys), len(fake.Calls()), repeats)
}

// TestWorkerRunFinishesInFlightOnShutdown: cancelling Run stops claiming,
// and every batch already claimed is sent and recorded before Run returns.
func TestWorkerRunFinishesInFlightOnShutdown(t *testing.T) {
	nd, _, seeded := fakeClockWorld(t, 1000)
	fake := emailstest.NewResend(t)
	fake.SetLatency(300 * time.Millisecond)
	w := newWorker(t, nd, newSender(t, fake), drip.WorkerConfig{BatchSize: 10})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	for len(fake.Calls()) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	counts, err := driptest.Counts(context.Background(), nd.db, seeded)
	if err != nil {
		t.Fatal(err)
	}
	if counts[dripdom.DeliverySending] != 0 || counts[dripdom.DeliverySent] == 0 || counts[dripdom.DeliveryScheduled] == 0 ||
		counts[dripdom.DeliverySent] != len(fake.Delivered()) {
		t.Fatalf("after shutdown: %v, %d delivered; want sent batches recorded, none left sending, the rest untouched", counts, len(fake.Delivered()))
	}
}

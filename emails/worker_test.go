package emails_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/emails"
	"github.com/grace-coaching/grace/emails/emailstest"
	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/domain"
	"github.com/grace-coaching/grace/models/modelstest"
)

const secretToken = "plaintext-login-token-do-not-log"

// cmd/grace hands the worker the kernel; this keeps the two in step.
var _ emails.Outbox = (*models.Kernel)(nil)

type harness struct {
	svc      *domain.Services
	clock    *models.FakeClock
	db       *gorm.DB
	fake     *emailstest.Resend
	sender   emails.Sender
	renderer *emails.Renderer
	logs     *syncBuffer
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	svc, clock, db := modelstest.NewService(t)
	fake := emailstest.NewResend(t)
	sender, err := emails.NewResendSender(fake.APIKey, fake.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{svc: svc, clock: clock, db: db, fake: fake, sender: sender, renderer: newRenderer(t), logs: &syncBuffer{}}
}

// worker builds a worker on the harness; cfg's zero fields are filled in.
func (h *harness) worker(t *testing.T, cfg emails.WorkerConfig) *emails.Worker {
	t.Helper()
	cfg.Outbox = h.svc.Kernel
	if cfg.Sender == nil {
		cfg.Sender = h.sender
	}
	cfg.Renderer = h.renderer
	cfg.From = "Grace <hello@grace.example>"
	cfg.Log = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w, err := emails.NewWorker(cfg)
	if err != nil {
		t.Fatalf("NewWorker: %v", err)
	}
	return w
}

// enqueue writes a pending login email due at the clock's now plus due.
func (h *harness) enqueue(t *testing.T, template string, due time.Duration) models.OutboxMessage {
	t.Helper()
	m := models.OutboxMessage{
		Template:      template,
		ToEmail:       "ana@example.com",
		ToName:        "Ana",
		Data:          map[string]any{"name": "Ana", "token": secretToken, "code": "482913", "expires_minutes": 10},
		Status:        models.OutboxPending,
		NextAttemptAt: h.clock.Now().Add(due),
	}
	if err := h.db.Create(&m).Error; err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	return m
}

func (h *harness) row(t *testing.T, id uuid.UUID) models.OutboxMessage {
	t.Helper()
	var m models.OutboxMessage
	if err := h.db.First(&m, "id = ?", id).Error; err != nil {
		t.Fatalf("load outbox %s: %v", id, err)
	}
	return m
}

func runOnce(t *testing.T, w *emails.Worker, want int) {
	t.Helper()
	n, err := w.RunOnce(context.Background())
	if err != nil || n != want {
		t.Fatalf("RunOnce = %d, %v; want %d", n, err, want)
	}
}

func assertSecretsGone(t *testing.T, m models.OutboxMessage) {
	t.Helper()
	for _, k := range []string{"token", "code"} {
		if _, ok := m.Data[k]; ok {
			t.Errorf("outbox %s still stores %q: %v", m.ID, k, m.Data)
		}
	}
}

func TestWorkerDeliversAPendingEmailOnce(t *testing.T) {
	h := newHarness(t)
	w := h.worker(t, emails.WorkerConfig{})
	row := h.enqueue(t, models.TemplateLoginLink, 0)

	runOnce(t, w, 1)
	runOnce(t, w, 0)

	got := h.fake.Delivered()
	if len(got) != 1 {
		t.Fatalf("delivered %d emails, want 1", len(got))
	}
	e := got[0]
	if e.IdempotencyKey != row.ID.String() {
		t.Errorf("Idempotency-Key %q, want the outbox id %s", e.IdempotencyKey, row.ID)
	}
	if len(e.To) != 1 || e.To[0] != "ana@example.com" || e.From != "Grace <hello@grace.example>" {
		t.Errorf("addressed from %q to %v", e.From, e.To)
	}
	if !strings.Contains(e.Text, "https://app.grace.example/login?token="+secretToken) || !strings.Contains(e.HTML, "482913") {
		t.Errorf("the email lacks its link or code:\n%s", e.Text)
	}
	if e.Tags["template"] != models.TemplateLoginLink || e.Tags["outbox_id"] != row.ID.String() {
		t.Errorf("tags %v", e.Tags)
	}

	m := h.row(t, row.ID)
	if m.Status != models.OutboxSent || m.Attempts != 1 || m.SentAt == nil || !m.SentAt.Equal(h.clock.Now()) {
		t.Errorf("row: status %q attempts %d sent_at %v", m.Status, m.Attempts, m.SentAt)
	}
	if m.ProviderMessageID == nil || *m.ProviderMessageID != e.ID {
		t.Errorf("provider id %v, want %s", m.ProviderMessageID, e.ID)
	}
	assertSecretsGone(t, m)

	logs := h.logs.String()
	if strings.Contains(logs, secretToken) || strings.Contains(logs, "482913") {
		t.Errorf("the worker logged a secret:\n%s", logs)
	}
	if !strings.Contains(logs, "email sent") || !strings.Contains(logs, row.ID.String()) || !strings.Contains(logs, "template=login_link") {
		t.Errorf("the send was not logged with its outbox id and template:\n%s", logs)
	}
}

func TestWorkerRetriesATransientFailure(t *testing.T) {
	h := newHarness(t)
	w := h.worker(t, emails.WorkerConfig{})
	row := h.enqueue(t, models.TemplateLoginLink, 0)
	h.fake.FailNext(1, 500)

	runOnce(t, w, 1)
	m := h.row(t, row.ID)
	if m.Status != models.OutboxPending || m.Attempts != 1 || m.LastError == nil || !strings.Contains(*m.LastError, "500") {
		t.Fatalf("after a 500: status %q attempts %d last_error %v", m.Status, m.Attempts, m.LastError)
	}
	wait := m.NextAttemptAt.Sub(h.clock.Now())
	if wait < 15*time.Second || wait > 30*time.Second {
		t.Fatalf("first retry in %s, want 15s..30s", wait)
	}
	if m.Data["token"] != secretToken {
		t.Fatal("the token was dropped before the email was delivered")
	}

	runOnce(t, w, 0) // not due yet
	h.clock.Advance(wait)
	runOnce(t, w, 1)

	m = h.row(t, row.ID)
	if m.Status != models.OutboxSent || m.Attempts != 2 {
		t.Fatalf("after the retry: status %q attempts %d", m.Status, m.Attempts)
	}
	assertSecretsGone(t, m)
	if n := len(h.fake.Delivered()); n != 1 {
		t.Fatalf("delivered %d, want 1", n)
	}
	for _, c := range h.fake.Calls() {
		if c.IdempotencyKey != row.ID.String() {
			t.Errorf("call with key %q, want %s on every attempt", c.IdempotencyKey, row.ID)
		}
	}
}

func TestWorkerGivesUpAtOnceOnAPermanentFailure(t *testing.T) {
	h := newHarness(t)
	w := h.worker(t, emails.WorkerConfig{})
	row := h.enqueue(t, models.TemplateLoginLink, 0)
	h.fake.FailNext(1, 422)

	runOnce(t, w, 1)
	m := h.row(t, row.ID)
	if m.Status != models.OutboxFailed || m.Attempts != 1 || m.LastError == nil || !strings.Contains(*m.LastError, "422") {
		t.Fatalf("after a 422: status %q attempts %d last_error %v", m.Status, m.Attempts, m.LastError)
	}
	assertSecretsGone(t, m)
	h.clock.Advance(24 * time.Hour)
	runOnce(t, w, 0)
	if n := len(h.fake.Calls()); n != 1 {
		t.Fatalf("Resend called %d times, want 1", n)
	}
	if !strings.Contains(h.logs.String(), "giving up") {
		t.Errorf("the failure was not logged:\n%s", h.logs.String())
	}
}

func TestWorkerGivesUpAfterMaxAttempts(t *testing.T) {
	h := newHarness(t)
	w := h.worker(t, emails.WorkerConfig{MaxAttempts: 3})
	row := h.enqueue(t, models.TemplateLoginLink, 0)
	h.fake.FailNext(10, 503)

	for attempt := 1; attempt <= 3; attempt++ {
		runOnce(t, w, 1)
		h.clock.Advance(time.Hour) // beyond any backoff
	}
	runOnce(t, w, 0)
	m := h.row(t, row.ID)
	if m.Status != models.OutboxFailed || m.Attempts != 3 {
		t.Fatalf("status %q attempts %d, want failed after 3", m.Status, m.Attempts)
	}
	if n := len(h.fake.Calls()); n != 3 {
		t.Fatalf("Resend called %d times, want 3", n)
	}
}

func TestWorkerRenderErrorsArePermanent(t *testing.T) {
	h := newHarness(t)
	w := h.worker(t, emails.WorkerConfig{})
	unknown := h.enqueue(t, "welcome_gift", 0)
	broken := h.enqueue(t, models.TemplateLoginLink, 0)
	if err := h.db.Exec(`UPDATE outbox SET data = data - 'code' WHERE id = ?`, broken.ID).Error; err != nil {
		t.Fatal(err)
	}

	runOnce(t, w, 2)
	for _, id := range []uuid.UUID{unknown.ID, broken.ID} {
		m := h.row(t, id)
		if m.Status != models.OutboxFailed || m.LastError == nil || !strings.HasPrefix(*m.LastError, "render: ") {
			t.Errorf("outbox %s: status %q last_error %v", id, m.Status, m.LastError)
		}
		assertSecretsGone(t, m)
	}
	if n := len(h.fake.Calls()); n != 0 {
		t.Fatalf("Resend called %d times for unrenderable emails", n)
	}
}

// A timeout after Resend accepted the email is the case the idempotency key
// exists for: the retry must not send a second email.
func TestWorkerRetryAfterALostResponseSendsOnce(t *testing.T) {
	tests := []struct {
		name   string
		fault  func(*emailstest.Resend)
		before int // delivered after the first attempt
	}{
		{"resend never answered", func(f *emailstest.Resend) { f.HangNext(1) }, 0},
		{"resend sent but the answer was lost", func(f *emailstest.Resend) { f.DropResponseNext(1) }, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			w := h.worker(t, emails.WorkerConfig{SendTimeout: 200 * time.Millisecond, Lease: time.Minute})
			row := h.enqueue(t, models.TemplateLoginLink, 0)
			tc.fault(h.fake)

			runOnce(t, w, 1)
			if m := h.row(t, row.ID); m.Status != models.OutboxPending || m.Attempts != 1 {
				t.Fatalf("after the timeout: status %q attempts %d", m.Status, m.Attempts)
			}
			if n := len(h.fake.Delivered()); n != tc.before {
				t.Fatalf("delivered %d after the first attempt, want %d", n, tc.before)
			}

			h.clock.Advance(time.Hour)
			runOnce(t, w, 1)
			got := h.fake.Delivered()
			if len(got) != 1 {
				t.Fatalf("delivered %d, want exactly 1", len(got))
			}
			m := h.row(t, row.ID)
			if m.Status != models.OutboxSent || m.ProviderMessageID == nil || *m.ProviderMessageID != got[0].ID {
				t.Fatalf("row: status %q provider %v, want sent as %s", m.Status, m.ProviderMessageID, got[0].ID)
			}
		})
	}
}

// hookSender wraps a Sender with hooks around each call (numbered from 1).
type hookSender struct {
	inner  emails.Sender
	before func(call int)
	after  func(call int)
	calls  atomic.Int32
}

func (s *hookSender) Send(ctx context.Context, msg emails.Message) (string, error) {
	n := int(s.calls.Add(1))
	if s.before != nil {
		s.before(n)
	}
	id, err := s.inner.Send(ctx, msg)
	if s.after != nil {
		s.after(n)
	}
	return id, err
}

// A worker that stalls (or dies) after Resend accepted the email but before
// recording it: its lease expires, another worker reclaims the row, and
// Resend is asked again under the same key, so she gets one email. When the
// first worker wakes, it cannot overwrite the newer outcome.
func TestWorkerCrashAfterSendingIsDeliveredOnce(t *testing.T) {
	h := newHarness(t)
	sentOnce := make(chan struct{})
	release := make(chan struct{})
	stalling := h.worker(t, emails.WorkerConfig{Sender: &hookSender{inner: h.sender, after: func(call int) {
		if call == 1 {
			close(sentOnce)
			<-release
		}
	}}})
	rescuer := h.worker(t, emails.WorkerConfig{})
	row := h.enqueue(t, models.TemplateLoginLink, 0)

	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := stalling.RunOnce(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	<-sentOnce
	if m := h.row(t, row.ID); m.Status != models.OutboxSending {
		t.Fatalf("mid-send status %q", m.Status)
	}

	runOnce(t, rescuer, 0) // the lease still holds
	h.clock.Advance(emails.DefaultLease + time.Second)
	runOnce(t, rescuer, 1)

	calls := h.fake.Calls()
	if len(calls) != 2 || calls[0].IdempotencyKey != row.ID.String() || calls[1].IdempotencyKey != row.ID.String() {
		t.Fatalf("calls %+v, want two under key %s", calls, row.ID)
	}
	got := h.fake.Delivered()
	if len(got) != 1 {
		t.Fatalf("delivered %d, want 1", len(got))
	}
	m := h.row(t, row.ID)
	if m.Status != models.OutboxSent || m.Attempts != 2 || *m.ProviderMessageID != got[0].ID {
		t.Fatalf("row: status %q attempts %d provider %v", m.Status, m.Attempts, m.ProviderMessageID)
	}

	close(release)
	<-done
	if after := h.row(t, row.ID); after.Status != models.OutboxSent || after.Attempts != 2 || !after.UpdatedAt.Equal(m.UpdatedAt) {
		t.Fatalf("the stalled worker overwrote the row: %+v", after)
	}
	if !strings.Contains(h.logs.String(), "lease lost") {
		t.Errorf("the stalled worker did not log its lost lease:\n%s", h.logs.String())
	}
}

// A worker that dies right after its claim (a SIGKILL, a lost machine)
// never marks or extends the message: another worker sends it once the
// short lease is over, seconds later, not minutes into a 10-minute link.
func TestWorkerDeadWorkersClaimIsRetriedAfterTheShortLease(t *testing.T) {
	if emails.DefaultLease > 30*time.Second {
		t.Fatalf("DefaultLease = %s; a crash would delay a sign-in link that long", emails.DefaultLease)
	}
	tests := []struct {
		name  string
		after time.Duration // since the dead worker's claim
		want  int
	}{
		{"inside the lease", emails.DefaultLease - time.Second, 0},
		{"once it ran out", emails.DefaultLease + time.Second, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			row := h.enqueue(t, models.TemplateLoginLink, 0)
			// The dead worker: it claimed as the worker does, then nothing.
			if claimed, err := h.svc.Kernel.ClaimOutbox(context.Background(), 1, emails.DefaultLease); err != nil || len(claimed) != 1 {
				t.Fatalf("claim = %d, %v", len(claimed), err)
			}
			h.clock.Advance(tc.after)
			runOnce(t, h.worker(t, emails.WorkerConfig{}), tc.want)
			if n := len(h.fake.Delivered()); n != tc.want {
				t.Fatalf("delivered %d, want %d", n, tc.want)
			}
			if tc.want == 1 {
				if m := h.row(t, row.ID); m.Status != models.OutboxSent || m.Attempts != 2 {
					t.Fatalf("row: status %q attempts %d, want sent at attempt 2", m.Status, m.Attempts)
				}
			}
		})
	}
}

// A send slower than the lease keeps it by heartbeat: a second worker
// polling all along never takes the message, and it is sent once.
func TestWorkerSlowSendKeepsItsLease(t *testing.T) {
	const lease = 300 * time.Millisecond
	h := newHarness(t)
	started := make(chan struct{})
	release := make(chan struct{})
	slow := h.worker(t, emails.WorkerConfig{Lease: lease, Sender: &hookSender{inner: h.sender, before: func(call int) {
		close(started)
		<-release
	}}})
	other := h.worker(t, emails.WorkerConfig{Lease: lease})
	row := h.enqueue(t, models.TemplateLoginLink, 0)

	done := make(chan struct{})
	go func() {
		defer close(done)
		if n, err := slow.RunOnce(context.Background()); err != nil || n != 1 {
			t.Errorf("slow RunOnce = %d, %v", n, err)
		}
	}()
	<-started
	// Each round moves the domain's clock two thirds of a lease, so the
	// claim alone would have run out after the second, and waits for the
	// heartbeat (real time, every third of the lease) to extend it past
	// the new now. The other worker finds nothing to claim throughout.
	for range 4 {
		h.clock.Advance(lease * 2 / 3)
		runOnce(t, other, 0)
		waitFor(t, func() bool {
			m := h.row(t, row.ID)
			return m.LockedUntil != nil && m.LockedUntil.Equal(h.clock.Now().Add(lease))
		})
		runOnce(t, other, 0)
	}
	close(release)
	<-done

	if calls := h.fake.Calls(); len(calls) != 1 {
		t.Fatalf("Resend called %d times, want 1", len(calls))
	}
	if m := h.row(t, row.ID); m.Status != models.OutboxSent || m.Attempts != 1 {
		t.Fatalf("row: status %q attempts %d, want sent at attempt 1", m.Status, m.Attempts)
	}
	if strings.Contains(h.logs.String(), "lease lost") {
		t.Errorf("the slow worker lost its lease:\n%s", h.logs.String())
	}
}

func TestWorkersRacingDeliverEachEmailOnce(t *testing.T) {
	h := newHarness(t)
	const rows = 50
	want := map[string]bool{}
	for range rows {
		want[h.enqueue(t, models.TemplateLoginLink, 0).ID.String()] = true
	}
	workers := []*emails.Worker{
		h.worker(t, emails.WorkerConfig{Concurrency: 4}),
		h.worker(t, emails.WorkerConfig{Concurrency: 4}),
		h.worker(t, emails.WorkerConfig{Concurrency: 4}),
	}

	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, w := range workers {
		wg.Go(func() {
			<-start
			for {
				n, err := w.RunOnce(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				if n == 0 {
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()

	if n := len(h.fake.Calls()); n != rows {
		t.Errorf("Resend called %d times, want %d", n, rows)
	}
	seen := map[string]int{}
	for _, e := range h.fake.Delivered() {
		seen[e.IdempotencyKey]++
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("outbox %s delivered %d times", id, seen[id])
		}
	}
	var sent int64
	h.db.Model(&models.OutboxMessage{}).Where("status = ? AND attempts = 1", models.OutboxSent).Count(&sent)
	if sent != rows {
		t.Fatalf("%d rows sent on the first attempt, want %d", sent, rows)
	}
}

func TestWorkerRunDeliversUntilCancelled(t *testing.T) {
	h := newHarness(t)
	w := h.worker(t, emails.WorkerConfig{Concurrency: 2, PollInterval: 10 * time.Millisecond})
	for range 5 {
		h.enqueue(t, models.TemplateLoginLink, 0)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- w.Run(ctx) }()

	waitFor(t, func() bool { return len(h.fake.Delivered()) == 5 })
	// Mail enqueued while the worker idles goes out on the next poll.
	h.enqueue(t, models.TemplateLoginLink, 0)
	waitFor(t, func() bool { return len(h.fake.Delivered()) == 6 })
	waitFor(t, func() bool {
		var n int64
		h.db.Model(&models.OutboxMessage{}).Where("status = ?", models.OutboxSent).Count(&n)
		return n == 6
	})

	cancel()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Run returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop after cancellation")
	}
}

func TestWorkerRunFinishesInFlightMailOnShutdown(t *testing.T) {
	h := newHarness(t)
	started := make(chan struct{})
	release := make(chan struct{})
	w := h.worker(t, emails.WorkerConfig{
		Concurrency:  1,
		PollInterval: 10 * time.Millisecond,
		Sender: &hookSender{inner: h.sender, before: func(call int) {
			if call == 1 {
				close(started)
				<-release
			}
		}},
	})
	inFlight := h.enqueue(t, models.TemplateLoginLink, -time.Minute)
	waiting := h.enqueue(t, models.TemplateLoginLink, 0)

	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- w.Run(ctx) }()
	<-started
	cancel()

	select {
	case err := <-stopped:
		t.Fatalf("Run returned (%v) with a message in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Run returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the in-flight send finished")
	}

	if m := h.row(t, inFlight.ID); m.Status != models.OutboxSent {
		t.Fatalf("in-flight message: status %q, want sent", m.Status)
	}
	if m := h.row(t, waiting.ID); m.Status != models.OutboxPending || m.Attempts != 0 {
		t.Fatalf("the worker claimed after shutdown: status %q attempts %d", m.Status, m.Attempts)
	}
	if n := len(h.fake.Delivered()); n != 1 {
		t.Fatalf("delivered %d, want 1", n)
	}
}

func TestRunOnceRefusesACancelledContext(t *testing.T) {
	h := newHarness(t)
	w := h.worker(t, emails.WorkerConfig{})
	row := h.enqueue(t, models.TemplateLoginLink, 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n, err := w.RunOnce(ctx); !errors.Is(err, context.Canceled) || n != 0 {
		t.Fatalf("RunOnce = %d, %v", n, err)
	}
	if m := h.row(t, row.ID); m.Status != models.OutboxPending || m.Attempts != 0 {
		t.Fatalf("claimed with a cancelled context: %+v", m)
	}
}

func TestNewWorkerValidates(t *testing.T) {
	svc, _, _ := modelstest.NewService(t)
	r := newRenderer(t)
	ok := emails.WorkerConfig{Outbox: svc.Kernel, Sender: emails.DevSender{}, Renderer: r, From: "Grace <hello@grace.example>"}
	if _, err := emails.NewWorker(ok); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	tests := map[string]func(*emails.WorkerConfig){
		"no outbox":               func(c *emails.WorkerConfig) { c.Outbox = nil },
		"no sender":               func(c *emails.WorkerConfig) { c.Sender = nil },
		"no renderer":             func(c *emails.WorkerConfig) { c.Renderer = nil },
		"bad from":                func(c *emails.WorkerConfig) { c.From = "Grace" },
		"lease too short to beat": func(c *emails.WorkerConfig) { c.Lease = time.Millisecond },
	}
	for name, mutate := range tests {
		cfg := ok
		mutate(&cfg)
		if _, err := emails.NewWorker(cfg); err == nil {
			t.Errorf("%s: NewWorker succeeded", name)
		}
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		attempt int
		step    time.Duration
	}{
		{1, 30 * time.Second},
		{2, time.Minute},
		{3, 2 * time.Minute},
		{7, 32 * time.Minute},
		{8, time.Hour},
		{50, time.Hour},
	}
	for _, tc := range tests {
		for range 100 {
			if d := emails.Backoff(tc.attempt); d < tc.step/2 || d > tc.step {
				t.Fatalf("Backoff(%d) = %s, want %s..%s", tc.attempt, d, tc.step/2, tc.step)
			}
		}
	}
	distinct := map[time.Duration]bool{}
	for range 20 {
		distinct[emails.Backoff(3)] = true
	}
	if len(distinct) < 2 {
		t.Fatal("Backoff has no jitter")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// syncBuffer is a log sink the worker's goroutines can share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

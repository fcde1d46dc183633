package emails

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/mail"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/grace-coaching/grace/emails/internal/workerkit"
	"github.com/grace-coaching/grace/models"
)

// Worker defaults.
const (
	DefaultConcurrency  = 4
	DefaultPollInterval = time.Second
	DefaultLease        = 30 * time.Second
	DefaultMaxAttempts  = 8
	DefaultSendTimeout  = 30 * time.Second

	// minLease keeps heartbeats (a write every third of the lease) apart.
	minLease = 30 * time.Millisecond

	backoffBase = 30 * time.Second
	backoffCap  = time.Hour
)

// Outbox is what the worker needs from the database, and no more: lease due
// messages, keep the lease of those in flight, settle each one, and the
// domain's clock for the next attempt.
// *models.Kernel implements it; a test can fake it.
type Outbox interface {
	ClaimOutbox(ctx context.Context, limit int, lease time.Duration) ([]models.OutboxMessage, error)
	ExtendOutboxLease(ctx context.Context, id uuid.UUID, attempt int, lease time.Duration) error
	MarkOutboxSent(ctx context.Context, id uuid.UUID, attempt int, providerID string) error
	MarkOutboxRetry(ctx context.Context, id uuid.UUID, attempt int, errMsg string, nextAttemptAt time.Time) error
	MarkOutboxFailed(ctx context.Context, id uuid.UUID, attempt int, errMsg string) error
	MarkOutboxCancelled(ctx context.Context, id uuid.UUID, attempt int, reason string) error
	Now() time.Time
}

// WorkerConfig configures NewWorker. Outbox, Sender, Renderer and From are
// required; zero values elsewhere take the defaults above.
type WorkerConfig struct {
	Outbox   Outbox
	Sender   Sender
	Renderer *Renderer
	// From is the sender address, e.g. "Grace <hello@example.com>".
	From string
	Log  *slog.Logger

	// Concurrency is how many messages are sent at once, and the most one
	// claim (or RunOnce) takes.
	Concurrency int
	// PollInterval is the pause after a claim that found less than it could
	// take.
	PollInterval time.Duration
	// Lease is how long a claimed message belongs to this worker without
	// news from it; a heartbeat extends it every third of it while the
	// message is in flight. A worker that dies mid-send leaves the message
	// to be reclaimed when it expires, so it is short: a sign-in link that
	// lives 10 minutes must not wait 5 of them. The retry reuses the
	// idempotency key, so the provider sends it once.
	Lease time.Duration
	// MaxAttempts is the number of sends before a transiently failing
	// message is marked failed.
	MaxAttempts int
	// SendTimeout bounds one call to the Sender. The heartbeat keeps the
	// lease however long it is.
	SendTimeout time.Duration
}

// Worker delivers the outbox: claim due rows under a lease, render, send,
// and record the outcome. Any number of workers, in one process or many,
// can run against one database; each row is claimed by one at a time.
type Worker struct {
	outbox   Outbox
	sender   Sender
	renderer *Renderer
	from     string
	// discreetFrom is From for a recipient in discreet mode: the neutral
	// name, at DISCREET_EMAIL_FROM when set (Renderer.Discreet).
	discreetFrom string
	log          *slog.Logger
	concurrency  int
	poll         time.Duration
	lease        time.Duration
	maxAttempts  int
	sendTimeout  time.Duration
}

// NewWorker checks cfg and fills in the defaults.
func NewWorker(cfg WorkerConfig) (*Worker, error) {
	switch {
	case cfg.Outbox == nil:
		return nil, errors.New("emails: worker needs an Outbox")
	case cfg.Sender == nil:
		return nil, errors.New("emails: worker needs a Sender")
	case cfg.Renderer == nil:
		return nil, errors.New("emails: worker needs a Renderer")
	}
	if _, err := mail.ParseAddress(cfg.From); err != nil {
		return nil, fmt.Errorf("emails: worker From %q is not an email address: %w", cfg.From, err)
	}
	discreetFrom, err := cfg.Renderer.Discreet().From(cfg.From)
	if err != nil {
		return nil, err
	}
	w := &Worker{
		discreetFrom: discreetFrom,
		outbox:       cfg.Outbox,
		sender:       cfg.Sender,
		renderer:     cfg.Renderer,
		from:         cfg.From,
		log:          cfg.Log,
		concurrency:  workerkit.OrDefault(cfg.Concurrency, DefaultConcurrency),
		poll:         workerkit.OrDefault(cfg.PollInterval, DefaultPollInterval),
		lease:        workerkit.OrDefault(cfg.Lease, DefaultLease),
		maxAttempts:  workerkit.OrDefault(cfg.MaxAttempts, DefaultMaxAttempts),
		sendTimeout:  workerkit.OrDefault(cfg.SendTimeout, DefaultSendTimeout),
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if w.lease < minLease {
		// A beat every third of the lease must be a database write apart.
		return nil, fmt.Errorf("emails: worker lease %s is under %s", w.lease, minLease)
	}
	return w, nil
}

// Run delivers until ctx is cancelled, then stops claiming, waits for the
// messages already in flight to be sent and recorded, and returns nil.
// Database errors are logged and retried after PollInterval, so a blip
// does not stop delivery.
func (w *Worker) Run(ctx context.Context) error {
	w.log.InfoContext(ctx, "email worker started", "concurrency", w.concurrency)
	var inflight sync.WaitGroup
	defer func() {
		inflight.Wait()
		w.log.Info("email worker stopped")
	}()

	// One token per message in flight: a claim takes only as many rows as
	// there are free tokens, so nothing claimed waits in a queue while its
	// lease runs down.
	slots := make(chan struct{}, w.concurrency)
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		free := 1
	fill:
		for free < w.concurrency {
			select {
			case slots <- struct{}{}:
				free++
			default:
				break fill
			}
		}

		if ctx.Err() != nil {
			return nil
		}
		msgs, err := w.claim(ctx, free)
		for range free - len(msgs) {
			<-slots
		}
		if err != nil {
			w.log.ErrorContext(ctx, "claim outbox", "error", err)
			if !workerkit.Sleep(ctx, w.poll) {
				return nil
			}
			continue
		}

		work := context.WithoutCancel(ctx)
		for _, m := range msgs {
			inflight.Go(func() {
				defer func() { <-slots }()
				w.deliver(work, m)
			})
		}
		if len(msgs) < free && !workerkit.Sleep(ctx, w.poll) {
			return nil
		}
	}
}

// RunOnce claims one batch (at most Concurrency messages), delivers it and
// returns how many it claimed. Tests use it to step the worker; `grace
// worker` and `grace serve` call Run.
func (w *Worker) RunOnce(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	msgs, err := w.claim(ctx, w.concurrency)
	if err != nil {
		return 0, err
	}
	work := context.WithoutCancel(ctx)
	var wg sync.WaitGroup
	for _, m := range msgs {
		wg.Go(func() { w.deliver(work, m) })
	}
	wg.Wait()
	return len(msgs), nil
}

// claim leases up to n messages. The claim runs on a context that shutdown
// does not cancel: a cancellation racing the commit could otherwise leave
// rows claimed by a worker that never learnt it had them, stuck until their
// lease ran out. Callers check ctx before claiming instead.
func (w *Worker) claim(ctx context.Context, n int) ([]models.OutboxMessage, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), workerkit.WriteTimeout)
	defer cancel()
	return w.outbox.ClaimOutbox(ctx, n, w.lease)
}

// deliver renders, sends and records one claimed message. ctx is not
// cancelled by shutdown: a message, once claimed, is finished. Its lease is
// kept by a heartbeat until the outcome is written; should the heartbeat
// find it lost (this worker stalled and another took the message over), the
// send is abandoned, since the other worker sends under the same key.
func (w *Worker) deliver(ctx context.Context, m models.OutboxMessage) {
	// The token and code are in m.Data and in the rendered bodies; neither
	// is ever logged here.
	log := w.log.With("outbox_id", m.ID.String(), "template", m.Template, "attempt", m.Attempts)

	sendCtx, cancel := context.WithTimeout(ctx, w.sendTimeout)
	defer cancel()
	var lost atomic.Bool
	stop := workerkit.Heartbeat(ctx, log, workerkit.Outcome{
		LeaseLost: models.ErrOutboxLeaseLost,
		Lost:      "outbox lease lost while sending; the message is another worker's now",
		Failed:    "extend outbox lease",
	}, w.lease/3, func(ctx context.Context) error {
		return w.outbox.ExtendOutboxLease(ctx, m.ID, m.Attempts, w.lease)
	}, func() {
		lost.Store(true)
		cancel()
	})

	if m.RecipientPaused && !w.renderer.Credential(m.Template) {
		// Dropped, not held back: a pause "until I resume" could hold mail
		// for months and then release a burst of stale news (a welcome to
		// a cohort long begun, an expired seat offer) at once; what these
		// emails say is in her portal when she looks.
		stop()
		log.InfoContext(ctx, "email not sent: her email is paused")
		w.mark(ctx, log, func(ctx context.Context) error {
			return w.outbox.MarkOutboxCancelled(ctx, m.ID, m.Attempts, "paused: she paused her email; it was not sent")
		})
		return
	}
	render, from := w.renderer.Render, w.from
	if m.RecipientDiscreet {
		render, from = w.renderer.RenderDiscreet, w.discreetFrom
	}
	rendered, err := render(m.Template, m.ToName, m.Data)
	if err != nil {
		stop()
		log.ErrorContext(ctx, "email not rendered; giving up", "error", err)
		w.mark(ctx, log, func(ctx context.Context) error {
			return w.outbox.MarkOutboxFailed(ctx, m.ID, m.Attempts, "render: "+err.Error())
		})
		return
	}

	msg := Message{
		ID:      m.ID.String(),
		From:    from,
		To:      m.ToEmail,
		ToName:  m.ToName,
		Subject: rendered.Subject,
		HTML:    rendered.HTML,
		Text:    rendered.Text,
		Tags:    map[string]string{"template": m.Template, "outbox_id": m.ID.String()},
	}
	started := time.Now()
	providerID, err := w.sender.Send(sendCtx, msg)
	stop()
	took := time.Since(started).Round(time.Millisecond)
	if lost.Load() {
		// Nothing to record: the fencing would refuse it, and the worker
		// that holds the message now records its own outcome.
		return
	}

	switch {
	case err == nil:
		log.InfoContext(ctx, "email sent", "provider_id", providerID, "took", took)
		w.mark(ctx, log, func(ctx context.Context) error {
			return w.outbox.MarkOutboxSent(ctx, m.ID, m.Attempts, providerID)
		})
	case Permanent(err):
		log.ErrorContext(ctx, "email rejected; giving up", "error", err, "took", took)
		w.mark(ctx, log, func(ctx context.Context) error {
			return w.outbox.MarkOutboxFailed(ctx, m.ID, m.Attempts, err.Error())
		})
	case m.Attempts >= w.maxAttempts:
		log.ErrorContext(ctx, "email not sent; attempts exhausted, giving up", "error", err, "took", took, "max_attempts", w.maxAttempts)
		w.mark(ctx, log, func(ctx context.Context) error {
			return w.outbox.MarkOutboxFailed(ctx, m.ID, m.Attempts, err.Error())
		})
	default:
		next := w.outbox.Now().Add(Backoff(m.Attempts))
		log.WarnContext(ctx, "email not sent; will retry", "error", err, "took", took, "next_attempt_at", next)
		w.mark(ctx, log, func(ctx context.Context) error {
			return w.outbox.MarkOutboxRetry(ctx, m.ID, m.Attempts, err.Error(), next)
		})
	}
}

// mark records a message's outcome; see workerkit.Record.
func (w *Worker) mark(ctx context.Context, log *slog.Logger, fn func(context.Context) error) {
	_ = workerkit.Record(ctx, log, workerkit.Outcome{
		LeaseLost: models.ErrOutboxLeaseLost,
		Lost:      "outbox lease lost before the outcome was recorded",
		Failed:    "record email outcome",
	}, fn)
}

// Backoff is the wait before the next attempt after attempt (1-based)
// failed transiently: 30s doubling per attempt, capped at an hour, with
// jitter so a burst of failures does not retry in lockstep. It is never
// less than half the step.
func Backoff(attempt int) time.Duration {
	d := backoffCap
	if attempt >= 1 && attempt <= 20 {
		d = min(backoffBase<<(attempt-1), backoffCap)
	}
	return d/2 + rand.N(d/2+1)
}

package drip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"sync"
	"time"

	"github.com/grace-coaching/grace/emails"
	"github.com/grace-coaching/grace/emails/internal/workerkit"
	dripdom "github.com/grace-coaching/grace/models/drip"
)

// Worker defaults.
const (
	DefaultConcurrency  = 4
	DefaultBatchSize    = emails.MaxBatch
	DefaultPollInterval = time.Second
	DefaultLease        = 5 * time.Minute
	DefaultSendTimeout  = 30 * time.Second

	// defaultRetryAfter is the wait after a 429 that named none.
	defaultRetryAfter = time.Second
)

// Source is what the worker needs from the drip engine, and no more: claim
// and record batches, share the provider's send budget, and the domain's
// clock for the next attempt. *drip.Service (models/drip) implements it.
type Source interface {
	ClaimDripBatch(ctx context.Context, limit int, lease time.Duration) (dripdom.Claim, error)
	ExtendDripBatchLease(ctx context.Context, b *dripdom.Batch, lease time.Duration) error
	RecordDripBatchSent(ctx context.Context, b *dripdom.Batch, results []dripdom.SendResult) error
	RecordDripBatchRetry(ctx context.Context, b *dripdom.Batch, errMsg string, next time.Time) (gaveUp bool, err error)
	RecordDripBatchFailed(ctx context.Context, b *dripdom.Batch, reason string) error
	TakeSendSlot(ctx context.Context, name string, rate float64) (time.Duration, error)
	DelaySendSlots(ctx context.Context, name string, d time.Duration) error
	Now() time.Time
}

// WorkerConfig configures NewWorker. Source, Sender, From and Rate are
// required; zero values elsewhere take the defaults above.
type WorkerConfig struct {
	Source Source
	Sender emails.BatchSender
	// From is the sender address, e.g. "Grace <hello@example.com>".
	From string
	// Discreet gives the sender of a discreet woman's email: its neutral
	// name at its address (DISCREET_EMAIL_FROM), or at From's when unset.
	Discreet emails.Discreet
	// Rate is the provider's request budget in requests per second, shared
	// by every worker of every process through the database.
	Rate float64
	Log  *slog.Logger

	// Concurrency is how many batch loops run at once.
	Concurrency int
	// BatchSize is the most deliveries one call carries (at most 100).
	BatchSize int
	// PollInterval is the pause after a claim that found nothing due.
	PollInterval time.Duration
	// Lease is how long a claimed batch belongs to this worker. A worker
	// that dies leaves its batch to be reclaimed when the lease expires; the
	// retry reuses the batch's key, so the provider sends it once.
	Lease time.Duration
	// SendTimeout bounds one call to the Sender; at most a third of Lease.
	SendTimeout time.Duration
	// Backoff is the wait before retrying a batch whose attempt-th call
	// failed transiently (default emails.Backoff: 30 s doubling to an hour,
	// with jitter).
	Backoff func(attempt int) time.Duration
}

// Worker delivers due drip emails: each of its loops forms (or reclaims) a
// batch, waits for a send slot, sends the batch and records the outcome.
// Any number of workers, in one process or many, share one database.
type Worker struct {
	source Source
	sender emails.BatchSender
	from   string
	// discreetFrom sends the members rendered in discreet mode.
	discreetFrom string
	rate         float64
	log          *slog.Logger
	concurrency  int
	batchSize    int
	poll         time.Duration
	lease        time.Duration
	sendTimeout  time.Duration
	backoff      func(int) time.Duration
}

// NewWorker checks cfg and fills in the defaults.
func NewWorker(cfg WorkerConfig) (*Worker, error) {
	switch {
	case cfg.Source == nil:
		return nil, errors.New("drip: worker needs a Source")
	case cfg.Sender == nil:
		return nil, errors.New("drip: worker needs a Sender")
	case !(cfg.Rate > 0):
		return nil, fmt.Errorf("drip: worker rate %v must be a positive number of requests per second", cfg.Rate)
	case cfg.BatchSize > emails.MaxBatch:
		return nil, fmt.Errorf("drip: batch size %d is over the provider's %d", cfg.BatchSize, emails.MaxBatch)
	}
	if _, err := mail.ParseAddress(cfg.From); err != nil {
		return nil, fmt.Errorf("drip: worker From %q is not an email address: %w", cfg.From, err)
	}
	if err := cfg.Discreet.Validate(); err != nil {
		return nil, err
	}
	discreetFrom, err := cfg.Discreet.From(cfg.From)
	if err != nil {
		return nil, err
	}
	w := &Worker{
		discreetFrom: discreetFrom,
		source:       cfg.Source,
		sender:       cfg.Sender,
		from:         cfg.From,
		rate:         cfg.Rate,
		log:          cfg.Log,
		concurrency:  workerkit.OrDefault(cfg.Concurrency, DefaultConcurrency),
		batchSize:    workerkit.OrDefault(cfg.BatchSize, DefaultBatchSize),
		poll:         workerkit.OrDefault(cfg.PollInterval, DefaultPollInterval),
		lease:        workerkit.OrDefault(cfg.Lease, DefaultLease),
		backoff:      cfg.Backoff,
	}
	w.sendTimeout = workerkit.OrDefault(cfg.SendTimeout, min(DefaultSendTimeout, w.lease/3))
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if w.backoff == nil {
		w.backoff = emails.Backoff
	}
	if w.lease < 3*w.sendTimeout {
		return nil, fmt.Errorf("drip: worker lease %s must be at least three times the send timeout %s", w.lease, w.sendTimeout)
	}
	return w, nil
}

// Run delivers until ctx is cancelled, then stops claiming, lets each loop
// finish the batch it holds (sent and recorded), and returns nil. Database
// errors are logged and retried after PollInterval.
func (w *Worker) Run(ctx context.Context) error {
	w.log.InfoContext(ctx, "drip worker started", "concurrency", w.concurrency, "rate", w.rate, "batch_size", w.batchSize)
	var loops sync.WaitGroup
	for range w.concurrency {
		loops.Go(func() { w.loop(ctx) })
	}
	loops.Wait()
	w.log.Info("drip worker stopped")
	return nil
}

func (w *Worker) loop(ctx context.Context) {
	for ctx.Err() == nil {
		worked, err := w.runOnce(ctx, context.WithoutCancel(ctx))
		if err != nil {
			w.log.ErrorContext(ctx, "claim drip batch", "error", err)
		}
		if (err != nil || worked == 0) && !workerkit.Sleep(ctx, w.poll) {
			return
		}
	}
}

// RunOnce claims one batch (reclaimed or newly formed), sends it and
// records the outcome, and returns how many deliveries it settled or sent
// (ineligible rows cancelled included); 0 means nothing was due. Tests step
// the worker with it.
func (w *Worker) RunOnce(ctx context.Context) (int, error) {
	return w.runOnce(ctx, ctx)
}

// runOnce works on ctx, which shutdown does not cancel: a batch once
// claimed is sent and recorded. live is cancelled by shutdown, and only
// cuts short the wait for a provider's Retry-After.
func (w *Worker) runOnce(live, ctx context.Context) (int, error) {
	claimCtx, cancel := context.WithTimeout(ctx, workerkit.WriteTimeout)
	claim, err := w.source.ClaimDripBatch(claimCtx, w.batchSize, w.lease)
	cancel()
	if err != nil {
		return 0, err
	}
	if claim.Cancelled > 0 || claim.Failed > 0 {
		w.log.InfoContext(ctx, "drip deliveries settled without sending", "cancelled", claim.Cancelled, "failed", claim.Failed)
	}
	n := claim.Cancelled + claim.Failed
	if claim.Batch != nil {
		n += len(claim.Batch.Members)
		w.deliver(live, ctx, claim.Batch, time.Now())
	}
	return n, nil
}

// deliver sends a claimed batch and records the outcome. claimed is when
// the lease began, on the process's clock (the lease only has to be
// measured, not agreed on).
func (w *Worker) deliver(live, ctx context.Context, b *dripdom.Batch, claimed time.Time) {
	log := w.log.With("batch_id", b.ID.String(), "attempt", b.Attempt, "size", len(b.Members))
	batch := emails.Batch{Key: b.ID.String(), From: w.from, Emails: make([]emails.BatchEmail, len(b.Members))}
	for i, m := range b.Members {
		from := ""
		if m.Rendered.Discreet {
			from = w.discreetFrom
		}
		batch.Emails[i] = emails.BatchEmail{
			From:    from,
			To:      m.Email,
			Subject: m.Rendered.Subject,
			HTML:    m.Rendered.HTML,
			Text:    m.Rendered.Text,
			Headers: m.Rendered.Headers,
			// The delivery id rides along, so a webhook or a log line can
			// be traced to its row; it is part of the frozen payload.
			Tags: map[string]string{"delivery_id": m.DeliveryID.String()},
		}
	}

	for {
		if !w.waitForSlot(ctx, log, b, &claimed) {
			return
		}
		sendCtx, cancel := context.WithTimeout(ctx, w.sendTimeout)
		started := time.Now()
		res, err := w.sender.SendBatch(sendCtx, batch)
		cancel()
		took := time.Since(started).Round(time.Millisecond)

		retryAfter, limited := emails.RateLimited(err)
		switch {
		case err == nil:
			results := make([]dripdom.SendResult, len(b.Members))
			rejected := 0
			for i, m := range b.Members {
				results[i] = dripdom.SendResult{DeliveryID: m.DeliveryID}
				if i < len(res.IDs) {
					results[i].ResendID = res.IDs[i]
				}
				if i < len(res.Errors) && res.Errors[i] != "" {
					results[i].Error = res.Errors[i]
					rejected++
				}
			}
			log.InfoContext(ctx, "drip batch sent", "took", took, "rejected", rejected)
			w.record(ctx, log, func(ctx context.Context) error { return w.source.RecordDripBatchSent(ctx, b, results) })
			return
		case limited:
			// Not a failure: every worker waits Retry-After, then this one
			// sends the same batch again while its lease allows (and the
			// process is not shutting down); else it releases the batch to
			// be claimed after Retry-After.
			if retryAfter <= 0 {
				retryAfter = defaultRetryAfter
			}
			log.WarnContext(ctx, "drip batch rate limited by the provider", "retry_after", retryAfter, "took", took)
			w.mark(ctx, log, "delay send slots", func(ctx context.Context) error {
				return w.source.DelaySendSlots(ctx, dripdom.DripRateLimiter, retryAfter)
			})
			if live.Err() == nil && time.Since(claimed)+retryAfter+w.sendTimeout < w.lease/2 {
				continue
			}
			next := w.source.Now().Add(retryAfter)
			w.record(ctx, log, func(ctx context.Context) error {
				_, err := w.source.RecordDripBatchRetry(ctx, b, "rate_limited: "+err.Error(), next)
				return err
			})
			return
		case emails.Permanent(err):
			msg := err.Error()
			var pe *emails.ProviderError
			if errors.As(err, &pe) && pe.Message != "" {
				msg = pe.Message
			}
			log.ErrorContext(ctx, "drip batch refused; its emails failed", "error", err, "took", took)
			w.record(ctx, log, func(ctx context.Context) error { return w.source.RecordDripBatchFailed(ctx, b, "rejected: "+msg) })
			return
		default:
			next := w.source.Now().Add(w.backoff(b.Attempt))
			log.WarnContext(ctx, "drip batch not sent; will retry under the same key", "error", err, "took", took, "next_attempt_at", next)
			w.record(ctx, log, func(ctx context.Context) error {
				gaveUp, rerr := w.source.RecordDripBatchRetry(ctx, b, err.Error(), next)
				if gaveUp && rerr == nil {
					log.ErrorContext(ctx, "drip batch given up: 23 hours of failures", "error", err)
				}
				return rerr
			})
			return
		}
	}
}

// waitForSlot takes the next shared send slot and sleeps until it,
// extending the lease first when the wait would eat into it. It returns
// false when the batch is no longer this worker's.
func (w *Worker) waitForSlot(ctx context.Context, log *slog.Logger, b *dripdom.Batch, claimed *time.Time) bool {
	slotCtx, cancel := context.WithTimeout(ctx, workerkit.WriteTimeout)
	wait, err := w.source.TakeSendSlot(slotCtx, dripdom.DripRateLimiter, w.rate)
	cancel()
	if err != nil {
		// Sending without a slot could overrun the provider's limit; leave
		// the batch to be retried when the lease expires.
		log.ErrorContext(ctx, "take send slot; the batch waits for its lease to expire", "error", err)
		return false
	}
	if time.Since(*claimed)+wait+w.sendTimeout > w.lease/2 {
		err := workerkit.Record(ctx, log, workerkit.Outcome{
			LeaseLost: dripdom.ErrDripLeaseLost,
			Lost:      "drip batch lease lost while waiting for a send slot",
			Failed:    "extend drip batch lease",
		}, func(ctx context.Context) error { return w.source.ExtendDripBatchLease(ctx, b, w.lease) })
		if err != nil {
			return false
		}
		*claimed = time.Now()
	}
	if wait > 0 {
		time.Sleep(wait)
	}
	return true
}

// record runs a Record function with its own deadline.
func (w *Worker) record(ctx context.Context, log *slog.Logger, fn func(context.Context) error) {
	w.mark(ctx, log, "record drip batch outcome", fn)
}

// mark runs one of the batch's writes; see workerkit.Record. what is the
// message logged if it fails.
func (w *Worker) mark(ctx context.Context, log *slog.Logger, what string, fn func(context.Context) error) {
	_ = workerkit.Record(ctx, log, workerkit.Outcome{
		LeaseLost: dripdom.ErrDripLeaseLost,
		Lost:      "drip batch lease lost before the outcome was recorded",
		Failed:    what,
	}, fn)
}

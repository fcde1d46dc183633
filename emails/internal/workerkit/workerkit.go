// Package workerkit holds the mechanics the email worker and the drip worker
// share: defaults, an interruptible pause, bounded writes of outcomes and
// lease extensions that tell a lost lease from a failure, and a heartbeat
// that keeps a lease while a send is in flight. Both workers claim work under a
// lease and record what became of it; only what they claim differs.
package workerkit

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// WriteTimeout bounds each database write that claims work or records an
// outcome. The workers run these writes on a context detached from
// shutdown, so a message sent is recorded; the timeout is what still ends
// them when the database hangs.
const WriteTimeout = 15 * time.Second

// OrDefault returns v, or def when v is not positive: the zero value of a
// worker setting means "the default".
func OrDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Sleep waits d, or less if ctx is done first; it returns false when ctx
// is done, so a polling loop stops promptly at shutdown.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Outcome says how one worker's writes report a lost lease, and what it
// logs in each case.
type Outcome struct {
	// LeaseLost is the error a write returns when another worker has
	// reclaimed (or settled) the work since this one claimed it.
	LeaseLost error
	// Lost is the warning logged then.
	Lost string
	// Failed is the error message logged with any other failure.
	Failed string
}

// Record runs write with WriteTimeout of its own, logs what went wrong and
// returns it. A caller recording an outcome has nothing left to do and
// ignores it: a lost lease means another worker has the work, and after any
// other failure the work stays 'sending' until its lease expires and is
// retried under the same idempotency key. A caller extending a lease acts
// on it.
func Record(ctx context.Context, log *slog.Logger, o Outcome, write func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, WriteTimeout)
	defer cancel()
	err := write(ctx)
	switch {
	case errors.Is(err, o.LeaseLost):
		// This worker overran its lease and another reclaimed the work; the
		// provider's idempotency key keeps the two sends to one.
		log.WarnContext(ctx, o.Lost)
	case err != nil:
		log.ErrorContext(ctx, o.Failed, "error", err)
	}
	return err
}

// Heartbeat extends a lease every interval while the work it covers is in
// flight, so a lease can be short (a dead worker's work is retried within
// seconds) however long a send takes. extend must be fenced like the
// outcome writes: it returns o.LeaseLost once another worker holds the
// work, and then lost is called (to abandon the send) and the heartbeat
// ends. Any other failure is logged and the next beat tries again; the
// fencing keeps a lease that ran out meanwhile from being taken back.
//
// The returned stop ends the heartbeat and waits for a beat in progress, so
// no extension races the outcome written after it.
func Heartbeat(ctx context.Context, log *slog.Logger, o Outcome, interval time.Duration, extend func(context.Context) error, lost func()) (stop func()) {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			if errors.Is(Record(ctx, log, o, extend), o.LeaseLost) {
				lost()
				return
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}

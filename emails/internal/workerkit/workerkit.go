// Package workerkit holds the mechanics the email worker and the drip worker
// share: defaults, an interruptible pause, and bounded writes of outcomes
// that tell a lost lease from a failure. Both workers claim work under a
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

// Record runs write with WriteTimeout of its own and logs what went wrong.
// Nothing is returned because the caller has nothing left to do: a lost
// lease means another worker has the work, and after any other failure the
// work stays 'sending' until its lease expires and is retried under the
// same idempotency key.
func Record(ctx context.Context, log *slog.Logger, o Outcome, write func(context.Context) error) {
	ctx, cancel := context.WithTimeout(ctx, WriteTimeout)
	defer cancel()
	switch err := write(ctx); {
	case errors.Is(err, o.LeaseLost):
		// This worker overran its lease and another reclaimed the work; the
		// provider's idempotency key keeps the two sends to one.
		log.WarnContext(ctx, o.Lost)
	case err != nil:
		log.ErrorContext(ctx, o.Failed, "error", err)
	}
}

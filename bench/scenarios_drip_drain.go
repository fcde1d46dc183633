package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"time"

	"github.com/grace-coaching/grace/api"
	"github.com/grace-coaching/grace/emails"
	"github.com/grace-coaching/grace/emails/drip"
	"github.com/grace-coaching/grace/emails/drip/driptest"
	"github.com/grace-coaching/grace/emails/emailstest"
	"github.com/grace-coaching/grace/models/domain"
	dripdom "github.com/grace-coaching/grace/models/drip"
)

// Drain scenarios time one job to its end against a ceiling the job cannot
// beat, rather than against a baseline's code: the report's baseline side
// is that ceiling, so the rps ratio is the fraction of it achieved.
type drainScenario struct {
	name, grace, baseline string
	minRatio              float64
	run                   func(ctx context.Context, b *bench) (grace, ceiling side, err error)
}

var drainScenarios = []drainScenario{
	{
		name: "drip-drain",
		grace: fmt.Sprintf("drip.Worker (4 loops, batches of 100) draining %d due deliveries through emails.ResendSender "+
			"to a fake Resend answering after %s, at RESEND_RATE_LIMIT %g; emails/s in the rps column",
			drainDeliveries, drainLatency, drainRate),
		baseline: fmt.Sprintf("the ceiling: %g requests/s x 100 emails = %g emails/s", drainRate, drainRate*emails.MaxBatch),
		minRatio: 0.9,
		run:      runDripDrain,
	},
}

// The acceptance figures: 20,000 deliveries, a Resend that takes 30 ms,
// 10 requests a second.
const (
	drainDeliveries = 20_000
	drainLatency    = 30 * time.Millisecond
	drainRate       = 10.0
)

// anyDrainScenario reports whether re selects a drain scenario.
func anyDrainScenario(re *regexp.Regexp) bool {
	return slices.ContainsFunc(drainScenarios, func(s drainScenario) bool { return re.MatchString(s.name) })
}

// runDrainScenarios runs the drain scenarios cfg.run selects, once each
// (a drain is minutes of the provider's budget, not a timed round).
func runDrainScenarios(ctx context.Context, cfg config, b *bench) ([]scenarioReport, error) {
	var out []scenarioReport
	for _, s := range drainScenarios {
		if !cfg.run.MatchString(s.name) {
			continue
		}
		r := scenarioReport{Name: s.name, Grace: s.grace, Baseline: s.baseline, TargetRatio: s.minRatio}
		grace, ceiling, err := s.run(ctx, b)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			r.Error = err.Error()
		}
		r.GraceSide, r.BaselineSide = grace, ceiling
		r.judge()
		out = append(out, r)
	}
	return out, nil
}

// runDripDrain seeds the deliveries, starts a fake Resend in this process
// (its own rate limit on, at the same 10/s with a burst of 3, so a request
// over the budget shows as a 429) and one drip worker, and times the drain
// from the worker's start to the last delivery recorded. Errors count the
// deliveries lost or delivered twice, and the 429s.
func runDripDrain(ctx context.Context, b *bench) (side, side, error) {
	ceiling := side{RPS: drainRate * emails.MaxBatch, RoundsRPS: []float64{drainRate * emails.MaxBatch}}
	progress("drip-drain: fixtures (%d due deliveries)", drainDeliveries)
	seeded, err := driptest.SeedDue(ctx, b.db, drainDeliveries, time.Now().Add(-time.Minute))
	if err != nil {
		return side{}, ceiling, err
	}
	renderer, err := drip.NewRenderer("Grace")
	if err != nil {
		return side{}, ceiling, err
	}
	discard := slog.New(slog.DiscardHandler)
	svc := domain.New(domain.Deps{DB: b.db, Log: discard, DripRenderer: renderer,
		AppBaseURL: benchAppURL, UnsubscribeURL: api.UnsubscribeURL(benchAppURL), UnsubscribeMailbox: "unsubscribe@grace.example"})

	// The spec check is for tests; here it would time the fake.
	fake, err := emailstest.Start(emailstest.Options{NoSpecCheck: true})
	if err != nil {
		return side{}, ceiling, err
	}
	defer fake.Close()
	fake.SetLatency(drainLatency)
	fake.SetRateLimit(drainRate, 3)
	sender, err := emails.NewResendSender(fake.APIKey, fake.URL, &http.Client{Timeout: 30 * time.Second})
	if err != nil {
		return side{}, ceiling, err
	}
	w, err := drip.NewWorker(drip.WorkerConfig{Source: svc.Drip, Sender: sender, From: "Grace <hello@grace.example>",
		Rate: drainRate, Log: discard, PollInterval: 20 * time.Millisecond})
	if err != nil {
		return side{}, ceiling, err
	}

	progress("drip-drain: draining")
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		_ = w.Run(runCtx)
	}()
	var elapsed time.Duration
	for {
		pending, err := driptest.Pending(ctx, b.db, seeded)
		if err != nil || pending == 0 || ctx.Err() != nil || time.Since(start) > 5*time.Minute {
			elapsed = time.Since(start)
			cancel()
			<-done
			if err == nil && pending > 0 {
				err = fmt.Errorf("%d deliveries still pending after %s", pending, elapsed.Round(time.Second))
			}
			if err != nil {
				return side{}, ceiling, err
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	perDelivery := map[string]int{}
	for _, e := range fake.Delivered() {
		perDelivery[e.Tags["delivery_id"]]++
	}
	dups, limited := 0, 0
	for _, n := range perDelivery {
		if n > 1 {
			dups++
		}
	}
	calls := fake.Calls()
	for _, c := range calls {
		if c.Status == http.StatusTooManyRequests {
			limited++
		}
	}
	counts, err := driptest.Counts(ctx, b.db, seeded)
	if err != nil {
		return side{}, ceiling, err
	}
	lost := drainDeliveries - len(perDelivery)
	rps := float64(counts[dripdom.DeliverySent]) / elapsed.Seconds()
	g := side{RPS: rps, RoundsRPS: []float64{rps}, Requests: int64(len(calls))}
	if bad := dups + lost + limited; bad > 0 || counts[dripdom.DeliverySent] != drainDeliveries {
		g.Errors = int64(bad)
		g.FirstError = fmt.Sprintf("%d duplicates, %d lost, %d answered 429, statuses %v", dups, lost, limited, counts)
	}
	progress("drip-drain: %d emails in %s over %d calls: %.0f emails/s, %d duplicates, %d lost, %d 429s",
		counts[dripdom.DeliverySent], elapsed.Round(time.Millisecond), len(calls), rps, dups, lost, limited)
	return g, ceiling, nil
}

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"
)

// warmUp runs before every timed round, so connections, pools, statement
// caches and the CPU's frequency have settled when the clock starts.
const warmUp = time.Second

// result is one timed round of one side.
type result struct {
	Requests   int64
	Errors     int64
	FirstError string
	Elapsed    time.Duration
	RPS        float64
	P50, P99   time.Duration
	Bytes      int64 // body size of the last good response
}

// worker is one client connection's share of a round. Each goroutine owns
// one, so the hot loop shares nothing.
type worker struct {
	lat      []time.Duration
	errs     int64
	firstErr string
	bytes    int64
}

// op is one timed unit of work: an HTTP request sent and its answer read, or
// a direct call into the domain. It returns the size of the answer (0 when
// there is none); an error counts as a failed request.
type op func(ctx context.Context) (int64, error)

// target makes the op a round is timed on, and what to release after the
// round. It is called once per round, so a side can start each round afresh
// (a new HTTP transport, counters reset).
type target func(ctx context.Context) (op, func(), error)

// httpTarget sends req to base, each goroutine on its own keep-alive
// connection.
func httpTarget(base string, req request, conns int) target {
	return func(context.Context) (op, func(), error) {
		// A transport per round: no connection outlives it, so neither side
		// inherits the other's sockets.
		tr := &http.Transport{
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			DisableCompression:  true,
			IdleConnTimeout:     time.Minute,
		}
		client := &http.Client{Transport: tr}
		return func(ctx context.Context) (int64, error) { return once(ctx, client, base, req) }, tr.CloseIdleConnections, nil
	}
}

// callTarget times f called directly, for domain-level scenarios that must
// leave HTTP (and a provider's network round trip) out of the comparison.
func callTarget(f op) target {
	return func(context.Context) (op, func(), error) { return f, func() {}, nil }
}

// measure warms up, then times one round of t from conns goroutines.
func measure(ctx context.Context, t target, conns int, d time.Duration) (result, error) {
	o, done, err := t(ctx)
	if err != nil {
		return result{}, err
	}
	defer done()
	if _, err := hammer(ctx, o, conns, warmUp); err != nil {
		return result{}, err
	}
	return hammer(ctx, o, conns, d)
}

// hammer runs o from conns goroutines until d has passed. A round's end does
// not cancel work in flight, so none is cut off and counted as an error;
// only ctx (Ctrl-C) does.
func hammer(ctx context.Context, o op, conns int, d time.Duration) (result, error) {
	// Sized for a fast machine so the timed loop seldom grows a slice.
	capacity := int(d.Seconds()*1000) + 64
	workers := make([]worker, conns)
	for i := range workers {
		workers[i].lat = make([]time.Duration, 0, capacity)
	}
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for i := range workers {
		w := &workers[i]
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(end) {
				t0 := time.Now()
				n, err := o(ctx)
				elapsed := time.Since(t0)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					if w.errs == 0 {
						w.firstErr = err.Error()
					}
					w.errs++
					continue
				}
				w.lat = append(w.lat, elapsed)
				w.bytes = n
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return result{}, err
	}
	r := result{Elapsed: time.Since(start)}
	var all []time.Duration
	for _, w := range workers {
		all = append(all, w.lat...)
		r.Errors += w.errs
		if r.FirstError == "" {
			r.FirstError = w.firstErr
		}
		r.Bytes = max(r.Bytes, w.bytes)
	}
	slices.Sort(all)
	r.Requests = int64(len(all))
	r.RPS = float64(r.Requests) / r.Elapsed.Seconds()
	r.P50, r.P99 = percentile(all, 0.50), percentile(all, 0.99)
	return r, nil
}

// once sends one request and reads the whole answer, as a browser would;
// anything but 200 is an error.
func once(ctx context.Context, client *http.Client, base string, req request) (int64, error) {
	r, err := req(ctx, base)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(r)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		_, _ = io.Copy(io.Discard, resp.Body) // keep the connection reusable
		return 0, fmt.Errorf("%s %s: status %d: %s", r.Method, r.URL.Path, resp.StatusCode, bytes.TrimSpace(b))
	}
	return io.Copy(io.Discard, resp.Body)
}

// percentile is the nearest-rank percentile of sorted latencies.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

// median of a few rounds' figures; the middle one discards a round disturbed
// by a neighbour's burst of work.
func median[T int64 | float64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

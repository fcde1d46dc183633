package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// httpScenario is a Grace route measured from outside with wrk against a
// baseline server run as its own process, the way a load test of a real
// deployment would measure it.
type httpScenario struct {
	name string
	// route names the path in the table.
	route           string
	grace, baseline string
	minRatio        float64
	maxP99Ratio     float64
	// setup builds the fixtures (Grace is already serving) and says what
	// each side is sent and how the baseline is started.
	setup func(ctx context.Context, b *bench, h *httpBench) (httpPlan, error)
}

// httpPlan is one scenario's two sides.
type httpPlan struct {
	grace, baseline httpSide
	// baselineArgs start the baseline process (bench baseline ...); the
	// pool size and database are added.
	baselineArgs []string
}

// httpSide is what wrk sends one side.
type httpSide struct {
	path    string
	headers []string
	script  string
	// args, when set, makes the script's arguments for one wrk run; run is
	// unique to each run in the bench, so a script can keep its emails and
	// addresses apart from every other run's.
	args func(run int) []string
}

// httpBench is what HTTP scenarios share: wrk, the Grace process and the
// settings both sides are measured with.
type httpBench struct {
	cfg     config
	wrk     *wrkTool
	grace   *proc
	pprof   string // Grace's profiling listener, or ""
	dsn     string
	pool    int // Grace's pool size, the baselines' too
	dir     string
	runs    int // wrk runs so far
	runsMux sync.Mutex
}

func (h *httpBench) nextRun() int {
	h.runsMux.Lock()
	defer h.runsMux.Unlock()
	h.runs++
	return h.runs
}

// wrkRunFor is one run of wrk against a side on base, 2 threads and the
// configured connections, as every comparison is measured.
func (h *httpBench) wrkRunFor(base string, s httpSide, d time.Duration) wrkRun {
	r := wrkRun{url: base + s.path, threads: h.cfg.threads, conns: h.cfg.conns, duration: d, headers: s.headers, script: s.script}
	if s.args != nil {
		r.args = s.args(h.nextRun())
	}
	return r
}

// measureSide warms a side up (fresh connections, Grace's caches and pools)
// and then times it. A warm-up that got errors stops the scenario at once:
// every round would be the same broken bench.
func (h *httpBench) measureSide(ctx context.Context, name, base string, s httpSide) (wrkResult, error) {
	warm, err := h.wrk.run(ctx, h.wrkRunFor(base, s, h.cfg.warmup))
	if err != nil {
		return wrkResult{}, err
	}
	if warm.failures() > 0 {
		return wrkResult{}, fmt.Errorf("%s warm-up: %s", name, warm.failureText())
	}
	return h.wrk.run(ctx, h.wrkRunFor(base, s, h.cfg.duration))
}

// runHTTPScenario times rounds interleaved Grace, baseline, Grace, ... so
// drift in the machine's load hits both sides, and takes the medians.
func (h *httpBench) runHTTPScenario(ctx context.Context, b *bench, s httpScenario) scenarioReport {
	r := scenarioReport{Name: s.name, Route: s.route, Grace: s.grace, Baseline: s.baseline,
		TargetRatio: s.minRatio, MaxP99Ratio: s.maxP99Ratio}
	err := func() error {
		plan, err := s.setup(ctx, b, h)
		if err != nil {
			return err
		}
		args := append([]string{"-db", h.dsn, "-pool", strconv.Itoa(h.pool)}, plan.baselineArgs...)
		base, err := startBaseline(ctx, args...)
		if err != nil {
			return err
		}
		defer base.stop()
		var gs, bs []wrkResult
		for i := 1; i <= h.cfg.rounds; i++ {
			progress("%s: round %d/%d grace", s.name, i, h.cfg.rounds)
			var prof func() (string, error)
			if h.pprof != "" && i == (h.cfg.rounds+1)/2 {
				prof = h.profile(ctx, s.name)
			}
			res, err := h.measureSide(ctx, "grace", h.grace.url(""), plan.grace)
			if prof != nil {
				top, perr := prof()
				r.Profile = top
				if perr != nil {
					r.Profile = "profile failed: " + perr.Error()
				}
			}
			if err != nil {
				return err
			}
			gs = append(gs, res)
			progress("%s: round %d/%d baseline", s.name, i, h.cfg.rounds)
			if res, err = h.measureSide(ctx, "baseline", base.url(""), plan.baseline); err != nil {
				return err
			}
			bs = append(bs, res)
		}
		r.GraceSide, r.BaselineSide = summarizeWrk(gs), summarizeWrk(bs)
		return nil
	}()
	if err != nil {
		r.Error = err.Error()
	}
	r.judge()
	return r
}

// profile starts a CPU profile of Grace over the coming timed run (it
// begins after the warm-up) and returns a function that waits for it and
// gives its top 10 by flat time.
func (h *httpBench) profile(ctx context.Context, name string) func() (string, error) {
	type outcome struct {
		top string
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		select {
		case <-time.After(h.cfg.warmup + 500*time.Millisecond):
		case <-ctx.Done():
			done <- outcome{err: ctx.Err()}
			return
		}
		secs := max(1, int(h.cfg.duration/time.Second)-1)
		path := filepath.Join(h.cfg.profileDir, name+".cpu.pprof")
		err := fetchTo(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", h.pprof, secs), path)
		if err != nil {
			done <- outcome{err: err}
			return
		}
		out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=10", path).CombinedOutput()
		if err != nil {
			done <- outcome{err: fmt.Errorf("go tool pprof: %w: %s", err, tail(out))}
			return
		}
		done <- outcome{top: fmt.Sprintf("CPU profile of Grace, %ds of the timed run (%s):\n%s", secs, path, out)}
	}()
	return func() (string, error) { o := <-done; return o.top, o.err }
}

func fetchTo(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// summarizeWrk is one side's medians over its rounds; every failure of
// every round is counted.
func summarizeWrk(rs []wrkResult) side {
	var s side
	var rps, p50, p99 []float64
	s.Statuses = map[string]int64{}
	for _, r := range rs {
		rps = append(rps, r.RPS())
		p50, p99 = append(p50, float64(r.P50us)/1000), append(p99, float64(r.P99us)/1000)
		s.Requests += r.Requests
		s.Errors += r.failures()
		if s.FirstError == "" && r.failures() > 0 {
			s.FirstError = r.failureText()
		}
		if r.Requests > 0 {
			s.Bytes = max(s.Bytes, r.Bytes/r.Requests)
		}
		for k, v := range r.Statuses {
			s.Statuses[k] += v
		}
	}
	if len(rs) == 0 {
		return s
	}
	s.RPS, s.RoundsRPS = median(rps), rps
	s.P50ms, s.P99ms = median(p50), median(p99)
	return s
}

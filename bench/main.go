// Command bench measures Grace's hot paths against bare baselines in the same
// run and reports the ratios. Absolute requests/s say more about the machine
// than about Grace; a ratio to the least code that could answer the same
// request, timed side by side on the same machine, says what Grace's layers
// cost. See README.md.
package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"runtime/pprof"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/api"
	"github.com/grace-coaching/grace/migrations"
	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/domain"
)

type config struct {
	duration time.Duration
	rounds   int
	conns    int
	run      *regexp.Regexp
	dbURL    string
	json     bool
	// For the HTTP scenarios measured with wrk.
	warmup     time.Duration
	threads    int
	floodRate  float64
	profileDir string
}

func main() {
	// The baselines are this binary too, each run as its own process.
	if len(os.Args) > 1 && os.Args[1] == "baseline" {
		if err := runBaseline(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench baseline:", err)
			os.Exit(2)
		}
		return
	}
	var cfg config
	var runExpr string
	dbDefault := os.Getenv("DATABASE_URL")
	if dbDefault == "" {
		dbDefault = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	flag.DurationVar(&cfg.duration, "duration", 7*time.Second, "timed length of each round of each side")
	flag.IntVar(&cfg.rounds, "rounds", 3, "rounds per side, interleaved Grace/baseline; the median is reported")
	flag.IntVar(&cfg.conns, "conns", 64, "concurrent keep-alive connections")
	flag.DurationVar(&cfg.warmup, "warmup", time.Second, "untimed wrk run before each timed one (HTTP scenarios)")
	flag.IntVar(&cfg.threads, "threads", 2, "wrk threads (HTTP scenarios)")
	flag.Float64Var(&cfg.floodRate, "flood-rate", 500, "login attempts per second of the password flood")
	flag.StringVar(&cfg.profileDir, "profile", "", "write a CPU profile of Grace during each HTTP scenario's middle round to this directory and print its top 10")
	flag.StringVar(&runExpr, "run", os.Getenv("BENCH_RUN"), "regexp of scenario names to run (default all; or $BENCH_RUN)")
	flag.StringVar(&cfg.dbURL, "db", dbDefault, "PostgreSQL server URL; a throwaway database is created on it and dropped")
	flag.BoolVar(&cfg.json, "json", false, "print the results as JSON")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run (both sides) to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "cpuprofile:", err)
			os.Exit(2)
		}
	}
	re, err := regexp.Compile(runExpr)
	if err != nil || cfg.rounds < 1 || cfg.conns < 1 || cfg.threads < 1 || cfg.duration < time.Second || cfg.warmup < time.Second || !(cfg.floodRate > 0) {
		fmt.Fprintln(os.Stderr, "bench: -run must be a regexp, -rounds, -conns, -threads and -flood-rate positive, -duration and -warmup at least 1s")
		os.Exit(2)
	}
	cfg.run = re

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	pass, err := run(ctx, cfg)
	stop()
	pprof.StopCPUProfile() // os.Exit below skips deferred calls
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if !pass {
		os.Exit(1)
	}
}

// bench is what scenarios build on: Grace over its real stack, and the bare
// Echo that baselines add their one route to.
type bench struct {
	db    *gorm.DB // Grace's pool, also for fixtures
	svc   *domain.Services
	grace *echo.Echo
	pool  *pgxpool.Pool // the baselines' pool, the same size as Grace's
	bare  *echo.Echo
}

// run returns whether every selected scenario met its targets. Exit paths
// return through it, so its deferred cleanup drops the database even on
// error or Ctrl-C.
func run(ctx context.Context, cfg config) (pass bool, err error) {
	var selected []scenario
	for _, s := range scenarios {
		if cfg.run.MatchString(s.name) {
			selected = append(selected, s)
		}
	}
	var selectedHTTP []httpScenario
	for _, s := range httpScenarios {
		if cfg.run.MatchString(s.name) {
			selectedHTTP = append(selectedHTTP, s)
		}
	}
	flood := cfg.run.MatchString(floodName)
	if len(selected) == 0 && len(selectedHTTP) == 0 && !flood && !anyBulkScenario(cfg.run) && !anyDrainScenario(cfg.run) {
		return false, fmt.Errorf("no scenario matches -run %q", cfg.run)
	}

	dsn, drop, err := createDatabase(ctx, cfg.dbURL)
	if err != nil {
		return false, err
	}
	defer func() { err = errors.Join(err, drop()) }()
	b, closeBench, err := openBench(ctx, dsn)
	if err != nil {
		return false, err
	}
	defer closeBench()

	rep := report{
		Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
		GOMAXPROCS: runtime.GOMAXPROCS(0), CPUs: runtime.NumCPU(),
		Conns: cfg.conns, Rounds: cfg.rounds, RoundSeconds: cfg.duration.Seconds(),
		Threads: cfg.threads, WarmupSeconds: cfg.warmup.Seconds(),
	}
	if err := b.pool.QueryRow(ctx, "SHOW server_version").Scan(&rep.Postgres); err != nil {
		return false, err
	}

	// Every setup runs before the servers start: Echo's router must not
	// change while it serves.
	type ready struct {
		s                       scenario
		grace, baseline         request
		graceCall, baselineCall target
		err                     error
	}
	var todo []ready
	for _, s := range selected {
		r := ready{s: s}
		if s.setupCalls != nil {
			r.graceCall, r.baselineCall, r.err = s.setupCalls(ctx, b)
		} else {
			r.grace, r.baseline, r.err = s.setup(ctx, b)
		}
		todo = append(todo, r)
	}
	if len(selectedHTTP) > 0 || flood {
		if err := runHTTP(ctx, cfg, b, dsn, selectedHTTP, flood, &rep); err != nil {
			return false, err
		}
	}
	graceSrv, bareSrv := httptest.NewServer(b.grace), httptest.NewServer(b.bare)
	defer graceSrv.Close()
	defer bareSrv.Close()

	for _, t := range todo {
		r := scenarioReport{Name: t.s.name, Grace: t.s.grace, Baseline: t.s.baseline,
			TargetRatio: t.s.minRatio, MaxP99Ratio: t.s.maxP99Ratio}
		if t.err == nil {
			grace, baseline := t.graceCall, t.baselineCall
			if grace == nil {
				grace, baseline = httpTarget(graceSrv.URL, t.grace, cfg.conns), httpTarget(bareSrv.URL, t.baseline, cfg.conns)
			}
			t.err = runScenario(ctx, cfg, b, &r, grace, baseline)
		}
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		if t.err != nil {
			r.Error = t.err.Error()
		}
		r.judge()
		rep.Scenarios = append(rep.Scenarios, r)
	}
	bulk, err := runBulkScenarios(ctx, cfg, b) // scenarios_drip_schedule.go
	if err != nil {
		return false, err
	}
	rep.Scenarios = append(rep.Scenarios, bulk...)
	drains, err := runDrainScenarios(ctx, cfg, b) // scenarios_drip_drain.go
	if err != nil {
		return false, err
	}
	rep.Scenarios = append(rep.Scenarios, drains...)
	rep.Pass = rep.Flood == nil || rep.Flood.Pass
	for _, r := range rep.Scenarios {
		rep.Pass = rep.Pass && r.Pass
	}
	if cfg.json {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	} else {
		rep.print(os.Stdout)
	}
	return rep.Pass, err
}

// runHTTP measures the HTTP scenarios and the flood with wrk against the
// real binary, `grace serve`, run as in production.
func runHTTP(ctx context.Context, cfg config, b *bench, dsn string, selected []httpScenario, flood bool, rep *report) error {
	dir, err := os.MkdirTemp("", "grace-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	w, err := findWrk(ctx, dir)
	if err != nil {
		return err
	}
	rep.Wrk = w.path + " (" + w.how + ")"
	progress("wrk: %s", rep.Wrk)
	progress("building ./cmd/grace")
	bin, err := buildGrace(ctx, dir)
	if err != nil {
		return err
	}
	sink := startMailSink()
	defer sink.srv.Close()
	h := &httpBench{cfg: cfg, wrk: w, dsn: dsn, dir: dir}
	if sqlDB, err := b.db.DB(); err == nil {
		h.pool = sqlDB.Stats().MaxOpenConnections // models.OpenDB's, as in grace serve
	}
	rep.Pool = h.pool
	if cfg.profileDir != "" {
		if err := os.MkdirAll(cfg.profileDir, 0o755); err != nil {
			return err
		}
		if h.pprof, err = freeAddr(); err != nil {
			return err
		}
	}
	// The log outlives the run, so its lines can be read afterwards.
	logFile, err := os.CreateTemp("", "grace-bench-*.log")
	if err != nil {
		return err
	}
	logPath := logFile.Name()
	logFile.Close()
	g, err := startGrace(ctx, bin, graceEnv(dsn, sink.srv.URL, h.pprof), logPath)
	if err != nil {
		return err
	}
	h.grace = g
	defer func() {
		if err := g.stop(); err != nil {
			progress("stopping grace: %v", err)
		}
		lines, levels, size, firstErr := logSummary(logPath)
		rep.GraceLog = fmt.Sprintf("%s: %d lines (%.1f MB), by level %v", logPath, lines, float64(size)/(1<<20), levels)
		if firstErr != "" {
			rep.GraceLog += "; first ERROR: " + firstErr
		}
	}()
	for _, s := range selected {
		r := h.runHTTPScenario(ctx, b, s)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rep.Scenarios = append(rep.Scenarios, r)
	}
	if flood {
		rep.Flood = h.runFlood(ctx, b)
	}
	return ctx.Err()
}

// freeAddr is a loopback address nothing listens on, for a listener a child
// process opens.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// runScenario probes both sides once, so a broken route fails in a second
// rather than after every round, then times rounds interleaved baseline,
// Grace, baseline, Grace..., so drift in the machine's load hits both sides.
func runScenario(ctx context.Context, cfg config, b *bench, r *scenarioReport, grace, baseline target) error {
	if err := probe(ctx, baseline); err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	if err := probe(ctx, grace); err != nil {
		return fmt.Errorf("grace: %w", err)
	}
	var bs, gs []result
	for i := 1; i <= cfg.rounds; i++ {
		progress("%s: round %d/%d baseline", r.Name, i, cfg.rounds)
		res, err := measure(ctx, baseline, cfg.conns, cfg.duration)
		if err != nil {
			return err
		}
		bs = append(bs, res)
		b.releaseConns()
		progress("%s: round %d/%d grace", r.Name, i, cfg.rounds)
		if res, err = measure(ctx, grace, cfg.conns, cfg.duration); err != nil {
			return err
		}
		gs = append(gs, res)
		b.releaseConns()
	}
	r.BaselineSide, r.GraceSide = summarize(bs), summarize(gs)
	return nil
}

// probe runs a side once, with a deadline.
func probe(ctx context.Context, t target) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	o, done, err := t(ctx)
	if err != nil {
		return err
	}
	defer done()
	_, err = o(ctx)
	return err
}

// releaseConns closes both pools' idle connections between rounds. Two warm
// pools of Grace's size would hold most of a default server's 100
// connections; each round's warm-up opens what its side needs again.
func (b *bench) releaseConns() {
	b.pool.Reset()
	if sqlDB, err := b.db.DB(); err == nil {
		n := sqlDB.Stats().MaxOpenConnections
		sqlDB.SetMaxIdleConns(0) // keep none: closes the idle ones now
		sqlDB.SetMaxIdleConns(n) // as models.OpenDB sets it
	}
}

// progress goes to stderr, so -json output stays parseable.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// createDatabase makes a throwaway database on the server, so a run never
// touches real data and runs cannot see each other's rows. drop removes it
// and must run even after Ctrl-C, so it ignores the run's context.
func createDatabase(ctx context.Context, serverURL string) (dsn string, drop func() error, err error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", nil, fmt.Errorf("-db: %w", err)
	}
	suffix := make([]byte, 6)
	if _, err := rand.Read(suffix); err != nil {
		return "", nil, err
	}
	name := "grace_bench_" + hex.EncodeToString(suffix)
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return "", nil, fmt.Errorf("connect to %s: %w", u.Redacted(), err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	drop = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, serverURL)
		if err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		defer conn.Close(ctx)
		// FORCE: a pool connection left open by an interrupted run must not
		// keep the database alive.
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		return nil
	}
	db := *u
	db.Path = "/" + name
	return db.String(), drop, nil
}

// openBench migrates the database and builds both servers with logging off,
// so the comparison is of work done, not of log lines written.
func openBench(ctx context.Context, dsn string) (*bench, func(), error) {
	discard := slog.New(slog.DiscardHandler)
	gdb, err := models.OpenDB(ctx, dsn, discard) // Grace's production pool settings
	if err != nil {
		return nil, nil, err
	}
	sqlDB, err := gdb.DB()
	if err != nil {
		return nil, nil, err
	}
	if err := migrations.Up(ctx, sqlDB); err != nil {
		sqlDB.Close()
		return nil, nil, err
	}
	pcfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		sqlDB.Close()
		return nil, nil, err
	}
	// The same number of connections as Grace, so neither side wins by
	// queueing less for one.
	pcfg.MaxConns = int32(sqlDB.Stats().MaxOpenConnections)
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		sqlDB.Close()
		return nil, nil, err
	}
	// Checkouts go to a provider that answers at once, and webhooks are
	// verified by the real Stripe adapter: the bench times Grace, not Stripe.
	verifier, err := newWebhookVerifier()
	if err != nil {
		pool.Close()
		sqlDB.Close()
		return nil, nil, err
	}
	svc := domain.New(domain.Deps{DB: gdb, Log: discard, Payments: instantGateway(), AppBaseURL: benchAppURL})
	bare := echo.New()
	bare.HideBanner, bare.HidePort = true, true
	grace := api.New(api.Config{Service: svc, Log: discard, StripeWebhook: verifier})
	b := &bench{db: gdb, svc: svc, grace: grace, pool: pool, bare: bare}
	return b, func() { pool.Close(); sqlDB.Close() }, nil
}

// report is the run's outcome; -json prints it as is.
type report struct {
	Go            string           `json:"go"`
	OS            string           `json:"os"`
	Arch          string           `json:"arch"`
	GOMAXPROCS    int              `json:"gomaxprocs"`
	CPUs          int              `json:"cpus"`
	Postgres      string           `json:"postgres"`
	Conns         int              `json:"conns"`
	Rounds        int              `json:"rounds"`
	RoundSeconds  float64          `json:"round_seconds"`
	Scenarios     []scenarioReport `json:"scenarios"`
	Flood         *floodReport     `json:"flood,omitempty"`
	Wrk           string           `json:"wrk,omitempty"`
	Threads       int              `json:"wrk_threads"`
	WarmupSeconds float64          `json:"wrk_warmup_seconds"`
	Pool          int              `json:"db_pool"`
	GraceLog      string           `json:"grace_log,omitempty"`
	Pass          bool             `json:"pass"`
}

type scenarioReport struct {
	Name         string  `json:"name"`
	Route        string  `json:"route,omitempty"` // set for the HTTP scenarios measured with wrk
	Grace        string  `json:"grace"`
	Baseline     string  `json:"baseline"`
	BaselineSide side    `json:"baseline_result"`
	GraceSide    side    `json:"grace_result"`
	RPSRatio     float64 `json:"rps_ratio"`
	P99Ratio     float64 `json:"p99_ratio"`
	TargetRatio  float64 `json:"target_rps_ratio"`
	MaxP99Ratio  float64 `json:"max_p99_ratio,omitempty"`
	Pass         bool    `json:"pass"`
	Error        string  `json:"error,omitempty"`
	Profile      string  `json:"profile,omitempty"`
}

// side is one side's medians over the rounds.
type side struct {
	RPS        float64   `json:"rps"`
	P50ms      float64   `json:"p50_ms"`
	P99ms      float64   `json:"p99_ms"`
	Bytes      int64     `json:"response_bytes"`
	Requests   int64     `json:"requests"`
	Errors     int64     `json:"errors"`
	FirstError string    `json:"first_error,omitempty"`
	RoundsRPS  []float64 `json:"rounds_rps"`
	// Statuses counts the responses by status (wrk scenarios).
	Statuses map[string]int64 `json:"statuses,omitempty"`
}

func summarize(rs []result) side {
	var s side
	var rps []float64
	var p50, p99 []time.Duration
	for _, r := range rs {
		rps, p50, p99 = append(rps, r.RPS), append(p50, r.P50), append(p99, r.P99)
		s.Requests += r.Requests
		s.Errors += r.Errors
		s.Bytes = max(s.Bytes, r.Bytes)
		if s.FirstError == "" {
			s.FirstError = r.FirstError
		}
	}
	s.RPS, s.RoundsRPS = median(rps), rps
	s.P50ms, s.P99ms = ms(median(p50)), ms(median(p99))
	return s
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// judge sets the ratios and the verdict. Any failed request fails the
// scenario: a fast error page is not a fast page.
func (r *scenarioReport) judge() {
	if r.BaselineSide.RPS > 0 {
		r.RPSRatio = r.GraceSide.RPS / r.BaselineSide.RPS
	}
	if r.BaselineSide.P99ms > 0 {
		r.P99Ratio = r.GraceSide.P99ms / r.BaselineSide.P99ms
	}
	if r.Error == "" && (r.BaselineSide.Errors > 0 || r.GraceSide.Errors > 0) {
		first := cmp.Or(r.BaselineSide.FirstError, r.GraceSide.FirstError)
		r.Error = fmt.Sprintf("%d baseline and %d Grace requests failed; first: %s",
			r.BaselineSide.Errors, r.GraceSide.Errors, first)
	}
	r.Pass = r.Error == "" && r.RPSRatio >= r.TargetRatio && (r.MaxP99Ratio == 0 || r.P99Ratio <= r.MaxP99Ratio)
}

func (rep *report) print(w io.Writer) {
	fmt.Fprintf(w, "%s %s/%s  GOMAXPROCS=%d  CPUs=%d  PostgreSQL %s\n", rep.Go, rep.OS, rep.Arch, rep.GOMAXPROCS, rep.CPUs, rep.Postgres)
	rep.printHTTP(w)
	inProcess := false
	for _, r := range rep.Scenarios {
		if r.Route != "" {
			continue // in printHTTP's table
		}
		if !inProcess {
			inProcess = true
			fmt.Fprintf(w, "\nIn process: %d goroutines in the bench; median of %d rounds of %gs per side, interleaved; %s warm-up before each\n",
				rep.Conns, rep.Rounds, rep.RoundSeconds, warmUp)
		}
		fmt.Fprintf(w, "\n%s\n  grace:    %s\n  baseline: %s\n", r.Name, r.Grace, r.Baseline)
		if r.BaselineSide.RoundsRPS != nil {
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "\tside\trps\tp50 ms\tp99 ms\tbytes\terrors\trounds rps\t")
			for _, s := range []struct {
				name string
				side
			}{{"baseline", r.BaselineSide}, {"grace", r.GraceSide}} {
				fmt.Fprintf(tw, "\t%s\t%.0f\t%.2f\t%.2f\t%d\t%d\t%s\t\n", s.name, s.RPS, s.P50ms, s.P99ms, s.Bytes, s.Errors, roundsText(s.RoundsRPS))
			}
			tw.Flush()
		}
		p99 := "no limit"
		if r.MaxP99Ratio > 0 {
			p99 = fmt.Sprintf("limit <= %.2fx", r.MaxP99Ratio)
		}
		verdict := "PASS"
		if !r.Pass {
			verdict = "FAIL"
		}
		fmt.Fprintf(w, "  rps ratio %.2f (target >= %.2f)   p99 ratio %.2fx (%s)   %s\n", r.RPSRatio, r.TargetRatio, r.P99Ratio, p99, verdict)
		if r.Error != "" {
			fmt.Fprintf(w, "  error: %s\n", r.Error)
		}
	}
	verdict := "PASS"
	if !rep.Pass {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "\n%s\n", verdict)
}

func roundsText(xs []float64) string {
	s := ""
	for i, x := range xs {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%.0f", x)
	}
	return s
}

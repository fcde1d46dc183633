package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/grace-coaching/grace/api"
	"github.com/grace-coaching/grace/api/stripe"
	"github.com/grace-coaching/grace/emails"
	"github.com/grace-coaching/grace/emails/drip"
	"github.com/grace-coaching/grace/migrations"
	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/domain"
)

// App is a running Grace: the database, the domain, and the HTTP server and
// email worker when asked for. Tests boot it exactly as `grace serve` does.
type App struct {
	cfg    Config
	log    *slog.Logger
	clock  models.Clock
	db     *gorm.DB
	svc    *domain.Services
	server *http.Server
	ln     net.Listener
	// pprof serves profiles when GRACE_PPROF_ADDR is set.
	pprof *http.Server

	// payments is nil when STRIPE_SECRET_KEY is not set.
	payments *stripe.Client

	workerCancel context.CancelFunc
	workerDone   sync.WaitGroup

	// cutOff cancels every request's context; Close calls it only when
	// requests outlast the shutdown grace.
	cutOff context.CancelFunc
}

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(models.ContextHandler{Handler: slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})})
}

// openApp connects to (creating if need be) and migrates the database.
func openApp(ctx context.Context, cfg Config, log *slog.Logger, migrate bool) (*App, error) {
	// Refused before anything is touched: production never runs without
	// the key her reflections are encrypted under.
	keys, err := cfg.reflectionsKeyring(log)
	if err != nil {
		return nil, err
	}
	if err := ensureDatabase(ctx, cfg.DatabaseURL); err != nil {
		return nil, err
	}
	db, err := models.OpenDB(ctx, cfg.DatabaseURL, log)
	if err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, log: log, clock: models.SystemClock{}, db: db}
	if migrate {
		sqlDB, _ := db.DB()
		if err := migrations.Up(ctx, sqlDB); err != nil {
			a.Close()
			return nil, err
		}
	}
	dripRenderer, err := drip.NewRenderer(productName, cfg.Discreet)
	if err != nil {
		a.Close()
		return nil, err
	}
	deps := domain.Deps{DB: db, Clock: a.clock, Log: log, Limits: cfg.limits(), AppBaseURL: cfg.AppBaseURL,
		DripRenderer: dripRenderer, UnsubscribeURL: api.UnsubscribeURL(cfg.APIBaseURL), UnsubscribeMailbox: cfg.UnsubscribeMailbox,
		Reflections: keys, ConsentConfirmURL: api.ConsentConfirmURL(cfg.APIBaseURL), DeviceKey: cfg.DeviceKey,
		Retention: cfg.Retention}
	if len(cfg.DeviceKey) == 0 {
		log.Warn("auth: GRACE_DEVICE_KEY is not set: a random key signs known-device cookies, so coaches' devices are forgotten on restart and not shared between instances")
	}
	if cfg.StripeSecretKey != "" {
		// No network call here: a wrong key shows on the first checkout,
		// not at boot, so the rest of Grace serves while Stripe is down.
		a.payments, err = stripe.New(stripe.Config{
			SecretKey:     cfg.StripeSecretKey,
			APIURL:        cfg.StripeAPIURL,
			WebhookSecret: cfg.StripeWebhookSecret,
			// Three attempts (the SDK retries twice) of STRIPE_TIMEOUT each,
			// plus backoff, stay inside the server's 60 s write timeout, so
			// a slow Stripe still gets a 502 to the browser, not a cut line;
			// SHUTDOWN_GRACE outlasts them (config.go).
			CallTimeout: cfg.StripeTimeout,
		})
		if err != nil {
			a.Close()
			return nil, err
		}
		deps.Payments = a.payments
	}
	a.svc = domain.New(deps)
	return a, nil
}

// stripeWebhook is the webhook verifier, or nil (webhooks refused) when
// payments or the signing secret are not configured. It is an interface
// value built only from a non-nil client: a nil *stripe.Client inside it
// would look configured.
func (a *App) stripeWebhook() api.PaymentWebhook {
	if a.payments == nil || a.cfg.StripeWebhookSecret == "" {
		return nil
	}
	return a.payments
}

// emailWebhook is the Resend webhook verifier, or nil (webhooks refused)
// when RESEND_WEBHOOK_SECRET is not set; like stripeWebhook, the interface
// value is built only from a non-nil verifier.
func (a *App) emailWebhook() (api.EmailWebhook, error) {
	if a.cfg.ResendWebhookSecret == "" {
		return nil, nil
	}
	v, err := emails.NewWebhookVerifier(a.cfg.ResendWebhookSecret)
	if err != nil {
		return nil, err
	}
	return v, nil
}

// ready reports the schema version, failing unless the database answers and
// is at the newest migration this binary knows.
func (a *App) ready(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	sqlDB, err := a.db.DB()
	if err != nil {
		return 0, err
	}
	if err := sqlDB.PingContext(ctx); err != nil {
		return 0, errors.New("database unreachable")
	}
	p, err := migrations.NewProvider(sqlDB)
	if err != nil {
		return 0, err
	}
	current, err := p.GetDBVersion(ctx)
	if err != nil {
		return 0, errors.New("schema version unknown")
	}
	latest, err := migrations.Latest()
	if err != nil {
		return 0, err
	}
	if current != latest {
		return current, fmt.Errorf("schema at version %d, want %d", current, latest)
	}
	return current, nil
}

// productName names the sender in every email's layout.
const productName = "Grace"

// mailSender is what both workers send through.
type mailSender interface {
	emails.Sender
	emails.BatchSender
}

// sender picks the Resend sender when a key is set. Only in dev mode does a
// missing key fall back to the dev sender, which writes each email, sign-in
// links included, to the log; production refused to start without a key
// (config.go), and refuses here too should one ever get this far.
func (a *App) sender() (mailSender, error) {
	if a.cfg.ResendAPIKey == "" {
		if a.cfg.Env != EnvDev {
			return nil, errors.New("email: RESEND_API_KEY is not set, and production never writes emails to the log")
		}
		a.log.Warn("email: DEV MODE, RESEND_API_KEY is not set: emails and drip emails are written to this log, not sent")
		return emails.DevSender{Log: a.log}, nil
	}
	rs, err := emails.NewResendSender(a.cfg.ResendAPIKey, a.cfg.ResendAPIURL, &http.Client{Timeout: 30 * time.Second})
	if err != nil {
		return nil, err
	}
	a.log.Info("email: sending through Resend", "api_url", a.cfg.ResendAPIURL, "rate_limit", a.cfg.ResendRateLimit)
	return rs, nil
}

// devModeNotice is the line a dev-mode start-up opens with, saying what is
// faked, so nobody mistakes a dev instance for one that sends email.
func devModeNotice(c Config) string {
	email := "emails are printed to this log, not sent (sign-in links and codes included)"
	if c.ResendAPIKey != "" {
		email = "emails are sent through Resend at " + c.ResendAPIURL
	}
	var payments string
	switch {
	case c.StripeSecretKey == "":
		payments = "payments are off (no STRIPE_SECRET_KEY: paid checkout answers payments_unavailable)"
	case c.StripeAPIURL != "":
		payments = "payments go to the Stripe API at " + c.StripeAPIURL + " (stripe-mock or a fake)"
	default:
		payments = "payments go to Stripe with the configured key"
	}
	return "DEV MODE (GRACE_ENV=dev): " + email + "; " + payments + ". Never run dev mode for real participants."
}

// newWorkers builds the outbox worker and the drip worker on one sender.
// The function it returns runs them, the task worker, the hold sweeper and
// the daily retention sweep until ctx is cancelled, and returns once all have stopped (the workers first
// finish what they claimed). It is the one start-up of the three: `grace
// serve` runs it in the background, `grace worker` in the foreground.
func (a *App) newWorkers() (func(context.Context) error, error) {
	renderer, err := emails.NewRenderer(a.cfg.AppBaseURL, productName, a.cfg.Discreet)
	if err != nil {
		return nil, err
	}
	sender, err := a.sender()
	if err != nil {
		return nil, err
	}
	w, err := emails.NewWorker(emails.WorkerConfig{
		Outbox:   a.svc.Kernel,
		Sender:   sender,
		Renderer: renderer,
		From:     a.cfg.EmailFrom,
		Log:      a.log,
	})
	if err != nil {
		return nil, err
	}
	dw, err := drip.NewWorker(drip.WorkerConfig{
		Source:   a.svc.Drip,
		Sender:   sender,
		From:     a.cfg.EmailFrom,
		Discreet: a.cfg.Discreet,
		Rate:     a.cfg.ResendRateLimit,
		Lease:    a.cfg.DripLease,
		Log:      a.log,
	})
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		var others sync.WaitGroup
		var dripErr, taskErr error
		others.Go(func() { a.svc.Enroll.RunSweeper(ctx, sweepEvery) })
		// The public forms' per-address work: it enqueues the emails the
		// outbox worker then sends.
		others.Go(func() { taskErr = a.svc.Kernel.RunTasks(ctx, models.TaskWorkerConfig{}) })
		others.Go(func() { a.svc.Privacy.RunRetentionDaily(ctx, retentionEvery) })
		others.Go(func() { dripErr = dw.Run(ctx) })
		emailErr := w.Run(ctx)
		others.Wait()
		return errors.Join(workerFailed("email worker", emailErr), workerFailed("drip worker", dripErr), workerFailed("task worker", taskErr))
	}, nil
}

// workerFailed names a worker's error; stopping because ctx was cancelled
// is how a worker is meant to stop, not a failure.
func workerFailed(name string, err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return nil
	}
	return fmt.Errorf("%s: %w", name, err)
}

// sweepEvery is how often overdue seat holds are resolved with Stripe.
const sweepEvery = time.Minute

// retentionEvery is how often the retention sweeps run (and once at
// start): data past its period is gone within a day.
const retentionEvery = 24 * time.Hour

// startWorker runs the email worker, the drip worker, the task worker and
// the hold sweeper
// in the background until Close.
func (a *App) startWorker() error {
	runWorkers, err := a.newWorkers()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.workerCancel = cancel
	a.workerDone.Go(func() {
		if err := runWorkers(ctx); err != nil {
			a.log.Error("email workers stopped", "err", err)
		}
	})
	return nil
}

// startHTTP listens on cfg.HTTPAddr and serves the API in the background.
func (a *App) startHTTP() error {
	switch {
	case a.payments == nil && a.cfg.Env == EnvDev:
		a.log.Warn("payments: DEV MODE, STRIPE_SECRET_KEY is not set: paid checkout is unavailable")
	case a.payments == nil:
		a.log.Warn("payments: STRIPE_SECRET_KEY is not set: paid checkout is unavailable, free programs only")
	case a.cfg.StripeWebhookSecret == "":
		a.log.Warn("payments: STRIPE_WEBHOOK_SECRET is not set: Stripe webhooks will be refused, so paid enrollments will not activate")
	case a.cfg.Env == EnvProduction && strings.Contains(a.cfg.StripeSecretKey, "_test_"):
		a.log.Warn("payments: STRIPE_SECRET_KEY is a test-mode key in production: checkouts take no real money", "api_url", a.cfg.StripeAPIURL)
	default:
		a.log.Info("payments: Stripe checkout enabled", "api_url", a.cfg.StripeAPIURL)
	}
	emailHook, err := a.emailWebhook()
	if err != nil {
		return err
	}
	if emailHook == nil {
		a.log.Warn("email: RESEND_WEBHOOK_SECRET is not set: Resend webhooks will be refused, so bounces and complaints will not suppress addresses")
	}
	e := api.New(api.Config{
		Service:        a.svc,
		Log:            a.log,
		CORSOrigins:    a.cfg.CORSOrigins,
		TrustedProxies: a.cfg.TrustedProxies,
		Ready:          a.ready,
		StripeWebhook:  a.stripeWebhook(),
		EmailWebhook:   emailHook,
	})
	ln, err := net.Listen("tcp", a.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", a.cfg.HTTPAddr, err)
	}
	a.ln = ln
	base, cutOff := context.WithCancel(context.Background())
	a.cutOff = cutOff
	a.server = &http.Server{
		Handler:           e,
		BaseContext:       func(net.Listener) context.Context { return base },
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := a.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("http server stopped", "err", err)
		}
	}()
	if err := a.startPprof(); err != nil {
		return err
	}
	a.log.Info("serving", "addr", ln.Addr().String(), "config", a.cfg)
	return nil
}

// startPprof serves Go's profiles on GRACE_PPROF_ADDR, on a mux of its own
// (not http.DefaultServeMux, which net/http/pprof fills on import) and a
// listener apart from the API, so no route of the API can reach them.
func (a *App) startPprof() error {
	if a.cfg.PprofAddr == "" {
		return nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", a.cfg.PprofAddr)
	if err != nil {
		return fmt.Errorf("listen on GRACE_PPROF_ADDR %s: %w", a.cfg.PprofAddr, err)
	}
	// Contention shows in the mutex and block profiles only when sampled;
	// sampling a tenth of mutex events and blocks of 1 ms or more costs
	// little, and only while profiling is on.
	runtime.SetMutexProfileFraction(10)
	runtime.SetBlockProfileRate(int(time.Millisecond))
	// A profile takes as long as it is asked to: no write timeout.
	a.pprof = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := a.pprof.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("pprof server stopped", "err", err)
		}
	}()
	a.log.Warn("profiling: serving Go's profiles on GRACE_PPROF_ADDR", "addr", ln.Addr().String())
	return nil
}

// Addr is where the server listens (useful with HTTP_ADDR=127.0.0.1:0).
func (a *App) Addr() string { return a.ln.Addr().String() }

// cutOffGrace is how long requests still running at the end of the
// shutdown grace get once their contexts are cancelled: enough for a
// checkout whose Stripe call is cut off to release its seat hold (a write
// with its own 5 s bound) before the database is closed under it.
const cutOffGrace = 10 * time.Second

// Close stops taking requests, lets in-flight ones finish, stops the worker
// between messages, and closes the database. The grace (SHUTDOWN_GRACE)
// outlasts a checkout against a hung Stripe, so normally every request
// ends on its own; should one still run, its context is cancelled, which
// ends its Stripe call and releases its hold, and it gets cutOffGrace more.
func (a *App) Close() error {
	var errs []error
	if a.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownGrace)
		err := a.server.Shutdown(ctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			a.log.Warn("requests outlasted the shutdown grace; cancelling them", "shutdown_grace", a.cfg.ShutdownGrace)
			a.cutOff()
			ctx, cancel := context.WithTimeout(context.Background(), cutOffGrace)
			err = a.server.Shutdown(ctx)
			cancel()
		}
		a.cutOff()
		errs = append(errs, err)
	}
	if a.pprof != nil {
		errs = append(errs, a.pprof.Close())
	}
	if a.workerCancel != nil {
		a.workerCancel()
		a.workerDone.Wait()
	}
	if a.db != nil {
		if sqlDB, err := a.db.DB(); err == nil {
			errs = append(errs, sqlDB.Close())
		}
	}
	return errors.Join(errs...)
}

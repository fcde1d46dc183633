package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/grace-coaching/grace/api/stripe"
	"github.com/grace-coaching/grace/models"
)

// hungStripe stands in for api.stripe.com when it accepts every request
// and never answers; started is signalled at each attempt.
func hungStripe(t *testing.T) (url string, started chan struct{}) {
	t.Helper()
	started = make(chan struct{}, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Reading the body lets the server notice the client hang up.
		_, _ = io.Copy(io.Discard, r.Body)
		started <- struct{}{}
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	return srv.URL, started
}

// openCohort writes an open paid cohort straight into the database and
// returns its id.
func openCohort(t *testing.T, db *gorm.DB) string {
	t.Helper()
	var id string
	err := db.Raw(`
		WITH p AS (
			INSERT INTO programs (slug, title, status, price_cents, currency)
			VALUES ('hung-stripe', 'Say No With Grace', 'published', 29900, 'EUR') RETURNING id
		)
		INSERT INTO cohorts (program_id, name, starts_at, ends_at, timezone, capacity, price_cents, currency, status)
		SELECT p.id, 'Spring circle', now() + interval '30 days', now() + interval '60 days', 'Europe/Berlin', 3, 29900, 'EUR', 'open'
		FROM p RETURNING id::text`).Scan(&id).Error
	if err != nil || id == "" {
		t.Fatalf("create cohort: %q %v", id, err)
	}
	return id
}

// checkoutLink is the link the checkout form's worker emails her: a
// participant and her token for the cohort.
func checkoutLink(t *testing.T, db *gorm.DB, cohortID string) string {
	t.Helper()
	token, hash := models.NewToken()
	err := db.Exec(`
		WITH p AS (
			INSERT INTO participants (email, name, created_at, updated_at) VALUES ('bea@example.com', 'Bea', now(), now()) RETURNING id
		)
		INSERT INTO checkout_links (token_hash, cohort_id, participant_id, expires_at, created_at)
		SELECT ?, ?, p.id, now() + interval '1 day', now() FROM p`, hash, cohortID).Error
	if err != nil {
		t.Fatalf("create checkout link: %v", err)
	}
	return token
}

func seatsHeld(t *testing.T, db *gorm.DB, cohortID string) int {
	t.Helper()
	var n int
	if err := db.Raw(`SELECT seats_held FROM cohorts WHERE id = ?`, cohortID).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// With Stripe hung, a checkout is given its whole worst case by shutdown,
// and whatever ends its Stripe call (every attempt timing out, her closing
// the tab, or shutdown cancelling it past the grace) gives her seat back at
// once, not an hour later from the sweeper.
func TestShutdownWithStripeHung(t *testing.T) {
	const stripeTimeout = time.Second
	worst := stripe.WorstCase(stripeTimeout, stripe.DefaultMaxNetworkRetries)
	tests := []struct {
		name string
		// grace overrides SHUTDOWN_GRACE, below what config.go allows, to
		// reach the cut-off; 0 keeps the derived default.
		grace      time.Duration
		clientGone bool
		// Close must take at least minClose and at most maxClose.
		minClose, maxClose time.Duration
	}{
		{"shutdown waits out the checkout", 0, false, worst - 2*stripeTimeout, worst + 5*time.Second},
		{"she closes the tab", 0, true, 0, 2 * time.Second},
		{"shutdown cuts the checkout off past the grace", 300 * time.Millisecond, false, 300 * time.Millisecond, worst - stripeTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stripeURL, started := hungStripe(t)
			env := bootEnv(t, EnvDev, "", "")
			env["STRIPE_SECRET_KEY"] = "sk_test_123"
			env["STRIPE_API_URL"] = stripeURL
			env["STRIPE_TIMEOUT"] = stripeTimeout.String()
			cfg, err := loadConfig(envOf(env))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.ShutdownGrace <= worst {
				t.Fatalf("SHUTDOWN_GRACE %s does not outlast a checkout's worst case %s", cfg.ShutdownGrace, worst)
			}
			if tt.grace > 0 {
				cfg.ShutdownGrace = tt.grace
			}
			var logs bytes.Buffer
			a, err := openApp(context.Background(), cfg, newLogger(&lockedWriter{w: &logs}, slog.LevelInfo), true)
			if err != nil {
				t.Fatal(err)
			}
			closed := false
			t.Cleanup(func() {
				if !closed {
					_ = a.Close()
				}
			})
			// Our own connection: the app's is closed by Close.
			db, err := models.OpenDB(context.Background(), cfg.DatabaseURL, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if sqlDB, err := db.DB(); err == nil {
					_ = sqlDB.Close()
				}
			})
			cohortID := openCohort(t, db)
			token := checkoutLink(t, db, cohortID)
			if err := a.startHTTP(); err != nil {
				t.Fatal(err)
			}

			reqCtx, hangUp := context.WithCancel(context.Background())
			defer hangUp()
			status := make(chan int, 1)
			go func() {
				// Her click on the emailed link is what calls Stripe.
				// The link was made without a form: she accepts the disclaimer here.
				req, _ := http.NewRequestWithContext(reqCtx, http.MethodPost, "http://"+a.Addr()+"/v1/checkout-links/"+token,
					strings.NewReader(`{"disclaimer_accepted":true}`))
				req.Header.Set("Content-Type", "application/json")
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					status <- 0
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				_ = res.Body.Close()
				status <- res.StatusCode
			}()
			select {
			case <-started:
			case <-time.After(10 * time.Second):
				t.Fatalf("the checkout never reached Stripe:\n%s", logs.String())
			}
			if n := seatsHeld(t, db, cohortID); n != 1 {
				t.Fatalf("%d seats held during the call, want 1", n)
			}

			if tt.clientGone {
				hangUp()
				waitUntil(t, 2*time.Second, func() bool { return seatsHeld(t, db, cohortID) == 0 })
			}
			start := time.Now()
			err = a.Close()
			took := time.Since(start)
			closed = true
			if err != nil {
				t.Errorf("Close: %v", err)
			}
			if took < tt.minClose || took > tt.maxClose {
				t.Errorf("Close took %s, want between %s and %s", took.Round(time.Millisecond), tt.minClose, tt.maxClose)
			}
			if got := <-status; !tt.clientGone && got != http.StatusBadGateway {
				t.Errorf("checkout answered %d, want 502 once Stripe's call ended", got)
			}
			if n := seatsHeld(t, db, cohortID); n != 0 {
				t.Errorf("%d seats still held after the call failed, want 0", n)
			}
			if strings.Contains(logs.String(), "release hold after provider failure") {
				t.Errorf("the hold's release failed:\n%s", logs.String())
			}
		})
	}
}

func waitUntil(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

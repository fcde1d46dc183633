package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/grace-coaching/grace/api/stripe"
	"github.com/grace-coaching/grace/api/stripe/stripetest"
	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/enroll"
	"github.com/grace-coaching/grace/models/enroll/enrolltest"
)

// benchWebhookSecret signs the webhook-ingest events; Grace's webhook
// endpoint is configured with it.
const benchWebhookSecret = "whsec_grace_bench"

// benchAppURL is the portal URL the checkout hands the provider.
const benchAppURL = "https://app.grace.example"

// instantGateway is a payment provider that answers at once, so seat-hold
// times Grace's own work and not a network round trip to Stripe. It keeps
// only counts, so a long run holds no memory for its checkouts.
func instantGateway() *enrolltest.Gateway {
	g := enrolltest.New()
	g.Forgetful = true
	return g
}

// newWebhookVerifier is Grace's real Stripe adapter; it makes no network
// call, and the bench only uses its signature check.
func newWebhookVerifier() (*stripe.Client, error) {
	return stripe.New(stripe.Config{SecretKey: "sk_test_grace_bench", WebhookSecret: benchWebhookSecret})
}

// seatHoldResetEvery bounds the holds outstanding between resets of the
// cohort's counter, well under its capacity, so no checkout sells out.
const seatHoldResetEvery = 4000

// setupSeatHold: launch day of a popular cohort. Every checkout takes a seat
// on the same cohort row, the one place where concurrent buyers must queue;
// the baseline is that row's bare increment, so the ratio is what Grace's
// checkout transaction costs around its one unavoidable serialised write.
func setupSeatHold(ctx context.Context, b *bench) (target, target, error) {
	prog, err := b.program(ctx, "seat-hold-bench", 1)
	if err != nil {
		return nil, nil, err
	}
	start := time.Now().AddDate(0, 1, 0)
	cohort := &enroll.Cohort{
		ProgramID: prog.ID, Name: "Launch cohort", StartsAt: start, EndsAt: start.AddDate(0, 0, 42), Timezone: "Europe/London",
		Capacity: 10000, PriceCents: 49000, Currency: "EUR", Status: enroll.CohortOpen,
	}
	if err := b.db.WithContext(ctx).Create(cohort).Error; err != nil {
		return nil, nil, fmt.Errorf("create cohort: %w", err)
	}
	run, err := randomHex(4)
	if err != nil {
		return nil, nil, err
	}

	// Holds are never paid or expired here, so the counter is put back
	// before each round and every few thousand holds; the rows stay, as
	// they would on a real launch day.
	resetHolds := func(ctx context.Context) error {
		_, err := b.pool.Exec(ctx, `UPDATE cohorts SET seats_held = 0 WHERE id = $1`, cohort.ID)
		return err
	}
	var n atomic.Int64
	grace := func(ctx context.Context) (op, func(), error) {
		if err := resetHolds(ctx); err != nil {
			return nil, nil, err
		}
		return func(ctx context.Context) (int64, error) {
			i := n.Add(1)
			if i%seatHoldResetEvery == 0 {
				if err := resetHolds(ctx); err != nil {
					return 0, err
				}
			}
			// A different woman each time, from her own address, as on a
			// launch day: no per-IP limit or existing hold short-cuts it.
			// Her booking is the form, the worker's task that emails her
			// link, and her click on it, which takes the seat.
			email := fmt.Sprintf("hold-%s-%d@example.com", run, i)
			client := models.ClientInfo{IP: ipFor(i), UserAgent: "grace-bench"}
			err := b.svc.Enroll.StartCheckout(ctx, cohort.ID, enroll.CheckoutInput{
				Email: email, Name: "Bench Buyer", DisclaimerAccepted: true, MarketingConsent: i%2 == 0,
			}, client)
			if err != nil {
				return 0, err
			}
			// Another op's worker may have her task in hand: wait for it.
			var token string
			for token == "" {
				if _, err := b.svc.Kernel.RunTasksOnce(ctx); err != nil {
					return 0, err
				}
				err = b.pool.QueryRow(ctx, `SELECT coalesce(max(data->>'token'), '') FROM outbox WHERE to_email = $1 AND template = $2`,
					email, enroll.TemplateCheckoutLink).Scan(&token)
				if err != nil {
					return 0, err
				}
				if token == "" {
					select {
					case <-ctx.Done():
						return 0, ctx.Err()
					case <-time.After(time.Millisecond):
					}
				}
			}
			res, err := b.svc.Enroll.RedeemCheckoutLink(ctx, token, client)
			if err != nil {
				return 0, err
			}
			if !res.Created {
				return 0, fmt.Errorf("checkout %d resumed enrollment %s instead of holding a seat", i, res.Enrollment.ID)
			}
			return int64(len(res.CheckoutURL)), nil
		}, func() {}, nil
	}
	baseline := callTarget(func(ctx context.Context) (int64, error) {
		_, err := b.pool.Exec(ctx, `UPDATE cohorts SET seats_held = seats_held + 1 WHERE id = $1`, cohort.ID)
		return 0, err
	})
	return grace, baseline, nil
}

// ipFor spreads requests over distinct private addresses (one per request
// for the first 16 million), so the per-IP checkout limit never trips.
func ipFor(i int64) string {
	return fmt.Sprintf("10.%d.%d.%d", (i>>16)&255, (i>>8)&255, i&255)
}

// webhookEvent is one signed delivery: the i-th event of a mix Stripe sends
// on a busy day, each with its own id, none for an enrollment Grace knows
// (so nothing is fulfilled twice across rounds): completed and expired
// checkouts, which are stored and logged, and refunds of payment intents no
// checkout has named yet, which are stored and parked.
func webhookEvent(run string, i int64) (payload []byte, signature string) {
	id := fmt.Sprintf("evt_bench_%s_%d", run, i)
	ref := fmt.Sprintf("%s_%d", run, i)
	switch i % 4 {
	case 0, 1:
		payload = stripetest.CheckoutSessionEvent(id, enroll.EventCheckoutCompleted, enroll.CheckoutSession{
			ID: "cs_bench_" + ref, Status: enroll.SessionComplete, PaymentStatus: "paid", PaymentIntentID: "pi_bench_" + ref,
			AmountTotal: 49000, Currency: "EUR", EnrollmentID: uuid.NewString(),
		})
	case 2:
		payload = stripetest.CheckoutSessionEvent(id, enroll.EventCheckoutExpired, enroll.CheckoutSession{
			ID: "cs_bench_" + ref, Status: enroll.SessionExpired, PaymentStatus: "unpaid",
			AmountTotal: 49000, Currency: "EUR", EnrollmentID: uuid.NewString(),
		})
	default:
		payload = stripetest.ChargeRefundedEvent(id, "pi_bench_"+ref, 49000, 49000)
	}
	return payload, stripetest.SignTestPayload(payload, benchWebhookSecret, time.Time{})
}

// setupWebhookIngest: Stripe delivering a burst of events. Grace verifies
// each signature, stores the event once and applies it in one transaction;
// the baseline reads the same signed body, takes its id and type, and
// inserts it, the least an endpoint that keeps events can do.
func setupWebhookIngest(ctx context.Context, b *bench) (request, request, error) {
	run, err := randomHex(4)
	if err != nil {
		return nil, nil, err
	}
	b.bare.POST("/webhooks/stripe", func(c echo.Context) error {
		body, err := io.ReadAll(c.Request().Body)
		if err != nil {
			return err
		}
		var ev struct {
			ID   string `json:"id"`
			Type string `json:"type"`
		}
		if err := json.Unmarshal(body, &ev); err != nil {
			return echo.ErrBadRequest
		}
		if _, err := b.pool.Exec(c.Request().Context(), `INSERT INTO stripe_events (id, type, payload) VALUES ($1, $2, $3)`, ev.ID, ev.Type, body); err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]bool{"received": true})
	})
	// Both sides draw from one sequence, so no event id is sent twice.
	var n atomic.Int64
	deliver := func(path string) request {
		return func(ctx context.Context, base string) (*http.Request, error) {
			payload, sig := webhookEvent(run, n.Add(1))
			r, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, bytes.NewReader(payload))
			if err != nil {
				return nil, err
			}
			r.Header.Set("Content-Type", "application/json; charset=utf-8")
			r.Header.Set("Stripe-Signature", sig)
			return r, nil
		}
	}
	return deliver("/v1/webhooks/stripe"), deliver("/webhooks/stripe"), nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

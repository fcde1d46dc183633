// Package enrolltest is the payment provider that tests and the bench run
// checkout against: one fake instead of one per package, so what "the
// provider" does in a test is the same everywhere.
package enrolltest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/grace-coaching/grace/models/enroll"
)

// Op is one of the gateway's calls, for Fail.
type Op int

const (
	Create Op = iota
	Get
	Expire
	Refund
	DeleteCustomer
)

// ErrNoSession is GetCheckoutSession's answer for a session it never made.
var ErrNoSession = errors.New("enrolltest: no such session")

// Gateway is an enroll.PaymentGateway in memory. It records every call,
// answers create idempotently by key (as Stripe does), and can be told to
// fail a call or to block checkouts until released. Safe for concurrent use.
type Gateway struct {
	// Next, when set, answers Create, Expire and Refund, and the Gets of
	// sessions SetSession did not stand in for: the API tests send them to
	// the Stripe adapter on stripe-mock, so every request is checked
	// against Stripe's API, while the fake keeps the state the stateless
	// mock cannot. Set it before use or between calls.
	Next enroll.PaymentGateway
	// Forgetful keeps neither sessions nor requests, only counts: for a
	// load that never reads its checkouts back (the bench), so memory stays
	// flat however long it runs.
	Forgetful bool

	mu       sync.Mutex
	creates  []enroll.CheckoutRequest
	gets     []string
	expires  []string
	refunds  []enroll.RefundRequest
	erasures []enroll.CustomerErasure
	counts   [5]int
	sessions map[string]enroll.CheckoutSession
	byKey    map[string]string
	fail     map[Op]error
	gate     chan struct{}
}

// New is an empty gateway.
func New() *Gateway {
	return &Gateway{sessions: map[string]enroll.CheckoutSession{}, byKey: map[string]string{}, fail: map[Op]error{}}
}

var _ enroll.PaymentGateway = (*Gateway)(nil)

// Fail makes every later call of op return err; nil ends it.
func (g *Gateway) Fail(op Op, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err == nil {
		delete(g.fail, op)
		return
	}
	g.fail[op] = err
}

// Block holds every CreateCheckoutSession from now on until release is
// called (or the call's context ends), to stand for a slow provider.
func (g *Gateway) Block() (release func()) {
	gate := make(chan struct{})
	g.mu.Lock()
	g.gate = gate
	g.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			if g.gate == gate {
				g.gate = nil
			}
			g.mu.Unlock()
			close(gate)
		})
	}
}

// SetSession makes GetCheckoutSession report s for s.ID: the provider's
// state moved (she paid, it expired) without a call of ours.
func (g *Gateway) SetSession(s enroll.CheckoutSession) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sessions[s.ID] = s
}

// Complete marks a session the gateway made as completed by her, paid or
// not.
func (g *Gateway) Complete(t testing.TB, id string, paid bool) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	s, ok := g.sessions[id]
	if !ok {
		t.Fatalf("no session %s", id)
	}
	s.Status, s.PaymentStatus = enroll.SessionComplete, "unpaid"
	if paid {
		s.PaymentStatus, s.PaymentIntentID = "paid", "pi_"+id
	}
	g.sessions[id] = s
}

// Calls counts the calls of each kind so far, failed ones included.
func (g *Gateway) Calls() (creates, gets, expires, refunds int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.counts[Create], g.counts[Get], g.counts[Expire], g.counts[Refund]
}

// Creates are the checkout requests so far, oldest first.
func (g *Gateway) Creates() []enroll.CheckoutRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]enroll.CheckoutRequest(nil), g.creates...)
}

// Refunds are the refund requests so far, oldest first.
func (g *Gateway) Refunds() []enroll.RefundRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]enroll.RefundRequest(nil), g.refunds...)
}

// begin counts a call, under the lock, and returns the next gateway and
// the call's injected failure.
func (g *Gateway) begin(op Op) (enroll.PaymentGateway, error) {
	g.counts[op]++
	return g.Next, g.fail[op]
}

func (g *Gateway) CreateCheckoutSession(ctx context.Context, req enroll.CheckoutRequest) (enroll.CheckoutSession, error) {
	g.mu.Lock()
	if !g.Forgetful {
		g.creates = append(g.creates, req)
	}
	next, fail := g.begin(Create)
	gate := g.gate
	g.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return enroll.CheckoutSession{}, ctx.Err()
		}
	}
	if fail != nil {
		return enroll.CheckoutSession{}, fail
	}
	if next != nil {
		return next.CreateCheckoutSession(ctx, req)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if id, ok := g.byKey[req.IdempotencyKey]; ok {
		return g.sessions[id], nil
	}
	id := fmt.Sprintf("cs_test_%d", g.counts[Create])
	s := enroll.CheckoutSession{ID: id, URL: "https://checkout.stripe.test/c/pay/" + id, Status: enroll.SessionOpen,
		PaymentStatus: "unpaid", AmountTotal: req.AmountCents, Currency: req.Currency, EnrollmentID: req.EnrollmentID.String(), ExpiresAt: req.ExpiresAt}
	if !g.Forgetful {
		g.sessions[id], g.byKey[req.IdempotencyKey] = s, id
	}
	return s, nil
}

func (g *Gateway) GetCheckoutSession(ctx context.Context, id string) (enroll.CheckoutSession, error) {
	g.mu.Lock()
	g.gets = append(g.gets, id)
	next, fail := g.begin(Get)
	s, ok := g.sessions[id]
	g.mu.Unlock()
	switch {
	case fail != nil:
		return enroll.CheckoutSession{}, fail
	case ok:
		return s, nil
	case next != nil:
		return next.GetCheckoutSession(ctx, id)
	}
	return s, ErrNoSession
}

func (g *Gateway) ExpireCheckoutSession(ctx context.Context, id string) (enroll.CheckoutSession, error) {
	g.mu.Lock()
	g.expires = append(g.expires, id)
	next, fail := g.begin(Expire)
	g.mu.Unlock()
	if fail != nil {
		return enroll.CheckoutSession{}, fail
	}
	if next != nil {
		return next.ExpireCheckoutSession(ctx, id)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.sessions[id]
	if s.Status == enroll.SessionOpen {
		s.Status = enroll.SessionExpired
		g.sessions[id] = s
	}
	return s, nil
}

func (g *Gateway) Refund(ctx context.Context, req enroll.RefundRequest) (string, error) {
	g.mu.Lock()
	g.refunds = append(g.refunds, req)
	next, fail := g.begin(Refund)
	n := g.counts[Refund]
	g.mu.Unlock()
	if fail != nil {
		return "", fail
	}
	if next != nil {
		return next.Refund(ctx, req)
	}
	return fmt.Sprintf("re_%d", n), nil
}

// DeleteCustomerData records the erasure; with Next set it deletes there
// too.
func (g *Gateway) DeleteCustomerData(ctx context.Context, req enroll.CustomerErasure) error {
	g.mu.Lock()
	g.erasures = append(g.erasures, req)
	next, fail := g.begin(DeleteCustomer)
	g.mu.Unlock()
	if fail != nil {
		return fail
	}
	if next != nil {
		return next.DeleteCustomerData(ctx, req)
	}
	return nil
}

// CustomerErasures are the customer deletions asked for so far, oldest
// first.
func (g *Gateway) CustomerErasures() []enroll.CustomerErasure {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]enroll.CustomerErasure(nil), g.erasures...)
}

// Package stripe adapts Stripe to models.PaymentGateway and verifies Stripe
// webhooks for the api package. It is the only package that imports
// stripe-go: nothing it returns carries a Stripe type, so the domain and the
// HTTP layer never depend on the SDK.
package stripe

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/grace-coaching/grace/models/enroll"
)

// Config configures the adapter.
type Config struct {
	// SecretKey is the Stripe secret key (sk_live_..., sk_test_...).
	SecretKey string
	// APIURL overrides the Stripe API base URL, for stripe-mock. Empty means
	// Stripe itself.
	APIURL string
	// WebhookSecret is the endpoint's signing secret (whsec_...). Empty makes
	// ParseEvent refuse every payload.
	WebhookSecret string
	// HTTPClient is used for API calls; nil means http.DefaultTransport.
	// Its Timeout is replaced by CallTimeout.
	HTTPClient *http.Client
	// CallTimeout bounds each HTTP attempt of a call (the SDK's retries are
	// attempts of their own); zero means DefaultCallTimeout.
	CallTimeout time.Duration
	// MaxNetworkRetries is how often a failed call that is safe to retry
	// (network error, 409, 429, 5xx; writes carry an idempotency key) is
	// retried. nil means DefaultMaxNetworkRetries.
	MaxNetworkRetries *int64
}

// Client defaults: a call is at most three attempts of 10 s.
const (
	DefaultCallTimeout             = 10 * time.Second
	DefaultMaxNetworkRetries int64 = 2
)

// WorstCase is the longest one call can take with callTimeout per attempt
// and retries retries: every attempt timing out, plus the SDK's sleep
// before each retry (stripe-go v76: 0.5 s + 0.5 s x n^2 before retry n+1,
// at most 5 s). Each call is also cut off at this deadline, so the bound
// holds even if the SDK's backoff changes; shutdown and the server's write
// timeout are sized from it.
func WorstCase(callTimeout time.Duration, retries int64) time.Duration {
	d := time.Duration(retries+1) * callTimeout
	for n := range retries {
		d += min(sdkRetryDelay+sdkRetryDelay*time.Duration(n*n), sdkMaxRetryDelay)
	}
	return d
}

// The SDK's retry sleeps (stripe-go v76 stripe.go: minNetworkRetriesDelay,
// maxNetworkRetriesDelay); its jitter only shortens them.
const (
	sdkRetryDelay    = 500 * time.Millisecond
	sdkMaxRetryDelay = 5 * time.Second
)

// Client talks to Stripe. It is safe for concurrent use.
type Client struct {
	api           *client.API
	webhookSecret string
	// worstCase is WorstCase of the configuration, the deadline of a call.
	worstCase time.Duration
}

var _ enroll.PaymentGateway = (*Client)(nil)

// New builds a client. It makes no network call.
func New(cfg Config) (*Client, error) {
	if strings.TrimSpace(cfg.SecretKey) == "" {
		return nil, errors.New("stripe: a secret key is required")
	}
	callTimeout := cfg.CallTimeout
	if callTimeout <= 0 {
		callTimeout = DefaultCallTimeout
	}
	// A copy, so the caller's client keeps its own timeout; the SDK's
	// default (80 s an attempt) would make a checkout's worst case minutes.
	httpClient := &http.Client{}
	if cfg.HTTPClient != nil {
		*httpClient = *cfg.HTTPClient
	}
	httpClient.Timeout = callTimeout
	retries := cfg.MaxNetworkRetries
	if retries == nil || *retries < 0 {
		retries = stripego.Int64(DefaultMaxNetworkRetries)
	}
	// Backends are built per client, never through the SDK's package-level
	// defaults, so two clients (e.g. tests against different mocks) never
	// share state. GetBackendWithConfig fills in defaults in the config it
	// is given, hence a fresh one per backend.
	backend := func(typ stripego.SupportedBackend) stripego.Backend {
		bc := &stripego.BackendConfig{
			HTTPClient:        httpClient,
			MaxNetworkRetries: retries,
			// The SDK logs every 4xx to stderr by default; our callers log
			// the wrapped error with the request's context instead.
			LeveledLogger: &stripego.LeveledLogger{Level: stripego.LevelNull},
		}
		if cfg.APIURL != "" {
			bc.URL = stripego.String(cfg.APIURL)
		}
		return stripego.GetBackendWithConfig(typ, bc)
	}
	backends := &stripego.Backends{
		API:     backend(stripego.APIBackend),
		Connect: backend(stripego.ConnectBackend),
		Uploads: backend(stripego.UploadsBackend),
	}
	return &Client{
		api:           client.New(cfg.SecretKey, backends),
		webhookSecret: cfg.WebhookSecret,
		worstCase:     WorstCase(callTimeout, *retries),
	}, nil
}

// WorstCase is the longest one of this client's calls can take.
func (c *Client) WorstCase() time.Duration { return c.worstCase }

// bound gives a call the client's worst case as its deadline.
func (c *Client) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.worstCase)
}

// CreateCheckoutSession starts a hosted one-off payment for one enrollment.
// The enrollment id travels as client_reference_id and as metadata on both
// the session and its payment intent, so every later event (including
// charge and dispute events, which only see the payment intent) can be
// traced back to it.
func (c *Client) CreateCheckoutSession(ctx context.Context, req enroll.CheckoutRequest) (enroll.CheckoutSession, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	enrollmentID := req.EnrollmentID.String()
	meta := map[string]string{"enrollment_id": enrollmentID}
	params := &stripego.CheckoutSessionParams{
		Mode: stripego.String(string(stripego.CheckoutSessionModePayment)),
		LineItems: []*stripego.CheckoutSessionLineItemParams{{
			PriceData: &stripego.CheckoutSessionLineItemPriceDataParams{
				Currency:   stripego.String(strings.ToLower(req.Currency)),
				UnitAmount: stripego.Int64(req.AmountCents),
				ProductData: &stripego.CheckoutSessionLineItemPriceDataProductDataParams{
					Name: stripego.String(req.ProductName),
				},
			},
			Quantity: stripego.Int64(1),
		}},
		ClientReferenceID:   stripego.String(enrollmentID),
		Metadata:            meta,
		PaymentIntentData:   &stripego.CheckoutSessionPaymentIntentDataParams{Metadata: meta},
		AllowPromotionCodes: stripego.Bool(true),
		SuccessURL:          stripego.String(req.SuccessURL),
		CancelURL:           stripego.String(req.CancelURL),
	}
	if req.CustomerEmail != "" {
		params.CustomerEmail = stripego.String(req.CustomerEmail)
	}
	if !req.ExpiresAt.IsZero() {
		params.ExpiresAt = stripego.Int64(req.ExpiresAt.Unix())
	}
	params.Context = ctx
	if req.IdempotencyKey != "" {
		params.SetIdempotencyKey(req.IdempotencyKey)
	}
	s, err := c.api.CheckoutSessions.New(params)
	if err != nil {
		return enroll.CheckoutSession{}, providerError("create checkout session", err)
	}
	return sessionFrom(s), nil
}

// GetCheckoutSession reads a session's current state.
func (c *Client) GetCheckoutSession(ctx context.Context, id string) (enroll.CheckoutSession, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	params := &stripego.CheckoutSessionParams{}
	params.Context = ctx
	s, err := c.api.CheckoutSessions.Get(id, params)
	if err != nil {
		return enroll.CheckoutSession{}, providerError("get checkout session", err)
	}
	return sessionFrom(s), nil
}

// ExpireCheckoutSession closes an open session so it can no longer be paid.
func (c *Client) ExpireCheckoutSession(ctx context.Context, id string) (enroll.CheckoutSession, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	params := &stripego.CheckoutSessionExpireParams{}
	params.Context = ctx
	s, err := c.api.CheckoutSessions.Expire(id, params)
	if err != nil {
		return enroll.CheckoutSession{}, providerError("expire checkout session", err)
	}
	return sessionFrom(s), nil
}

// Refund refunds req.AmountCents of the payment intent (0: all that is left)
// and returns the refund id. The state change arrives later as a
// charge.refunded webhook.
func (c *Client) Refund(ctx context.Context, req enroll.RefundRequest) (string, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	params := &stripego.RefundParams{PaymentIntent: stripego.String(req.PaymentIntentID)}
	if req.AmountCents > 0 {
		params.Amount = stripego.Int64(req.AmountCents)
	}
	params.Context = ctx
	if req.IdempotencyKey != "" {
		params.SetIdempotencyKey(req.IdempotencyKey)
	}
	r, err := c.api.Refunds.New(params)
	if err != nil {
		return "", providerError("refund", err)
	}
	return r.ID, nil
}

// DeleteCustomerData deletes the named customers and every customer
// Stripe holds under her address (a checkout with customer_email may have
// made some). Deleting a customer Stripe no longer has is success, so an
// erasure that failed halfway is simply run again.
func (c *Client) DeleteCustomerData(ctx context.Context, req enroll.CustomerErasure) error {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	ids := append([]string(nil), req.CustomerIDs...)
	if req.Email != "" {
		params := &stripego.CustomerListParams{Email: stripego.String(req.Email)}
		params.Context = ctx
		it := c.api.Customers.List(params)
		for it.Next() {
			ids = append(ids, it.Customer().ID)
		}
		if err := it.Err(); err != nil {
			return providerError("list customers", err)
		}
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if id == "" || seen[id] {
			continue
		}
		seen[id] = true
		params := &stripego.CustomerParams{}
		params.Context = ctx
		if _, err := c.api.Customers.Del(id, params); err != nil {
			var se *stripego.Error
			if errors.As(err, &se) && (se.Code == stripego.ErrorCodeResourceMissing || se.HTTPStatusCode == http.StatusNotFound) {
				continue
			}
			return providerError("delete customer", err)
		}
	}
	return nil
}

func sessionFrom(s *stripego.CheckoutSession) enroll.CheckoutSession {
	out := enroll.CheckoutSession{
		ID:            s.ID,
		URL:           s.URL,
		Status:        string(s.Status),
		PaymentStatus: string(s.PaymentStatus),
		AmountTotal:   s.AmountTotal,
		Currency:      strings.ToUpper(string(s.Currency)),
		EnrollmentID:  s.ClientReferenceID,
	}
	if out.EnrollmentID == "" {
		out.EnrollmentID = s.Metadata["enrollment_id"]
	}
	if s.PaymentIntent != nil {
		out.PaymentIntentID = s.PaymentIntent.ID
	}
	if s.TotalDetails != nil {
		out.AmountDiscount = s.TotalDetails.AmountDiscount
	}
	if s.ExpiresAt != 0 {
		out.ExpiresAt = time.Unix(s.ExpiresAt, 0).UTC()
	}
	return out
}

// providerError wraps err in models.ErrPaymentProvider with a message that
// names what Stripe said (type, code, status, request id) without keeping
// the SDK's error value, so no Stripe type escapes this package.
func providerError(op string, err error) error {
	var se *stripego.Error
	if errors.As(err, &se) {
		parts := []string{string(se.Type)}
		if se.Code != "" {
			parts = append(parts, string(se.Code))
		}
		msg := fmt.Sprintf("stripe %s: %s (status %d", op, strings.Join(parts, "/"), se.HTTPStatusCode)
		if se.RequestID != "" {
			msg += ", request " + se.RequestID
		}
		msg += ")"
		if se.Msg != "" {
			msg += ": " + se.Msg
		}
		return fmt.Errorf("%w: %s", enroll.ErrPaymentProvider, msg)
	}
	return fmt.Errorf("%w: stripe %s: %v", enroll.ErrPaymentProvider, op, err)
}

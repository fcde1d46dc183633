// Package api is Grace's HTTP layer: the route table, thin handlers that bind,
// validate, call one domain function and render, the middleware, and the
// OpenAPI contract.
package api

import (
	"context"
	_ "embed"
	"log/slog"
	"net"
	"net/http"

	"github.com/go-playground/validator/v10"
	"github.com/labstack/echo/v4"

	"github.com/grace-coaching/grace/models/domain"
	"github.com/grace-coaching/grace/models/drip"
	"github.com/grace-coaching/grace/models/enroll"
)

//go:embed openapi.yaml
var openAPISpec []byte

// OpenAPISpec is the API contract, for tests that validate traffic against it.
func OpenAPISpec() []byte { return openAPISpec }

// Config is what the HTTP layer needs; cmd/grace builds it from the environment.
type Config struct {
	Service     *domain.Services
	Log         *slog.Logger
	CORSOrigins []string
	// TrustedProxies are the networks whose X-Forwarded-For is believed. Empty
	// means the peer address is the client, so rate limits cannot be dodged
	// with a forged header.
	TrustedProxies []*net.IPNet
	// Ready reports the schema version, or an error when the service cannot
	// take traffic.
	Ready func(ctx context.Context) (int64, error)
	// StripeWebhook verifies signed Stripe webhooks; nil refuses them.
	StripeWebhook PaymentWebhook
	// EmailWebhook verifies signed Resend webhooks; nil refuses them.
	EmailWebhook EmailWebhook
}

// EmailWebhook verifies an email provider's signed webhook (the raw body and
// the request headers that carry the signature) and reduces it to a domain
// event. A bad or stale signature is an error the handler answers with 400.
type EmailWebhook interface {
	ParseEmailEvent(payload []byte, header http.Header) (drip.EmailEvent, error)
}

// PaymentWebhook verifies a provider's signed webhook payload and reduces it
// to a domain event. A bad or stale signature is an error the handler
// answers with 400.
type PaymentWebhook interface {
	ParseEvent(payload []byte, signatureHeader string) (enroll.PaymentEvent, error)
}

type handlers struct {
	svc       *domain.Services
	log       *slog.Logger
	validator *validator.Validate
	ready     func(ctx context.Context) (int64, error)
	webhook   PaymentWebhook
	emailHook EmailWebhook
	docsPage  *docsRenderer
}

// New builds the Echo server with every route registered.
func New(cfg Config) *echo.Echo {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(cfg.Log)
	e.IPExtractor = ipExtractor(cfg.TrustedProxies)
	h := &handlers{svc: cfg.Service, log: cfg.Log, validator: newValidator(), ready: cfg.Ready, webhook: cfg.StripeWebhook,
		emailHook: cfg.EmailWebhook, docsPage: &docsRenderer{}}
	routes(e, h, cfg)
	return e
}

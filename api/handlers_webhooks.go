package api

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/grace-coaching/grace/models"
)

var (
	errWebhooksUnavailable = models.E(models.KindUnavailable, "webhooks_unavailable", "Payment webhooks are not configured.")
	errInvalidSignature    = models.E(models.KindBadRequest, "invalid_signature", "The webhook signature is missing, wrong, too old or dated in the future.")
)

type webhookResponse struct {
	Received bool `json:"received"`
}

// stripeWebhook takes a Stripe event. The body is read raw, never through
// the JSON binder: the signature covers the exact bytes sent. Anything but a
// 2xx makes Stripe deliver the event again, so a failure of ours is a 5xx
// and a replay of an applied event is a 200.
func (h *handlers) stripeWebhook(c echo.Context) error {
	if h.webhook == nil {
		return errWebhooksUnavailable
	}
	body, err := readRawBody(c)
	if err != nil {
		return err
	}
	ev, err := h.webhook.ParseEvent(body, c.Request().Header.Get("Stripe-Signature"))
	if err != nil {
		// Not logged at error level: anyone can post here. The reason helps
		// whoever rotates the signing secret.
		h.log.WarnContext(c.Request().Context(), "stripe webhook refused", "reason", err.Error())
		return errInvalidSignature
	}
	if err := h.svc.Enroll.ApplyPaymentEvent(c.Request().Context(), ev); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, webhookResponse{Received: true})
}

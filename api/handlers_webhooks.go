package api

import "github.com/labstack/echo/v4"

// STUB: owned by the webhooks work; replace.
func (h *handlers) stripeWebhook(c echo.Context) error { return errNotImplemented }

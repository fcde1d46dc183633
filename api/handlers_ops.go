package api

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/grace-coaching/grace/models"
)

type statusResponse struct {
	Status string `json:"status"`
}

type readyResponse struct {
	Status        string `json:"status"`
	SchemaVersion int64  `json:"schema_version"`
}

// healthz answers while the process can serve at all.
func (h *handlers) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, statusResponse{Status: "ok"})
}

// readyz answers 200 only when the database is reachable and migrated, so a
// load balancer holds traffic back from an instance that would fail it.
func (h *handlers) readyz(c echo.Context) error {
	if h.ready == nil {
		return models.E(models.KindUnavailable, "not_ready", "Readiness is not configured.")
	}
	version, err := h.ready(c.Request().Context())
	if err != nil {
		h.log.WarnContext(c.Request().Context(), "not ready", "err", err)
		return models.E(models.KindUnavailable, "not_ready", "The service is not ready: %v", err)
	}
	return c.JSON(http.StatusOK, readyResponse{Status: "ready", SchemaVersion: version})
}

func (h *handlers) openAPI(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/yaml", openAPISpec)
}

// accepted is the body of every 202.
var accepted = statusResponse{Status: "accepted"}

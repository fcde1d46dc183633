package api

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/grace-coaching/grace/models/catalog"
)

// crisisRequest replaces the crisis resources. updated_at, when sent, is
// the version the editor loaded: an edit made meanwhile is a 409, not
// silently overwritten.
type crisisRequest struct {
	Body      *string    `json:"body" validate:"required"`
	UpdatedAt *time.Time `json:"updated_at"`
}

func (h *handlers) getCrisisResources(c echo.Context) error {
	cr, err := h.svc.Catalog.GetCrisisResources(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toCrisisResponse(cr))
}

func (h *handlers) putCrisisResources(c echo.Context) error {
	var req crisisRequest
	if err := h.bind(c, &req); err != nil {
		return err
	}
	cr, err := h.svc.Catalog.PutCrisisResources(c.Request().Context(), currentCoach(c).ID,
		catalog.CrisisInput{Body: *req.Body, IfUpdatedAt: req.UpdatedAt})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toCrisisResponse(cr))
}

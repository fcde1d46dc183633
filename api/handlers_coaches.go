package api

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/people"
)

type coachResponse struct {
	ID        uuidValue   `json:"id"`
	Email     string      `json:"email"`
	Name      string      `json:"name"`
	Role      people.Role `json:"role"`
	Active    bool        `json:"active"`
	CreatedAt time.Time   `json:"created_at"`
}

func toCoachResponse(c people.Coach) coachResponse {
	return coachResponse{ID: c.ID, Email: c.Email, Name: c.Name, Role: c.Role, Active: c.Active, CreatedAt: c.CreatedAt.UTC()}
}

type createCoachRequest struct {
	Email string `json:"email" validate:"required,email,max=254"`
	Name  string `json:"name" validate:"required,max=200"`
	Role  string `json:"role" validate:"required,oneof=admin coach"`
}

// updateCoachRequest leaves its rules to the domain: Optional fields tell an
// absent field from a null one, which tags cannot.
type updateCoachRequest struct {
	Name   models.Optional[string]      `json:"name"`
	Role   models.Optional[people.Role] `json:"role"`
	Active models.Optional[bool]        `json:"active"`
}

// listCoaches: GET /v1/admin/coaches
func (h *handlers) listCoaches(c echo.Context) error {
	p, err := pageParams(c)
	if err != nil {
		return err
	}
	page, err := h.svc.People.ListCoaches(c.Request().Context(), p)
	if err != nil {
		return err
	}
	return renderPage(c, page, toCoachResponse)
}

// createCoach: POST /v1/admin/coaches invites a coach by email.
func (h *handlers) createCoach(c echo.Context) error {
	var req createCoachRequest
	if err := h.bind(c, &req); err != nil {
		return err
	}
	coach, err := h.svc.People.InviteCoach(c.Request().Context(), currentCoach(c), people.InviteCoachInput{
		Email: req.Email, Name: req.Name, Role: people.Role(req.Role),
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toCoachResponse(*coach))
}

// updateCoach: PATCH /v1/admin/coaches/{id}
func (h *handlers) updateCoach(c echo.Context) error {
	id, err := pathUUID(c, "id", "coach")
	if err != nil {
		return err
	}
	var req updateCoachRequest
	if err := h.bind(c, &req); err != nil {
		return err
	}
	coach, err := h.svc.People.UpdateCoach(c.Request().Context(), currentCoach(c), id, people.UpdateCoachInput{
		Name: req.Name, Role: req.Role, Active: req.Active,
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toCoachResponse(*coach))
}

// deleteCoach: DELETE /v1/admin/coaches/{id} deactivates; coaches are never
// hard-deleted.
func (h *handlers) deleteCoach(c echo.Context) error {
	id, err := pathUUID(c, "id", "coach")
	if err != nil {
		return err
	}
	if err := h.svc.People.DeactivateCoach(c.Request().Context(), currentCoach(c), id); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

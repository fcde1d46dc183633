package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/grace-coaching/grace/models/privacy"
)

type consentDocumentResponse struct {
	Kind      string    `json:"kind"`
	Version   int       `json:"version"`
	Text      string    `json:"text"`
	HTML      string    `json:"html"`
	CreatedAt time.Time `json:"created_at"`
}

func toConsentDocumentResponse(d *privacy.ConsentDocument) consentDocumentResponse {
	return consentDocumentResponse{Kind: string(d.Kind), Version: d.Version, Text: d.Body, HTML: d.HTML, CreatedAt: d.CreatedAt.UTC()}
}

type consentDocumentEditRequest struct {
	Text *string `json:"text" validate:"required"`
}

type consentAcceptRequest struct {
	Kind    *string `json:"kind" validate:"required"`
	Version *int    `json:"version" validate:"required"`
}

type consentResponse struct {
	ID        uuidValue `json:"id"`
	Kind      string    `json:"kind"`
	Version   string    `json:"version"`
	Granted   bool      `json:"granted"`
	CreatedAt time.Time `json:"created_at"`
}

type eraseRequest struct {
	Code *string `json:"code" validate:"required"`
}

type erasedResponse struct {
	ID       uuidValue `json:"id"`
	ErasedAt time.Time `json:"erased_at"`
}

type exportResponse struct {
	Format        string                       `json:"format"`
	ParticipantID uuidValue                    `json:"participant_id"`
	ExportedAt    time.Time                    `json:"exported_at"`
	Tables        map[string][]json.RawMessage `json:"tables"`
}

func (h *handlers) getConsentDocument(c echo.Context) error {
	d, err := h.svc.Privacy.CurrentDocument(c.Request().Context(), c.Param("kind"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toConsentDocumentResponse(d))
}

func (h *handlers) editConsentDocument(c echo.Context) error {
	var req consentDocumentEditRequest
	if err := h.bind(c, &req); err != nil {
		return err
	}
	d, created, err := h.svc.Privacy.EditDocument(c.Request().Context(), currentCoach(c), c.Param("kind"), *req.Text)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return c.JSON(status, toConsentDocumentResponse(d))
}

func (h *handlers) acceptConsent(c echo.Context) error {
	var req consentAcceptRequest
	if err := h.bind(c, &req); err != nil {
		return err
	}
	consent, err := h.svc.Privacy.AcceptConsent(c.Request().Context(), currentParticipant(c), *req.Kind, *req.Version, clientInfo(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, consentResponse{ID: consent.ID, Kind: string(consent.Kind), Version: consent.TextVersion,
		Granted: consent.Granted, CreatedAt: consent.CreatedAt.UTC()})
}

func (h *handlers) exportMe(c echo.Context) error {
	x, err := h.svc.Privacy.Export(c.Request().Context(), currentParticipant(c).ID)
	if err != nil {
		return err
	}
	// A download she keeps, never a page a cache keeps.
	c.Response().Header().Set(echo.HeaderContentDisposition, `attachment; filename="grace-export.json"`)
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, exportResponse{Format: "grace-export/1", ParticipantID: x.ParticipantID, ExportedAt: x.ExportedAt.UTC(), Tables: x.Tables})
}

func (h *handlers) requestEraseCode(c echo.Context) error {
	if err := h.svc.Privacy.RequestEraseCode(c.Request().Context(), currentParticipant(c)); err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, accepted)
}

func (h *handlers) eraseMe(c echo.Context) error {
	var req eraseRequest
	if err := h.bind(c, &req); err != nil {
		return err
	}
	if err := h.svc.Privacy.EraseWithCode(c.Request().Context(), currentParticipant(c), *req.Code); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (h *handlers) eraseParticipant(c echo.Context) error {
	id, err := pathUUID(c, "id", "participant")
	if err != nil {
		return err
	}
	at, err := h.svc.Privacy.Erase(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, erasedResponse{ID: id, ErasedAt: at})
}

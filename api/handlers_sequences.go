package api

import (
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/drip"
)

// Drip email sequences, their steps, previews and test sends. The domain
// checks triggers, scopes, offsets and placeholders; a coach with role
// coach sees only the sequences she may manage.

type sequenceCreateRequest struct {
	Name             string            `json:"name" validate:"required,max=200"`
	Trigger          drip.Trigger      `json:"trigger" validate:"required"`
	ProgramID        *uuid.UUID        `json:"program_id"`
	CohortID         *uuid.UUID        `json:"cohort_id"`
	Kind             drip.SequenceKind `json:"kind" validate:"required"`
	Active           bool              `json:"active"`
	ExitOnEnrollment bool              `json:"exit_on_enrollment"`
}

// sequenceUpdateRequest: the domain checks each sent field, since a tag on
// an Optional cannot tell "absent" from "empty".
type sequenceUpdateRequest struct {
	Name             models.Optional[string]            `json:"name"`
	Trigger          models.Optional[drip.Trigger]      `json:"trigger"`
	ProgramID        models.Optional[uuid.UUID]         `json:"program_id"`
	CohortID         models.Optional[uuid.UUID]         `json:"cohort_id"`
	Kind             models.Optional[drip.SequenceKind] `json:"kind"`
	Active           models.Optional[bool]              `json:"active"`
	ExitOnEnrollment models.Optional[bool]              `json:"exit_on_enrollment"`
}

type sequenceResponse struct {
	ID               uuid.UUID         `json:"id"`
	Name             string            `json:"name"`
	Trigger          drip.Trigger      `json:"trigger"`
	ProgramID        *uuid.UUID        `json:"program_id"`
	CohortID         *uuid.UUID        `json:"cohort_id"`
	Kind             drip.SequenceKind `json:"kind"`
	Active           bool              `json:"active"`
	ExitOnEnrollment bool              `json:"exit_on_enrollment"`
	CreatedAt        time.Time         `json:"created_at"`
	UpdatedAt        time.Time         `json:"updated_at"`
}

func toSequenceResponse(s drip.EmailSequence) sequenceResponse {
	return sequenceResponse{
		ID: s.ID, Name: s.Name, Trigger: s.Trigger, ProgramID: s.ProgramID, CohortID: s.CohortID, Kind: s.Kind,
		Active: s.Active, ExitOnEnrollment: s.ExitOnEnrollment, CreatedAt: s.CreatedAt.UTC(), UpdatedAt: s.UpdatedAt.UTC(),
	}
}

type stepCreateRequest struct {
	Position      *int    `json:"position" validate:"omitnil,min=1"`
	OffsetMinutes *int    `json:"offset_minutes"`
	OffsetDays    *int    `json:"offset_days"`
	SendAtLocal   *string `json:"send_at_local"`
	Subject       string  `json:"subject" validate:"required"`
	Body          string  `json:"body" validate:"required"`
}

// stepUpdateRequest: the domain checks each sent field.
type stepUpdateRequest struct {
	Position      models.Optional[int]    `json:"position"`
	OffsetMinutes models.Optional[int]    `json:"offset_minutes"`
	OffsetDays    models.Optional[int]    `json:"offset_days"`
	SendAtLocal   models.Optional[string] `json:"send_at_local"`
	Subject       models.Optional[string] `json:"subject"`
	Body          models.Optional[string] `json:"body"`
}

type stepResponse struct {
	ID            uuid.UUID `json:"id"`
	SequenceID    uuid.UUID `json:"sequence_id"`
	Position      int       `json:"position"`
	OffsetMinutes *int      `json:"offset_minutes"`
	OffsetDays    *int      `json:"offset_days"`
	SendAtLocal   *string   `json:"send_at_local"`
	Subject       string    `json:"subject"`
	Body          string    `json:"body"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

func toStepResponse(s drip.EmailStep) stepResponse {
	return stepResponse{
		ID: s.ID, SequenceID: s.SequenceID, Position: s.Position, OffsetMinutes: s.OffsetMinutes, OffsetDays: s.OffsetDays,
		SendAtLocal: s.SendAtLocal, Subject: s.Subject, Body: s.Body, CreatedAt: s.CreatedAt.UTC(), UpdatedAt: s.UpdatedAt.UTC(),
	}
}

type stepPreviewRequest struct {
	ParticipantID *uuid.UUID `json:"participant_id"`
}

type stepPreviewResponse struct {
	Subject string `json:"subject"`
	HTML    string `json:"html"`
	Text    string `json:"text"`
}

type stepTestSendRequest struct {
	To string `json:"to" validate:"required,max=254"`
}

func (h *handlers) listSequences(c echo.Context) error {
	pp, err := pageParams(c)
	if err != nil {
		return err
	}
	page, err := h.svc.Drip.ListSequences(c.Request().Context(), currentCoach(c), pp)
	if err != nil {
		return err
	}
	return renderPage(c, page, toSequenceResponse)
}

func (h *handlers) createSequence(c echo.Context) error {
	var req sequenceCreateRequest
	if err := h.bind(c, &req); err != nil {
		return err
	}
	s, err := h.svc.Drip.CreateSequence(c.Request().Context(), currentCoach(c), drip.SequenceInput{
		Name: req.Name, Trigger: req.Trigger, ProgramID: req.ProgramID, CohortID: req.CohortID, Kind: req.Kind,
		Active: req.Active, ExitOnEnrollment: req.ExitOnEnrollment,
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toSequenceResponse(*s))
}

func (h *handlers) getSequence(c echo.Context) error {
	id, err := pathUUID(c, "id", "sequence")
	if err != nil {
		return err
	}
	s, err := h.svc.Drip.GetSequence(c.Request().Context(), currentCoach(c), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toSequenceResponse(*s))
}

func (h *handlers) updateSequence(c echo.Context) error {
	id, err := pathUUID(c, "id", "sequence")
	if err != nil {
		return err
	}
	var req sequenceUpdateRequest
	if err := h.bind(c, &req); err != nil {
		return err
	}
	s, err := h.svc.Drip.UpdateSequence(c.Request().Context(), currentCoach(c), id, drip.SequencePatch{
		Name: req.Name, Trigger: req.Trigger, ProgramID: req.ProgramID, CohortID: req.CohortID, Kind: req.Kind,
		Active: req.Active, ExitOnEnrollment: req.ExitOnEnrollment,
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toSequenceResponse(*s))
}

func (h *handlers) deleteSequence(c echo.Context) error {
	id, err := pathUUID(c, "id", "sequence")
	if err != nil {
		return err
	}
	if err := h.svc.Drip.DeleteSequence(c.Request().Context(), currentCoach(c), id); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (h *handlers) listSteps(c echo.Context) error {
	id, err := pathUUID(c, "id", "sequence")
	if err != nil {
		return err
	}
	pp, err := pageParams(c)
	if err != nil {
		return err
	}
	page, err := h.svc.Drip.ListSteps(c.Request().Context(), currentCoach(c), id, pp)
	if err != nil {
		return err
	}
	return renderPage(c, page, toStepResponse)
}

func (h *handlers) createStep(c echo.Context) error {
	id, err := pathUUID(c, "id", "sequence")
	if err != nil {
		return err
	}
	var req stepCreateRequest
	if err := h.bind(c, &req); err != nil {
		return err
	}
	in := drip.StepInput{OffsetMinutes: req.OffsetMinutes, OffsetDays: req.OffsetDays, SendAtLocal: req.SendAtLocal,
		Subject: req.Subject, Body: req.Body}
	if req.Position != nil {
		in.Position = *req.Position
	}
	s, err := h.svc.Drip.CreateStep(c.Request().Context(), currentCoach(c), id, in)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toStepResponse(*s))
}

func (h *handlers) updateStep(c echo.Context) error {
	id, err := pathUUID(c, "id", "step")
	if err != nil {
		return err
	}
	var req stepUpdateRequest
	if err := h.bind(c, &req); err != nil {
		return err
	}
	s, err := h.svc.Drip.UpdateStep(c.Request().Context(), currentCoach(c), id, drip.StepPatch{
		Position: req.Position, OffsetMinutes: req.OffsetMinutes, OffsetDays: req.OffsetDays, SendAtLocal: req.SendAtLocal,
		Subject: req.Subject, Body: req.Body,
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toStepResponse(*s))
}

func (h *handlers) deleteStep(c echo.Context) error {
	id, err := pathUUID(c, "id", "step")
	if err != nil {
		return err
	}
	if err := h.svc.Drip.DeleteStep(c.Request().Context(), currentCoach(c), id); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (h *handlers) previewStep(c echo.Context) error {
	id, err := pathUUID(c, "id", "step")
	if err != nil {
		return err
	}
	var req stepPreviewRequest
	if err := h.bind(c, &req); err != nil {
		return err
	}
	out, err := h.svc.Drip.PreviewStep(c.Request().Context(), currentCoach(c), id, req.ParticipantID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, stepPreviewResponse{Subject: out.Subject, HTML: out.HTML, Text: out.Text})
}

func (h *handlers) testSendStep(c echo.Context) error {
	id, err := pathUUID(c, "id", "step")
	if err != nil {
		return err
	}
	var req stepTestSendRequest
	if err := h.bind(c, &req); err != nil {
		return err
	}
	if err := h.svc.Drip.TestSendStep(c.Request().Context(), currentCoach(c), id, req.To); err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, accepted)
}

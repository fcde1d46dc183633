package api

import (
	"net/http"
	"net/url"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/enroll"
)

// Cohorts, their live sessions, the public cohort page, her enrollments in
// the portal and her calendar feed.

type cohortCreateRequest struct {
	ProgramID          uuid.UUID   `json:"program_id" validate:"required"`
	Name               string      `json:"name" validate:"required,max=200"`
	StartsAt           time.Time   `json:"starts_at" validate:"required"`
	EndsAt             time.Time   `json:"ends_at" validate:"required"`
	Timezone           string      `json:"timezone" validate:"required,max=64"`
	Capacity           int         `json:"capacity" validate:"required,min=1,max=10000"`
	PriceCents         *int64      `json:"price_cents" validate:"required,min=0,max=100000000"`
	Currency           string      `json:"currency" validate:"required,len=3"`
	EnrollmentOpensAt  *time.Time  `json:"enrollment_opens_at"`
	EnrollmentClosesAt *time.Time  `json:"enrollment_closes_at"`
	Status             string      `json:"status" validate:"omitempty,oneof=draft open closed cancelled"`
	CoachIDs           []uuid.UUID `json:"coach_ids" validate:"omitnil,min=1,max=20,unique"`
}

// cohortUpdateRequest: the domain checks each sent field, since a tag on an
// Optional cannot tell "absent" from "empty".
type cohortUpdateRequest struct {
	Name               models.Optional[string]      `json:"name"`
	StartsAt           models.Optional[time.Time]   `json:"starts_at"`
	EndsAt             models.Optional[time.Time]   `json:"ends_at"`
	Timezone           models.Optional[string]      `json:"timezone"`
	Capacity           models.Optional[int]         `json:"capacity"`
	PriceCents         models.Optional[int64]       `json:"price_cents"`
	Currency           models.Optional[string]      `json:"currency"`
	EnrollmentOpensAt  models.Optional[time.Time]   `json:"enrollment_opens_at"`
	EnrollmentClosesAt models.Optional[time.Time]   `json:"enrollment_closes_at"`
	Status             models.Optional[string]      `json:"status"`
	CoachIDs           models.Optional[[]uuid.UUID] `json:"coach_ids"`
}

type cohortCloneRequest struct {
	Name     string    `json:"name" validate:"required,max=200"`
	StartsAt time.Time `json:"starts_at" validate:"required"`
}

type cohortResponse struct {
	ID                 uuid.UUID   `json:"id"`
	ProgramID          uuid.UUID   `json:"program_id"`
	Name               string      `json:"name"`
	StartsAt           time.Time   `json:"starts_at"`
	EndsAt             time.Time   `json:"ends_at"`
	Timezone           string      `json:"timezone"`
	Capacity           int         `json:"capacity"`
	PriceCents         int64       `json:"price_cents"`
	Currency           string      `json:"currency"`
	EnrollmentOpensAt  *time.Time  `json:"enrollment_opens_at"`
	EnrollmentClosesAt *time.Time  `json:"enrollment_closes_at"`
	Status             string      `json:"status"`
	CoachIDs           []uuid.UUID `json:"coach_ids"`
	SeatsPaid          int         `json:"seats_paid"`
	SeatsHeld          int         `json:"seats_held"`
	SeatsLeft          int         `json:"seats_left"`
	WaitlistCount      int         `json:"waitlist_count"`
	SeatsOverflow      int         `json:"seats_overflow"`
	CreatedAt          time.Time   `json:"created_at"`
	UpdatedAt          time.Time   `json:"updated_at"`
}

func toCohortResponse(v enroll.CohortView) cohortResponse {
	coachIDs := v.CoachIDs
	if coachIDs == nil {
		coachIDs = []uuid.UUID{}
	}
	return cohortResponse{
		ID: v.ID, ProgramID: v.ProgramID, Name: v.Name, StartsAt: v.StartsAt.UTC(), EndsAt: v.EndsAt.UTC(),
		Timezone: v.Timezone, Capacity: v.Capacity, PriceCents: v.PriceCents, Currency: v.Currency,
		EnrollmentOpensAt: catalogUTC(v.EnrollmentOpensAt), EnrollmentClosesAt: catalogUTC(v.EnrollmentClosesAt),
		Status: string(v.Status), CoachIDs: coachIDs, SeatsPaid: v.SeatsPaid, SeatsHeld: v.SeatsHeld, SeatsLeft: v.SeatsLeft(),
		WaitlistCount: v.WaitlistCount, SeatsOverflow: v.SeatsOverflow, CreatedAt: v.CreatedAt.UTC(), UpdatedAt: v.UpdatedAt.UTC(),
	}
}

func (h *handlers) listCohorts(c echo.Context) error {
	pp, err := pageParams(c)
	if err != nil {
		return err
	}
	var programID *uuid.UUID
	if s := c.QueryParam("program_id"); s != "" {
		id, err := parseUUID(s)
		if err != nil {
			e := models.E(models.KindBadRequest, "invalid_query", "program_id must be a program id.")
			e.Fields = []models.FieldError{{Field: "program_id", Message: "must be a UUID"}}
			return e
		}
		programID = &id
	}
	page, err := h.svc.Enroll.ListCohorts(c.Request().Context(), currentCoach(c), programID, pp)
	if err != nil {
		return err
	}
	return renderPage(c, page, toCohortResponse)
}

func (h *handlers) createCohort(c echo.Context) error {
	var req cohortCreateRequest
	if err := h.bind(c, &req); err != nil {
		return err
	}
	v, err := h.svc.Enroll.CreateCohort(c.Request().Context(), currentCoach(c), enroll.CohortInput{
		ProgramID: req.ProgramID, Name: req.Name, StartsAt: req.StartsAt, EndsAt: req.EndsAt, Timezone: req.Timezone,
		Capacity: req.Capacity, PriceCents: *req.PriceCents, Currency: req.Currency,
		EnrollmentOpensAt: req.EnrollmentOpensAt, EnrollmentClosesAt: req.EnrollmentClosesAt,
		Status: enroll.CohortStatus(req.Status), CoachIDs: req.CoachIDs,
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toCohortResponse(*v))
}

func (h *handlers) getCohort(c echo.Context) error {
	id, err := pathUUID(c, "id", "cohort")
	if err != nil {
		return err
	}
	v, err := h.svc.Enroll.GetCohort(c.Request().Context(), currentCoach(c), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toCohortResponse(*v))
}

func (h *handlers) updateCohort(c echo.Context) error {
	id, err := pathUUID(c, "id", "cohort")
	if err != nil {
		return err
	}
	var req cohortUpdateRequest
	if err := h.bind(c, &req); err != nil {
		return err
	}
	status := models.Optional[enroll.CohortStatus]{Set: req.Status.Set, Null: req.Status.Null, Value: enroll.CohortStatus(req.Status.Value)}
	v, err := h.svc.Enroll.UpdateCohort(c.Request().Context(), currentCoach(c), id, enroll.CohortPatch{
		Name: req.Name, StartsAt: req.StartsAt, EndsAt: req.EndsAt, Timezone: req.Timezone, Capacity: req.Capacity,
		PriceCents: req.PriceCents, Currency: req.Currency, EnrollmentOpensAt: req.EnrollmentOpensAt,
		EnrollmentClosesAt: req.EnrollmentClosesAt, Status: status, CoachIDs: req.CoachIDs,
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toCohortResponse(*v))
}

func (h *handlers) deleteCohort(c echo.Context) error {
	id, err := pathUUID(c, "id", "cohort")
	if err != nil {
		return err
	}
	if err := h.svc.Enroll.DeleteCohort(c.Request().Context(), currentCoach(c), id); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (h *handlers) cloneCohort(c echo.Context) error {
	id, err := pathUUID(c, "id", "cohort")
	if err != nil {
		return err
	}
	var req cohortCloneRequest
	if err := h.bind(c, &req); err != nil {
		return err
	}
	v, err := h.svc.Enroll.CloneCohort(c.Request().Context(), currentCoach(c), id, req.Name, req.StartsAt)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toCohortResponse(*v))
}

type liveSessionCreateRequest struct {
	Title           string    `json:"title" validate:"required,max=200"`
	StartsAt        time.Time `json:"starts_at" validate:"required"`
	DurationMinutes int       `json:"duration_minutes" validate:"required,min=1,max=1440"`
	MeetingURL      *string   `json:"meeting_url" validate:"omitnil,max=2000"`
	RecordingURL    *string   `json:"recording_url" validate:"omitnil,max=2000"`
}

// liveSessionUpdateRequest: the domain checks each sent field.
type liveSessionUpdateRequest struct {
	Title           models.Optional[string]    `json:"title"`
	StartsAt        models.Optional[time.Time] `json:"starts_at"`
	DurationMinutes models.Optional[int]       `json:"duration_minutes"`
	MeetingURL      models.Optional[string]    `json:"meeting_url"`
	RecordingURL    models.Optional[string]    `json:"recording_url"`
}

type liveSessionResponse struct {
	ID              uuid.UUID `json:"id"`
	CohortID        uuid.UUID `json:"cohort_id"`
	Title           string    `json:"title"`
	StartsAt        time.Time `json:"starts_at"`
	DurationMinutes int       `json:"duration_minutes"`
	MeetingURL      *string   `json:"meeting_url"`
	RecordingURL    *string   `json:"recording_url"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
}

func toLiveSessionResponse(l enroll.LiveSession) liveSessionResponse {
	return liveSessionResponse{
		ID: l.ID, CohortID: l.CohortID, Title: l.Title, StartsAt: l.StartsAt.UTC(), DurationMinutes: l.DurationMinutes,
		MeetingURL: l.MeetingURL, RecordingURL: l.RecordingURL, CreatedAt: l.CreatedAt.UTC(), UpdatedAt: l.UpdatedAt.UTC(),
	}
}

func (h *handlers) listLiveSessions(c echo.Context) error {
	id, err := pathUUID(c, "id", "cohort")
	if err != nil {
		return err
	}
	pp, err := pageParams(c)
	if err != nil {
		return err
	}
	page, err := h.svc.Enroll.ListLiveSessions(c.Request().Context(), currentCoach(c), id, pp)
	if err != nil {
		return err
	}
	return renderPage(c, page, toLiveSessionResponse)
}

func (h *handlers) createLiveSession(c echo.Context) error {
	id, err := pathUUID(c, "id", "cohort")
	if err != nil {
		return err
	}
	var req liveSessionCreateRequest
	if err := h.bind(c, &req); err != nil {
		return err
	}
	l, err := h.svc.Enroll.CreateLiveSession(c.Request().Context(), currentCoach(c), id, enroll.LiveSessionInput{
		Title: req.Title, StartsAt: req.StartsAt, DurationMinutes: req.DurationMinutes,
		MeetingURL: req.MeetingURL, RecordingURL: req.RecordingURL,
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toLiveSessionResponse(*l))
}

func (h *handlers) updateLiveSession(c echo.Context) error {
	id, err := pathUUID(c, "id", "live session")
	if err != nil {
		return err
	}
	var req liveSessionUpdateRequest
	if err := h.bind(c, &req); err != nil {
		return err
	}
	l, err := h.svc.Enroll.UpdateLiveSession(c.Request().Context(), currentCoach(c), id, enroll.LiveSessionPatch{
		Title: req.Title, StartsAt: req.StartsAt, DurationMinutes: req.DurationMinutes,
		MeetingURL: req.MeetingURL, RecordingURL: req.RecordingURL,
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toLiveSessionResponse(*l))
}

func (h *handlers) deleteLiveSession(c echo.Context) error {
	id, err := pathUUID(c, "id", "live session")
	if err != nil {
		return err
	}
	if err := h.svc.Enroll.DeleteLiveSession(c.Request().Context(), currentCoach(c), id); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// publicLiveSessionResponse has no link fields at all: the public page must
// not be a way into the calls.
type publicLiveSessionResponse struct {
	ID              uuid.UUID `json:"id"`
	Title           string    `json:"title"`
	StartsAt        time.Time `json:"starts_at"`
	DurationMinutes int       `json:"duration_minutes"`
}

type publicCohortResponse struct {
	ID             uuid.UUID                   `json:"id"`
	ProgramID      uuid.UUID                   `json:"program_id"`
	ProgramSlug    string                      `json:"program_slug"`
	ProgramTitle   string                      `json:"program_title"`
	Name           string                      `json:"name"`
	StartsAt       time.Time                   `json:"starts_at"`
	EndsAt         time.Time                   `json:"ends_at"`
	Timezone       string                      `json:"timezone"`
	PriceCents     int64                       `json:"price_cents"`
	Currency       string                      `json:"currency"`
	SeatsLeft      int                         `json:"seats_left"`
	Status         string                      `json:"status"`
	EnrollmentOpen bool                        `json:"enrollment_open"`
	Sessions       []publicLiveSessionResponse `json:"sessions"`
}

func toPublicCohortResponse(p *enroll.PublicCohort) publicCohortResponse {
	sessions := make([]publicLiveSessionResponse, len(p.Sessions))
	for i, l := range p.Sessions {
		sessions[i] = publicLiveSessionResponse{ID: l.ID, Title: l.Title, StartsAt: l.StartsAt.UTC(), DurationMinutes: l.DurationMinutes}
	}
	return publicCohortResponse{
		ID: p.ID, ProgramID: p.ProgramID, ProgramSlug: p.ProgramSlug, ProgramTitle: p.ProgramTitle, Name: p.Name,
		StartsAt: p.StartsAt.UTC(), EndsAt: p.EndsAt.UTC(), Timezone: p.Timezone, PriceCents: p.PriceCents,
		Currency: p.Currency, SeatsLeft: p.SeatsLeft(), Status: string(p.Status), EnrollmentOpen: p.EnrollmentOpen, Sessions: sessions,
	}
}

func (h *handlers) getPublicCohort(c echo.Context) error {
	id, err := pathUUID(c, "id", "cohort")
	if err != nil {
		return err
	}
	p, err := h.svc.Enroll.GetPublicCohort(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toPublicCohortResponse(p))
}

type portalEnrollmentCohort struct {
	ID       uuid.UUID `json:"id"`
	Name     string    `json:"name"`
	StartsAt time.Time `json:"starts_at"`
	EndsAt   time.Time `json:"ends_at"`
	Timezone string    `json:"timezone"`
}

type portalEnrollmentProgram struct {
	ID    uuid.UUID `json:"id"`
	Slug  string    `json:"slug"`
	Title string    `json:"title"`
}

type portalLiveSessionResponse struct {
	ID              uuid.UUID `json:"id"`
	Title           string    `json:"title"`
	StartsAt        time.Time `json:"starts_at"`
	DurationMinutes int       `json:"duration_minutes"`
	MeetingURL      *string   `json:"meeting_url"`
	RecordingURL    *string   `json:"recording_url"`
}

type portalEnrollmentResponse struct {
	ID       uuid.UUID                   `json:"id"`
	Status   string                      `json:"status"`
	Cohort   portalEnrollmentCohort      `json:"cohort"`
	Program  portalEnrollmentProgram     `json:"program"`
	Sessions []portalLiveSessionResponse `json:"sessions"`
}

func toPortalEnrollmentResponse(e enroll.PortalEnrollment) portalEnrollmentResponse {
	sessions := make([]portalLiveSessionResponse, len(e.Sessions))
	for i, l := range e.Sessions {
		sessions[i] = portalLiveSessionResponse{ID: l.ID, Title: l.Title, StartsAt: l.StartsAt.UTC(),
			DurationMinutes: l.DurationMinutes, MeetingURL: l.MeetingURL, RecordingURL: l.RecordingURL}
	}
	return portalEnrollmentResponse{
		ID: e.ID, Status: string(e.Status),
		Cohort: portalEnrollmentCohort{ID: e.Cohort.ID, Name: e.Cohort.Name, StartsAt: e.Cohort.StartsAt.UTC(),
			EndsAt: e.Cohort.EndsAt.UTC(), Timezone: e.Cohort.Timezone},
		Program:  portalEnrollmentProgram{ID: e.Cohort.ProgramID, Slug: e.ProgramSlug, Title: e.ProgramTitle},
		Sessions: sessions,
	}
}

func (h *handlers) listPortalEnrollments(c echo.Context) error {
	pp, err := pageParams(c)
	if err != nil {
		return err
	}
	page, err := h.svc.Enroll.ListPortalEnrollments(c.Request().Context(), currentParticipant(c), pp)
	if err != nil {
		return err
	}
	return renderPage(c, page, toPortalEnrollmentResponse)
}

type calendarTokenResponse struct {
	Token string `json:"token"`
	URL   string `json:"url"`
	Path  string `json:"path"`
}

func (h *handlers) rotateCalendarToken(c echo.Context) error {
	token, err := h.svc.Enroll.RotateCalendarToken(c.Request().Context(), currentParticipant(c))
	if err != nil {
		return err
	}
	path := calendarFeedPath + "?" + url.Values{"token": {token}}.Encode()
	// The feed is served by this API, so the address she reached it at is
	// the one her calendar app should poll (Scheme honours X-Forwarded-Proto).
	feedURL := c.Scheme() + "://" + c.Request().Host + path
	return c.JSON(http.StatusCreated, calendarTokenResponse{Token: token, URL: feedURL, Path: path})
}

func (h *handlers) calendarFeed(c echo.Context) error {
	body, err := h.svc.Enroll.CalendarFeed(c.Request().Context(), c.QueryParam("token"))
	if err != nil {
		return err
	}
	// The feed is personal: no shared cache may keep it.
	c.Response().Header().Set(echo.HeaderCacheControl, "private, no-cache")
	c.Response().Header().Set(echo.HeaderContentDisposition, `inline; filename="grace.ics"`)
	return c.Blob(http.StatusOK, "text/calendar; charset=utf-8", body)
}

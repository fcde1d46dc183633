package api

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/people"
)

type freeAccessRequest struct {
	Email              string `json:"email"`
	Name               string `json:"name"`
	MarketingConsent   *bool  `json:"marketing_consent" validate:"required"`
	DisclaimerAccepted *bool  `json:"disclaimer_accepted" validate:"required"`
	// Discreet can only turn discreet mode on (people.TurnOnDiscreet).
	Discreet bool `json:"discreet"`
}

type emailRequest struct {
	Email string `json:"email"`
}

// portalSessionRequest is one of two forms: {token}, or {email, code}.
type portalSessionRequest struct {
	Token *string `json:"token"`
	Email *string `json:"email"`
	Code  *string `json:"code"`
}

type participantUpdateRequest struct {
	Name     models.Optional[string] `json:"name"`
	Timezone models.Optional[string] `json:"timezone"`
	Discreet models.Optional[bool]   `json:"discreet"`
}

type pauseRequest struct {
	Until models.Optional[string] `json:"until"`
}

// crisisResponse is the crisis resources beside a participant-facing
// answer; null until some are written.
type crisisResponse struct {
	Body      string    `json:"body"`
	BodyHTML  string    `json:"body_html"`
	UpdatedAt time.Time `json:"updated_at"`
}

func toCrisisResponse(c *catalog.CrisisResources) *crisisResponse {
	if c == nil {
		return nil
	}
	return &crisisResponse{Body: c.Body, BodyHTML: c.BodyHTML, UpdatedAt: c.UpdatedAt.UTC()}
}

// meResponse is her profile as her portal shows it.
type meResponse struct {
	participantResponse
	Discreet        bool            `json:"discreet"`
	Paused          bool            `json:"paused"`
	PausedUntil     *time.Time      `json:"paused_until"`
	CrisisResources *crisisResponse `json:"crisis_resources"`
}

func toMeResponse(m *people.Me) meResponse {
	return meResponse{participantResponse: toParticipantResponse(&m.Participant), Discreet: m.Discreet,
		Paused: m.Paused, PausedUntil: utcPtr(m.PausedUntil), CrisisResources: toCrisisResponse(m.Crisis)}
}

// portalList is a portal page with the crisis resources beside it.
type portalList[T any] struct {
	list[T]
	CrisisResources *crisisResponse `json:"crisis_resources"`
}

func renderPortalPage[M, T any](c echo.Context, p people.PortalPage[M], conv func(M) T) error {
	out := portalList[T]{list: list[T]{Data: make([]T, 0, len(p.Items)), NextCursor: p.NextCursor}, CrisisResources: toCrisisResponse(p.Crisis)}
	for _, m := range p.Items {
		out.Data = append(out.Data, conv(m))
	}
	return c.JSON(http.StatusOK, out)
}

type participantResponse struct {
	ID        uuidValue `json:"id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	Timezone  string    `json:"timezone"`
	CreatedAt time.Time `json:"created_at"`
}

func toParticipantResponse(p *people.Participant) participantResponse {
	return participantResponse{ID: p.ID, Email: p.Email, Name: p.Name, Timezone: p.Timezone, CreatedAt: p.CreatedAt.UTC()}
}

type participantSessionResponse struct {
	Token       string              `json:"token"`
	ExpiresAt   time.Time           `json:"expires_at"`
	Participant participantResponse `json:"participant"`
}

type portalProgramResponse struct {
	ID               uuidValue `json:"id"`
	Slug             string    `json:"slug"`
	Title            string    `json:"title"`
	Summary          string    `json:"summary"`
	AccessStartsAt   time.Time `json:"access_starts_at"`
	LessonsTotal     int       `json:"lessons_total"`
	LessonsCompleted int       `json:"lessons_completed"`
}

func toPortalProgramResponse(p people.PortalProgram) portalProgramResponse {
	return portalProgramResponse{ID: p.ID, Slug: p.Slug, Title: p.Title, Summary: p.Summary,
		AccessStartsAt: p.AccessStartsAt.UTC(), LessonsTotal: p.LessonsTotal, LessonsCompleted: p.LessonsCompleted}
}

type portalLessonSummaryResponse struct {
	ID              uuidValue  `json:"id"`
	Title           string     `json:"title"`
	Position        int        `json:"position"`
	FreePreview     bool       `json:"free_preview"`
	Locked          bool       `json:"locked"`
	UnlockAt        *time.Time `json:"unlock_at"`
	Completed       bool       `json:"completed"`
	DurationSeconds *int       `json:"duration_seconds"`
}

func toPortalLessonSummaryResponse(l people.PortalLessonSummary) portalLessonSummaryResponse {
	return portalLessonSummaryResponse{ID: l.ID, Title: l.Title, Position: l.Position, FreePreview: l.FreePreview,
		Locked: l.Locked, UnlockAt: utcPtr(l.UnlockAt), Completed: l.Completed, DurationSeconds: l.DurationSeconds}
}

type portalLessonResponse struct {
	ID               uuidValue  `json:"id"`
	ProgramID        uuidValue  `json:"program_id"`
	Position         int        `json:"position"`
	Title            string     `json:"title"`
	Body             string     `json:"body"`
	BodyHTML         string     `json:"body_html"`
	MediaURL         *string    `json:"media_url"`
	DurationSeconds  *int       `json:"duration_seconds"`
	FreePreview      bool       `json:"free_preview"`
	UnlockOffsetDays int        `json:"unlock_offset_days"`
	Published        bool       `json:"published"`
	Locked           bool       `json:"locked"`
	UnlockAt         *time.Time `json:"unlock_at"`
	Completed        bool       `json:"completed"`
	// ReflectionPrompts come with their HTML, rendered when written.
	ReflectionPrompts []promptResponse `json:"reflection_prompts"`
	CreatedAt         time.Time        `json:"created_at"`
	UpdatedAt         time.Time        `json:"updated_at"`
	// CrisisResources comes from memory: the read stays one round trip.
	CrisisResources *crisisResponse `json:"crisis_resources"`
}

type promptResponse struct {
	Markdown string `json:"markdown"`
	HTML     string `json:"html"`
}

func toPromptResponses(ps catalog.Prompts) []promptResponse {
	out := make([]promptResponse, len(ps))
	for i, p := range ps {
		out[i] = promptResponse{Markdown: p.Markdown, HTML: p.HTML}
	}
	return out
}

func toPortalLessonResponse(l *people.PortalLesson) portalLessonResponse {
	return portalLessonResponse{ID: l.ID, ProgramID: l.ProgramID, Position: l.Position, Title: l.Title,
		Body: l.Body, BodyHTML: l.BodyHTML, MediaURL: l.MediaURL, DurationSeconds: l.DurationSeconds,
		FreePreview: l.FreePreview, UnlockOffsetDays: l.UnlockOffsetDays, Published: l.Published,
		UnlockAt: utcPtr(l.UnlockAt), Completed: l.Completed, ReflectionPrompts: toPromptResponses(l.ReflectionPrompts),
		CreatedAt: l.CreatedAt.UTC(), UpdatedAt: l.UpdatedAt.UTC(), CrisisResources: toCrisisResponse(l.Crisis)}
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func (h *handlers) claimFreeAccess(c echo.Context) error {
	var req freeAccessRequest
	if err := h.bind(c, &req); err != nil {
		return err
	}
	in := people.FreeAccessInput{Email: req.Email, Name: req.Name,
		MarketingConsent: *req.MarketingConsent, DisclaimerAccepted: *req.DisclaimerAccepted, Discreet: req.Discreet}
	if err := h.svc.People.ClaimFreeAccess(c.Request().Context(), c.Param("slug"), in, clientInfo(c)); err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, accepted)
}

func (h *handlers) createLoginLink(c echo.Context) error {
	var req emailRequest
	if err := h.bind(c, &req); err != nil {
		return err
	}
	if err := h.svc.People.RequestLoginLink(c.Request().Context(), req.Email, clientInfo(c)); err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, accepted)
}

func (h *handlers) createPortalSession(c echo.Context) error {
	var req portalSessionRequest
	if err := h.bind(c, &req); err != nil {
		return err
	}
	var (
		token   string
		session *people.ParticipantSession
		p       *people.Participant
		err     error
	)
	ctx, client := c.Request().Context(), clientInfo(c)
	switch {
	case req.Token != nil && req.Email == nil && req.Code == nil:
		if *req.Token == "" {
			return models.Invalid(models.FieldError{Field: "token", Message: "must not be empty"})
		}
		token, session, p, err = h.svc.People.ExchangeLoginToken(ctx, *req.Token, client)
	case req.Token == nil && req.Email != nil && req.Code != nil:
		token, session, p, err = h.svc.People.ExchangeLoginCode(ctx, *req.Email, *req.Code, client)
	default:
		return sessionFormError(req)
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, participantSessionResponse{Token: token, ExpiresAt: session.ExpiresAt.UTC(), Participant: toParticipantResponse(p)})
}

// sessionFormError explains which of the two sign-in forms was broken.
func sessionFormError(req portalSessionRequest) error {
	if req.Token != nil {
		var fields []models.FieldError
		if req.Email != nil {
			fields = append(fields, models.FieldError{Field: "email", Message: "must not be sent with token"})
		}
		if req.Code != nil {
			fields = append(fields, models.FieldError{Field: "code", Message: "must not be sent with token"})
		}
		return models.Invalid(fields...)
	}
	switch {
	case req.Email != nil:
		return models.Invalid(models.FieldError{Field: "code", Message: "is required with email"})
	case req.Code != nil:
		return models.Invalid(models.FieldError{Field: "email", Message: "is required with code"})
	}
	return models.Invalid(models.FieldError{Field: "token", Message: "is required, or send email and code"})
}

func (h *handlers) deletePortalSession(c echo.Context) error {
	if err := h.svc.People.EndParticipantSession(c.Request().Context(), currentParticipantSession(c).ID); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (h *handlers) getMe(c echo.Context) error {
	return c.JSON(http.StatusOK, toMeResponse(h.svc.People.Me(c.Request().Context(), currentParticipant(c))))
}

func (h *handlers) updateMe(c echo.Context) error {
	var req participantUpdateRequest
	if err := h.bind(c, &req); err != nil {
		return err
	}
	p, err := h.svc.People.UpdateParticipant(c.Request().Context(), currentParticipant(c).ID,
		people.ParticipantPatch{Name: req.Name, Timezone: req.Timezone, Discreet: req.Discreet})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toMeResponse(p))
}

func (h *handlers) pauseEmail(c echo.Context) error {
	var req pauseRequest
	if err := h.bind(c, &req); err != nil {
		return err
	}
	me, err := h.svc.People.Pause(c.Request().Context(), currentParticipant(c), people.PauseInput{Until: req.Until})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toMeResponse(me))
}

func (h *handlers) resumeEmail(c echo.Context) error {
	me, err := h.svc.People.Resume(c.Request().Context(), currentParticipant(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toMeResponse(me))
}

func (h *handlers) listPortalPrograms(c echo.Context) error {
	pp, err := pageParams(c)
	if err != nil {
		return err
	}
	page, err := h.svc.People.ListPortalPrograms(c.Request().Context(), currentParticipant(c), pp)
	if err != nil {
		return err
	}
	return renderPortalPage(c, page, toPortalProgramResponse)
}

func (h *handlers) listPortalLessons(c echo.Context) error {
	pp, err := pageParams(c)
	if err != nil {
		return err
	}
	page, err := h.svc.People.ListPortalLessons(c.Request().Context(), currentParticipant(c), c.Param("slug"), pp)
	if err != nil {
		return err
	}
	return renderPortalPage(c, page, toPortalLessonSummaryResponse)
}

// getPortalLesson is the portal's hot path. Behind requireParticipant it
// gates the lesson for the signed-in participant; registered without it, it
// authenticates the token and gates the lesson in a single query.
func (h *handlers) getPortalLesson(c echo.Context) error {
	ctx := c.Request().Context()
	p, authenticated := c.Get(ctxParticipant).(*people.Participant)
	token := bearerToken(c)
	if !authenticated && token == "" {
		return errNoToken
	}
	id, err := pathUUID(c, "id", "lesson")
	var l *people.PortalLesson
	switch {
	case authenticated && err != nil:
		return err
	case authenticated:
		l, err = h.svc.People.ReadLesson(ctx, p, id)
	default:
		// A malformed id is looked up as the nil uuid, which no lesson has,
		// so a bad token is still 401 before the id is 404.
		l, err = h.svc.People.ReadLessonWithToken(ctx, token, id)
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toPortalLessonResponse(l))
}

func (h *handlers) completeLesson(c echo.Context) error {
	id, err := pathUUID(c, "id", "lesson")
	if err != nil {
		return err
	}
	if err := h.svc.People.CompleteLesson(c.Request().Context(), currentParticipant(c), id); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (h *handlers) uncompleteLesson(c echo.Context) error {
	id, err := pathUUID(c, "id", "lesson")
	if err != nil {
		return err
	}
	if err := h.svc.People.UncompleteLesson(c.Request().Context(), currentParticipant(c), id); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

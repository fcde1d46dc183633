package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/people"
)

// Programs, lessons, the public catalogue and the admin participant views.

type programCreateRequest struct {
	Slug            string     `json:"slug" validate:"required,max=100"`
	Title           string     `json:"title" validate:"required,max=200"`
	Summary         string     `json:"summary" validate:"max=1000"`
	Description     string     `json:"description" validate:"max=100000"`
	Status          string     `json:"status" validate:"omitempty,oneof=draft published archived"`
	FreeAccessUntil *time.Time `json:"free_access_until"`
	PriceCents      int64      `json:"price_cents" validate:"min=0,max=1000000000"`
	Currency        string     `json:"currency" validate:"omitempty,len=3"`
}

// programUpdateRequest: the domain checks each sent field, since a tag on an
// Optional cannot tell "absent" from "empty".
type programUpdateRequest struct {
	Slug            models.Optional[string]    `json:"slug"`
	Title           models.Optional[string]    `json:"title"`
	Summary         models.Optional[string]    `json:"summary"`
	Description     models.Optional[string]    `json:"description"`
	Status          models.Optional[string]    `json:"status"`
	FreeAccessUntil models.Optional[time.Time] `json:"free_access_until"`
	PriceCents      models.Optional[int64]     `json:"price_cents"`
	Currency        models.Optional[string]    `json:"currency"`
	LeadCoachID     models.Optional[uuid.UUID] `json:"lead_coach_id"`
}

type programResponseAdmin struct {
	ID              uuid.UUID  `json:"id"`
	Slug            string     `json:"slug"`
	Title           string     `json:"title"`
	Summary         string     `json:"summary"`
	Description     string     `json:"description"`
	Status          string     `json:"status"`
	FreeAccessUntil *time.Time `json:"free_access_until"`
	PriceCents      int64      `json:"price_cents"`
	Currency        string     `json:"currency"`
	LeadCoachID     *uuid.UUID `json:"lead_coach_id"`
	CreatedAt       time.Time  `json:"created_at"`
	UpdatedAt       time.Time  `json:"updated_at"`
}

func catalogUTC(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func toProgramResponseAdmin(p catalog.Program) programResponseAdmin {
	return programResponseAdmin{
		ID: p.ID, Slug: p.Slug, Title: p.Title, Summary: p.Summary, Description: p.Description,
		Status: string(p.Status), FreeAccessUntil: catalogUTC(p.FreeAccessUntil), PriceCents: p.PriceCents,
		Currency: p.Currency, LeadCoachID: p.LeadCoachID, CreatedAt: p.CreatedAt.UTC(), UpdatedAt: p.UpdatedAt.UTC(),
	}
}

func (h *handlers) listPrograms(c echo.Context) error {
	pp, err := pageParams(c)
	if err != nil {
		return err
	}
	page, err := h.svc.Catalog.ListPrograms(c.Request().Context(), c.QueryParam("status"), pp)
	if err != nil {
		return err
	}
	return renderPage(c, page, toProgramResponseAdmin)
}

func (h *handlers) createProgram(c echo.Context) error {
	var req programCreateRequest
	if err := h.bind(c, &req); err != nil {
		return err
	}
	p, err := h.svc.Catalog.CreateProgram(c.Request().Context(), catalog.ProgramInput{
		Slug: req.Slug, Title: req.Title, Summary: req.Summary, Description: req.Description,
		Status: catalog.ProgramStatus(req.Status), FreeAccessUntil: req.FreeAccessUntil,
		PriceCents: req.PriceCents, Currency: req.Currency,
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toProgramResponseAdmin(*p))
}

func (h *handlers) getProgram(c echo.Context) error {
	id, err := pathUUID(c, "id", "program")
	if err != nil {
		return err
	}
	p, err := h.svc.Catalog.GetProgram(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toProgramResponseAdmin(*p))
}

func (h *handlers) updateProgram(c echo.Context) error {
	id, err := pathUUID(c, "id", "program")
	if err != nil {
		return err
	}
	var req programUpdateRequest
	if err := h.bind(c, &req); err != nil {
		return err
	}
	status := models.Optional[catalog.ProgramStatus]{Set: req.Status.Set, Null: req.Status.Null, Value: catalog.ProgramStatus(req.Status.Value)}
	p, err := h.svc.Catalog.UpdateProgram(c.Request().Context(), currentCoach(c), id, catalog.ProgramPatch{
		Slug: req.Slug, Title: req.Title, Summary: req.Summary, Description: req.Description, Status: status,
		FreeAccessUntil: req.FreeAccessUntil, PriceCents: req.PriceCents, Currency: req.Currency, LeadCoachID: req.LeadCoachID,
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toProgramResponseAdmin(*p))
}

func (h *handlers) deleteProgram(c echo.Context) error {
	id, err := pathUUID(c, "id", "program")
	if err != nil {
		return err
	}
	if err := h.svc.Catalog.DeleteProgram(c.Request().Context(), id); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

type lessonCreateRequest struct {
	Title            string  `json:"title" validate:"required,max=200"`
	Body             string  `json:"body" validate:"max=200000"`
	MediaURL         *string `json:"media_url" validate:"omitnil,max=2000"`
	DurationSeconds  *int    `json:"duration_seconds" validate:"omitnil,min=0,max=86400"`
	FreePreview      bool    `json:"free_preview"`
	UnlockOffsetDays int     `json:"unlock_offset_days" validate:"min=0,max=3650"`
	Published        bool    `json:"published"`
	Position         *int    `json:"position" validate:"omitnil,min=1"`
	// ReflectionPrompts are Markdown; the domain checks count and length.
	ReflectionPrompts []string `json:"reflection_prompts"`
}

// lessonUpdateRequest: the domain checks each sent field.
type lessonUpdateRequest struct {
	Title            models.Optional[string] `json:"title"`
	Body             models.Optional[string] `json:"body"`
	MediaURL         models.Optional[string] `json:"media_url"`
	DurationSeconds  models.Optional[int]    `json:"duration_seconds"`
	FreePreview      models.Optional[bool]   `json:"free_preview"`
	UnlockOffsetDays models.Optional[int]    `json:"unlock_offset_days"`
	Published        models.Optional[bool]   `json:"published"`
	// ReflectionPrompts replaces the whole list.
	ReflectionPrompts models.Optional[[]string] `json:"reflection_prompts"`
}

type lessonOrderRequest struct {
	LessonIDs []uuid.UUID `json:"lesson_ids" validate:"required,unique"`
}

// lessonResponseAdmin carries the Markdown source; body_html is the portal's.
type lessonResponseAdmin struct {
	ID               uuid.UUID `json:"id"`
	ProgramID        uuid.UUID `json:"program_id"`
	Position         int       `json:"position"`
	Title            string    `json:"title"`
	Body             string    `json:"body"`
	MediaURL         *string   `json:"media_url"`
	DurationSeconds  *int      `json:"duration_seconds"`
	FreePreview      bool      `json:"free_preview"`
	UnlockOffsetDays int       `json:"unlock_offset_days"`
	Published        bool      `json:"published"`
	// ReflectionPrompts are the Markdown sources, as sent.
	ReflectionPrompts []string  `json:"reflection_prompts"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
}

func toLessonResponseAdmin(l catalog.Lesson) lessonResponseAdmin {
	return lessonResponseAdmin{
		ID: l.ID, ProgramID: l.ProgramID, Position: l.Position, Title: l.Title, Body: l.Body,
		MediaURL: l.MediaURL, DurationSeconds: l.DurationSeconds, FreePreview: l.FreePreview,
		UnlockOffsetDays: l.UnlockOffsetDays, Published: l.Published, ReflectionPrompts: l.ReflectionPrompts.Markdown(),
		CreatedAt: l.CreatedAt.UTC(), UpdatedAt: l.UpdatedAt.UTC(),
	}
}

func (h *handlers) listLessons(c echo.Context) error {
	programID, err := pathUUID(c, "id", "program")
	if err != nil {
		return err
	}
	pp, err := pageParams(c)
	if err != nil {
		return err
	}
	page, err := h.svc.Catalog.ListLessons(c.Request().Context(), programID, pp)
	if err != nil {
		return err
	}
	return renderPage(c, page, toLessonResponseAdmin)
}

func (h *handlers) createLesson(c echo.Context) error {
	programID, err := pathUUID(c, "id", "program")
	if err != nil {
		return err
	}
	var req lessonCreateRequest
	if err := h.bind(c, &req); err != nil {
		return err
	}
	in := catalog.LessonInput{
		Title: req.Title, Body: req.Body, MediaURL: req.MediaURL, DurationSeconds: req.DurationSeconds,
		FreePreview: req.FreePreview, UnlockOffsetDays: req.UnlockOffsetDays, Published: req.Published,
		ReflectionPrompts: req.ReflectionPrompts,
	}
	if req.Position != nil {
		in.Position = *req.Position
	}
	l, err := h.svc.Catalog.CreateLesson(c.Request().Context(), programID, in)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toLessonResponseAdmin(*l))
}

func (h *handlers) reorderLessons(c echo.Context) error {
	programID, err := pathUUID(c, "id", "program")
	if err != nil {
		return err
	}
	var req lessonOrderRequest
	if err := h.bind(c, &req); err != nil {
		return err
	}
	lessons, err := h.svc.Catalog.ReorderLessons(c.Request().Context(), programID, req.LessonIDs)
	if err != nil {
		return err
	}
	return renderPage(c, models.Page[catalog.Lesson]{Items: lessons}, toLessonResponseAdmin)
}

func (h *handlers) getLesson(c echo.Context) error {
	id, err := pathUUID(c, "id", "lesson")
	if err != nil {
		return err
	}
	l, err := h.svc.Catalog.GetLesson(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toLessonResponseAdmin(*l))
}

func (h *handlers) updateLesson(c echo.Context) error {
	id, err := pathUUID(c, "id", "lesson")
	if err != nil {
		return err
	}
	var req lessonUpdateRequest
	if err := h.bind(c, &req); err != nil {
		return err
	}
	l, err := h.svc.Catalog.UpdateLesson(c.Request().Context(), id, catalog.LessonPatch{
		Title: req.Title, Body: req.Body, MediaURL: req.MediaURL, DurationSeconds: req.DurationSeconds,
		FreePreview: req.FreePreview, UnlockOffsetDays: req.UnlockOffsetDays, Published: req.Published,
		ReflectionPrompts: req.ReflectionPrompts,
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toLessonResponseAdmin(*l))
}

func (h *handlers) deleteLesson(c echo.Context) error {
	id, err := pathUUID(c, "id", "lesson")
	if err != nil {
		return err
	}
	if err := h.svc.Catalog.DeleteLesson(c.Request().Context(), id); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

type participantResponseAdmin struct {
	ID        uuid.UUID `json:"id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	Timezone  string    `json:"timezone"`
	CreatedAt time.Time `json:"created_at"`
}

func toParticipantResponseAdmin(p people.Participant) participantResponseAdmin {
	return participantResponseAdmin{ID: p.ID, Email: p.Email, Name: p.Name, Timezone: p.Timezone, CreatedAt: p.CreatedAt.UTC()}
}

type grantResponseAdmin struct {
	ID           uuid.UUID  `json:"id"`
	ProgramID    uuid.UUID  `json:"program_id"`
	ProgramSlug  string     `json:"program_slug"`
	ProgramTitle string     `json:"program_title"`
	Source       string     `json:"source"`
	StartsAt     time.Time  `json:"starts_at"`
	RevokedAt    *time.Time `json:"revoked_at"`
	CreatedAt    time.Time  `json:"created_at"`
}

type consentResponseAdmin struct {
	ID          uuid.UUID  `json:"id"`
	Kind        string     `json:"kind"`
	TextVersion string     `json:"text_version"`
	Granted     bool       `json:"granted"`
	ProgramID   *uuid.UUID `json:"program_id"`
	IP          *string    `json:"ip"`
	UserAgent   *string    `json:"user_agent"`
	CreatedAt   time.Time  `json:"created_at"`
}

type lessonProgressResponse struct {
	ProgramID   uuid.UUID `json:"program_id"`
	LessonID    uuid.UUID `json:"lesson_id"`
	CompletedAt time.Time `json:"completed_at"`
}

type participantDetailResponse struct {
	participantResponseAdmin
	Grants   []grantResponseAdmin     `json:"grants"`
	Consents []consentResponseAdmin   `json:"consents"`
	Progress []lessonProgressResponse `json:"progress"`
}

func toParticipantDetailResponse(d *people.ParticipantDetail) participantDetailResponse {
	out := participantDetailResponse{
		participantResponseAdmin: toParticipantResponseAdmin(d.Participant),
		Grants:                   make([]grantResponseAdmin, 0, len(d.Grants)),
		Consents:                 make([]consentResponseAdmin, 0, len(d.Consents)),
		Progress:                 make([]lessonProgressResponse, 0, len(d.Progress)),
	}
	for _, g := range d.Grants {
		out.Grants = append(out.Grants, grantResponseAdmin{
			ID: g.ID, ProgramID: g.ProgramID, ProgramSlug: g.ProgramSlug, ProgramTitle: g.ProgramTitle,
			Source: string(g.Source), StartsAt: g.StartsAt.UTC(), RevokedAt: catalogUTC(g.RevokedAt), CreatedAt: g.CreatedAt.UTC(),
		})
	}
	for _, k := range d.Consents {
		out.Consents = append(out.Consents, consentResponseAdmin{
			ID: k.ID, Kind: string(k.Kind), TextVersion: k.TextVersion, Granted: k.Granted, ProgramID: k.ProgramID,
			IP: k.IP, UserAgent: k.UserAgent, CreatedAt: k.CreatedAt.UTC(),
		})
	}
	for _, p := range d.Progress {
		out.Progress = append(out.Progress, lessonProgressResponse{ProgramID: p.ProgramID, LessonID: p.LessonID, CompletedAt: p.CompletedAt.UTC()})
	}
	return out
}

func (h *handlers) listParticipants(c echo.Context) error {
	pp, err := pageParams(c)
	if err != nil {
		return err
	}
	page, err := h.svc.People.ListParticipants(c.Request().Context(), currentCoach(c), c.QueryParam("q"), pp)
	if err != nil {
		return err
	}
	return renderPage(c, page, toParticipantResponseAdmin)
}

func (h *handlers) getParticipant(c echo.Context) error {
	id, err := pathUUID(c, "id", "participant")
	if err != nil {
		return err
	}
	d, err := h.svc.People.GetParticipantDetail(c.Request().Context(), currentCoach(c), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toParticipantDetailResponse(d))
}

type accessEntryResponse struct {
	ID        uuid.UUID `json:"id"`
	CoachName string    `json:"coach_name"`
	What      string    `json:"what"`
	At        time.Time `json:"at"`
}

func toAccessEntryResponse(e people.AccessEntry) accessEntryResponse {
	return accessEntryResponse{ID: e.ID, CoachName: e.CoachName, What: string(e.What), At: e.CreatedAt.UTC()}
}

// listParticipantAccessLog is one participant's access log, for an admin.
func (h *handlers) listParticipantAccessLog(c echo.Context) error {
	id, err := pathUUID(c, "id", "participant")
	if err != nil {
		return err
	}
	pp, err := pageParams(c)
	if err != nil {
		return err
	}
	page, err := h.svc.People.ListParticipantAccessLog(c.Request().Context(), currentCoach(c), id, pp)
	if err != nil {
		return err
	}
	return renderPage(c, page, toAccessEntryResponse)
}

// listPortalAccessLog is her own access log: which coach read what, when.
func (h *handlers) listPortalAccessLog(c echo.Context) error {
	pp, err := pageParams(c)
	if err != nil {
		return err
	}
	page, err := h.svc.People.ListAccessLog(c.Request().Context(), currentParticipant(c), pp)
	if err != nil {
		return err
	}
	return renderPage(c, page, toAccessEntryResponse)
}

type publicProgramResponse struct {
	ID              uuid.UUID  `json:"id"`
	Slug            string     `json:"slug"`
	Title           string     `json:"title"`
	Summary         string     `json:"summary"`
	PriceCents      int64      `json:"price_cents"`
	Currency        string     `json:"currency"`
	FreeAccessUntil *time.Time `json:"free_access_until"`
	FreeAccessOpen  bool       `json:"free_access_open"`
}

type lessonOutlineResponse struct {
	ID               uuid.UUID `json:"id"`
	Position         int       `json:"position"`
	Title            string    `json:"title"`
	FreePreview      bool      `json:"free_preview"`
	UnlockOffsetDays int       `json:"unlock_offset_days"`
	DurationSeconds  *int      `json:"duration_seconds"`
}

// publicProgramDetailResponse: description is the Markdown source; the
// catalogue page renders it, so this hot read does not.
type publicProgramDetailResponse struct {
	ID              uuid.UUID               `json:"id"`
	Slug            string                  `json:"slug"`
	Title           string                  `json:"title"`
	Summary         string                  `json:"summary"`
	Description     string                  `json:"description"`
	PriceCents      int64                   `json:"price_cents"`
	Currency        string                  `json:"currency"`
	FreeAccessUntil *time.Time              `json:"free_access_until"`
	FreeAccessOpen  bool                    `json:"free_access_open"`
	Lessons         []lessonOutlineResponse `json:"lessons"`
	CrisisResources *crisisResponse         `json:"crisis_resources"`
}

func (h *handlers) listPublicPrograms(c echo.Context) error {
	pp, err := pageParams(c)
	if err != nil {
		return err
	}
	list, err := h.svc.Catalog.ListPublishedPrograms(c.Request().Context(), pp)
	if err != nil {
		return err
	}
	if list.Stale {
		setStaleAge(c, list.Age)
	}
	return renderPage(c, list.Page, func(p catalog.ListedProgram) publicProgramResponse {
		return publicProgramResponse{
			ID: p.ID, Slug: p.Slug, Title: p.Title, Summary: p.Summary, PriceCents: p.PriceCents, Currency: p.Currency,
			FreeAccessUntil: catalogUTC(p.FreeAccessUntil), FreeAccessOpen: p.FreeAccessOpen,
		}
	})
}

// setStaleAge marks the last good answer served while the database is away
// (RFC 9111 Age, in seconds): better an old page than none for a
// campaign's crowd.
func setStaleAge(c echo.Context, age time.Duration) {
	c.Response().Header().Set("Age", strconv.Itoa(int(age/time.Second)))
}

func (h *handlers) getPublicProgram(c echo.Context) error {
	pp, err := h.svc.Catalog.GetPublishedProgram(c.Request().Context(), c.Param("slug"))
	if err != nil {
		return err
	}
	if pp.Stale {
		setStaleAge(c, pp.Age)
	}
	p := pp.Program
	out := publicProgramDetailResponse{
		ID: p.ID, Slug: p.Slug, Title: p.Title, Summary: p.Summary, Description: p.Description,
		PriceCents: p.PriceCents, Currency: p.Currency, FreeAccessUntil: catalogUTC(p.FreeAccessUntil),
		FreeAccessOpen: pp.FreeAccessOpen, Lessons: make([]lessonOutlineResponse, 0, len(pp.Lessons)),
		CrisisResources: toCrisisResponse(pp.Crisis),
	}
	for _, l := range pp.Lessons {
		out.Lessons = append(out.Lessons, lessonOutlineResponse{
			ID: l.ID, Position: l.Position, Title: l.Title, FreePreview: l.FreePreview,
			UnlockOffsetDays: l.UnlockOffsetDays, DurationSeconds: l.DurationSeconds,
		})
	}
	return c.JSON(http.StatusOK, out)
}

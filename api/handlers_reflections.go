package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/journal"
)

// Her private reflections. Every answer that carries her text says
// Cache-Control: no-store: a shared computer's browser cache, or a proxy,
// must not keep her words.

type reflectionRequest struct {
	// Text is required, and may be "" (which deletes the reflection).
	Text *string `json:"text" validate:"required"`
}

type reflectionShareResponse struct {
	Version  int64     `json:"version"`
	SharedAt time.Time `json:"shared_at"`
	// Current is false once she has edited the text after sharing: the
	// coach still reads the version she shared.
	Current bool `json:"current"`
}

type reflectionResponse struct {
	LessonID  uuidValue                `json:"lesson_id"`
	Text      string                   `json:"text"`
	Version   int64                    `json:"version"`
	CreatedAt time.Time                `json:"created_at"`
	UpdatedAt time.Time                `json:"updated_at"`
	Shared    *reflectionShareResponse `json:"shared"`
}

type sharedReflectionResponse struct {
	LessonID    uuidValue `json:"lesson_id"`
	LessonTitle string    `json:"lesson_title"`
	ProgramID   uuidValue `json:"program_id"`
	Text        string    `json:"text"`
	Version     int64     `json:"version"`
	SharedAt    time.Time `json:"shared_at"`
}

func toSharedReflectionResponse(r journal.SharedReflection) sharedReflectionResponse {
	return sharedReflectionResponse{LessonID: r.LessonID, LessonTitle: r.LessonTitle, ProgramID: r.ProgramID,
		Text: r.Text, Version: r.Version, SharedAt: r.SharedAt.UTC()}
}

// renderReflection answers her reflection with its ETag.
func renderReflection(c echo.Context, r *journal.Reflection) error {
	out := reflectionResponse{LessonID: r.LessonID, Text: r.Text, Version: r.Version,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
	if r.Shared != nil {
		out.Shared = &reflectionShareResponse{Version: r.Shared.Version, SharedAt: r.Shared.SharedAt.UTC(), Current: r.Shared.Version == r.Version}
	}
	noStore(c)
	c.Response().Header().Set("ETag", `"`+r.Revision()+`"`)
	return c.JSON(http.StatusOK, out)
}

func noStore(c echo.Context) { c.Response().Header().Set("Cache-Control", "no-store") }

var errBadIfMatch = func() *models.Error {
	e := models.E(models.KindBadRequest, "invalid_if_match", `If-Match must be "*" or a list of quoted ETags, as sent in the ETag header.`)
	e.Fields = []models.FieldError{{Field: "If-Match", Message: `must be "*" or quoted ETags`}}
	return e
}()

// ifMatch reads If-Match (RFC 9110 13.1.1). A weak tag is well formed but
// never matches: If-Match compares strongly.
func ifMatch(c echo.Context) (journal.Precondition, error) {
	values := c.Request().Header.Values("If-Match")
	if len(values) == 0 {
		return journal.Precondition{}, nil
	}
	pre := journal.Precondition{Given: true}
	tags := 0
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			part = strings.TrimSpace(part)
			weak := strings.HasPrefix(part, "W/")
			tag := strings.TrimPrefix(part, "W/")
			switch {
			case part == "":
				continue
			case part == "*":
				pre.Any = true
			case len(tag) >= 2 && tag[0] == '"' && tag[len(tag)-1] == '"' && !strings.ContainsAny(tag[1:len(tag)-1], "\" \t"):
				if !weak {
					pre.Revisions = append(pre.Revisions, tag[1:len(tag)-1])
				}
			default:
				return journal.Precondition{}, errBadIfMatch
			}
			tags++
		}
	}
	if tags == 0 {
		return journal.Precondition{}, errBadIfMatch
	}
	return pre, nil
}

// lessonAndIfMatch reads the lesson id and If-Match of a write.
func lessonAndIfMatch(c echo.Context) (uuidValue, journal.Precondition, error) {
	id, err := pathUUID(c, "id", "lesson")
	if err != nil {
		return id, journal.Precondition{}, err
	}
	pre, err := ifMatch(c)
	return id, pre, err
}

func (h *handlers) getReflection(c echo.Context) error {
	id, err := pathUUID(c, "id", "lesson")
	if err != nil {
		return err
	}
	r, err := h.svc.Journal.GetReflection(c.Request().Context(), currentParticipant(c), id)
	if err != nil {
		return err
	}
	return renderReflection(c, r)
}

// saveReflection is the autosave: 200 with the reflection and its ETag, or
// 204 when empty text left none.
func (h *handlers) saveReflection(c echo.Context) error {
	id, pre, err := lessonAndIfMatch(c)
	if err != nil {
		return err
	}
	var req reflectionRequest
	if err := h.bind(c, &req); err != nil {
		return err
	}
	r, err := h.svc.Journal.SaveReflection(c.Request().Context(), currentParticipant(c), id, *req.Text, pre)
	if err != nil {
		return err
	}
	if r == nil {
		return c.NoContent(http.StatusNoContent)
	}
	return renderReflection(c, r)
}

func (h *handlers) shareReflection(c echo.Context) error {
	id, pre, err := lessonAndIfMatch(c)
	if err != nil {
		return err
	}
	r, err := h.svc.Journal.ShareReflection(c.Request().Context(), currentParticipant(c), id, pre)
	if err != nil {
		return err
	}
	return renderReflection(c, r)
}

func (h *handlers) unshareReflection(c echo.Context) error {
	id, err := pathUUID(c, "id", "lesson")
	if err != nil {
		return err
	}
	if err := h.svc.Journal.UnshareReflection(c.Request().Context(), currentParticipant(c), id); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// listSharedReflections is every snapshot she shared that this coach may
// read; a participant outside the coach's scope is not found.
func (h *handlers) listSharedReflections(c echo.Context) error {
	id, err := pathUUID(c, "id", "participant")
	if err != nil {
		return err
	}
	rs, err := h.svc.Journal.SharedReflections(c.Request().Context(), currentCoach(c), id)
	if err != nil {
		return err
	}
	noStore(c)
	return renderPage(c, models.Page[journal.SharedReflection]{Items: rs}, toSharedReflectionResponse)
}

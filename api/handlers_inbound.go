package api

import (
	"html/template"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/drip"
)

var errEmailWebhooksUnavailable = models.E(models.KindUnavailable, "webhooks_unavailable", "Email webhooks are not configured.")

// --- One-click unsubscribe (RFC 8058) -------------------------------------

type unsubscribeResponse struct {
	Email          string     `json:"email"`
	Unsubscribed   bool       `json:"unsubscribed"`
	UnsubscribedAt *time.Time `json:"unsubscribed_at"`
}

// getUnsubscribe shows what the link does and does nothing: mail clients,
// virus scanners and link previews fetch URLs, and none of them may
// unsubscribe her. A browser gets a page whose button POSTs.
func (h *handlers) getUnsubscribe(c echo.Context) error {
	st, err := h.svc.Drip.UnsubscribeInfo(c.Request().Context(), c.Param("token"))
	if err != nil {
		return err
	}
	return renderUnsubscribe(c, st)
}

// postUnsubscribe is the one-click unsubscribe. Mail clients POST
// "List-Unsubscribe=One-Click" as a form (urlencoded or multipart), the page
// above posts the same, and the portal may post JSON or nothing: the body
// carries no choice, so it is not parsed, and any POST to a valid link
// unsubscribes. Mail clients send no Origin and no credentials, so CORS and
// auth never stand in their way.
func (h *handlers) postUnsubscribe(c echo.Context) error {
	if _, err := readRawBody(c); err != nil {
		return err
	}
	st, err := h.svc.Drip.Unsubscribe(c.Request().Context(), c.Param("token"), clientInfo(c))
	if err != nil {
		return err
	}
	return renderUnsubscribe(c, st)
}

func renderUnsubscribe(c echo.Context, st *drip.UnsubscribeStatus) error {
	resp := unsubscribeResponse{Email: st.MaskedEmail, Unsubscribed: st.UnsubscribedAt != nil, UnsubscribedAt: st.UnsubscribedAt}
	return renderLinkPage(c, resp, unsubscribePage)
}

// renderLinkPage answers a link from her email (unsubscribe, opt-in
// confirmation): JSON, or page rendered with resp for a browser.
func renderLinkPage(c echo.Context, resp any, page *template.Template) error {
	hdr := c.Response().Header()
	// The answer changes once she acts, and the URL holds her token.
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Referrer-Policy", "no-referrer")
	if !prefersHTML(c.Request().Header.Get(echo.HeaderAccept)) {
		return c.JSON(http.StatusOK, resp)
	}
	var b strings.Builder
	if err := page.Execute(&b, resp); err != nil {
		return err
	}
	return c.HTML(http.StatusOK, b.String())
}

// prefersHTML reports whether the Accept header ranks text/html above JSON
// (a browser); anything else, including no header, gets JSON.
func prefersHTML(accept string) bool {
	qHTML, qJSON := -1.0, -1.0
	for part := range strings.SplitSeq(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if s, ok := params["q"]; ok {
			if v, err := strconv.ParseFloat(s, 64); err == nil {
				q = v
			}
		}
		switch mt {
		case "text/html", "application/xhtml+xml":
			qHTML = max(qHTML, q)
		case "application/json", "application/problem+json":
			qJSON = max(qJSON, q)
		}
	}
	return qHTML > 0 && qHTML > qJSON
}

// unsubscribePage posts back to its own URL (no action attribute), which
// stays right behind any proxy prefix.
var unsubscribePage = template.Must(template.New("unsubscribe").Funcs(pageFuncs).Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{if .Unsubscribed}}You are unsubscribed{{else}}Unsubscribe{{end}}</title>
{{pageStyle}}
</head>
<body>
<main>
{{if .Unsubscribed}}
<h1>You are unsubscribed</h1>
<p>We send no more marketing email to <strong>{{.Email}}</strong>.</p>
{{else}}
<h1>Unsubscribe from marketing email?</h1>
<p>Newsletters, workshop invitations and course sequences to <strong>{{.Email}}</strong> stop at once.</p>
<form method="post">
<input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Unsubscribe</button>
</form>
{{end}}
<p class="note">Emails you need for what you signed up for keep coming: sign-in links, receipts and reminders of live sessions you booked.</p>
</main>
</body>
</html>
`))

// --- Resend webhooks ------------------------------------------------------

// resendWebhook takes a Resend event. The body is read raw: the signature
// covers the exact bytes. A bad or stale signature stores nothing (400); a
// replayed svix-id is a 200 that changes nothing; a signed event the
// database cannot hold as sent is stored safely or recorded as rejected
// (200, see drip.ApplyEmailEvent); a failure of ours is a 5xx, so Resend
// delivers the event again.
func (h *handlers) resendWebhook(c echo.Context) error {
	if h.emailHook == nil {
		return errEmailWebhooksUnavailable
	}
	body, err := readRawBody(c)
	if err != nil {
		return err
	}
	ev, err := h.emailHook.ParseEmailEvent(body, c.Request().Header)
	if err != nil {
		// Warn, not error: anyone can post here.
		h.log.WarnContext(c.Request().Context(), "resend webhook refused", "reason", err.Error())
		return errInvalidSignature
	}
	if err := h.svc.Drip.ApplyEmailEvent(c.Request().Context(), ev); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, webhookResponse{Received: true})
}

// --- The delivery log and the suppression list ------------------------------

type deliveryEventResponse struct {
	Type       string    `json:"type"`
	OccurredAt time.Time `json:"occurred_at"`
}

type deliveryResponse struct {
	ID            uuidValue               `json:"id"`
	ParticipantID uuidValue               `json:"participant_id"`
	Email         string                  `json:"email"`
	SequenceID    *uuidValue              `json:"sequence_id"`
	StepID        *uuidValue              `json:"step_id"`
	Status        string                  `json:"status"`
	SendAt        time.Time               `json:"send_at"`
	SentAt        *time.Time              `json:"sent_at"`
	Attempts      int                     `json:"attempts"`
	LastError     *string                 `json:"last_error"`
	ResendID      *string                 `json:"resend_id"`
	Events        []deliveryEventResponse `json:"events"`
}

func toDeliveryResponse(d drip.DeliveryLogEntry) deliveryResponse {
	events := make([]deliveryEventResponse, 0, len(d.Events))
	for _, e := range d.Events {
		events = append(events, deliveryEventResponse{Type: e.Type, OccurredAt: e.OccurredAt.UTC()})
	}
	return deliveryResponse{
		ID: d.ID, ParticipantID: d.ParticipantID, Email: d.Email, SequenceID: d.SequenceID, StepID: d.StepID,
		Status: string(d.Status), SendAt: d.SendAt.UTC(), SentAt: utcPtr(d.SentAt), Attempts: d.Attempts,
		LastError: d.LastError, ResendID: d.ResendID, Events: events,
	}
}

// queryUUID reads an optional id filter; a malformed one is 400.
func queryUUID(c echo.Context, name string) (*uuidValue, error) {
	s := c.QueryParam(name)
	if s == "" {
		return nil, nil
	}
	id, err := parseUUID(s)
	if err != nil {
		e := models.E(models.KindBadRequest, "invalid_query", "%s must be an id.", name)
		e.Fields = []models.FieldError{{Field: name, Message: "must be a UUID"}}
		return nil, e
	}
	return &id, nil
}

func (h *handlers) listEmailDeliveries(c echo.Context) error {
	pp, err := pageParams(c)
	if err != nil {
		return err
	}
	f := drip.DeliveryFilter{Status: drip.DeliveryStatus(c.QueryParam("status"))}
	if f.ParticipantID, err = queryUUID(c, "participant_id"); err != nil {
		return err
	}
	if f.SequenceID, err = queryUUID(c, "sequence_id"); err != nil {
		return err
	}
	page, err := h.svc.Drip.ListDeliveries(c.Request().Context(), currentCoach(c), f, pp)
	if err != nil {
		return err
	}
	return renderPage(c, page, toDeliveryResponse)
}

type suppressionResponse struct {
	Email     string    `json:"email"`
	Reason    string    `json:"reason"`
	Detail    *string   `json:"detail"`
	CreatedAt time.Time `json:"created_at"`
}

func toSuppressionResponse(s drip.EmailSuppression) suppressionResponse {
	return suppressionResponse{Email: s.Email, Reason: string(s.Reason), Detail: s.Detail, CreatedAt: s.CreatedAt.UTC()}
}

func (h *handlers) listSuppressions(c echo.Context) error {
	pp, err := pageParams(c)
	if err != nil {
		return err
	}
	page, err := h.svc.Drip.ListSuppressions(c.Request().Context(), currentCoach(c), pp)
	if err != nil {
		return err
	}
	return renderPage(c, page, toSuppressionResponse)
}

func (h *handlers) deleteSuppression(c echo.Context) error {
	// An address in a path may arrive percent-encoded ("%40" for "@").
	email, err := url.PathUnescape(c.Param("email"))
	if err != nil {
		return models.NotFound("suppression")
	}
	if err := h.svc.Drip.DeleteSuppression(c.Request().Context(), currentCoach(c), email); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

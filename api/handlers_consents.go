package api

import (
	"html/template"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/grace-coaching/grace/models/people"
)

// --- Marketing opt-in confirmation (double opt-in) -------------------------

type optInResponse struct {
	Email       string     `json:"email"`
	Confirmed   bool       `json:"confirmed"`
	ConfirmedAt *time.Time `json:"confirmed_at"`
	ExpiresAt   time.Time  `json:"expires_at"`
}

// getConsentConfirm shows what the confirmation link does and does
// nothing: mail scanners and link previews fetch links, and none of them
// may subscribe her. A browser gets a page whose button POSTs.
func (h *handlers) getConsentConfirm(c echo.Context) error {
	st, err := h.svc.People.MarketingOptInInfo(c.Request().Context(), c.Param("token"))
	if err != nil {
		return err
	}
	return renderOptIn(c, st)
}

// postConsentConfirm is her yes. The body carries no choice and is not
// parsed; this request's address and user agent are the consent's evidence.
func (h *handlers) postConsentConfirm(c echo.Context) error {
	if _, err := readRawBody(c); err != nil {
		return err
	}
	st, err := h.svc.People.ConfirmMarketingOptIn(c.Request().Context(), c.Param("token"), clientInfo(c))
	if err != nil {
		return err
	}
	return renderOptIn(c, st)
}

func renderOptIn(c echo.Context, st *people.OptInStatus) error {
	resp := optInResponse{Email: st.MaskedEmail, Confirmed: st.ConfirmedAt != nil, ConfirmedAt: st.ConfirmedAt, ExpiresAt: st.ExpiresAt}
	return renderLinkPage(c, resp, optInPage)
}

// optInPage posts back to its own URL, like the unsubscribe page.
var optInPage = template.Must(template.New("optin").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{if .Confirmed}}You are subscribed{{else}}Confirm your subscription{{end}}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 34rem; margin: 4rem auto; padding: 0 1rem; line-height: 1.5; color: #222; }
button { font: inherit; padding: .6rem 1.4rem; border: 0; border-radius: .4rem; background: #5b3a6e; color: #fff; cursor: pointer; }
.note { color: #555; font-size: .95rem; }
</style>
</head>
<body>
{{if .Confirmed}}
<h1>You are subscribed</h1>
<p>Newsletters, workshop invitations and course emails will reach <strong>{{.Email}}</strong>. Every one of them has a link to stop them at once.</p>
{{else}}
<h1>Receive emails from us?</h1>
<p>Someone asked for newsletters, workshop invitations and course emails to be sent to <strong>{{.Email}}</strong>. If that was you, confirm below.</p>
<form method="post">
<button type="submit">Yes, send me emails</button>
</form>
<p class="note">If it was not you, close this page: nothing is sent unless you confirm.</p>
{{end}}
</body>
</html>
`))

// --- Sign out everywhere ----------------------------------------------------

// revokeAllPortalSessions: POST /v1/portal/sessions/revoke-all
func (h *handlers) revokeAllPortalSessions(c echo.Context) error {
	if err := h.svc.People.RevokeAllParticipantSessions(c.Request().Context(), currentParticipant(c).ID); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// revokeAllCoachSessions: POST /v1/auth/sessions/revoke-all. This browser's
// device cookie is cleared too: the device is forgotten.
func (h *handlers) revokeAllCoachSessions(c echo.Context) error {
	if err := h.svc.People.RevokeAllCoachSessions(c.Request().Context(), currentCoach(c).ID); err != nil {
		return err
	}
	clearDeviceCookie(c)
	return c.NoContent(http.StatusNoContent)
}

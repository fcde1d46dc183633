package api

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/grace-coaching/grace/models/people"
)

type loginRequest struct {
	// No email format rule: a typo gets the same 401 as a wrong password.
	Email string `json:"email" validate:"required,max=254"`
	// Generous, but bounded: every password is fed to argon2.
	Password string `json:"password" validate:"required,max=1024"`
}

type loginResponse struct {
	Token     string        `json:"token"`
	ExpiresAt time.Time     `json:"expires_at"`
	Coach     coachResponse `json:"coach"`
}

type passwordResetRequest struct {
	Email string `json:"email" validate:"required,email,max=254"`
}

type passwordResetConfirmRequest struct {
	Token    string `json:"token" validate:"required"`
	Password string `json:"password" validate:"required"`
}

// login: POST /v1/auth/login
func (h *handlers) login(c echo.Context) error {
	var req loginRequest
	if err := h.bind(c, &req); err != nil {
		return err
	}
	device := ""
	if ck, err := c.Cookie(deviceCookie); err == nil {
		device = ck.Value
	}
	res, err := h.svc.People.LoginFromDevice(c.Request().Context(), req.Email, req.Password, device, clientInfo(c))
	if err != nil {
		return err
	}
	setDeviceCookie(c, res.Device)
	return c.JSON(http.StatusOK, loginResponse{Token: res.Token, ExpiresAt: res.Session.ExpiresAt.UTC(), Coach: toCoachResponse(*res.Coach)})
}

// deviceCookie carries the signed id of a device a coach signed in from
// (people.LoginResult.Device): a login from it still works while a flood
// has the limits exhausted. Only the login route reads it.
const deviceCookie = "grace_device"

func setDeviceCookie(c echo.Context, value string) {
	c.SetCookie(&http.Cookie{
		Name: deviceCookie, Value: value, Path: "/",
		MaxAge:   int(people.DeviceTTL / time.Second),
		HttpOnly: true, Secure: c.Scheme() == "https", SameSite: http.SameSiteStrictMode,
	})
}

func clearDeviceCookie(c echo.Context) {
	c.SetCookie(&http.Cookie{
		Name: deviceCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: c.Scheme() == "https", SameSite: http.SameSiteStrictMode,
	})
}

// logout: POST /v1/auth/logout
func (h *handlers) logout(c echo.Context) error {
	if err := h.svc.People.Logout(c.Request().Context(), currentCoachSession(c).ID); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// me: GET /v1/auth/me
func (h *handlers) me(c echo.Context) error {
	return c.JSON(http.StatusOK, toCoachResponse(*currentCoach(c)))
}

// requestPasswordReset: POST /v1/auth/password-resets
func (h *handlers) requestPasswordReset(c echo.Context) error {
	var req passwordResetRequest
	if err := h.bind(c, &req); err != nil {
		return err
	}
	if err := h.svc.People.RequestPasswordReset(c.Request().Context(), req.Email, clientInfo(c)); err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, accepted)
}

// confirmPasswordReset: POST /v1/auth/password-resets/confirm
func (h *handlers) confirmPasswordReset(c echo.Context) error {
	var req passwordResetConfirmRequest
	if err := h.bind(c, &req); err != nil {
		return err
	}
	if err := h.svc.People.ConfirmPasswordToken(c.Request().Context(), req.Token, req.Password); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

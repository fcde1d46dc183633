package api

import (
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/people"
)

const (
	ctxCoach              = "coach"
	ctxCoachSession       = "coach_session"
	ctxParticipant        = "participant"
	ctxParticipantSession = "participant_session"
)

func ipExtractor(trusted []*net.IPNet) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, n := range trusted {
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// requestContext puts the request id into the request's context, so every log
// line of the request, domain ones included, carries it.
func requestContext(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Response().Header().Get(echo.HeaderXRequestID)
		req := c.Request()
		c.SetRequest(req.WithContext(models.WithRequestID(req.Context(), id)))
		return next(c)
	}
}

// accessLog writes one structured line per request.
func accessLog(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			req, res := c.Request(), c.Response()
			level := slog.LevelInfo
			switch {
			case res.Status == http.StatusServiceUnavailable:
				// Already reported once per outage by the error handler.
				level = slog.LevelWarn
			case res.Status >= 500 && res.Status != statusClientClosed:
				level = slog.LevelError
			}
			log.Log(req.Context(), level, "http request",
				"method", req.Method, "route", c.Path(), "status", res.Status,
				"duration_ms", time.Since(start).Milliseconds(), "bytes", res.Size, "ip", c.RealIP())
			return nil
		}
	}
}

func bearerToken(c echo.Context) string {
	auth := c.Request().Header.Get(echo.HeaderAuthorization)
	if len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ") {
		return strings.TrimSpace(auth[7:])
	}
	return ""
}

var errNoToken = models.E(models.KindUnauthorized, "unauthorized", "Sign in first: send Authorization: Bearer <token>.")

// requireCoach admits a request with a live coach token.
func (h *handlers) requireCoach(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		token := bearerToken(c)
		if token == "" {
			return errNoToken
		}
		coach, session, err := h.svc.People.AuthenticateCoach(c.Request().Context(), token)
		if err != nil {
			return err
		}
		c.Set(ctxCoach, coach)
		c.Set(ctxCoachSession, session)
		return next(c)
	}
}

// requireAdmin runs after requireCoach: managing coaches is for admins only.
func (h *handlers) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if currentCoach(c).Role != people.RoleAdmin {
			return models.E(models.KindForbidden, "forbidden", "Only an admin may do this.")
		}
		return next(c)
	}
}

// requireParticipant admits a request with a live portal session whose
// owner accepted the current disclaimer (consent_required otherwise).
func (h *handlers) requireParticipant(next echo.HandlerFunc) echo.HandlerFunc {
	return h.requireParticipantSession(func(c echo.Context) error {
		if due := currentParticipantSession(c).ConsentDue; due != nil {
			return due
		}
		return next(c)
	})
}

// requireParticipantSession admits a request with a live portal session
// whatever she accepted: for accepting the new text, signing out, and
// her data rights, which never wait on her agreeing to anything.
func (h *handlers) requireParticipantSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		token := bearerToken(c)
		if token == "" {
			return errNoToken
		}
		p, session, err := h.svc.People.AuthenticateParticipant(c.Request().Context(), token)
		if err != nil {
			return err
		}
		c.Set(ctxParticipant, p)
		c.Set(ctxParticipantSession, session)
		return next(c)
	}
}

func currentCoach(c echo.Context) *people.Coach { return c.Get(ctxCoach).(*people.Coach) }

func currentCoachSession(c echo.Context) *people.CoachSession {
	return c.Get(ctxCoachSession).(*people.CoachSession)
}

func currentParticipant(c echo.Context) *people.Participant {
	return c.Get(ctxParticipant).(*people.Participant)
}

func currentParticipantSession(c echo.Context) *people.ParticipantSession {
	return c.Get(ctxParticipantSession).(*people.ParticipantSession)
}

// clientInfo is the evidence recorded with a consent: where and with what.
func clientInfo(c echo.Context) models.ClientInfo {
	ua := c.Request().UserAgent()
	if len(ua) > 1000 {
		ua = ua[:1000]
	}
	return models.ClientInfo{IP: c.RealIP(), UserAgent: ua}
}

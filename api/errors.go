package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/enroll"
)

// problem is an RFC 9457 problem document, with our stable machine code.
type problem struct {
	Type              string              `json:"type"`
	Title             string              `json:"title"`
	Status            int                 `json:"status"`
	Detail            string              `json:"detail"`
	Code              string              `json:"code"`
	RequestID         string              `json:"request_id,omitempty"`
	Errors            []models.FieldError `json:"errors,omitempty"`
	UnlockAt          *time.Time          `json:"unlock_at,omitempty"`
	RetryAfterSeconds int                 `json:"retry_after_seconds,omitempty"`
	WaitlistURL       string              `json:"waitlist_url,omitempty"`
	ConsentKind       string              `json:"consent_kind,omitempty"`
	ConsentVersion    int                 `json:"consent_version,omitempty"`
}

// statusOf is the one place where domain error kinds become HTTP statuses.
var statusOf = map[models.Kind]int{
	models.KindBadRequest:      http.StatusBadRequest,
	models.KindInvalid:         http.StatusUnprocessableEntity,
	models.KindUnauthorized:    http.StatusUnauthorized,
	models.KindForbidden:       http.StatusForbidden,
	models.KindNotFound:        http.StatusNotFound,
	models.KindConflict:        http.StatusConflict,
	models.KindGone:            http.StatusGone,
	models.KindStale:           http.StatusPreconditionFailed,
	models.KindVersionRequired: http.StatusPreconditionRequired,
	models.KindRateLimited:     http.StatusTooManyRequests,
	models.KindUnavailable:     http.StatusServiceUnavailable,
	models.KindUpstream:        http.StatusBadGateway,
}

// echoCodes names the errors Echo itself raises (routing, body limit).
var echoCodes = map[int]string{
	http.StatusNotFound:              "route_not_found",
	http.StatusMethodNotAllowed:      "method_not_allowed",
	http.StatusRequestEntityTooLarge: "body_too_large",
	http.StatusUnsupportedMediaType:  "unsupported_media_type",
	http.StatusBadRequest:            "bad_request",
	http.StatusUnauthorized:          "unauthorized",
	http.StatusForbidden:             "forbidden",
	http.StatusTooManyRequests:       "rate_limited",
	http.StatusServiceUnavailable:    "unavailable",
}

// linkURL is the URL of a link a domain error names, built from the id of
// its target: the one place where link names meet routes (see routes.go).
func linkURL(name, target string) string {
	switch name {
	case enroll.LinkWaitlist:
		return "/v1/cohorts/" + target + "/waitlist"
	}
	return ""
}

// errorHandler renders every error as problem+json. Domain errors keep their
// code; anything unexpected is logged once, with the request id, and answered
// as a bare 500 that reveals nothing.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	outage := &outageLog{log: log, every: 10 * time.Second}
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		req := c.Request()
		// A client that went away is not a server error: nobody reads the
		// answer, and the access log records it as 499 at info.
		if errors.Is(err, context.Canceled) && req.Context().Err() != nil {
			c.Response().WriteHeader(statusClientClosed)
			return
		}
		if _, ok := models.AsError(err); !ok && models.IsUnavailable(err) {
			outage.hit(req.Context(), err)
			err = models.ErrUnavailable
		}
		p := problem{RequestID: c.Response().Header().Get(echo.HeaderXRequestID)}
		var he *echo.HTTPError
		if de, ok := models.AsError(err); ok {
			if de.Code == models.ErrUnavailable.Code && de.Err != nil {
				outage.hit(req.Context(), de.Err)
			}
			p.Status = statusOf[de.Kind]
			if p.Status == 0 {
				p.Status = http.StatusInternalServerError
			}
			p.Code, p.Detail, p.Errors, p.UnlockAt = de.Code, de.Message, de.Fields, de.UnlockAt
			p.ConsentKind, p.ConsentVersion = de.ConsentKind, de.ConsentVersion
			if id, ok := de.Links[enroll.LinkWaitlist]; ok {
				p.WaitlistURL = linkURL(enroll.LinkWaitlist, id)
			}
			if de.RetryAfter > 0 {
				secs := int((de.RetryAfter + time.Second - 1) / time.Second)
				p.RetryAfterSeconds = secs
				c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
			}
			if p.Status >= 500 && de.Code != models.ErrUnavailable.Code {
				log.ErrorContext(req.Context(), "request failed", "method", req.Method, "path", c.Path(), "code", de.Code, "err", err)
			}
		} else if errors.As(err, &he) && he.Code < 500 {
			p.Status = he.Code
			p.Code = echoCodes[he.Code]
			if p.Code == "" {
				p.Code = "http_" + strconv.Itoa(he.Code)
			}
			p.Detail = fmt.Sprint(he.Message)
		} else {
			log.ErrorContext(req.Context(), "unexpected error", "method", req.Method, "path", c.Path(), "err", err)
			p.Status, p.Code = http.StatusInternalServerError, "internal_error"
			p.Detail = "Something went wrong on our side. Please try again; if it keeps happening, contact support with the request id."
		}
		p.Title = http.StatusText(p.Status)
		p.Type = "about:blank"
		if p.Status < 500 || p.Code != "internal_error" {
			p.Type = "https://grace.dev/problems/" + strings.ReplaceAll(p.Code, "_", "-")
		}
		if req.Method == http.MethodHead {
			_ = c.NoContent(p.Status)
			return
		}
		c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
		c.Response().WriteHeader(p.Status)
		_ = jsonEncode(c.Response(), p)
	}
}

// statusClientClosed is nginx's 499: the client closed the connection
// before the answer.
const statusClientClosed = 499

// outageLog reports a database outage once per window with a count, not
// once per request: during an outage every request fails the same way, and
// a line each would bury the log (tens of thousands of lines in seconds).
type outageLog struct {
	log   *slog.Logger
	every time.Duration

	mu       sync.Mutex
	last     time.Time
	answered int
}

func (o *outageLog) hit(ctx context.Context, err error) {
	o.mu.Lock()
	now := time.Now()
	o.answered++
	if !o.last.IsZero() && now.Sub(o.last) < o.every {
		o.mu.Unlock()
		return
	}
	n := o.answered
	o.last, o.answered = now, 0
	o.mu.Unlock()
	o.log.ErrorContext(ctx, "database unavailable: answering 503", "requests", n, "window_s", int(o.every/time.Second), "err", err)
}

package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/grace-coaching/grace/models"
)

const (
	headerIdempotencyKey      = "Idempotency-Key"
	headerIdempotentReplayed  = "Idempotent-Replayed"
	maxIdempotentResponseSize = 1 << 20
)

// idempotent makes a POST safe to retry: a request carrying an
// Idempotency-Key runs once, and every repeat with the same key and the same
// request gets the first answer, byte for byte, marked Idempotent-Replayed.
// The same key with another request is 422 idempotency_key_reused; a repeat
// while the first still runs is 409 idempotency_in_progress. Answers that a
// retry could change are not kept: 5xx (our failure), 429 (wait and retry).
// Without the header the request simply runs.
func (h *handlers) idempotent(scope string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			keys := req.Header.Values(headerIdempotencyKey)
			if len(keys) == 0 {
				return next(c)
			}
			if len(keys) > 1 {
				return models.E(models.KindBadRequest, "invalid_idempotency_key", "Send one Idempotency-Key header, not %d.", len(keys))
			}
			key := keys[0]
			if err := models.ValidIdempotencyKey(key); err != nil {
				return err
			}
			body, err := io.ReadAll(req.Body)
			if err != nil {
				return err // the body limit's 413, or a dropped connection
			}
			req.Body = io.NopCloser(bytes.NewReader(body))

			claim, stored, err := h.svc.Kernel.BeginIdempotent(req.Context(), scope, key, requestHash(req, body))
			if err != nil {
				return err
			}
			if stored != nil {
				c.Response().Header().Set(headerIdempotentReplayed, "true")
				return c.Blob(stored.StatusCode, replayContentType(stored.StatusCode), stored.Body)
			}
			return h.runClaimed(c, next, claim)
		}
	}
}

// runClaimed runs the request that holds the claim and settles the claim
// with its answer. The claim is settled even if the client went away (its
// retry must see the outcome) and even if the handler panics.
func (h *handlers) runClaimed(c echo.Context, next echo.HandlerFunc, claim *models.IdempotencyClaim) error {
	ctx := context.WithoutCancel(c.Request().Context())
	settled := false
	defer func() {
		if !settled {
			if err := h.svc.Kernel.AbandonIdempotent(ctx, claim); err != nil {
				h.log.ErrorContext(ctx, "idempotency: abandon after panic", "err", err)
			}
		}
	}()

	res := c.Response()
	capture := &capturingWriter{ResponseWriter: res.Writer}
	res.Writer = capture
	err := next(c)
	if err != nil {
		// Render the error here, not up the chain, so its answer is
		// captured and kept like any other.
		c.Error(err)
	}
	res.Writer = capture.ResponseWriter

	status := res.Status
	if !res.Committed {
		status = http.StatusOK
	}
	if status >= 500 || status == http.StatusTooManyRequests || capture.overflow {
		err = h.svc.Kernel.AbandonIdempotent(ctx, claim)
	} else {
		err = h.svc.Kernel.FinishIdempotent(ctx, claim, models.StoredResponse{StatusCode: status, Body: capture.buf.Bytes()})
	}
	settled = true
	if err != nil {
		// The answer is already sent; the worst case is that a retry runs
		// again (abandon failed: in flight until the claim times out).
		h.log.ErrorContext(ctx, "idempotency: settle claim", "status", status, "err", err)
	}
	return nil
}

// requestHash binds a key to one request: the same method, URL, caller
// and body. The caller is part of it so one client's key can never replay
// another's answer.
func requestHash(req *http.Request, body []byte) []byte {
	h := sha256.New()
	auth := sha256.Sum256([]byte(req.Header.Get(echo.HeaderAuthorization)))
	for _, part := range [][]byte{[]byte(req.Method), []byte(req.URL.RequestURI()), auth[:]} {
		h.Write(part)
		h.Write([]byte{0})
	}
	h.Write(body)
	return h.Sum(nil)
}

// replayContentType: every answer of this API is JSON, and errors are
// problem documents.
func replayContentType(status int) string {
	if status >= 400 {
		return "application/problem+json"
	}
	return echo.MIMEApplicationJSON
}

// capturingWriter copies what the handler writes, up to a bound.
type capturingWriter struct {
	http.ResponseWriter
	buf      bytes.Buffer
	overflow bool
}

func (w *capturingWriter) Write(b []byte) (int, error) {
	if !w.overflow {
		if w.buf.Len()+len(b) > maxIdempotentResponseSize {
			w.overflow = true
			w.buf.Reset()
		} else {
			w.buf.Write(b)
		}
	}
	return w.ResponseWriter.Write(b)
}

func (w *capturingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

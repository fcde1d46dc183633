package api

import "github.com/labstack/echo/v4"

// STUB: owned by the enrollments work; replace every function.
func (h *handlers) startCheckout(c echo.Context) error              { return errNotImplemented }
func (h *handlers) joinWaitlist(c echo.Context) error               { return errNotImplemented }
func (h *handlers) listCohortEnrollments(c echo.Context) error      { return errNotImplemented }
func (h *handlers) addComplimentaryEnrollment(c echo.Context) error { return errNotImplemented }
func (h *handlers) refundEnrollment(c echo.Context) error           { return errNotImplemented }
func (h *handlers) cancelEnrollment(c echo.Context) error           { return errNotImplemented }

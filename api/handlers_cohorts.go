package api

import "github.com/labstack/echo/v4"

// STUB: owned by the cohorts work; replace every function.
func (h *handlers) listCohorts(c echo.Context) error           { return errNotImplemented }
func (h *handlers) createCohort(c echo.Context) error          { return errNotImplemented }
func (h *handlers) getCohort(c echo.Context) error             { return errNotImplemented }
func (h *handlers) updateCohort(c echo.Context) error          { return errNotImplemented }
func (h *handlers) deleteCohort(c echo.Context) error          { return errNotImplemented }
func (h *handlers) cloneCohort(c echo.Context) error           { return errNotImplemented }
func (h *handlers) listLiveSessions(c echo.Context) error      { return errNotImplemented }
func (h *handlers) createLiveSession(c echo.Context) error     { return errNotImplemented }
func (h *handlers) updateLiveSession(c echo.Context) error     { return errNotImplemented }
func (h *handlers) deleteLiveSession(c echo.Context) error     { return errNotImplemented }
func (h *handlers) getPublicCohort(c echo.Context) error       { return errNotImplemented }
func (h *handlers) listPortalEnrollments(c echo.Context) error { return errNotImplemented }
func (h *handlers) rotateCalendarToken(c echo.Context) error   { return errNotImplemented }
func (h *handlers) calendarFeed(c echo.Context) error          { return errNotImplemented }

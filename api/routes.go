package api

import (
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// routes is the whole HTTP surface of Grace in one table. Middleware is
// listed where it applies, so who may call what is visible here.
func routes(e *echo.Echo, h *handlers, cfg Config) {
	// Every request: an id, a context carrying it, one log line, no panic
	// escaping as a dropped connection, CORS for the two browser clients
	// only (none at all when CORS_ORIGINS is unset), safe headers (HSTS over
	// https, a strict CSP on HTML pages; headers.go), a hard cap on body
	// size, and path and query text that PostgreSQL can store (JSON bodies
	// are checked as they are bound).
	e.Use(
		middleware.RequestID(),
		requestContext,
		accessLog(cfg.Log),
		middleware.Recover(),
		cors(cfg.CORSOrigins),
		safeHeaders(cfg.TrustedProxies),
		middleware.BodyLimit("1M"),
		textGate,
	)

	// Operations and documentation.
	e.GET("/healthz", h.healthz)
	e.GET("/readyz", h.readyz)
	e.GET("/openapi.yaml", h.openAPI)
	e.GET("/docs", h.docs)

	// Auth is attached per route, not per group: Echo answers every unknown
	// path under a group that has middleware with that middleware, so an
	// unknown URL would say 401 instead of 404.
	coach := []echo.MiddlewareFunc{h.requireCoach}
	admin := []echo.MiddlewareFunc{h.requireCoach, h.requireAdmin}
	portal := []echo.MiddlewareFunc{h.requireParticipant}
	// Her session, even while a new disclaimer waits for her acceptance.
	portalAnyConsent := []echo.MiddlewareFunc{h.requireParticipantSession}

	v1 := e.Group("/v1")

	// Public: anyone, no token. Login-style routes are rate limited in the
	// domain, per IP and per email.
	v1.POST("/auth/login", h.login)
	v1.POST("/auth/password-resets", h.requestPasswordReset)
	v1.POST("/auth/password-resets/confirm", h.confirmPasswordReset)
	v1.GET("/programs", h.listPublicPrograms)
	v1.GET("/programs/:slug", h.getPublicProgram)
	v1.POST("/programs/:slug/free-access", h.claimFreeAccess)
	v1.POST("/portal/login-links", h.createLoginLink)
	v1.POST("/portal/sessions", h.createPortalSession)

	// Portal: a participant's session token; she only ever sees her own data.
	v1.DELETE("/portal/sessions/current", h.deletePortalSession, portalAnyConsent...)
	v1.POST("/portal/sessions/revoke-all", h.revokeAllPortalSessions, portalAnyConsent...)
	v1.GET("/portal/me", h.getMe, portal...)
	v1.PATCH("/portal/me", h.updateMe, portal...)
	v1.POST("/portal/pause", h.pauseEmail, portal...)
	v1.DELETE("/portal/pause", h.resumeEmail, portal...)
	v1.GET("/portal/programs", h.listPortalPrograms, portal...)
	v1.GET("/portal/programs/:slug/lessons", h.listPortalLessons, portal...)
	// The hottest read checks her token inside the gate query itself
	// (ReadLessonWithToken): one round trip instead of two, the same 401s
	// and the same consent_required.
	v1.GET("/portal/lessons/:id", h.getPortalLesson)
	v1.PUT("/portal/lessons/:id/completion", h.completeLesson, portal...)
	v1.DELETE("/portal/lessons/:id/completion", h.uncompleteLesson, portal...)
	// Who read her data is her right of access, like the export: it never
	// waits on her accepting a new disclaimer.
	v1.GET("/portal/access-log", h.listPortalAccessLog, portalAnyConsent...)
	// Her reflections: hers alone, encrypted at rest; a coach reads only a
	// snapshot she shares. Writes over an existing one need If-Match.
	v1.GET("/portal/lessons/:id/reflection", h.getReflection, portal...)
	v1.PUT("/portal/lessons/:id/reflection", h.saveReflection, portal...)
	v1.POST("/portal/lessons/:id/reflection/share", h.shareReflection, portal...)
	v1.DELETE("/portal/lessons/:id/reflection/share", h.unshareReflection, portal...)

	// Coach: any signed-in coach (role admin or coach).
	v1.POST("/auth/logout", h.logout, coach...)
	v1.POST("/auth/sessions/revoke-all", h.revokeAllCoachSessions, coach...)
	v1.GET("/auth/me", h.me, coach...)
	v1.GET("/admin/programs", h.listPrograms, coach...)
	v1.POST("/admin/programs", h.createProgram, coach...)
	v1.GET("/admin/programs/:id", h.getProgram, coach...)
	v1.PATCH("/admin/programs/:id", h.updateProgram, coach...)
	v1.DELETE("/admin/programs/:id", h.deleteProgram, coach...)
	v1.GET("/admin/programs/:id/lessons", h.listLessons, coach...)
	v1.POST("/admin/programs/:id/lessons", h.createLesson, coach...)
	v1.PUT("/admin/programs/:id/lesson-order", h.reorderLessons, coach...)
	v1.GET("/admin/lessons/:id", h.getLesson, coach...)
	v1.PATCH("/admin/lessons/:id", h.updateLesson, coach...)
	v1.DELETE("/admin/lessons/:id", h.deleteLesson, coach...)
	// Participants: an admin sees everyone, a coach only her own (the
	// domain scopes, and logs every read in her access log).
	v1.GET("/admin/participants", h.listParticipants, coach...)
	v1.GET("/admin/participants/:id", h.getParticipant, coach...)
	v1.GET("/admin/participants/:id/access-log", h.listParticipantAccessLog, admin...)
	// Only what she shared, only to the coaches of her cohort (the domain scopes).
	v1.GET("/admin/participants/:id/reflections", h.listSharedReflections, coach...)

	// Admin: role admin only.
	v1.GET("/admin/coaches", h.listCoaches, admin...)
	v1.POST("/admin/coaches", h.createCoach, admin...)
	v1.PATCH("/admin/coaches/:id", h.updateCoach, admin...)
	v1.DELETE("/admin/coaches/:id", h.deleteCoach, admin...)
	v1.GET("/admin/settings/crisis-resources", h.getCrisisResources, admin...)
	v1.PUT("/admin/settings/crisis-resources", h.putCrisisResources, admin...)

	// Cohorts (coach: admin manages all, a coach only those she leads or
	// co-leads; the domain enforces which).
	v1.GET("/admin/cohorts", h.listCohorts, coach...)
	v1.POST("/admin/cohorts", h.createCohort, coach...)
	v1.GET("/admin/cohorts/:id", h.getCohort, coach...)
	v1.PATCH("/admin/cohorts/:id", h.updateCohort, coach...)
	v1.DELETE("/admin/cohorts/:id", h.deleteCohort, coach...)
	v1.POST("/admin/cohorts/:id/clone", h.cloneCohort, coach...)
	v1.GET("/admin/cohorts/:id/sessions", h.listLiveSessions, coach...)
	v1.POST("/admin/cohorts/:id/sessions", h.createLiveSession, coach...)
	v1.PATCH("/admin/sessions/:id", h.updateLiveSession, coach...)
	v1.DELETE("/admin/sessions/:id", h.deleteLiveSession, coach...)
	v1.GET("/admin/cohorts/:id/enrollments", h.listCohortEnrollments, coach...)
	v1.POST("/admin/cohorts/:id/enrollments", h.addComplimentaryEnrollment, coach...)
	v1.POST("/admin/enrollments/:id/refund", h.refundEnrollment, coach...)
	v1.POST("/admin/enrollments/:id/cancel", h.cancelEnrollment, coach...)

	// Drip email sequences (coach: admin manages all; a coach reads the
	// program-wide and global ones and manages those of cohorts she leads or
	// co-leads; the domain enforces which).
	v1.GET("/admin/sequences", h.listSequences, coach...)
	v1.POST("/admin/sequences", h.createSequence, coach...)
	v1.GET("/admin/sequences/:id", h.getSequence, coach...)
	v1.PATCH("/admin/sequences/:id", h.updateSequence, coach...)
	v1.DELETE("/admin/sequences/:id", h.deleteSequence, coach...)
	v1.GET("/admin/sequences/:id/steps", h.listSteps, coach...)
	v1.POST("/admin/sequences/:id/steps", h.createStep, coach...)
	v1.PATCH("/admin/steps/:id", h.updateStep, coach...)
	v1.DELETE("/admin/steps/:id", h.deleteStep, coach...)
	v1.POST("/admin/steps/:id/preview", h.previewStep, coach...)
	v1.POST("/admin/steps/:id/test-send", h.testSendStep, coach...)

	// Public cohort pages and checkout. Checkout honours Idempotency-Key.
	// Checkout, the waitlist and the other public forms above answer 202
	// alike for every address and leave the work to the task worker.
	v1.GET("/cohorts/:id", h.getPublicCohort)
	v1.POST("/cohorts/:id/checkout", h.startCheckout, h.idempotent("checkout"))
	v1.POST("/cohorts/:id/waitlist", h.joinWaitlist)
	// Checkout links: the token emailed to her address is the credential.
	// GET only describes, since scanners and previews fetch links; POST
	// holds her seat and opens (or resumes) her checkout.
	v1.GET("/checkout-links/:token", h.getCheckoutLink)
	v1.POST("/checkout-links/:token", h.redeemCheckoutLink)

	// Portal: her enrollments and her calendar. The feed is fetched by
	// calendar apps, which cannot send a bearer token: it carries its own
	// rotatable token in the query instead.
	v1.GET("/portal/enrollments", h.listPortalEnrollments, portal...)
	v1.POST("/portal/calendar-token", h.rotateCalendarToken, portal...)
	v1.GET("/portal/calendar.ics", h.calendarFeed)

	// Consent texts and her data rights. The texts are public (forms show
	// them before anyone signs in); accepting, exporting and erasing work
	// while a new disclaimer waits, since her rights never wait on her
	// agreeing to anything. Erasing herself needs a code from her inbox.
	v1.GET("/consents/:kind", h.getConsentDocument)
	v1.PUT("/admin/consents/:kind", h.editConsentDocument, admin...)
	v1.POST("/portal/consents", h.acceptConsent, portalAnyConsent...)
	v1.GET("/portal/me/export", h.exportMe, portalAnyConsent...)
	v1.POST("/portal/me/erase-code", h.requestEraseCode, portalAnyConsent...)
	v1.DELETE("/portal/me", h.eraseMe, portalAnyConsent...)
	v1.POST("/admin/participants/:id/erase", h.eraseParticipant, admin...)

	// Webhooks: authenticated by signature, not by token.
	v1.POST("/webhooks/stripe", h.stripeWebhook)
	v1.POST("/webhooks/resend", h.resendWebhook)

	// Unsubscribe links: public, the token in the URL is the credential.
	// Mail clients POST with no Origin and no auth (RFC 8058 one-click); GET
	// only describes, since scanners and previews fetch links.
	v1.GET("/unsubscribe/:token", h.getUnsubscribe)
	v1.POST("/unsubscribe/:token", h.postUnsubscribe)
	// Marketing opt-in confirmations work the same way: GET describes,
	// POST confirms, the token is the credential.
	v1.GET("/consents/confirm/:token", h.getConsentConfirm)
	v1.POST("/consents/confirm/:token", h.postConsentConfirm)

	// The delivery log (a coach sees her own participants' deliveries; the
	// domain scopes) and the suppression list (admins only).
	v1.GET("/admin/emails", h.listEmailDeliveries, coach...)
	v1.GET("/admin/suppressions", h.listSuppressions, admin...)
	v1.DELETE("/admin/suppressions/:email", h.deleteSuppression, admin...)

}

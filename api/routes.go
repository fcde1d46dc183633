package api

import (
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// routes is the whole HTTP surface of Grace in one table. Middleware is
// listed where it applies, so who may call what is visible here.
func routes(e *echo.Echo, h *handlers, cfg Config) {
	// Every request: an id, a context carrying it, one log line, no panic
	// escaping as a dropped connection, CORS for the two browser clients,
	// safe headers, and a hard cap on body size.
	e.Use(
		middleware.RequestID(),
		requestContext,
		accessLog(cfg.Log),
		middleware.Recover(),
		middleware.CORSWithConfig(corsConfig(cfg.CORSOrigins)),
		middleware.Secure(),
		middleware.BodyLimit("1M"),
	)

	// Operations and documentation.
	e.GET("/healthz", h.healthz)
	e.GET("/readyz", h.readyz)
	e.GET("/openapi.yaml", h.openAPI)
	e.GET("/docs", h.docs)

	v1 := e.Group("/v1")

	// Public: anyone, no token. Login-style routes are rate limited in the
	// domain, per IP and per email.
	public := v1.Group("")
	public.POST("/auth/login", h.login)
	public.POST("/auth/password-resets", h.requestPasswordReset)
	public.POST("/auth/password-resets/confirm", h.confirmPasswordReset)
	public.GET("/programs", h.listPublicPrograms)
	public.GET("/programs/:slug", h.getPublicProgram)
	public.POST("/programs/:slug/free-access", h.claimFreeAccess)
	public.POST("/portal/login-links", h.createLoginLink)
	public.POST("/portal/sessions", h.createPortalSession)

	// Portal: a participant's session token.
	portal := v1.Group("/portal", h.requireParticipant)
	portal.DELETE("/sessions/current", h.deletePortalSession)
	portal.GET("/me", h.getMe)
	portal.PATCH("/me", h.updateMe)
	portal.GET("/programs", h.listPortalPrograms)
	portal.GET("/programs/:slug/lessons", h.listPortalLessons)
	portal.GET("/lessons/:id", h.getPortalLesson)
	portal.PUT("/lessons/:id/completion", h.completeLesson)
	portal.DELETE("/lessons/:id/completion", h.uncompleteLesson)

	// Coach: any signed-in coach (role admin or coach).
	coach := v1.Group("", h.requireCoach)
	coach.POST("/auth/logout", h.logout)
	coach.GET("/auth/me", h.me)
	coach.GET("/admin/programs", h.listPrograms)
	coach.POST("/admin/programs", h.createProgram)
	coach.GET("/admin/programs/:id", h.getProgram)
	coach.PATCH("/admin/programs/:id", h.updateProgram)
	coach.DELETE("/admin/programs/:id", h.deleteProgram)
	coach.GET("/admin/programs/:id/lessons", h.listLessons)
	coach.POST("/admin/programs/:id/lessons", h.createLesson)
	coach.PUT("/admin/programs/:id/lesson-order", h.reorderLessons)
	coach.GET("/admin/lessons/:id", h.getLesson)
	coach.PATCH("/admin/lessons/:id", h.updateLesson)
	coach.DELETE("/admin/lessons/:id", h.deleteLesson)
	coach.GET("/admin/participants", h.listParticipants)
	coach.GET("/admin/participants/:id", h.getParticipant)

	// Admin: role admin only.
	admin := v1.Group("/admin", h.requireCoach, h.requireAdmin)
	admin.GET("/coaches", h.listCoaches)
	admin.POST("/coaches", h.createCoach)
	admin.PATCH("/coaches/:id", h.updateCoach)
	admin.DELETE("/coaches/:id", h.deleteCoach)

	// Webhooks: authenticated by signature, not by token (added by the
	// Stripe and Resend issues).
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
)

// baselineListening starts the one line a baseline prints: where it listens.
const baselineListening = "listening "

// runBaseline is `bench baseline -kind K ...`: the least code that could give
// an answer like Grace's, a bare Echo with no middleware and no logging, run
// as its own process like Grace, with a pgx pool of Grace's size.
func runBaseline(args []string) error {
	fs := flag.NewFlagSet("baseline", flag.ContinueOnError)
	kind := fs.String("kind", "", "lesson, page or claim")
	dsn := fs.String("db", "", "database URL (lesson, claim)")
	pool := fs.Int("pool", 0, "pgx pool size: Grace's")
	pagePath := fs.String("page", "", "file holding the page's bytes (page)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.GET("/healthz", func(c echo.Context) error { return c.NoContent(http.StatusOK) })
	var db *pgxpool.Pool
	if *kind == "lesson" || *kind == "claim" {
		if *pool < 1 {
			return errors.New("baseline: -pool must be Grace's pool size")
		}
		cfg, err := pgxpool.ParseConfig(*dsn)
		if err != nil {
			return err
		}
		cfg.MaxConns = int32(*pool)
		if db, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
			return err
		}
		defer db.Close()
	}
	switch *kind {
	case "lesson":
		e.GET("/lessons/:id", baselineLesson(db))
	case "page":
		page, err := os.ReadFile(*pagePath)
		if err != nil {
			return err
		}
		e.GET("/programs/:slug", func(c echo.Context) error {
			return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, page)
		})
	case "claim":
		e.POST("/programs/:slug/free-access", baselineClaim(db))
	default:
		return fmt.Errorf("baseline: unknown -kind %q", *kind)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(baselineListening + ln.Addr().String())
	srv := &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// baselineLesson is one primary-key SELECT of the lesson's row, every column
// Grace's answer carries, encoded with the same names, so both answers are
// the same size: what remains of the ratio is Grace's authentication, gate
// and middleware.
func baselineLesson(db *pgxpool.Pool) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := uuid.Parse(c.Param("id"))
		if err != nil {
			return echo.ErrNotFound
		}
		var out struct {
			ID               uuid.UUID  `json:"id"`
			ProgramID        uuid.UUID  `json:"program_id"`
			Position         int        `json:"position"`
			Title            string     `json:"title"`
			Body             string     `json:"body"`
			BodyHTML         string     `json:"body_html"`
			MediaURL         *string    `json:"media_url"`
			DurationSeconds  *int       `json:"duration_seconds"`
			FreePreview      bool       `json:"free_preview"`
			UnlockOffsetDays int        `json:"unlock_offset_days"`
			Published        bool       `json:"published"`
			Locked           bool       `json:"locked"`
			UnlockAt         *time.Time `json:"unlock_at"`
			Completed        bool       `json:"completed"`
			CreatedAt        time.Time  `json:"created_at"`
			UpdatedAt        time.Time  `json:"updated_at"`
		}
		err = db.QueryRow(c.Request().Context(), `
			SELECT id, program_id, position, title, body, body_html, media_url, duration_seconds,
			       free_preview, unlock_offset_days, published, created_at, updated_at
			FROM lessons WHERE id = $1`, id).
			Scan(&out.ID, &out.ProgramID, &out.Position, &out.Title, &out.Body, &out.BodyHTML, &out.MediaURL,
				&out.DurationSeconds, &out.FreePreview, &out.UnlockOffsetDays, &out.Published, &out.CreatedAt, &out.UpdatedAt)
		if err != nil {
			return err
		}
		out.CreatedAt, out.UpdatedAt = out.CreatedAt.UTC(), out.UpdatedAt.UTC()
		return c.JSON(http.StatusOK, out)
	}
}

// baselineClaim binds the same JSON body and inserts one participant row,
// the least a sign-up form that keeps its leads can do, answered as Grace
// answers a claim.
func baselineClaim(db *pgxpool.Pool) echo.HandlerFunc {
	return func(c echo.Context) error {
		var in struct {
			Email              string `json:"email"`
			Name               string `json:"name"`
			MarketingConsent   *bool  `json:"marketing_consent"`
			DisclaimerAccepted *bool  `json:"disclaimer_accepted"`
		}
		if err := c.Bind(&in); err != nil {
			return err
		}
		if in.Email == "" || in.DisclaimerAccepted == nil || !*in.DisclaimerAccepted {
			return echo.ErrUnprocessableEntity
		}
		_, err := db.Exec(c.Request().Context(),
			`INSERT INTO participants (email, name) VALUES ($1, $2) ON CONFLICT (email) DO NOTHING`, in.Email, in.Name)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusAccepted, map[string]string{"status": "accepted"})
	}
}

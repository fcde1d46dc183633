package people

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
)

// The gate decides who may read which lesson. A participant may read a
// published lesson of a program that is not a draft when the lesson is a free
// preview, or when she holds an unrevoked grant to the program and the
// lesson's drip delay has passed since her access started.

var errNoAccess = models.E(models.KindForbidden, "no_access", "You do not have access to this program.")

// PortalLesson is a lesson she may read now, with her progress.
type PortalLesson struct {
	catalog.Lesson
	// UnlockAt is when the lesson unlocked for her; nil for a free preview,
	// which does not depend on time.
	UnlockAt  *time.Time
	Completed bool
	// Crisis is the crisis resources, from memory: the read stays one
	// round trip.
	Crisis *catalog.CrisisResources
}

// gateLocations caches time zones: time.LoadLocation reads the zone database
// from disk, and the gate runs on every lesson read.
var gateLocations sync.Map // string -> *time.Location

func gateLocation(name string) *time.Location {
	if loc, ok := gateLocations.Load(name); ok {
		return loc.(*time.Location)
	}
	loc, err := time.LoadLocation(name)
	if err != nil || name == "" || name == "Local" {
		// The column is validated on write; a bad value from elsewhere must
		// not lock a woman out of her lessons.
		loc = time.UTC
	}
	gateLocations.Store(name, loc)
	return loc
}

// UnlockAt is when a lesson with the given drip delay unlocks for a grant
// starting at start. Days are counted on her calendar, in her time zone, so
// "day 3" keeps its wall-clock time across a daylight-saving change. The
// drip scheduler computes the same moment in SQL, for a hundred thousand
// women at once; a test in models/drip holds the two to the same answers.
func UnlockAt(start time.Time, days int, timezone string) time.Time {
	if days == 0 {
		return start.UTC()
	}
	loc := gateLocation(timezone)
	s := start.In(loc)
	t := s.AddDate(0, 0, days)
	if t.Hour() == s.Hour() && t.Minute() == s.Minute() {
		return t.UTC()
	}
	// The wall time does not exist that day: it falls in a spring-forward
	// gap. Read it as PostgreSQL does (and so the scheduler's email), with
	// the offset in force before the change, which lands after the gap:
	// 02:30 becomes 03:30. Go's time.Date would pick the offset after it,
	// an hour earlier than the email.
	wall := time.Date(t.Year(), t.Month(), t.Day(), s.Hour(), s.Minute(), s.Second(), s.Nanosecond(), time.UTC)
	_, before := t.Add(-6 * time.Hour).Zone()
	return wall.Add(-time.Duration(before) * time.Second)
}

// gateRow is everything the gate needs about one lesson and one participant,
// read in a single query.
type gateRow struct {
	catalog.Lesson
	GrantStartsAt *time.Time
	Completed     bool
}

// gateQuery reads a lesson only when it is published in a non-draft program,
// with the start of her earliest unrevoked grant to the program and whether
// she completed it. It is the whole of the lesson read's database work.
const gateQuery = `
	SELECT l.id, l.program_id, l.position, l.title, l.body, l.body_html, l.media_url, l.duration_seconds,
		l.free_preview, l.unlock_offset_days, l.published, l.reflection_prompts, l.created_at, l.updated_at,
		g.starts_at AS grant_starts_at,
		EXISTS (SELECT 1 FROM lesson_completions lc WHERE lc.participant_id = $2 AND lc.lesson_id = l.id) AS completed
	FROM lessons l
	JOIN programs pr ON pr.id = l.program_id AND pr.status <> 'draft'
	LEFT JOIN LATERAL (
		SELECT min(ag.starts_at) AS starts_at FROM access_grants ag
		WHERE ag.participant_id = $2 AND ag.program_id = l.program_id AND ag.revoked_at IS NULL
	) g ON true
	WHERE l.id = $1 AND l.published`

// gate reads a lesson and decides whether p may read it at now. It is the
// hot path of the portal, so it skips GORM's callback chain and reflection
// and scans the one row straight from the pool (about a quarter more
// lesson reads per second under load). Ids go to pgx as [16]byte, which it
// encodes as uuid directly instead of through uuid.UUID's string Value.
func (s *Service) gate(ctx context.Context, p *Participant, lessonID uuid.UUID) (*PortalLesson, error) {
	var r gateRow
	err := s.DB.ConnPool.QueryRowContext(ctx, gateQuery, [16]byte(lessonID), [16]byte(p.ID)).Scan(
		&r.ID, &r.ProgramID, &r.Position, &r.Title, &r.Body, &r.BodyHTML, &r.MediaURL, &r.DurationSeconds,
		&r.FreePreview, &r.UnlockOffsetDays, &r.Published, &r.ReflectionPrompts, &r.CreatedAt, &r.UpdatedAt, &r.GrantStartsAt, &r.Completed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, models.NotFound("lesson")
	}
	if err != nil {
		return nil, fmt.Errorf("read lesson: %w", err)
	}
	return s.gateDecide(ctx, r, p.Timezone)
}

// gateDecide applies the gate to a row read by gateQuery or tokenGateQuery.
func (s *Service) gateDecide(ctx context.Context, r gateRow, timezone string) (*PortalLesson, error) {
	out := &PortalLesson{Lesson: r.Lesson, Completed: r.Completed, Crisis: s.crisis.CrisisResources(ctx)}
	if r.FreePreview {
		return out, nil
	}
	if r.GrantStartsAt == nil {
		return nil, errNoAccess
	}
	at := UnlockAt(*r.GrantStartsAt, r.UnlockOffsetDays, timezone)
	if s.Now().Before(at) {
		e := models.E(models.KindForbidden, "lesson_locked", "This lesson unlocks on %s.", at.Format(time.RFC3339))
		e.UnlockAt = &at
		return nil, e
	}
	out.UnlockAt = &at
	return out, nil
}

// ReadLesson returns a lesson she may read now, its body already rendered.
func (s *Service) ReadLesson(ctx context.Context, p *Participant, lessonID uuid.UUID) (*PortalLesson, error) {
	return s.gate(ctx, p, lessonID)
}

// tokenGateQuery is gateQuery with the session lookup of
// AuthenticateParticipant folded in: one row when the token is live (the
// lesson columns NULL when the gate hides the lesson), none otherwise.
var tokenGateQuery = `
	SELECT s.timezone, s.disclaimer_due,
		l.id, l.program_id, l.position, l.title, l.body, l.body_html, l.media_url, l.duration_seconds,
		l.free_preview, l.unlock_offset_days, l.published, l.reflection_prompts, l.created_at, l.updated_at,
		g.starts_at AS grant_starts_at,
		EXISTS (SELECT 1 FROM lesson_completions lc WHERE lc.participant_id = s.participant_id AND lc.lesson_id = l.id) AS completed
	FROM (
		SELECT p.id AS participant_id, p.timezone, ` + disclaimerDueSQL + ` AS disclaimer_due
		FROM participant_sessions ps JOIN participants p ON p.id = ps.participant_id
		WHERE ps.token_hash = $1 AND ps.revoked_at IS NULL AND ps.expires_at > $2
	) s
	LEFT JOIN (lessons l JOIN programs pr ON pr.id = l.program_id AND pr.status <> 'draft')
		ON l.id = $3 AND l.published
	LEFT JOIN LATERAL (
		SELECT min(ag.starts_at) AS starts_at FROM access_grants ag
		WHERE ag.participant_id = s.participant_id AND ag.program_id = l.program_id AND ag.revoked_at IS NULL
	) g ON true`

// ReadLessonWithToken is AuthenticateParticipant and ReadLesson in one round
// trip to the database, for the portal's busiest route: a lesson read is
// then as cheap as one primary-key lookup plus the gate. An unknown, expired
// or revoked token is invalid_token, exactly as from AuthenticateParticipant.
func (s *Service) ReadLessonWithToken(ctx context.Context, token string, lessonID uuid.UUID) (*PortalLesson, error) {
	var (
		timezone string
		due      *int
		id       *uuid.UUID
		r        gateRow
		// NULL when the lesson is hidden, so scanned through pointers.
		programID             *uuid.UUID
		position, unlockDays  *int
		title, body, bodyHTML *string
		preview, published    *bool
		createdAt, updatedAt  *time.Time
	)
	err := s.DB.ConnPool.QueryRowContext(ctx, tokenGateQuery, models.HashToken(token), s.Now(), [16]byte(lessonID)).Scan(
		&timezone, &due, &id, &programID, &position, &title, &body, &bodyHTML, &r.MediaURL, &r.DurationSeconds,
		&preview, &unlockDays, &published, &r.ReflectionPrompts, &createdAt, &updatedAt, &r.GrantStartsAt, &r.Completed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errBadToken
	}
	if err != nil {
		return nil, fmt.Errorf("read lesson: %w", err)
	}
	if due != nil {
		return nil, models.ConsentRequired(models.ConsentDisclaimer, *due)
	}
	if id == nil {
		return nil, models.NotFound("lesson")
	}
	r.ID, r.ProgramID, r.Position, r.Title, r.Body, r.BodyHTML = *id, *programID, *position, *title, *body, *bodyHTML
	r.FreePreview, r.UnlockOffsetDays, r.Published, r.CreatedAt, r.UpdatedAt = *preview, *unlockDays, *published, *createdAt, *updatedAt
	return s.gateDecide(ctx, r, timezone)
}

// CompleteLesson marks a lesson she may read now as completed. Completing it
// again keeps the first completion time.
func (s *Service) CompleteLesson(ctx context.Context, p *Participant, lessonID uuid.UUID) error {
	if _, err := s.gate(ctx, p, lessonID); err != nil {
		return err
	}
	return s.DB.WithContext(ctx).Exec(`
		INSERT INTO lesson_completions (participant_id, lesson_id, completed_at) VALUES (?, ?, ?)
		ON CONFLICT (participant_id, lesson_id) DO NOTHING`, p.ID, lessonID, s.Now()).Error
}

// UncompleteLesson removes her completion of a lesson, if any. It needs no
// access to the lesson: taking back her own progress harms no one.
func (s *Service) UncompleteLesson(ctx context.Context, p *Participant, lessonID uuid.UUID) error {
	var visible []uuid.UUID
	err := s.DB.WithContext(ctx).Raw(`
		WITH l AS (
			SELECT l.id FROM lessons l JOIN programs pr ON pr.id = l.program_id
			WHERE l.id = ? AND l.published AND pr.status <> 'draft'
		), d AS (
			DELETE FROM lesson_completions WHERE participant_id = ? AND lesson_id IN (SELECT id FROM l)
		)
		SELECT id FROM l`, lessonID, p.ID).Scan(&visible).Error
	if err != nil {
		return err
	}
	if len(visible) == 0 {
		return models.NotFound("lesson")
	}
	return nil
}

// GrantSource is how she came to hold an access grant: the gate treats
// them alike, but the scheduler and the coach's view of her do not.
type GrantSource string

const (
	GrantFreeAccess    GrantSource = "free_access"
	GrantEnrollment    GrantSource = "enrollment"
	GrantComplimentary GrantSource = "complimentary"
)

type AccessGrant struct {
	ID            uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	ParticipantID uuid.UUID
	ProgramID     uuid.UUID
	Source        GrantSource
	StartsAt      time.Time
	RevokedAt     *time.Time
	CreatedAt     time.Time
}

type LessonCompletion struct {
	ParticipantID uuid.UUID `gorm:"type:uuid;primaryKey"`
	LessonID      uuid.UUID `gorm:"type:uuid;primaryKey"`
	CompletedAt   time.Time
}

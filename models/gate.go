package models

import (
	"context"
	"database/sql"
	"sync"
	"time"

	"github.com/google/uuid"
)

// The gate decides who may read which lesson. A participant may read a
// published lesson of a program that is not a draft when the lesson is a free
// preview, or when she holds an unrevoked grant to the program and the
// lesson's drip delay has passed since her access started.

var errNoAccess = E(KindForbidden, "no_access", "You do not have access to this program.")

// PortalLesson is a lesson she may read now, with her progress.
type PortalLesson struct {
	Lesson
	// UnlockAt is when the lesson unlocked for her; nil for a free preview,
	// which does not depend on time.
	UnlockAt  *time.Time
	Completed bool
}

// locations caches time zones: time.LoadLocation reads the zone database
// from disk, and the gate runs on every lesson read.
var locations sync.Map // string -> *time.Location

func location(name string) *time.Location {
	if loc, ok := locations.Load(name); ok {
		return loc.(*time.Location)
	}
	loc, err := time.LoadLocation(name)
	if err != nil || name == "" || name == "Local" {
		// The column is validated on write; a bad value from elsewhere must
		// not lock a woman out of her lessons.
		loc = time.UTC
	}
	locations.Store(name, loc)
	return loc
}

// unlockAt is when a lesson with the given drip delay unlocks for a grant
// starting at start. Days are counted on her calendar, in her time zone, so
// "day 3" keeps its wall-clock time across a daylight-saving change.
func unlockAt(start time.Time, days int, timezone string) time.Time {
	if days == 0 {
		return start.UTC()
	}
	return start.In(location(timezone)).AddDate(0, 0, days).UTC()
}

// gateRow is everything the gate needs about one lesson and one participant,
// read in a single query.
type gateRow struct {
	Lesson
	GrantStartsAt *time.Time
	Completed     bool
}

// gateQuery reads a lesson only when it is published in a non-draft program,
// with the start of her earliest unrevoked grant to the program and whether
// she completed it. It is the whole of the lesson read's database work.
const gateQuery = `
	SELECT l.id, l.program_id, l.position, l.title, l.body, l.body_html, l.media_url, l.duration_seconds,
		l.free_preview, l.unlock_offset_days, l.published, l.created_at, l.updated_at,
		g.starts_at AS grant_starts_at,
		EXISTS (SELECT 1 FROM lesson_completions lc WHERE lc.participant_id = @participant AND lc.lesson_id = l.id) AS completed
	FROM lessons l
	JOIN programs pr ON pr.id = l.program_id AND pr.status <> 'draft'
	LEFT JOIN LATERAL (
		SELECT min(ag.starts_at) AS starts_at FROM access_grants ag
		WHERE ag.participant_id = @participant AND ag.program_id = l.program_id AND ag.revoked_at IS NULL
	) g ON true
	WHERE l.id = @lesson AND l.published`

// gate reads a lesson and decides whether p may read it at now.
func (s *Service) gate(ctx context.Context, p *Participant, lessonID uuid.UUID) (*PortalLesson, error) {
	var rows []gateRow
	if err := s.db.WithContext(ctx).Raw(gateQuery, sql.Named("lesson", lessonID), sql.Named("participant", p.ID)).Scan(&rows).Error; err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, NotFound("lesson")
	}
	r := rows[0]
	out := &PortalLesson{Lesson: r.Lesson, Completed: r.Completed}
	if r.FreePreview {
		return out, nil
	}
	if r.GrantStartsAt == nil {
		return nil, errNoAccess
	}
	at := unlockAt(*r.GrantStartsAt, r.UnlockOffsetDays, p.Timezone)
	if s.Now().Before(at) {
		e := E(KindForbidden, "lesson_locked", "This lesson unlocks on %s.", at.Format(time.RFC3339))
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

// CompleteLesson marks a lesson she may read now as completed. Completing it
// again keeps the first completion time.
func (s *Service) CompleteLesson(ctx context.Context, p *Participant, lessonID uuid.UUID) error {
	if _, err := s.gate(ctx, p, lessonID); err != nil {
		return err
	}
	return s.db.WithContext(ctx).Exec(`
		INSERT INTO lesson_completions (participant_id, lesson_id, completed_at) VALUES (?, ?, ?)
		ON CONFLICT (participant_id, lesson_id) DO NOTHING`, p.ID, lessonID, s.Now()).Error
}

// UncompleteLesson removes her completion of a lesson, if any. It needs no
// access to the lesson: taking back her own progress harms no one.
func (s *Service) UncompleteLesson(ctx context.Context, p *Participant, lessonID uuid.UUID) error {
	var visible []uuid.UUID
	err := s.db.WithContext(ctx).Raw(`
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
		return NotFound("lesson")
	}
	return nil
}

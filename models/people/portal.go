package people

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
)

// Her portal: the programs she holds access to and their lessons, each
// with her progress and when it unlocks.

// PortalPage is a page of her portal: the items and the crisis resources
// shown beside them.
type PortalPage[T any] struct {
	models.Page[T]
	Crisis *catalog.CrisisResources
}

func withCrisis[T any](ctx context.Context, s *Service, p models.Page[T], err error) (PortalPage[T], error) {
	if err != nil {
		return PortalPage[T]{}, err
	}
	return PortalPage[T]{Page: p, Crisis: s.crisis.CrisisResources(ctx)}, nil
}

// PortalProgram is a program she has access to, with her progress.
type PortalProgram struct {
	ID               uuid.UUID
	Slug             string
	Title            string
	Summary          string
	AccessStartsAt   time.Time
	LessonsTotal     int
	LessonsCompleted int
}

// ListPortalPrograms lists the programs she holds an unrevoked grant to,
// ordered by when her access started.
func (s *Service) ListPortalPrograms(ctx context.Context, p *Participant, page models.PageParams) (PortalPage[PortalProgram], error) {
	out, err := s.listPortalPrograms(ctx, p, page)
	return withCrisis(ctx, s, out, err)
}

func (s *Service) listPortalPrograms(ctx context.Context, p *Participant, page models.PageParams) (models.Page[PortalProgram], error) {
	after, err := page.Decode()
	if err != nil {
		return models.Page[PortalProgram]{}, err
	}
	limit := page.PageSize()
	args := []any{p.ID, p.ID}
	keyset := ""
	if after != nil {
		keyset = "AND (g.access_starts_at, pr.id) > (?, ?)"
		args = append(args, after.At, after.ID)
	}
	args = append(args, limit+1)
	var rows []PortalProgram
	err = s.DB.WithContext(ctx).Raw(`
		WITH g AS (
			SELECT program_id, min(starts_at) AS access_starts_at
			FROM access_grants
			WHERE participant_id = ? AND revoked_at IS NULL
			GROUP BY program_id
		)
		SELECT pr.id, pr.slug, pr.title, pr.summary, g.access_starts_at,
			(SELECT count(*) FROM lessons l WHERE l.program_id = pr.id AND l.published) AS lessons_total,
			(SELECT count(*) FROM lesson_completions lc JOIN lessons l ON l.id = lc.lesson_id
			 WHERE lc.participant_id = ? AND l.program_id = pr.id AND l.published) AS lessons_completed
		FROM g JOIN programs pr ON pr.id = g.program_id
		WHERE pr.status IN ('published', 'archived') `+keyset+`
		ORDER BY g.access_starts_at, pr.id
		LIMIT ?`, args...).Scan(&rows).Error
	if err != nil {
		return models.Page[PortalProgram]{}, err
	}
	for i := range rows {
		rows[i].AccessStartsAt = rows[i].AccessStartsAt.UTC()
	}
	return models.PageOf(rows, limit, func(r PortalProgram) models.Cursor { return models.Cursor{At: r.AccessStartsAt, ID: r.ID} }), nil
}

// PortalLessonSummary is one line of a program's lesson list in the portal.
type PortalLessonSummary struct {
	ID              uuid.UUID
	Title           string
	Position        int
	FreePreview     bool
	DurationSeconds *int
	Locked          bool
	// UnlockAt is nil when access does not depend on time: a free preview,
	// or a lesson she holds no grant for.
	UnlockAt  *time.Time
	Completed bool
}

// ListPortalLessons lists a program's published lessons with, for her, which
// are locked, when they unlock and which she has completed. She may list a
// program she holds no grant to only when it has a free preview to offer.
func (s *Service) ListPortalLessons(ctx context.Context, p *Participant, slug string, page models.PageParams) (PortalPage[PortalLessonSummary], error) {
	out, err := s.listPortalLessons(ctx, p, slug, page)
	return withCrisis(ctx, s, out, err)
}

func (s *Service) listPortalLessons(ctx context.Context, p *Participant, slug string, page models.PageParams) (models.Page[PortalLessonSummary], error) {
	after, err := page.Decode()
	if err != nil {
		return models.Page[PortalLessonSummary]{}, err
	}
	db := s.DB.WithContext(ctx)
	var prog struct {
		ID            uuid.UUID
		GrantStartsAt *time.Time
		HasPreview    bool
	}
	err = db.Raw(`
		SELECT pr.id,
			(SELECT min(ag.starts_at) FROM access_grants ag
			 WHERE ag.participant_id = ? AND ag.program_id = pr.id AND ag.revoked_at IS NULL) AS grant_starts_at,
			EXISTS (SELECT 1 FROM lessons l WHERE l.program_id = pr.id AND l.published AND l.free_preview) AS has_preview
		FROM programs pr
		WHERE pr.slug = ? AND pr.status <> 'draft'`, p.ID, slug).Take(&prog).Error
	if err != nil {
		return models.Page[PortalLessonSummary]{}, models.MapDBError(err, "program")
	}
	if prog.GrantStartsAt == nil && !prog.HasPreview {
		return models.Page[PortalLessonSummary]{}, errNoAccess
	}

	limit := page.PageSize()
	args := []any{p.ID, prog.ID}
	keyset := ""
	if after != nil {
		keyset = "AND (l.position, l.id) > (?, ?)"
		args = append(args, after.Pos, after.ID)
	}
	args = append(args, limit+1)
	var rows []struct {
		ID               uuid.UUID
		Title            string
		Position         int
		FreePreview      bool
		DurationSeconds  *int
		UnlockOffsetDays int
		Completed        bool
	}
	err = db.Raw(`
		SELECT l.id, l.title, l.position, l.free_preview, l.duration_seconds, l.unlock_offset_days,
			EXISTS (SELECT 1 FROM lesson_completions lc WHERE lc.participant_id = ? AND lc.lesson_id = l.id) AS completed
		FROM lessons l
		WHERE l.program_id = ? AND l.published `+keyset+`
		ORDER BY l.position, l.id
		LIMIT ?`, args...).Scan(&rows).Error
	if err != nil {
		return models.Page[PortalLessonSummary]{}, err
	}
	now := s.Now()
	out := make([]PortalLessonSummary, len(rows))
	for i, r := range rows {
		sum := PortalLessonSummary{ID: r.ID, Title: r.Title, Position: r.Position, FreePreview: r.FreePreview,
			DurationSeconds: r.DurationSeconds, Completed: r.Completed}
		switch {
		case r.FreePreview:
		case prog.GrantStartsAt == nil:
			sum.Locked = true
		default:
			at := UnlockAt(*prog.GrantStartsAt, r.UnlockOffsetDays, p.Timezone)
			sum.UnlockAt = &at
			sum.Locked = now.Before(at)
		}
		out[i] = sum
	}
	return models.PageOf(out, limit, func(r PortalLessonSummary) models.Cursor { return models.Cursor{Pos: r.Position, ID: r.ID} }), nil
}

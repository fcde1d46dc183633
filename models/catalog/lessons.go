package catalog

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
)

// Lesson limits, the same as the schema's checks.
const (
	MaxLessonBody       = 200000
	MaxDurationSeconds  = 86400
	MaxUnlockOffsetDays = 3650
)

// LessonInput creates a lesson. Position 0 puts it last; a position p inserts
// it at p and moves the lessons from p on down by one; a position past the
// end also puts it last.
type LessonInput struct {
	Title            string
	Body             string
	MediaURL         *string
	DurationSeconds  *int
	FreePreview      bool
	UnlockOffsetDays int
	Published        bool
	Position         int
	// ReflectionPrompts are Markdown sources, rendered on write.
	ReflectionPrompts []string
}

// LessonPatch changes the fields that are Set. MediaURL and DurationSeconds
// may be Null (cleared); the others may not. Moving a lesson is
// ReorderLessons' job.
type LessonPatch struct {
	Title            models.Optional[string]
	Body             models.Optional[string]
	MediaURL         models.Optional[string]
	DurationSeconds  models.Optional[int]
	FreePreview      models.Optional[bool]
	UnlockOffsetDays models.Optional[int]
	Published        models.Optional[bool]
	// ReflectionPrompts replaces the whole list; null is refused (send []).
	ReflectionPrompts models.Optional[[]string]
}

func checkLesson(c *models.Checker, l *Lesson) {
	c.Text("title", l.Title, 1, 200)
	c.Text("body", l.Body, 0, MaxLessonBody)
	if v := l.MediaURL; v != nil {
		// The schema's check is case-sensitive; url.Parse is not.
		if strings.HasPrefix(*v, "http://") || strings.HasPrefix(*v, "https://") {
			c.HttpURL("media_url", *v)
		} else {
			c.Add("media_url", "must be an http or https URL")
		}
	}
	if d := l.DurationSeconds; d != nil && (*d < 0 || *d > MaxDurationSeconds) {
		c.Add("duration_seconds", fmt.Sprintf("must be from 0 to %d", MaxDurationSeconds))
	}
	if l.UnlockOffsetDays < 0 || l.UnlockOffsetDays > MaxUnlockOffsetDays {
		c.Add("unlock_offset_days", fmt.Sprintf("must be from 0 to %d", MaxUnlockOffsetDays))
	}
}

// lockLessonOrder takes the program row's lock that serialises every change to
// the order of its lessons, and reports a missing program as not found.
func lockLessonOrder(tx *gorm.DB, programID uuid.UUID) error {
	var p Program
	if err := tx.Clauses(models.RowLock).Select("id").Where("id = ?", programID).Take(&p).Error; err != nil {
		return models.MapDBError(err, "program")
	}
	return nil
}

// deferPositions lets a statement move positions through values other
// lessons hold until the transaction commits.
func deferPositions(tx *gorm.DB) error {
	return tx.Exec(`SET CONSTRAINTS lessons_program_position_key DEFERRED`).Error
}

// CreateLesson adds a lesson to a program. Concurrent creates in one program
// queue on the program's row lock, so each sees the last position the one
// before it wrote.
func (s *Service) CreateLesson(ctx context.Context, programID uuid.UUID, in LessonInput) (*Lesson, error) {
	now := models.StoredTime(s.Now())
	l := &Lesson{
		ProgramID: programID, Title: in.Title, Body: in.Body, MediaURL: in.MediaURL, DurationSeconds: in.DurationSeconds,
		FreePreview: in.FreePreview, UnlockOffsetDays: in.UnlockOffsetDays, Published: in.Published,
		CreatedAt: now, UpdatedAt: now,
	}
	var c models.Checker
	checkLesson(&c, l)
	checkPrompts(&c, in.ReflectionPrompts)
	if in.Position < 0 {
		c.Add("position", "must be at least 1")
	}
	if err := c.Err(); err != nil {
		return nil, err
	}
	// Rendered before the transaction, so the program stays locked only for
	// the writes.
	l.BodyHTML = models.RenderMarkdown(l.Body)
	l.ReflectionPrompts = renderPrompts(in.ReflectionPrompts)

	err := s.inCatalogTx(ctx, func(tx *gorm.DB) error {
		if err := lockLessonOrder(tx, programID); err != nil {
			return err
		}
		var last int
		if err := tx.Raw(`SELECT COALESCE(MAX(position), 0) FROM lessons WHERE program_id = ?`, programID).Scan(&last).Error; err != nil {
			return fmt.Errorf("last lesson position: %w", err)
		}
		l.Position = in.Position
		if l.Position == 0 || l.Position > last {
			l.Position = last + 1
		} else {
			if err := deferPositions(tx); err != nil {
				return err
			}
			if err := tx.Exec(`UPDATE lessons SET position = position + 1 WHERE program_id = ? AND position >= ?`,
				programID, l.Position).Error; err != nil {
				return fmt.Errorf("make room for lesson: %w", err)
			}
		}
		if err := tx.Create(l).Error; err != nil {
			return models.MapDBError(err, "lesson")
		}
		return s.drip.OnLessonSaved(tx, nil, l)
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// GetLesson returns a lesson, published or not.
func (s *Service) GetLesson(ctx context.Context, id uuid.UUID) (*Lesson, error) {
	var l Lesson
	if err := s.DB.WithContext(ctx).Where("id = ?", id).Take(&l).Error; err != nil {
		return nil, models.MapDBError(err, "lesson")
	}
	return &l, nil
}

// ListLessons lists every lesson of a program in position order; an unknown
// program is not found rather than an empty list.
func (s *Service) ListLessons(ctx context.Context, programID uuid.UUID, pp models.PageParams) (models.Page[Lesson], error) {
	cur, err := pp.Decode()
	if err != nil {
		return models.Page[Lesson]{}, err
	}
	db := s.DB.WithContext(ctx)
	var exists bool
	if err := db.Raw(`SELECT EXISTS (SELECT 1 FROM programs WHERE id = ?)`, programID).Scan(&exists).Error; err != nil {
		return models.Page[Lesson]{}, fmt.Errorf("find program: %w", err)
	}
	if !exists {
		return models.Page[Lesson]{}, models.NotFound("program")
	}
	q := db.Where("program_id = ?", programID)
	if cur != nil {
		q = q.Where("(position, id) > (?, ?)", cur.Pos, cur.ID)
	}
	limit := pp.PageSize()
	var rows []Lesson
	if err := q.Order("position, id").Limit(limit + 1).Find(&rows).Error; err != nil {
		return models.Page[Lesson]{}, fmt.Errorf("list lessons: %w", err)
	}
	return models.PageOf(rows, limit, func(l Lesson) models.Cursor { return models.Cursor{Pos: l.Position, ID: l.ID} }), nil
}

// UpdateLesson changes only the fields set in patch, rendering the body again
// when it changes.
func (s *Service) UpdateLesson(ctx context.Context, id uuid.UUID, patch LessonPatch) (*Lesson, error) {
	var c models.Checker
	c.NotNull("title", patch.Title.Cleared())
	c.NotNull("body", patch.Body.Cleared())
	c.NotNull("free_preview", patch.FreePreview.Cleared())
	c.NotNull("unlock_offset_days", patch.UnlockOffsetDays.Cleared())
	c.NotNull("published", patch.Published.Cleared())
	c.NotNull("reflection_prompts", patch.ReflectionPrompts.Cleared())
	if patch.ReflectionPrompts.Set {
		checkPrompts(&c, patch.ReflectionPrompts.Value)
	}
	if err := c.Err(); err != nil {
		return nil, err
	}
	var bodyHTML string
	if patch.Body.Set {
		bodyHTML = models.RenderMarkdown(patch.Body.Value)
	}
	var prompts Prompts
	if patch.ReflectionPrompts.Set {
		prompts = renderPrompts(patch.ReflectionPrompts.Value)
	}

	var l Lesson
	err := s.inCatalogTx(ctx, func(tx *gorm.DB) error {
		if err := tx.Clauses(models.RowLock).Where("id = ?", id).Take(&l).Error; err != nil {
			return models.MapDBError(err, "lesson")
		}
		prev := l
		changes := map[string]any{}
		models.Apply(changes, "title", &l.Title, patch.Title)
		models.Apply(changes, "body", &l.Body, patch.Body)
		if patch.Body.Set {
			// The rendered body is stored beside its source, never apart.
			models.Apply(changes, "body_html", &l.BodyHTML, models.Some(bodyHTML))
		}
		models.ApplyPtr(changes, "media_url", &l.MediaURL, patch.MediaURL)
		models.ApplyPtr(changes, "duration_seconds", &l.DurationSeconds, patch.DurationSeconds)
		models.Apply(changes, "free_preview", &l.FreePreview, patch.FreePreview)
		models.Apply(changes, "unlock_offset_days", &l.UnlockOffsetDays, patch.UnlockOffsetDays)
		models.Apply(changes, "published", &l.Published, patch.Published)
		if patch.ReflectionPrompts.Set {
			// Sources and their HTML are one column, so never apart.
			models.Apply(changes, "reflection_prompts", &l.ReflectionPrompts, models.Some(prompts))
		}
		checkLesson(&c, &l)
		if err := c.Err(); err != nil {
			return err
		}
		if len(changes) == 0 {
			return nil
		}
		l.UpdatedAt = models.StoredTime(s.Now())
		changes["updated_at"] = l.UpdatedAt
		if err := tx.Model(&Lesson{}).Where("id = ?", id).Updates(changes).Error; err != nil {
			return models.MapDBError(err, "lesson")
		}
		return s.drip.OnLessonSaved(tx, &prev, &l)
	})
	if err != nil {
		return nil, err
	}
	return &l, nil
}

// compactPositions renumbers a program's lessons 1..n in their current order.
func compactPositions(tx *gorm.DB, programID uuid.UUID) error {
	if err := deferPositions(tx); err != nil {
		return err
	}
	err := tx.Exec(`
		UPDATE lessons l SET position = r.rn
		FROM (SELECT id, row_number() OVER (ORDER BY position, id) AS rn FROM lessons WHERE program_id = ?) r
		WHERE l.id = r.id AND l.position <> r.rn`, programID).Error
	if err != nil {
		return fmt.Errorf("compact lesson positions: %w", err)
	}
	return nil
}

// DeleteLesson deletes a lesson (and participants' completions of it) and
// closes the gap it leaves in the order.
func (s *Service) DeleteLesson(ctx context.Context, id uuid.UUID) error {
	return s.inCatalogTx(ctx, func(tx *gorm.DB) error {
		var l Lesson
		if err := tx.Select("program_id").Where("id = ?", id).Take(&l).Error; err != nil {
			return models.MapDBError(err, "lesson")
		}
		programID := l.ProgramID
		if err := lockLessonOrder(tx, programID); err != nil {
			return err
		}
		if err := s.drip.OnLessonDeleting(tx, id); err != nil {
			return err
		}
		// Deleted concurrently between the read and the lock: not found.
		res := tx.Exec(`DELETE FROM lessons WHERE id = ? AND program_id = ?`, id, programID)
		if res.Error != nil {
			return models.MapDBError(res.Error, "lesson")
		}
		if res.RowsAffected == 0 {
			return models.NotFound("lesson")
		}
		return compactPositions(tx, programID)
	})
}

// ReorderLessons sets the order of all of a program's lessons at once: ids
// must be exactly its lessons, each once. It returns them in the new order.
func (s *Service) ReorderLessons(ctx context.Context, programID uuid.UUID, ids []uuid.UUID) ([]Lesson, error) {
	seen := make(map[uuid.UUID]bool, len(ids))
	for _, id := range ids {
		if seen[id] {
			return nil, models.Invalid(models.FieldError{Field: "lesson_ids", Message: "must not list a lesson twice"})
		}
		seen[id] = true
	}
	var lessons []Lesson
	err := s.inCatalogTx(ctx, func(tx *gorm.DB) error {
		if err := lockLessonOrder(tx, programID); err != nil {
			return err
		}
		var current []uuid.UUID
		if err := tx.Raw(`SELECT id FROM lessons WHERE program_id = ?`, programID).Scan(&current).Error; err != nil {
			return fmt.Errorf("program lessons: %w", err)
		}
		missing := 0
		for _, id := range current {
			if !seen[id] {
				missing++
			}
		}
		switch {
		case missing > 0:
			return models.Invalid(models.FieldError{Field: "lesson_ids", Message: fmt.Sprintf("must list every lesson of the program; %d missing", missing)})
		case len(ids) != len(current):
			return models.Invalid(models.FieldError{Field: "lesson_ids", Message: "must list only lessons of this program"})
		}
		if len(ids) > 0 {
			if err := deferPositions(tx); err != nil {
				return err
			}
			arr := make([]string, len(ids))
			for i, id := range ids {
				arr[i] = id.String()
			}
			err := tx.Exec(`
				UPDATE lessons SET position = array_position(?::uuid[], id), updated_at = ?
				WHERE program_id = ? AND position <> array_position(?::uuid[], id)`,
				"{"+strings.Join(arr, ",")+"}", s.Now(), programID, "{"+strings.Join(arr, ",")+"}").Error
			if err != nil {
				return fmt.Errorf("reorder lessons: %w", err)
			}
		}
		if err := tx.Where("program_id = ?", programID).Order("position").Find(&lessons).Error; err != nil {
			return fmt.Errorf("reordered lessons: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return lessons, nil
}

type Lesson struct {
	ID               uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	ProgramID        uuid.UUID
	Position         int
	Title            string
	Body             string
	BodyHTML         string `gorm:"column:body_html"`
	MediaURL         *string
	DurationSeconds  *int
	FreePreview      bool
	UnlockOffsetDays int
	Published        bool
	// ReflectionPrompts are never nil once read or written.
	ReflectionPrompts Prompts `gorm:"type:jsonb"`
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

package enroll

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/people"
)

// MaxSessionMinutes is the longest live session, a whole day.
const MaxSessionMinutes = 1440

// LiveSessionInput creates a live session of a cohort.
type LiveSessionInput struct {
	Title           string
	StartsAt        time.Time
	DurationMinutes int
	MeetingURL      *string
	RecordingURL    *string
}

// LiveSessionPatch changes the fields that are Set; the links may be Null
// (cleared), the others may not.
type LiveSessionPatch struct {
	Title           models.Optional[string]
	StartsAt        models.Optional[time.Time]
	DurationMinutes models.Optional[int]
	MeetingURL      models.Optional[string]
	RecordingURL    models.Optional[string]
}

// EndsAt is when the session is over.
func (l *LiveSession) EndsAt() time.Time {
	return l.StartsAt.Add(time.Duration(l.DurationMinutes) * time.Minute)
}

func checkLiveSession(c *models.Checker, l *LiveSession) {
	c.Text("title", l.Title, 1, 200)
	models.SingleLine(c, "title", l.Title)
	if l.StartsAt.IsZero() {
		c.Add("starts_at", "is required")
	}
	if l.DurationMinutes < 1 || l.DurationMinutes > MaxSessionMinutes {
		c.Add("duration_minutes", fmt.Sprintf("must be from 1 to %d", MaxSessionMinutes))
	}
	for _, u := range []struct {
		field string
		v     *string
	}{{"meeting_url", l.MeetingURL}, {"recording_url", l.RecordingURL}} {
		if u.v == nil {
			continue
		}
		// The schema's check is case-sensitive; url.Parse is not.
		if strings.HasPrefix(*u.v, "http://") || strings.HasPrefix(*u.v, "https://") {
			c.HttpURL(u.field, *u.v)
		} else {
			c.Add(u.field, "must be an http or https URL")
		}
	}
}

// findLiveSession reads a session of a cohort the actor manages, locked for
// update when lock is set; any other is not found.
func findLiveSession(tx *gorm.DB, actor *people.Coach, id uuid.UUID, lock bool) (*LiveSession, error) {
	q := tx.Model(&LiveSession{}).Where("live_sessions.id = ?", id)
	if !people.IsAdmin(actor) {
		var coachID uuid.UUID
		if actor != nil {
			coachID = actor.ID
		}
		q = q.Where("EXISTS (SELECT 1 FROM cohort_coaches cc WHERE cc.cohort_id = live_sessions.cohort_id AND cc.coach_id = ?)", coachID)
	}
	if lock {
		q = q.Clauses(models.RowLock)
	}
	var l LiveSession
	if err := q.Take(&l).Error; err != nil {
		return nil, models.MapDBError(err, "live session")
	}
	return &l, nil
}

// ListLiveSessions lists a managed cohort's sessions in the order they happen.
func (s *Service) ListLiveSessions(ctx context.Context, actor *people.Coach, cohortID uuid.UUID, pp models.PageParams) (models.Page[LiveSession], error) {
	cur, err := pp.Decode()
	if err != nil {
		return models.Page[LiveSession]{}, err
	}
	db := s.DB.WithContext(ctx)
	if _, err := FindCohort(db, actor, cohortID, false); err != nil {
		return models.Page[LiveSession]{}, err
	}
	q := db.Where("cohort_id = ?", cohortID)
	if cur != nil {
		q = q.Where("(starts_at, id) > (?, ?)", cur.At, cur.ID)
	}
	limit := pp.PageSize()
	var rows []LiveSession
	if err := q.Order("starts_at, id").Limit(limit + 1).Find(&rows).Error; err != nil {
		return models.Page[LiveSession]{}, fmt.Errorf("list live sessions: %w", err)
	}
	return models.PageOf(rows, limit, func(l LiveSession) models.Cursor { return models.Cursor{At: l.StartsAt, ID: l.ID} }), nil
}

// CreateLiveSession adds a session to a cohort the actor manages.
func (s *Service) CreateLiveSession(ctx context.Context, actor *people.Coach, cohortID uuid.UUID, in LiveSessionInput) (*LiveSession, error) {
	now := models.StoredTime(s.Now())
	l := &LiveSession{
		CohortID: cohortID, Title: in.Title, StartsAt: models.StoredTime(in.StartsAt), DurationMinutes: in.DurationMinutes,
		MeetingURL: in.MeetingURL, RecordingURL: in.RecordingURL, CreatedAt: now, UpdatedAt: now,
	}
	var c models.Checker
	checkLiveSession(&c, l)
	if err := c.Err(); err != nil {
		return nil, err
	}
	err := s.InTx(ctx, func(tx *gorm.DB) error {
		// Read first so a cohort she does not manage is not found, never a
		// foreign-key conflict that would reveal it exists.
		if _, err := FindCohort(tx, actor, cohortID, false); err != nil {
			return err
		}
		if err := tx.Create(l).Error; err != nil {
			return models.MapDBError(err, "live session")
		}
		return s.drip.OnLiveSessionCreated(tx, l)
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// UpdateLiveSession changes only the fields set in patch.
func (s *Service) UpdateLiveSession(ctx context.Context, actor *people.Coach, id uuid.UUID, patch LiveSessionPatch) (*LiveSession, error) {
	var c models.Checker
	c.NotNull("title", patch.Title.Cleared())
	c.NotNull("starts_at", patch.StartsAt.Cleared())
	c.NotNull("duration_minutes", patch.DurationMinutes.Cleared())
	if err := c.Err(); err != nil {
		return nil, err
	}
	var l *LiveSession
	err := s.InTx(ctx, func(tx *gorm.DB) error {
		var err error
		if l, err = findLiveSession(tx, actor, id, true); err != nil {
			return err
		}
		changes := map[string]any{}
		models.Apply(changes, "title", &l.Title, patch.Title)
		startsAt := patch.StartsAt
		startsAt.Value = models.StoredTime(startsAt.Value) // as the database will store it
		models.Apply(changes, "starts_at", &l.StartsAt, startsAt)
		models.Apply(changes, "duration_minutes", &l.DurationMinutes, patch.DurationMinutes)
		models.ApplyPtr(changes, "meeting_url", &l.MeetingURL, patch.MeetingURL)
		models.ApplyPtr(changes, "recording_url", &l.RecordingURL, patch.RecordingURL)
		checkLiveSession(&c, l)
		if err := c.Err(); err != nil {
			return err
		}
		if len(changes) == 0 {
			return nil
		}
		l.UpdatedAt = models.StoredTime(s.Now())
		changes["updated_at"] = l.UpdatedAt
		if err := tx.Model(&LiveSession{}).Where("id = ?", id).Updates(changes).Error; err != nil {
			return models.MapDBError(err, "live session")
		}
		if patch.StartsAt.Set {
			return s.drip.OnLiveSessionMoved(tx, l)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// DeleteLiveSession removes a session of a cohort the actor manages.
func (s *Service) DeleteLiveSession(ctx context.Context, actor *people.Coach, id uuid.UUID) error {
	return s.InTx(ctx, func(tx *gorm.DB) error {
		if _, err := findLiveSession(tx, actor, id, true); err != nil {
			return err
		}
		if err := s.drip.OnLiveSessionDeleting(tx, id); err != nil {
			return err
		}
		if err := tx.Exec(`DELETE FROM live_sessions WHERE id = ?`, id).Error; err != nil {
			return models.MapDBError(err, "live session")
		}
		return nil
	})
}

type LiveSession struct {
	ID              uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	CohortID        uuid.UUID
	Title           string
	StartsAt        time.Time
	DurationMinutes int
	MeetingURL      *string
	RecordingURL    *string
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

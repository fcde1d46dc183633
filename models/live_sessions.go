package models

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
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
	Title           Optional[string]
	StartsAt        Optional[time.Time]
	DurationMinutes Optional[int]
	MeetingURL      Optional[string]
	RecordingURL    Optional[string]
}

// EndsAt is when the session is over.
func (l *LiveSession) EndsAt() time.Time {
	return l.StartsAt.Add(time.Duration(l.DurationMinutes) * time.Minute)
}

func checkLiveSession(c *checker, l *LiveSession) {
	c.text("title", l.Title, 1, 200)
	singleLine(c, "title", l.Title)
	if l.StartsAt.IsZero() {
		c.add("starts_at", "is required")
	}
	if l.DurationMinutes < 1 || l.DurationMinutes > MaxSessionMinutes {
		c.add("duration_minutes", fmt.Sprintf("must be from 1 to %d", MaxSessionMinutes))
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
			c.httpURL(u.field, *u.v)
		} else {
			c.add(u.field, "must be an http or https URL")
		}
	}
}

// findLiveSession reads a session of a cohort the actor manages, locked for
// update when lock is set; any other is not found.
func findLiveSession(tx *gorm.DB, actor *Coach, id uuid.UUID, lock bool) (*LiveSession, error) {
	q := tx.Model(&LiveSession{}).Where("live_sessions.id = ?", id)
	if !isAdmin(actor) {
		var coachID uuid.UUID
		if actor != nil {
			coachID = actor.ID
		}
		q = q.Where("EXISTS (SELECT 1 FROM cohort_coaches cc WHERE cc.cohort_id = live_sessions.cohort_id AND cc.coach_id = ?)", coachID)
	}
	if lock {
		q = q.Clauses(catalogRowLock)
	}
	var l LiveSession
	if err := q.Take(&l).Error; err != nil {
		return nil, mapDBError(err, "live session")
	}
	return &l, nil
}

// ListLiveSessions lists a managed cohort's sessions in the order they happen.
func (s *Service) ListLiveSessions(ctx context.Context, actor *Coach, cohortID uuid.UUID, pp PageParams) (Page[LiveSession], error) {
	cur, err := pp.decode()
	if err != nil {
		return Page[LiveSession]{}, err
	}
	db := s.db.WithContext(ctx)
	if _, err := findCohort(db, actor, cohortID, false); err != nil {
		return Page[LiveSession]{}, err
	}
	q := db.Where("cohort_id = ?", cohortID)
	if cur != nil {
		q = q.Where("(starts_at, id) > (?, ?)", cur.At, cur.ID)
	}
	limit := pp.limit()
	var rows []LiveSession
	if err := q.Order("starts_at, id").Limit(limit + 1).Find(&rows).Error; err != nil {
		return Page[LiveSession]{}, fmt.Errorf("list live sessions: %w", err)
	}
	return pageOf(rows, limit, func(l LiveSession) cursor { return cursor{At: l.StartsAt, ID: l.ID} }), nil
}

// CreateLiveSession adds a session to a cohort the actor manages.
func (s *Service) CreateLiveSession(ctx context.Context, actor *Coach, cohortID uuid.UUID, in LiveSessionInput) (*LiveSession, error) {
	now := storedTime(s.Now())
	l := &LiveSession{
		CohortID: cohortID, Title: in.Title, StartsAt: storedTime(in.StartsAt), DurationMinutes: in.DurationMinutes,
		MeetingURL: in.MeetingURL, RecordingURL: in.RecordingURL, CreatedAt: now, UpdatedAt: now,
	}
	var c checker
	checkLiveSession(&c, l)
	if err := c.err(); err != nil {
		return nil, err
	}
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		// Read first so a cohort she does not manage is not found, never a
		// foreign-key conflict that would reveal it exists.
		if _, err := findCohort(tx, actor, cohortID, false); err != nil {
			return err
		}
		if err := tx.Create(l).Error; err != nil {
			return mapDBError(err, "live session")
		}
		return s.onLiveSessionCreated(tx, l)
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// UpdateLiveSession changes only the fields set in patch.
func (s *Service) UpdateLiveSession(ctx context.Context, actor *Coach, id uuid.UUID, patch LiveSessionPatch) (*LiveSession, error) {
	var c checker
	c.notNull("title", patch.Title.Cleared())
	c.notNull("starts_at", patch.StartsAt.Cleared())
	c.notNull("duration_minutes", patch.DurationMinutes.Cleared())
	if err := c.err(); err != nil {
		return nil, err
	}
	var l *LiveSession
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		var err error
		if l, err = findLiveSession(tx, actor, id, true); err != nil {
			return err
		}
		changes := map[string]any{}
		if patch.Title.Set {
			l.Title, changes["title"] = patch.Title.Value, patch.Title.Value
		}
		if patch.StartsAt.Set {
			l.StartsAt = storedTime(patch.StartsAt.Value)
			changes["starts_at"] = l.StartsAt
		}
		if patch.DurationMinutes.Set {
			l.DurationMinutes, changes["duration_minutes"] = patch.DurationMinutes.Value, patch.DurationMinutes.Value
		}
		if patch.MeetingURL.Set {
			l.MeetingURL = patch.MeetingURL.Ptr()
			changes["meeting_url"] = l.MeetingURL
		}
		if patch.RecordingURL.Set {
			l.RecordingURL = patch.RecordingURL.Ptr()
			changes["recording_url"] = l.RecordingURL
		}
		checkLiveSession(&c, l)
		if err := c.err(); err != nil {
			return err
		}
		if len(changes) == 0 {
			return nil
		}
		l.UpdatedAt = storedTime(s.Now())
		changes["updated_at"] = l.UpdatedAt
		if err := tx.Model(&LiveSession{}).Where("id = ?", id).Updates(changes).Error; err != nil {
			return mapDBError(err, "live session")
		}
		if patch.StartsAt.Set {
			return s.onLiveSessionMoved(tx, l)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// DeleteLiveSession removes a session of a cohort the actor manages.
func (s *Service) DeleteLiveSession(ctx context.Context, actor *Coach, id uuid.UUID) error {
	return s.inTx(ctx, func(tx *gorm.DB) error {
		if _, err := findLiveSession(tx, actor, id, true); err != nil {
			return err
		}
		if err := s.onLiveSessionDeleting(tx, id); err != nil {
			return err
		}
		if err := tx.Exec(`DELETE FROM live_sessions WHERE id = ?`, id).Error; err != nil {
			return mapDBError(err, "live session")
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

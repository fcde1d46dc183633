package people

import (
	"context"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
)

// Me is her own profile as the portal shows it: her settings, whether her
// email is paused right now, and the crisis resources.
type Me struct {
	Participant
	// Paused is whether her email is paused now; PausedUntil is when it
	// resumes by itself (nil: paused until she resumes, or not paused).
	Paused      bool
	PausedUntil *time.Time
	Crisis      *catalog.CrisisResources
}

// Me is p as her portal shows it.
func (s *Service) Me(ctx context.Context, p *Participant) *Me {
	me := &Me{Participant: *p, Crisis: s.crisis.CrisisResources(ctx)}
	if p.Paused(s.Now()) {
		me.Paused, me.PausedUntil = true, models.StoredTimePtr(p.PausedUntil)
	}
	return me
}

// PauseInput is a pause. Until is an RFC 3339 date-time, or a date (her
// email resumes at the start of that day in her time zone), in the future;
// null or absent pauses until she resumes.
type PauseInput struct {
	Until models.Optional[string]
}

// Pause holds all email to her but sign-in credentials (login links,
// erase codes) until in.Until or until she resumes: drip steps due
// meanwhile are skipped with reason "paused", and other email is cancelled
// at send time (emails.Worker). Pausing again moves the end of the pause.
func (s *Service) Pause(ctx context.Context, p *Participant, in PauseInput) (*Me, error) {
	now := s.Now()
	var until *time.Time
	if in.Until.Set && !in.Until.Null {
		t, err := parsePauseUntil(in.Until.Value, p.Timezone)
		if err != nil {
			return nil, err
		}
		if !t.After(now) {
			return nil, models.Invalid(models.FieldError{Field: "until", Message: "must be in the future"})
		}
		until = models.StoredTimePtr(&t)
	}
	// A pause already running keeps its start: the steps it skipped stay
	// skipped, and the window it covers only grows.
	err := s.updatePause(ctx, p.ID, `
		UPDATE participants
		SET paused_at = CASE WHEN paused_at IS NOT NULL AND (paused_until IS NULL OR paused_until > @now) THEN paused_at ELSE @now END,
		    paused_until = @until, updated_at = @now
		WHERE id = @id`, map[string]any{"now": now, "until": until, "id": p.ID})
	if err != nil {
		return nil, err
	}
	return s.meByID(ctx, p.ID)
}

// Resume ends her pause now: email due from now on is sent. Resuming when
// not paused changes nothing.
func (s *Service) Resume(ctx context.Context, p *Participant) (*Me, error) {
	err := s.updatePause(ctx, p.ID, `
		UPDATE participants SET paused_at = NULL, paused_until = NULL, updated_at = @now
		WHERE id = @id AND paused_at IS NOT NULL`, map[string]any{"now": s.Now(), "id": p.ID})
	if err != nil {
		return nil, err
	}
	return s.meByID(ctx, p.ID)
}

func (s *Service) updatePause(ctx context.Context, id uuid.UUID, sql string, args map[string]any) error {
	return s.InTx(ctx, func(tx *gorm.DB) error {
		return models.MapDBError(tx.Exec(sql, args).Error, "participant")
	})
}

func (s *Service) meByID(ctx context.Context, id uuid.UUID) (*Me, error) {
	var p Participant
	if err := s.DB.WithContext(ctx).Where("id = ?", id).Take(&p).Error; err != nil {
		return nil, models.MapDBError(err, "participant")
	}
	return s.Me(ctx, &p), nil
}

// parsePauseUntil reads an RFC 3339 date-time, or a date taken as the start
// of that day in her zone.
func parsePauseUntil(v, zone string) (time.Time, error) {
	v = strings.TrimSpace(v)
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t.UTC(), nil
	}
	if d, err := time.Parse(time.DateOnly, v); err == nil {
		loc := gateLocation(zone)
		return time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, loc).UTC(), nil
	}
	return time.Time{}, models.Invalid(models.FieldError{Field: "until",
		Message: "must be an RFC 3339 date-time (2026-03-01T09:00:00Z), a date (2026-03-01) or null"})
}

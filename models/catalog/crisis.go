package catalog

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
)

// The crisis resources are one coach-edited text (Markdown, rendered and
// sanitised on write like a lesson) shown beside every participant-facing
// page: where to turn when she is in danger, and that this is coaching, not
// psychotherapy. They ride along with the portal's hottest read, the
// lesson, which must stay one round trip, so each process serves them from
// memory: an edit through this process replaces the copy at once (and
// purges the public program pages that carry it); other processes pick it
// up within crisisTTL, refreshed in the background so no reader waits.

const (
	// crisisTTL is how stale another process's edit may be seen here.
	crisisTTL = time.Minute
	// crisisRefreshTimeout bounds a background refresh.
	crisisRefreshTimeout = 5 * time.Second
	// CrisisMaxLength is the longest text, in characters.
	CrisisMaxLength = 20000
)

// CrisisResources is the current text. UpdatedAt is its version: an edit
// that names an older one is refused.
type CrisisResources struct {
	Body      string
	BodyHTML  string
	UpdatedAt time.Time
}

// CrisisInput is an edit. IfUpdatedAt, when set, must equal the stored
// version (the one the editor loaded): two coaches editing at once do not
// silently overwrite each other.
type CrisisInput struct {
	Body        string
	IfUpdatedAt *time.Time
}

var (
	errCrisisChanged = models.E(models.KindConflict, "crisis_resources_changed",
		"The crisis resources were edited since you loaded them. Reload them and make your change again.")
	errCrisisNotSet = models.E(models.KindNotFound, "not_found", "No crisis resources have been written yet.")
)

type crisisRow struct {
	ID        bool `gorm:"primaryKey"`
	Body      string
	BodyHTML  string
	UpdatedBy *uuid.UUID `gorm:"type:uuid"`
	CreatedAt time.Time
	UpdatedAt time.Time
}

func (crisisRow) TableName() string { return "crisis_resources" }

func (r *crisisRow) resources() *CrisisResources {
	return &CrisisResources{Body: r.Body, BodyHTML: r.BodyHTML, UpdatedAt: r.UpdatedAt.UTC()}
}

type crisisCache struct {
	mu         sync.Mutex
	cur        *CrisisResources // nil: none written yet
	loaded     bool
	loadedAt   time.Time
	gen        uint64 // counts edits, so a refresh read before one is not stored after it
	refreshing bool
}

// CrisisResources is the current text for a participant-facing answer, or
// nil when none has been written. It never fails a page: the first call in
// a process reads the database, later ones answer from memory, and a text
// that cannot be read is logged and left out.
func (s *Service) CrisisResources(ctx context.Context) *CrisisResources {
	c, now := s.crisis, s.Now()
	c.mu.Lock()
	if c.loaded {
		cur := c.cur
		if now.Sub(c.loadedAt) >= crisisTTL && !c.refreshing {
			c.refreshing = true
			gen := c.gen
			go s.refreshCrisis(context.WithoutCancel(ctx), gen)
		}
		c.mu.Unlock()
		return cur
	}
	gen := c.gen
	c.mu.Unlock()
	cur, err := s.readCrisis(ctx)
	if err != nil {
		s.Log.WarnContext(ctx, "crisis resources not read; the answer goes without them", "error", err)
		return nil
	}
	s.storeCrisis(cur, gen, now)
	return cur
}

// cachedCrisis is the copy in memory, whatever its age, without reading.
func (s *Service) cachedCrisis() *CrisisResources {
	s.crisis.mu.Lock()
	defer s.crisis.mu.Unlock()
	return s.crisis.cur
}

func (s *Service) refreshCrisis(ctx context.Context, gen uint64) {
	ctx, cancel := context.WithTimeout(ctx, crisisRefreshTimeout)
	defer cancel()
	cur, err := s.readCrisis(ctx)
	if err != nil {
		s.Log.WarnContext(ctx, "crisis resources not refreshed; the last copy stays", "error", err)
		s.crisis.mu.Lock()
		s.crisis.refreshing = false
		s.crisis.mu.Unlock()
		return
	}
	s.storeCrisis(cur, gen, s.Now())
}

// storeCrisis keeps cur unless an edit committed since it was read.
func (s *Service) storeCrisis(cur *CrisisResources, gen uint64, now time.Time) {
	c := s.crisis
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refreshing = false
	if gen != c.gen {
		return
	}
	c.cur, c.loaded, c.loadedAt = cur, true, now
}

func (s *Service) readCrisis(ctx context.Context) (*CrisisResources, error) {
	var rows []crisisRow
	if err := s.DB.WithContext(ctx).Limit(1).Find(&rows).Error; err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, nil
	}
	return rows[0].resources(), nil
}

// GetCrisisResources is the text as stored, for the editor: read from the
// database, so she edits the latest version.
func (s *Service) GetCrisisResources(ctx context.Context) (*CrisisResources, error) {
	cur, err := s.readCrisis(ctx)
	if err != nil {
		return nil, models.MapDBError(err, "crisis resources")
	}
	if cur == nil {
		return nil, errCrisisNotSet
	}
	return cur, nil
}

// PutCrisisResources replaces the text, rendering its HTML, and makes this
// process serve the new version at once, its public program pages
// included.
func (s *Service) PutCrisisResources(ctx context.Context, editor uuid.UUID, in CrisisInput) (*CrisisResources, error) {
	var c models.Checker
	c.Text("body", in.Body, 1, CrisisMaxLength)
	if err := c.Err(); err != nil {
		return nil, err
	}
	now := models.StoredTime(s.Now())
	row := crisisRow{ID: true, Body: in.Body, BodyHTML: models.RenderMarkdown(in.Body), UpdatedBy: &editor, CreatedAt: now, UpdatedAt: now}
	err := s.InTx(ctx, func(tx *gorm.DB) error {
		var cur crisisRow
		err := tx.Clauses(models.RowLock).Where("id").Take(&cur).Error
		switch {
		case errors.Is(err, gorm.ErrRecordNotFound):
			if in.IfUpdatedAt != nil {
				return errCrisisChanged
			}
			// Two first edits at once: the loser's insert conflicts and it
			// is told to reload, like any other lost race.
			res := tx.Exec(`INSERT INTO crisis_resources (id, body, body_html, updated_by, created_at, updated_at)
				VALUES (true, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`, row.Body, row.BodyHTML, editor, now, now)
			if res.Error != nil {
				return models.MapDBError(res.Error, "crisis resources")
			}
			if res.RowsAffected == 0 {
				return errCrisisChanged
			}
			return nil
		case err != nil:
			return models.MapDBError(err, "crisis resources")
		}
		if in.IfUpdatedAt != nil && !models.StoredTime(*in.IfUpdatedAt).Equal(cur.UpdatedAt) {
			return errCrisisChanged
		}
		if !now.After(cur.UpdatedAt) {
			// The version must move on every edit, even within a clock tick.
			now = cur.UpdatedAt.Add(time.Microsecond)
			row.UpdatedAt = now
		}
		row.CreatedAt = cur.CreatedAt
		return models.MapDBError(tx.Exec(`UPDATE crisis_resources SET body = ?, body_html = ?, updated_by = ?, updated_at = ? WHERE id`,
			row.Body, row.BodyHTML, editor, now).Error, "crisis resources")
	})
	if err != nil {
		return nil, err
	}
	out := row.resources()
	c2 := s.crisis
	c2.mu.Lock()
	c2.gen++
	c2.cur, c2.loaded, c2.loadedAt = out, true, s.Now()
	c2.mu.Unlock()
	s.catalogChanged()
	return out, nil
}

// SeedCrisisResources writes body as the crisis resources unless some are
// already written: the seed never overwrites the coach's edit.
func (s *Service) SeedCrisisResources(ctx context.Context, body string) (bool, error) {
	now := models.StoredTime(s.Now())
	res := s.DB.WithContext(ctx).Exec(`INSERT INTO crisis_resources (id, body, body_html, created_at, updated_at)
		VALUES (true, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`, body, models.RenderMarkdown(body), now, now)
	if res.Error != nil {
		return false, models.MapDBError(res.Error, "crisis resources")
	}
	if res.RowsAffected == 1 {
		s.crisis.mu.Lock()
		s.crisis.gen++
		s.crisis.loaded = false
		s.crisis.mu.Unlock()
		s.catalogChanged()
	}
	return res.RowsAffected == 1, nil
}

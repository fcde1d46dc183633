package catalog

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
)

// MaxPriceCents caps a program's price (10 million in major units), far above
// any real price, so a typo of extra zeros is caught.
const MaxPriceCents int64 = 10_000_000_00

// DefaultCurrency is the currency of a program created without one.
const DefaultCurrency = "EUR"

// ProgramInput creates a program. Zero Status is draft, empty Currency EUR.
type ProgramInput struct {
	Slug            string
	Title           string
	Summary         string
	Description     string
	Status          ProgramStatus
	FreeAccessUntil *time.Time
	PriceCents      int64
	Currency        string
}

// ProgramPatch changes the fields that are Set; FreeAccessUntil Null closes
// the free-access window. Null is refused for every other field.
type ProgramPatch struct {
	Slug            models.Optional[string]
	Title           models.Optional[string]
	Summary         models.Optional[string]
	Description     models.Optional[string]
	Status          models.Optional[ProgramStatus]
	FreeAccessUntil models.Optional[time.Time]
	PriceCents      models.Optional[int64]
	Currency        models.Optional[string]
	// LeadCoachID is the coach whose program it is: she sees the women who
	// claim it. Only an admin sets it; Null leaves the program without one.
	LeadCoachID models.Optional[uuid.UUID]
}

// Actor is who changes the catalogue (people.Coach): any coach edits
// programs, but only an admin decides whose participants a program's
// claimants become.
type Actor interface{ IsAdmin() bool }

var errLeadAdminOnly = models.E(models.KindForbidden, "forbidden", "Only an admin may choose a program's lead coach.")

func validProgramStatus(s ProgramStatus) bool {
	return s == ProgramDraft || s == ProgramPublished || s == ProgramArchived
}

// checkProgram validates every field of p, so the client sees all problems
// at once. free_access_until may be in the past: that is a closed window.
func checkProgram(c *models.Checker, p *Program) {
	if len(p.Slug) > 100 || !models.SlugRE.MatchString(p.Slug) {
		c.Add("slug", "must be lowercase letters and digits in dash-separated words, at most 100 characters")
	}
	c.Text("title", p.Title, 1, 200)
	c.Text("summary", p.Summary, 0, 1000)
	c.Text("description", p.Description, 0, 100000)
	if !validProgramStatus(p.Status) {
		c.Add("status", "must be one of: draft, published, archived")
	}
	if p.PriceCents < 0 || p.PriceCents > MaxPriceCents {
		c.Add("price_cents", fmt.Sprintf("must be from 0 to %d", MaxPriceCents))
	}
	if !models.CurrencyRE.MatchString(p.Currency) {
		c.Add("currency", "must be a three-letter ISO 4217 code in capitals, such as EUR")
	}
}

// programWriteError turns a write's database error into the error the coach
// can act on.
func programWriteError(err error, slug string) error {
	if models.IsUniqueViolation(err, "programs_slug_key") {
		e := &models.Error{Kind: models.KindConflict, Code: "slug_taken", Message: fmt.Sprintf("Another program already uses the slug %q.", slug), Err: err}
		e.Fields = []models.FieldError{{Field: "slug", Message: "is already used by another program"}}
		return e
	}
	return models.MapDBError(err, "program")
}

// CreateProgram adds a program; a duplicate slug is 409 slug_taken.
func (s *Service) CreateProgram(ctx context.Context, in ProgramInput) (*Program, error) {
	now := models.StoredTime(s.Now())
	p := &Program{
		Slug: in.Slug, Title: in.Title, Summary: in.Summary, Description: in.Description,
		Status: in.Status, FreeAccessUntil: in.FreeAccessUntil, PriceCents: in.PriceCents, Currency: in.Currency,
		CreatedAt: now, UpdatedAt: now,
	}
	if p.Status == "" {
		p.Status = ProgramDraft
	}
	if p.Currency == "" {
		p.Currency = DefaultCurrency
	}
	if p.FreeAccessUntil != nil {
		t := models.StoredTime(*p.FreeAccessUntil)
		p.FreeAccessUntil = &t
	}
	var c models.Checker
	checkProgram(&c, p)
	if err := c.Err(); err != nil {
		return nil, err
	}
	if err := s.DB.WithContext(ctx).Create(p).Error; err != nil {
		return nil, programWriteError(err, p.Slug)
	}
	s.catalogChanged()
	return p, nil
}

// GetProgram returns any program, whatever its status.
func (s *Service) GetProgram(ctx context.Context, id uuid.UUID) (*Program, error) {
	var p Program
	if err := s.DB.WithContext(ctx).Where("id = ?", id).Take(&p).Error; err != nil {
		return nil, models.MapDBError(err, "program")
	}
	return &p, nil
}

// ListPrograms lists programs newest first, optionally only those with the
// status ("" for all).
func (s *Service) ListPrograms(ctx context.Context, status string, pp models.PageParams) (models.Page[Program], error) {
	q := s.DB.WithContext(ctx).Model(&Program{})
	if status != "" {
		if !validProgramStatus(ProgramStatus(status)) {
			e := models.E(models.KindBadRequest, "invalid_query", "status must be one of draft, published, archived.")
			e.Fields = []models.FieldError{{Field: "status", Message: "must be one of: draft, published, archived"}}
			return models.Page[Program]{}, e
		}
		q = q.Where("status = ?", status)
	}
	return listProgramsNewestFirst(q, pp)
}

// listProgramsNewestFirst pages q by (created_at, id) descending.
func listProgramsNewestFirst(q *gorm.DB, pp models.PageParams) (models.Page[Program], error) {
	return models.PageNewestFirst(q, pp, "programs", func(p Program) models.Cursor { return models.Cursor{At: p.CreatedAt, ID: p.ID} })
}

// UpdateProgram changes only the fields set in patch.
func (s *Service) UpdateProgram(ctx context.Context, actor Actor, id uuid.UUID, patch ProgramPatch) (*Program, error) {
	if patch.LeadCoachID.Set && (actor == nil || !actor.IsAdmin()) {
		return nil, errLeadAdminOnly
	}
	var c models.Checker
	c.NotNull("slug", patch.Slug.Cleared())
	c.NotNull("title", patch.Title.Cleared())
	c.NotNull("summary", patch.Summary.Cleared())
	c.NotNull("description", patch.Description.Cleared())
	c.NotNull("status", patch.Status.Cleared())
	c.NotNull("price_cents", patch.PriceCents.Cleared())
	c.NotNull("currency", patch.Currency.Cleared())
	if err := c.Err(); err != nil {
		return nil, err
	}

	var p Program
	err := s.inCatalogTx(ctx, func(tx *gorm.DB) error {
		if err := tx.Clauses(models.RowLock).Where("id = ?", id).Take(&p).Error; err != nil {
			return models.MapDBError(err, "program")
		}
		changes := map[string]any{}
		models.Apply(changes, "slug", &p.Slug, patch.Slug)
		models.Apply(changes, "title", &p.Title, patch.Title)
		models.Apply(changes, "summary", &p.Summary, patch.Summary)
		models.Apply(changes, "description", &p.Description, patch.Description)
		models.Apply(changes, "status", &p.Status, patch.Status)
		until := patch.FreeAccessUntil
		until.Value = models.StoredTime(until.Value)
		models.ApplyPtr(changes, "free_access_until", &p.FreeAccessUntil, until)
		models.Apply(changes, "price_cents", &p.PriceCents, patch.PriceCents)
		models.Apply(changes, "currency", &p.Currency, patch.Currency)
		models.ApplyPtr(changes, "lead_coach_id", &p.LeadCoachID, patch.LeadCoachID)
		checkProgram(&c, &p)
		if patch.LeadCoachID.Set && p.LeadCoachID != nil {
			// The coaches table belongs to people; its key is all the
			// catalogue needs, and an inactive coach cannot sign in to lead.
			var active bool
			if err := tx.Raw(`SELECT EXISTS (SELECT 1 FROM coaches WHERE id = ? AND active)`, *p.LeadCoachID).Scan(&active).Error; err != nil {
				return fmt.Errorf("find lead coach: %w", err)
			}
			if !active {
				c.Add("lead_coach_id", "must name an active coach")
			}
		}
		if err := c.Err(); err != nil {
			return err
		}
		if len(changes) == 0 {
			return nil
		}
		p.UpdatedAt = models.StoredTime(s.Now())
		changes["updated_at"] = p.UpdatedAt
		if err := tx.Model(&Program{}).Where("id = ?", id).Updates(changes).Error; err != nil {
			return programWriteError(err, p.Slug)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &p, nil
}

var errProgramInUse = models.E(models.KindConflict, "program_in_use",
	"Participants hold access to this program, so it cannot be deleted. Set its status to archived instead: that hides it from the catalogue and keeps their access and history.")

// DeleteProgram deletes a program and its lessons, unless anyone was ever
// granted access to it: her grant, progress and consents would lose their
// program, so the coach archives it instead.
func (s *Service) DeleteProgram(ctx context.Context, id uuid.UUID) error {
	return s.inCatalogTx(ctx, func(tx *gorm.DB) error {
		// The row lock conflicts with the key-share lock a concurrent grant
		// takes through its foreign key, so no grant slips in between the
		// check and the delete.
		var p Program
		if err := tx.Clauses(models.RowLock).Select("id").Where("id = ?", id).Take(&p).Error; err != nil {
			return models.MapDBError(err, "program")
		}
		var inUse bool
		if err := tx.Raw(`SELECT EXISTS (SELECT 1 FROM access_grants WHERE program_id = ?)`, id).Scan(&inUse).Error; err != nil {
			return fmt.Errorf("check program grants: %w", err)
		}
		if inUse {
			return errProgramInUse
		}
		if err := tx.Exec(`DELETE FROM programs WHERE id = ?`, id).Error; err != nil {
			if code, _ := models.PgCode(err); code == models.PgForeignKeyViolation {
				return errProgramInUse
			}
			return models.MapDBError(err, "program")
		}
		return nil
	})
}

// ProgramStatus is the publication state of a program.
type ProgramStatus string

type Program struct {
	ID              uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	Slug            string
	Title           string
	Summary         string
	Description     string
	Status          ProgramStatus
	FreeAccessUntil *time.Time
	PriceCents      int64
	Currency        string
	LeadCoachID     *uuid.UUID `gorm:"type:uuid"`
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// FreeAccessOpen reports whether anyone may claim free access at now.
func (p *Program) FreeAccessOpen(now time.Time) bool {
	return p.Status == ProgramPublished && p.FreeAccessUntil != nil && now.Before(*p.FreeAccessUntil)
}

const (
	ProgramDraft     ProgramStatus = "draft"
	ProgramPublished ProgramStatus = "published"
	ProgramArchived  ProgramStatus = "archived"
)

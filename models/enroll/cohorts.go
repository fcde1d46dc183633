package enroll

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/people"
)

// Cohort limits, the same as the schema's checks.
const (
	MaxCohortCapacity   = 10000
	MaxCohortPriceCents = 100000000
	MaxCohortCoaches    = 20
)

var (
	errCohortInUse = models.E(models.KindConflict, "cohort_in_use",
		"Only a draft cohort nobody has enrolled in can be deleted. Set its status to cancelled instead: that keeps every enrollment and payment on record.")
	errCapacityBelowPaid = models.E(models.KindConflict, "capacity_below_paid",
		"More participants have already paid than this capacity allows. Keep the capacity at or above the paid seats, or refund someone first.")
)

// CohortInput creates a cohort. Empty Status is draft, empty Currency the
// program's; empty CoachIDs makes the creating coach the lead. The first of
// CoachIDs leads, the others co-lead.
type CohortInput struct {
	ProgramID          uuid.UUID
	Name               string
	StartsAt           time.Time
	EndsAt             time.Time
	Timezone           string
	Capacity           int
	PriceCents         int64
	Currency           string
	EnrollmentOpensAt  *time.Time
	EnrollmentClosesAt *time.Time
	Status             CohortStatus
	CoachIDs           []uuid.UUID
}

// CohortPatch changes the fields that are Set. The enrollment window's ends
// may be Null (no limit on that side); every other field must not be.
type CohortPatch struct {
	Name               models.Optional[string]
	StartsAt           models.Optional[time.Time]
	EndsAt             models.Optional[time.Time]
	Timezone           models.Optional[string]
	Capacity           models.Optional[int]
	PriceCents         models.Optional[int64]
	Currency           models.Optional[string]
	EnrollmentOpensAt  models.Optional[time.Time]
	EnrollmentClosesAt models.Optional[time.Time]
	Status             models.Optional[CohortStatus]
	CoachIDs           models.Optional[[]uuid.UUID]
}

// CohortView is a cohort with what the admin screens derive from other
// tables: its coaches (lead first) and how many women are waiting.
type CohortView struct {
	Cohort
	CoachIDs      []uuid.UUID
	WaitlistCount int
}

func validCohortStatus(s CohortStatus) bool {
	return s == CohortDraft || s == CohortOpen || s == CohortClosed || s == CohortCancelled
}

// checkCohort validates every field of co, so the coach sees all problems at
// once.
func checkCohort(c *models.Checker, co *Cohort) {
	c.Text("name", co.Name, 1, 200)
	models.SingleLine(c, "name", co.Name)
	if co.StartsAt.IsZero() {
		c.Add("starts_at", "is required")
	}
	if co.EndsAt.IsZero() {
		c.Add("ends_at", "is required")
	} else if !co.StartsAt.IsZero() && !co.EndsAt.After(co.StartsAt) {
		c.Add("ends_at", "must be after starts_at")
	}
	c.Timezone("timezone", co.Timezone)
	if co.Capacity < 1 || co.Capacity > MaxCohortCapacity {
		c.Add("capacity", fmt.Sprintf("must be from 1 to %d", MaxCohortCapacity))
	}
	if co.PriceCents < 0 || co.PriceCents > MaxCohortPriceCents {
		c.Add("price_cents", fmt.Sprintf("must be from 0 to %d", MaxCohortPriceCents))
	}
	if !models.CurrencyRE.MatchString(co.Currency) {
		c.Add("currency", "must be a three-letter ISO 4217 code in capitals, such as EUR")
	}
	if o, cl := co.EnrollmentOpensAt, co.EnrollmentClosesAt; o != nil && cl != nil && !cl.After(*o) {
		c.Add("enrollment_closes_at", "must be after enrollment_opens_at")
	}
	if !validCohortStatus(co.Status) {
		c.Add("status", "must be one of: draft, open, closed, cancelled")
	}
}

// scopeCohorts limits q (on cohorts) to the cohorts the actor may manage: a
// coach sees only those she leads or co-leads, so another coach's cohort is
// simply not found.
func scopeCohorts(q *gorm.DB, actor *people.Coach) *gorm.DB {
	if people.IsAdmin(actor) {
		return q
	}
	var id uuid.UUID
	if actor != nil {
		id = actor.ID
	}
	return q.Where("EXISTS (SELECT 1 FROM cohort_coaches cc WHERE cc.cohort_id = cohorts.id AND cc.coach_id = ?)", id)
}

// findCohort reads a cohort the actor may manage (locked FOR UPDATE when
// lock is set), or not found.
func FindCohort(tx *gorm.DB, actor *people.Coach, id uuid.UUID, lock bool) (*Cohort, error) {
	q := scopeCohorts(tx.Model(&Cohort{}), actor).Where("cohorts.id = ?", id)
	if lock {
		q = q.Clauses(models.RowLock)
	}
	var co Cohort
	if err := q.Take(&co).Error; err != nil {
		return nil, models.MapDBError(err, "cohort")
	}
	return &co, nil
}

// checkCoachIDs validates a cohort's coach list: no repeats, every one an
// active coach, and a role-coach may not write herself out of a cohort she
// manages (it would vanish from her screens).
func checkCoachIDs(tx *gorm.DB, c *models.Checker, actor *people.Coach, ids []uuid.UUID) error {
	if len(ids) == 0 {
		c.Add("coach_ids", "must name at least one coach")
		return nil
	}
	if len(ids) > MaxCohortCoaches {
		c.Add("coach_ids", fmt.Sprintf("must name at most %d coaches", MaxCohortCoaches))
		return nil
	}
	seen := make(map[uuid.UUID]bool, len(ids))
	for _, id := range ids {
		if seen[id] {
			c.Add("coach_ids", "must not repeat a coach")
			return nil
		}
		seen[id] = true
	}
	var n int64
	if err := tx.Model(&people.Coach{}).Where("id IN ? AND active", ids).Count(&n).Error; err != nil {
		return fmt.Errorf("check coaches: %w", err)
	}
	if int(n) != len(ids) {
		c.Add("coach_ids", "must name only active coaches")
	}
	if !people.IsAdmin(actor) && actor != nil && !seen[actor.ID] {
		c.Add("coach_ids", "must include you, or you could no longer manage this cohort")
	}
	return nil
}

// setCoaches replaces the cohort's coaches: the first leads.
func setCoaches(tx *gorm.DB, cohortID uuid.UUID, ids []uuid.UUID) error {
	if err := tx.Where("cohort_id = ?", cohortID).Delete(&CohortCoach{}).Error; err != nil {
		return fmt.Errorf("clear cohort coaches: %w", err)
	}
	rows := make([]CohortCoach, len(ids))
	for i, id := range ids {
		rows[i] = CohortCoach{CohortID: cohortID, CoachID: id, Lead: i == 0}
	}
	if err := tx.Create(&rows).Error; err != nil {
		return models.MapDBError(err, "cohort coach")
	}
	return nil
}

// cohortViews adds the derived fields to a page of cohorts in one query,
// whatever the page size.
func cohortViews(db *gorm.DB, cohorts []Cohort) ([]CohortView, error) {
	out := make([]CohortView, len(cohorts))
	if len(cohorts) == 0 {
		return out, nil
	}
	ids := make([]uuid.UUID, len(cohorts))
	index := make(map[uuid.UUID]int, len(cohorts))
	for i, c := range cohorts {
		ids[i], index[c.ID] = c.ID, i
		out[i] = CohortView{Cohort: c, CoachIDs: []uuid.UUID{}}
	}
	var rows []struct {
		CohortID uuid.UUID
		CoachID  *uuid.UUID
		Lead     bool
		N        int
	}
	err := db.Raw(`
		SELECT cohort_id, coach_id, lead, 0 AS n FROM cohort_coaches WHERE cohort_id IN ?
		UNION ALL
		SELECT cohort_id, NULL, false, count(*) FROM enrollments WHERE cohort_id IN ? AND status = ? GROUP BY cohort_id
		ORDER BY 1, 3 DESC, 2`, ids, ids, EnrollmentWaitlisted).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("cohort coaches and waitlists: %w", err)
	}
	for _, r := range rows {
		v := &out[index[r.CohortID]]
		if r.CoachID != nil {
			v.CoachIDs = append(v.CoachIDs, *r.CoachID)
		} else {
			v.WaitlistCount = r.N
		}
	}
	return out, nil
}

func cohortView(db *gorm.DB, c *Cohort) (*CohortView, error) {
	views, err := cohortViews(db, []Cohort{*c})
	if err != nil {
		return nil, err
	}
	return &views[0], nil
}

// CreateCohort adds a cohort of an existing program, led by the first of
// in.CoachIDs (the actor when none are given).
func (s *Service) CreateCohort(ctx context.Context, actor *people.Coach, in CohortInput) (*CohortView, error) {
	now := models.StoredTime(s.Now())
	co := &Cohort{
		ProgramID: in.ProgramID, Name: in.Name, StartsAt: models.StoredTime(in.StartsAt), EndsAt: models.StoredTime(in.EndsAt),
		Timezone: in.Timezone, Capacity: in.Capacity, PriceCents: in.PriceCents, Currency: in.Currency,
		EnrollmentOpensAt: models.StoredTimePtr(in.EnrollmentOpensAt), EnrollmentClosesAt: models.StoredTimePtr(in.EnrollmentClosesAt),
		Status: in.Status, CreatedAt: now, UpdatedAt: now,
	}
	if co.Status == "" {
		co.Status = CohortDraft
	}
	coachIDs := in.CoachIDs
	if len(coachIDs) == 0 && actor != nil {
		coachIDs = []uuid.UUID{actor.ID}
	}
	var view *CohortView
	err := s.InTx(ctx, func(tx *gorm.DB) error {
		var p catalog.Program
		if err := tx.Select("id", "currency").Where("id = ?", in.ProgramID).Take(&p).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return models.Invalid(models.FieldError{Field: "program_id", Message: "must name an existing program"})
			}
			return models.MapDBError(err, "program")
		}
		if co.Currency == "" {
			co.Currency = p.Currency
		}
		var c models.Checker
		checkCohort(&c, co)
		if err := checkCoachIDs(tx, &c, actor, coachIDs); err != nil {
			return err
		}
		if err := c.Err(); err != nil {
			return err
		}
		if err := tx.Create(co).Error; err != nil {
			return models.MapDBError(err, "cohort")
		}
		if err := setCoaches(tx, co.ID, coachIDs); err != nil {
			return err
		}
		view = &CohortView{Cohort: *co, CoachIDs: slices.Clone(coachIDs)}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return view, nil
}

// GetCohort returns a cohort the actor manages; any other is not found.
func (s *Service) GetCohort(ctx context.Context, actor *people.Coach, id uuid.UUID) (*CohortView, error) {
	db := s.DB.WithContext(ctx)
	co, err := FindCohort(db, actor, id, false)
	if err != nil {
		return nil, err
	}
	return cohortView(db, co)
}

// ListCohorts lists the cohorts the actor manages by start date, optionally
// of one program.
func (s *Service) ListCohorts(ctx context.Context, actor *people.Coach, programID *uuid.UUID, pp models.PageParams) (models.Page[CohortView], error) {
	cur, err := pp.Decode()
	if err != nil {
		return models.Page[CohortView]{}, err
	}
	db := s.DB.WithContext(ctx)
	q := scopeCohorts(db.Model(&Cohort{}), actor)
	if programID != nil {
		q = q.Where("cohorts.program_id = ?", *programID)
	}
	if cur != nil {
		q = q.Where("(cohorts.starts_at, cohorts.id) > (?, ?)", cur.At, cur.ID)
	}
	limit := pp.PageSize()
	var rows []Cohort
	if err := q.Order("cohorts.starts_at, cohorts.id").Limit(limit + 1).Find(&rows).Error; err != nil {
		return models.Page[CohortView]{}, fmt.Errorf("list cohorts: %w", err)
	}
	page := models.PageOf(rows, limit, func(c Cohort) models.Cursor { return models.Cursor{At: c.StartsAt, ID: c.ID} })
	views, err := cohortViews(db, page.Items)
	if err != nil {
		return models.Page[CohortView]{}, err
	}
	return models.Page[CohortView]{Items: views, NextCursor: page.NextCursor}, nil
}

// UpdateCohort changes only the fields set in patch. Moving the start moves
// the access of every woman enrolled, in the same transaction, so lessons
// unlock on the cohort's new schedule.
func (s *Service) UpdateCohort(ctx context.Context, actor *people.Coach, id uuid.UUID, patch CohortPatch) (*CohortView, error) {
	var c models.Checker
	c.NotNull("name", patch.Name.Cleared())
	c.NotNull("starts_at", patch.StartsAt.Cleared())
	c.NotNull("ends_at", patch.EndsAt.Cleared())
	c.NotNull("timezone", patch.Timezone.Cleared())
	c.NotNull("capacity", patch.Capacity.Cleared())
	c.NotNull("price_cents", patch.PriceCents.Cleared())
	c.NotNull("currency", patch.Currency.Cleared())
	c.NotNull("status", patch.Status.Cleared())
	c.NotNull("coach_ids", patch.CoachIDs.Cleared())
	if err := c.Err(); err != nil {
		return nil, err
	}
	// Times are applied as the database will store them, so the answer
	// shows what a read would.
	stored := func(o models.Optional[time.Time]) models.Optional[time.Time] {
		o.Value = models.StoredTime(o.Value)
		return o
	}

	var view *CohortView
	err := s.InTx(ctx, func(tx *gorm.DB) error {
		co, err := FindCohort(tx, actor, id, true)
		if err != nil {
			return err
		}
		oldStart := co.StartsAt
		prev := *co
		changes := map[string]any{}
		models.Apply(changes, "name", &co.Name, patch.Name)
		models.Apply(changes, "starts_at", &co.StartsAt, stored(patch.StartsAt))
		models.Apply(changes, "ends_at", &co.EndsAt, stored(patch.EndsAt))
		models.Apply(changes, "timezone", &co.Timezone, patch.Timezone)
		models.Apply(changes, "capacity", &co.Capacity, patch.Capacity)
		models.Apply(changes, "price_cents", &co.PriceCents, patch.PriceCents)
		models.Apply(changes, "currency", &co.Currency, patch.Currency)
		models.ApplyPtr(changes, "enrollment_opens_at", &co.EnrollmentOpensAt, stored(patch.EnrollmentOpensAt))
		models.ApplyPtr(changes, "enrollment_closes_at", &co.EnrollmentClosesAt, stored(patch.EnrollmentClosesAt))
		models.Apply(changes, "status", &co.Status, patch.Status)
		checkCohort(&c, co)
		if patch.CoachIDs.Set {
			if err := checkCoachIDs(tx, &c, actor, patch.CoachIDs.Value); err != nil {
				return err
			}
		}
		if err := c.Err(); err != nil {
			return err
		}
		if co.Capacity < co.SeatsPaid {
			return errCapacityBelowPaid
		}
		if patch.Status.Set && co.Status == CohortDraft {
			// A draft is invisible to the public; hiding a cohort women
			// have enrolled in would strand them.
			var enrolled bool
			if err := tx.Raw(`SELECT EXISTS (SELECT 1 FROM enrollments WHERE cohort_id = ?)`, id).Scan(&enrolled).Error; err != nil {
				return fmt.Errorf("check enrollments: %w", err)
			}
			if enrolled {
				e := models.E(models.KindConflict, "cohort_in_use", "Women have enrolled in this cohort, so it cannot go back to draft. Close or cancel it instead.")
				e.Fields = []models.FieldError{{Field: "status", Message: "cannot be draft once anyone has enrolled"}}
				return e
			}
		}
		if len(changes) > 0 {
			co.UpdatedAt = models.StoredTime(s.Now())
			changes["updated_at"] = co.UpdatedAt
			if err := tx.Model(&Cohort{}).Where("id = ?", id).Updates(changes).Error; err != nil {
				return models.MapDBError(err, "cohort")
			}
		}
		if !co.StartsAt.Equal(oldStart) {
			err := tx.Exec(`UPDATE access_grants SET starts_at = ? WHERE enrollment_id IN (SELECT id FROM enrollments WHERE cohort_id = ?)`,
				co.StartsAt, id).Error
			if err != nil {
				return fmt.Errorf("move enrollment grants: %w", err)
			}
		}
		if err := s.drip.OnCohortUpdated(tx, &prev, co); err != nil { // drip emails (drip_schedule.go)
			return err
		}
		if patch.CoachIDs.Set {
			if err := setCoaches(tx, id, patch.CoachIDs.Value); err != nil {
				return err
			}
		}
		view, err = cohortView(tx, co)
		return err
	})
	if err != nil {
		return nil, err
	}
	return view, nil
}

// DeleteCohort deletes a draft cohort nobody has enrolled in, with its
// sessions; any other is cancelled through its status instead.
func (s *Service) DeleteCohort(ctx context.Context, actor *people.Coach, id uuid.UUID) error {
	return s.InTx(ctx, func(tx *gorm.DB) error {
		co, err := FindCohort(tx, actor, id, true)
		if err != nil {
			return err
		}
		if co.Status != CohortDraft {
			return errCohortInUse
		}
		// The row lock conflicts with the key-share lock a new enrollment
		// takes through its foreign key, so none slips in after this check.
		var enrolled bool
		if err := tx.Raw(`SELECT EXISTS (SELECT 1 FROM enrollments WHERE cohort_id = ?)`, id).Scan(&enrolled).Error; err != nil {
			return fmt.Errorf("check enrollments: %w", err)
		}
		if enrolled {
			return errCohortInUse
		}
		if err := tx.Exec(`DELETE FROM cohorts WHERE id = ?`, id).Error; err != nil {
			if code, _ := models.PgCode(err); code == models.PgForeignKeyViolation {
				return errCohortInUse
			}
			return models.MapDBError(err, "cohort")
		}
		return nil
	})
}

// CloneCohort starts the next run of a cohort: a draft with the same
// settings and coaches, no seats taken, and every live session (and the
// enrollment window) shifted by the distance between the two start dates.
// Recordings belong to the old run and are not copied.
func (s *Service) CloneCohort(ctx context.Context, actor *people.Coach, id uuid.UUID, name string, startsAt time.Time) (*CohortView, error) {
	var c models.Checker
	c.Text("name", name, 1, 200)
	if startsAt.IsZero() {
		c.Add("starts_at", "is required")
	}
	if err := c.Err(); err != nil {
		return nil, err
	}
	startsAt = models.StoredTime(startsAt)
	var view *CohortView
	err := s.InTx(ctx, func(tx *gorm.DB) error {
		old, err := FindCohort(tx, actor, id, false)
		if err != nil {
			return err
		}
		delta := startsAt.Sub(old.StartsAt)
		shift := func(t *time.Time) *time.Time {
			if t == nil {
				return nil
			}
			u := t.Add(delta)
			return &u
		}
		now := models.StoredTime(s.Now())
		co := &Cohort{
			ProgramID: old.ProgramID, Name: name, StartsAt: startsAt, EndsAt: old.EndsAt.Add(delta),
			Timezone: old.Timezone, Capacity: old.Capacity, PriceCents: old.PriceCents, Currency: old.Currency,
			EnrollmentOpensAt: shift(old.EnrollmentOpensAt), EnrollmentClosesAt: shift(old.EnrollmentClosesAt),
			Status: CohortDraft, CreatedAt: now, UpdatedAt: now,
		}
		if err := tx.Create(co).Error; err != nil {
			return models.MapDBError(err, "cohort")
		}
		if err := tx.Exec(`INSERT INTO cohort_coaches (cohort_id, coach_id, lead) SELECT ?, coach_id, lead FROM cohort_coaches WHERE cohort_id = ?`,
			co.ID, old.ID).Error; err != nil {
			return models.MapDBError(err, "cohort coach")
		}
		var sessions []LiveSession
		if err := tx.Where("cohort_id = ?", old.ID).Order("starts_at, id").Find(&sessions).Error; err != nil {
			return fmt.Errorf("read sessions to clone: %w", err)
		}
		for i := range sessions {
			ls := &sessions[i]
			ls.ID, ls.CohortID, ls.StartsAt, ls.RecordingURL = uuid.Nil, co.ID, ls.StartsAt.Add(delta), nil
			ls.CreatedAt, ls.UpdatedAt = now, now
		}
		if len(sessions) > 0 {
			if err := tx.Create(&sessions).Error; err != nil {
				return models.MapDBError(err, "live session")
			}
		}
		view, err = cohortView(tx, co)
		return err
	})
	if err != nil {
		return nil, err
	}
	return view, nil
}

// CohortStatus is a cohort's life stage, set by its coaches.
type CohortStatus string

const (
	CohortDraft     CohortStatus = "draft"
	CohortOpen      CohortStatus = "open"
	CohortClosed    CohortStatus = "closed"
	CohortCancelled CohortStatus = "cancelled"
)

// Cohort is one dated run of a program. Seat counters are kept on the row so
// that taking a seat is one guarded UPDATE.
type Cohort struct {
	ID                 uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	ProgramID          uuid.UUID
	Name               string
	StartsAt           time.Time
	EndsAt             time.Time
	Timezone           string
	Capacity           int
	PriceCents         int64
	Currency           string
	EnrollmentOpensAt  *time.Time
	EnrollmentClosesAt *time.Time
	Status             CohortStatus
	SeatsPaid          int
	SeatsHeld          int
	SeatsOverflow      int
	CreatedAt          time.Time
	UpdatedAt          time.Time
}

// SeatsLeft is what a new checkout can still take.
func (c *Cohort) SeatsLeft() int { return max(0, c.Capacity-c.SeatsPaid-c.SeatsHeld) }

// EnrollmentOpen reports whether a checkout may start at now.
func (c *Cohort) EnrollmentOpen(now time.Time) bool {
	if c.Status != CohortOpen {
		return false
	}
	if c.EnrollmentOpensAt != nil && now.Before(*c.EnrollmentOpensAt) {
		return false
	}
	return c.EnrollmentClosesAt == nil || now.Before(*c.EnrollmentClosesAt)
}

type CohortCoach struct {
	CohortID uuid.UUID `gorm:"type:uuid;primaryKey"`
	CoachID  uuid.UUID `gorm:"type:uuid;primaryKey"`
	Lead     bool
}

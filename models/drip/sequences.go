package drip

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/enroll"
	"github.com/grace-coaching/grace/models/people"
)

// The coach's tools for drip sequences: sequences and their steps, checked
// when they are saved (an unknown placeholder is refused here, not found at
// send time), previews and test sends.

// Step limits, the same as the schema's checks.
const (
	MaxStepSubject       = 300
	MaxStepBody          = 100000
	MaxStepOffsetMinutes = 525600 // a year
	MaxStepOffsetDays    = 365
)

// TemplateDripTest is the outbox template of a test send: its data carries
// the step already rendered, which the template passes through.
const TemplateDripTest = "drip_test"

var errSequenceInUse = models.E(models.KindConflict, "sequence_in_use",
	"Emails of this sequence have already been scheduled or sent, so its trigger and scope can no longer change: the log would no longer say why they went out. Create a new sequence instead and switch this one off.")

// errSequenceAdminOnly keeps a coach's email to her own participants: a
// global or program-wide sequence reaches women of every coach's cohorts.
var errSequenceAdminOnly = models.E(models.KindForbidden, "forbidden",
	"Only an admin may write a global or program-wide sequence: a coach's sequence belongs to a cohort she leads or co-leads.")

var errPreviewUnavailable = models.E(models.KindUnavailable, "unavailable", "Email rendering is not configured on this server.")

// SequenceInput creates a sequence. Kind is required; a new sequence is
// inactive unless Active says otherwise.
type SequenceInput struct {
	Name             string
	Trigger          Trigger
	ProgramID        *uuid.UUID
	CohortID         *uuid.UUID
	Kind             SequenceKind
	Active           bool
	ExitOnEnrollment bool
}

// SequencePatch changes the fields that are Set. ProgramID and CohortID may
// be Null (widening the scope); the others may not.
type SequencePatch struct {
	Name             models.Optional[string]
	Trigger          models.Optional[Trigger]
	ProgramID        models.Optional[uuid.UUID]
	CohortID         models.Optional[uuid.UUID]
	Kind             models.Optional[SequenceKind]
	Active           models.Optional[bool]
	ExitOnEnrollment models.Optional[bool]
}

// StepInput creates a step: either OffsetMinutes, or OffsetDays with
// SendAtLocal ("HH:MM"). Position 0 puts it last; a position p inserts it at
// p and moves the steps from p on down by one.
type StepInput struct {
	Position      int
	OffsetMinutes *int
	OffsetDays    *int
	SendAtLocal   *string
	Subject       string
	Body          string
}

// StepPatch changes the fields that are Set. Setting one kind of offset
// clears the other kind unless the patch sets that too (which is refused:
// a step has one offset). Position moves the step, shifting the others.
type StepPatch struct {
	Position      models.Optional[int]
	OffsetMinutes models.Optional[int]
	OffsetDays    models.Optional[int]
	SendAtLocal   models.Optional[string]
	Subject       models.Optional[string]
	Body          models.Optional[string]
}

var stepLocalTimeRE = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)

func checkSequence(c *models.Checker, seq *EmailSequence) {
	c.Text("name", seq.Name, 1, 200)
	models.SingleLine(c, "name", seq.Name)
	if !slices.Contains(Triggers, seq.Trigger) {
		c.Add("trigger", "must be one of: "+joinEnum(Triggers))
	}
	if seq.Kind != SequenceMarketing && seq.Kind != SequenceTransactional {
		c.Add("kind", "must be one of: marketing, transactional")
	}
	if seq.ProgramID != nil && seq.CohortID != nil {
		c.Add("cohort_id", "give program_id or cohort_id, not both: a cohort already belongs to one program")
	}
	if seq.Trigger == TriggerFreeAccessClaimed && seq.CohortID != nil {
		c.Add("cohort_id", "must be empty for a free_access_claimed sequence: free access is granted per program, so scope it with program_id")
	}
}

// checkSequenceScope checks that the scope's program or cohort exists and,
// for a coach with role coach, that she manages the cohort: she may not
// write email for another coach's group.
func checkSequenceScope(tx *gorm.DB, c *models.Checker, actor *people.Coach, seq *EmailSequence) error {
	if seq.ProgramID != nil {
		var exists bool
		if err := tx.Raw(`SELECT EXISTS (SELECT 1 FROM programs WHERE id = ?)`, *seq.ProgramID).Scan(&exists).Error; err != nil {
			return fmt.Errorf("find program: %w", err)
		}
		if !exists {
			c.Add("program_id", "must name an existing program")
		}
	}
	if err := mayWrite(actor, seq); err != nil {
		return err
	}
	if seq.CohortID != nil {
		if _, err := enroll.FindCohort(tx, actor, *seq.CohortID, false); err != nil {
			if !models.IsCode(err, "not_found") {
				return err
			}
			if people.IsAdmin(actor) {
				c.Add("cohort_id", "must name an existing cohort")
			} else {
				c.Add("cohort_id", "must name a cohort you lead or co-lead")
			}
		}
	}
	return nil
}

// scopeSequences limits q (on email_sequences) to the sequences the actor
// may read: every coach reads the program-wide and global ones (writing
// them is the admins', see writableSequence); a cohort's sequence belongs
// to the coaches who lead or co-lead that cohort, and to admins. Any other
// is simply not found.
func scopeSequences(q *gorm.DB, actor *people.Coach) *gorm.DB {
	return people.ScopeManaged(q, actor,
		"(email_sequences.cohort_id IS NULL OR EXISTS (SELECT 1 FROM cohort_coaches cc WHERE cc.cohort_id = email_sequences.cohort_id AND cc.coach_id = ?))")
}

// findSequence reads a sequence the actor manages (locked FOR UPDATE when
// lock is set: the row serialises changes to its steps' order), or not found.
func findSequence(tx *gorm.DB, actor *people.Coach, id uuid.UUID, lock bool) (*EmailSequence, error) {
	return models.Take[EmailSequence](scopeSequences(tx.Model(&EmailSequence{}), actor).Where("email_sequences.id = ?", id), lock, "sequence")
}

// writableSequence is findSequence, locked, for a change: a coach changes
// only her cohorts' sequences and their steps.
func writableSequence(tx *gorm.DB, actor *people.Coach, id uuid.UUID) (*EmailSequence, error) {
	seq, err := findSequence(tx, actor, id, true)
	if err != nil {
		return nil, err
	}
	return seq, mayWrite(actor, seq)
}

func mayWrite(actor *people.Coach, seq *EmailSequence) error {
	if seq.CohortID == nil && !people.IsAdmin(actor) {
		return errSequenceAdminOnly
	}
	return nil
}

// writableStep is findStep, locked, for a change (see writableSequence).
func writableStep(tx *gorm.DB, actor *people.Coach, id uuid.UUID) (*EmailStep, *EmailSequence, error) {
	st, seq, err := findStep(tx, actor, id, true)
	if err != nil {
		return nil, nil, err
	}
	return st, seq, mayWrite(actor, seq)
}

// findStep reads a step of a sequence the actor manages, with its sequence
// (locked when lock is set), or not found.
func findStep(tx *gorm.DB, actor *people.Coach, id uuid.UUID, lock bool) (*EmailStep, *EmailSequence, error) {
	var st EmailStep
	if err := tx.Where("id = ?", id).Take(&st).Error; err != nil {
		return nil, nil, models.MapDBError(err, "step")
	}
	seq, err := findSequence(tx, actor, st.SequenceID, lock)
	if err != nil {
		if models.IsCode(err, "not_found") {
			return nil, nil, models.NotFound("step")
		}
		return nil, nil, err
	}
	if lock {
		// Read again under the sequence's lock: a concurrent move or delete
		// of a sibling may have changed its position.
		if err := tx.Where("id = ?", id).Take(&st).Error; err != nil {
			return nil, nil, models.MapDBError(err, "step")
		}
	}
	return &st, seq, nil
}

// CreateSequence adds a sequence. A coach with role coach may scope it to a
// cohort only if she leads or co-leads it.
func (s *Service) CreateSequence(ctx context.Context, actor *people.Coach, in SequenceInput) (*EmailSequence, error) {
	now := models.StoredTime(s.Now())
	seq := &EmailSequence{
		Name: in.Name, Trigger: in.Trigger, ProgramID: in.ProgramID, CohortID: in.CohortID, Kind: in.Kind,
		Active: in.Active, ExitOnEnrollment: in.ExitOnEnrollment, CreatedAt: now, UpdatedAt: now,
	}
	err := s.InTx(ctx, func(tx *gorm.DB) error {
		var c models.Checker
		checkSequence(&c, seq)
		if err := checkSequenceScope(tx, &c, actor, seq); err != nil {
			return err
		}
		if err := c.Err(); err != nil {
			return err
		}
		if err := tx.Create(seq).Error; err != nil {
			return models.MapDBError(err, "sequence")
		}
		// A new sequence has no steps yet, so switching it on schedules
		// nothing until its first step is added (CreateStep does that).
		return nil
	})
	if err != nil {
		return nil, err
	}
	return seq, nil
}

// GetSequence returns a sequence the actor manages.
func (s *Service) GetSequence(ctx context.Context, actor *people.Coach, id uuid.UUID) (*EmailSequence, error) {
	return findSequence(s.DB.WithContext(ctx), actor, id, false)
}

// ListSequences lists the sequences the actor manages, oldest first.
func (s *Service) ListSequences(ctx context.Context, actor *people.Coach, pp models.PageParams) (models.Page[EmailSequence], error) {
	cur, err := pp.Decode()
	if err != nil {
		return models.Page[EmailSequence]{}, err
	}
	q := scopeSequences(s.DB.WithContext(ctx).Model(&EmailSequence{}), actor)
	if cur != nil {
		q = q.Where("(email_sequences.created_at, email_sequences.id) > (?, ?)", cur.At, cur.ID)
	}
	limit := pp.PageSize()
	var rows []EmailSequence
	if err := q.Order("email_sequences.created_at, email_sequences.id").Limit(limit + 1).Find(&rows).Error; err != nil {
		return models.Page[EmailSequence]{}, fmt.Errorf("list sequences: %w", err)
	}
	return models.PageOf(rows, limit, func(q EmailSequence) models.Cursor { return models.Cursor{At: q.CreatedAt, ID: q.ID} }), nil
}

// UpdateSequence changes only the fields set in patch. The trigger and scope
// may change only while none of its emails was ever scheduled. Switching
// the sequence off leaves its scheduled emails in place: the delivery worker
// cancels each as sequence_inactive when it falls due, unless the sequence
// was switched on again by then.
func (s *Service) UpdateSequence(ctx context.Context, actor *people.Coach, id uuid.UUID, patch SequencePatch) (*EmailSequence, error) {
	var c models.Checker
	c.NotNull("name", patch.Name.Cleared())
	c.NotNull("trigger", patch.Trigger.Cleared())
	c.NotNull("kind", patch.Kind.Cleared())
	c.NotNull("active", patch.Active.Cleared())
	c.NotNull("exit_on_enrollment", patch.ExitOnEnrollment.Cleared())
	if err := c.Err(); err != nil {
		return nil, err
	}

	var seq *EmailSequence
	err := s.InTx(ctx, func(tx *gorm.DB) error {
		var err error
		if seq, err = writableSequence(tx, actor, id); err != nil {
			return err
		}
		wasActive := seq.Active
		old := *seq
		changes := map[string]any{}
		models.Apply(changes, "name", &seq.Name, patch.Name)
		models.Apply(changes, "trigger", &seq.Trigger, patch.Trigger)
		models.ApplyPtr(changes, "program_id", &seq.ProgramID, patch.ProgramID)
		models.ApplyPtr(changes, "cohort_id", &seq.CohortID, patch.CohortID)
		models.Apply(changes, "kind", &seq.Kind, patch.Kind)
		models.Apply(changes, "active", &seq.Active, patch.Active)
		models.Apply(changes, "exit_on_enrollment", &seq.ExitOnEnrollment, patch.ExitOnEnrollment)
		checkSequence(&c, seq)
		if err := checkSequenceScope(tx, &c, actor, seq); err != nil {
			return err
		}
		if err := c.Err(); err != nil {
			return err
		}
		if len(changes) == 0 {
			return nil
		}
		moved := seq.Trigger != old.Trigger || !models.SamePtr(seq.ProgramID, old.ProgramID) || !models.SamePtr(seq.CohortID, old.CohortID)
		if moved {
			var used bool
			if err := tx.Raw(`SELECT EXISTS (SELECT 1 FROM email_deliveries WHERE sequence_id = ?)`, id).Scan(&used).Error; err != nil {
				return fmt.Errorf("check sequence deliveries: %w", err)
			}
			if used {
				return errSequenceInUse
			}
		}
		seq.UpdatedAt = models.StoredTime(s.Now())
		changes["updated_at"] = seq.UpdatedAt
		if err := tx.Model(&EmailSequence{}).Where("id = ?", id).Updates(changes).Error; err != nil {
			return models.MapDBError(err, "sequence")
		}
		if seq.Active && (!wasActive || moved) {
			// Switched on (or, unused, pointed elsewhere): the women its
			// trigger covers get what is still timely; the rest is
			// recorded as skipped.
			return s.scheduleSequence(tx, id)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return seq, nil
}

// DeleteSequence deletes a sequence and its steps. Its scheduled emails are
// cancelled (sequence_deleted) in the same transaction; the log of those
// already sent stays, without the sequence.
func (s *Service) DeleteSequence(ctx context.Context, actor *people.Coach, id uuid.UUID) error {
	return s.InTx(ctx, func(tx *gorm.DB) error {
		if _, err := writableSequence(tx, actor, id); err != nil {
			return err
		}
		if err := s.cancelScheduled(tx, "sequence_id = ?", []any{id}, dripReason(ReasonSequenceDeleted, "the coach deleted the sequence")); err != nil {
			return err
		}
		if err := tx.Exec(`DELETE FROM email_sequences WHERE id = ?`, id).Error; err != nil {
			return models.MapDBError(err, "sequence")
		}
		return nil
	})
}

// checkStep validates every field of st, so the coach sees all problems at
// once.
func checkStep(c *models.Checker, st *EmailStep) {
	c.Text("subject", st.Subject, 1, MaxStepSubject)
	models.SingleLine(c, "subject", st.Subject)
	c.Text("body", st.Body, 1, MaxStepBody)
	checkStepPlaceholders(c, "subject", st.Subject)
	checkStepPlaceholders(c, "body", st.Body)

	switch {
	case st.OffsetMinutes != nil && (st.OffsetDays != nil || st.SendAtLocal != nil):
		c.Add("offset_minutes", "give either offset_minutes, or offset_days with send_at_local, not both")
	case st.OffsetMinutes == nil && st.OffsetDays == nil && st.SendAtLocal == nil:
		c.Add("offset_minutes", "is required, unless offset_days and send_at_local are given")
	case st.OffsetMinutes == nil && st.OffsetDays == nil:
		c.Add("offset_days", "is required with send_at_local")
	case st.OffsetMinutes == nil && st.SendAtLocal == nil:
		c.Add("send_at_local", "is required with offset_days, as a local time such as 09:00")
	}
	if m := st.OffsetMinutes; m != nil && (*m < -MaxStepOffsetMinutes || *m > MaxStepOffsetMinutes) {
		c.Add("offset_minutes", fmt.Sprintf("must be from %d to %d", -MaxStepOffsetMinutes, MaxStepOffsetMinutes))
	}
	if d := st.OffsetDays; d != nil && (*d < -MaxStepOffsetDays || *d > MaxStepOffsetDays) {
		c.Add("offset_days", fmt.Sprintf("must be from %d to %d", -MaxStepOffsetDays, MaxStepOffsetDays))
	}
	if l := st.SendAtLocal; l != nil && !stepLocalTimeRE.MatchString(*l) {
		c.Add("send_at_local", `must be a 24-hour local time "HH:MM", such as 09:00`)
	}
}

var stepPlaceholderRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// checkStepPlaceholders refuses, under field, every {{name}} whose name is not
// in DripPlaceholders and every malformed one (an unclosed "{{", a stray
// "}}", or braces around something other than one name), naming each, so the
// coach finds out when she saves the step and not from a broken email.
func checkStepPlaceholders(c *models.Checker, field, v string) {
	var unknown, malformed []string
	add := func(list *[]string, s string) {
		if !slices.Contains(*list, s) {
			*list = append(*list, s)
		}
	}
	rest := v
	for {
		open, close := strings.Index(rest, "{{"), strings.Index(rest, "}}")
		if open < 0 && close < 0 {
			break
		}
		if open < 0 || (close >= 0 && close < open) {
			add(&malformed, `"}}" without a "{{" before it`)
			rest = rest[close+2:]
			continue
		}
		inner := rest[open+2:]
		end := strings.Index(inner, "}}")
		if next := strings.Index(inner, "{{"); end < 0 || (next >= 0 && next < end) {
			add(&malformed, fmt.Sprintf("%q is not closed with \"}}\"", "{{"+placeholderSnippet(inner, next)))
			if end < 0 {
				break
			}
			rest = inner[next:]
			continue
		}
		// Spaces around the name are allowed, as the renderer allows them.
		name := strings.TrimSpace(inner[:end])
		switch {
		case !stepPlaceholderRE.MatchString(name):
			add(&malformed, fmt.Sprintf("{{%s}} is not a placeholder: write a name such as {{first_name}}", placeholderSnippet(inner[:end], -1)))
		case !slices.Contains(Placeholders, name):
			add(&unknown, "{{"+name+"}}")
		}
		rest = inner[end+2:]
	}
	if len(unknown) > 0 {
		known := make([]string, len(Placeholders))
		for i, p := range Placeholders {
			known[i] = "{{" + p + "}}"
		}
		noun := "placeholder"
		if len(unknown) > 1 {
			noun = "placeholders"
		}
		c.Add(field, fmt.Sprintf("has the unknown %s %s; use %s", noun, strings.Join(unknown, ", "), strings.Join(known, ", ")))
	}
	for _, m := range malformed {
		c.Add(field, "has a malformed placeholder: "+m)
	}
}

// placeholderSnippet is the start of s (up to stop, when stop >= 0), short enough to
// quote in an error message.
func placeholderSnippet(s string, stop int) string {
	if stop >= 0 && stop < len(s) {
		s = s[:stop]
	}
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	if r := []rune(s); len(r) > 30 {
		s = string(r[:30]) + "…"
	}
	return s
}

// deferStepPositions lets a statement move positions through values other
// steps hold until the transaction commits.
func deferStepPositions(tx *gorm.DB) error {
	return tx.Exec(`SET CONSTRAINTS email_steps_sequence_position_key DEFERRED`).Error
}

func lastStepPosition(tx *gorm.DB, sequenceID uuid.UUID) (int, error) {
	var last int
	if err := tx.Raw(`SELECT COALESCE(MAX(position), 0) FROM email_steps WHERE sequence_id = ?`, sequenceID).Scan(&last).Error; err != nil {
		return 0, fmt.Errorf("last step position: %w", err)
	}
	return last, nil
}

// CreateStep adds a step to a sequence the actor manages. On an active
// sequence it is scheduled at once for the women the trigger already fired
// for, in the same transaction.
func (s *Service) CreateStep(ctx context.Context, actor *people.Coach, sequenceID uuid.UUID, in StepInput) (*EmailStep, error) {
	now := models.StoredTime(s.Now())
	st := &EmailStep{
		SequenceID: sequenceID, OffsetMinutes: in.OffsetMinutes, OffsetDays: in.OffsetDays, SendAtLocal: in.SendAtLocal,
		Subject: in.Subject, Body: in.Body, CreatedAt: now, UpdatedAt: now,
	}
	var c models.Checker
	checkStep(&c, st)
	if in.Position < 0 {
		c.Add("position", "must be at least 1")
	}
	if err := c.Err(); err != nil {
		return nil, err
	}
	err := s.InTx(ctx, func(tx *gorm.DB) error {
		seq, err := writableSequence(tx, actor, sequenceID)
		if err != nil {
			return err
		}
		last, err := lastStepPosition(tx, sequenceID)
		if err != nil {
			return err
		}
		st.Position = in.Position
		if st.Position == 0 || st.Position > last {
			st.Position = last + 1
		} else {
			if err := deferStepPositions(tx); err != nil {
				return err
			}
			if err := tx.Exec(`UPDATE email_steps SET position = position + 1 WHERE sequence_id = ? AND position >= ?`,
				sequenceID, st.Position).Error; err != nil {
				return fmt.Errorf("make room for step: %w", err)
			}
		}
		if err := tx.Create(st).Error; err != nil {
			return models.MapDBError(err, "step")
		}
		switch {
		case !seq.Active:
			return nil
		case last == 0:
			// Its first step: nobody is in the sequence yet, so everyone
			// its trigger covers is, as when a sequence is switched on.
			return s.scheduleSequence(tx, seq.ID)
		default:
			// Everyone already in the sequence gets the new step too,
			// counted from the same moment.
			return s.scheduleNewStep(tx, st)
		}
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// ListSteps lists the steps of a sequence the actor manages, in position
// order.
func (s *Service) ListSteps(ctx context.Context, actor *people.Coach, sequenceID uuid.UUID, pp models.PageParams) (models.Page[EmailStep], error) {
	cur, err := pp.Decode()
	if err != nil {
		return models.Page[EmailStep]{}, err
	}
	db := s.DB.WithContext(ctx)
	if _, err := findSequence(db, actor, sequenceID, false); err != nil {
		return models.Page[EmailStep]{}, err
	}
	q := db.Where("sequence_id = ?", sequenceID)
	if cur != nil {
		q = q.Where("(position, id) > (?, ?)", cur.Pos, cur.ID)
	}
	limit := pp.PageSize()
	var rows []EmailStep
	if err := q.Order("position, id").Limit(limit + 1).Find(&rows).Error; err != nil {
		return models.Page[EmailStep]{}, fmt.Errorf("list steps: %w", err)
	}
	return models.PageOf(rows, limit, func(st EmailStep) models.Cursor { return models.Cursor{Pos: st.Position, ID: st.ID} }), nil
}

// GetStep returns a step of a sequence the actor manages.
func (s *Service) GetStep(ctx context.Context, actor *people.Coach, id uuid.UUID) (*EmailStep, error) {
	st, _, err := findStep(s.DB.WithContext(ctx), actor, id, false)
	return st, err
}

// UpdateStep changes only the fields set in patch. A new offset moves the
// step's scheduled emails in the same transaction, counted from the moment
// each was anchored to, in the zone each was planned in.
func (s *Service) UpdateStep(ctx context.Context, actor *people.Coach, id uuid.UUID, patch StepPatch) (*EmailStep, error) {
	var c models.Checker
	c.NotNull("position", patch.Position.Cleared())
	c.NotNull("subject", patch.Subject.Cleared())
	c.NotNull("body", patch.Body.Cleared())
	if patch.Position.Set && !patch.Position.Null && patch.Position.Value < 1 {
		c.Add("position", "must be at least 1")
	}
	if err := c.Err(); err != nil {
		return nil, err
	}
	empty := !patch.Position.Set && !patch.OffsetMinutes.Set && !patch.OffsetDays.Set && !patch.SendAtLocal.Set &&
		!patch.Subject.Set && !patch.Body.Set
	if empty {
		return s.GetStep(ctx, actor, id)
	}
	minutesSet := patch.OffsetMinutes.Set && !patch.OffsetMinutes.Null
	daysSet := (patch.OffsetDays.Set && !patch.OffsetDays.Null) || (patch.SendAtLocal.Set && !patch.SendAtLocal.Null)

	var st *EmailStep
	err := s.InTx(ctx, func(tx *gorm.DB) error {
		var err error
		if st, _, err = writableStep(tx, actor, id); err != nil {
			return err
		}
		old := *st
		changes := map[string]any{}
		if patch.OffsetMinutes.Set {
			st.OffsetMinutes = patch.OffsetMinutes.Ptr()
		} else if daysSet {
			st.OffsetMinutes = nil
		}
		if patch.OffsetDays.Set {
			st.OffsetDays = patch.OffsetDays.Ptr()
		} else if minutesSet && !daysSet {
			st.OffsetDays = nil
		}
		if patch.SendAtLocal.Set {
			st.SendAtLocal = patch.SendAtLocal.Ptr()
		} else if minutesSet && !daysSet {
			st.SendAtLocal = nil
		}
		changes["offset_minutes"], changes["offset_days"], changes["send_at_local"] = st.OffsetMinutes, st.OffsetDays, st.SendAtLocal
		models.Apply(changes, "subject", &st.Subject, patch.Subject)
		models.Apply(changes, "body", &st.Body, patch.Body)
		checkStep(&c, st)
		if err := c.Err(); err != nil {
			return err
		}
		if patch.Position.Set {
			if err := moveStepTo(tx, st, patch.Position.Value); err != nil {
				return err
			}
		}
		st.UpdatedAt = models.StoredTime(s.Now())
		changes["updated_at"] = st.UpdatedAt
		if err := tx.Model(&EmailStep{}).Where("id = ?", id).Updates(changes).Error; err != nil {
			return models.MapDBError(err, "step")
		}
		if !models.SamePtr(st.OffsetMinutes, old.OffsetMinutes) || !models.SamePtr(st.OffsetDays, old.OffsetDays) || !models.SamePtr(st.SendAtLocal, old.SendAtLocal) {
			return s.replanStep(tx, st)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// moveStepTo puts st at position to (past the end: last), shifting the steps
// in between by one. The caller holds the sequence's lock.
func moveStepTo(tx *gorm.DB, st *EmailStep, to int) error {
	last, err := lastStepPosition(tx, st.SequenceID)
	if err != nil {
		return err
	}
	to = max(1, min(to, last))
	from := st.Position
	if to == from {
		return nil
	}
	if err := deferStepPositions(tx); err != nil {
		return err
	}
	if to < from {
		err = tx.Exec(`UPDATE email_steps SET position = position + 1 WHERE sequence_id = ? AND position >= ? AND position < ?`,
			st.SequenceID, to, from).Error
	} else {
		err = tx.Exec(`UPDATE email_steps SET position = position - 1 WHERE sequence_id = ? AND position > ? AND position <= ?`,
			st.SequenceID, from, to).Error
	}
	if err != nil {
		return fmt.Errorf("move step: %w", err)
	}
	if err := tx.Exec(`UPDATE email_steps SET position = ? WHERE id = ?`, to, st.ID).Error; err != nil {
		return fmt.Errorf("move step: %w", err)
	}
	st.Position = to
	return nil
}

// DeleteStep deletes a step, cancels its scheduled emails (step_deleted) in
// the same transaction and closes the gap it leaves in the order.
func (s *Service) DeleteStep(ctx context.Context, actor *people.Coach, id uuid.UUID) error {
	return s.InTx(ctx, func(tx *gorm.DB) error {
		st, _, err := writableStep(tx, actor, id)
		if err != nil {
			return err
		}
		if err := s.cancelScheduled(tx, "step_id = ?", []any{id}, dripReason(ReasonStepDeleted, "the coach deleted the step")); err != nil {
			return err
		}
		res := tx.Exec(`DELETE FROM email_steps WHERE id = ?`, id)
		if res.Error != nil {
			return models.MapDBError(res.Error, "step")
		}
		if res.RowsAffected == 0 {
			return models.NotFound("step")
		}
		if err := deferStepPositions(tx); err != nil {
			return err
		}
		err = tx.Exec(`UPDATE email_steps SET position = position - 1 WHERE sequence_id = ? AND position > ?`,
			st.SequenceID, st.Position).Error
		if err != nil {
			return fmt.Errorf("compact step positions: %w", err)
		}
		return nil
	})
}

// Sample values of a preview without a participant, and of every test send.
const (
	sampleFirstName    = "Maya"
	sampleProgramTitle = "Sample Program"
	sampleCohortName   = "Sample Cohort"
	sampleLessonTitle  = "Sample Lesson"
	// previewUnsubscribeToken stands in for her token in previews and test
	// sends: her real one would let whoever reads the preview unsubscribe
	// her.
	previewUnsubscribeToken = "preview-not-a-real-token"
)

// PreviewStep renders a step as participantID would receive it (her first
// name, her latest cohort and program within the sequence's scope, the
// next live session or first lesson when the trigger has one, times in her
// zone), or with sample values when participantID is nil. The unsubscribe
// link is a placeholder, never her real one.
func (s *Service) PreviewStep(ctx context.Context, actor *people.Coach, stepID uuid.UUID, participantID *uuid.UUID) (RenderedEmail, error) {
	v, err := people.ViewerOf(actor)
	if err != nil {
		return RenderedEmail{}, err
	}
	var out RenderedEmail
	err = s.InTx(ctx, func(tx *gorm.DB) error {
		st, seq, err := findStep(tx, actor, stepID, false)
		if err != nil {
			return err
		}
		if s.renderer == nil {
			return errPreviewUnavailable
		}
		var p *people.Participant
		if participantID != nil {
			// Someone outside her scope is refused exactly as someone
			// who does not exist.
			p = &people.Participant{}
			if err := v.ScopeParticipants(tx.Model(&people.Participant{}), "participants.id").Where("id = ?", *participantID).Take(p).Error; err != nil {
				if errors.Is(err, gorm.ErrRecordNotFound) {
					return models.Invalid(models.FieldError{Field: "participant_id", Message: "must name one of your participants"})
				}
				return fmt.Errorf("find participant: %w", err)
			}
			if err := people.LogAccess(tx, s.Now(), v, people.AccessEmailPreviewed, p.ID); err != nil {
				return err
			}
		}
		vars, err := s.previewVars(tx, v, seq, p)
		if err != nil {
			return err
		}
		out, err = s.renderStep(st, seq, vars)
		return err
	})
	return out, err
}

// TestSendStep renders a step with sample values and queues it to to
// through the outbox, subject prefixed "[Test] " by its template. It carries
// no List-Unsubscribe headers: it is a proof for the coach, not marketing.
func (s *Service) TestSendStep(ctx context.Context, actor *people.Coach, stepID uuid.UUID, to string) error {
	to = models.NormalizeEmail(to)
	var c models.Checker
	c.Email("to", to)
	if err := c.Err(); err != nil {
		return err
	}
	return s.InTx(ctx, func(tx *gorm.DB) error {
		st, seq, err := findStep(tx, actor, stepID, false)
		if err != nil {
			return err
		}
		if s.renderer == nil {
			return errPreviewUnavailable
		}
		vars, err := s.previewVars(tx, people.Viewer{}, seq, nil)
		if err != nil {
			return err
		}
		out, err := s.renderStep(st, seq, vars)
		if err != nil {
			return err
		}
		data := map[string]any{
			"subject": out.Subject, "html": out.HTML, "text": out.Text,
			"step_id": st.ID.String(), "sequence_id": seq.ID.String(),
		}
		if err := s.EnqueueEmail(tx, TemplateDripTest, to, "", "", data); err != nil {
			return fmt.Errorf("queue test send: %w", err)
		}
		return nil
	})
}

func (s *Service) renderStep(st *EmailStep, seq *EmailSequence, vars Vars) (RenderedEmail, error) {
	req := RenderRequest{Step: StepContent{Subject: st.Subject, Body: st.Body}, Vars: vars, Marketing: seq.Kind == SequenceMarketing}
	if req.Marketing {
		req.UnsubscribeMailto = s.dripUnsubscribeMailto(previewUnsubscribeToken)
	}
	out, err := s.renderer.RenderStep(req)
	if err != nil {
		if _, ok := models.AsError(err); ok {
			return RenderedEmail{}, err
		}
		return RenderedEmail{}, fmt.Errorf("render step %s: %w", st.ID, err)
	}
	return out, nil
}

// previewVars are the placeholder values for p (sample ones when p is nil)
// in seq's scope, taken only from what v may see: a coach previewing a
// global sequence with her participant sees her cohort, never the one
// another coach leads.
func (s *Service) previewVars(db *gorm.DB, v people.Viewer, seq *EmailSequence, p *people.Participant) (Vars, error) {
	// As the delivery worker fills them in (dripRenderRequest).
	vars := Vars{FirstName: sampleFirstName, PortalURL: s.baseURL + "/portal",
		UnsubscribeURL: s.dripUnsubscribeURL(previewUnsubscribeToken)}
	if p != nil {
		vars.FirstName = ""
		if f := strings.Fields(p.GreetingName()); len(f) > 0 {
			vars.FirstName = f[0]
		}
	}

	// Her cohort and program within the scope: the scope's own cohort, or
	// her latest enrollment (an active one first) in the scope's program or
	// anywhere; a program from her latest grant when she has no cohort.
	var cohort *enroll.Cohort
	var program *catalog.Program
	if seq.CohortID != nil {
		cohort = &enroll.Cohort{}
		if err := db.Where("id = ?", *seq.CohortID).Take(cohort).Error; err != nil {
			return Vars{}, models.MapDBError(err, "cohort")
		}
	} else if p != nil {
		var rows []enroll.Cohort
		q := db.Table("cohorts").Select("cohorts.*").Joins("JOIN enrollments e ON e.cohort_id = cohorts.id").
			Where("e.participant_id = ?", p.ID)
		if seq.ProgramID != nil {
			q = q.Where("cohorts.program_id = ?", *seq.ProgramID)
		}
		if !v.Admin {
			q = q.Where("cohorts.id IN (SELECT cc.cohort_id FROM cohort_coaches cc WHERE cc.coach_id = ?)", v.CoachID)
		}
		if err := q.Order("(e.status = 'active') DESC, e.created_at DESC").Limit(1).Find(&rows).Error; err != nil {
			return Vars{}, fmt.Errorf("her latest cohort: %w", err)
		}
		if len(rows) > 0 {
			cohort = &rows[0]
		}
	}
	programID := seq.ProgramID
	if cohort != nil {
		programID = &cohort.ProgramID
	}
	if programID == nil && p != nil {
		var ids []uuid.UUID
		grants := v.ScopeGrants(db.Table("access_grants g").Joins("JOIN programs pr ON pr.id = g.program_id").Where("g.participant_id = ?", p.ID))
		if err := grants.Order("g.starts_at DESC").Limit(1).Pluck("g.program_id", &ids).Error; err != nil {
			return Vars{}, fmt.Errorf("her latest grant: %w", err)
		}
		if len(ids) > 0 {
			programID = &ids[0]
		}
	}
	if programID != nil {
		program = &catalog.Program{}
		if err := db.Where("id = ?", *programID).Take(program).Error; err != nil {
			return Vars{}, models.MapDBError(err, "program")
		}
	}

	vars.ProgramTitle, vars.CohortName = sampleProgramTitle, sampleCohortName
	if program != nil {
		vars.ProgramTitle = program.Title
	}
	if cohort != nil {
		vars.CohortName = cohort.Name
	} else if p != nil {
		vars.CohortName = ""
	}

	zone := "UTC"
	switch {
	case p != nil && p.TimezoneSet && p.Timezone != "":
		zone = p.Timezone
	case cohort != nil:
		zone = cohort.Timezone
	}

	switch seq.Trigger {
	case TriggerLessonUnlocked:
		vars.LessonTitle = sampleLessonTitle
		if program != nil {
			var titles []string
			if err := db.Model(&catalog.Lesson{}).Where("program_id = ? AND published", program.ID).Order("position").Limit(1).Pluck("title", &titles).Error; err != nil {
				return Vars{}, fmt.Errorf("sample lesson: %w", err)
			}
			if len(titles) > 0 {
				vars.LessonTitle = titles[0]
			}
		}
	case TriggerSessionReminder:
		// The next live session of the cohort, else a day from now.
		at := s.Now().Add(24 * time.Hour).Truncate(time.Hour)
		if cohort != nil {
			var starts []time.Time
			if err := db.Model(&enroll.LiveSession{}).Where("cohort_id = ? AND starts_at >= ?", cohort.ID, s.Now()).
				Order("starts_at").Limit(1).Pluck("starts_at", &starts).Error; err != nil {
				return Vars{}, fmt.Errorf("next session: %w", err)
			}
			if len(starts) > 0 {
				at = starts[0]
			}
		}
		vars.SessionStartsAt = dripLocalTime(at, zone, map[string]*time.Location{})
	}
	return vars, nil
}

// Trigger is what fires a sequence: the moment its steps' offsets count
// from.
type Trigger string

const (
	TriggerFreeAccessClaimed   Trigger = "free_access_claimed"  // her free-access grant starts
	TriggerEnrollmentActivated Trigger = "enrollment_activated" // her enrollment became active
	TriggerCohortStart         Trigger = "cohort_start"         // her cohort's starts_at (negative offsets: before)
	TriggerSessionReminder     Trigger = "session_reminder"     // each live session's starts_at
	TriggerLessonUnlocked      Trigger = "lesson_unlocked"      // each lesson's unlock moment for her
)

// Triggers lists every trigger, for validation and the API enum.
var Triggers = []Trigger{TriggerFreeAccessClaimed, TriggerEnrollmentActivated, TriggerCohortStart, TriggerSessionReminder, TriggerLessonUnlocked}

// joinEnum lists an enum's values for an error message.
func joinEnum[T ~string](values []T) string {
	s := make([]string, len(values))
	for i, v := range values {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}

// SequenceKind says which rules a sequence's email obeys. Marketing email
// honours unsubscribe; transactional email (receipts, reminders she asked
// for) does not. Both honour suppressions.
type SequenceKind string

const (
	SequenceMarketing     SequenceKind = "marketing"
	SequenceTransactional SequenceKind = "transactional"
)

// DripPlaceholders are the names a step's subject and body may use as
// {{name}}. An unknown one is refused when the step is saved.
var Placeholders = []string{
	"first_name", "program_title", "cohort_name", "portal_url",
	"lesson_title", "session_starts_at", "unsubscribe_url",
}

type EmailSequence struct {
	ID               uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	Name             string
	Trigger          Trigger
	ProgramID        *uuid.UUID `gorm:"type:uuid"`
	CohortID         *uuid.UUID `gorm:"type:uuid"`
	Kind             SequenceKind
	Active           bool
	ExitOnEnrollment bool
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

type EmailStep struct {
	ID            uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	SequenceID    uuid.UUID `gorm:"type:uuid"`
	Position      int
	OffsetMinutes *int
	OffsetDays    *int
	SendAtLocal   *string // "HH:MM", with OffsetDays
	Subject       string
	Body          string // Markdown with {{placeholders}}
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

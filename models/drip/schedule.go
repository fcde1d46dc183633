package drip

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/enroll"
	"github.com/grace-coaching/grace/models/people"
)

// Drip scheduling: when a trigger fires, the deliveries it causes are
// written in the transaction of the change that fired it, by one set-based
// INSERT ... SELECT (schedule), whether it fires for one woman or for a
// hundred thousand. Moving an anchor re-plans the pending rows in SQL
// (replan); ending a subject cancels them (cancelScheduled) with a reason.
//
// Entry points for sequence and step CRUD (models/drip_sequences.go), each
// to be called inside the transaction that changes the sequence or step:
//
//	s.scheduleNewStep(tx, step)   a step added to an active sequence
//	s.replanStep(tx, step)        a step's offset or send time changed
//	s.scheduleSequence(tx, id)    a sequence switched on (backfill, late-skip applied)
//	s.cancelScheduled(tx, "step_id = ?", []any{id}, dripReason(ReasonStepDeleted, "..."))
//	s.cancelScheduled(tx, "sequence_id = ?", []any{id}, dripReason(ReasonSequenceDeleted, "..."))
//
// Cancel before deleting: the deliveries' step_id and sequence_id are set
// to NULL when their step or sequence goes.

// scheduleNewStep schedules a step just added to a sequence for everyone
// already in that sequence (a delivery of it for the same subject exists),
// from the same anchor, with late-skip applied. It does nothing for an
// inactive sequence: switching it on is scheduleSequence's job.
func (s *Service) scheduleNewStep(tx *gorm.DB, step *EmailStep) error {
	seq, err := schedSequence(tx, step.SequenceID)
	if err != nil || seq == nil || !seq.Active {
		return err
	}
	_, err = s.schedule(tx, schedFilter{triggers: []Trigger{seq.Trigger}, sequenceID: &seq.ID, stepID: &step.ID, inSequence: true})
	return err
}

// replanStep recomputes send_at of a step's pending deliveries after its
// offset or local send time changed (late-skip applied).
func (s *Service) replanStep(tx *gorm.DB, step *EmailStep) error {
	seq, err := schedSequence(tx, step.SequenceID)
	if err != nil || seq == nil {
		return err
	}
	return s.replan(tx, schedFilter{triggers: []Trigger{seq.Trigger}, sequenceID: &seq.ID, stepID: &step.ID})
}

// scheduleSequence schedules an active sequence for every woman its trigger
// and scope currently cover: those who joined before it was switched on get
// what is still timely, and the rest is recorded as skipped.
func (s *Service) scheduleSequence(tx *gorm.DB, sequenceID uuid.UUID) error {
	seq, err := schedSequence(tx, sequenceID)
	if err != nil || seq == nil || !seq.Active {
		return err
	}
	_, err = s.schedule(tx, schedFilter{triggers: []Trigger{seq.Trigger}, sequenceID: &seq.ID})
	return err
}

// cancelScheduled cancels the scheduled deliveries matching where (a SQL
// condition on email_deliveries with ? placeholders) with reason, a
// dripReason. Rows already sending, sent or ended are left alone: the
// worker re-checks eligibility before it sends.
func (s *Service) cancelScheduled(tx *gorm.DB, where string, args []any, reason string) error {
	vals := append([]any{DeliveryCancelled, reason, s.Now(), DeliveryScheduled}, args...)
	err := tx.Exec(`UPDATE email_deliveries SET status = ?, last_error = ?, updated_at = ? WHERE status = ? AND (`+where+`)`, vals...).Error
	if err != nil {
		return fmt.Errorf("cancel scheduled deliveries: %w", err)
	}
	return nil
}

// Reason codes of deliveries cancelled or skipped by scheduling; the
// delivery log shows last_error as "<code>: <detail>".
const (
	ReasonLate                = "late"
	ReasonExitedOnEnrollment  = "exited_on_enrollment"
	ReasonEnrollmentRefunded  = "enrollment_refunded"
	ReasonEnrollmentCancelled = "enrollment_cancelled"
	ReasonEnrollmentExpired   = "enrollment_expired"
	ReasonEnrollmentDisputed  = "enrollment_disputed"
	ReasonCohortCancelled     = "cohort_cancelled"
	ReasonSessionDeleted      = "session_deleted"
	ReasonLessonUnpublished   = "lesson_unpublished"
	ReasonLessonDeleted       = "lesson_deleted"
	ReasonStepDeleted         = "step_deleted"
	ReasonSequenceDeleted     = "sequence_deleted"
	// ReasonPaused skips a step that fell due while she had paused her
	// email (people.Pause).
	ReasonPaused = "paused"
)

// dripReason is a delivery's last_error: a stable code the code can match,
// then what the coach reads.
func dripReason(code, detail string) string { return code + ": " + detail }

// Backfill schedules trigger's active sequences for every current
// subject of that trigger, optionally only those of one program or cohort,
// in one statement and its own transaction, and returns how many
// deliveries it wrote (skipped ones included). Triggers fire by themselves
// as things happen; this is for a sequence switched on after the fact and
// for the scheduling benchmark.
func (s *Service) Backfill(ctx context.Context, trigger Trigger, programID, cohortID *uuid.UUID) (int64, error) {
	var n int64
	err := s.InTx(ctx, func(tx *gorm.DB) error {
		var err error
		n, err = s.schedule(tx, schedFilter{triggers: []Trigger{trigger}, programID: programID, cohortID: cohortID})
		return err
	})
	return n, err
}

// Trigger hooks, called by the domain code whose change fires them.

// enrollmentTriggers fire for an enrollment as it becomes active.
var enrollmentTriggers = []Trigger{TriggerEnrollmentActivated, TriggerCohortStart, TriggerSessionReminder, TriggerLessonUnlocked}

// onFreeAccessClaimed fires free_access_claimed and lesson_unlocked for her
// new free-access grant to a program. Only a first claim calls it.
func (s *Service) OnFreeAccessClaimed(tx *gorm.DB, participantID, programID uuid.UUID) error {
	_, err := s.schedule(tx, schedFilter{
		triggers: []Trigger{TriggerFreeAccessClaimed, TriggerLessonUnlocked}, grantsOnly: true,
		participantID: &participantID, programID: &programID,
	})
	return err
}

// onEnrollmentStatusChange follows an enrollment whose derived status just
// moved from prev to e.Status: becoming active schedules its sequences (and
// ends a lead's free-workshop sequences in a paid cohort); leaving active
// cancels what is pending with the reason; a dispute won restores what its
// opening cancelled and is still to come.
func (s *Service) OnEnrollmentStatusChange(tx *gorm.DB, e *enroll.Enrollment, prev enroll.EnrollmentStatus) error {
	if prev == e.Status {
		return nil
	}
	if e.Status == enroll.EnrollmentActive {
		now := s.Now()
		if _, err := s.schedule(tx, schedFilter{triggers: enrollmentTriggers, enrollmentID: &e.ID, activatedAt: &now}); err != nil {
			return err
		}
		if prev == enroll.EnrollmentDisputed {
			// participant_id leads the unique key's index: no scan of the log.
			if err := s.schedRestore(tx, ReasonEnrollmentDisputed, "participant_id = ? AND enrollment_id = ?", []any{e.ParticipantID, e.ID}); err != nil {
				return err
			}
		}
		// She is a client now: the lead sequences stop.
		return s.cancelScheduled(tx, `participant_id = ?
			AND sequence_id IN (SELECT id FROM email_sequences WHERE exit_on_enrollment)
			AND EXISTS (SELECT 1 FROM cohorts WHERE id = ? AND price_cents > 0)`,
			[]any{e.ParticipantID, e.CohortID}, dripReason(ReasonExitedOnEnrollment, "she enrolled in a paid cohort"))
	}
	if prev != enroll.EnrollmentActive {
		return nil
	}
	code := "enrollment_" + string(e.Status)
	switch e.Status {
	case enroll.EnrollmentRefunded:
		code = ReasonEnrollmentRefunded
	case enroll.EnrollmentCancelled:
		code = ReasonEnrollmentCancelled
	case enroll.EnrollmentExpired:
		code = ReasonEnrollmentExpired
	case enroll.EnrollmentDisputed:
		code = ReasonEnrollmentDisputed
	}
	return s.cancelScheduled(tx, "enrollment_id = ?", []any{e.ID}, dripReason(code, "the enrollment is "+string(e.Status)))
}

// onCohortUpdated follows a cohort's change from prev to cur: cancelled
// cancels its pending deliveries (reopened restores those still to come
// and schedules what is missing); a moved start re-plans what counts from
// it, and a new time zone re-plans the local send times that fall back to
// it.
func (s *Service) OnCohortUpdated(tx *gorm.DB, prev, cur *enroll.Cohort) error {
	if cur.Status == enroll.CohortCancelled {
		if prev.Status == enroll.CohortCancelled {
			return nil
		}
		return s.cancelScheduled(tx, "cohort_id = ?", []any{cur.ID}, dripReason(ReasonCohortCancelled, "the cohort was cancelled"))
	}
	if prev.Status == enroll.CohortCancelled {
		if err := s.schedRestore(tx, ReasonCohortCancelled, "cohort_id = ?", []any{cur.ID}); err != nil {
			return err
		}
	}
	var triggers []Trigger
	switch {
	case cur.Timezone != prev.Timezone:
		triggers = enrollmentTriggers
	case !cur.StartsAt.Equal(prev.StartsAt):
		triggers = []Trigger{TriggerCohortStart, TriggerLessonUnlocked}
	}
	if len(triggers) > 0 {
		if err := s.replan(tx, schedFilter{triggers: triggers, cohortID: &cur.ID}); err != nil {
			return err
		}
	}
	if prev.Status == enroll.CohortCancelled {
		_, err := s.schedule(tx, schedFilter{triggers: enrollmentTriggers, cohortID: &cur.ID})
		return err
	}
	return nil
}

// onLiveSessionCreated schedules the reminders of a new session for every
// woman active in its cohort.
func (s *Service) OnLiveSessionCreated(tx *gorm.DB, l *enroll.LiveSession) error {
	_, err := s.schedule(tx, schedFilter{triggers: []Trigger{TriggerSessionReminder}, sessionID: &l.ID})
	return err
}

// onLiveSessionMoved re-plans a session's pending reminders from its new
// start.
func (s *Service) OnLiveSessionMoved(tx *gorm.DB, l *enroll.LiveSession) error {
	return s.replan(tx, schedFilter{triggers: []Trigger{TriggerSessionReminder}, sessionID: &l.ID})
}

// onLiveSessionDeleting cancels a session's pending reminders; it runs
// before the row goes, which sets their live_session_id to NULL.
func (s *Service) OnLiveSessionDeleting(tx *gorm.DB, id uuid.UUID) error {
	return s.cancelScheduled(tx, "live_session_id = ?", []any{id}, dripReason(ReasonSessionDeleted, "the live session was deleted"))
}

// onParticipantTimezoneSet re-plans her pending deliveries in the zone she
// chose: local send times, and lesson unlocks (counted on her calendar).
func (s *Service) OnParticipantTimezoneSet(tx *gorm.DB, participantID uuid.UUID) error {
	return s.replan(tx, schedFilter{participantID: &participantID})
}

// onLessonSaved follows a lesson created (prev nil) or changed: published
// schedules its lesson_unlocked deliveries (restoring those its
// unpublishing cancelled), unpublished cancels them, and a new drip delay
// re-plans them.
func (s *Service) OnLessonSaved(tx *gorm.DB, prev, cur *catalog.Lesson) error {
	f := schedFilter{triggers: []Trigger{TriggerLessonUnlocked}, lessonID: &cur.ID}
	wasPublished := prev != nil && prev.Published
	switch {
	case cur.Published && !wasPublished:
		if prev != nil {
			if err := s.schedRestore(tx, ReasonLessonUnpublished, "lesson_id = ?", []any{cur.ID}); err != nil {
				return err
			}
			if err := s.replan(tx, f); err != nil {
				return err
			}
		}
		_, err := s.schedule(tx, f)
		return err
	case !cur.Published && wasPublished:
		return s.cancelScheduled(tx, "lesson_id = ?", []any{cur.ID}, dripReason(ReasonLessonUnpublished, "the lesson was unpublished"))
	case cur.Published && prev.UnlockOffsetDays != cur.UnlockOffsetDays:
		return s.replan(tx, f)
	}
	return nil
}

// onLessonDeleting cancels a lesson's pending deliveries before the row
// goes.
func (s *Service) OnLessonDeleting(tx *gorm.DB, id uuid.UUID) error {
	return s.cancelScheduled(tx, "lesson_id = ?", []any{id}, dripReason(ReasonLessonDeleted, "the lesson was deleted"))
}

// The scheduler.

// schedFilter narrows a schedule or replan run. Nil fields do not filter.
type schedFilter struct {
	triggers []Trigger // nil: every trigger

	participantID *uuid.UUID
	programID     *uuid.UUID
	cohortID      *uuid.UUID // enrollment subjects only
	enrollmentID  *uuid.UUID // enrollment subjects only
	sessionID     *uuid.UUID // session_reminder only
	lessonID      *uuid.UUID // lesson_unlocked only
	grantsOnly    bool       // free-access subjects only
	sequenceID    *uuid.UUID
	stepID        *uuid.UUID
	// inSequence limits scheduling to subjects that already have a
	// delivery of the sequence (a step added to it).
	inSequence bool
	// activatedAt is the moment the enrollment became active, when firing
	// enrollment_activated as it happens.
	activatedAt *time.Time
}

func (f *schedFilter) wants(trigger Trigger) bool {
	return f.triggers == nil || slices.Contains(f.triggers, trigger)
}

// schedSQL assembles one statement with numbered parameters. safe maps
// time zones Postgres does not know to UTC (at the price of reading its
// zone list), for the rare run the fast statement fails on one.
type schedSQL struct {
	args []any
	safe bool
}

func (b *schedSQL) arg(v any) string {
	b.args = append(b.args, v)
	return "$" + strconv.Itoa(len(b.args))
}

// zone is a time-zone expression, guarded in safe mode.
func (b *schedSQL) zone(expr string) string {
	if !b.safe {
		return expr
	}
	return "(CASE WHEN " + expr + " IN (SELECT name FROM sched_zones) THEN " + expr + " ELSE 'UTC' END)"
}

// with starts the statement's WITH list.
func (b *schedSQL) with() string {
	if b.safe {
		return "WITH sched_zones AS MATERIALIZED (SELECT name FROM pg_timezone_names),\n"
	}
	return "WITH "
}

// unlockAt is the SQL of people.UnlockAt: days counted on her calendar.
// TestUnlockAtSQLMatchesGo holds the two to the same answers.
func (b *schedSQL) unlockAt(start, days, tz string) string {
	z := b.zone(tz)
	return "CASE WHEN " + days + " = 0 THEN " + start + " ELSE ((" + start + " AT TIME ZONE " + z +
		") + make_interval(days => " + days + ")) AT TIME ZONE " + z + " END"
}

// schedSendAt is a step's send time from its anchor: minutes after it, or
// a local wall-clock time on the anchor's local date plus days, in zone tz
// (already guarded). Postgres resolves the wall-clock time with the offset
// in force on that day, so 09:00 stays 09:00 across a DST change.
func schedSendAt(anchor, tz, st string) string {
	return "CASE WHEN " + st + ".offset_minutes IS NOT NULL THEN " + anchor + " + make_interval(mins => " + st + ".offset_minutes) " +
		"ELSE ((" + anchor + " AT TIME ZONE " + tz + ")::date + " + st + ".offset_days + CAST(" + st + ".send_at_local AS time)) AT TIME ZONE " + tz + " END"
}

// lateCases are the status and last_error of a row due at sendAt: skipped
// with the reason when it is more than LateSkipAfter past due.
func (b *schedSQL) lateCases(sendAt string, now time.Time) (status, lastError string) {
	late := b.arg(now.Add(-LateSkipAfter))
	status = "CASE WHEN " + sendAt + " < " + late + " THEN '" + string(DeliverySkipped) + "' ELSE '" + string(DeliveryScheduled) + "' END"
	lastError = "CASE WHEN " + sendAt + " < " + late + " THEN " + b.arg(ReasonLate+": due ") +
		` || to_char(` + sendAt + ` AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI"Z"') || ` +
		b.arg(fmt.Sprintf(", more than %dh before it was scheduled", int(LateSkipAfter/time.Hour))) + " END"
	return status, lastError
}

// subjects is the UNION ALL of what the filter's triggers fire about, one
// row per participant and subject, with the columns
//
//	trigger, participant_id, email, enrollment_id, cohort_id, program_id,
//	live_session_id, lesson_id, subject_key, anchor_at, tz
//
// where tz is the zone of local send times: hers once she chose it, else
// her cohort's, else UTC. replan leaves enrollment_activated's anchor NULL:
// the moment it became active is only on record in its deliveries.
func (b *schedSQL) subjects(f *schedFilter, replan bool) string {
	var branches []string
	cond := func(conds *[]string, col string, v *uuid.UUID) {
		if v != nil {
			*conds = append(*conds, col+" = "+b.arg(*v))
		}
	}
	grants := f.cohortID == nil && f.enrollmentID == nil && f.sessionID == nil
	enrollments := !f.grantsOnly

	// Free access: her grant to the program.
	grantWhere := func(extra ...string) string {
		conds := append([]string{"g.source = '" + string(people.GrantFreeAccess) + "'", "g.revoked_at IS NULL"}, extra...)
		cond(&conds, "g.participant_id", f.participantID)
		cond(&conds, "g.program_id", f.programID)
		return strings.Join(conds, " AND ")
	}
	if grants && f.wants(TriggerFreeAccessClaimed) && f.lessonID == nil {
		branches = append(branches, `
		SELECT '`+string(TriggerFreeAccessClaimed)+`'::text AS trigger, p.id AS participant_id, p.email, NULL::uuid AS enrollment_id,
			NULL::uuid AS cohort_id, g.program_id, NULL::uuid AS live_session_id, NULL::uuid AS lesson_id,
			'program:' || g.program_id AS subject_key, g.starts_at AS anchor_at,
			CASE WHEN p.timezone_set THEN `+b.zone("p.timezone")+` ELSE 'UTC' END AS tz
		FROM access_grants g JOIN participants p ON p.id = g.participant_id
		WHERE `+grantWhere())
	}
	if grants && f.wants(TriggerLessonUnlocked) {
		extra := []string{}
		cond(&extra, "l.id", f.lessonID)
		branches = append(branches, `
		SELECT '`+string(TriggerLessonUnlocked)+`'::text, p.id, p.email, NULL::uuid, NULL::uuid, g.program_id, NULL::uuid, l.id,
			'lesson:' || l.id || '/grant:' || g.id, `+b.unlockAt("g.starts_at", "l.unlock_offset_days", "p.timezone")+`,
			CASE WHEN p.timezone_set THEN `+b.zone("p.timezone")+` ELSE 'UTC' END
		FROM access_grants g JOIN participants p ON p.id = g.participant_id
		JOIN lessons l ON l.program_id = g.program_id AND l.published
		WHERE `+grantWhere(extra...))
	}

	// Enrollments: active ones, in a cohort that is not cancelled.
	enrollWhere := func(extra ...string) string {
		conds := append([]string{"e.status = '" + string(enroll.EnrollmentActive) + "'", "c.status <> '" + string(enroll.CohortCancelled) + "'"}, extra...)
		cond(&conds, "e.participant_id", f.participantID)
		cond(&conds, "c.program_id", f.programID)
		cond(&conds, "e.cohort_id", f.cohortID)
		cond(&conds, "e.id", f.enrollmentID)
		return strings.Join(conds, " AND ")
	}
	const enrollFrom = `
		FROM enrollments e JOIN cohorts c ON c.id = e.cohort_id JOIN participants p ON p.id = e.participant_id`
	enrollTZ := "CASE WHEN p.timezone_set THEN " + b.zone("p.timezone") + " ELSE " + b.zone("c.timezone") + " END"
	plain := f.sessionID == nil && f.lessonID == nil
	if enrollments && plain && f.wants(TriggerEnrollmentActivated) {
		anchor := "NULL::timestamptz"
		if !replan {
			var at any
			if f.activatedAt != nil {
				at = *f.activatedAt
			}
			// The activation already on record (a dispute won, a step
			// added later) wins over this moment.
			anchor = `COALESCE((SELECT min(d0.anchor_at) FROM email_deliveries d0
				JOIN email_sequences q0 ON q0.id = d0.sequence_id AND q0.trigger = '` + string(TriggerEnrollmentActivated) + `'
				WHERE d0.participant_id = e.participant_id AND d0.subject_key = 'enrollment:' || e.id),
				CAST(` + b.arg(at) + ` AS timestamptz), e.paid_at, e.created_at)`
		}
		branches = append(branches, `
		SELECT '`+string(TriggerEnrollmentActivated)+`'::text, p.id, p.email, e.id, c.id, c.program_id, NULL::uuid, NULL::uuid,
			'enrollment:' || e.id, `+anchor+`, `+enrollTZ+enrollFrom+`
		WHERE `+enrollWhere())
	}
	if enrollments && plain && f.wants(TriggerCohortStart) {
		branches = append(branches, `
		SELECT '`+string(TriggerCohortStart)+`'::text, p.id, p.email, e.id, c.id, c.program_id, NULL::uuid, NULL::uuid,
			'enrollment:' || e.id, c.starts_at, `+enrollTZ+enrollFrom+`
		WHERE `+enrollWhere())
	}
	if enrollments && f.lessonID == nil && f.wants(TriggerSessionReminder) {
		extra := []string{}
		cond(&extra, "ls.id", f.sessionID)
		branches = append(branches, `
		SELECT '`+string(TriggerSessionReminder)+`'::text, p.id, p.email, e.id, c.id, c.program_id, ls.id, NULL::uuid,
			'session:' || ls.id || '/enrollment:' || e.id, ls.starts_at, `+enrollTZ+enrollFrom+`
		JOIN live_sessions ls ON ls.cohort_id = e.cohort_id
		WHERE `+enrollWhere(extra...))
	}
	if enrollments && f.sessionID == nil && f.wants(TriggerLessonUnlocked) {
		extra := []string{}
		cond(&extra, "l.id", f.lessonID)
		branches = append(branches, `
		SELECT '`+string(TriggerLessonUnlocked)+`'::text, p.id, p.email, e.id, c.id, c.program_id, NULL::uuid, l.id,
			'lesson:' || l.id || '/enrollment:' || e.id, `+b.unlockAt("c.starts_at", "l.unlock_offset_days", "p.timezone")+`, `+enrollTZ+enrollFrom+`
		JOIN lessons l ON l.program_id = c.program_id AND l.published
		WHERE `+enrollWhere(extra...))
	}
	return strings.Join(branches, "\n\t\tUNION ALL")
}

// schedSubjectCols names the columns of subjects' rows (a UNION takes its
// names from its first branch, which varies).
const schedSubjectCols = `s (trigger, participant_id, email, enrollment_id, cohort_id, program_id, live_session_id, lesson_id, subject_key, anchor_at, tz)`

// scheduleSQL is the INSERT of every delivery the filter's subjects are due
// from the active sequences of their trigger whose scope covers them.
func (b *schedSQL) scheduleSQL(f *schedFilter, now time.Time) string {
	subjects := b.subjects(f, false)
	if subjects == "" {
		return ""
	}
	conds := []string{
		// A lead who is already a client does not get the free-workshop
		// sequence at all.
		`NOT (q.exit_on_enrollment AND EXISTS (SELECT 1 FROM enrollments xe JOIN cohorts xc ON xc.id = xe.cohort_id
			WHERE xe.participant_id = s.participant_id AND xe.status = '` + string(enroll.EnrollmentActive) + `' AND xc.price_cents > 0))`,
	}
	if f.sequenceID != nil {
		conds = append(conds, "q.id = "+b.arg(*f.sequenceID))
	}
	if f.stepID != nil {
		conds = append(conds, "st.id = "+b.arg(*f.stepID))
	}
	if f.inSequence {
		conds = append(conds, `EXISTS (SELECT 1 FROM email_deliveries d0
			WHERE d0.participant_id = s.participant_id AND d0.subject_key = s.subject_key AND d0.sequence_id = q.id)`)
	}
	status, lastError := b.lateCases("x.send_at", now)
	at := b.arg(now)
	return b.with() + schedSubjectCols + ` AS (` + subjects + `
	)
	INSERT INTO email_deliveries (participant_id, email, sequence_id, step_id, subject_key, enrollment_id, cohort_id,
		program_id, live_session_id, lesson_id, anchor_at, timezone, status, send_at, last_error, created_at, updated_at)
	SELECT x.participant_id, x.email, x.sequence_id, x.step_id, x.subject_key, x.enrollment_id, x.cohort_id,
		x.program_id, x.live_session_id, x.lesson_id, x.anchor_at, x.tz, ` + status + `, x.send_at, ` + lastError + `, ` + at + `, ` + at + `
	FROM (
		SELECT s.*, q.id AS sequence_id, st.id AS step_id, ` + schedSendAt("s.anchor_at", "s.tz", "st") + ` AS send_at
		FROM s
		JOIN email_sequences q ON q.active AND q.trigger = s.trigger
			AND (q.program_id IS NULL OR q.program_id = s.program_id)
			AND (q.cohort_id IS NULL OR q.cohort_id = s.cohort_id)
		JOIN email_steps st ON st.sequence_id = q.id
		WHERE ` + strings.Join(conds, " AND ") + `
	) x
	ON CONFLICT (participant_id, step_id, subject_key) DO NOTHING`
}

// replanSQL recomputes the anchor, zone and send time of the pending
// deliveries of the filter's subjects from what they are now, late-skip
// applied. Rows skipped as late are re-planned too: a start moved later
// can make them timely again.
func (b *schedSQL) replanSQL(f *schedFilter, now time.Time) string {
	subjects := b.subjects(f, true)
	if subjects == "" {
		return ""
	}
	pending := func(d string) string {
		return "(" + d + ".status = '" + string(DeliveryScheduled) + "' OR (" + d + ".status = '" + string(DeliverySkipped) + "' AND " + d + ".last_error LIKE '" + ReasonLate + ":%'))"
	}
	conds := []string{pending("d0")}
	if f.sequenceID != nil {
		conds = append(conds, "q.id = "+b.arg(*f.sequenceID))
	}
	if f.stepID != nil {
		conds = append(conds, "st.id = "+b.arg(*f.stepID))
	}
	status, lastError := b.lateCases("t.send_at", now)
	return b.with() + schedSubjectCols + ` AS (` + subjects + `
	), r AS (
		SELECT d0.id, s.tz, COALESCE(s.anchor_at, d0.anchor_at) AS anchor_at, st.offset_minutes, st.offset_days, st.send_at_local
		FROM s
		JOIN email_deliveries d0 ON d0.participant_id = s.participant_id AND d0.subject_key = s.subject_key
		JOIN email_steps st ON st.id = d0.step_id
		JOIN email_sequences q ON q.id = st.sequence_id AND q.trigger = s.trigger
		WHERE ` + strings.Join(conds, " AND ") + `
	), t AS (
		SELECT r.id, r.tz, r.anchor_at, ` + schedSendAt("r.anchor_at", "r.tz", "r") + ` AS send_at FROM r
	)
	UPDATE email_deliveries d SET anchor_at = t.anchor_at, timezone = t.tz, send_at = t.send_at,
		status = ` + status + `, last_error = ` + lastError + `, updated_at = ` + b.arg(now) + `
	FROM t
	WHERE d.id = t.id AND ` + pending("d") + `
		AND (d.anchor_at, d.timezone, d.send_at, d.status) IS DISTINCT FROM (t.anchor_at, t.tz, t.send_at, ` + status + `)`
}

// schedule writes the filter's deliveries and returns how many rows it
// wrote; a trigger that fires twice writes nothing the second time.
func (s *Service) schedule(tx *gorm.DB, f schedFilter) (int64, error) {
	n, err := s.schedExec(tx, "schedule deliveries", func(b *schedSQL) string { return b.scheduleSQL(&f, s.Now()) })
	return n, err
}

// replan re-plans the filter's pending deliveries.
func (s *Service) replan(tx *gorm.DB, f schedFilter) error {
	_, err := s.schedExec(tx, "re-plan deliveries", func(b *schedSQL) string { return b.replanSQL(&f, s.Now()) })
	return err
}

// schedExec runs the statement build makes. Zones are validated when they
// are written, but by Go's zone database, not by Postgres's: if Postgres
// does not know one, the statement runs again in safe mode (under a
// savepoint, so the caller's transaction survives) instead of failing a
// payment or a sign-up.
func (s *Service) schedExec(tx *gorm.DB, what string, build func(*schedSQL) string) (int64, error) {
	ctx := tx.Statement.Context
	if ctx == nil {
		ctx = context.Background()
	}
	conn := tx.Statement.ConnPool
	run := func(safe bool) (int64, error) {
		b := &schedSQL{safe: safe}
		q := build(b)
		if q == "" {
			return 0, nil
		}
		res, err := conn.ExecContext(ctx, q, b.args...)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	}
	if _, err := conn.ExecContext(ctx, "SAVEPOINT drip_schedule"); err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	n, err := run(false)
	if err != nil && isUnknownZone(err) {
		s.Log.Warn("drip scheduling met a time zone Postgres does not know; it falls back to UTC", "err", err)
		if _, rerr := conn.ExecContext(ctx, "ROLLBACK TO SAVEPOINT drip_schedule"); rerr != nil {
			return 0, fmt.Errorf("%s: %w", what, errors.Join(err, rerr))
		}
		n, err = run(true)
	}
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	return n, nil
}

// isUnknownZone reports Postgres's "time zone ... not recognized".
func isUnknownZone(err error) bool {
	code, _ := models.PgCode(err)
	return code == "22023" && strings.Contains(err.Error(), "time zone")
}

// schedRestore puts back on schedule the deliveries that a reversible
// change cancelled with reason code (a dispute won, a cohort reopened, a
// lesson republished) and that are still to come, unless something else
// now stops them: her enrollment is no longer active or the cohort is
// cancelled.
func (s *Service) schedRestore(tx *gorm.DB, code, where string, args []any) error {
	now := s.Now()
	vals := append([]any{DeliveryScheduled, now, DeliveryCancelled, code + ":%", now, enroll.EnrollmentActive, enroll.CohortCancelled}, args...)
	err := tx.Exec(`UPDATE email_deliveries d SET status = ?, last_error = NULL, updated_at = ?
		WHERE d.status = ? AND d.last_error LIKE ? AND d.send_at > ?
			AND d.step_id IS NOT NULL AND d.sequence_id IS NOT NULL
			AND (d.enrollment_id IS NULL OR EXISTS (SELECT 1 FROM enrollments e WHERE e.id = d.enrollment_id AND e.status = ?))
			AND (d.cohort_id IS NULL OR EXISTS (SELECT 1 FROM cohorts c WHERE c.id = d.cohort_id AND c.status <> ?))
			AND (`+where+`)`, vals...).Error
	if err != nil {
		return fmt.Errorf("restore deliveries: %w", err)
	}
	return nil
}

// schedSequence reads a sequence's trigger and state, or nil when it is
// gone.
func schedSequence(tx *gorm.DB, id uuid.UUID) (*EmailSequence, error) {
	var seq EmailSequence
	err := tx.Select("id", "trigger", "active").Where("id = ?", id).Take(&seq).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read sequence: %w", err)
	}
	return &seq, nil
}

// LateSkipAfter is how far past due a step may be when it is scheduled and
// still be sent: a woman who joins late gets what is still timely, not a
// burst of stale emails.
const LateSkipAfter = 12 * time.Hour

package seed

import (
	"context"
	"embed"
	"fmt"
	"io"

	"github.com/google/uuid"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/domain"
	"github.com/grace-coaching/grace/models/drip"
	"github.com/grace-coaching/grace/models/people"
)

// Emails holds the bodies of the seeded drip emails, Markdown with
// {{placeholders}}.
//
//go:embed emails/*.md
var Emails embed.FS

// StepSpec is one seeded email: either OffsetMinutes, or OffsetDays at
// SendAtLocal. Body is read from File in Emails.
type StepSpec struct {
	File          string
	Subject       string
	OffsetMinutes *int
	OffsetDays    *int
	SendAtLocal   string
}

// SequenceSpec is one seeded sequence. Workshop scopes it to the seeded
// program; otherwise it applies to every program and cohort.
type SequenceSpec struct {
	Name             string
	Trigger          drip.Trigger
	Kind             drip.SequenceKind
	Workshop         bool
	ExitOnEnrollment bool
	Steps            []StepSpec
}

func minutes(m int) *int { return &m }

func days(d int) *int { return &d }

// Sequences are the drip sequences `grace seed` adds, switched on.
var Sequences = []SequenceSpec{
	{
		// Leads who claimed the free workshop, for two weeks, until they
		// enrol in a paid cohort.
		Name: "Say No With Grace: welcome series", Trigger: drip.TriggerFreeAccessClaimed, Kind: drip.SequenceMarketing,
		Workshop: true, ExitOnEnrollment: true,
		Steps: []StepSpec{
			{File: "emails/welcome-1.md", Subject: "Your workshop is open, {{first_name}}", OffsetMinutes: minutes(5)},
			{File: "emails/welcome-2.md", Subject: "The one-sentence no", OffsetDays: days(2), SendAtLocal: "09:00"},
			{File: "emails/welcome-3.md", Subject: "When they come back sweet", OffsetDays: days(5), SendAtLocal: "09:00"},
			{File: "emails/welcome-4.md", Subject: "Kind is not the same as available", OffsetDays: days(9), SendAtLocal: "09:00"},
			{File: "emails/welcome-5.md", Subject: "{{first_name}}, what comes after the workshop", OffsetDays: days(13), SendAtLocal: "09:00"},
		},
	},
	{
		Name: "Cohort onboarding", Trigger: drip.TriggerCohortStart, Kind: drip.SequenceTransactional,
		Steps: []StepSpec{
			{File: "emails/onboarding-1.md", Subject: "One week until {{cohort_name}} begins", OffsetDays: days(-7), SendAtLocal: "09:00"},
			{File: "emails/onboarding-2.md", Subject: "Tomorrow we begin: {{cohort_name}}", OffsetDays: days(-1), SendAtLocal: "09:00"},
			{File: "emails/onboarding-3.md", Subject: "Welcome to day one, {{first_name}}", OffsetDays: days(0), SendAtLocal: "09:00"},
		},
	},
	{
		Name: "Live session reminders", Trigger: drip.TriggerSessionReminder, Kind: drip.SequenceTransactional,
		Steps: []StepSpec{
			{File: "emails/reminder-24h.md", Subject: "Tomorrow: our live session", OffsetMinutes: minutes(-1440)},
			{File: "emails/reminder-1h.md", Subject: "We start in an hour", OffsetMinutes: minutes(-60)},
		},
	},
}

// seedActor manages every sequence: the seed is the operator, not a coach.
var seedActor = &people.Coach{Role: people.RoleAdmin}

// ensureSequences adds each seeded sequence that is missing, by name. A
// sequence left without steps (a seed that stopped half-way) gets them; one
// that has steps is the coach's now and is left as it is, even if she
// deleted some.
func ensureSequences(ctx context.Context, svc *domain.Services, programID uuid.UUID, out io.Writer) error {
	for _, spec := range Sequences {
		var seqs []drip.EmailSequence
		if err := svc.Kernel.DB.WithContext(ctx).Where("name = ?", spec.Name).Order("created_at").Limit(1).Find(&seqs).Error; err != nil {
			return err
		}
		var seq *drip.EmailSequence
		if len(seqs) > 0 {
			seq = &seqs[0]
			var steps int64
			if err := svc.Kernel.DB.WithContext(ctx).Model(&drip.EmailStep{}).Where("sequence_id = ?", seq.ID).Count(&steps).Error; err != nil {
				return err
			}
			if steps > 0 {
				continue
			}
		} else {
			in := drip.SequenceInput{Name: spec.Name, Trigger: spec.Trigger, Kind: spec.Kind, ExitOnEnrollment: spec.ExitOnEnrollment}
			if spec.Workshop {
				in.ProgramID = &programID
			}
			var err error
			if seq, err = svc.Drip.CreateSequence(ctx, seedActor, in); err != nil {
				return fmt.Errorf("seed sequence %q: %w", spec.Name, err)
			}
		}
		for _, st := range spec.Steps {
			body, err := Emails.ReadFile(st.File)
			if err != nil {
				return err
			}
			in := drip.StepInput{OffsetMinutes: st.OffsetMinutes, OffsetDays: st.OffsetDays, Subject: st.Subject, Body: string(body)}
			if st.SendAtLocal != "" {
				local := st.SendAtLocal
				in.SendAtLocal = &local
			}
			if _, err := svc.Drip.CreateStep(ctx, seedActor, seq.ID, in); err != nil {
				return fmt.Errorf("seed step %q of %q: %w", st.Subject, spec.Name, err)
			}
		}
		// Switched on once complete, so everyone its trigger already covers
		// is scheduled once, with every step.
		if _, err := svc.Drip.UpdateSequence(ctx, seedActor, seq.ID, drip.SequencePatch{Active: models.Some(true)}); err != nil {
			return fmt.Errorf("switch on sequence %q: %w", spec.Name, err)
		}
		fmt.Fprintf(out, "seeded email sequence %q: %d emails, active\n", spec.Name, len(spec.Steps))
	}
	return nil
}

package drip_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/domain"
	"github.com/grace-coaching/grace/models/drip"
	"github.com/grace-coaching/grace/models/enroll"
	"github.com/grace-coaching/grace/models/modelstest"
	"github.com/grace-coaching/grace/models/people"
)

// The world the tests of what comes back in share: unsubscribes, Resend
// events, the suppression list and the delivery log.

// inbound is a database with a program, a cohort led by a coach, and a
// marketing and a transactional sequence with one step each.
type inbound struct {
	svc           *domain.Services
	clock         *models.FakeClock
	db            *gorm.DB
	program       catalog.Program
	cohort        enroll.Cohort
	lead          *people.Coach
	marketing     drip.EmailSequence
	marketingStep drip.EmailStep
	reminders     drip.EmailSequence
	reminderStep  drip.EmailStep
}

func newInbound(t *testing.T) *inbound {
	t.Helper()
	svc, clock, db := modelstest.NewService(t)
	w := &inbound{svc: svc, clock: clock, db: db}
	w.program = catalog.Program{Slug: "say-no", Title: "Say No", Summary: "s", Status: catalog.ProgramPublished, PriceCents: 0, Currency: "EUR"}
	noErr(t, db.Create(&w.program).Error)
	start := clock.Now().Add(7 * 24 * time.Hour)
	w.cohort = enroll.Cohort{ProgramID: w.program.ID, Name: "Spring", StartsAt: start, EndsAt: start.Add(30 * 24 * time.Hour),
		Timezone: "Europe/London", Capacity: 10, PriceCents: 30000, Currency: "EUR", Status: enroll.CohortOpen}
	noErr(t, db.Create(&w.cohort).Error)
	w.lead = modelstest.NewCoach(t, db, "lead@example.com", people.RoleCoach)
	noErr(t, db.Create(&enroll.CohortCoach{CohortID: w.cohort.ID, CoachID: w.lead.ID, Lead: true}).Error)
	w.marketing, w.marketingStep = dripSequence(t, db, "Welcome", drip.TriggerFreeAccessClaimed, drip.SequenceMarketing)
	w.reminders, w.reminderStep = dripSequence(t, db, "Reminders", drip.TriggerSessionReminder, drip.SequenceTransactional)
	return w
}

func noErr(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func dripSequence(t *testing.T, db *gorm.DB, name string, trigger drip.Trigger, kind drip.SequenceKind) (drip.EmailSequence, drip.EmailStep) {
	t.Helper()
	seq := drip.EmailSequence{Name: name, Trigger: trigger, Kind: kind, Active: true}
	noErr(t, db.Create(&seq).Error)
	minutes := 60
	step := drip.EmailStep{SequenceID: seq.ID, Position: 1, OffsetMinutes: &minutes, Subject: "Hello", Body: "Hi {{first_name}}"}
	noErr(t, db.Create(&step).Error)
	return seq, step
}

// participant creates her and reads back the token the database generated.
func (w *inbound) participant(t *testing.T, email string) people.Participant {
	t.Helper()
	p := people.Participant{Email: email, Name: "P " + email, Timezone: "Europe/London"}
	noErr(t, w.db.Create(&p).Error)
	noErr(t, w.db.Take(&p, "id = ?", p.ID).Error)
	if len(p.UnsubscribeToken) < 32 {
		t.Fatalf("unsubscribe token %q was not generated", p.UnsubscribeToken)
	}
	return p
}

// delivery writes a delivery row as the scheduler or the worker would.
func (w *inbound) delivery(t *testing.T, p people.Participant, step drip.EmailStep, status drip.DeliveryStatus, cohort bool, mod func(*drip.EmailDelivery)) drip.EmailDelivery {
	t.Helper()
	now := w.clock.Now()
	d := drip.EmailDelivery{ParticipantID: p.ID, Email: p.Email, SequenceID: &step.SequenceID, StepID: &step.ID,
		SubjectKey: "program:" + uuid.NewString(), ProgramID: &w.program.ID, AnchorAt: now, Timezone: "UTC",
		Status: status, SendAt: now.Add(time.Hour), CreatedAt: now}
	if cohort {
		d.CohortID = &w.cohort.ID
	}
	if status == drip.DeliverySent {
		id := uuid.NewString()
		d.SentAt, d.ResendID, d.Attempts = &now, &id, 1
	}
	if mod != nil {
		mod(&d)
	}
	noErr(t, w.db.Create(&d).Error)
	return d
}

func (w *inbound) reload(t *testing.T, d drip.EmailDelivery) drip.EmailDelivery {
	t.Helper()
	var out drip.EmailDelivery
	noErr(t, w.db.Take(&out, "id = ?", d.ID).Error)
	return out
}

func lastError(d drip.EmailDelivery) string {
	if d.LastError == nil {
		return ""
	}
	return *d.LastError
}

func suppression(t *testing.T, db *gorm.DB, email string) *drip.EmailSuppression {
	t.Helper()
	var rows []drip.EmailSuppression
	noErr(t, db.Where("email = ?", email).Find(&rows).Error)
	if len(rows) == 0 {
		return nil
	}
	return &rows[0]
}

package drip_test

import (
	"context"
	"fmt"
	"strings"
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

// dripWorld is a fresh database with a published program open for free
// access, an admin coach, and the fake clock. Sequences and steps are
// inserted as rows, so these tests depend only on the scheduler and the
// domain paths that fire it.
type dripWorld struct {
	ctx     context.Context
	svc     *domain.Services
	clock   *models.FakeClock
	db      *gorm.DB
	admin   *people.Coach
	program *catalog.Program
}

func newDripWorld(t *testing.T) *dripWorld {
	t.Helper()
	db := modelstest.NewDB(t)
	clock := models.NewFakeClock(modelstest.Start)
	svc := domain.New(domain.Deps{DB: db, Clock: clock, Limits: &models.Limits{}})
	w := &dripWorld{ctx: context.Background(), svc: svc, clock: clock, db: db}
	w.admin = &people.Coach{Email: "grace@coach.test", Name: "Grace", Role: people.RoleAdmin, Active: true}
	modelstest.MustDo(t, db.Create(w.admin).Error)
	w.program = w.newProgram(t, "say-no-with-grace")
	return w
}

func (w *dripWorld) newProgram(t *testing.T, slug string) *catalog.Program {
	t.Helper()
	until := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	p := &catalog.Program{Slug: slug, Title: "Say No With Grace", Status: catalog.ProgramPublished, FreeAccessUntil: &until,
		PriceCents: 49700, Currency: "EUR"}
	modelstest.MustDo(t, w.db.Create(p).Error)
	return p
}

// cohort inserts an open paid cohort of the program starting in 30 days in
// Berlin; mod adjusts it first.
func (w *dripWorld) cohort(t *testing.T, mod ...func(*enroll.Cohort)) *enroll.Cohort {
	t.Helper()
	now := w.clock.Now()
	c := &enroll.Cohort{ProgramID: w.program.ID, Name: "Spring circle", StartsAt: now.Add(30 * 24 * time.Hour),
		EndsAt: now.Add(60 * 24 * time.Hour), Timezone: "Europe/Berlin", Capacity: 50, PriceCents: 49700, Currency: "EUR",
		Status: enroll.CohortOpen}
	for _, m := range mod {
		m(c)
	}
	modelstest.MustDo(t, w.db.Create(c).Error)
	return c
}

// participant inserts a woman with the given zone, chosen (set) or only the
// default she has not confirmed.
func (w *dripWorld) participant(t *testing.T, email, tz string, set bool) *people.Participant {
	t.Helper()
	p := &people.Participant{Email: email, Name: "Ada", Timezone: tz, TimezoneSet: set}
	modelstest.MustDo(t, w.db.Create(p).Error)
	return p
}

type seqOpt func(*drip.EmailSequence)

func exitOnEnrollment(s *drip.EmailSequence) { s.ExitOnEnrollment = true }
func inactive(s *drip.EmailSequence)         { s.Active = false }
func scopedToProgram(id uuid.UUID) seqOpt    { return func(s *drip.EmailSequence) { s.ProgramID = &id } }
func scopedToCohort(id uuid.UUID) seqOpt     { return func(s *drip.EmailSequence) { s.CohortID = &id } }

// sequence inserts an active marketing sequence of trigger with steps at
// positions 1..n.
func (w *dripWorld) sequence(t *testing.T, trigger drip.Trigger, steps []drip.EmailStep, opts ...seqOpt) (*drip.EmailSequence, []drip.EmailStep) {
	t.Helper()
	seq := &drip.EmailSequence{Name: string(trigger) + " sequence", Trigger: trigger, Kind: drip.SequenceMarketing, Active: true}
	for _, o := range opts {
		o(seq)
	}
	modelstest.MustDo(t, w.db.Create(seq).Error)
	for i := range steps {
		steps[i].SequenceID, steps[i].Position = seq.ID, i+1
		steps[i].Subject, steps[i].Body = fmt.Sprintf("Step %d", i+1), "Hello {{first_name}}"
		modelstest.MustDo(t, w.db.Create(&steps[i]).Error)
	}
	return seq, steps
}

func atLocal(days int, hhmm string) drip.EmailStep {
	return drip.EmailStep{OffsetDays: &days, SendAtLocal: &hhmm}
}

func afterMinutes(m int) drip.EmailStep { return drip.EmailStep{OffsetMinutes: &m} }

// deliveries reads the rows matching where, in send order.
func (w *dripWorld) deliveries(t *testing.T, where string, args ...any) []drip.EmailDelivery {
	t.Helper()
	var out []drip.EmailDelivery
	modelstest.MustDo(t, w.db.Where(where, args...).Order("send_at, subject_key, id").Find(&out).Error)
	return out
}

func (w *dripWorld) delivery(t *testing.T, participantID, stepID uuid.UUID) drip.EmailDelivery {
	t.Helper()
	rows := w.deliveries(t, "participant_id = ? AND step_id = ?", participantID, stepID)
	if len(rows) != 1 {
		t.Fatalf("%d deliveries of step %s to %s, want 1", len(rows), stepID, participantID)
	}
	return rows[0]
}

func (w *dripWorld) claim(t *testing.T, program *catalog.Program, email string) *people.Participant {
	t.Helper()
	err := w.svc.People.ClaimFreeAccess(w.ctx, program.Slug, people.FreeAccessInput{Email: email, Name: "Ada", DisclaimerAccepted: true},
		models.ClientInfo{IP: "203.0.113.7", UserAgent: "test"})
	modelstest.MustDo(t, err)
	_, err = w.svc.Kernel.RunTasksOnce(w.ctx) // the worker's turn
	modelstest.MustDo(t, err)
	var p people.Participant
	modelstest.MustDo(t, w.db.Where("email = ?", email).Take(&p).Error)
	return &p
}

// complimentary gives her a seat through the coach's real path.
func (w *dripWorld) complimentary(t *testing.T, c *enroll.Cohort, email string) *enroll.EnrollmentDetail {
	t.Helper()
	d, err := w.svc.Enroll.AddComplimentary(w.ctx, w.admin, c.ID, email, "Ada")
	modelstest.MustDo(t, err)
	if d.Status != enroll.EnrollmentActive {
		t.Fatalf("complimentary seat is %s, want active", d.Status)
	}
	return d
}

// paid holds a seat for her as a checkout would and pays it through the
// payment-event path; it returns the enrollment and its payment intent.
func (w *dripWorld) paid(t *testing.T, c *enroll.Cohort, email string) (uuid.UUID, string) {
	t.Helper()
	p := w.participant(t, email, "Europe/Berlin", false)
	exp := w.clock.Now().Add(enroll.CheckoutHoldTTL)
	sess, pi := "cs_"+uuid.NewString(), "pi_"+uuid.NewString()
	e := enroll.Enrollment{CohortID: c.ID, ParticipantID: p.ID, Status: enroll.EnrollmentPending, Seat: enroll.SeatHeld,
		HoldExpiresAt: &exp, CheckoutSessionID: &sess, Currency: "EUR", DisputeStatus: enroll.DisputeNone}
	modelstest.MustDo(t, w.db.Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(&e).Error; err != nil {
			return err
		}
		return tx.Exec(`UPDATE cohorts SET seats_held = seats_held + 1 WHERE id = ?`, c.ID).Error
	}))
	w.payEvent(t, enroll.PaymentEvent{Type: enroll.EventCheckoutCompleted,
		Session: &enroll.CheckoutSession{ID: sess, Status: enroll.SessionComplete, PaymentStatus: "paid", PaymentIntentID: pi,
			AmountTotal: c.PriceCents, Currency: "eur", EnrollmentID: e.ID.String()}})
	w.wantEnrollment(t, e.ID, enroll.EnrollmentActive)
	return e.ID, pi
}

func (w *dripWorld) payEvent(t *testing.T, ev enroll.PaymentEvent) {
	t.Helper()
	ev.ID, ev.Created = "evt_"+uuid.NewString(), w.clock.Now()
	ev.Payload = []byte(`{"id":"` + ev.ID + `"}`)
	modelstest.MustDo(t, w.svc.Enroll.ApplyPaymentEvent(w.ctx, ev))
}

func (w *dripWorld) wantEnrollment(t *testing.T, id uuid.UUID, status enroll.EnrollmentStatus) {
	t.Helper()
	var e enroll.Enrollment
	modelstest.MustDo(t, w.db.Where("id = ?", id).Take(&e).Error)
	if e.Status != status {
		t.Fatalf("enrollment is %s, want %s", e.Status, status)
	}
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func wantSendAt(t *testing.T, d drip.EmailDelivery, want string) {
	t.Helper()
	if got := d.SendAt.UTC().Format(time.RFC3339); got != want {
		t.Errorf("delivery %s: send_at %s, want %s", d.SubjectKey, got, want)
	}
}

func wantStatus(t *testing.T, d drip.EmailDelivery, status drip.DeliveryStatus, reasonCode string) {
	t.Helper()
	reason := ""
	if d.LastError != nil {
		reason = *d.LastError
	}
	if d.Status != status || (reasonCode == "" && reason != "") || (reasonCode != "" && !strings.HasPrefix(reason, reasonCode+": ")) {
		t.Errorf("delivery %s due %s: %s %q, want %s with reason code %q", d.SubjectKey, d.SendAt.UTC().Format(time.RFC3339),
			d.Status, reason, status, reasonCode)
	}
}

// A 09:00 step lands at 09:00 on her own calendar, whatever the offset to
// UTC is that day: Los Angeles springs forward on 2026-03-08, Sydney falls
// back on 2026-04-05, Tehran keeps +03:30 all year (no DST since 2022). The
// day counts from the anchor's date in her zone, not in UTC.
func TestDripLocalSendTimeAcrossDST(t *testing.T) {
	w := newDripWorld(t)
	_, steps := w.sequence(t, drip.TriggerFreeAccessClaimed, []drip.EmailStep{atLocal(1, "09:00"), atLocal(2, "09:00"), atLocal(7, "09:00")})
	byDays := map[int]drip.EmailStep{1: steps[0], 2: steps[1], 7: steps[2]}

	for i, tc := range []struct {
		name, zone, claimedAt string
		days                  int
		want                  string
	}{
		{"Los Angeles day 1, still PST", "America/Los_Angeles", "2026-03-06T20:00:00Z", 1, "2026-03-07T17:00:00Z"},
		{"Los Angeles day 2, the DST day itself", "America/Los_Angeles", "2026-03-06T20:00:00Z", 2, "2026-03-08T16:00:00Z"},
		{"Los Angeles day 7, PDT", "America/Los_Angeles", "2026-03-06T20:00:00Z", 7, "2026-03-13T16:00:00Z"},
		{"Los Angeles evening claim counts from her date", "America/Los_Angeles", "2026-03-07T05:00:00Z", 1, "2026-03-07T17:00:00Z"},
		{"Tehran day 1", "Asia/Tehran", "2026-03-06T20:00:00Z", 1, "2026-03-07T05:30:00Z"},
		{"Tehran day 2 (US DST changes nothing)", "Asia/Tehran", "2026-03-06T20:00:00Z", 2, "2026-03-08T05:30:00Z"},
		{"Tehran day 7", "Asia/Tehran", "2026-03-06T20:00:00Z", 7, "2026-03-13T05:30:00Z"},
		{"Sydney day 1, still AEDT", "Australia/Sydney", "2026-04-03T00:00:00Z", 1, "2026-04-03T22:00:00Z"},
		{"Sydney day 2, the DST day itself", "Australia/Sydney", "2026-04-03T00:00:00Z", 2, "2026-04-04T23:00:00Z"},
		{"Sydney day 7, AEST", "Australia/Sydney", "2026-04-03T00:00:00Z", 7, "2026-04-09T23:00:00Z"},
		{"Sydney claim after midnight local counts from her date", "Australia/Sydney", "2026-04-03T14:00:00Z", 1, "2026-04-04T23:00:00Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w.clock.Set(utc(tc.claimedAt))
			email := fmt.Sprintf("tz%d@example.com", i)
			w.participant(t, email, tc.zone, true)
			p := w.claim(t, w.program, email)
			d := w.delivery(t, p.ID, byDays[tc.days].ID)
			wantSendAt(t, d, tc.want)
			wantStatus(t, d, drip.DeliveryScheduled, "")
			if d.Timezone != tc.zone || !d.AnchorAt.Equal(utc(tc.claimedAt)) || d.SubjectKey != "program:"+w.program.ID.String() {
				t.Errorf("zone %s anchor %s subject %s", d.Timezone, d.AnchorAt.UTC(), d.SubjectKey)
			}
		})
	}
}

// Until she chooses a zone, a local send time follows her cohort's zone;
// with no cohort (free access) it is UTC. A zone Postgres does not know
// falls back to UTC instead of failing her sign-up.
func TestDripLocalSendTimeFallsBackToCohortZoneThenUTC(t *testing.T) {
	w := newDripWorld(t)
	c := w.cohort(t, func(c *enroll.Cohort) {
		c.Timezone, c.StartsAt, c.EndsAt = "America/Los_Angeles", utc("2026-03-10T17:00:00Z"), utc("2026-04-10T17:00:00Z")
	})
	_, onboarding := w.sequence(t, drip.TriggerCohortStart, []drip.EmailStep{atLocal(-1, "09:00")})
	_, welcome := w.sequence(t, drip.TriggerFreeAccessClaimed, []drip.EmailStep{atLocal(1, "09:00")})

	for _, tc := range []struct {
		name, zone string
		set        bool
		enroll     bool
		wantZone   string
		want       string
	}{
		{"unset zone follows the cohort's", "Asia/Tehran", false, true, "America/Los_Angeles", "2026-03-09T16:00:00Z"},
		{"her chosen zone wins", "Asia/Tehran", true, true, "Asia/Tehran", "2026-03-09T05:30:00Z"},
		{"no cohort and no zone of hers: UTC", "Asia/Tehran", false, false, "UTC", "2026-03-03T09:00:00Z"},
		{"a zone Postgres does not know: UTC", "Mars/Olympus", true, false, "UTC", "2026-03-03T09:00:00Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			email := strings.ReplaceAll(strings.ToLower(tc.name), " ", "-") + "@example.com"
			email = strings.NewReplacer("'", "", ":", "").Replace(email)
			p := w.participant(t, email, tc.zone, tc.set)
			step := welcome[0]
			if tc.enroll {
				w.complimentary(t, c, email)
				step = onboarding[0]
			} else {
				w.claim(t, w.program, email)
			}
			d := w.delivery(t, p.ID, step.ID)
			wantSendAt(t, d, tc.want)
			if d.Timezone != tc.wantZone {
				t.Errorf("zone %s, want %s", d.Timezone, tc.wantZone)
			}
		})
	}
}

// Session reminders count back from each live session: a session created,
// moved or deleted moves its pending reminders with it.
func TestDripSessionRemindersFollowTheirSession(t *testing.T) {
	w := newDripWorld(t)
	c := w.cohort(t)
	_, steps := w.sequence(t, drip.TriggerSessionReminder, []drip.EmailStep{afterMinutes(-24 * 60), afterMinutes(-60)}, scopedToCohort(c.ID))
	first, err := w.svc.Enroll.CreateLiveSession(w.ctx, w.admin, c.ID, enroll.LiveSessionInput{Title: "Week 1", StartsAt: utc("2026-04-02T17:00:00Z"), DurationMinutes: 90})
	modelstest.MustDo(t, err)
	ada := w.complimentary(t, c, "ada@example.com")
	wantRows := func(session *enroll.LiveSession, status drip.DeliveryStatus, reason string, sendAts ...string) {
		t.Helper()
		rows := w.deliveries(t, "live_session_id = ? OR subject_key LIKE ?", session.ID, "session:"+session.ID.String()+"/%")
		if len(rows) != len(sendAts) {
			t.Fatalf("%d reminders of session %s, want %d", len(rows), session.Title, len(sendAts))
		}
		for i, d := range rows {
			wantSendAt(t, d, sendAts[i])
			wantStatus(t, d, status, reason)
			if d.SubjectKey != "session:"+session.ID.String()+"/enrollment:"+ada.ID.String() || !d.AnchorAt.Equal(session.StartsAt) {
				t.Errorf("subject %s anchor %s", d.SubjectKey, d.AnchorAt)
			}
		}
	}
	// Activation schedules the sessions that exist...
	wantRows(first, drip.DeliveryScheduled, "", "2026-04-01T17:00:00Z", "2026-04-02T16:00:00Z")
	if rows := w.deliveries(t, "step_id = ?", steps[0].ID); len(rows) != 1 || rows[0].LiveSessionID == nil || *rows[0].LiveSessionID != first.ID {
		t.Fatalf("reminder rows %+v", rows)
	}

	// ...a session added later is scheduled for those already active...
	second, err := w.svc.Enroll.CreateLiveSession(w.ctx, w.admin, c.ID, enroll.LiveSessionInput{Title: "Week 2", StartsAt: utc("2026-04-09T17:00:00Z"), DurationMinutes: 90})
	modelstest.MustDo(t, err)
	wantRows(second, drip.DeliveryScheduled, "", "2026-04-08T17:00:00Z", "2026-04-09T16:00:00Z")

	// ...a moved one moves its reminders...
	moved, err := w.svc.Enroll.UpdateLiveSession(w.ctx, w.admin, second.ID, enroll.LiveSessionPatch{StartsAt: models.Some(utc("2026-04-10T08:30:00Z"))})
	modelstest.MustDo(t, err)
	wantRows(moved, drip.DeliveryScheduled, "", "2026-04-09T08:30:00Z", "2026-04-10T07:30:00Z")

	// ...and a deleted one cancels them, with the reason on record.
	modelstest.MustDo(t, w.svc.Enroll.DeleteLiveSession(w.ctx, w.admin, first.ID))
	wantRows(first, drip.DeliveryCancelled, drip.ReasonSessionDeleted, "2026-04-01T17:00:00Z", "2026-04-02T16:00:00Z")
	wantRows(moved, drip.DeliveryScheduled, "", "2026-04-09T08:30:00Z", "2026-04-10T07:30:00Z")
}

// A woman who joins three days before the start gets what is still timely;
// steps more than 12 hours past due are recorded as skipped, not sent as a
// burst.
func TestDripLateJoinerSkipsStaleSteps(t *testing.T) {
	w := newDripWorld(t)
	now := w.clock.Now() // 2026-03-02T09:00Z
	c := w.cohort(t, func(c *enroll.Cohort) { c.StartsAt, c.Timezone = now.Add(72*time.Hour), "UTC" })
	_, steps := w.sequence(t, drip.TriggerCohortStart, []drip.EmailStep{
		atLocal(-7, "09:00"),          // a week before: 4 days late
		afterMinutes(-(72 + 13) * 60), // 13 hours late
		afterMinutes(-(72 + 11) * 60), // 11 hours late: still sent
		atLocal(-1, "09:00"),          // the day before
		afterMinutes(0),               // at the start
	})
	ada := w.complimentary(t, c, "ada@example.com")
	for i, tc := range []struct {
		status         drip.DeliveryStatus
		reason, sendAt string
	}{
		{drip.DeliverySkipped, drip.ReasonLate, "2026-02-26T09:00:00Z"},
		{drip.DeliverySkipped, drip.ReasonLate, "2026-03-01T20:00:00Z"},
		{drip.DeliveryScheduled, "", "2026-03-01T22:00:00Z"},
		{drip.DeliveryScheduled, "", "2026-03-04T09:00:00Z"},
		{drip.DeliveryScheduled, "", "2026-03-05T09:00:00Z"},
	} {
		d := w.delivery(t, ada.ParticipantID, steps[i].ID)
		wantStatus(t, d, tc.status, tc.reason)
		wantSendAt(t, d, tc.sendAt)
	}
	d := w.delivery(t, ada.ParticipantID, steps[0].ID)
	if want := "late: due 2026-02-26T09:00Z, more than 12h before it was scheduled"; *d.LastError != want {
		t.Errorf("reason %q, want %q", *d.LastError, want)
	}
}

// The unique (participant, step, subject) key makes a trigger idempotent:
// a second claim, or a backfill over subjects already scheduled, writes
// nothing.
func TestDripTriggerFiringTwiceSchedulesOnce(t *testing.T) {
	w := newDripWorld(t)
	c := w.cohort(t)
	w.sequence(t, drip.TriggerFreeAccessClaimed, []drip.EmailStep{afterMinutes(5), atLocal(2, "09:00")})
	w.sequence(t, drip.TriggerCohortStart, []drip.EmailStep{atLocal(-1, "09:00")})
	p := w.claim(t, w.program, "ada@example.com")
	w.claim(t, w.program, "ada@example.com")
	w.complimentary(t, c, "bea@example.com")

	for _, trigger := range []drip.Trigger{drip.TriggerFreeAccessClaimed, drip.TriggerCohortStart} {
		n, err := w.svc.Drip.Backfill(w.ctx, trigger, nil, nil)
		modelstest.MustDo(t, err)
		if n != 0 {
			t.Errorf("backfill of %s wrote %d rows, want 0", trigger, n)
		}
	}
	if rows := w.deliveries(t, "participant_id = ?", p.ID); len(rows) != 2 {
		t.Errorf("%d deliveries after two claims, want 2", len(rows))
	}
	if rows := w.deliveries(t, "true"); len(rows) != 3 {
		t.Errorf("%d deliveries in all, want 3", len(rows))
	}
}

// Sequences fire only for the subjects their scope covers.
func TestDripSequenceScope(t *testing.T) {
	w := newDripWorld(t)
	c := w.cohort(t)
	other := w.cohort(t, func(o *enroll.Cohort) { o.Name = "Autumn circle" })
	otherProgram := w.newProgram(t, "other-program")
	step := func() []drip.EmailStep { return []drip.EmailStep{afterMinutes(60)} }
	_, all := w.sequence(t, drip.TriggerCohortStart, step())
	_, program := w.sequence(t, drip.TriggerCohortStart, step(), scopedToProgram(w.program.ID))
	_, cohort := w.sequence(t, drip.TriggerCohortStart, step(), scopedToCohort(c.ID))
	_, wrongProgram := w.sequence(t, drip.TriggerCohortStart, step(), scopedToProgram(otherProgram.ID))
	_, wrongCohort := w.sequence(t, drip.TriggerCohortStart, step(), scopedToCohort(other.ID))
	_, off := w.sequence(t, drip.TriggerCohortStart, step(), inactive)
	_, freeCohort := w.sequence(t, drip.TriggerFreeAccessClaimed, step(), scopedToCohort(c.ID))
	ada := w.complimentary(t, c, "ada@example.com")
	w.claim(t, w.program, "ada@example.com")
	for _, tc := range []struct {
		name string
		step drip.EmailStep
		want int
	}{
		{"unscoped", all[0], 1}, {"her program", program[0], 1}, {"her cohort", cohort[0], 1},
		{"another program", wrongProgram[0], 0}, {"another cohort", wrongCohort[0], 0}, {"inactive", off[0], 0},
		{"free access has no cohort", freeCohort[0], 0},
	} {
		if got := len(w.deliveries(t, "participant_id = ? AND step_id = ?", ada.ParticipantID, tc.step.ID)); got != tc.want {
			t.Errorf("%s: %d deliveries, want %d", tc.name, got, tc.want)
		}
	}
}

// A lead stops getting the free-workshop sequence once she is active in a
// paid cohort (a complimentary seat counts), and a client who claims the
// workshop never gets it; a free cohort or a sequence without the flag
// changes nothing.
func TestDripExitOnEnrollment(t *testing.T) {
	w := newDripWorld(t)
	paidCohort := w.cohort(t)
	freeCohort := w.cohort(t, func(c *enroll.Cohort) { c.Name, c.PriceCents = "Open circle", 0 })
	_, leads := w.sequence(t, drip.TriggerFreeAccessClaimed, []drip.EmailStep{afterMinutes(60), atLocal(3, "09:00")}, exitOnEnrollment)
	_, news := w.sequence(t, drip.TriggerFreeAccessClaimed, []drip.EmailStep{atLocal(5, "09:00")})

	ada := w.claim(t, w.program, "ada@example.com")
	if n := len(w.deliveries(t, "participant_id = ? AND status = ?", ada.ID, drip.DeliveryScheduled)); n != 3 {
		t.Fatalf("%d scheduled after the claim, want 3", n)
	}
	w.complimentary(t, freeCohort, "ada@example.com")
	for _, st := range append(leads, news...) {
		wantStatus(t, w.delivery(t, ada.ID, st.ID), drip.DeliveryScheduled, "")
	}
	w.complimentary(t, paidCohort, "ada@example.com")
	for _, st := range leads {
		wantStatus(t, w.delivery(t, ada.ID, st.ID), drip.DeliveryCancelled, drip.ReasonExitedOnEnrollment)
	}
	wantStatus(t, w.delivery(t, ada.ID, news[0].ID), drip.DeliveryScheduled, "")

	// Paid through checkout and then claiming: never scheduled.
	_, _ = w.paid(t, paidCohort, "bea@example.com")
	bea := w.claim(t, w.program, "bea@example.com")
	if rows := w.deliveries(t, "participant_id = ? AND sequence_id = ?", bea.ID, leads[0].SequenceID); len(rows) != 0 {
		t.Errorf("a client was scheduled %d lead emails", len(rows))
	}
	wantStatus(t, w.delivery(t, bea.ID, news[0].ID), drip.DeliveryScheduled, "")
}

// Moving a cohort's start re-plans what counts from it (cohort_start and the
// lessons' unlocks), late-skip applied; moving it back later makes skipped
// steps timely again.
func TestDripCohortStartMoved(t *testing.T) {
	w := newDripWorld(t)
	c := w.cohort(t, func(c *enroll.Cohort) {
		c.StartsAt, c.EndsAt, c.Timezone = utc("2026-03-20T08:00:00Z"), utc("2026-05-01T08:00:00Z"), "Europe/Berlin"
	})
	_, onboarding := w.sequence(t, drip.TriggerCohortStart, []drip.EmailStep{atLocal(-7, "09:00"), afterMinutes(0)})
	_, unlocks := w.sequence(t, drip.TriggerLessonUnlocked, []drip.EmailStep{afterMinutes(30)})
	_, welcome := w.sequence(t, drip.TriggerEnrollmentActivated, []drip.EmailStep{afterMinutes(10)})
	lesson, err := w.svc.Catalog.CreateLesson(w.ctx, w.program.ID, catalog.LessonInput{Title: "Day 3", Body: "Pause.", UnlockOffsetDays: 3, Published: true})
	modelstest.MustDo(t, err)
	// Lessons unlock on her calendar (as the gate counts them), here
	// Berlin's, though she has not confirmed the zone.
	w.participant(t, "ada@example.com", "Europe/Berlin", false)
	ada := w.complimentary(t, c, "ada@example.com")
	check := func(step drip.EmailStep, status drip.DeliveryStatus, reason, sendAt string) {
		t.Helper()
		d := w.delivery(t, ada.ParticipantID, step.ID)
		wantStatus(t, d, status, reason)
		wantSendAt(t, d, sendAt)
	}
	check(onboarding[0], drip.DeliveryScheduled, "", "2026-03-13T08:00:00Z") // 09:00 CET
	check(onboarding[1], drip.DeliveryScheduled, "", "2026-03-20T08:00:00Z")
	check(unlocks[0], drip.DeliveryScheduled, "", "2026-03-23T08:30:00Z")
	check(welcome[0], drip.DeliveryScheduled, "", "2026-03-02T09:10:00Z")
	if d := w.delivery(t, ada.ParticipantID, unlocks[0].ID); d.SubjectKey != "lesson:"+lesson.ID.String()+"/enrollment:"+ada.ID.String() {
		t.Errorf("lesson subject %s", d.SubjectKey)
	}

	// A week later, across Europe's DST change (2026-03-29): 09:00 CEST.
	_, err = w.svc.Enroll.UpdateCohort(w.ctx, w.admin, c.ID, enroll.CohortPatch{StartsAt: models.Some(utc("2026-03-27T08:00:00Z"))})
	modelstest.MustDo(t, err)
	check(onboarding[0], drip.DeliveryScheduled, "", "2026-03-20T08:00:00Z")
	check(onboarding[1], drip.DeliveryScheduled, "", "2026-03-27T08:00:00Z")
	check(unlocks[0], drip.DeliveryScheduled, "", "2026-03-30T07:30:00Z") // day 3 keeps its 09:00 wall clock
	check(welcome[0], drip.DeliveryScheduled, "", "2026-03-02T09:10:00Z") // not counted from the start
	if d := w.delivery(t, ada.ParticipantID, onboarding[1].ID); !d.AnchorAt.Equal(utc("2026-03-27T08:00:00Z")) {
		t.Errorf("anchor %s, want the new start", d.AnchorAt)
	}

	// Brought forward to tomorrow: the week-before email is now stale.
	_, err = w.svc.Enroll.UpdateCohort(w.ctx, w.admin, c.ID, enroll.CohortPatch{StartsAt: models.Some(utc("2026-03-03T08:00:00Z"))})
	modelstest.MustDo(t, err)
	check(onboarding[0], drip.DeliverySkipped, drip.ReasonLate, "2026-02-24T08:00:00Z")
	check(onboarding[1], drip.DeliveryScheduled, "", "2026-03-03T08:00:00Z")

	// And back out again: timely once more.
	_, err = w.svc.Enroll.UpdateCohort(w.ctx, w.admin, c.ID, enroll.CohortPatch{StartsAt: models.Some(utc("2026-03-20T08:00:00Z"))})
	modelstest.MustDo(t, err)
	check(onboarding[0], drip.DeliveryScheduled, "", "2026-03-13T08:00:00Z")
}

// A cancelled cohort cancels its pending deliveries; reopening it restores
// those still to come.
func TestDripCohortCancelled(t *testing.T) {
	w := newDripWorld(t)
	c := w.cohort(t)
	_, steps := w.sequence(t, drip.TriggerEnrollmentActivated, []drip.EmailStep{afterMinutes(60), atLocal(2, "09:00")})
	ada := w.complimentary(t, c, "ada@example.com")
	_, err := w.svc.Enroll.UpdateCohort(w.ctx, w.admin, c.ID, enroll.CohortPatch{Status: models.Some(enroll.CohortCancelled)})
	modelstest.MustDo(t, err)
	for _, st := range steps {
		wantStatus(t, w.delivery(t, ada.ParticipantID, st.ID), drip.DeliveryCancelled, drip.ReasonCohortCancelled)
	}
	w.clock.Advance(2 * time.Hour) // the first step's moment passes while cancelled
	_, err = w.svc.Enroll.UpdateCohort(w.ctx, w.admin, c.ID, enroll.CohortPatch{Status: models.Some(enroll.CohortOpen)})
	modelstest.MustDo(t, err)
	wantStatus(t, w.delivery(t, ada.ParticipantID, steps[0].ID), drip.DeliveryCancelled, drip.ReasonCohortCancelled)
	wantStatus(t, w.delivery(t, ada.ParticipantID, steps[1].ID), drip.DeliveryScheduled, "")
}

// When her enrollment ends, nothing more about it reaches her; other
// enrollments' deliveries stay.
func TestDripEnrollmentEndingCancels(t *testing.T) {
	for _, tc := range []struct {
		name   string
		end    func(w *dripWorld, t *testing.T, id uuid.UUID, pi string)
		status enroll.EnrollmentStatus
		reason string
	}{
		{"refunded", func(w *dripWorld, t *testing.T, id uuid.UUID, pi string) {
			w.payEvent(t, enroll.PaymentEvent{Type: enroll.EventChargeRefunded, ChargePaymentIntentID: pi, AmountCaptured: 49700, AmountRefunded: 49700})
		}, enroll.EnrollmentRefunded, drip.ReasonEnrollmentRefunded},
		{"cancelled by the coach", func(w *dripWorld, t *testing.T, id uuid.UUID, _ string) {
			_, err := w.svc.Enroll.CancelEnrollment(w.ctx, w.admin, id)
			modelstest.MustDo(t, err)
		}, enroll.EnrollmentCancelled, drip.ReasonEnrollmentCancelled},
		{"dispute opened", func(w *dripWorld, t *testing.T, _ uuid.UUID, pi string) {
			w.payEvent(t, enroll.PaymentEvent{Type: enroll.EventDisputeCreated, ChargePaymentIntentID: pi, DisputeStatus: "needs_response"})
		}, enroll.EnrollmentDisputed, drip.ReasonEnrollmentDisputed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newDripWorld(t)
			c := w.cohort(t)
			w.sequence(t, drip.TriggerCohortStart, []drip.EmailStep{atLocal(-1, "09:00"), afterMinutes(0)})
			w.sequence(t, drip.TriggerEnrollmentActivated, []drip.EmailStep{afterMinutes(60)})
			_, err := w.svc.Enroll.CreateLiveSession(w.ctx, w.admin, c.ID, enroll.LiveSessionInput{Title: "Week 1", StartsAt: c.StartsAt.Add(time.Hour), DurationMinutes: 60})
			modelstest.MustDo(t, err)
			w.sequence(t, drip.TriggerSessionReminder, []drip.EmailStep{afterMinutes(-60)})
			id, pi := w.paid(t, c, "ada@example.com")
			otherID, _ := w.paid(t, c, "bea@example.com")
			if n := len(w.deliveries(t, "enrollment_id = ? AND status = ?", id, drip.DeliveryScheduled)); n != 4 {
				t.Fatalf("%d scheduled, want 4", n)
			}
			tc.end(w, t, id, pi)
			w.wantEnrollment(t, id, tc.status)
			for _, d := range w.deliveries(t, "enrollment_id = ?", id) {
				wantStatus(t, d, drip.DeliveryCancelled, tc.reason)
			}
			for _, d := range w.deliveries(t, "enrollment_id = ?", otherID) {
				wantStatus(t, d, drip.DeliveryScheduled, "")
			}
		})
	}
}

// A dispute won puts back what its opening cancelled and is still to come;
// what fell due meanwhile stays cancelled, and nothing is scheduled twice.
func TestDripDisputeWonRestoresFutureDeliveries(t *testing.T) {
	w := newDripWorld(t)
	c := w.cohort(t)
	_, steps := w.sequence(t, drip.TriggerEnrollmentActivated, []drip.EmailStep{afterMinutes(60), afterMinutes(3 * 24 * 60)})
	id, pi := w.paid(t, c, "ada@example.com")
	w.payEvent(t, enroll.PaymentEvent{Type: enroll.EventDisputeCreated, ChargePaymentIntentID: pi, DisputeStatus: "needs_response"})
	w.clock.Advance(2 * time.Hour)
	w.payEvent(t, enroll.PaymentEvent{Type: enroll.EventDisputeClosed, ChargePaymentIntentID: pi, DisputeStatus: "won"})
	w.wantEnrollment(t, id, enroll.EnrollmentActive)
	rows := w.deliveries(t, "enrollment_id = ?", id)
	if len(rows) != 2 {
		t.Fatalf("%d deliveries, want 2", len(rows))
	}
	wantStatus(t, rows[0], drip.DeliveryCancelled, drip.ReasonEnrollmentDisputed)
	wantStatus(t, rows[1], drip.DeliveryScheduled, "")
	if *rows[1].StepID != steps[1].ID || !rows[1].AnchorAt.Equal(modelstest.Start) {
		t.Errorf("restored row: step %s anchor %s, want the first activation", *rows[1].StepID, rows[1].AnchorAt)
	}
}

// Choosing her zone re-plans her pending local-time deliveries in it; a
// minute offset does not move.
func TestDripTimezoneChangeReplans(t *testing.T) {
	w := newDripWorld(t)
	c := w.cohort(t, func(c *enroll.Cohort) { c.StartsAt, c.Timezone = utc("2026-03-20T08:00:00Z"), "Europe/Berlin" })
	_, steps := w.sequence(t, drip.TriggerCohortStart, []drip.EmailStep{atLocal(1, "09:00"), afterMinutes(-60)})
	ada := w.complimentary(t, c, "ada@example.com")
	wantSendAt(t, w.delivery(t, ada.ParticipantID, steps[0].ID), "2026-03-21T08:00:00Z")

	p, err := w.svc.People.UpdateParticipant(w.ctx, ada.ParticipantID, people.ParticipantPatch{Timezone: models.Some("America/Los_Angeles")})
	modelstest.MustDo(t, err)
	if !p.TimezoneSet {
		t.Error("timezone_set is false after she chose a zone")
	}
	d := w.delivery(t, ada.ParticipantID, steps[0].ID)
	wantSendAt(t, d, "2026-03-21T16:00:00Z") // the start is 01:00 PDT on the 20th; day 1 09:00 PDT
	if d.Timezone != "America/Los_Angeles" {
		t.Errorf("zone %s", d.Timezone)
	}
	wantSendAt(t, w.delivery(t, ada.ParticipantID, steps[1].ID), "2026-03-20T07:00:00Z")
}

// A step added to an active sequence reaches everyone already in it, from
// the same anchor, late-skip applied; a step changed re-plans; CRUD's
// cancel helper records its reason.
func TestDripStepAddedChangedDeleted(t *testing.T) {
	w := newDripWorld(t)
	c := w.cohort(t)
	seq, steps := w.sequence(t, drip.TriggerEnrollmentActivated, []drip.EmailStep{afterMinutes(60)})
	ada := w.complimentary(t, c, "ada@example.com")
	w.clock.Advance(5 * 24 * time.Hour)
	w.complimentary(t, w.cohort(t, func(o *enroll.Cohort) { o.Name = "Later" }), "bea@example.com")

	add := func(st drip.EmailStep) drip.EmailStep {
		t.Helper()
		st.SequenceID, st.Position, st.Subject, st.Body = seq.ID, len(steps)+1, "More", "Body"
		modelstest.MustDo(t, w.db.Create(&st).Error)
		steps = append(steps, st)
		modelstest.MustDo(t, w.svc.Drip.ScheduleNewStepForTest(w.ctx, &st))
		return st
	}
	fresh := add(afterMinutes(7 * 24 * 60)) // due in two days for Ada
	stale := add(afterMinutes(24 * 60))     // four days past due for Ada
	d := w.delivery(t, ada.ParticipantID, fresh.ID)
	wantStatus(t, d, drip.DeliveryScheduled, "")
	if !d.AnchorAt.Equal(modelstest.Start) || d.SubjectKey != "enrollment:"+ada.ID.String() || d.EnrollmentID == nil || *d.EnrollmentID != ada.ID {
		t.Errorf("new step row: anchor %s subject %s", d.AnchorAt, d.SubjectKey)
	}
	wantSendAt(t, d, "2026-03-09T09:00:00Z")
	wantStatus(t, w.delivery(t, ada.ParticipantID, stale.ID), drip.DeliverySkipped, drip.ReasonLate)
	if n := len(w.deliveries(t, "step_id IN ?", []uuid.UUID{fresh.ID, stale.ID})); n != 4 {
		t.Errorf("%d rows of the new steps, want 4 (both women)", n)
	}

	// The coach moves the step a day later: re-planned.
	modelstest.MustDo(t, w.db.Model(&fresh).Update("offset_minutes", 8*24*60).Error)
	fresh.OffsetMinutes = ptrTo(8 * 24 * 60)
	modelstest.MustDo(t, w.svc.Drip.ReplanStepForTest(w.ctx, &fresh))
	wantSendAt(t, w.delivery(t, ada.ParticipantID, fresh.ID), "2026-03-10T09:00:00Z")

	// Deleted: cancelled first, with the reason.
	modelstest.MustDo(t, w.svc.Drip.CancelScheduledForTest(w.ctx, "step_id = ?", []any{fresh.ID}, drip.ReasonStepDeleted, "the step was deleted"))
	wantStatus(t, w.delivery(t, ada.ParticipantID, fresh.ID), drip.DeliveryCancelled, drip.ReasonStepDeleted)
}

// Free access schedules lesson_unlocked for the program's published lessons
// from her grant, counted in her zone; a lesson published later joins, one
// unpublished or deleted cancels.
func TestDripLessonUnlocked(t *testing.T) {
	w := newDripWorld(t)
	_, steps := w.sequence(t, drip.TriggerLessonUnlocked, []drip.EmailStep{atLocal(0, "18:00")})
	l1, err := w.svc.Catalog.CreateLesson(w.ctx, w.program.ID, catalog.LessonInput{Title: "Day 1", Body: "One.", UnlockOffsetDays: 1, Published: true})
	modelstest.MustDo(t, err)
	w.clock.Set(utc("2026-03-06T20:00:00Z")) // 12:00 in Los Angeles, two days before DST
	w.participant(t, "ada@example.com", "America/Los_Angeles", true)
	ada := w.claim(t, w.program, "ada@example.com")
	var grant people.AccessGrant
	modelstest.MustDo(t, w.db.Where("participant_id = ?", ada.ID).Take(&grant).Error)
	d := w.delivery(t, ada.ID, steps[0].ID)
	if d.SubjectKey != "lesson:"+l1.ID.String()+"/grant:"+grant.ID.String() || !d.AnchorAt.Equal(utc("2026-03-07T20:00:00Z")) {
		t.Errorf("subject %s anchor %s", d.SubjectKey, d.AnchorAt.UTC())
	}
	wantSendAt(t, d, "2026-03-08T02:00:00Z") // 18:00 PST on the day it unlocked

	l2, err := w.svc.Catalog.CreateLesson(w.ctx, w.program.ID, catalog.LessonInput{Title: "Day 3", Body: "Three.", UnlockOffsetDays: 3})
	modelstest.MustDo(t, err)
	if n := len(w.deliveries(t, "lesson_id = ?", l2.ID)); n != 0 {
		t.Fatalf("a draft lesson has %d deliveries", n)
	}
	_, err = w.svc.Catalog.UpdateLesson(w.ctx, l2.ID, catalog.LessonPatch{Published: models.Some(true)})
	modelstest.MustDo(t, err)
	d2 := w.deliveries(t, "lesson_id = ?", l2.ID)
	if len(d2) != 1 {
		t.Fatalf("%d deliveries of the published lesson, want 1", len(d2))
	}
	wantSendAt(t, d2[0], "2026-03-10T01:00:00Z") // day 3 = 2026-03-09, 18:00 PDT

	_, err = w.svc.Catalog.UpdateLesson(w.ctx, l2.ID, catalog.LessonPatch{UnlockOffsetDays: models.Some(4)})
	modelstest.MustDo(t, err)
	wantSendAt(t, w.deliveries(t, "lesson_id = ?", l2.ID)[0], "2026-03-11T01:00:00Z")

	_, err = w.svc.Catalog.UpdateLesson(w.ctx, l2.ID, catalog.LessonPatch{Published: models.Some(false)})
	modelstest.MustDo(t, err)
	wantStatus(t, w.deliveries(t, "lesson_id = ?", l2.ID)[0], drip.DeliveryCancelled, drip.ReasonLessonUnpublished)
	_, err = w.svc.Catalog.UpdateLesson(w.ctx, l2.ID, catalog.LessonPatch{Published: models.Some(true)})
	modelstest.MustDo(t, err)
	wantStatus(t, w.deliveries(t, "lesson_id = ?", l2.ID)[0], drip.DeliveryScheduled, "")

	modelstest.MustDo(t, w.svc.Catalog.DeleteLesson(w.ctx, l1.ID))
	gone := w.deliveries(t, "subject_key = ?", d.SubjectKey)
	if len(gone) != 1 || gone[0].LessonID != nil {
		t.Fatalf("deleted lesson's deliveries: %+v", gone)
	}
	wantStatus(t, gone[0], drip.DeliveryCancelled, drip.ReasonLessonDeleted)
}

func ptrTo[T any](v T) *T { return &v }

package drip_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/domain"
	"github.com/grace-coaching/grace/models/drip"
	"github.com/grace-coaching/grace/models/modelstest"
)

// ddRenderer stands in for emails/drip: it shows the request it was given,
// so a test can read the placeholder values back from the payload.
type ddRenderer struct {
	mu   sync.Mutex
	reqs []drip.RenderRequest
}

func (r *ddRenderer) RenderStep(req drip.RenderRequest) (drip.RenderedEmail, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	r.mu.Unlock()
	if req.Vars.FirstName == "Broken" {
		return drip.RenderedEmail{}, errors.New("template exploded")
	}
	out := drip.RenderedEmail{
		Subject: req.Step.Subject + " " + req.Vars.FirstName,
		HTML:    fmt.Sprintf("<p>%+v</p>", req.Vars),
		Text:    fmt.Sprintf("%+v", req.Vars),
	}
	if req.Marketing {
		out.Headers = map[string]string{
			"List-Unsubscribe":      "<" + req.Vars.UnsubscribeURL + ">, <" + req.UnsubscribeMailto + ">",
			"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
		}
	}
	return out, nil
}

func (r *ddRenderer) requests() []drip.RenderRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

// ddWorld is a program with a paid cohort and a free one, and helpers that
// write the drip rows straight to the tables: the subject here is delivery,
// not scheduling.
type ddWorld struct {
	t        *testing.T
	svc      *domain.Services
	clock    *models.FakeClock
	db       *gorm.DB
	renderer *ddRenderer
	program  uuid.UUID
	paid     uuid.UUID // a cohort with a price
	free     uuid.UUID // a cohort without
	n        int
}

const ddLease = 5 * time.Minute

func newDDWorld(t *testing.T) *ddWorld {
	t.Helper()
	db := modelstest.NewDB(t)
	clock := models.NewFakeClock(modelstest.Start)
	r := &ddRenderer{}
	svc := domain.New(domain.Deps{DB: db, Clock: clock, DripRenderer: r,
		AppBaseURL: "https://portal.example.com", UnsubscribeURL: unsubscribeAt("https://api.example.com"),
		UnsubscribeMailbox: "unsubscribe@example.com"})
	w := &ddWorld{t: t, svc: svc, clock: clock, db: db, renderer: r}
	w.program = w.id(`INSERT INTO programs (slug, title, status) VALUES ('say-no', 'Say No With Grace', 'published') RETURNING id`)
	w.paid = w.cohort("Spring Circle", 50000, "Europe/Paris")
	w.free = w.cohort("Free Circle", 0, "UTC")
	return w
}

func (w *ddWorld) id(sql string, args ...any) uuid.UUID {
	w.t.Helper()
	var id uuid.UUID
	if err := w.db.Raw(sql, args...).Row().Scan(&id); err != nil {
		w.t.Fatalf("%s: %v", sql, err)
	}
	return id
}

func (w *ddWorld) exec(sql string, args ...any) {
	w.t.Helper()
	if err := w.db.Exec(sql, args...).Error; err != nil {
		w.t.Fatalf("%s: %v", sql, err)
	}
}

func (w *ddWorld) cohort(name string, price int, tz string) uuid.UUID {
	w.t.Helper()
	return w.id(`INSERT INTO cohorts (program_id, name, starts_at, ends_at, timezone, capacity, price_cents, currency, status)
		VALUES (?, ?, ?, ?, ?, 20, ?, 'EUR', 'open') RETURNING id`,
		w.program, name, modelstest.Start.AddDate(0, 0, 7), modelstest.Start.AddDate(0, 2, 0), tz, price)
}

func (w *ddWorld) participant(name string) uuid.UUID {
	w.t.Helper()
	w.n++
	// Her address is verified, so email may greet her by name.
	p := w.id(`INSERT INTO participants (email, name, timezone, timezone_set, email_verified_at) VALUES (?, ?, 'America/Los_Angeles', true, ?) RETURNING id`,
		fmt.Sprintf("p%d@example.com", w.n), name, w.clock.Now().Add(-24*time.Hour))
	w.exec(`INSERT INTO consents (participant_id, kind, text_version, granted) VALUES (?, 'marketing', ?, true)`, p, "1")
	return p
}

func (w *ddWorld) email(p uuid.UUID) string {
	w.t.Helper()
	var e string
	if err := w.db.Raw(`SELECT email FROM participants WHERE id = ?`, p).Row().Scan(&e); err != nil {
		w.t.Fatal(err)
	}
	return e
}

func (w *ddWorld) enroll(p, cohort uuid.UUID, status string) uuid.UUID {
	w.t.Helper()
	return w.id(`INSERT INTO enrollments (cohort_id, participant_id, status, currency) VALUES (?, ?, ?, 'EUR') RETURNING id`, cohort, p, status)
}

func (w *ddWorld) sequence(kind drip.SequenceKind, trigger drip.Trigger, active, exit bool) (seq, step uuid.UUID) {
	w.t.Helper()
	seq = w.id(`INSERT INTO email_sequences (name, trigger, program_id, kind, active, exit_on_enrollment)
		VALUES ('Welcome', ?, ?, ?, ?, ?) RETURNING id`, trigger, w.program, kind, active, exit)
	step = w.id(`INSERT INTO email_steps (sequence_id, position, offset_minutes, subject, body)
		VALUES (?, 1, 0, 'Hello', 'Hi {{first_name}}') RETURNING id`, seq)
	return seq, step
}

// ddDelivery is one row to write; zero fields take sensible values.
type ddDelivery struct {
	participant, seq, step     uuid.UUID
	enrollment, cohort, lesson *uuid.UUID
	session                    *uuid.UUID
	sendAt                     time.Time
	timezone                   string
}

func (w *ddWorld) delivery(d ddDelivery) uuid.UUID {
	w.t.Helper()
	if d.sendAt.IsZero() {
		d.sendAt = w.clock.Now().Add(-time.Minute)
	}
	if d.timezone == "" {
		d.timezone = "UTC"
	}
	return w.id(`INSERT INTO email_deliveries (participant_id, email, sequence_id, step_id, subject_key, enrollment_id, cohort_id,
			program_id, live_session_id, lesson_id, anchor_at, timezone, status, send_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'scheduled', ?) RETURNING id`,
		d.participant, w.email(d.participant), d.seq, d.step, "k:"+uuid.NewString(), d.enrollment, d.cohort,
		w.program, d.session, d.lesson, d.sendAt, d.timezone, d.sendAt)
}

// ddRow is a delivery as the tests read it back.
type ddRow struct {
	ID             uuid.UUID
	Status         drip.DeliveryStatus
	Attempts       int
	LastError      *string
	ResendID       *string
	SentAt         *time.Time
	BatchID        *uuid.UUID
	FirstAttemptAt *time.Time
}

func (w *ddWorld) row(id uuid.UUID) ddRow {
	w.t.Helper()
	var r ddRow
	if err := w.db.Raw(`SELECT id, status, attempts, last_error, resend_id, sent_at, batch_id, first_attempt_at
		FROM email_deliveries WHERE id = ?`, id).Scan(&r).Error; err != nil {
		w.t.Fatal(err)
	}
	return r
}

func (w *ddWorld) batch(id uuid.UUID) drip.EmailBatch {
	w.t.Helper()
	var b drip.EmailBatch
	if err := w.db.Raw(`SELECT * FROM email_batches WHERE id = ?`, id).Scan(&b).Error; err != nil {
		w.t.Fatal(err)
	}
	return b
}

func (w *ddWorld) claim(limit int) drip.Claim {
	w.t.Helper()
	c, err := w.svc.Drip.ClaimDripBatch(context.Background(), limit, ddLease)
	if err != nil {
		w.t.Fatalf("ClaimDripBatch: %v", err)
	}
	return c
}

func memberIDs(b *drip.Batch) []uuid.UUID {
	ids := make([]uuid.UUID, len(b.Members))
	for i, m := range b.Members {
		ids[i] = m.DeliveryID
	}
	return ids
}

func sortedIDs(ids ...uuid.UUID) []uuid.UUID {
	out := slices.Clone(ids)
	slices.SortFunc(out, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
	return out
}

func TestClaimDripBatchFormsAndFreezesABatch(t *testing.T) {
	w := newDDWorld(t)
	mseq, mstep := w.sequence(drip.SequenceMarketing, drip.TriggerFreeAccessClaimed, true, false)
	tseq, tstep := w.sequence(drip.SequenceTransactional, drip.TriggerSessionReminder, true, false)
	ana, bea, cleo, late := w.participant("Ana Lima"), w.participant("Bea"), w.participant("  Cleo  Stone "), w.participant("Dee")
	session := w.id(`INSERT INTO live_sessions (cohort_id, title, starts_at, duration_minutes) VALUES (?, 'Week 1', ?, 60) RETURNING id`,
		w.paid, time.Date(2026, 3, 10, 17, 0, 0, 0, time.UTC))
	enr := w.enroll(cleo, w.paid, "active")
	// Bea never proved the address: the name on her row is only what
	// someone typed on a form, so her email greets nobody.
	w.exec(`UPDATE participants SET email_verified_at = NULL WHERE id = ?`, bea)

	d1 := w.delivery(ddDelivery{participant: ana, seq: mseq, step: mstep})
	d2 := w.delivery(ddDelivery{participant: bea, seq: mseq, step: mstep, sendAt: w.clock.Now().Add(-time.Hour)})
	d3 := w.delivery(ddDelivery{participant: cleo, seq: tseq, step: tstep, enrollment: &enr, cohort: &w.paid, session: &session,
		timezone: "America/Los_Angeles"})
	notYet := w.delivery(ddDelivery{participant: late, seq: mseq, step: mstep, sendAt: w.clock.Now().Add(time.Minute)})

	c := w.claim(100)
	if c.Batch == nil || c.Cancelled != 0 || c.Failed != 0 {
		t.Fatalf("claim = %+v", c)
	}
	b := c.Batch
	if got, want := memberIDs(b), sortedIDs(d1, d2, d3); !reflect.DeepEqual(got, want) {
		t.Fatalf("members %v, want %v in id order", got, want)
	}
	if b.Attempt != 1 || !b.FirstAttemptAt.Equal(w.clock.Now()) {
		t.Fatalf("batch %+v", b)
	}
	stored := w.batch(b.ID)
	if stored.Status != drip.BatchSending || stored.Size != 3 || stored.Attempts != 1 || stored.LockedUntil == nil ||
		!stored.LockedUntil.Equal(w.clock.Now().Add(ddLease)) {
		t.Fatalf("stored batch %+v", stored)
	}
	for _, id := range []uuid.UUID{d1, d2, d3} {
		r := w.row(id)
		if r.Status != drip.DeliverySending || r.Attempts != 1 || r.BatchID == nil || *r.BatchID != b.ID || r.FirstAttemptAt == nil {
			t.Errorf("row %s: %+v", id, r)
		}
	}
	if r := w.row(notYet); r.Status != drip.DeliveryScheduled {
		t.Errorf("a row not yet due was claimed: %+v", r)
	}

	// What the renderer saw, by recipient.
	vars := map[string]drip.RenderRequest{}
	for _, req := range w.renderer.requests() {
		vars[req.Vars.FirstName] = req
	}
	ana1 := vars["Ana"]
	if !ana1.Marketing || ana1.Vars.ProgramTitle != "Say No With Grace" || ana1.Vars.PortalURL != "https://portal.example.com/portal" ||
		!strings.HasPrefix(ana1.Vars.UnsubscribeURL, "https://api.example.com/v1/unsubscribe/") ||
		!strings.HasPrefix(ana1.UnsubscribeMailto, "mailto:unsubscribe@example.com?subject=unsubscribe-") ||
		ana1.Step.Subject != "Hello" || ana1.Step.Body != "Hi {{first_name}}" {
		t.Errorf("Ana's request %+v", ana1)
	}
	if _, named := vars["Bea"]; named {
		t.Errorf("an unverified address was greeted by the name a form typed: %+v", vars["Bea"])
	}
	if bea1, ok := vars[""]; !ok || !bea1.Marketing {
		t.Errorf("Bea's request, with no first name, is missing: %+v", vars)
	}
	cleo1 := vars["Cleo"]
	if cleo1.Marketing || cleo1.UnsubscribeMailto != "" || cleo1.Vars.CohortName != "Spring Circle" ||
		cleo1.Vars.SessionStartsAt != "Tuesday 10 March 2026 at 10:00 (America/Los_Angeles)" {
		t.Errorf("Cleo's request %+v", cleo1)
	}
	for _, m := range b.Members {
		marketing := m.DeliveryID != d3
		if got := m.Rendered.Headers["List-Unsubscribe-Post"] != ""; got != marketing {
			t.Errorf("member %s: List-Unsubscribe-Post present %v, want %v", m.DeliveryID, got, marketing)
		}
	}

	// Nothing else is due: the next claim is empty, and the batch is leased.
	if c := w.claim(100); c.Worked() {
		t.Fatalf("second claim = %+v", c)
	}
}

func TestClaimDripBatchRechecksEligibility(t *testing.T) {
	w := newDDWorld(t)
	mseq, mstep := w.sequence(drip.SequenceMarketing, drip.TriggerFreeAccessClaimed, true, false)
	tseq, tstep := w.sequence(drip.SequenceTransactional, drip.TriggerEnrollmentActivated, true, false)
	offSeq, offStep := w.sequence(drip.SequenceMarketing, drip.TriggerFreeAccessClaimed, false, false)
	exitSeq, exitStep := w.sequence(drip.SequenceMarketing, drip.TriggerFreeAccessClaimed, true, true)
	delSeq, delStep := w.sequence(drip.SequenceMarketing, drip.TriggerFreeAccessClaimed, true, false)

	type tc struct {
		name  string
		setup func() uuid.UUID    // writes the row, returns its id
		want  drip.DeliveryStatus // status
		why   string              // last_error prefix
	}
	tests := []tc{
		{"unsubscribed from marketing", func() uuid.UUID {
			p := w.participant("Una")
			w.exec(`UPDATE participants SET marketing_unsubscribed_at = ? WHERE id = ?`, w.clock.Now().Add(-time.Hour), p)
			return w.delivery(ddDelivery{participant: p, seq: mseq, step: mstep})
		}, drip.DeliveryCancelled, "unsubscribed: "},
		{"never agreed to marketing", func() uuid.UUID {
			p := w.participant("Noa")
			w.exec(`UPDATE consents SET granted = false WHERE participant_id = ?`, p)
			return w.delivery(ddDelivery{participant: p, seq: mseq, step: mstep})
		}, drip.DeliveryCancelled, "no_marketing_consent"},
		{"no marketing consent, but transactional mail is exempt", func() uuid.UUID {
			p := w.participant("Tia")
			w.exec(`DELETE FROM consents WHERE participant_id = ?`, p)
			return w.delivery(ddDelivery{participant: p, seq: tseq, step: tstep})
		}, drip.DeliverySending, ""},
		{"unsubscribed, but transactional mail is exempt", func() uuid.UUID {
			p := w.participant("Tara")
			w.exec(`UPDATE participants SET marketing_unsubscribed_at = ? WHERE id = ?`, w.clock.Now().Add(-time.Hour), p)
			e := w.enroll(p, w.free, "active")
			return w.delivery(ddDelivery{participant: p, seq: tseq, step: tstep, enrollment: &e, cohort: &w.free})
		}, drip.DeliverySending, ""},
		{"suppressed address", func() uuid.UUID {
			p := w.participant("Bo")
			w.exec(`INSERT INTO email_suppressions (email, reason) VALUES (?, 'bounced')`, w.email(p))
			return w.delivery(ddDelivery{participant: p, seq: tseq, step: tstep})
		}, drip.DeliveryCancelled, "suppressed: bounced"},
		{"inactive sequence", func() uuid.UUID {
			return w.delivery(ddDelivery{participant: w.participant("Ivy"), seq: offSeq, step: offStep})
		}, drip.DeliveryCancelled, "sequence_inactive"},
		{"refunded enrollment", func() uuid.UUID {
			p := w.participant("Rae")
			e := w.enroll(p, w.paid, "refunded")
			return w.delivery(ddDelivery{participant: p, seq: tseq, step: tstep, enrollment: &e, cohort: &w.paid})
		}, drip.DeliveryCancelled, "enrollment_refunded"},
		{"cancelled cohort", func() uuid.UUID {
			p := w.participant("Cat")
			c := w.cohort("Gone", 0, "UTC")
			e := w.enroll(p, c, "active")
			w.exec(`UPDATE cohorts SET status = 'cancelled' WHERE id = ?`, c)
			return w.delivery(ddDelivery{participant: p, seq: tseq, step: tstep, enrollment: &e, cohort: &c})
		}, drip.DeliveryCancelled, "cohort_cancelled"},
		{"exited: enrolled in a paid cohort", func() uuid.UUID {
			p := w.participant("Eve")
			w.enroll(p, w.paid, "active")
			return w.delivery(ddDelivery{participant: p, seq: exitSeq, step: exitStep})
		}, drip.DeliveryCancelled, "exited_on_enrollment"},
		{"not exited by a free cohort", func() uuid.UUID {
			p := w.participant("Fay")
			w.enroll(p, w.free, "active")
			return w.delivery(ddDelivery{participant: p, seq: exitSeq, step: exitStep})
		}, drip.DeliverySending, ""},
		{"deleted step", func() uuid.UUID {
			id := w.delivery(ddDelivery{participant: w.participant("Dot"), seq: delSeq, step: delStep})
			w.exec(`DELETE FROM email_steps WHERE id = ?`, delStep)
			return id
		}, drip.DeliveryCancelled, "step_deleted"},
		{"unrenderable", func() uuid.UUID {
			return w.delivery(ddDelivery{participant: w.participant("Broken"), seq: mseq, step: mstep})
		}, drip.DeliveryFailed, "render: template exploded"},
	}
	ids := make([]uuid.UUID, len(tests))
	for i, tc := range tests {
		ids[i] = tc.setup()
	}
	wantSent, wantCancelled, wantFailed := 0, 0, 0
	for _, tc := range tests {
		switch tc.want {
		case drip.DeliverySending:
			wantSent++
		case drip.DeliveryCancelled:
			wantCancelled++
		case drip.DeliveryFailed:
			wantFailed++
		}
	}
	c := w.claim(100)
	if c.Batch == nil || len(c.Batch.Members) != wantSent || c.Cancelled != wantCancelled || c.Failed != wantFailed {
		t.Fatalf("claim = cancelled %d failed %d batch %+v", c.Cancelled, c.Failed, c.Batch)
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := w.row(ids[i])
			last := ""
			if r.LastError != nil {
				last = *r.LastError
			}
			if r.Status != tc.want || !strings.HasPrefix(last, tc.why) || (tc.why == "") != (last == "") {
				t.Fatalf("status %s last_error %q, want %s %q", r.Status, last, tc.want, tc.why)
			}
		})
	}
}

func TestDripBatchReclaimRepeatsTheSameCall(t *testing.T) {
	w := newDDWorld(t)
	seq, step := w.sequence(drip.SequenceMarketing, drip.TriggerFreeAccessClaimed, true, false)
	var ids []uuid.UUID
	for i := range 5 {
		ids = append(ids, w.delivery(ddDelivery{participant: w.participant(fmt.Sprint("P", i)), seq: seq, step: step}))
	}
	first := w.claim(100).Batch
	if first == nil || len(first.Members) != 5 {
		t.Fatalf("first claim %+v", first)
	}
	// A new row due meanwhile must not join the batch on its retry.
	w.delivery(ddDelivery{participant: w.participant("Newcomer"), seq: seq, step: step})
	// And a change to the step must not change the frozen payload.
	w.exec(`UPDATE email_steps SET subject = 'Changed' WHERE id = ?`, step)

	// The worker dies. Until its lease expires the batch is nobody else's.
	w.clock.Advance(ddLease - time.Second)
	if c := w.claim(100); c.Batch == nil || c.Batch.ID == first.ID || len(c.Batch.Members) != 1 {
		t.Fatalf("claim inside the lease = %+v, want only the newcomer's batch", c.Batch)
	}
	w.clock.Advance(2 * time.Second)
	again := w.claim(100).Batch
	if again == nil || again.ID != first.ID || again.Attempt != 2 || !again.FirstAttemptAt.Equal(first.FirstAttemptAt) {
		t.Fatalf("reclaim = %+v, want batch %s at attempt 2", again, first.ID)
	}
	if !reflect.DeepEqual(again.Members, first.Members) {
		t.Fatalf("reclaimed members differ:\n%+v\n%+v", again.Members, first.Members)
	}
	if r := w.row(ids[0]); r.Attempts != 2 {
		t.Errorf("row attempts %d, want 2", r.Attempts)
	}

	// The first worker wakes up: its outcome is refused.
	if err := w.svc.Drip.RecordDripBatchSent(context.Background(), first, nil); !errors.Is(err, drip.ErrDripLeaseLost) {
		t.Fatalf("stale record: %v, want ErrDripLeaseLost", err)
	}
	results := make([]drip.SendResult, len(again.Members))
	for i, m := range again.Members {
		results[i] = drip.SendResult{DeliveryID: m.DeliveryID, ResendID: fmt.Sprint("re_", i)}
	}
	results[1].ResendID, results[1].Error = "", "Invalid `to` field."
	if err := w.svc.Drip.RecordDripBatchSent(context.Background(), again, results); err != nil {
		t.Fatal(err)
	}
	for i, m := range again.Members {
		r := w.row(m.DeliveryID)
		switch {
		case i == 1:
			if r.Status != drip.DeliveryFailed || r.LastError == nil || *r.LastError != "rejected: Invalid `to` field." || r.SentAt != nil {
				t.Errorf("rejected row %+v", r)
			}
		case r.Status != drip.DeliverySent || r.ResendID == nil || *r.ResendID != fmt.Sprint("re_", i) || r.SentAt == nil:
			t.Errorf("sent row %+v", r)
		}
	}
	if b := w.batch(first.ID); b.Status != drip.BatchSent || b.LockedUntil != nil {
		t.Errorf("batch %+v", b)
	}
	// Settled: a second outcome is refused too.
	if err := w.svc.Drip.RecordDripBatchFailed(context.Background(), again, "x"); !errors.Is(err, drip.ErrDripLeaseLost) {
		t.Fatalf("record after settle: %v", err)
	}
}

func TestDripBatchRetryBackoffAndGiveUp(t *testing.T) {
	ctx := context.Background()
	w := newDDWorld(t)
	seq, step := w.sequence(drip.SequenceTransactional, drip.TriggerFreeAccessClaimed, true, false)
	id := w.delivery(ddDelivery{participant: w.participant("Ana"), seq: seq, step: step})

	b := w.claim(100).Batch
	gaveUp, err := w.svc.Drip.RecordDripBatchRetry(ctx, b, "resend: HTTP 503: down", w.clock.Now().Add(10*time.Minute))
	if err != nil || gaveUp {
		t.Fatalf("retry: %v %v", gaveUp, err)
	}
	if st := w.batch(b.ID); st.LockedUntil != nil || st.LastError == nil || *st.LastError != "resend: HTTP 503: down" {
		t.Fatalf("batch after retry %+v", st)
	}
	if r := w.row(id); r.Status != drip.DeliverySending || r.LastError == nil {
		t.Fatalf("row after retry %+v", r)
	}
	w.clock.Advance(9 * time.Minute)
	if c := w.claim(100); c.Worked() {
		t.Fatalf("claimed before its retry time: %+v", c)
	}
	w.clock.Advance(time.Minute)
	b2 := w.claim(100).Batch
	if b2 == nil || b2.ID != b.ID || b2.Attempt != 2 {
		t.Fatalf("retry claim %+v", b2)
	}

	// A retry that would land past 23 hours gives up instead.
	gaveUp, err = w.svc.Drip.RecordDripBatchRetry(ctx, b2, "resend: HTTP 500: boom", b.FirstAttemptAt.Add(drip.DripGiveUpAfter))
	if err != nil || !gaveUp {
		t.Fatalf("late retry: gaveUp %v err %v", gaveUp, err)
	}
	r := w.row(id)
	if r.Status != drip.DeliveryFailed || r.LastError == nil || *r.LastError != "gave_up: resend: HTTP 500: boom" {
		t.Fatalf("row %+v", r)
	}
	if st := w.batch(b.ID); st.Status != drip.BatchFailed {
		t.Fatalf("batch %+v", st)
	}
}

func TestDripBatchGivesUpAt23HoursWithoutSending(t *testing.T) {
	ctx := context.Background()
	w := newDDWorld(t)
	seq, step := w.sequence(drip.SequenceTransactional, drip.TriggerFreeAccessClaimed, true, false)
	id := w.delivery(ddDelivery{participant: w.participant("Ana"), seq: seq, step: step})
	b := w.claim(100).Batch
	if _, err := w.svc.Drip.RecordDripBatchRetry(ctx, b, "resend: HTTP 502: bad gateway", w.clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// Nobody ran for a day: its key may be about to expire at Resend, so
	// the batch must not be sent again.
	w.clock.Advance(drip.DripGiveUpAfter)
	c := w.claim(100)
	if c.Batch != nil || c.Failed != 1 {
		t.Fatalf("claim after 23h = %+v, want the batch given up", c)
	}
	r := w.row(id)
	if r.Status != drip.DeliveryFailed || r.LastError == nil || *r.LastError != "gave_up: resend: HTTP 502: bad gateway" {
		t.Fatalf("row %+v", r)
	}
}

func TestDripBatchPermanentFailure(t *testing.T) {
	w := newDDWorld(t)
	seq, step := w.sequence(drip.SequenceTransactional, drip.TriggerFreeAccessClaimed, true, false)
	a := w.delivery(ddDelivery{participant: w.participant("Ana"), seq: seq, step: step})
	b := w.claim(100).Batch
	if err := w.svc.Drip.RecordDripBatchFailed(context.Background(), b, "rejected: The `from` domain is not verified."); err != nil {
		t.Fatal(err)
	}
	if r := w.row(a); r.Status != drip.DeliveryFailed || *r.LastError != "rejected: The `from` domain is not verified." {
		t.Fatalf("row %+v", r)
	}
}

func TestClaimDripBatchConcurrentClaimsAreDisjoint(t *testing.T) {
	w := newDDWorld(t)
	seq, step := w.sequence(drip.SequenceTransactional, drip.TriggerFreeAccessClaimed, true, false)
	const n = 120
	for i := range n {
		w.delivery(ddDelivery{participant: w.participant(fmt.Sprint("P", i)), seq: seq, step: step})
	}
	var mu sync.Mutex
	seen := map[uuid.UUID]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				c, err := w.svc.Drip.ClaimDripBatch(context.Background(), 7, ddLease)
				if err != nil {
					t.Error(err)
					return
				}
				if c.Batch == nil {
					return
				}
				mu.Lock()
				for _, m := range c.Batch.Members {
					seen[m.DeliveryID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("claimed %d distinct rows, want %d", len(seen), n)
	}
	for id, k := range seen {
		if k != 1 {
			t.Fatalf("row %s claimed %d times", id, k)
		}
	}
}

func TestSendSlotsAreSharedAndSpaced(t *testing.T) {
	ctx := context.Background()
	w := newDDWorld(t)
	const rate = 10.0 // one slot every 100 ms
	var (
		slots []time.Time
		calls []time.Duration
	)
	start := time.Now()
	for range 6 {
		before := time.Now()
		d, err := w.svc.Drip.TakeSendSlot(ctx, "test", rate)
		if err != nil {
			t.Fatal(err)
		}
		slots = append(slots, time.Now().Add(d))
		calls = append(calls, time.Since(before))
	}
	took := time.Since(start)
	for i := 1; i < len(slots); i++ {
		gap := slots[i].Sub(slots[i-1])
		// A slot is seen through the call that took it: the time the answer
		// spent coming back (at most the call's duration) shifts it late, so
		// a slow previous call can make a right gap look short by that much.
		jitter := calls[i-1]
		// Never closer than the interval (a little slack for the clocks);
		// exactly the interval when the takers queue, as six quick calls do.
		if gap < 90*time.Millisecond-jitter || (took < 100*time.Millisecond && gap > 115*time.Millisecond) {
			t.Fatalf("slot %d is %s after the previous one, want 100ms (calls took %s)", i, gap, took)
		}
	}
	// A 429 pushes every worker's next slot past Retry-After.
	if err := w.svc.Drip.DelaySendSlots(ctx, "test", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	d, err := w.svc.Drip.TakeSendSlot(ctx, "test", rate)
	if err != nil || d < 1900*time.Millisecond || d > 2100*time.Millisecond {
		t.Fatalf("after a 2s Retry-After: wait %s %v", d, err)
	}
	// Limiters are independent by name, and a rate must be positive.
	if d, err := w.svc.Drip.TakeSendSlot(ctx, "other", rate); err != nil || d != 0 {
		t.Fatalf("a fresh limiter: %s %v", d, err)
	}
	if _, err := w.svc.Drip.TakeSendSlot(ctx, "test", 0); err == nil {
		t.Fatal("rate 0 accepted")
	}
}

func TestSendSlotsConcurrentTakersGetDistinctSlots(t *testing.T) {
	w := newDDWorld(t)
	const takers, rate = 20, 50.0 // 20 ms apart
	slots := make([]time.Time, takers)
	var wg sync.WaitGroup
	for i := range takers {
		wg.Go(func() {
			d, err := w.svc.Drip.TakeSendSlot(context.Background(), "burst", rate)
			if err != nil {
				t.Error(err)
			}
			slots[i] = time.Now().Add(d)
		})
	}
	wg.Wait()
	slices.SortFunc(slots, func(a, b time.Time) int { return a.Compare(b) })
	// Twenty distinct slots 20 ms apart span 380 ms, whoever took which.
	if span := slots[takers-1].Sub(slots[0]); span < 360*time.Millisecond {
		t.Fatalf("%d concurrent takers' slots span %s; want them 20 ms apart (380 ms)", takers, span)
	}
}

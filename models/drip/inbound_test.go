package drip_test

import (
	"context"
	"encoding/json"
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

func TestUnsubscribeStopsMarketingOnlyAndOnce(t *testing.T) {
	w := newInbound(t)
	ctx := context.Background()
	jane := w.participant(t, "jane@example.com")
	other := w.participant(t, "other@example.com")
	marketing := w.delivery(t, jane, w.marketingStep, drip.DeliveryScheduled, false, nil)
	reminder := w.delivery(t, jane, w.reminderStep, drip.DeliveryScheduled, true, nil)
	sent := w.delivery(t, jane, w.marketingStep, drip.DeliverySent, false, nil)
	othersMarketing := w.delivery(t, other, w.marketingStep, drip.DeliveryScheduled, false, nil)

	info, err := w.svc.Drip.UnsubscribeInfo(ctx, jane.UnsubscribeToken)
	noErr(t, err)
	if info.MaskedEmail != "j***@example.com" || info.UnsubscribedAt != nil {
		t.Fatalf("info before = %+v", info)
	}
	if got := w.reload(t, marketing).Status; got != drip.DeliveryScheduled {
		t.Fatalf("looking at the link changed a delivery to %s", got)
	}

	st, err := w.svc.Drip.Unsubscribe(ctx, jane.UnsubscribeToken, models.ClientInfo{IP: "203.0.113.9", UserAgent: "Gmail one-click"})
	noErr(t, err)
	if st.UnsubscribedAt == nil || !st.UnsubscribedAt.Equal(w.clock.Now()) {
		t.Fatalf("UnsubscribedAt = %v, want now", st.UnsubscribedAt)
	}
	if d := w.reload(t, marketing); d.Status != drip.DeliveryCancelled || !strings.HasPrefix(lastError(d), "unsubscribed: ") {
		t.Errorf("marketing delivery = %s %q, want cancelled with reason unsubscribed: ...", d.Status, lastError(d))
	}
	for name, d := range map[string]drip.EmailDelivery{"transactional": reminder, "already sent": sent, "another woman's": othersMarketing} {
		if got := w.reload(t, d).Status; got != d.Status {
			t.Errorf("%s delivery became %s", name, got)
		}
	}
	var consents []models.Consent
	noErr(t, w.db.Where("participant_id = ?", jane.ID).Find(&consents).Error)
	if len(consents) != 1 || consents[0].Granted || consents[0].Kind != models.ConsentMarketing ||
		consents[0].TextVersion != models.MarketingVersion || consents[0].IP == nil || *consents[0].IP != "203.0.113.9" {
		t.Fatalf("consents = %+v, want one withdrawn marketing consent with her IP", consents)
	}

	// Again, later: nothing new is recorded and the moment stays the first.
	first := *st.UnsubscribedAt
	w.clock.Advance(time.Hour)
	late := w.delivery(t, jane, w.marketingStep, drip.DeliveryScheduled, false, nil)
	st, err = w.svc.Drip.Unsubscribe(ctx, jane.UnsubscribeToken, models.ClientInfo{})
	noErr(t, err)
	if !st.UnsubscribedAt.Equal(first) {
		t.Errorf("UnsubscribedAt moved to %v", st.UnsubscribedAt)
	}
	var n int64
	noErr(t, w.db.Model(&models.Consent{}).Where("participant_id = ?", jane.ID).Count(&n).Error)
	if n != 1 {
		t.Errorf("%d consent rows after a second unsubscribe, want 1", n)
	}
	if got := w.reload(t, late).Status; got != drip.DeliveryCancelled {
		t.Errorf("a marketing delivery scheduled since is %s, want cancelled", got)
	}
	info, err = w.svc.Drip.UnsubscribeInfo(ctx, jane.UnsubscribeToken)
	noErr(t, err)
	if info.UnsubscribedAt == nil || !info.UnsubscribedAt.Equal(first) {
		t.Errorf("info after = %+v", info)
	}
}

func TestUnsubscribeUnknownTokenIsNotFound(t *testing.T) {
	w := newInbound(t)
	ctx := context.Background()
	for _, token := range []string{"", "short", "0123456789abcdef0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef\n"} {
		if _, err := w.svc.Drip.UnsubscribeInfo(ctx, token); !models.IsCode(err, "not_found") {
			t.Errorf("UnsubscribeInfo(%q) = %v, want not_found", token, err)
		}
		if _, err := w.svc.Drip.Unsubscribe(ctx, token, models.ClientInfo{}); !models.IsCode(err, "not_found") {
			t.Errorf("Unsubscribe(%q) = %v, want not_found", token, err)
		}
	}
}

func emailEvent(svixID, typ, emailID string, to ...string) drip.EmailEvent {
	payload, _ := json.Marshal(map[string]any{"type": typ, "data": map[string]any{"email_id": emailID, "to": to}})
	return drip.EmailEvent{SvixID: svixID, Type: typ, ResendEmailID: emailID, To: to, Payload: payload}
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

func TestApplyEmailEventSuppressesHardBouncesAndComplaints(t *testing.T) {
	tests := []struct {
		name       string
		typ        string
		bounceType string
		reason     drip.SuppressionReason // "" means not suppressed
	}{
		{"hard bounce", drip.EmailEventBounced, "Permanent", drip.SuppressionBounced},
		{"bounce without a type", drip.EmailEventBounced, "", drip.SuppressionBounced},
		{"soft bounce", drip.EmailEventBounced, "Transient", ""},
		{"undetermined bounce", drip.EmailEventBounced, "Undetermined", ""},
		{"complaint", drip.EmailEventComplained, "", drip.SuppressionComplained},
		{"delivered", drip.EmailEventDelivered, "", ""},
		{"opened", drip.EmailEventOpened, "", ""},
		{"unknown type", "email.teleported", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newInbound(t)
			ctx := context.Background()
			jane := w.participant(t, "jane@example.com")
			other := w.participant(t, "other@example.com")
			sent := w.delivery(t, jane, w.marketingStep, drip.DeliverySent, false, nil)
			pending := []drip.EmailDelivery{
				w.delivery(t, jane, w.marketingStep, drip.DeliveryScheduled, false, nil),
				w.delivery(t, jane, w.reminderStep, drip.DeliveryScheduled, true, nil),
			}
			others := w.delivery(t, other, w.marketingStep, drip.DeliveryScheduled, false, nil)

			ev := emailEvent("msg_"+tt.name, tt.typ, *sent.ResendID, jane.Email)
			ev.BounceType, ev.BounceMessage = tt.bounceType, "550 no such user"
			ev.OccurredAt = w.clock.Now().Add(-time.Minute)
			noErr(t, w.svc.Drip.ApplyEmailEvent(ctx, ev))

			var stored drip.ResendEvent
			noErr(t, w.db.Take(&stored, "svix_id = ?", ev.SvixID).Error)
			if stored.DeliveryID == nil || *stored.DeliveryID != sent.ID || stored.Type != tt.typ || !stored.OccurredAt.Equal(ev.OccurredAt) {
				t.Errorf("stored event = %+v, want linked to delivery %s", stored, sent.ID)
			}
			sup := suppression(t, w.db, jane.Email)
			switch {
			case tt.reason == "" && sup != nil:
				t.Errorf("suppressed as %s", sup.Reason)
			case tt.reason != "" && (sup == nil || sup.Reason != tt.reason):
				t.Errorf("suppression = %+v, want reason %s", sup, tt.reason)
			}
			for _, d := range pending {
				d = w.reload(t, d)
				if tt.reason != "" && (d.Status != drip.DeliveryCancelled || lastError(d) != "suppressed: "+string(tt.reason)) {
					t.Errorf("pending delivery = %s %q, want cancelled: suppressed: %s", d.Status, lastError(d), tt.reason)
				}
				if tt.reason == "" && d.Status != drip.DeliveryScheduled {
					t.Errorf("pending delivery became %s", d.Status)
				}
			}
			if got := w.reload(t, others).Status; got != drip.DeliveryScheduled {
				t.Errorf("another address's delivery became %s", got)
			}
			if got := w.reload(t, sent).Status; got != drip.DeliverySent {
				t.Errorf("the sent delivery became %s", got)
			}
		})
	}
}

func TestApplyEmailEventReplayIsANoOp(t *testing.T) {
	w := newInbound(t)
	ctx := context.Background()
	jane := w.participant(t, "jane@example.com")
	sent := w.delivery(t, jane, w.marketingStep, drip.DeliverySent, false, nil)
	noErr(t, w.svc.Drip.ApplyEmailEvent(ctx, emailEvent("msg_1", drip.EmailEventDelivered, *sent.ResendID, jane.Email)))
	// Same svix-id, whatever the body says: already applied.
	noErr(t, w.svc.Drip.ApplyEmailEvent(ctx, emailEvent("msg_1", drip.EmailEventComplained, *sent.ResendID, jane.Email)))
	var n int64
	noErr(t, w.db.Model(&drip.ResendEvent{}).Count(&n).Error)
	if n != 1 {
		t.Errorf("%d events stored, want 1", n)
	}
	if sup := suppression(t, w.db, jane.Email); sup != nil {
		t.Errorf("a replayed id suppressed the address: %+v", sup)
	}
}

func TestApplyEmailEventWithoutADelivery(t *testing.T) {
	w := newInbound(t)
	ctx := context.Background()
	jane := w.participant(t, "jane@example.com")
	pending := w.delivery(t, jane, w.marketingStep, drip.DeliveryScheduled, false, nil)
	// A sign-in link from the outbox bounced: its address is the outbox's,
	// whatever the event's to says.
	now := w.clock.Now()
	msgID := "outbox-" + uuid.NewString()
	noErr(t, w.db.Create(&models.OutboxMessage{Template: models.TemplateLoginLink, ToEmail: jane.Email, Data: map[string]any{},
		Status: models.OutboxSent, NextAttemptAt: now, SentAt: &now, ProviderMessageID: &msgID}).Error)
	ev := emailEvent("msg_outbox", drip.EmailEventBounced, msgID, "someone-else@example.com")
	ev.BounceType = "Permanent"
	noErr(t, w.svc.Drip.ApplyEmailEvent(ctx, ev))
	var stored drip.ResendEvent
	noErr(t, w.db.Take(&stored, "svix_id = ?", "msg_outbox").Error)
	if stored.DeliveryID != nil {
		t.Errorf("an outbox email's event is linked to delivery %s", stored.DeliveryID)
	}
	if suppression(t, w.db, jane.Email) == nil || suppression(t, w.db, "someone-else@example.com") != nil {
		t.Error("the outbox message's address must be suppressed, not the event's to")
	}
	if got := w.reload(t, pending).Status; got != drip.DeliveryCancelled {
		t.Errorf("her scheduled delivery is %s, want cancelled", got)
	}

	// Unknown email id: the event's own recipients are used, normalised.
	ev = emailEvent("msg_unknown", drip.EmailEventComplained, "not-ours", " Mia@Example.com ")
	noErr(t, w.svc.Drip.ApplyEmailEvent(ctx, ev))
	if sup := suppression(t, w.db, "mia@example.com"); sup == nil || sup.Reason != drip.SuppressionComplained {
		t.Errorf("suppression = %+v, want mia@example.com complained", sup)
	}
	// A later hard bounce does not downgrade the complaint.
	ev = emailEvent("msg_later", drip.EmailEventBounced, "not-ours-2", "mia@example.com")
	noErr(t, w.svc.Drip.ApplyEmailEvent(ctx, ev))
	if sup := suppression(t, w.db, "mia@example.com"); sup.Reason != drip.SuppressionComplained {
		t.Errorf("reason = %s, want complained kept", sup.Reason)
	}
}

func TestApplyEmailEventRefusesAnEventWithoutIdentity(t *testing.T) {
	w := newInbound(t)
	for _, ev := range []drip.EmailEvent{
		{Type: "email.sent", Payload: []byte(`{}`)},
		{SvixID: "msg", Payload: []byte(`{}`)},
		{SvixID: "msg", Type: "email.sent", Payload: []byte(`not json`)},
	} {
		if err := w.svc.Drip.ApplyEmailEvent(context.Background(), ev); err == nil {
			t.Errorf("ApplyEmailEvent(%+v) accepted", ev)
		}
	}
}

func TestSuppressionsListAndDelete(t *testing.T) {
	w := newInbound(t)
	ctx := context.Background()
	admin := modelstest.NewCoach(t, w.db, "admin@example.com", people.RoleAdmin)
	for i := range 5 {
		w.clock.Advance(time.Minute)
		ev := emailEvent(fmt.Sprintf("msg_%d", i), drip.EmailEventComplained, "", fmt.Sprintf("p%d@example.com", i))
		noErr(t, w.svc.Drip.ApplyEmailEvent(ctx, ev))
	}
	var got []string
	pp := models.PageParams{Limit: 2}
	for {
		page, err := w.svc.Drip.ListSuppressions(ctx, w.lead, pp)
		noErr(t, err)
		for _, s := range page.Items {
			got = append(got, s.Email)
		}
		if page.NextCursor == nil {
			break
		}
		pp.Cursor = *page.NextCursor
	}
	want := []string{"p4@example.com", "p3@example.com", "p2@example.com", "p1@example.com", "p0@example.com"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("pages = %v, want newest first %v", got, want)
	}
	if _, err := w.svc.Drip.ListSuppressions(ctx, w.lead, models.PageParams{Cursor: "garbage"}); !models.IsCode(err, "invalid_cursor") {
		t.Errorf("bad cursor = %v", err)
	}

	if err := w.svc.Drip.DeleteSuppression(ctx, w.lead, "p1@example.com"); !models.IsCode(err, "forbidden") {
		t.Errorf("a coach deleting = %v, want forbidden", err)
	}
	noErr(t, w.svc.Drip.DeleteSuppression(ctx, admin, " P1@Example.com"))
	if suppression(t, w.db, "p1@example.com") != nil {
		t.Error("still suppressed")
	}
	if err := w.svc.Drip.DeleteSuppression(ctx, admin, "p1@example.com"); !models.IsCode(err, "not_found") {
		t.Errorf("deleting again = %v, want not_found", err)
	}
}

func TestListDeliveriesFiltersScopesAndShowsEvents(t *testing.T) {
	w := newInbound(t)
	ctx := context.Background()
	admin := modelstest.NewCoach(t, w.db, "admin@example.com", people.RoleAdmin)
	stranger := modelstest.NewCoach(t, w.db, "stranger@example.com", people.RoleCoach)
	jane := w.participant(t, "jane@example.com")
	mia := w.participant(t, "mia@example.com")

	lead := w.delivery(t, jane, w.marketingStep, drip.DeliveryCancelled, false, func(d *drip.EmailDelivery) {
		r := "unsubscribed: she used the unsubscribe link"
		d.LastError = &r
	})
	w.clock.Advance(time.Minute)
	reminder := w.delivery(t, jane, w.reminderStep, drip.DeliverySent, true, nil)
	w.clock.Advance(time.Minute)
	miaReminder := w.delivery(t, mia, w.reminderStep, drip.DeliveryScheduled, true, nil)

	// Events arrive out of order; one before the row knew its Resend id
	// (stored without a delivery), matched by the id.
	base := w.clock.Now()
	for i, e := range []struct {
		typ string
		at  time.Duration
	}{{drip.EmailEventOpened, 3 * time.Minute}, {drip.EmailEventSent, time.Minute}, {drip.EmailEventDelivered, 2 * time.Minute}} {
		ev := emailEvent(fmt.Sprintf("msg_%d", i), e.typ, *reminder.ResendID, jane.Email)
		ev.OccurredAt = base.Add(e.at)
		noErr(t, w.svc.Drip.ApplyEmailEvent(ctx, ev))
	}
	noErr(t, w.db.Exec(`UPDATE resend_events SET delivery_id = NULL WHERE type = ?`, drip.EmailEventSent).Error)

	ids := func(p models.Page[drip.DeliveryLogEntry]) []uuid.UUID {
		var out []uuid.UUID
		for _, e := range p.Items {
			out = append(out, e.ID)
		}
		return out
	}
	seq := w.reminders.ID
	tests := []struct {
		name  string
		actor *people.Coach
		f     drip.DeliveryFilter
		want  []uuid.UUID
	}{
		{"admin sees all, newest first", admin, drip.DeliveryFilter{}, []uuid.UUID{miaReminder.ID, reminder.ID, lead.ID}},
		{"by status", admin, drip.DeliveryFilter{Status: drip.DeliveryCancelled}, []uuid.UUID{lead.ID}},
		{"by participant", admin, drip.DeliveryFilter{ParticipantID: &jane.ID}, []uuid.UUID{reminder.ID, lead.ID}},
		{"by sequence", admin, drip.DeliveryFilter{SequenceID: &seq}, []uuid.UUID{miaReminder.ID, reminder.ID}},
		{"a cohort's coach sees her cohort's only", w.lead, drip.DeliveryFilter{}, []uuid.UUID{miaReminder.ID, reminder.ID}},
		{"another coach sees none", stranger, drip.DeliveryFilter{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, err := w.svc.Drip.ListDeliveries(ctx, tt.actor, tt.f, models.PageParams{})
			noErr(t, err)
			if fmt.Sprint(ids(page)) != fmt.Sprint(tt.want) {
				t.Errorf("ids = %v, want %v", ids(page), tt.want)
			}
		})
	}

	page, err := w.svc.Drip.ListDeliveries(ctx, admin, drip.DeliveryFilter{ParticipantID: &jane.ID}, models.PageParams{Limit: 1})
	noErr(t, err)
	if len(page.Items) != 1 || page.NextCursor == nil {
		t.Fatalf("first page = %d items, cursor %v", len(page.Items), page.NextCursor)
	}
	got := page.Items[0]
	var types []string
	for _, e := range got.Events {
		types = append(types, e.Type)
	}
	if want := "[email.sent email.delivered email.opened]"; fmt.Sprint(types) != want {
		t.Errorf("events = %v, want %s in the order they happened", types, want)
	}
	if got.Rendered != nil {
		t.Error("the log must not load the rendered email")
	}
	page, err = w.svc.Drip.ListDeliveries(ctx, admin, drip.DeliveryFilter{ParticipantID: &jane.ID}, models.PageParams{Limit: 1, Cursor: *page.NextCursor})
	noErr(t, err)
	if len(page.Items) != 1 || page.Items[0].ID != lead.ID || page.NextCursor != nil || lastError(page.Items[0].EmailDelivery) == "" || len(page.Items[0].Events) != 0 {
		t.Errorf("second page = %+v", page)
	}

	if _, err := w.svc.Drip.ListDeliveries(ctx, admin, drip.DeliveryFilter{Status: "bounced"}, models.PageParams{}); !models.IsCode(err, "invalid_query") {
		t.Errorf("unknown status = %v, want invalid_query", err)
	}
}

// A woman who unsubscribed and later ticks "send me emails" on a form again
// gets marketing email again; unticking it leaves her unsubscribed.
func TestMarketingYesOnAFormUndoesAnUnsubscribe(t *testing.T) {
	w := newInbound(t)
	ctx := context.Background()
	until := w.clock.Now().Add(30 * 24 * time.Hour)
	noErr(t, w.db.Model(&w.program).Update("free_access_until", until).Error)
	claim := func(marketing bool) {
		t.Helper()
		// Each decision at its own moment, as a woman makes them: the
		// latest one is the one that counts.
		w.clock.Advance(time.Minute)
		noErr(t, w.svc.People.ClaimFreeAccess(ctx, w.program.Slug, people.FreeAccessInput{
			Email: "ana@example.com", Name: "Ana", DisclaimerAccepted: true, MarketingConsent: marketing}, models.ClientInfo{IP: "198.51.100.7"}))
	}
	unsubscribedAt := func() *time.Time {
		t.Helper()
		var p people.Participant
		noErr(t, w.db.Where("email = ?", "ana@example.com").Take(&p).Error)
		return p.MarketingUnsubscribedAt
	}

	claim(true)
	var p people.Participant
	noErr(t, w.db.Where("email = ?", "ana@example.com").Take(&p).Error)
	w.clock.Advance(time.Minute)
	_, err := w.svc.Drip.Unsubscribe(ctx, p.UnsubscribeToken, models.ClientInfo{})
	noErr(t, err)
	if unsubscribedAt() == nil {
		t.Fatal("unsubscribe did not stick")
	}
	claim(false)
	if unsubscribedAt() == nil {
		t.Fatal("a claim without marketing consent re-subscribed her")
	}
	claim(true)
	if at := unsubscribedAt(); at != nil {
		t.Fatalf("a fresh marketing yes left her unsubscribed since %v", at)
	}
}

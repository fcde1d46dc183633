package drip_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/drip"
	"github.com/grace-coaching/grace/models/modelstest"
	"github.com/grace-coaching/grace/models/people"
)

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

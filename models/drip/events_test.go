package drip_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/drip"
)

func emailEvent(svixID, typ, emailID string, to ...string) drip.EmailEvent {
	payload, _ := json.Marshal(map[string]any{"type": typ, "data": map[string]any{"email_id": emailID, "to": to}})
	return drip.EmailEvent{SvixID: svixID, Type: typ, ResendEmailID: emailID, To: to, Payload: payload}
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

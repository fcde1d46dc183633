package drip_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/drip"
	"github.com/grace-coaching/grace/models/people"
)

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
		consents[0].TextVersion != "1" || consents[0].DocumentID == nil || consents[0].IP == nil || *consents[0].IP != "203.0.113.9" {
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

// A woman who unsubscribed and later ticks "send me emails" on a form again
// gets marketing email again once she confirms from her inbox: the form's
// yes alone is anyone's typing and leaves her unsubscribed, and unticking
// it leaves her unsubscribed too.
func TestConfirmedMarketingYesUndoesAnUnsubscribe(t *testing.T) {
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
		_, err := w.svc.Kernel.RunTasksOnce(ctx) // the worker's turn
		noErr(t, err)
	}
	optIns := func() []models.OutboxMessage {
		t.Helper()
		var msgs []models.OutboxMessage
		noErr(t, w.db.Where("template = ? AND to_email = ?", people.TemplateMarketingOptIn, "ana@example.com").
			Order("created_at DESC").Find(&msgs).Error)
		return msgs
	}
	// confirm follows the link in the newest opt-in email, from her inbox.
	confirm := func() {
		t.Helper()
		msgs := optIns()
		if len(msgs) == 0 {
			t.Fatal("no opt-in email to confirm")
		}
		tok, _ := msgs[0].Data["token"].(string)
		w.clock.Advance(time.Minute)
		_, err := w.svc.People.ConfirmMarketingOptIn(ctx, tok, models.ClientInfo{IP: "203.0.113.9"})
		noErr(t, err)
	}
	unsubscribedAt := func() *time.Time {
		t.Helper()
		var p people.Participant
		noErr(t, w.db.Where("email = ?", "ana@example.com").Take(&p).Error)
		return p.MarketingUnsubscribedAt
	}

	claim(true)
	confirm()
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
	sent := len(optIns())
	claim(true)
	if unsubscribedAt() == nil {
		t.Fatal("a form's marketing yes, unconfirmed, re-subscribed her")
	}
	if got := len(optIns()); got != sent+1 {
		t.Fatalf("%d opt-in emails after a fresh yes, want %d: the yes must ask her to confirm", got, sent+1)
	}
	confirm()
	if at := unsubscribedAt(); at != nil {
		t.Fatalf("a confirmed marketing yes left her unsubscribed since %v", at)
	}
}

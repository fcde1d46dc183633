package enroll

import (
	"context"
	"crypto/sha256"
	"encoding/hex"

	"github.com/grace-coaching/grace/models"
)

// A correctly signed event may still carry text PostgreSQL refuses: a NUL
// (a \u0000 escape) in a text value, a \u0000 or a lone surrogate escape in
// jsonb, or bytes that are not UTF-8 anywhere. Answering such an event 5xx
// would make the provider redeliver it forever, so it is always stored:
// the payload as a sanitised copy with the signed bytes kept beside it,
// and, when a field the domain reads is itself unusable, as a rejected
// event that changes nothing.

// Rejection reasons stored on stripe_events.rejected_reason.
const (
	// RejectUnstorableText: a field the domain reads holds a NUL or bytes
	// that are not UTF-8; the event is kept, never applied.
	RejectUnstorableText = "unstorable_text"
)

// unstorableField names the first field of ev that the domain would write
// or look up and that PostgreSQL cannot hold, or "".
func unstorableField(ev PaymentEvent) string {
	fields := [][2]string{{"id", ev.ID}, {"type", ev.Type},
		{"payment_intent", ev.ChargePaymentIntentID}, {"dispute_status", ev.DisputeStatus}}
	if s := ev.Session; s != nil {
		fields = append(fields, [2]string{"session.id", s.ID}, [2]string{"session.payment_intent", s.PaymentIntentID},
			[2]string{"session.currency", s.Currency}, [2]string{"session.status", s.Status},
			[2]string{"session.payment_status", s.PaymentStatus}, [2]string{"session.client_reference_id", s.EnrollmentID},
			[2]string{"session.url", s.URL})
	}
	for _, f := range fields {
		if !models.StorableText(f[1]) {
			return f[0]
		}
	}
	return ""
}

// storedEventID is the id an event is stored under: its own, or, when that
// cannot be a text key, a stable stand-in derived from its bytes, so that a
// redelivery still finds the row it left.
func storedEventID(id string) string {
	if models.StorableText(id) {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return "unstorable_" + hex.EncodeToString(sum[:16])
}

// storeRejectedEvent keeps an event the domain will not apply, once, with
// the reason, and acknowledges it: the provider must not send it again.
func (s *Service) storeRejectedEvent(ctx context.Context, ev PaymentEvent, reason string) error {
	id := storedEventID(ev.ID)
	doc, original := models.StorableJSON(ev.Payload)
	if original == nil {
		original = ev.Payload
	}
	s.Log.WarnContext(ctx, "payment event stored but not applied", "event_id", id, "type", models.CleanText(ev.Type), "reason", reason)
	return s.DB.WithContext(ctx).Exec(`INSERT INTO stripe_events (id, type, payload, payload_raw, rejected_reason, received_at)
		VALUES (?, ?, ?::jsonb, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		id, models.CleanText(ev.Type), doc, original, reason, s.Now()).Error
}

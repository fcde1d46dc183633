package drip

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
)

// Resend's webhooks: delivery events recorded once, bounces and complaints
// turned into suppressions.

// Resend webhook event types Grace acts on or shows.
const (
	EmailEventSent            = "email.sent"
	EmailEventDelivered       = "email.delivered"
	EmailEventDeliveryDelayed = "email.delivery_delayed"
	EmailEventBounced         = "email.bounced"
	EmailEventComplained      = "email.complained"
	EmailEventOpened          = "email.opened"
	EmailEventClicked         = "email.clicked"
)

// EmailEvent is one verified Resend webhook, reduced to what the domain
// uses. The emails package builds it; nothing of the SDK crosses here.
type EmailEvent struct {
	SvixID        string   // the svix-id header: one id per event, kept across Resend's retries
	Type          string   // e.g. "email.bounced"
	ResendEmailID string   // data.email_id ("" for events not about an email)
	To            []string // data.to
	OccurredAt    time.Time
	// Bounce details of email.bounced: Resend's bounce.type is
	// "Permanent", "Transient" or "Undetermined".
	BounceType    string
	BounceSubType string
	BounceMessage string
	Payload       []byte // the verified JSON body, stored as received
}

// hardBounce reports whether a bounce means the address will never take
// mail. Resend documents email.bounced as a permanent rejection, so a
// bounce without a type counts as hard; a transient or undetermined one is
// only recorded.
func (ev EmailEvent) hardBounce() bool {
	switch strings.ToLower(strings.TrimSpace(ev.BounceType)) {
	case "", "permanent", "hard", "hard_bounce":
		return true
	}
	return false
}

// ApplyEmailEvent records a Resend webhook once, by its svix-id, and applies
// it in the same transaction: a hard bounce or a complaint suppresses the
// address and cancels every scheduled delivery to it; a replay changes
// nothing. A database failure is returned as is, so the webhook answers 5xx
// and Resend retries.
func (s *Service) ApplyEmailEvent(ctx context.Context, ev EmailEvent) error {
	if ev.SvixID == "" || len(ev.SvixID) > 200 || ev.Type == "" || !json.Valid(ev.Payload) {
		return models.E(models.KindBadRequest, "invalid_event", "The email event has no id, no type or no JSON payload.")
	}
	occurred := ev.OccurredAt
	if occurred.IsZero() {
		occurred = s.Now()
	}
	// The event is signed, so it is Resend's: refusing it would only make
	// Resend send it again, forever. What PostgreSQL cannot hold is stored
	// sanitised beside the bytes as received, and an event whose identity
	// cannot be real is kept as rejected, with the reason, and not applied.
	payload, raw := models.StorableJSON(ev.Payload)
	rejected := rejectReason(ev)
	if rejected != "" {
		s.Log.WarnContext(ctx, "resend event rejected", "svix_id", ev.SvixID, "reason", rejected)
		raw = ev.Payload
	}
	return s.InTx(ctx, func(tx *gorm.DB) error {
		var deliveryID *uuid.UUID
		var addresses []string
		var emailID *string
		if ev.ResendEmailID != "" && rejected == "" {
			emailID = &ev.ResendEmailID
			var d []struct {
				ID    uuid.UUID
				Email string
			}
			if err := tx.Raw(`SELECT id, email FROM email_deliveries WHERE resend_id = ? LIMIT 1`, ev.ResendEmailID).Scan(&d).Error; err != nil {
				return fmt.Errorf("email event: find delivery: %w", err)
			}
			if len(d) == 1 {
				deliveryID, addresses = &d[0].ID, []string{d[0].Email}
			} else {
				// A sign-in link or another outbox email: suppressions
				// still apply to its address, but it has no delivery row.
				var to []string
				if err := tx.Raw(`SELECT to_email FROM outbox WHERE provider_message_id = ? LIMIT 1`, ev.ResendEmailID).Scan(&to).Error; err != nil {
					return fmt.Errorf("email event: find outbox message: %w", err)
				}
				addresses = to
			}
		}
		if len(addresses) == 0 {
			for _, a := range ev.To {
				if a = models.NormalizeEmail(a); models.ValidEmail(a) && !strings.ContainsRune(a, 0) {
					addresses = append(addresses, a)
				}
			}
		}
		res := tx.Exec(`
			INSERT INTO resend_events (svix_id, type, resend_email_id, delivery_id, occurred_at, payload, payload_raw, rejected, received_at)
			VALUES (?, ?, ?, ?, ?, CAST(? AS jsonb), ?, ?, ?)
			ON CONFLICT (svix_id) DO NOTHING`,
			ev.SvixID, cleanText(ev.Type, 200), emailID, deliveryID, occurred.UTC(), payload, raw, nullIfEmpty(rejected), s.Now())
		if res.Error != nil {
			return fmt.Errorf("email event: record: %w", res.Error)
		}
		if res.RowsAffected == 0 || rejected != "" {
			return nil // a replay, applied the first time, or an event kept only as a record
		}
		switch {
		case ev.Type == EmailEventBounced && ev.hardBounce():
			return s.suppress(tx, addresses, SuppressionBounced, bounceDetail(ev))
		case ev.Type == EmailEventComplained:
			return s.suppress(tx, addresses, SuppressionComplained, "marked as spam"+emailRef(ev))
		}
		// Delivered, opened, clicked, delayed, soft bounces and types Grace
		// does not know: the stored row is the whole effect.
		return nil
	})
}

func emailRef(ev EmailEvent) string {
	if ev.ResendEmailID == "" {
		return ""
	}
	return " (email " + ev.ResendEmailID + ")"
}

func bounceDetail(ev EmailEvent) string {
	kind := "Permanent"
	if ev.BounceType != "" {
		kind = ev.BounceType
	}
	if ev.BounceSubType != "" {
		kind += "/" + ev.BounceSubType
	}
	d := kind
	if m := strings.TrimSpace(ev.BounceMessage); m != "" {
		d += ": " + m
	}
	return truncateRunes(d+emailRef(ev), 1000)
}

func truncateRunes(s string, n int) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

// Resend's ids are UUIDs; anything much longer is not one, and past about
// 2,700 bytes it would not fit the index on resend_email_id.
const maxResendIDLen = 200

// rejectReason says why a verified event cannot be what it claims, or "".
func rejectReason(ev EmailEvent) string {
	switch {
	case cleanText(ev.Type, 200) != ev.Type:
		return "type is not an event type"
	case len(ev.ResendEmailID) > maxResendIDLen:
		return fmt.Sprintf("email_id is not a Resend id (%d bytes)", len(ev.ResendEmailID))
	case cleanText(ev.ResendEmailID, maxResendIDLen) != ev.ResendEmailID:
		return "email_id holds characters no Resend id has"
	}
	return ""
}

// cleanText is s as a single line of valid UTF-8 without control
// characters, cut to n runes: text PostgreSQL can store and a log can show.
func cleanText(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	return truncateRunes(s, n)
}

func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

type ResendEvent struct {
	SvixID        string `gorm:"primaryKey"`
	Type          string
	ResendEmailID *string
	DeliveryID    *uuid.UUID `gorm:"type:uuid"`
	OccurredAt    time.Time
	Payload       []byte  `gorm:"type:jsonb"`
	PayloadRaw    []byte  // the body as received, when Payload had to be sanitised
	Rejected      *string // why the event was kept without effect
	ReceivedAt    time.Time
}

package drip

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/people"
)

// What comes back in: one-click unsubscribes, Resend's webhooks (bounces,
// complaints, delivery events), the suppression list and the delivery log
// the coach reads.

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

// UnsubscribeStatus is what her unsubscribe link does, or did. The address
// is masked: the link travels in email and may be forwarded.
type UnsubscribeStatus struct {
	MaskedEmail string
	// UnsubscribedAt is nil while marketing email still reaches her.
	UnsubscribedAt *time.Time
}

var errUnknownUnsubscribeLink = models.NotFound("unsubscribe link")

// validUnsubscribeToken mirrors the column's CHECK, so a junk token costs no
// query.
func validUnsubscribeToken(token string) bool {
	return len(token) >= 32 && len(token) <= 128 && !strings.ContainsFunc(token, func(r rune) bool { return r <= ' ' || r > '~' })
}

// UnsubscribeInfo tells what the link would do without doing it: mail
// clients and link scanners fetch URLs, and a fetch must not unsubscribe.
func (s *Service) UnsubscribeInfo(ctx context.Context, token string) (*UnsubscribeStatus, error) {
	if !validUnsubscribeToken(token) {
		return nil, errUnknownUnsubscribeLink
	}
	var p people.Participant
	err := s.DB.WithContext(ctx).Select("id", "email", "marketing_unsubscribed_at").
		Where("unsubscribe_token = ?", token).Take(&p).Error
	if err != nil {
		return nil, models.MapDBError(err, "unsubscribe link")
	}
	return &UnsubscribeStatus{MaskedEmail: maskEmail(p.Email), UnsubscribedAt: models.StoredTimePtr(p.MarketingUnsubscribedAt)}, nil
}

// Unsubscribe stops marketing email to her at once: the first use records
// the moment and a withdrawn marketing consent (evidence, like the consent
// she gave), and every use cancels her scheduled marketing deliveries, all
// in one transaction. Transactional email (sign-in links, receipts, session
// reminders) keeps flowing.
func (s *Service) Unsubscribe(ctx context.Context, token string, client models.ClientInfo) (*UnsubscribeStatus, error) {
	if !validUnsubscribeToken(token) {
		return nil, errUnknownUnsubscribeLink
	}
	var out UnsubscribeStatus
	err := s.InTx(ctx, func(tx *gorm.DB) error {
		// Locked, so two clicks at once record one consent.
		var p people.Participant
		err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Select("id", "email", "marketing_unsubscribed_at").
			Where("unsubscribe_token = ?", token).Take(&p).Error
		if err != nil {
			return models.MapDBError(err, "unsubscribe link")
		}
		now := s.Now()
		if p.MarketingUnsubscribedAt == nil {
			if err := tx.Exec(`UPDATE participants SET marketing_unsubscribed_at = ?, updated_at = ? WHERE id = ?`, now, now, p.ID).Error; err != nil {
				return fmt.Errorf("unsubscribe: %w", err)
			}
			consent := models.Consent{ID: uuid.New(), ParticipantID: p.ID, Kind: models.ConsentMarketing, TextVersion: models.MarketingVersion,
				Granted: false, IP: models.ConsentIP(client.IP), UserAgent: models.ConsentUserAgent(client.UserAgent), CreatedAt: now}
			if err := tx.Create(&consent).Error; err != nil {
				return models.MapDBError(err, "consent")
			}
			p.MarketingUnsubscribedAt = &now
		}
		// Every time, not only the first: a row scheduled since (by a
		// trigger that did not look) is cancelled too.
		err = tx.Exec(`
			UPDATE email_deliveries d SET status = ?, last_error = ?, locked_until = NULL, updated_at = ?
			FROM email_sequences q
			WHERE q.id = d.sequence_id AND q.kind = ? AND d.participant_id = ? AND d.status = ?`,
			DeliveryCancelled, "unsubscribed: she used the unsubscribe link", now, SequenceMarketing, p.ID, DeliveryScheduled).Error
		if err != nil {
			return fmt.Errorf("unsubscribe: cancel deliveries: %w", err)
		}
		out = UnsubscribeStatus{MaskedEmail: maskEmail(p.Email), UnsubscribedAt: models.StoredTimePtr(p.MarketingUnsubscribedAt)}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// maskEmail keeps enough of an address for her to recognise it:
// "jane@example.com" -> "j***@example.com".
func maskEmail(email string) string {
	local, domain, ok := strings.Cut(email, "@")
	if !ok || local == "" {
		return "***"
	}
	r, _ := utf8.DecodeRuneInString(local)
	return string(r) + "***@" + domain
}

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
	return s.InTx(ctx, func(tx *gorm.DB) error {
		var deliveryID *uuid.UUID
		var addresses []string
		var emailID *string
		if ev.ResendEmailID != "" {
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
				if a = models.NormalizeEmail(a); models.ValidEmail(a) {
					addresses = append(addresses, a)
				}
			}
		}
		res := tx.Exec(`
			INSERT INTO resend_events (svix_id, type, resend_email_id, delivery_id, occurred_at, payload, received_at)
			VALUES (?, ?, ?, ?, ?, CAST(? AS jsonb), ?)
			ON CONFLICT (svix_id) DO NOTHING`,
			ev.SvixID, ev.Type, emailID, deliveryID, occurred.UTC(), string(ev.Payload), s.Now())
		if res.Error != nil {
			return fmt.Errorf("email event: record: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return nil // a replay: applied the first time
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
	s = strings.ToValidUTF8(s, "")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

// suppress adds the addresses to the suppression list and cancels every
// scheduled delivery to them, marketing or not. A complaint is never
// downgraded to a bounce: it is the stronger signal.
func (s *Service) suppress(tx *gorm.DB, addresses []string, reason SuppressionReason, detail string) error {
	if len(addresses) == 0 {
		return nil
	}
	now := s.Now()
	for _, a := range addresses {
		err := tx.Exec(`
			INSERT INTO email_suppressions (email, reason, detail, created_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (email) DO UPDATE SET reason = EXCLUDED.reason, detail = EXCLUDED.detail
			WHERE email_suppressions.reason <> ? OR EXCLUDED.reason = ?`,
			a, reason, detail, now, SuppressionComplained, SuppressionComplained).Error
		if err != nil {
			return fmt.Errorf("suppress %s: %w", reason, err)
		}
	}
	err := tx.Exec(`
		UPDATE email_deliveries SET status = ?, last_error = ?, locked_until = NULL, updated_at = ?
		WHERE email IN ? AND status = ?`,
		DeliveryCancelled, "suppressed: "+reason, now, addresses, DeliveryScheduled).Error
	if err != nil {
		return fmt.Errorf("suppress %s: cancel deliveries: %w", reason, err)
	}
	return nil
}

// suppressionCursor is the keyset position in the suppression list, whose
// key is the address rather than a UUID.
type suppressionCursor struct {
	At    time.Time `json:"t"`
	Email string    `json:"e"`
}

var errBadSuppressionCursor = &models.Error{Kind: models.KindBadRequest, Code: "invalid_cursor", Message: "The cursor is not valid; start again without one.",
	Fields: []models.FieldError{{Field: "cursor", Message: "is not a cursor this API issued"}}}

// ListSuppressions lists the addresses no email goes to, newest first. Any
// coach may read it: it explains why someone gets no mail.
func (s *Service) ListSuppressions(ctx context.Context, actor *people.Coach, pp models.PageParams) (models.Page[EmailSuppression], error) {
	if actor == nil {
		return models.Page[EmailSuppression]{}, people.ErrAdminOnly
	}
	q := s.DB.WithContext(ctx).Model(&EmailSuppression{})
	if pp.Cursor != "" {
		var cur suppressionCursor
		b, err := base64.RawURLEncoding.DecodeString(pp.Cursor)
		if err == nil {
			err = json.Unmarshal(b, &cur)
		}
		if err != nil || cur.Email == "" {
			return models.Page[EmailSuppression]{}, errBadSuppressionCursor
		}
		q = q.Where("(created_at, email) < (?, ?)", cur.At, cur.Email)
	}
	limit := pp.PageSize()
	var rows []EmailSuppression
	if err := q.Order("created_at DESC, email DESC").Limit(limit + 1).Find(&rows).Error; err != nil {
		return models.Page[EmailSuppression]{}, fmt.Errorf("list suppressions: %w", err)
	}
	if len(rows) <= limit {
		return models.Page[EmailSuppression]{Items: rows}, nil
	}
	rows = rows[:limit]
	last := rows[len(rows)-1]
	b, _ := json.Marshal(suppressionCursor{At: last.CreatedAt, Email: last.Email})
	next := base64.RawURLEncoding.EncodeToString(b)
	return models.Page[EmailSuppression]{Items: rows, NextCursor: &next}, nil
}

// DeleteSuppression lets email flow to the address again. Admins only: the
// address bounced or complained, and mailing it again costs the sending
// reputation of every coach.
func (s *Service) DeleteSuppression(ctx context.Context, actor *people.Coach, email string) error {
	if err := people.RequireAdmin(actor); err != nil {
		return err
	}
	res := s.DB.WithContext(ctx).Exec(`DELETE FROM email_suppressions WHERE email = ?`, models.NormalizeEmail(email))
	if res.Error != nil {
		return fmt.Errorf("delete suppression: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return models.NotFound("suppression")
	}
	return nil
}

// DeliveryFilter narrows the delivery log; zero fields do not filter.
type DeliveryFilter struct {
	Status        DeliveryStatus
	ParticipantID *uuid.UUID
	SequenceID    *uuid.UUID
}

// DeliveryEvent is one Resend event of a delivery, for the coach's stats.
type DeliveryEvent struct {
	Type       string
	OccurredAt time.Time
}

// DeliveryLogEntry is one delivery with its reason (LastError) and events.
type DeliveryLogEntry struct {
	EmailDelivery
	Events []DeliveryEvent
}

var deliveryStatuses = []DeliveryStatus{DeliveryScheduled, DeliverySending, DeliverySent, DeliveryFailed, DeliveryCancelled, DeliverySkipped}

// deliveryLogColumns leaves out the frozen rendered email: the log shows
// what happened, not the bytes.
var deliveryLogColumns = []string{"id", "participant_id", "email", "sequence_id", "step_id", "subject_key", "enrollment_id", "cohort_id",
	"program_id", "live_session_id", "lesson_id", "anchor_at", "timezone", "status", "send_at", "sent_at", "attempts",
	"first_attempt_at", "locked_until", "batch_id", "last_error", "resend_id", "created_at", "updated_at"}

// ListDeliveries is the delivery log, newest first, each row with its
// Resend events in the order they happened. An admin sees every delivery; a
// coach only those of cohorts she leads or co-leads (a lead's free-workshop
// email belongs to no cohort, so only admins see it).
func (s *Service) ListDeliveries(ctx context.Context, actor *people.Coach, f DeliveryFilter, pp models.PageParams) (models.Page[DeliveryLogEntry], error) {
	if actor == nil {
		return models.Page[DeliveryLogEntry]{}, people.ErrAdminOnly
	}
	cur, err := pp.Decode()
	if err != nil {
		return models.Page[DeliveryLogEntry]{}, err
	}
	db := s.DB.WithContext(ctx)
	q := db.Model(&EmailDelivery{}).Select(deliveryLogColumns)
	if f.Status != "" {
		if !slices.Contains(deliveryStatuses, f.Status) {
			e := models.E(models.KindBadRequest, "invalid_query", "status must be one of %s.", joinEnum(deliveryStatuses))
			e.Fields = []models.FieldError{{Field: "status", Message: "must be one of: " + joinEnum(deliveryStatuses)}}
			return models.Page[DeliveryLogEntry]{}, e
		}
		q = q.Where("status = ?", f.Status)
	}
	if f.ParticipantID != nil {
		q = q.Where("participant_id = ?", *f.ParticipantID)
	}
	if f.SequenceID != nil {
		q = q.Where("sequence_id = ?", *f.SequenceID)
	}
	if !people.IsAdmin(actor) {
		q = q.Where("cohort_id IN (SELECT cc.cohort_id FROM cohort_coaches cc WHERE cc.coach_id = ?)", actor.ID)
	}
	if cur != nil {
		q = q.Where("(created_at, id) < (?, ?)", cur.At, cur.ID)
	}
	limit := pp.PageSize()
	var rows []EmailDelivery
	if err := q.Order("created_at DESC, id DESC").Limit(limit + 1).Find(&rows).Error; err != nil {
		return models.Page[DeliveryLogEntry]{}, fmt.Errorf("list deliveries: %w", err)
	}
	page := models.PageOf(rows, limit, func(d EmailDelivery) models.Cursor { return models.Cursor{At: d.CreatedAt, ID: d.ID} })
	entries, err := withDeliveryEvents(db, page.Items)
	if err != nil {
		return models.Page[DeliveryLogEntry]{}, err
	}
	return models.Page[DeliveryLogEntry]{Items: entries, NextCursor: page.NextCursor}, nil
}

// withDeliveryEvents attaches each delivery's events in one query. An event
// is matched by its delivery id or, when it arrived before the row recorded
// the Resend id, by that id.
func withDeliveryEvents(db *gorm.DB, rows []EmailDelivery) ([]DeliveryLogEntry, error) {
	entries := make([]DeliveryLogEntry, len(rows))
	if len(rows) == 0 {
		return entries, nil
	}
	byID := make(map[uuid.UUID]int, len(rows))
	byResend := map[string]int{}
	ids := make([]uuid.UUID, 0, len(rows))
	var resendIDs []string
	for i, d := range rows {
		entries[i] = DeliveryLogEntry{EmailDelivery: d, Events: []DeliveryEvent{}}
		byID[d.ID] = i
		ids = append(ids, d.ID)
		if d.ResendID != nil && *d.ResendID != "" {
			byResend[*d.ResendID] = i
			resendIDs = append(resendIDs, *d.ResendID)
		}
	}
	q := db.Table("resend_events").Select("delivery_id, resend_email_id, type, occurred_at")
	if len(resendIDs) > 0 {
		q = q.Where("delivery_id IN ? OR resend_email_id IN ?", ids, resendIDs)
	} else {
		q = q.Where("delivery_id IN ?", ids)
	}
	var evs []struct {
		DeliveryID    *uuid.UUID
		ResendEmailID *string
		Type          string
		OccurredAt    time.Time
	}
	if err := q.Order("occurred_at, received_at, svix_id").Scan(&evs).Error; err != nil {
		return nil, fmt.Errorf("list delivery events: %w", err)
	}
	for _, ev := range evs {
		i, ok := -1, false
		if ev.DeliveryID != nil {
			i, ok = byID[*ev.DeliveryID]
		}
		if !ok && ev.ResendEmailID != nil {
			i, ok = byResend[*ev.ResendEmailID]
		}
		if ok {
			entries[i].Events = append(entries[i].Events, DeliveryEvent{Type: ev.Type, OccurredAt: ev.OccurredAt.UTC()})
		}
	}
	return entries, nil
}

// SuppressionReason is why no email at all goes to an address any more.
type SuppressionReason string

const (
	SuppressionBounced    SuppressionReason = "bounced"
	SuppressionComplained SuppressionReason = "complained"
	SuppressionManual     SuppressionReason = "manual"
)

type EmailSuppression struct {
	Email     string `gorm:"primaryKey"`
	Reason    SuppressionReason
	Detail    *string
	CreatedAt time.Time
}

type ResendEvent struct {
	SvixID        string `gorm:"primaryKey"`
	Type          string
	ResendEmailID *string
	DeliveryID    *uuid.UUID `gorm:"type:uuid"`
	OccurredAt    time.Time
	Payload       []byte `gorm:"type:jsonb"`
	ReceivedAt    time.Time
}

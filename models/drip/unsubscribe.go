package drip

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/people"
)

// One-click unsubscribe from marketing email: what the link in her email
// shows and what it does.

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
	return &UnsubscribeStatus{MaskedEmail: models.MaskEmail(p.Email), UnsubscribedAt: models.StoredTimePtr(p.MarketingUnsubscribedAt)}, nil
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
			doc, err := models.CurrentConsentDocument(tx, models.ConsentMarketing)
			if err != nil {
				return err
			}
			consent := models.NewConsent(p.ID, nil, doc, false, client, now)
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
		out = UnsubscribeStatus{MaskedEmail: models.MaskEmail(p.Email), UnsubscribedAt: models.StoredTimePtr(p.MarketingUnsubscribedAt)}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

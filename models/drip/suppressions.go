package drip

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/people"
)

// The suppression list: addresses no email goes to, marketing or not.

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
		DeliveryCancelled, "suppressed: "+string(reason), now, addresses, DeliveryScheduled).Error
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

// ListSuppressions lists the addresses no email goes to, newest first. It
// holds every address that bounced or complained, whoever's participant she
// is, so it is an admin's to read, as to delete.
func (s *Service) ListSuppressions(ctx context.Context, actor *people.Coach, pp models.PageParams) (models.Page[EmailSuppression], error) {
	if err := people.RequireAdmin(actor); err != nil {
		return models.Page[EmailSuppression]{}, err
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

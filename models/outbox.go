package models

import (
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Email templates the domain enqueues. emails/templates has one per name.
const (
	TemplateLoginLink     = "login_link"
	TemplatePasswordReset = "password_reset"
	TemplateCoachInvite   = "coach_invite"
)

// enqueueEmail writes an outbox row inside tx, so the email exists exactly
// when the change that causes it commits. A non-empty dedupeKey makes the
// enqueue idempotent: a second row with the same key is silently skipped.
func (s *Service) enqueueEmail(tx *gorm.DB, template, toEmail, toName, dedupeKey string, data map[string]any) error {
	msg := OutboxMessage{
		Template:      template,
		ToEmail:       strings.ToLower(strings.TrimSpace(toEmail)),
		ToName:        toName,
		Data:          data,
		Status:        OutboxPending,
		NextAttemptAt: s.Now(),
	}
	if dedupeKey != "" {
		msg.DedupeKey = &dedupeKey
	}
	q := tx
	if dedupeKey != "" {
		q = q.Clauses(clause.OnConflict{
			Columns:     []clause.Column{{Name: "dedupe_key"}},
			TargetWhere: clause.Where{Exprs: []clause.Expression{clause.Expr{SQL: "dedupe_key IS NOT NULL"}}},
			DoNothing:   true,
		})
	}
	return q.Create(&msg).Error
}

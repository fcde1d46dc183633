package models

import (
	"strings"
	"time"

	"github.com/google/uuid"
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
func (s *Kernel) EnqueueEmail(tx *gorm.DB, template, toEmail, toName, dedupeKey string, data map[string]any) error {
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

// OutboxStatus is where an outbox email stands (outbox.status).
type OutboxStatus string

const (
	OutboxPending   OutboxStatus = "pending"
	OutboxSending   OutboxStatus = "sending"
	OutboxSent      OutboxStatus = "sent"
	OutboxFailed    OutboxStatus = "failed"
	OutboxCancelled OutboxStatus = "cancelled"
)

// OutboxMessage is one email to send, written in the same transaction as the
// change that causes it. Template names a template in emails/templates; Data
// is what it renders.
type OutboxMessage struct {
	ID                uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	Template          string
	ToEmail           string
	ToName            string
	Data              map[string]any `gorm:"serializer:json;type:jsonb"`
	DedupeKey         *string
	Status            OutboxStatus
	Attempts          int
	NextAttemptAt     time.Time
	LockedUntil       *time.Time
	LastError         *string
	ProviderMessageID *string
	SentAt            *time.Time
	CreatedAt         time.Time
	UpdatedAt         time.Time
	// RecipientDiscreet and RecipientPaused are her choices at the claim
	// (ClaimOutbox), not columns of the outbox.
	RecipientDiscreet bool `gorm:"->"`
	RecipientPaused   bool `gorm:"->"`
}

func (OutboxMessage) TableName() string { return "outbox" }

package models

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
)

// Email templates the domain enqueues. emails/templates has one per name.
const (
	TemplateLoginLink     = "login_link"
	TemplatePasswordReset = "password_reset"
	TemplateCoachInvite   = "coach_invite"
	TemplateEraseCode     = "erase_code"
)

// enqueueEmail writes an outbox row inside tx, so the email exists exactly
// when the change that causes it commits. A non-empty dedupeKey makes the
// enqueue idempotent: a second row with the same key is silently skipped.
// An address whose owner erased her account is skipped too, in the same
// statement: someone else typing her address must not reach her.
func (s *Kernel) EnqueueEmail(tx *gorm.DB, template, toEmail, toName, dedupeKey string, data map[string]any) error {
	toEmail = strings.ToLower(strings.TrimSpace(toEmail))
	if data == nil {
		data = map[string]any{}
	}
	body, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("enqueue %s: %w", template, err)
	}
	var key *string
	if dedupeKey != "" {
		key = &dedupeKey
	}
	now := s.Now()
	return tx.Exec(`
		INSERT INTO outbox (template, to_email, to_name, data, dedupe_key, status, next_attempt_at, created_at, updated_at)
		SELECT ?, ?, ?, ?::jsonb, ?, ?, ?, ?, ?
		WHERE NOT EXISTS (SELECT 1 FROM erased_addresses WHERE hash = decode(?, 'hex'))
		ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING`,
		template, toEmail, toName, string(body), key, OutboxPending, now, now, now, hex.EncodeToString(ErasedAddressHash(toEmail))).Error
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

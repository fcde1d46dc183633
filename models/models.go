package models

import (
	"time"

	"github.com/google/uuid"
)

// Role of a coach account.
type Role string

const (
	RoleAdmin Role = "admin"
	RoleCoach Role = "coach"
)

type Coach struct {
	ID           uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	Email        string
	Name         string
	Role         Role
	PasswordHash *string
	Active       bool
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

type CoachSession struct {
	ID        uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	CoachID   uuid.UUID
	TokenHash []byte
	ExpiresAt time.Time
	RevokedAt *time.Time
	CreatedAt time.Time
}

// Purposes of a coach action token.
const (
	PurposePasswordReset = "password_reset"
	PurposeInvite        = "invite"
)

type CoachActionToken struct {
	ID        uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	CoachID   uuid.UUID
	Purpose   string
	TokenHash []byte
	ExpiresAt time.Time
	UsedAt    *time.Time
	CreatedAt time.Time
}

// ProgramStatus is the publication state of a program.
type ProgramStatus string

const (
	ProgramDraft     ProgramStatus = "draft"
	ProgramPublished ProgramStatus = "published"
	ProgramArchived  ProgramStatus = "archived"
)

type Program struct {
	ID              uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	Slug            string
	Title           string
	Summary         string
	Description     string
	Status          ProgramStatus
	FreeAccessUntil *time.Time
	PriceCents      int64
	Currency        string
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// FreeAccessOpen reports whether anyone may claim free access at now.
func (p *Program) FreeAccessOpen(now time.Time) bool {
	return p.Status == ProgramPublished && p.FreeAccessUntil != nil && now.Before(*p.FreeAccessUntil)
}

type Lesson struct {
	ID               uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	ProgramID        uuid.UUID
	Position         int
	Title            string
	Body             string
	BodyHTML         string `gorm:"column:body_html"`
	MediaURL         *string
	DurationSeconds  *int
	FreePreview      bool
	UnlockOffsetDays int
	Published        bool
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

type Participant struct {
	ID        uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	Email     string
	Name      string
	Timezone  string
	CreatedAt time.Time
	UpdatedAt time.Time
}

type ParticipantSession struct {
	ID            uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	ParticipantID uuid.UUID
	TokenHash     []byte
	ExpiresAt     time.Time
	RevokedAt     *time.Time
	CreatedAt     time.Time
}

type LoginLink struct {
	ID            uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	ParticipantID uuid.UUID
	TokenHash     []byte
	CodeHash      []byte
	CodeAttempts  int
	ExpiresAt     time.Time
	UsedAt        *time.Time
	CreatedAt     time.Time
}

// Sources of an access grant.
const (
	GrantFreeAccess    = "free_access"
	GrantEnrollment    = "enrollment"
	GrantComplimentary = "complimentary"
)

type AccessGrant struct {
	ID            uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	ParticipantID uuid.UUID
	ProgramID     uuid.UUID
	Source        string
	StartsAt      time.Time
	RevokedAt     *time.Time
	CreatedAt     time.Time
}

// Kinds of consent.
const (
	ConsentDisclaimer = "disclaimer"
	ConsentMarketing  = "marketing"
)

type Consent struct {
	ID            uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	ParticipantID uuid.UUID
	ProgramID     *uuid.UUID
	Kind          string
	TextVersion   string
	Granted       bool
	IP            *string `gorm:"column:ip;type:inet"`
	UserAgent     *string
	CreatedAt     time.Time
}

type LessonCompletion struct {
	ParticipantID uuid.UUID `gorm:"type:uuid;primaryKey"`
	LessonID      uuid.UUID `gorm:"type:uuid;primaryKey"`
	CompletedAt   time.Time
}

// Outbox statuses.
const (
	OutboxPending   = "pending"
	OutboxSending   = "sending"
	OutboxSent      = "sent"
	OutboxFailed    = "failed"
	OutboxCancelled = "cancelled"
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
	Status            string
	Attempts          int
	NextAttemptAt     time.Time
	LockedUntil       *time.Time
	LastError         *string
	ProviderMessageID *string
	SentAt            *time.Time
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

func (OutboxMessage) TableName() string { return "outbox" }

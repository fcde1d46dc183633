package models

import (
	"time"

	"github.com/google/uuid"
)

// Sequence triggers: the moment a step's offset counts from.
const (
	TriggerFreeAccessClaimed   = "free_access_claimed"  // her free-access grant starts
	TriggerEnrollmentActivated = "enrollment_activated" // her enrollment became active
	TriggerCohortStart         = "cohort_start"         // her cohort's starts_at (negative offsets: before)
	TriggerSessionReminder     = "session_reminder"     // each live session's starts_at
	TriggerLessonUnlocked      = "lesson_unlocked"      // each lesson's unlock moment for her
)

// Triggers lists every trigger, for validation and the API enum.
var Triggers = []string{TriggerFreeAccessClaimed, TriggerEnrollmentActivated, TriggerCohortStart, TriggerSessionReminder, TriggerLessonUnlocked}

// Sequence kinds. Marketing email honours unsubscribe; transactional email
// (receipts, reminders she asked for) does not. Both honour suppressions.
const (
	SequenceMarketing     = "marketing"
	SequenceTransactional = "transactional"
)

// Delivery statuses.
const (
	DeliveryScheduled = "scheduled"
	DeliverySending   = "sending"
	DeliverySent      = "sent"
	DeliveryFailed    = "failed"
	DeliveryCancelled = "cancelled"
	DeliverySkipped   = "skipped"
)

// Batch statuses.
const (
	BatchSending = "sending"
	BatchSent    = "sent"
	BatchFailed  = "failed"
)

// Suppression reasons.
const (
	SuppressionBounced    = "bounced"
	SuppressionComplained = "complained"
	SuppressionManual     = "manual"
)

// LateSkipAfter is how far past due a step may be when it is scheduled and
// still be sent: a woman who joins late gets what is still timely, not a
// burst of stale emails.
const LateSkipAfter = 12 * time.Hour

// DripPlaceholders are the names a step's subject and body may use as
// {{name}}. An unknown one is refused when the step is saved.
var DripPlaceholders = []string{
	"first_name", "program_title", "cohort_name", "portal_url",
	"lesson_title", "session_starts_at", "unsubscribe_url",
}

type EmailSequence struct {
	ID               uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	Name             string
	Trigger          string
	ProgramID        *uuid.UUID `gorm:"type:uuid"`
	CohortID         *uuid.UUID `gorm:"type:uuid"`
	Kind             string
	Active           bool
	ExitOnEnrollment bool
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

type EmailStep struct {
	ID            uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	SequenceID    uuid.UUID `gorm:"type:uuid"`
	Position      int
	OffsetMinutes *int
	OffsetDays    *int
	SendAtLocal   *string // "HH:MM", with OffsetDays
	Subject       string
	Body          string // Markdown with {{placeholders}}
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

type EmailDelivery struct {
	ID             uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	ParticipantID  uuid.UUID `gorm:"type:uuid"`
	Email          string
	SequenceID     *uuid.UUID `gorm:"type:uuid"`
	StepID         *uuid.UUID `gorm:"type:uuid"`
	SubjectKey     string
	EnrollmentID   *uuid.UUID `gorm:"type:uuid"`
	CohortID       *uuid.UUID `gorm:"type:uuid"`
	ProgramID      *uuid.UUID `gorm:"type:uuid"`
	LiveSessionID  *uuid.UUID `gorm:"type:uuid"`
	LessonID       *uuid.UUID `gorm:"type:uuid"`
	AnchorAt       time.Time
	Timezone       string
	Status         string
	SendAt         time.Time
	SentAt         *time.Time
	Attempts       int
	FirstAttemptAt *time.Time
	LockedUntil    *time.Time
	BatchID        *uuid.UUID `gorm:"type:uuid"`
	LastError      *string
	ResendID       *string
	Rendered       []byte `gorm:"type:jsonb"` // RenderedEmail as JSON, frozen in its batch
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

type EmailBatch struct {
	ID             uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	Status         string
	Size           int
	Attempts       int
	FirstAttemptAt *time.Time
	NextAttemptAt  time.Time
	LockedUntil    *time.Time
	LastError      *string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

type EmailSuppression struct {
	Email     string `gorm:"primaryKey"`
	Reason    string
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

// DripVars are the values of a step's placeholders for one recipient. Empty
// strings render as nothing (a lesson_title in a cohort email, say).
type DripVars struct {
	FirstName       string
	ProgramTitle    string
	CohortName      string
	PortalURL       string
	LessonTitle     string
	SessionStartsAt string // already in her local time, with the zone named
	UnsubscribeURL  string
}

// StepContent is what the coach wrote.
type StepContent struct {
	Subject string
	Body    string // Markdown with {{placeholders}}
}

// RenderedEmail is one recipient's email, exactly as handed to the provider.
// Headers carries List-Unsubscribe and List-Unsubscribe-Post on marketing
// email.
type RenderedEmail struct {
	Subject string            `json:"subject"`
	HTML    string            `json:"html"`
	Text    string            `json:"text"`
	Headers map[string]string `json:"headers,omitempty"`
}

// RenderRequest is one step for one recipient.
type RenderRequest struct {
	Step      StepContent
	Vars      DripVars
	Marketing bool
	// UnsubscribeMailto is the mailto: form of List-Unsubscribe for her
	// (marketing only); Vars.UnsubscribeURL is the https form.
	UnsubscribeMailto string
}

// DripRenderer renders a step for one recipient. emails/drip implements
// it; the domain uses it for previews, test sends and batch formation.
type DripRenderer interface {
	RenderStep(req RenderRequest) (RenderedEmail, error)
}

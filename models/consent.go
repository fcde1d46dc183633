package models

import (
	"net"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// ConsentKind is what a woman agreed to, or declined.
type ConsentKind string

const (
	ConsentDisclaimer ConsentKind = "disclaimer"
	ConsentMarketing  ConsentKind = "marketing"
)

type Consent struct {
	ID            uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	ParticipantID uuid.UUID
	ProgramID     *uuid.UUID
	Kind          ConsentKind
	TextVersion   string
	Granted       bool
	IP            *string `gorm:"column:ip;type:inet"`
	UserAgent     *string
	CreatedAt     time.Time
}

// Consent text versions. Bump one whenever the wording a woman agrees to
// changes, so each consent record names the text she actually saw.
const (
	DisclaimerVersion = "coaching-not-therapy-2026-11"
	MarketingVersion  = "marketing-email-2026-11"
)

// consentIP keeps only a parseable address: the column is inet, and evidence
// with a garbled address is worse than none.
func ConsentIP(ip string) *string {
	parsed := net.ParseIP(strings.TrimSpace(ip))
	if parsed == nil {
		return nil
	}
	s := parsed.String()
	return &s
}

// consentUserAgent is stored as valid UTF-8 of at most 1000 characters, the
// column's limit, since a header can hold anything.
func ConsentUserAgent(ua string) *string {
	ua = strings.ToValidUTF8(ua, "")
	if utf8.RuneCountInString(ua) > 1000 {
		ua = string([]rune(ua)[:1000])
	}
	if ua == "" {
		return nil
	}
	return &ua
}

// Clean is the client as consent evidence keeps it, for a task's payload:
// JSON would turn invalid UTF-8 into U+FFFD, which the evidence must not
// gain on its way to the worker.
func (c ClientInfo) Clean() ClientInfo {
	out := ClientInfo{IP: c.IP}
	if ua := ConsentUserAgent(c.UserAgent); ua != nil {
		out.UserAgent = *ua
	}
	return out
}

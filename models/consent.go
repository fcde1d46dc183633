package models

import (
	"net"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"gorm.io/gorm"
)

// ConsentKind is what a woman agreed to, or declined.
type ConsentKind string

const (
	ConsentDisclaimer ConsentKind = "disclaimer"
	ConsentPrivacy    ConsentKind = "privacy"
	ConsentMarketing  ConsentKind = "marketing"
)

// ConsentKinds are the kinds that have a document she can read.
var consentKinds = []ConsentKind{ConsentDisclaimer, ConsentPrivacy, ConsentMarketing}

// Valid reports whether k is a kind with a document.
func (k ConsentKind) Valid() bool {
	for _, c := range consentKinds {
		if k == c {
			return true
		}
	}
	return false
}

type Consent struct {
	ID            uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	ParticipantID uuid.UUID
	ProgramID     *uuid.UUID
	Kind          ConsentKind
	TextVersion   string
	// DocumentID is the consent document version she saw; nil only on
	// evidence older than documents being data.
	DocumentID *uuid.UUID
	Granted    bool
	IP         *string `gorm:"column:ip;type:inet"`
	UserAgent  *string
	CreatedAt  time.Time
}

// ConsentDocument is one version of a text she may agree to, kept exactly
// as she was shown it. Each edit is a new version; the newest is current.
type ConsentDocument struct {
	ID        uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	Kind      ConsentKind
	Version   int
	Body      string
	EditedBy  *uuid.UUID
	CreatedAt time.Time
}

// TextVersion is how a consent row names the document in text_version.
func (d ConsentDocument) TextVersion() string { return strconv.Itoa(d.Version) }

// CurrentConsentDocument is the newest version of kind's text, read in db
// (a transaction, so a consent recorded with it names what was current
// when it committed).
func CurrentConsentDocument(db *gorm.DB, kind ConsentKind) (*ConsentDocument, error) {
	var d ConsentDocument
	err := db.Where("kind = ?", kind).Order("version DESC").Take(&d).Error
	if err != nil {
		return nil, MapDBError(err, "consent document")
	}
	return &d, nil
}

// NewConsent is a consent row naming the document she saw, with the
// request's evidence.
func NewConsent(participantID uuid.UUID, programID *uuid.UUID, doc *ConsentDocument, granted bool, client ClientInfo, at time.Time) Consent {
	return Consent{ID: uuid.New(), ParticipantID: participantID, ProgramID: programID, Kind: doc.Kind, TextVersion: doc.TextVersion(),
		DocumentID: &doc.ID, Granted: granted, IP: ConsentIP(client.IP), UserAgent: ConsentUserAgent(client.UserAgent), CreatedAt: at}
}

// ConsentRequired is the error of a portal request made while a newer
// version of a text she must accept waits for her.
func ConsentRequired(kind ConsentKind, version int) *Error {
	e := E(KindForbidden, "consent_required", "The %s was updated (version %d). Read it and accept it to continue.", kind, version)
	e.ConsentKind, e.ConsentVersion = string(kind), version
	return e
}

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

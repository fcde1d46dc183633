// Package privacy is her data rights on top of the rooms: the consent
// texts she reads and accepts, the export of everything about her, her
// erasure, and the retention sweeps that forget what is no longer needed.
//
// Each room knows its own tables, so each contributes its share of her
// data through Part; a room (or table) added later plugs in by adding a
// Part to Deps, and the erase test, which greps every table of the
// schema, fails until it does.
package privacy

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/enroll"
	"github.com/grace-coaching/grace/models/people"
)

// Part is one room's share of her data. Both methods run inside the
// export's or erasure's transaction. EraseSubject must be idempotent, and
// must leave no value of d.Needles in its tables.
type Part interface {
	ExportSubject(tx *gorm.DB, d models.DataSubject) (map[string][]json.RawMessage, error)
	EraseSubject(tx *gorm.DB, d models.DataSubject) error
}

// Provider erases her data held outside the database (the payment
// provider's customers); it runs before the rows that locate it go.
type Provider interface {
	EraseProviderData(ctx context.Context, d models.DataSubject) error
}

// Retention is how long what is kept for a while is kept.
type Retention struct {
	// EmailBodies: sent emails' content (outbox data, frozen drip bodies).
	EmailBodies time.Duration
	// ConsentEvidence: the IP address and user agent of a consent.
	ConsentEvidence time.Duration
	// WebhookPayloads: Stripe and Resend event payloads.
	WebhookPayloads time.Duration
}

// DefaultRetention: 90 days of email bodies (enough to answer "what did
// you send me" while a program runs), consent evidence for 3 years (the
// usual limitation period for a claim about the consent, e.g. BGB §195,
// so the coach can still prove it when it may be disputed), 30 days of
// webhook payloads (long past any provider's redelivery window).
func DefaultRetention() Retention {
	return Retention{EmailBodies: 90 * 24 * time.Hour, ConsentEvidence: 3 * 365 * 24 * time.Hour, WebhookPayloads: 30 * 24 * time.Hour}
}

// Deps are what the privacy service builds on.
type Deps struct {
	People *people.Service
	Enroll *enroll.Service
	// Parts are every room's share, erased in this order: those that find
	// her rows by her address or deliveries before those that remove them.
	Parts     []Part
	Providers []Provider
	Retention Retention
}

// Service is her data rights.
type Service struct {
	*models.Kernel
	people    *people.Service
	parts     []Part
	providers []Provider
	retention Retention
}

func New(k *models.Kernel, d Deps) *Service {
	r := d.Retention
	def := DefaultRetention()
	if r.EmailBodies <= 0 {
		r.EmailBodies = def.EmailBodies
	}
	if r.ConsentEvidence <= 0 {
		r.ConsentEvidence = def.ConsentEvidence
	}
	if r.WebhookPayloads <= 0 {
		r.WebhookPayloads = def.WebhookPayloads
	}
	parts := append([]Part{}, d.Parts...)
	parts = append(parts, ownPart{k})
	return &Service{Kernel: k, people: d.People, parts: parts, providers: d.Providers, retention: r}
}

// subject reads who she is, by every value a row may name her by.
func (s *Service) subject(db *gorm.DB, participantID uuid.UUID) (models.DataSubject, error) {
	var p people.Participant
	if err := db.Where("id = ?", participantID).Take(&p).Error; err != nil {
		return models.DataSubject{}, models.MapDBError(err, "participant")
	}
	d := models.DataSubject{ParticipantID: p.ID, Email: p.Email, Name: p.Name}
	if err := db.Raw(`SELECT DISTINCT host(ip) FROM consents WHERE participant_id = ? AND ip IS NOT NULL`, p.ID).Scan(&d.IPs).Error; err != nil {
		return d, err
	}
	if err := db.Raw(`SELECT id FROM enrollments WHERE participant_id = ?`, p.ID).Scan(&d.EnrollmentIDs).Error; err != nil {
		return d, err
	}
	return d, nil
}

// GORM would expand a []byte argument in a VALUES list into one value per
// byte, so hashes travel as hex and are decoded by PostgreSQL.

// ownPart is this package's own tables: her erase code, and the
// fingerprint her address leaves.
type ownPart struct{ k *models.Kernel }

func (o ownPart) ExportSubject(tx *gorm.DB, d models.DataSubject) (map[string][]json.RawMessage, error) {
	rows, err := models.ExportRows(tx, "erase_codes", "participant_id = ?", []string{"code_hash"}, d.ParticipantID)
	if err != nil {
		return nil, err
	}
	return map[string][]json.RawMessage{"erase_codes": rows}, nil
}

func (o ownPart) EraseSubject(tx *gorm.DB, d models.DataSubject) error {
	if err := tx.Exec(`DELETE FROM erase_codes WHERE participant_id = ?`, d.ParticipantID).Error; err != nil {
		return err
	}
	// Her address and the row's new one: nothing is ever sent to either.
	for _, addr := range []string{d.Email, people.ErasedEmail(d)} {
		err := tx.Exec(`INSERT INTO erased_addresses (hash, created_at) VALUES (decode(?, 'hex'), ?) ON CONFLICT (hash) DO NOTHING`,
			hex.EncodeToString(models.ErasedAddressHash(addr)), o.k.Now()).Error
		if err != nil {
			return err
		}
	}
	return nil
}

package privacy

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/people"
)

// Erase codes: she confirms her erasure with a fresh code from her inbox,
// so a stolen session alone cannot erase her (nor a coach's mistake: the
// admin route is separate, and logged by the caller).
const (
	EraseCodeTTL         = 15 * time.Minute
	MaxEraseCodeAttempts = 5
)

var errInvalidEraseCode = models.E(models.KindForbidden, "invalid_code", "The code is wrong or expired. Check the latest email or request a new one.")

// eraseCodeLimit caps the codes one woman can have sent: each is an email.
var eraseCodeLimit = models.RateLimit{Max: 5, Window: time.Hour}

func eraseCodeHash(participantID uuid.UUID, code string) []byte {
	h := sha256.New()
	h.Write([]byte("grace:erase:"))
	h.Write(participantID[:])
	h.Write([]byte(code))
	return h.Sum(nil)
}

// RequestEraseCode emails her a fresh 6-digit code that confirms her
// erasure; it replaces any earlier one, with its attempts.
func (s *Service) RequestEraseCode(ctx context.Context, p *people.Participant) error {
	if err := s.Allow(ctx, "erase-code:participant:"+p.ID.String(), eraseCodeLimit); err != nil {
		return err
	}
	code := models.NewCode()
	now := s.Now()
	return s.InTx(ctx, func(tx *gorm.DB) error {
		err := tx.Exec(`
			INSERT INTO erase_codes (participant_id, code_hash, attempts, expires_at, created_at) VALUES (?, decode(?, 'hex'), 0, ?, ?)
			ON CONFLICT (participant_id) DO UPDATE SET code_hash = excluded.code_hash, attempts = 0,
				expires_at = excluded.expires_at, created_at = excluded.created_at`,
			p.ID, hex.EncodeToString(eraseCodeHash(p.ID, code)), now.Add(EraseCodeTTL), now).Error
		if err != nil {
			return fmt.Errorf("erase code: %w", err)
		}
		return s.EnqueueEmail(tx, models.TemplateEraseCode, p.Email, "", "", map[string]any{
			"code": code, "expires_minutes": int(EraseCodeTTL / time.Minute)})
	})
}

// EraseWithCode erases her once she gives the code of her latest email.
// A wrong code counts against it; after MaxEraseCodeAttempts even the
// right one is refused and she asks for a new one.
func (s *Service) EraseWithCode(ctx context.Context, p *people.Participant, code string) error {
	var c models.Checker
	if !isCode(code) {
		c.Add("code", "must be 6 digits")
	}
	if err := c.Err(); err != nil {
		return err
	}
	var ok bool
	err := s.InTx(ctx, func(tx *gorm.DB) error {
		var row struct {
			CodeHash []byte
			Attempts int
		}
		err := tx.Raw(`SELECT code_hash, attempts FROM erase_codes WHERE participant_id = ? AND expires_at > ? AND attempts < ? FOR UPDATE`,
			p.ID, s.Now(), MaxEraseCodeAttempts).Take(&row).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if subtle.ConstantTimeCompare(row.CodeHash, eraseCodeHash(p.ID, code)) != 1 {
			// Committed although the answer is an error: the attempt counts.
			return tx.Exec(`UPDATE erase_codes SET attempts = attempts + 1 WHERE participant_id = ?`, p.ID).Error
		}
		// The code is spent by the erasure itself (ownPart), not here: if
		// Stripe fails midway, the same code works for the retry.
		ok = true
		return nil
	})
	if err != nil {
		return err
	}
	if !ok {
		return errInvalidEraseCode
	}
	_, err = s.Erase(ctx, p.ID)
	return err
}

func isCode(code string) bool {
	if len(code) != 6 {
		return false
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return false
		}
	}
	return true
}

// Erase removes or irreversibly pseudonymises her personal data in every
// room, deletes her customer data at the payment provider, and leaves
// only the fingerprint of her address, so nothing is sent to it again.
// Payments stay as anonymous amounts. Erasing again is safe: it finds
// nothing left of her and says when she was first erased.
func (s *Service) Erase(ctx context.Context, participantID uuid.UUID) (time.Time, error) {
	d, err := s.subject(s.DB.WithContext(ctx), participantID)
	if err != nil {
		return time.Time{}, err
	}
	// Outside the transaction: a provider call must not hold row locks,
	// and a failure here leaves her rows to find her by on the next try.
	for _, p := range s.providers {
		if err := p.EraseProviderData(ctx, d); err != nil {
			return time.Time{}, err
		}
	}
	var erasedAt time.Time
	err = s.InTx(ctx, func(tx *gorm.DB) error {
		if err := tx.Exec(`SELECT 1 FROM participants WHERE id = ? FOR UPDATE`, participantID).Error; err != nil {
			return err
		}
		// Re-read under the lock: a claim may have changed her since.
		d, err := s.subject(tx, participantID)
		if err != nil {
			return err
		}
		for _, p := range s.parts {
			if err := p.EraseSubject(tx, d); err != nil {
				return err
			}
		}
		return tx.Raw(`SELECT erased_at FROM participants WHERE id = ?`, participantID).Row().Scan(&erasedAt)
	})
	if err != nil {
		return time.Time{}, err
	}
	s.Log.InfoContext(ctx, "participant erased", "participant_id", participantID)
	return erasedAt.UTC(), nil
}

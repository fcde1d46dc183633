package people

import (
	"context"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
)

// FreeAccessInput is the free-access sign-up form.
type FreeAccessInput struct {
	Email              string
	Name               string
	MarketingConsent   bool
	DisclaimerAccepted bool
}

// ParticipantPatch changes a participant's own profile; unset fields stay.
type ParticipantPatch struct {
	Name     models.Optional[string]
	Timezone models.Optional[string]
}

var errFreeAccessClosed = models.E(models.KindGone, "free_access_closed", "Free access to this program is closed.")

// ClaimFreeAccess is the lead magnet's sign-up: it finds or creates the
// participant, records her consents, grants her access from now and emails
// her a sign-in link, all in one transaction. Claiming again is safe: it only
// re-sends the sign-in email (and records a changed marketing choice), so the
// form's answer never reveals whether she had signed up before.
func (s *Service) ClaimFreeAccess(ctx context.Context, slug string, in FreeAccessInput, client models.ClientInfo) error {
	email := models.NormalizeEmail(in.Email)
	name := strings.TrimSpace(in.Name)
	var c models.Checker
	c.Email("email", email)
	c.Text("name", in.Name, 1, 200)
	if !in.DisclaimerAccepted {
		c.Add("disclaimer_accepted", "must be accepted: this workshop is coaching and education, not psychotherapy, and does not replace treatment by a therapist")
	}
	if err := c.Err(); err != nil {
		return err
	}
	if err := s.Allow(ctx, "free:ip:"+client.IP, s.Limits.PortalLinkPerIP); err != nil {
		return err
	}
	if err := s.Allow(ctx, "free:email:"+email, s.Limits.PortalLinkPerKey); err != nil {
		return err
	}

	var program catalog.Program
	err := s.DB.WithContext(ctx).Where("slug = ? AND status = ?", slug, catalog.ProgramPublished).Take(&program).Error
	if err != nil {
		return models.MapDBError(err, "program")
	}
	now := s.Now()
	if !program.FreeAccessOpen(now) {
		return errFreeAccessClosed
	}

	return s.InTx(ctx, func(tx *gorm.DB) error {
		p, err := s.FindOrCreateParticipant(tx, email, name)
		if err != nil {
			return err
		}
		// The partial unique index makes "one free-access grant per woman per
		// program" hold under concurrent claims: the loser inserts nothing.
		res := tx.Exec(`
			INSERT INTO access_grants (participant_id, program_id, source, starts_at, created_at)
			VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (participant_id, program_id) WHERE source = 'free_access' DO NOTHING`,
			p.ID, program.ID, GrantFreeAccess, now, now)
		if res.Error != nil {
			return models.MapDBError(res.Error, "access grant")
		}
		firstClaim := res.RowsAffected == 1
		if err := s.RecordClaimConsents(tx, p, program.ID, firstClaim, in.MarketingConsent, client); err != nil {
			return err
		}
		if firstClaim {
			if err := s.drip.OnFreeAccessClaimed(tx, p.ID, program.ID); err != nil {
				return err
			}
		}
		return s.sendLoginLink(tx, p, map[string]any{"program_title": program.Title})
	})
}

// findOrCreateParticipant is race-safe: of two concurrent sign-ups with one
// email, one inserts and the other waits for it and then reads its row.
func (s *Service) FindOrCreateParticipant(tx *gorm.DB, email, name string) (*Participant, error) {
	now := s.Now()
	// A newcomer's row comes back from the INSERT itself; only a returning
	// woman costs the second read.
	var p Participant
	err := tx.Raw(`
		INSERT INTO participants (email, name, created_at, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (email) DO NOTHING RETURNING *`, email, name, now, now).Scan(&p).Error
	if err != nil {
		return nil, models.MapDBError(err, "participant")
	}
	if p.ID != uuid.Nil {
		return &p, nil
	}
	if err := tx.Where("email = ?", email).Take(&p).Error; err != nil {
		return nil, models.MapDBError(err, "participant")
	}
	return &p, nil
}

// recordClaimConsents writes the consent evidence of a claim. A repeated
// claim adds a record only when her marketing choice changed, so the table
// stays a history of decisions rather than of form submissions.
func (s *Service) RecordClaimConsents(tx *gorm.DB, p *Participant, programID uuid.UUID, firstClaim, marketing bool, client models.ClientInfo) error {
	if !firstClaim {
		var latest []bool
		err := tx.Raw(`SELECT granted FROM consents WHERE participant_id = ? AND kind = ? ORDER BY created_at DESC, id DESC LIMIT 1`,
			p.ID, models.ConsentMarketing).Scan(&latest).Error
		if err != nil {
			return err
		}
		if len(latest) == 1 && latest[0] == marketing {
			return nil
		}
	}
	now := s.Now()
	consent := func(kind models.ConsentKind, granted bool) (models.Consent, error) {
		doc, err := models.CurrentConsentDocument(tx, kind)
		if err != nil {
			return models.Consent{}, err
		}
		return models.NewConsent(p.ID, &programID, doc, granted, client, now), nil
	}
	kinds := []models.ConsentKind{models.ConsentMarketing}
	if firstClaim {
		kinds = []models.ConsentKind{models.ConsentDisclaimer, models.ConsentMarketing}
	}
	var rows []models.Consent
	for _, k := range kinds {
		c, err := consent(k, k == models.ConsentDisclaimer || marketing)
		if err != nil {
			return err
		}
		rows = append(rows, c)
	}
	if err := tx.Create(&rows).Error; err != nil {
		return models.MapDBError(err, "consent")
	}
	if marketing {
		// A fresh yes on a form outranks an earlier unsubscribe: she asked
		// for the emails again, with the evidence recorded above.
		err := tx.Exec(`UPDATE participants SET marketing_unsubscribed_at = NULL WHERE id = ? AND marketing_unsubscribed_at IS NOT NULL`, p.ID).Error
		if err != nil {
			return models.MapDBError(err, "participant")
		}
	}
	return nil
}

// UpdateParticipant changes her name or time zone.
func (s *Service) UpdateParticipant(ctx context.Context, id uuid.UUID, patch ParticipantPatch) (*Participant, error) {
	var c models.Checker
	updates := map[string]any{}
	if patch.Name.Set {
		if patch.Name.Null {
			c.Add("name", "must not be null")
		} else {
			c.Text("name", patch.Name.Value, 1, 200)
			updates["name"] = strings.TrimSpace(patch.Name.Value)
		}
	}
	if patch.Timezone.Set {
		if patch.Timezone.Null {
			c.Add("timezone", "must not be null")
		} else {
			c.Timezone("timezone", patch.Timezone.Value)
			updates["timezone"] = patch.Timezone.Value
			updates["timezone_set"] = true // her choice now wins over her cohort's zone
		}
	}
	if err := c.Err(); err != nil {
		return nil, err
	}
	var p Participant
	err := s.InTx(ctx, func(tx *gorm.DB) error {
		if len(updates) > 0 {
			updates["updated_at"] = s.Now()
			res := tx.Model(&Participant{}).Where("id = ?", id).Updates(updates)
			if res.Error != nil {
				return models.MapDBError(res.Error, "participant")
			}
			if patch.Timezone.Set && res.RowsAffected == 1 {
				if err := s.drip.OnParticipantTimezoneSet(tx, id); err != nil {
					return err
				}
			}
		}
		return models.MapDBError(tx.Where("id = ?", id).Take(&p).Error, "participant")
	})
	if err != nil {
		return nil, err
	}
	return &p, nil
}

type Participant struct {
	ID       uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	Email    string
	Name     string
	Timezone string
	// TimezoneSet is true once she chose Timezone; until then local send
	// times fall back to her cohort's zone.
	TimezoneSet bool
	// UnsubscribeToken is generated by the database and never written by
	// GORM.
	UnsubscribeToken        string `gorm:"->"`
	MarketingUnsubscribedAt *time.Time
	CreatedAt               time.Time
	UpdatedAt               time.Time
}

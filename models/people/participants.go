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
	// Discreet turns discreet mode on for her address; a form can never
	// turn it off (see TurnOnDiscreet).
	Discreet bool
}

// ParticipantPatch changes a participant's own profile; unset fields stay.
type ParticipantPatch struct {
	Name     models.Optional[string]
	Timezone models.Optional[string]
	// Discreet is hers to switch either way, signed in.
	Discreet models.Optional[bool]
}

var errFreeAccessClosed = models.E(models.KindGone, "free_access_closed", "Free access to this program is closed.")

// ClaimFreeAccess is the lead magnet's sign-up. The form answers every
// caller alike, in the same time, whatever her address: it checks the
// input and the program (public facts), applies the same rate limits, and
// leaves one task (TaskFreeAccess) with the form and its consent
// evidence. The worker does the rest (runFreeAccess).
func (s *Service) ClaimFreeAccess(ctx context.Context, slug string, in FreeAccessInput, client models.ClientInfo) error {
	email := models.NormalizeEmail(in.Email)
	name := strings.TrimSpace(in.Name)
	var c models.Checker
	c.Email("email", email)
	c.PersonName("name", in.Name)
	if !in.DisclaimerAccepted {
		c.Add("disclaimer_accepted", "must be accepted: this workshop is coaching and education, not psychotherapy, and does not replace treatment by a therapist")
	}
	if err := c.Err(); err != nil {
		return err
	}
	if err := s.Allow(ctx, "free:ip:"+models.ClientKey(client.IP), s.Limits.PortalLinkPerIP); err != nil {
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
	if !program.FreeAccessOpen(s.Now()) {
		return errFreeAccessClosed
	}
	return s.EnqueueTask(ctx, TaskFreeAccess, freeAccessTask{ProgramID: program.ID, Email: email, Name: name,
		MarketingConsent: in.MarketingConsent, Discreet: in.Discreet, Client: client.Clean()})
}

// TaskFreeAccess is the task of a free-access claim.
const TaskFreeAccess = "people.free_access"

// freeAccessTask is a claim's form and the evidence of its request.
type freeAccessTask struct {
	ProgramID        uuid.UUID         `json:"program_id"`
	Email            string            `json:"email"`
	Name             string            `json:"name"`
	MarketingConsent bool              `json:"marketing_consent"`
	Discreet         bool              `json:"discreet"`
	Client           models.ClientInfo `json:"client"`
}

// runFreeAccess finds or creates the participant, records her consents,
// grants her access from now and emails her a sign-in link, in the task's
// transaction. Claiming again is safe: it only re-sends the sign-in email
// (and records a changed marketing choice). Access opens when the worker
// runs, a moment after the form; a program whose free access closed in
// between still honours the claim made while it was open.
func (s *Service) runFreeAccess(ctx context.Context, tx *gorm.DB, t models.Task) error {
	var in freeAccessTask
	if err := t.Decode(&in); err != nil {
		return err
	}
	var program catalog.Program
	if err := tx.Where("id = ?", in.ProgramID).Take(&program).Error; err != nil {
		return models.MapDBError(err, "program")
	}
	now := s.Now()
	p, err := s.FindOrCreateParticipant(tx, in.Email, in.Name)
	if err != nil {
		return err
	}
	if err := s.TurnOnDiscreet(tx, p, in.Discreet); err != nil {
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
	if err := s.RecordClaimConsents(tx, p, program.ID, firstClaim, in.MarketingConsent, in.Client); err != nil {
		return err
	}
	if firstClaim {
		if err := s.drip.OnFreeAccessClaimed(tx, p.ID, program.ID); err != nil {
			return err
		}
	}
	return s.sendLoginLink(tx, p, models.TaskDedupeKey(t, "login_link"), map[string]any{"program_title": program.Title})
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

// RecordClaimConsents writes the consent evidence of a form: the
// disclaimer she accepts on it (firstClaim) and her marketing choice. The
// form is anonymous, so its marketing answer decides nothing on its own: a
// yes only asks her, by email, to confirm (RequestMarketingOptIn), and a no
// withdraws nothing, since whoever typed her address may not be her. She
// stops marketing email with her own unsubscribe link.
func (s *Service) RecordClaimConsents(tx *gorm.DB, p *Participant, programID uuid.UUID, firstClaim, marketing bool, client models.ClientInfo) error {
	if firstClaim {
		doc, err := models.CurrentConsentDocument(tx, models.ConsentDisclaimer)
		if err != nil {
			return err
		}
		c := models.NewConsent(p.ID, &programID, doc, true, client, s.Now())
		if err := tx.Create(&c).Error; err != nil {
			return models.MapDBError(err, "consent")
		}
	}
	if !marketing {
		return nil
	}
	return s.RequestMarketingOptIn(tx, p, &programID)
}

// UpdateParticipant changes her name, time zone or discreet mode, and
// answers her profile as the portal shows it.
func (s *Service) UpdateParticipant(ctx context.Context, id uuid.UUID, patch ParticipantPatch) (*Me, error) {
	var c models.Checker
	updates := map[string]any{}
	if patch.Name.Set {
		if patch.Name.Null {
			c.Add("name", "must not be null")
		} else {
			c.PersonName("name", patch.Name.Value)
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
	if patch.Discreet.Set {
		if patch.Discreet.Null {
			c.Add("discreet", "must be true or false")
		} else {
			updates["discreet"] = patch.Discreet.Value
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
	return s.Me(ctx, &p), nil
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
	// Discreet: every email to her goes out with the neutral sender,
	// subject and preview, and her calendar feed with neutral titles; every
	// sender reads it at send time. A feed of her own (the podcast feed,
	// when there is one) follows it too.
	Discreet bool
	// PausedAt is set while she has paused her email; PausedUntil is when
	// the pause ends by itself, nil for "until I resume".
	PausedAt    *time.Time
	PausedUntil *time.Time
	// EmailVerifiedAt is when she first proved the address is hers (signed
	// in, or confirmed a marketing opt-in). Until then Name is only what
	// someone typed on a form.
	EmailVerifiedAt *time.Time
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// Paused reports whether her email is paused at now.
func (p *Participant) Paused(now time.Time) bool {
	return p.PausedAt != nil && (p.PausedUntil == nil || now.Before(*p.PausedUntil))
}

// TurnOnDiscreet switches discreet mode on for p when on is set, and does
// nothing otherwise. It is the only way a form reaches the setting: a form
// is anonymous, and whoever types her address must never be able to take
// her protection away, so a form can ask for discretion but never undo it.
func (s *Service) TurnOnDiscreet(tx *gorm.DB, p *Participant, on bool) error {
	if !on || p.Discreet {
		return nil
	}
	err := tx.Exec(`UPDATE participants SET discreet = true, updated_at = ? WHERE id = ? AND NOT discreet`, s.Now(), p.ID).Error
	if err != nil {
		return models.MapDBError(err, "participant")
	}
	p.Discreet = true
	return nil
}

// GreetingName is the name an email to her may greet her by: none until she
// has proven the address, since until then anyone may have typed it.
func (p *Participant) GreetingName() string {
	if p.EmailVerifiedAt == nil {
		return ""
	}
	return p.Name
}

package enroll

import (
	"context"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/people"
)

// WaitlistOfferTTL is how long a freed seat is held for the first woman on
// the waitlist before it passes to the next.
const WaitlistOfferTTL = 24 * time.Hour

// WaitlistInput is the waitlist form.
type WaitlistInput struct {
	Email string
	Name  string
	// Discreet turns discreet mode on for her address, never off
	// (people.TurnOnDiscreet).
	Discreet bool
}

// JoinWaitlist is the public waitlist form. It answers every caller alike,
// in the same time, whatever the address: it checks the input and that the
// cohort is still to come (public facts), applies the same rate limits,
// and leaves one task (TaskWaitlist); the worker puts her on the list
// (runWaitlist).
func (s *Service) JoinWaitlist(ctx context.Context, cohortID uuid.UUID, in WaitlistInput, client models.ClientInfo) error {
	email, name := models.NormalizeEmail(in.Email), in.Name
	trimmed := strings.TrimSpace(name)
	var c models.Checker
	c.Email("email", email)
	c.PersonName("name", name)
	if err := c.Err(); err != nil {
		return err
	}
	if err := s.allowForm(ctx, "waitlist", email, client); err != nil {
		return err
	}
	var cohort Cohort
	if err := s.DB.WithContext(ctx).Where("id = ? AND status <> ?", cohortID, CohortDraft).Take(&cohort).Error; err != nil {
		return models.MapDBError(err, "cohort")
	}
	if !waitlistOpen(&cohort, s.Now()) {
		return errEnrollmentClosed
	}
	return s.EnqueueTask(ctx, TaskWaitlist, formTask{CohortID: cohort.ID, Email: email, Name: trimmed, Discreet: in.Discreet, Client: client.Clean()})
}

// waitlistOpen: a cohort takes names for its waitlist until it ends.
func waitlistOpen(c *Cohort, now time.Time) bool {
	return c.Status != CohortCancelled && now.Before(c.EndsAt)
}

// runWaitlist puts her on the cohort's waitlist, unless she already has a
// place in it (then nothing changes, and nobody learns so). When seats are
// free the first woman waiting is offered one at once.
func (s *Service) runWaitlist(ctx context.Context, tx *gorm.DB, t models.Task) error {
	var in formTask
	if err := t.Decode(&in); err != nil {
		return err
	}
	now := s.Now()
	var cohort Cohort
	if err := tx.Where("id = ? AND status <> ?", in.CohortID, CohortDraft).Take(&cohort).Error; err != nil {
		return models.MapDBError(err, "cohort")
	}
	if !waitlistOpen(&cohort, now) {
		return nil // it closed since the form: nothing to wait for
	}
	p, err := s.people.FindOrCreateParticipant(tx, in.Email, in.Name)
	if err != nil {
		return err
	}
	if err := s.people.TurnOnDiscreet(tx, p, in.Discreet); err != nil {
		return err
	}
	// The live-key index answers "already has a place" atomically, also
	// against a concurrent join or checkout.
	res := tx.Exec(`
		INSERT INTO enrollments (cohort_id, participant_id, status, seat, currency, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (cohort_id, participant_id) WHERE status IN (`+liveStatusesSQL+`) DO NOTHING`,
		cohort.ID, p.ID, EnrollmentWaitlisted, SeatNone, cohort.Currency, now, now)
	if res.Error != nil {
		return models.MapDBError(res.Error, "enrollment")
	}
	if res.RowsAffected == 0 || cohort.SeatsLeft() == 0 || !cohort.EnrollmentOpen(now) {
		return nil
	}
	// Seats are free: the first woman waiting is offered one at once.
	return s.offerNextSeat(tx, cohort.ID)
}

// offerNextSeat holds a freed seat for the first woman waiting, for
// WaitlistOfferTTL, and emails her the link to pay for it.
func (s *Service) offerNextSeat(tx *gorm.DB, cohortID uuid.UUID) error {
	var next Enrollment
	err := tx.Raw(`SELECT * FROM enrollments WHERE cohort_id = ? AND status = ? ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED`,
		cohortID, EnrollmentWaitlisted).Scan(&next).Error
	if err != nil || next.ID == uuid.Nil {
		return err
	}
	now := s.Now()
	hold := now.Add(WaitlistOfferTTL)
	next.OfferedAt, next.HoldExpiresAt = &now, &hold
	if err := s.settleEnrollment(tx, &next, true); err != nil {
		if models.IsCode(err, "sold_out") { // the seat went to someone else first
			return nil
		}
		return err
	}
	var p people.Participant
	if err := tx.Where("id = ?", next.ParticipantID).Take(&p).Error; err != nil {
		return err
	}
	var c Cohort
	if err := tx.Where("id = ?", cohortID).Take(&c).Error; err != nil {
		return err
	}
	// The offer carries her own checkout link, so taking the seat needs
	// no form and no second email.
	token, err := s.newCheckoutLink(tx, cohortID, p.ID)
	if err != nil {
		return err
	}
	return s.EnqueueEmail(tx, TemplateWaitlistOffer, p.Email, p.GreetingName(), "waitlist_offer:"+next.ID.String(), map[string]any{
		"name": p.GreetingName(), "enrollment_id": next.ID.String(), "cohort_id": c.ID.String(), "cohort_name": c.Name,
		"token": token, "expires_hours": int(WaitlistOfferTTL / time.Hour),
	})
}

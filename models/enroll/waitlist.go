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

// JoinWaitlist puts her on the cohort's waitlist. The answer is the same
// whether or not she was already enrolled or waiting, so the form reveals
// nothing about anyone.
func (s *Service) JoinWaitlist(ctx context.Context, cohortID uuid.UUID, email, name string, client models.ClientInfo) error {
	email = models.NormalizeEmail(email)
	trimmed := strings.TrimSpace(name)
	var c models.Checker
	c.Email("email", email)
	c.PersonName("name", name)
	if err := c.Err(); err != nil {
		return err
	}
	if err := s.Allow(ctx, "waitlist:ip:"+models.ClientKey(client.IP), s.Limits.CheckoutPerIP); err != nil {
		return err
	}
	return s.InTx(ctx, func(tx *gorm.DB) error {
		now := s.Now()
		var cohort Cohort
		if err := tx.Where("id = ? AND status <> ?", cohortID, CohortDraft).Take(&cohort).Error; err != nil {
			return models.MapDBError(err, "cohort")
		}
		if cohort.Status == CohortCancelled || !now.Before(cohort.EndsAt) {
			return errEnrollmentClosed
		}
		p, err := s.people.FindOrCreateParticipant(tx, email, trimmed)
		if err != nil {
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
	})
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
	return s.EnqueueEmail(tx, TemplateWaitlistOffer, p.Email, p.GreetingName(), "waitlist_offer:"+next.ID.String(), map[string]any{
		"name": p.GreetingName(), "enrollment_id": next.ID.String(), "cohort_id": c.ID.String(), "cohort_name": c.Name,
		"email": p.Email, "expires_hours": int(WaitlistOfferTTL / time.Hour),
	})
}

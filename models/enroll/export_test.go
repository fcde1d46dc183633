package enroll

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/people"
)

// LiveStatusesSQL is liveStatusesSQL, for the test against the live key.
const LiveStatusesSQL = liveStatusesSQL

// participantFor finds or creates the participant with the form's address,
// as runCheckout does before a link is sent.
func (s *Service) participantFor(ctx context.Context, in CheckoutInput) (*people.Participant, error) {
	var p *people.Participant
	err := s.InTx(ctx, func(tx *gorm.DB) error {
		var err error
		p, err = s.people.FindOrCreateParticipant(tx, models.NormalizeEmail(in.Email), in.Name)
		return err
	})
	return p, err
}

// EnsureParticipant is the participant the form's task finds or creates
// before her link is sent, for tests that look at the hold alone.
func (s *Service) EnsureParticipant(ctx context.Context, in CheckoutInput) error {
	_, err := s.participantFor(ctx, in)
	return err
}

// HoldNewSeat runs the one-round-trip seat hold alone; a nil result with a
// nil error means it declined.
func (s *Service) HoldNewSeat(ctx context.Context, cohortID uuid.UUID, in CheckoutInput, client models.ClientInfo) (*CheckoutResult, error) {
	p, err := s.participantFor(ctx, in)
	if err != nil {
		return nil, err
	}
	var c Cohort
	return s.holdNewSeat(ctx, cohortID, p.ID, client, &c)
}

// HoldSeat runs the transaction path alone.
func (s *Service) HoldSeat(ctx context.Context, cohortID uuid.UUID, in CheckoutInput, client models.ClientInfo) (*CheckoutResult, error) {
	p, err := s.participantFor(ctx, in)
	if err != nil {
		return nil, err
	}
	var c Cohort
	return s.holdSeat(ctx, cohortID, p.ID, client, &c)
}

// CheckoutLinkFor is the checkout form and the worker's answer to it: the
// token of the checkout link emailed to the address, or "" when it was told
// it is enrolled already. Concurrent callers may run each other's tasks, so
// it waits until no task of the address is left.
func (s *Service) CheckoutLinkFor(ctx context.Context, cohortID uuid.UUID, in CheckoutInput, client models.ClientInfo) (string, error) {
	if err := s.StartCheckout(ctx, cohortID, in, client); err != nil {
		return "", err
	}
	email := models.NormalizeEmail(in.Email)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := s.RunTasksOnce(ctx); err != nil {
			return "", err
		}
		var left int64
		if err := s.DB.WithContext(ctx).Raw(`SELECT count(*) FROM tasks WHERE payload->>'email' = ? AND status <> 'failed'`, email).Scan(&left).Error; err != nil {
			return "", err
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("the task of %s was not done", email)
		}
		time.Sleep(5 * time.Millisecond)
	}
	var rows []struct {
		Template string
		Data     map[string]any `gorm:"serializer:json"`
	}
	err := s.DB.WithContext(ctx).Raw(`SELECT template, data FROM outbox WHERE to_email = ? AND template IN (?, ?) ORDER BY created_at DESC, id DESC LIMIT 1`,
		email, TemplateCheckoutLink, TemplateAlreadyEnrolled).Scan(&rows).Error
	if err != nil {
		return "", err
	}
	if len(rows) == 0 {
		return "", fmt.Errorf("nothing was emailed to %s", email)
	}
	if rows[0].Template == TemplateAlreadyEnrolled {
		return "", nil
	}
	token, _ := rows[0].Data["token"].(string)
	return token, nil
}

// CheckoutNow is the whole booking as she does it: the form, the email,
// and her click on its link. An address told it is enrolled already gets
// already_enrolled, as the link would answer.
func (s *Service) CheckoutNow(ctx context.Context, cohortID uuid.UUID, in CheckoutInput, client models.ClientInfo) (*CheckoutResult, error) {
	token, err := s.CheckoutLinkFor(ctx, cohortID, in, client)
	if err != nil {
		return nil, err
	}
	if token == "" {
		return nil, errAlreadyEnrolled
	}
	return s.RedeemCheckoutLink(ctx, token, client)
}

// JoinWaitlistNow is the waitlist form and the worker's turn after it.
func (s *Service) JoinWaitlistNow(ctx context.Context, cohortID uuid.UUID, email, name string, client models.ClientInfo) error {
	if err := s.JoinWaitlist(ctx, cohortID, WaitlistInput{Email: email, Name: name}, client); err != nil {
		return err
	}
	_, err := s.RunTasksOnce(ctx)
	return err
}

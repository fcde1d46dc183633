package enroll

import (
	"context"
	"strings"

	"github.com/google/uuid"

	"github.com/grace-coaching/grace/models"
)

// LiveStatusesSQL is liveStatusesSQL, for the test against the live key.
const LiveStatusesSQL = liveStatusesSQL

// HoldNewSeat runs the one-round-trip seat hold alone; a nil result with a
// nil error means it declined.
func (s *Service) HoldNewSeat(ctx context.Context, cohortID uuid.UUID, in CheckoutInput, client models.ClientInfo) (*CheckoutResult, error) {
	var c Cohort
	return s.holdNewSeat(ctx, cohortID, models.NormalizeEmail(in.Email), strings.TrimSpace(in.Name), in.MarketingConsent, in.Discreet, client, &c)
}

// HoldSeat runs the transaction path alone.
func (s *Service) HoldSeat(ctx context.Context, cohortID uuid.UUID, in CheckoutInput, client models.ClientInfo) (*CheckoutResult, error) {
	var c Cohort
	return s.holdSeat(ctx, cohortID, models.NormalizeEmail(in.Email), strings.TrimSpace(in.Name), in.MarketingConsent, in.Discreet, client, &c)
}

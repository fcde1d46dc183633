package drip

import (
	"context"

	"gorm.io/gorm"
)

// The scheduler's entry points for sequence and step CRUD, reachable from
// the external tests, each in a transaction of its own as CRUD would call
// it.

func (s *Service) ScheduleNewStepForTest(ctx context.Context, step *EmailStep) error {
	return s.InTx(ctx, func(tx *gorm.DB) error { return s.scheduleNewStep(tx, step) })
}

func (s *Service) ReplanStepForTest(ctx context.Context, step *EmailStep) error {
	return s.InTx(ctx, func(tx *gorm.DB) error { return s.replanStep(tx, step) })
}

func (s *Service) ScheduleSequenceForTest(ctx context.Context, step *EmailSequence) error {
	return s.InTx(ctx, func(tx *gorm.DB) error { return s.scheduleSequence(tx, step.ID) })
}

func (s *Service) CancelScheduledForTest(ctx context.Context, where string, args []any, code, detail string) error {
	return s.InTx(ctx, func(tx *gorm.DB) error { return s.cancelScheduled(tx, where, args, dripReason(code, detail)) })
}

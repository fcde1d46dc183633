package drip

import (
	"context"
	"time"

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

// UnlockAtSQLForTest evaluates the scheduler's SQL unlock moment for one
// grant start, drip delay and zone, in safe mode or not.
func UnlockAtSQLForTest(ctx context.Context, db *gorm.DB, start time.Time, days int, tz string, safe bool) (time.Time, error) {
	b := &schedSQL{safe: safe}
	q := b.with() + `x AS (SELECT CAST(? AS timestamptz) AS start, CAST(? AS int) AS days, CAST(? AS text) AS tz)
		SELECT ` + b.unlockAt("x.start", "x.days", "x.tz") + ` FROM x`
	var at time.Time
	err := db.WithContext(ctx).Raw(q, start, days, tz).Row().Scan(&at)
	return at, err
}

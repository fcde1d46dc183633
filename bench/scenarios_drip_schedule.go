package main

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/grace-coaching/grace/models/drip"
	"github.com/grace-coaching/grace/models/enroll"
)

// Bulk scenarios time one large statement per round instead of a stream of
// requests: what matters is rows written per second, once. Each round runs
// the baseline then Grace (interleaved over the rounds, medians reported)
// with the table emptied before each side. They have no target: the figures
// are reported, and only an error fails one.
type bulkScenario struct {
	name, grace, baseline string
	// setup builds the fixtures once and returns the two sides, each of
	// which writes its rows in one statement and returns how many.
	setup func(ctx context.Context, b *bench) (grace, baseline bulkSide, reset func(context.Context) error, err error)
}

type bulkSide func(ctx context.Context) (rows int64, err error)

var bulkScenarios = []bulkScenario{
	{
		name: "drip-schedule",
		grace: fmt.Sprintf("drip.Service.Backfill(cohort_start): %d active enrollments in one cohort x a 3-step sequence "+
			"(two local-time steps in mixed zones, one minute offset), one INSERT ... SELECT ... ON CONFLICT; rows/s in the rps column",
			dripBenchParticipants),
		baseline: "pgx: INSERT INTO email_deliveries ... SELECT FROM generate_series of the same row count (same foreign keys and indexes)",
		setup:    setupDripSchedule,
	},
}

// dripBenchParticipants is the acceptance figure: scheduling deliveries for
// 100,000 participants.
const dripBenchParticipants = 100_000

// runBulkScenarios runs the bulk scenarios cfg.run selects and returns
// their reports, in the same shape as the request scenarios' (rows/s as
// rps, rows per round as requests).
func runBulkScenarios(ctx context.Context, cfg config, b *bench) ([]scenarioReport, error) {
	var out []scenarioReport
	for _, s := range bulkScenarios {
		if !cfg.run.MatchString(s.name) {
			continue
		}
		r := scenarioReport{Name: s.name, Grace: s.grace, Baseline: s.baseline}
		if err := runBulk(ctx, cfg, b, s, &r); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			r.Error = err.Error()
		}
		r.judge()
		out = append(out, r)
	}
	return out, nil
}

// anyBulkScenario reports whether re selects a bulk scenario.
func anyBulkScenario(re *regexp.Regexp) bool {
	return slices.ContainsFunc(bulkScenarios, func(s bulkScenario) bool { return re.MatchString(s.name) })
}

func runBulk(ctx context.Context, cfg config, b *bench, s bulkScenario, r *scenarioReport) error {
	progress("%s: fixtures", s.name)
	grace, baseline, reset, err := s.setup(ctx, b)
	if err != nil {
		return err
	}
	var gs, bs []result
	for i := 1; i <= cfg.rounds; i++ {
		for _, side := range []struct {
			name string
			run  bulkSide
			into *[]result
		}{{"baseline", baseline, &bs}, {"grace", grace, &gs}} {
			if err := reset(ctx); err != nil {
				return err
			}
			progress("%s: round %d/%d %s", s.name, i, cfg.rounds, side.name)
			start := time.Now()
			rows, err := side.run(ctx)
			elapsed := time.Since(start)
			if err != nil {
				return fmt.Errorf("%s: %w", side.name, err)
			}
			*side.into = append(*side.into, result{Requests: rows, Elapsed: elapsed, RPS: float64(rows) / elapsed.Seconds()})
		}
	}
	if gs[0].Requests != bs[0].Requests {
		return fmt.Errorf("grace wrote %d rows and the baseline %d", gs[0].Requests, bs[0].Requests)
	}
	r.BaselineSide, r.GraceSide = summarize(bs), summarize(gs)
	// One statement per round: its latency is the round, not a percentile.
	r.BaselineSide.P50ms, r.BaselineSide.P99ms, r.GraceSide.P50ms, r.GraceSide.P99ms = 0, 0, 0, 0
	r.BaselineSide.Requests, r.GraceSide.Requests = bs[0].Requests, gs[0].Requests
	return reset(ctx)
}

// setupDripSchedule: a cohort with 100,000 active enrollments (written
// straight to the tables: seat counters are not the subject here) and a
// cohort_start sequence of three steps: a week before at 09:00 local, the
// day before at 09:00 local, and at the start. Half the women chose a zone
// (Los Angeles, Tehran, Sydney, Berlin in turn); the rest fall back to the
// cohort's. Every round schedules all 300,000 deliveries from an empty
// table through the real scheduling statement.
func setupDripSchedule(ctx context.Context, b *bench) (bulkSide, bulkSide, func(context.Context) error, error) {
	prog, err := b.program(ctx, "drip-schedule-bench", 1)
	if err != nil {
		return nil, nil, nil, err
	}
	start := time.Now().AddDate(0, 1, 0)
	cohort := &enroll.Cohort{
		ProgramID: prog.ID, Name: "Big cohort", StartsAt: start, EndsAt: start.AddDate(0, 0, 42), Timezone: "Europe/London",
		Capacity: 10000, PriceCents: 49000, Currency: "EUR", Status: enroll.CohortOpen,
	}
	db := b.db.WithContext(ctx)
	if err := db.Create(cohort).Error; err != nil {
		return nil, nil, nil, fmt.Errorf("create cohort: %w", err)
	}
	seq := &drip.EmailSequence{Name: "Onboarding", Trigger: drip.TriggerCohortStart, CohortID: &cohort.ID,
		Kind: drip.SequenceTransactional, Active: true}
	if err := db.Create(seq).Error; err != nil {
		return nil, nil, nil, fmt.Errorf("create sequence: %w", err)
	}
	minus7, minus1, zero, nine := -7, -1, 0, "09:00"
	steps := []drip.EmailStep{
		{SequenceID: seq.ID, Position: 1, OffsetDays: &minus7, SendAtLocal: &nine, Subject: "One week to go", Body: "Hello {{first_name}}"},
		{SequenceID: seq.ID, Position: 2, OffsetDays: &minus1, SendAtLocal: &nine, Subject: "Tomorrow", Body: "Hello {{first_name}}"},
		{SequenceID: seq.ID, Position: 3, OffsetMinutes: &zero, Subject: "We start", Body: "Hello {{first_name}}"},
	}
	if err := db.Create(&steps).Error; err != nil {
		return nil, nil, nil, fmt.Errorf("create steps: %w", err)
	}
	if _, err := b.pool.Exec(ctx, `
		WITH p AS (
			INSERT INTO participants (email, name, timezone, timezone_set)
			SELECT 'drip.bench.' || i || '@example.com', 'Woman ' || i,
				(ARRAY['America/Los_Angeles', 'Asia/Tehran', 'Australia/Sydney', 'Europe/Berlin'])[1 + i % 4], i % 2 = 0
			FROM generate_series(1, $2::int) i
			RETURNING id
		)
		INSERT INTO enrollments (cohort_id, participant_id, status, seat, amount_paid_cents, currency, paid_at)
		SELECT $1, p.id, 'active', 'paid', 49000, 'EUR', now() FROM p`, cohort.ID, dripBenchParticipants); err != nil {
		return nil, nil, nil, fmt.Errorf("create enrollments: %w", err)
	}
	if _, err := b.pool.Exec(ctx, `ANALYZE participants; ANALYZE enrollments; ANALYZE cohorts`); err != nil {
		return nil, nil, nil, err
	}

	// The baseline's rows point at real rows, as Grace's must.
	var one struct {
		participant, enrollment uuid.UUID
		email                   string
	}
	if err := b.pool.QueryRow(ctx, `SELECT e.participant_id, e.id, p.email FROM enrollments e JOIN participants p ON p.id = e.participant_id
		WHERE e.cohort_id = $1 LIMIT 1`, cohort.ID).Scan(&one.participant, &one.enrollment, &one.email); err != nil {
		return nil, nil, nil, err
	}
	rows := int64(dripBenchParticipants * len(steps))
	baseline := func(ctx context.Context) (int64, error) {
		tag, err := b.pool.Exec(ctx, `
			INSERT INTO email_deliveries (participant_id, email, sequence_id, step_id, subject_key, enrollment_id, cohort_id,
				program_id, anchor_at, timezone, status, send_at)
			SELECT $1, $2, $3, $4, 'baseline:' || i, $5, $6, $7, $8::timestamptz, 'UTC', 'scheduled', $8::timestamptz + make_interval(secs => i)
			FROM generate_series(1, $9::int) i`,
			one.participant, one.email, seq.ID, steps[0].ID, one.enrollment, cohort.ID, prog.ID, start, rows)
		return tag.RowsAffected(), err
	}
	grace := func(ctx context.Context) (int64, error) {
		return b.svc.Drip.Backfill(ctx, drip.TriggerCohortStart, nil, &cohort.ID)
	}
	reset := func(ctx context.Context) error {
		if _, err := b.pool.Exec(ctx, `TRUNCATE email_deliveries CASCADE`); err != nil {
			return err
		}
		// Each side starts without the other's WAL to flush; best effort,
		// since CHECKPOINT needs a privileged role.
		_, _ = b.pool.Exec(ctx, `CHECKPOINT`)
		return nil
	}
	return grace, baseline, reset, nil
}

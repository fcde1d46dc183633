package enroll

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
)

// errLiveRace aborts a transaction whose insert lost a race on
// enrollments_live_key; the caller retries and finds the winner's row.
var errLiveRace = errors.New("live enrollment inserted concurrently")

// staleHoldError aborts a checkout that found her own pending hold already
// past its expiry: the provider decides what became of it before she may
// start again.
type staleHoldError struct{ id uuid.UUID }

func (e *staleHoldError) Error() string { return "stale hold " + e.id.String() }

// liveStatusesSQL lists, as SQL, the statuses in which an enrollment keeps
// her place in its cohort: enrollments_live_key's predicate. It is the one
// copy in Go; queries repeat it literally rather than as a parameter, since
// ON CONFLICT infers that partial index, and the planner uses it, only from
// a predicate it can prove. TestLiveStatusesAreTheLiveKey checks it against
// the index the migrations built.
const liveStatusesSQL = "'" + string(EnrollmentPending) + "', '" + string(EnrollmentAwaitingPayment) + "', '" +
	string(EnrollmentActive) + "', '" + string(EnrollmentDisputed) + "', '" + string(EnrollmentWaitlisted) + "'"

// LinkWaitlist names, in a sold_out error's Links, the cohort whose
// waitlist she can join instead; the value is the cohort's id. The API
// layer turns it into a URL, so the domain knows no routes.
const LinkWaitlist = "waitlist"

// soldOut is errSoldOut naming the cohort whose waitlist she can join.
func soldOut(cohortID uuid.UUID) error {
	e := *errSoldOut
	e.Links = map[string]string{LinkWaitlist: cohortID.String()}
	return &e
}

// A woman with no place in the cohort taking a free seat (launch day's
// every checkout) is two statements sent together in one round trip, with
// no BEGIN or COMMIT: a pipeline up to its Sync is one implicit
// transaction, committed at the Sync if both succeed and rolled back if
// either fails. Nothing waits on the client in between, so the hot cohort
// row, locked by the second statement, is held only until the commit right
// behind it, as for a bare increment. Everything not the plain case is
// declined, writing nothing, and left to holdSeat.

// newHoldSQL writes her hold, each write hanging off the one before: the
// rate-limit hit, then the enrollment (settled: pending, holding a seat).
// ok is empty, so nothing is written, for a draft, closed or free cohort,
// one with no seat left at the snapshot, or when she has a live place in
// it; past the rate limit no enrollment is written and the seat statement
// declines. Her consents were recorded when she filled in the form
// (runCheckout). Foreign keys are checked at the end of this statement,
// before the cohort row is locked.
const newHoldSQL = `
WITH ok AS (
	SELECT c.id, c.program_id, c.name, c.price_cents, c.currency FROM cohorts c
	WHERE c.id = @cohort AND c.status = 'open' AND c.price_cents > 0
	  AND (c.enrollment_opens_at IS NULL OR c.enrollment_opens_at <= @now::timestamptz)
	  AND (c.enrollment_closes_at IS NULL OR @now::timestamptz < c.enrollment_closes_at)
	  AND c.seats_paid + c.seats_held < c.capacity
	  AND NOT EXISTS (
		SELECT 1 FROM enrollments e
		WHERE e.cohort_id = c.id AND e.participant_id = @participant::uuid
		  AND e.status IN (` + liveStatusesSQL + `))
), hit AS (
	-- allowIn's fixed window.
	INSERT INTO rate_limits AS r (key, window_start, hits)
	SELECT @limit_key, @now::timestamptz, 1 FROM ok WHERE @limited::boolean
	ON CONFLICT (key) DO UPDATE SET
		window_start = CASE WHEN r.window_start <= @now::timestamptz - make_interval(secs => @window_secs::float8) THEN excluded.window_start ELSE r.window_start END,
		hits         = CASE WHEN r.window_start <= @now::timestamptz - make_interval(secs => @window_secs::float8) THEN 1 ELSE r.hits + 1 END
	RETURNING hits
), allowed AS (
	SELECT ok.* FROM ok WHERE NOT @limited::boolean OR EXISTS (SELECT 1 FROM hit WHERE hit.hits <= @max::int)
), enrollment AS (
	INSERT INTO enrollments (id, cohort_id, participant_id, status, seat, hold_expires_at, currency, dispute_status, created_at, updated_at)
	SELECT @enrollment::uuid, allowed.id, @participant::uuid, @status, 'held', @hold::timestamptz, allowed.currency, 'none', @now::timestamptz, @now::timestamptz
	FROM allowed
	RETURNING participant_id
)
SELECT ok.name, ok.price_cents, ok.currency, (SELECT participant_id FROM enrollment) FROM ok`

// newHoldSeatSQL is moveSeat's guarded UPDATE from none to held, taken
// only for the enrollment newHoldSQL wrote. Without a seat it divides by
// zero: the error rolls back the pipeline's transaction, and so every
// write of newHoldSQL (plain SQL has no RAISE).
const newHoldSeatSQL = `
WITH seat AS (
	UPDATE cohorts SET seats_held = seats_held + 1, updated_at = now()
	WHERE id = $1 AND seats_paid + seats_held < capacity
	  AND EXISTS (SELECT 1 FROM enrollments WHERE id = $2)
	RETURNING id
)
SELECT 1 / count(*)::int FROM seat`

// pgDivisionByZero is how newHoldSeatSQL declines.
const pgDivisionByZero = "22012"

// holdNewSeat runs newHoldSQL and newHoldSeatSQL. A nil result with a nil
// error means they declined and wrote nothing: holdSeat decides, and says
// why.
func (s *Service) holdNewSeat(ctx context.Context, cohortID, participantID uuid.UUID, client models.ClientInfo, cohort *Cohort) (*CheckoutResult, error) {
	now := s.Now()
	hold := now.Add(CheckoutHoldTTL)
	e := &Enrollment{ID: uuid.New(), CohortID: cohortID, ParticipantID: participantID, Seat: SeatHeld, HoldExpiresAt: &hold, DisputeStatus: DisputeNone, CreatedAt: now, UpdatedAt: now}
	e.Status = deriveStatus(e)
	limit := s.Limits.CheckoutPerIP
	var written *uuid.UUID
	declined := false
	err := s.WithPgx(ctx, func(conn *pgx.Conn) error {
		b := &pgx.Batch{}
		b.Queue(newHoldSQL, pgx.NamedArgs{
			"cohort": cohortID, "now": now, "participant": participantID,
			"limited": limit.Max > 0, "limit_key": models.RateLimitKey("checkout:ip:" + models.ClientKey(client.IP)), "max": limit.Max, "window_secs": limit.Window.Seconds(),
			"enrollment": e.ID, "status": e.Status, "hold": hold,
		}).QueryRow(func(row pgx.Row) error {
			err := row.Scan(&cohort.Name, &cohort.PriceCents, &cohort.Currency, &written)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			return err
		})
		b.Queue(newHoldSeatSQL, cohortID, e.ID)
		err := conn.SendBatch(ctx, b).Close()
		if code, _ := models.PgCode(err); code == pgDivisionByZero || models.IsUniqueViolation(err, "enrollments_live_key") {
			declined = true // a concurrent click of hers is found by holdSeat
			return nil
		}
		return err
	})
	if err != nil {
		return nil, models.MapDBError(err, "enrollment")
	}
	if declined {
		return nil, nil
	}
	if written == nil { // the seat statement checks the enrollment exists
		return nil, errors.New("hold taken without its enrollment")
	}
	cohort.ID = cohortID
	e.Currency = cohort.Currency
	return &CheckoutResult{Enrollment: e, ExpiresAt: hold, Created: true}, nil
}

// holdSeat is the checkout's transaction. cohort is filled for the caller.
func (s *Service) holdSeat(ctx context.Context, cohortID, participantID uuid.UUID, client models.ClientInfo, cohort *Cohort) (*CheckoutResult, error) {
	var res *CheckoutResult
	err := s.InTx(ctx, func(tx *gorm.DB) error {
		now := s.Now()
		// Counted in the checkout's own commit: one fsync fewer per hold on
		// a launch-day cohort. A refused attempt (sold out) rolls its hit
		// back, which is harmless: the limit exists to stop seat hoarding,
		// and every hold that succeeds is counted.
		if err := s.AllowIn(tx, "checkout:ip:"+models.ClientKey(client.IP), s.Limits.CheckoutPerIP); err != nil {
			return err
		}
		if err := tx.Where("id = ? AND status <> ?", cohortID, CohortDraft).Take(cohort).Error; err != nil {
			return models.MapDBError(err, "cohort")
		}
		if cohort.PriceCents > 0 && s.payments == nil {
			return errPaymentsUnavailable
		}
		if !cohort.EnrollmentOpen(now) {
			return errEnrollmentClosed
		}
		var existing Enrollment
		// Her row of the live key: a launch-day cohort's thousands of holds
		// are never scanned.
		err := tx.Raw(`
			SELECT * FROM enrollments
			WHERE cohort_id = ? AND participant_id = ? AND status IN (`+liveStatusesSQL+`)
			FOR UPDATE`, cohortID, participantID).Scan(&existing).Error
		if err != nil {
			return err
		}
		if existing.ID != uuid.Nil {
			r, err := s.resumeCheckout(tx, &existing, cohort, now)
			if err != nil {
				return err
			}
			res = r
			return nil
		}
		// Cheap refusal before any write: the guarded UPDATE below is the
		// real check, this only spares the hot row a queue of losers.
		if cohort.SeatsLeft() == 0 {
			return soldOut(cohort.ID)
		}
		if cohort.PriceCents == 0 {
			// Nothing to pay: her place is written as a waiting one and
			// settled at once, like a payment, so she gets the seat, her
			// access and the welcome email the same way.
			e := &Enrollment{ID: uuid.New(), CohortID: cohort.ID, ParticipantID: participantID, Status: EnrollmentWaitlisted, Seat: SeatNone,
				Currency: cohort.Currency, DisputeStatus: DisputeNone, CreatedAt: now, UpdatedAt: now}
			if err := tx.Create(e).Error; err != nil {
				if models.IsUniqueViolation(err, "enrollments_live_key") {
					return errLiveRace
				}
				return models.MapDBError(err, "enrollment")
			}
			r, err := s.enrolFree(tx, e, cohort, now)
			if err != nil {
				return err
			}
			r.Created = true
			res = r
			return nil
		}
		// A new hold is written in its settled state (pending, holding a
		// seat); only the seat counter is left to move, and that guarded
		// UPDATE is the last statement before commit.
		hold := now.Add(CheckoutHoldTTL)
		e := &Enrollment{ID: uuid.New(), CohortID: cohort.ID, ParticipantID: participantID, Seat: SeatHeld,
			HoldExpiresAt: &hold, Currency: cohort.Currency, DisputeStatus: DisputeNone, CreatedAt: now, UpdatedAt: now}
		e.Status = deriveStatus(e)
		if err := tx.Create(e).Error; err != nil {
			if models.IsUniqueViolation(err, "enrollments_live_key") {
				return errLiveRace
			}
			return models.MapDBError(err, "enrollment")
		}
		if _, err := moveSeat(tx, e, SeatNone, SeatHeld, true); err != nil {
			if models.IsCode(err, "sold_out") {
				return soldOut(cohort.ID)
			}
			return err
		}
		res = &CheckoutResult{Enrollment: e, ExpiresAt: hold, Created: true}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// resumeCheckout decides what a checkout finds when she already holds a
// live place in the cohort (read FOR UPDATE in tx).
func (s *Service) resumeCheckout(tx *gorm.DB, e *Enrollment, cohort *Cohort, now time.Time) (*CheckoutResult, error) {
	switch e.Status {
	case EnrollmentActive, EnrollmentAwaitingPayment, EnrollmentDisputed:
		return nil, errAlreadyEnrolled
	case EnrollmentWaitlisted:
		// She is waiting and a seat is free after all (capacity was raised):
		// she may take it like anyone else.
		if cohort.PriceCents == 0 {
			return s.enrolFree(tx, e, cohort, now)
		}
		hold := now.Add(CheckoutHoldTTL)
		e.HoldExpiresAt = &hold
		if err := s.settleEnrollment(tx, e, true); err != nil {
			if models.IsCode(err, "sold_out") {
				return nil, soldOut(cohort.ID)
			}
			return nil, err
		}
		return &CheckoutResult{Enrollment: e, ExpiresAt: hold}, nil
	}
	// Pending.
	if !e.HoldExpiresAt.After(now) {
		return nil, &staleHoldError{id: e.ID}
	}
	if e.CheckoutSessionID == nil && cohort.PriceCents == 0 {
		return s.enrolFree(tx, e, cohort, now) // her waitlist offer
	}
	if e.CheckoutSessionID == nil {
		// A waitlist offer, or a checkout that crashed before reaching the
		// provider: a session is opened now, expiring with the hold. The
		// provider needs at least 30 minutes, so a nearly lapsed hold is
		// stretched to that; a session never outlives the hold.
		hold := *e.HoldExpiresAt
		if minHold := now.Add(CheckoutHoldTTL); hold.Before(minHold) {
			hold = minHold
		}
		if maxHold := now.Add(maxSessionTTL); hold.After(maxHold) {
			hold = maxHold
		}
		if !hold.Equal(*e.HoldExpiresAt) {
			if err := tx.Model(&Enrollment{}).Where("id = ?", e.ID).Updates(map[string]any{"hold_expires_at": hold, "updated_at": now}).Error; err != nil {
				return nil, models.MapDBError(err, "enrollment")
			}
			e.HoldExpiresAt = &hold
		}
	}
	return &CheckoutResult{Enrollment: e, ExpiresAt: *e.HoldExpiresAt}, nil
}

// enrolFree gives her, read FOR UPDATE in tx, a seat in a free cohort at
// once. Nothing is owed, so the payment is recorded as taken now with an
// amount of zero (what Stripe reports as no_payment_required): she is
// active on a paid seat, with her access and welcome email, and nothing
// is refundable. The seat is taken only if free, never beyond capacity.
func (s *Service) enrolFree(tx *gorm.DB, e *Enrollment, cohort *Cohort, now time.Time) (*CheckoutResult, error) {
	e.PaidAt = &now
	if err := s.settleEnrollment(tx, e, true); err != nil {
		if models.IsCode(err, "sold_out") {
			return nil, soldOut(cohort.ID)
		}
		return nil, err
	}
	// The page she would come back to from paying, so that clients need
	// no special case; the place lasts as long as the cohort.
	return &CheckoutResult{Enrollment: e, CheckoutURL: s.successURL(e.ID), ExpiresAt: cohort.EndsAt}, nil
}

package enroll

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/people"
)

// CheckoutHoldTTL is how long a checkout holds a seat. Stripe accepts a
// session expiry of 30 minutes to 24 hours from now; the extra minute keeps
// us inside that range despite clock skew and the round trip.
const CheckoutHoldTTL = 31 * time.Minute

// maxSessionTTL is Stripe's longest checkout session.
const maxSessionTTL = 24 * time.Hour

var (
	errPaymentsUnavailable = models.E(models.KindUnavailable, "payments_unavailable", "Online payment is not available right now. Please try again later or contact the coach.")
	errEnrollmentClosed    = models.E(models.KindConflict, "enrollment_closed", "Enrollment for this cohort is closed.")
	errAlreadyEnrolled     = models.E(models.KindConflict, "already_enrolled", "You are already enrolled in this cohort. Sign in to the portal to see it.")
	errCheckoutPending     = models.E(models.KindConflict, "checkout_pending", "Your previous checkout for this cohort is still being closed. Please try again in a few minutes.")
	errNotRefundable       = models.E(models.KindConflict, "not_refundable", "This enrollment has no payment left to refund.")
	errNotCancellable      = models.E(models.KindConflict, "not_cancellable", "This enrollment has already ended (expired or refunded).")
)

// errLiveRace aborts a transaction whose insert lost a race on
// enrollments_live_key; the caller retries and finds the winner's row.
var errLiveRace = errors.New("live enrollment inserted concurrently")

// staleHoldError aborts a checkout that found her own pending hold already
// past its expiry: the provider decides what became of it before she may
// start again.
type staleHoldError struct{ id uuid.UUID }

func (e *staleHoldError) Error() string { return "stale hold " + e.id.String() }

// liveStatuses are the statuses enrollments_live_key covers.
var liveStatuses = []string{EnrollmentPending, EnrollmentAwaitingPayment, EnrollmentActive, EnrollmentDisputed, EnrollmentWaitlisted}

func paymentProviderError(err error) error {
	return &models.Error{Kind: models.KindUpstream, Code: "payment_provider_error",
		Message: "The payment provider could not be reached. No payment was taken; please try again in a moment.", Err: err}
}

// soldOut is errSoldOut naming where to join the waitlist of the cohort.
func soldOut(cohortID uuid.UUID) error {
	e := *errSoldOut
	e.Links = map[string]string{"waitlist_url": "/v1/cohorts/" + cohortID.String() + "/waitlist"}
	return &e
}

// CheckoutInput is the checkout form.
type CheckoutInput struct {
	Email              string
	Name               string
	DisclaimerAccepted bool
	MarketingConsent   bool
}

// CheckoutResult is where to send her to pay (for a free cohort, where she
// lands enrolled; ExpiresAt is then the cohort's end). Created is false
// when an earlier checkout of hers (a double click, a retry, a waitlist
// offer) was found and resumed.
type CheckoutResult struct {
	Enrollment  *Enrollment
	CheckoutURL string
	ExpiresAt   time.Time
	Created     bool
}

// StartCheckout holds a seat for her and opens a hosted checkout for it.
//
// The seat is held in one short transaction (cohort open, her place, her
// consents, the guarded seat UPDATE last so the hot cohort row is locked
// only until commit; for a new woman, all of it in one round trip, see
// holdNewSeat); the provider is called after commit, never inside a
// transaction. A second checkout while her hold is live resumes it, so a
// double click never takes a second seat.
//
// A free cohort (price 0) has nothing to pay: she is enrolled at once, and
// CheckoutURL is the page a paid checkout returns to. It needs no payment
// provider; a paid cohort without one is payments_unavailable.
func (s *Service) StartCheckout(ctx context.Context, cohortID uuid.UUID, in CheckoutInput, client models.ClientInfo) (*CheckoutResult, error) {
	email := models.NormalizeEmail(in.Email)
	name := strings.TrimSpace(in.Name)
	var c models.Checker
	c.Email("email", email)
	c.Text("name", in.Name, 1, 200)
	if !in.DisclaimerAccepted {
		c.Add("disclaimer_accepted", "must be accepted: this program is coaching and education, not psychotherapy, and does not replace treatment by a therapist")
	}
	if err := c.Err(); err != nil {
		return nil, err
	}
	var (
		res    *CheckoutResult
		cohort Cohort
		err    error
	)
	// The common case, a new woman and a free seat, is one round trip; any
	// other case is declined by it without a trace and decided below.
	if s.payments != nil {
		res, err = s.holdNewSeat(ctx, cohortID, email, name, in.MarketingConsent, client, &cohort)
		if err != nil {
			return nil, err
		}
	}
	// A lost insert race or a stale hold of hers is resolved and the
	// transaction run again; twice is enough for both.
	for attempt := 0; res == nil && attempt < 3; attempt++ {
		res, err = s.holdSeat(ctx, cohortID, email, name, in.MarketingConsent, client, &cohort)
		var stale *staleHoldError
		switch {
		case errors.Is(err, errLiveRace):
			continue
		case errors.As(err, &stale):
			if attempt == 2 {
				return nil, errCheckoutPending
			}
			if _, err := s.resolveHold(ctx, stale.id, true); err != nil {
				return nil, err
			}
			continue
		}
		break
	}
	if errors.Is(err, errLiveRace) {
		return nil, errCheckoutPending
	}
	if err != nil {
		return nil, err
	}
	e := res.Enrollment
	if res.CheckoutURL != "" { // enrolled in a free cohort: nothing to pay
		return res, nil
	}
	if e.CheckoutURL != nil {
		res.CheckoutURL = *e.CheckoutURL
		return res, nil
	}
	if s.payments == nil { // holdSeat refuses a paid cohort first
		return nil, errPaymentsUnavailable
	}

	sess, err := s.payments.CreateCheckoutSession(ctx, CheckoutRequest{
		EnrollmentID:   e.ID,
		CustomerEmail:  email,
		ProductName:    cohort.Name,
		AmountCents:    cohort.PriceCents,
		Currency:       cohort.Currency,
		SuccessURL:     s.successURL(e.ID),
		CancelURL:      s.baseURL + "/cohorts/" + cohort.ID.String(),
		ExpiresAt:      *e.HoldExpiresAt,
		IdempotencyKey: "checkout:" + e.ID.String(),
	})
	if err != nil {
		s.Log.WarnContext(ctx, "create checkout session failed", "enrollment_id", e.ID, "err", err)
		// A hold she was offered or resumed stays hers (the sweeper closes it
		// if she never pays); a fresh one goes back to the next woman.
		// The release runs detached, with its own bound: ctx may be what
		// cut the call off (she closed the tab, or shutdown cancelled it).
		if res.Created {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseHoldTimeout)
			if rerr := s.releaseUnstartedHold(rctx, e.ID); rerr != nil {
				s.Log.ErrorContext(ctx, "release hold after provider failure", "enrollment_id", e.ID, "err", rerr)
			}
			cancel()
		}
		return nil, paymentProviderError(err)
	}
	if err := s.recordCheckoutSession(ctx, e.ID, sess); err != nil {
		return nil, models.MapDBError(err, "enrollment")
	}
	e.CheckoutSessionID, e.CheckoutURL = &sess.ID, &sess.URL
	res.CheckoutURL = sess.URL
	return res, nil
}

// A new woman taking a free seat (launch day's every checkout) is two
// statements sent together in one round trip, with no BEGIN or COMMIT: a
// pipeline up to its Sync is one implicit transaction, committed at the
// Sync if both succeed and rolled back if either fails. Nothing waits on
// the client in between, so the hot cohort row, locked by the second
// statement, is held only until the commit right behind it, as for a bare
// increment. Everything not the plain case is declined, writing nothing,
// and left to holdSeat.

// newHoldSQL writes her hold, each write hanging off the one before: the
// rate-limit hit, the participant, her consents, the enrollment (settled:
// pending, holding a seat). ok is empty, so nothing is written, for a
// draft, closed or free cohort, one with no seat left at the snapshot, or
// when she has a live place in it; past the rate limit, or when her email
// signed up since the snapshot, no enrollment is written and the seat
// statement declines. Foreign keys are checked at the end of this
// statement, before the cohort row is locked.
const newHoldSQL = `
WITH ok AS (
	SELECT c.id, c.program_id, c.name, c.price_cents, c.currency FROM cohorts c
	WHERE c.id = @cohort AND c.status = 'open' AND c.price_cents > 0
	  AND (c.enrollment_opens_at IS NULL OR c.enrollment_opens_at <= @now::timestamptz)
	  AND (c.enrollment_closes_at IS NULL OR @now::timestamptz < c.enrollment_closes_at)
	  AND c.seats_paid + c.seats_held < c.capacity
	  AND NOT EXISTS (
		SELECT 1 FROM enrollments e
		WHERE e.cohort_id = c.id AND e.participant_id = (SELECT id FROM participants WHERE email = @email)
		  AND e.status IN ('pending', 'awaiting_payment', 'active', 'disputed', 'waitlisted'))
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
), new_participant AS (
	INSERT INTO participants (email, name, created_at, updated_at)
	SELECT @email, @name, @now::timestamptz, @now::timestamptz FROM allowed
	ON CONFLICT (email) DO NOTHING
	RETURNING id
), participant AS (
	-- A returning woman is read at the snapshot.
	SELECT id FROM new_participant
	UNION ALL
	SELECT p.id FROM participants p, allowed WHERE p.email = @email
), consent AS (
	INSERT INTO consents (participant_id, program_id, kind, text_version, granted, ip, user_agent, created_at)
	SELECT participant.id, allowed.program_id, v.kind, v.text_version, v.granted, @ip::inet, @user_agent, @now::timestamptz
	FROM participant, allowed, (VALUES
		('disclaimer', @disclaimer_version::text, true),
		('marketing', @marketing_version::text, @marketing::boolean)) AS v (kind, text_version, granted)
	RETURNING participant_id
), enrollment AS (
	INSERT INTO enrollments (id, cohort_id, participant_id, status, seat, hold_expires_at, currency, dispute_status, created_at, updated_at)
	SELECT @enrollment::uuid, allowed.id, consent.participant_id, @status, 'held', @hold::timestamptz, allowed.currency, 'none', @now::timestamptz, @now::timestamptz
	FROM allowed, (SELECT participant_id FROM consent LIMIT 1) AS consent
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
func (s *Service) holdNewSeat(ctx context.Context, cohortID uuid.UUID, email, name string, marketing bool, client models.ClientInfo, cohort *Cohort) (*CheckoutResult, error) {
	now := s.Now()
	hold := now.Add(CheckoutHoldTTL)
	e := &Enrollment{ID: uuid.New(), CohortID: cohortID, Seat: SeatHeld, HoldExpiresAt: &hold, DisputeStatus: DisputeNone, CreatedAt: now, UpdatedAt: now}
	e.Status = deriveStatus(e)
	limit := s.Limits.CheckoutPerIP
	var participantID *uuid.UUID
	declined := false
	err := s.WithPgx(ctx, func(conn *pgx.Conn) error {
		b := &pgx.Batch{}
		b.Queue(newHoldSQL, pgx.NamedArgs{
			"cohort": cohortID, "now": now, "email": email, "name": name,
			"limited": limit.Max > 0, "limit_key": "checkout:ip:" + client.IP, "max": limit.Max, "window_secs": limit.Window.Seconds(),
			"ip": models.ConsentIP(client.IP), "user_agent": models.ConsentUserAgent(client.UserAgent), "marketing": marketing,
			"disclaimer_version": models.DisclaimerVersion, "marketing_version": models.MarketingVersion,
			"enrollment": e.ID, "status": e.Status, "hold": hold,
		}).QueryRow(func(row pgx.Row) error {
			err := row.Scan(&cohort.Name, &cohort.PriceCents, &cohort.Currency, &participantID)
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
	if participantID == nil { // the seat statement checks the enrollment exists
		return nil, errors.New("hold taken without its enrollment")
	}
	cohort.ID = cohortID
	e.ParticipantID, e.Currency = *participantID, cohort.Currency
	return &CheckoutResult{Enrollment: e, ExpiresAt: hold, Created: true}, nil
}

// recordCheckoutSession stores the session a hold was given, committed
// without waiting for the WAL flush: its loss in a database crash is one
// the checkout already survives. A retry finds the hold without a session
// and asks for one again under the same idempotency key, which the
// provider answers with the same session; a payment event finds the
// enrollment by the id it carries and records the session; and the sweeper
// never expires a paid hold for good (a paid fact outranks expiry). Skipping
// the flush spares launch day one of its two fsyncs per checkout.
func (s *Service) recordCheckoutSession(ctx context.Context, id uuid.UUID, sess CheckoutSession) error {
	return s.WithPgx(ctx, func(conn *pgx.Conn) error {
		b := &pgx.Batch{}
		b.Queue("BEGIN")
		b.Queue("SET LOCAL synchronous_commit = off")
		b.Queue(`UPDATE enrollments SET checkout_session_id = $1, checkout_url = $2, updated_at = $3
			WHERE id = $4 AND (checkout_session_id IS NULL OR checkout_session_id = $1)`, sess.ID, sess.URL, s.Now(), id)
		b.Queue("COMMIT")
		err := conn.SendBatch(ctx, b).Close()
		if err != nil && conn.PgConn().TxStatus() != 'I' {
			// Failed inside the transaction: end it before the connection
			// goes back to the pool (which would otherwise discard it).
			_, _ = conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		}
		return err
	})
}

// holdSeat is the checkout's transaction. cohort is filled for the caller.
func (s *Service) holdSeat(ctx context.Context, cohortID uuid.UUID, email, name string, marketing bool, client models.ClientInfo, cohort *Cohort) (*CheckoutResult, error) {
	var res *CheckoutResult
	err := s.InTx(ctx, func(tx *gorm.DB) error {
		now := s.Now()
		// Counted in the checkout's own commit: one fsync fewer per hold on
		// a launch-day cohort. A refused attempt (sold out) rolls its hit
		// back, which is harmless: the limit exists to stop seat hoarding,
		// and every hold that succeeds is counted.
		if err := s.AllowIn(tx, "checkout:ip:"+client.IP, s.Limits.CheckoutPerIP); err != nil {
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
		// Her participant row first (a subquery, so also in a generic
		// plan), then her row of the live key: a launch-day cohort's
		// thousands of holds are never scanned.
		err := tx.Raw(`
			SELECT * FROM enrollments
			WHERE cohort_id = ? AND participant_id = (SELECT id FROM participants WHERE email = ?) AND status IN ?
			FOR UPDATE`, cohortID, email, liveStatuses).Scan(&existing).Error
		if err != nil {
			return err
		}
		if existing.ID != uuid.Nil {
			r, err := s.resumeCheckout(tx, &existing, cohort, now)
			if err != nil {
				return err
			}
			if r.Enrollment.CheckoutSessionID == nil {
				// She accepts the disclaimer on this form, not when she
				// joined the waitlist: record it before she pays.
				p := &people.Participant{ID: existing.ParticipantID}
				if err := s.people.RecordClaimConsents(tx, p, cohort.ProgramID, true, marketing, client); err != nil {
					return err
				}
			}
			res = r
			return nil
		}
		// Cheap refusal before any write: the guarded UPDATE below is the
		// real check, this only spares the hot row a queue of losers.
		if cohort.SeatsLeft() == 0 {
			return soldOut(cohort.ID)
		}
		p, err := s.people.FindOrCreateParticipant(tx, email, name)
		if err != nil {
			return err
		}
		if err := s.people.RecordClaimConsents(tx, p, cohort.ProgramID, true, marketing, client); err != nil {
			return err
		}
		if cohort.PriceCents == 0 {
			// Nothing to pay: her place is written as a waiting one and
			// settled at once, like a payment, so she gets the seat, her
			// access and the welcome email the same way.
			e := &Enrollment{ID: uuid.New(), CohortID: cohort.ID, ParticipantID: p.ID, Status: EnrollmentWaitlisted, Seat: SeatNone,
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
		e := &Enrollment{ID: uuid.New(), CohortID: cohort.ID, ParticipantID: p.ID, Seat: SeatHeld,
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

// successURL is the portal page a checkout returns to.
func (s *Service) successURL(enrollmentID uuid.UUID) string {
	return s.baseURL + "/checkout/success?enrollment=" + enrollmentID.String()
}

// releaseHoldTimeout bounds the release of a hold whose checkout failed.
const releaseHoldTimeout = 5 * time.Second

// releaseUnstartedHold gives back the seat of a checkout whose session could
// not be created. Should the provider have created it after all, a payment
// on it is still honoured (a paid fact outranks expiry).
func (s *Service) releaseUnstartedHold(ctx context.Context, id uuid.UUID) error {
	return s.InTx(ctx, func(tx *gorm.DB) error {
		var e Enrollment
		if err := tx.Raw(`SELECT * FROM enrollments WHERE id = ? FOR UPDATE`, id).Scan(&e).Error; err != nil {
			return err
		}
		if e.ID == uuid.Nil || e.Status != EnrollmentPending || e.CheckoutSessionID != nil {
			return nil
		}
		now := s.Now()
		e.ExpiredAt = &now
		return s.settleEnrollment(tx, &e, false)
	})
}

// JoinWaitlist puts her on the cohort's waitlist. The answer is the same
// whether or not she was already enrolled or waiting, so the form reveals
// nothing about anyone.
func (s *Service) JoinWaitlist(ctx context.Context, cohortID uuid.UUID, email, name string, client models.ClientInfo) error {
	email = models.NormalizeEmail(email)
	trimmed := strings.TrimSpace(name)
	var c models.Checker
	c.Email("email", email)
	c.Text("name", name, 1, 200)
	if err := c.Err(); err != nil {
		return err
	}
	if err := s.Allow(ctx, "waitlist:ip:"+client.IP, s.Limits.CheckoutPerIP); err != nil {
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
			ON CONFLICT (cohort_id, participant_id) WHERE status IN ('pending', 'awaiting_payment', 'active', 'disputed', 'waitlisted') DO NOTHING`,
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

// EnrollmentDetail is an enrollment with the participant it belongs to.
type EnrollmentDetail struct {
	Enrollment `gorm:"embedded"`
	Email      string
	Name       string
}

// manageCohortEnrollments refuses (404, revealing nothing) a coach who
// neither is an admin nor leads or co-leads the cohort.
func (s *Service) manageCohortEnrollments(db *gorm.DB, actor *people.Coach, cohortID uuid.UUID) (*Cohort, error) {
	var cohort Cohort
	q := db.Where("id = ?", cohortID)
	if actor.Role != people.RoleAdmin {
		q = q.Where("EXISTS (SELECT 1 FROM cohort_coaches cc WHERE cc.cohort_id = cohorts.id AND cc.coach_id = ?)", actor.ID)
	}
	if err := q.Take(&cohort).Error; err != nil {
		return nil, models.MapDBError(err, "cohort")
	}
	return &cohort, nil
}

func (s *Service) enrollmentDetail(db *gorm.DB, id uuid.UUID) (*EnrollmentDetail, error) {
	var d EnrollmentDetail
	err := db.Raw(`SELECT e.*, p.email, p.name FROM enrollments e JOIN participants p ON p.id = e.participant_id WHERE e.id = ?`, id).
		Take(&d).Error
	if err != nil {
		return nil, models.MapDBError(err, "enrollment")
	}
	return &d, nil
}

// AddComplimentary gives her a seat without payment. A woman on the
// waitlist is moved into it; one who already has a place is refused.
func (s *Service) AddComplimentary(ctx context.Context, actor *people.Coach, cohortID uuid.UUID, email, name string) (*EnrollmentDetail, error) {
	email = models.NormalizeEmail(email)
	var c models.Checker
	c.Email("email", email)
	c.Text("name", name, 1, 200)
	if err := c.Err(); err != nil {
		return nil, err
	}
	var id uuid.UUID
	err := s.InTx(ctx, func(tx *gorm.DB) error {
		cohort, err := s.manageCohortEnrollments(tx, actor, cohortID)
		if err != nil {
			return err
		}
		if cohort.Status == CohortCancelled {
			return errEnrollmentClosed
		}
		p, err := s.people.FindOrCreateParticipant(tx, email, strings.TrimSpace(name))
		if err != nil {
			return err
		}
		now := s.Now()
		var e Enrollment
		err = tx.Raw(`SELECT * FROM enrollments WHERE cohort_id = ? AND participant_id = ? AND status IN ? FOR UPDATE`,
			cohort.ID, p.ID, liveStatuses).Scan(&e).Error
		if err != nil {
			return err
		}
		switch {
		case e.ID == uuid.Nil:
			e = Enrollment{ID: uuid.New(), CohortID: cohort.ID, ParticipantID: p.ID, Status: EnrollmentWaitlisted, Seat: SeatNone,
				Currency: cohort.Currency, DisputeStatus: DisputeNone, CreatedAt: now, UpdatedAt: now}
			if err := tx.Create(&e).Error; err != nil {
				if models.IsUniqueViolation(err, "enrollments_live_key") {
					return errAlreadyEnrolled
				}
				return models.MapDBError(err, "enrollment")
			}
		case e.Status != EnrollmentWaitlisted:
			return errAlreadyEnrolled
		}
		e.Complimentary = true
		if err := s.settleEnrollment(tx, &e, true); err != nil {
			if models.IsCode(err, "sold_out") {
				return models.E(models.KindConflict, "sold_out", "This cohort is full. Raise its capacity to add another seat.")
			}
			return err
		}
		id = e.ID
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.enrollmentDetail(s.DB.WithContext(ctx), id)
}

// CancelEnrollment ends her place (or waitlist place): the seat goes to the
// waitlist and her access ends at once. Cancelling again changes nothing;
// an enrollment that already ended another way is not_cancellable. A checkout still
// open at the provider is closed, so she cannot pay for a place she lost.
func (s *Service) CancelEnrollment(ctx context.Context, actor *people.Coach, enrollmentID uuid.UUID) (*EnrollmentDetail, error) {
	var openSession string
	err := s.InTx(ctx, func(tx *gorm.DB) error {
		var e Enrollment
		if err := tx.Raw(`SELECT * FROM enrollments WHERE id = ? FOR UPDATE`, enrollmentID).Scan(&e).Error; err != nil {
			return err
		}
		if e.ID == uuid.Nil {
			return models.NotFound("enrollment")
		}
		if _, err := s.manageCohortEnrollments(tx, actor, e.CohortID); err != nil {
			return models.NotFound("enrollment")
		}
		if e.CancelledAt != nil {
			return nil
		}
		if e.Status == EnrollmentExpired || e.Status == EnrollmentRefunded {
			return errNotCancellable
		}
		if e.Status == EnrollmentPending && e.CheckoutSessionID != nil {
			openSession = *e.CheckoutSessionID
		}
		now := s.Now()
		e.CancelledAt = &now
		return s.settleEnrollment(tx, &e, false)
	})
	if err != nil {
		return nil, err
	}
	if openSession != "" && s.payments != nil {
		if _, err := s.payments.ExpireCheckoutSession(ctx, openSession); err != nil {
			// She may still pay it; the payment is recorded and the coach
			// refunds it. Nothing to undo here.
			s.Log.WarnContext(ctx, "expire checkout session of a cancelled enrollment", "enrollment_id", enrollmentID, "err", err)
		}
	}
	return s.enrollmentDetail(s.DB.WithContext(ctx), enrollmentID)
}

// RequestRefund asks the provider to refund amountCents (0: all that is left)
// of her payment. The state changes when the provider's charge.refunded
// event arrives; the idempotency key makes a double click one refund.
func (s *Service) RequestRefund(ctx context.Context, actor *people.Coach, enrollmentID uuid.UUID, amountCents int64) error {
	if amountCents < 0 {
		return models.Invalid(models.FieldError{Field: "amount_cents", Message: "must be positive"})
	}
	db := s.DB.WithContext(ctx)
	var e Enrollment
	if err := db.Where("id = ?", enrollmentID).Take(&e).Error; err != nil {
		return models.MapDBError(err, "enrollment")
	}
	if _, err := s.manageCohortEnrollments(db, actor, e.CohortID); err != nil {
		return models.NotFound("enrollment")
	}
	if s.payments == nil {
		return errPaymentsUnavailable
	}
	left := e.AmountPaidCents - e.AmountRefundedCents
	if e.PaymentIntentID == nil || e.PaidAt == nil || left <= 0 {
		return errNotRefundable
	}
	if amountCents == 0 {
		amountCents = left
	}
	if amountCents > left {
		return models.Invalid(models.FieldError{Field: "amount_cents", Message: fmt.Sprintf("must be at most %d, the amount not yet refunded", left)})
	}
	_, err := s.payments.Refund(ctx, RefundRequest{
		PaymentIntentID: *e.PaymentIntentID,
		AmountCents:     amountCents,
		IdempotencyKey:  fmt.Sprintf("refund:%s:%d:%d", e.ID, amountCents, e.AmountRefundedCents),
	})
	if err != nil {
		s.Log.WarnContext(ctx, "refund failed", "enrollment_id", e.ID, "err", err)
		return paymentProviderError(err)
	}
	return nil
}

// ListCohortEnrollments lists a cohort's enrollments, oldest first.
func (s *Service) ListCohortEnrollments(ctx context.Context, actor *people.Coach, cohortID uuid.UUID, page models.PageParams) (models.Page[EnrollmentDetail], error) {
	after, err := page.Decode()
	if err != nil {
		return models.Page[EnrollmentDetail]{}, err
	}
	db := s.DB.WithContext(ctx)
	if _, err := s.manageCohortEnrollments(db, actor, cohortID); err != nil {
		return models.Page[EnrollmentDetail]{}, err
	}
	limit := page.PageSize()
	args := []any{cohortID}
	keyset := ""
	if after != nil {
		keyset = "AND (e.created_at, e.id) > (?, ?)"
		args = append(args, after.At, after.ID)
	}
	args = append(args, limit+1)
	var rows []EnrollmentDetail
	err = db.Raw(`
		SELECT e.*, p.email, p.name FROM enrollments e JOIN participants p ON p.id = e.participant_id
		WHERE e.cohort_id = ? `+keyset+`
		ORDER BY e.created_at, e.id
		LIMIT ?`, args...).Scan(&rows).Error
	if err != nil {
		return models.Page[EnrollmentDetail]{}, err
	}
	return models.PageOf(rows, limit, func(d EnrollmentDetail) models.Cursor { return models.Cursor{At: d.CreatedAt, ID: d.ID} }), nil
}

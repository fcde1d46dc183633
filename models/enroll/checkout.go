package enroll

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
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
)

func paymentProviderError(err error) error {
	return &models.Error{Kind: models.KindUpstream, Code: "payment_provider_error",
		Message: "The payment provider could not be reached. No payment was taken; please try again in a moment.", Err: err}
}

// CheckoutInput is the checkout form.
type CheckoutInput struct {
	Email              string
	Name               string
	DisclaimerAccepted bool
	MarketingConsent   bool
	// Discreet turns discreet mode on for her address, never off
	// (people.TurnOnDiscreet).
	Discreet bool
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

// StartCheckout is the public checkout form. It answers every caller
// alike, in the same time, whatever the address (new, known, waiting,
// holding a seat or enrolled): it checks the input and the cohort's public
// state (sold out and closed are refused for everyone), applies the same
// rate limits, and leaves one task (TaskCheckout) with the form and its
// consent evidence. No seat is taken: the worker emails the address a
// checkout link (runCheckout), and only whoever reads that inbox can hold
// a seat with it (RedeemCheckoutLink).
func (s *Service) StartCheckout(ctx context.Context, cohortID uuid.UUID, in CheckoutInput, client models.ClientInfo) error {
	email := models.NormalizeEmail(in.Email)
	name := strings.TrimSpace(in.Name)
	var c models.Checker
	c.Email("email", email)
	c.PersonName("name", in.Name)
	if !in.DisclaimerAccepted {
		c.Add("disclaimer_accepted", "must be accepted: this program is coaching and education, not psychotherapy, and does not replace treatment by a therapist")
	}
	if err := c.Err(); err != nil {
		return err
	}
	// The cohort's public state first: a refusal that is the same for
	// everyone writes nothing, not even a rate-limit hit.
	var cohort Cohort
	if err := s.DB.WithContext(ctx).Where("id = ? AND status <> ?", cohortID, CohortDraft).Take(&cohort).Error; err != nil {
		return models.MapDBError(err, "cohort")
	}
	if cohort.PriceCents > 0 && s.payments == nil {
		return errPaymentsUnavailable
	}
	if !cohort.EnrollmentOpen(s.Now()) {
		return errEnrollmentClosed
	}
	if cohort.SeatsLeft() == 0 {
		return soldOut(cohort.ID)
	}
	if err := s.allowForm(ctx, "checkout-form", email, client); err != nil {
		return err
	}
	return s.EnqueueTask(ctx, TaskCheckout, formTask{CohortID: cohort.ID, Email: email, Name: name,
		MarketingConsent: in.MarketingConsent, Discreet: in.Discreet, Client: client.Clean()})
}

// allowForm is the rate limits of a public cohort form: per network
// address, against seat hoarding and scripts, and per email address, so
// nobody can fill her inbox from the form. The same statements run for
// every address.
func (s *Service) allowForm(ctx context.Context, form, email string, client models.ClientInfo) error {
	if err := s.Allow(ctx, form+":ip:"+models.ClientKey(client.IP), s.Limits.CheckoutPerIP); err != nil {
		return err
	}
	return s.Allow(ctx, form+":email:"+email, s.Limits.PortalLinkPerKey)
}

// The tasks of the public cohort forms.
const (
	TaskCheckout = "enroll.checkout"
	TaskWaitlist = "enroll.waitlist"
)

// formTask is a cohort form and the evidence of its request.
type formTask struct {
	CohortID         uuid.UUID         `json:"cohort_id"`
	Email            string            `json:"email"`
	Name             string            `json:"name"`
	MarketingConsent bool              `json:"marketing_consent"`
	Discreet         bool              `json:"discreet"`
	Client           models.ClientInfo `json:"client"`
}

// Templates of the checkout emails.
const (
	// TemplateCheckoutLink carries her checkout link ("complete your
	// booking").
	TemplateCheckoutLink = "checkout_link"
	// TemplateAlreadyEnrolled tells her she has her place already, with
	// the way to the portal.
	TemplateAlreadyEnrolled = "checkout_already_enrolled"
)

// CheckoutLinkTTL is how long a checkout link works.
const CheckoutLinkTTL = 24 * time.Hour

var errInvalidCheckoutLink = models.E(models.KindNotFound, "invalid_checkout_link", "This checkout link is invalid or expired. Fill in the form on the cohort's page again to get a new one.")

// runCheckout decides what the address that filled in the checkout form is
// emailed. Already enrolled: that she is, and where to sign in. Anything
// else (new, known, waiting, holding a seat): a link to complete her
// booking, after her consents from the form are recorded. Nothing else
// changes: a seat is taken only through the link.
func (s *Service) runCheckout(ctx context.Context, tx *gorm.DB, t models.Task) error {
	var in formTask
	if err := t.Decode(&in); err != nil {
		return err
	}
	var cohort Cohort
	if err := tx.Where("id = ? AND status <> ?", in.CohortID, CohortDraft).Take(&cohort).Error; err != nil {
		return models.MapDBError(err, "cohort")
	}
	// Found or created first, so that a form asking for discretion turns it
	// on before any email of this task is written, enrolled or not.
	p, err := s.people.FindOrCreateParticipant(tx, in.Email, in.Name)
	if err != nil {
		return err
	}
	// Her row is locked before anything refers to it: two forms of one
	// address (a double click) run one after the other, instead of each
	// taking the key-share lock of a consent or link and then waiting on
	// the other's for the marketing opt-in's lock (a deadlock).
	if err := tx.Exec(`SELECT 1 FROM participants WHERE id = ? FOR UPDATE`, p.ID).Error; err != nil {
		return err
	}
	if err := s.people.TurnOnDiscreet(tx, p, in.Discreet); err != nil {
		return err
	}
	var live []EnrollmentStatus
	err = tx.Raw(`SELECT e.status FROM enrollments e JOIN participants p ON p.id = e.participant_id
		WHERE e.cohort_id = ? AND p.email = ? AND e.status IN (`+liveStatusesSQL+`)`, cohort.ID, in.Email).Scan(&live).Error
	if err != nil {
		return err
	}
	if len(live) == 1 && live[0] != EnrollmentPending && live[0] != EnrollmentWaitlisted {
		return s.EnqueueEmail(tx, TemplateAlreadyEnrolled, in.Email, "", models.TaskDedupeKey(t, TemplateAlreadyEnrolled), map[string]any{
			"cohort_id": cohort.ID.String(), "cohort_name": cohort.Name,
		})
	}
	if err := s.people.RecordClaimConsents(tx, p, cohort.ProgramID, true, in.MarketingConsent, in.Client); err != nil {
		return err
	}
	token, err := s.newCheckoutLink(tx, cohort.ID, p.ID)
	if err != nil {
		return err
	}
	return s.EnqueueEmail(tx, TemplateCheckoutLink, p.Email, "", models.TaskDedupeKey(t, TemplateCheckoutLink), map[string]any{
		"token": token, "cohort_id": cohort.ID.String(), "cohort_name": cohort.Name,
		"expires_hours": int(CheckoutLinkTTL / time.Hour),
	})
}

// newCheckoutLink writes a checkout link for her and returns its token;
// only its hash is stored.
func (s *Service) newCheckoutLink(tx *gorm.DB, cohortID, participantID uuid.UUID) (string, error) {
	token, hash := models.NewToken()
	now := s.Now()
	link := checkoutLinkRow{ID: uuid.New(), TokenHash: hash, CohortID: cohortID, ParticipantID: participantID,
		ExpiresAt: now.Add(CheckoutLinkTTL), CreatedAt: now}
	if err := tx.Create(&link).Error; err != nil {
		return "", models.MapDBError(err, "checkout link")
	}
	return token, nil
}

// checkoutLinkRow is a row of checkout_links.
type checkoutLinkRow struct {
	ID            uuid.UUID `gorm:"type:uuid;primaryKey"`
	TokenHash     []byte
	CohortID      uuid.UUID
	ParticipantID uuid.UUID
	ExpiresAt     time.Time
	CreatedAt     time.Time
}

func (checkoutLinkRow) TableName() string { return "checkout_links" }

// CheckoutLink is what a checkout link offers: the cohort she would book.
type CheckoutLink struct {
	Cohort    Cohort
	ExpiresAt time.Time
}

// checkoutLinkOf finds a live link's cohort and participant.
func (s *Service) checkoutLinkOf(ctx context.Context, token string) (cohortID, participantID uuid.UUID, expiresAt time.Time, err error) {
	if token == "" {
		return uuid.Nil, uuid.Nil, time.Time{}, errInvalidCheckoutLink
	}
	var link struct {
		CohortID      uuid.UUID
		ParticipantID uuid.UUID
		ExpiresAt     time.Time
	}
	err = s.DB.WithContext(ctx).Raw(`SELECT cohort_id, participant_id, expires_at FROM checkout_links WHERE token_hash = ? AND expires_at > ?`,
		models.HashToken(token), s.Now()).Take(&link).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return uuid.Nil, uuid.Nil, time.Time{}, errInvalidCheckoutLink
	}
	if err != nil {
		return uuid.Nil, uuid.Nil, time.Time{}, err
	}
	return link.CohortID, link.ParticipantID, link.ExpiresAt, nil
}

// DescribeCheckoutLink says what a checkout link would book, and changes
// nothing: mail scanners and previews fetch links.
func (s *Service) DescribeCheckoutLink(ctx context.Context, token string) (*CheckoutLink, error) {
	cohortID, _, expiresAt, err := s.checkoutLinkOf(ctx, token)
	if err != nil {
		return nil, err
	}
	var c Cohort
	if err := s.DB.WithContext(ctx).Where("id = ? AND status <> ?", cohortID, CohortDraft).Take(&c).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, errInvalidCheckoutLink
		}
		return nil, err
	}
	return &CheckoutLink{Cohort: c, ExpiresAt: expiresAt}, nil
}

// RedeemCheckoutLink holds her seat and opens a hosted checkout for it,
// for whoever holds her link: the link is her credential, so nobody else
// can take, see or cancel her checkout.
//
// The seat is held in one short transaction (cohort open, her place, the
// guarded seat UPDATE last so the hot cohort row is locked only until
// commit; with no place of hers in the cohort yet, all of it in one round
// trip, see holdNewSeat); the provider is called after commit, never inside
// a transaction. A second redeem while her hold is live resumes it and its
// session, so a double click never takes a second seat, and she never
// holds two.
//
// A free cohort (price 0) has nothing to pay: she is enrolled at once, and
// CheckoutURL is the page a paid checkout returns to. It needs no payment
// provider; a paid cohort without one is payments_unavailable.
func (s *Service) RedeemCheckoutLink(ctx context.Context, token string, client models.ClientInfo) (*CheckoutResult, error) {
	return s.RedeemCheckoutLinkAccepting(ctx, token, false, client)
}

// RedeemCheckoutLinkAccepting is RedeemCheckoutLink for a woman who may
// not have accepted the program's disclaimer yet: a waitlist offer's link
// is her first booking step, with no checkout form before it. Without a
// disclaimer consent for the program she must accept it here
// (disclaimerAccepted), recorded with this request's evidence; otherwise
// the link is refused, and no seat is taken.
func (s *Service) RedeemCheckoutLinkAccepting(ctx context.Context, token string, disclaimerAccepted bool, client models.ClientInfo) (*CheckoutResult, error) {
	cohortID, participantID, _, err := s.checkoutLinkOf(ctx, token)
	if err != nil {
		return nil, err
	}
	var p people.Participant
	if err := s.DB.WithContext(ctx).Where("id = ?", participantID).Take(&p).Error; err != nil {
		return nil, models.MapDBError(err, "participant")
	}
	// One round trip on the launch-day path: her cohort's program, and
	// whether she accepted its disclaimer.
	var (
		programID uuid.UUID
		accepted  bool
	)
	err = s.DB.WithContext(ctx).Raw(`
		SELECT c.program_id, EXISTS (SELECT 1 FROM consents k
			WHERE k.participant_id = ? AND k.program_id = c.program_id AND k.kind = ? AND k.granted)
		FROM cohorts c WHERE c.id = ?`, p.ID, models.ConsentDisclaimer, cohortID).Row().Scan(&programID, &accepted)
	if err != nil {
		return nil, models.MapDBError(err, "cohort")
	}
	if !accepted {
		if !disclaimerAccepted {
			var c models.Checker
			c.Add("disclaimer_accepted", "must be accepted: this program is coaching and education, not psychotherapy, and does not replace treatment by a therapist")
			return nil, c.Err()
		}
		err := s.InTx(ctx, func(tx *gorm.DB) error {
			return s.people.RecordClaimConsents(tx, &p, programID, true, false, client)
		})
		if err != nil {
			return nil, err
		}
	}
	return s.checkout(ctx, cohortID, &p, client)
}

// checkout takes or resumes her one hold in the cohort and its session.
func (s *Service) checkout(ctx context.Context, cohortID uuid.UUID, p *people.Participant, client models.ClientInfo) (*CheckoutResult, error) {
	email := p.Email
	var (
		res    *CheckoutResult
		cohort Cohort
		err    error
	)
	// The common case, no place of hers yet and a free seat, is one round
	// trip; any other case is declined by it without a trace and decided
	// below.
	if s.payments != nil {
		res, err = s.holdNewSeat(ctx, cohortID, p.ID, client, &cohort)
		if err != nil {
			return nil, err
		}
	}
	// A lost insert race or a stale hold of hers is resolved and the
	// transaction run again; twice is enough for both.
	for attempt := 0; res == nil && attempt < 3; attempt++ {
		res, err = s.holdSeat(ctx, cohortID, p.ID, client, &cohort)
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
	if sess, err = s.recordCheckoutSession(ctx, e.ID, sess); err != nil {
		return nil, models.MapDBError(err, "enrollment")
	}
	e.CheckoutSessionID, e.CheckoutURL = &sess.ID, &sess.URL
	res.CheckoutURL = sess.URL
	return res, nil
}

// recordCheckoutSession stores the session a hold was given, durably: a
// payment activates her enrollment only on the session recorded here (a
// session Grace did not create is flagged for review, never honoured), so
// losing this row in a crash would leave a woman who paid unenrolled
// until a coach looked.
//
// Two clicks of her link at once may both reach the provider (under one
// idempotency key, so it answers one session); whichever is recorded
// first is the one both are sent to.
func (s *Service) recordCheckoutSession(ctx context.Context, id uuid.UUID, sess CheckoutSession) (CheckoutSession, error) {
	err := s.DB.WithContext(ctx).Exec(`UPDATE enrollments SET checkout_session_id = ?, checkout_url = ?, updated_at = ?
		WHERE id = ? AND checkout_session_id IS NULL`, sess.ID, sess.URL, s.Now(), id).Error
	if err != nil {
		return sess, err
	}
	var rec struct {
		CheckoutSessionID *string
		CheckoutURL       *string
	}
	if err := s.DB.WithContext(ctx).Raw(`SELECT checkout_session_id, checkout_url FROM enrollments WHERE id = ?`, id).Scan(&rec).Error; err != nil {
		return sess, err
	}
	if rec.CheckoutSessionID != nil && rec.CheckoutURL != nil {
		sess.ID, sess.URL = *rec.CheckoutSessionID, *rec.CheckoutURL
	}
	return sess, nil
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

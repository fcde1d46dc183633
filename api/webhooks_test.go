package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/api"
	"github.com/grace-coaching/grace/api/apitest"
	"github.com/grace-coaching/grace/api/stripe"
	"github.com/grace-coaching/grace/api/stripe/stripetest"
	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/enroll"
	"github.com/grace-coaching/grace/models/people"
)

const webhookSecret = "whsec_test_grace_webhooks"

// hookWorld is the API with Stripe webhooks configured, a published program
// with one lesson, and a cohort of it that has already started (so an
// active enrollment can read the lesson at once) led by a coach.
type hookWorld struct {
	env    *apitest.Env
	coach  *people.Coach
	lesson *catalog.Lesson
	cohort enroll.Cohort
}

func newHookWorld(t *testing.T, capacity int) *hookWorld {
	t.Helper()
	env := apitest.NewEnv(t)
	client, err := stripe.New(stripe.Config{SecretKey: "sk_test_grace", WebhookSecret: webhookSecret})
	if err != nil {
		t.Fatal(err)
	}
	env.Echo = api.New(api.Config{Service: env.Svc, StripeWebhook: client})
	w := &hookWorld{env: env}
	w.coach, _ = env.Coach(t, "grace@coach.test", people.RoleCoach)
	prog := env.Program(t, "say-no-with-grace", catalog.ProgramPublished, false)
	w.lesson = env.Lesson(t, prog.ID, "Your first no", true, false, 0)
	start := env.Clock.Now().Add(-time.Hour)
	w.cohort = enroll.Cohort{ProgramID: prog.ID, Name: "Spring circle", StartsAt: start, EndsAt: start.Add(42 * 24 * time.Hour),
		Timezone: "Europe/London", Capacity: capacity, PriceCents: 9700, Currency: "EUR", Status: enroll.CohortOpen}
	must(t, env.DB.Create(&w.cohort).Error)
	must(t, env.DB.Create(&enroll.CohortCoach{CohortID: w.cohort.ID, CoachID: w.coach.ID, Lead: true}).Error)
	return w
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// hold writes what a checkout leaves behind: a pending enrollment holding a
// seat counted on the cohort, with a Stripe session. It returns her portal
// token.
func (w *hookWorld) hold(t testing.TB, email string, id uuid.UUID) (enroll.Enrollment, string) {
	t.Helper()
	p, token := w.env.Participant(t, email)
	exp := w.env.Clock.Now().Add(enroll.CheckoutHoldTTL)
	sess := sessionID(id)
	e := enroll.Enrollment{ID: id, CohortID: w.cohort.ID, ParticipantID: p.ID, Status: enroll.EnrollmentPending, Seat: enroll.SeatHeld,
		HoldExpiresAt: &exp, CheckoutSessionID: &sess, Currency: "EUR", DisputeStatus: enroll.DisputeNone}
	must(t, w.env.DB.Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(&e).Error; err != nil {
			return err
		}
		res := tx.Exec(`UPDATE cohorts SET seats_held = seats_held + 1 WHERE id = ? AND seats_paid + seats_held < capacity`, w.cohort.ID)
		if res.Error == nil && res.RowsAffected != 1 {
			return fmt.Errorf("no free seat for the hold")
		}
		return res.Error
	}))
	return e, token
}

func sessionID(id uuid.UUID) string { return "cs_test_" + strings.ReplaceAll(id.String(), "-", "") }
func intentID(id uuid.UUID) string  { return "pi_test_" + strings.ReplaceAll(id.String(), "-", "") }

// deliver posts payload signed as Stripe would sign it now.
func (w *hookWorld) deliver(t testing.TB, payload []byte) *apitest.Response {
	t.Helper()
	return w.env.Do(t, http.MethodPost, "/v1/webhooks/stripe", payload,
		apitest.Header("Stripe-Signature", stripetest.SignTestPayload(payload, webhookSecret, time.Time{})))
}

func (w *hookWorld) enrollment(t testing.TB, id uuid.UUID) enroll.Enrollment {
	t.Helper()
	var e enroll.Enrollment
	must(t, w.env.DB.Where("id = ?", id).Take(&e).Error)
	return e
}

func (w *hookWorld) seats(t testing.TB) (paid, held, overflow int) {
	t.Helper()
	var c enroll.Cohort
	must(t, w.env.DB.Where("id = ?", w.cohort.ID).Take(&c).Error)
	return c.SeatsPaid, c.SeatsHeld, c.SeatsOverflow
}

// canRead is what she sees on her next portal request for the lesson.
func (w *hookWorld) canRead(t testing.TB, token string) bool {
	t.Helper()
	res := w.env.Do(t, http.MethodGet, "/v1/portal/lessons/"+w.lesson.ID.String(), nil, apitest.Token(token))
	if res.Status == http.StatusOK {
		return true
	}
	res.ExpectProblem(t, http.StatusForbidden, "no_access")
	return false
}

// at pins an event payload's creation time (the helpers stamp the wall
// clock), so two runs of one scenario record the same facts.
func at(t testing.TB, payload []byte, minute int) []byte {
	t.Helper()
	var ev map[string]any
	must(t, json.Unmarshal(payload, &ev))
	ev["created"] = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC).Add(time.Duration(minute) * time.Minute).Unix()
	out, err := json.Marshal(ev)
	must(t, err)
	return out
}

// Event payloads for enrollment id, as Stripe would send them.
func checkoutPayload(t testing.TB, evID, typ string, id uuid.UUID, paymentStatus string, minute int) []byte {
	s := enroll.CheckoutSession{ID: sessionID(id), Status: enroll.SessionComplete, PaymentStatus: paymentStatus,
		PaymentIntentID: intentID(id), AmountTotal: 9700, Currency: "EUR", EnrollmentID: id.String()}
	if typ == enroll.EventCheckoutExpired {
		s.Status, s.PaymentStatus, s.PaymentIntentID, s.AmountTotal = enroll.SessionExpired, "unpaid", "", 0
	}
	return at(t, stripetest.CheckoutSessionEvent(evID, typ, s), minute)
}

func refundPayload(t testing.TB, evID string, id uuid.UUID, refunded int64, minute int) []byte {
	return at(t, stripetest.ChargeRefundedEvent(evID, intentID(id), 9700, refunded), minute)
}

func disputePayload(t testing.TB, evID, typ string, id uuid.UUID, status string, minute int) []byte {
	return at(t, stripetest.DisputeEvent(evID, typ, intentID(id), status), minute)
}

type hookEvent func(t testing.TB, id uuid.UUID) []byte

func paidEv(t testing.TB, id uuid.UUID) []byte {
	return checkoutPayload(t, "evt_paid", enroll.EventCheckoutCompleted, id, "paid", 0)
}
func unpaidEv(t testing.TB, id uuid.UUID) []byte {
	return checkoutPayload(t, "evt_unpaid", enroll.EventCheckoutCompleted, id, "unpaid", 0)
}

// TestStripeWebhookEventsConvergeInAnyOrder delivers each scenario's events
// through the API, each twice, in Stripe's usual order and reversed, on two
// fresh databases: the final enrollment rows must be identical, and her
// access must follow every step on her very next request.
func TestStripeWebhookEventsConvergeInAnyOrder(t *testing.T) {
	for _, sc := range []struct {
		name   string
		events []hookEvent
		// access after each event, in the usual order (before any: none)
		access []bool
		status enroll.EnrollmentStatus
	}{
		{"paid", []hookEvent{paidEv}, []bool{true}, enroll.EnrollmentActive},
		{"async payment succeeds", []hookEvent{unpaidEv, func(t testing.TB, id uuid.UUID) []byte {
			return checkoutPayload(t, "evt_async_ok", enroll.EventCheckoutAsyncSucceeded, id, "paid", 60)
		}}, []bool{false, true}, enroll.EnrollmentActive},
		{"async payment fails", []hookEvent{unpaidEv, func(t testing.TB, id uuid.UUID) []byte {
			return checkoutPayload(t, "evt_async_fail", enroll.EventCheckoutAsyncFailed, id, "unpaid", 60)
		}}, []bool{false, false}, enroll.EnrollmentExpired},
		{"session expires", []hookEvent{func(t testing.TB, id uuid.UUID) []byte {
			return checkoutPayload(t, "evt_expired", enroll.EventCheckoutExpired, id, "", 31)
		}}, []bool{false}, enroll.EnrollmentExpired},
		{"full refund revokes access", []hookEvent{paidEv, func(t testing.TB, id uuid.UUID) []byte {
			return refundPayload(t, "evt_refund", id, 9700, 90)
		}}, []bool{true, false}, enroll.EnrollmentRefunded},
		{"partial refund keeps access", []hookEvent{paidEv, func(t testing.TB, id uuid.UUID) []byte {
			return refundPayload(t, "evt_refund", id, 2000, 90)
		}}, []bool{true, true}, enroll.EnrollmentActive},
		{"dispute suspends access", []hookEvent{paidEv, func(t testing.TB, id uuid.UUID) []byte {
			return disputePayload(t, "evt_dp_created", enroll.EventDisputeCreated, id, "needs_response", 200)
		}}, []bool{true, false}, enroll.EnrollmentDisputed},
		{"dispute won restores access", []hookEvent{paidEv, func(t testing.TB, id uuid.UUID) []byte {
			return disputePayload(t, "evt_dp_created", enroll.EventDisputeCreated, id, "needs_response", 200)
		}, func(t testing.TB, id uuid.UUID) []byte {
			return disputePayload(t, "evt_dp_closed", enroll.EventDisputeClosed, id, "won", 300)
		}}, []bool{true, false, true}, enroll.EnrollmentActive},
		{"dispute lost keeps access revoked", []hookEvent{paidEv, func(t testing.TB, id uuid.UUID) []byte {
			return disputePayload(t, "evt_dp_created", enroll.EventDisputeCreated, id, "needs_response", 200)
		}, func(t testing.TB, id uuid.UUID) []byte {
			return disputePayload(t, "evt_dp_closed", enroll.EventDisputeClosed, id, "lost", 300)
		}}, []bool{true, false, false}, enroll.EnrollmentDisputed},
	} {
		t.Run(sc.name, func(t *testing.T) {
			id := uuid.New()
			type final struct {
				Enrollment                enroll.Enrollment
				Paid, Held, Overflow      int
				Access                    bool
				Events, Enrollments, Live int64
			}
			run := func(reverse bool) final {
				w := newHookWorld(t, 5)
				_, token := w.hold(t, "amira@example.test", id)
				if w.canRead(t, token) {
					t.Fatal("a pending checkout already reads the lesson")
				}
				order := slices.Clone(sc.events)
				if reverse {
					slices.Reverse(order)
				}
				for i, mk := range order {
					payload := mk(t, id)
					w.deliver(t, payload).Expect(t, http.StatusOK)
					before := w.enrollment(t, id)
					events, outbox := w.env.Count(t, "stripe_events"), w.env.Count(t, "outbox")
					var body struct {
						Received bool `json:"received"`
					}
					w.deliver(t, payload).Expect(t, http.StatusOK).JSON(t, &body)
					if !body.Received {
						t.Error(`a redelivery is not answered {"received": true}`)
					}
					if after := w.enrollment(t, id); !reflect.DeepEqual(before, after) || w.env.Count(t, "stripe_events") != events || w.env.Count(t, "outbox") != outbox {
						t.Fatalf("redelivery changed something:\nbefore %+v\nafter  %+v", before, after)
					}
					if !reverse {
						if got := w.canRead(t, token); got != sc.access[i] {
							t.Fatalf("after event %d her next request reads the lesson = %v, want %v", i+1, got, sc.access[i])
						}
					}
				}
				f := final{Enrollment: w.enrollment(t, id), Access: w.canRead(t, token),
					Events: w.env.Count(t, "stripe_events"), Enrollments: w.env.Count(t, "enrollments")}
				f.Paid, f.Held, f.Overflow = w.seats(t)
				f.Enrollment.CohortID, f.Enrollment.ParticipantID = uuid.Nil, uuid.Nil
				f.Enrollment.CreatedAt, f.Enrollment.UpdatedAt = time.Time{}, time.Time{}
				if f.Enrollment.Status != sc.status || f.Access != sc.access[len(sc.access)-1] {
					t.Errorf("reverse=%v: status %s access %v, want %s %v", reverse, f.Enrollment.Status, f.Access, sc.status, sc.access[len(sc.access)-1])
				}
				if f.Events != int64(len(sc.events)) || f.Enrollments != 1 {
					t.Errorf("reverse=%v: %d events stored, %d enrollments; want %d, 1", reverse, f.Events, f.Enrollments, len(sc.events))
				}
				return f
			}
			forward, reversed := run(false), run(true)
			if !reflect.DeepEqual(forward, reversed) {
				t.Errorf("the orders diverge:\nforward  %+v\nreversed %+v", forward, reversed)
			}
		})
	}
}

func TestStripeWebhookRefusesUnverifiedPayloads(t *testing.T) {
	w := newHookWorld(t, 5)
	e, _ := w.hold(t, "amira@example.test", uuid.New())
	payload := paidEv(t, e.ID)
	now := time.Now()
	for _, tc := range []struct {
		name string
		body []byte
		sig  string
	}{
		{"no signature", payload, ""},
		{"garbage signature", payload, "t=1,v1=deadbeef"},
		{"signed with another secret", payload, stripetest.SignTestPayload(payload, "whsec_someone_else", now)},
		{"body changed after signing", []byte(strings.Replace(string(payload), `"paid"`, `"unpaid"`, 1)), stripetest.SignTestPayload(payload, webhookSecret, now)},
		{"stale: signed 10 minutes ago", payload, stripetest.SignTestPayload(payload, webhookSecret, now.Add(-10*time.Minute))},
		{"dated an hour in the future", payload, stripetest.SignTestPayload(payload, webhookSecret, now.Add(time.Hour))},
		{"signed but not an event", []byte(`{"hello":`), stripetest.SignTestPayload([]byte(`{"hello":`), webhookSecret, now)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []apitest.Option
			if tc.sig != "" {
				opts = append(opts, apitest.Header("Stripe-Signature", tc.sig))
			}
			w.env.Do(t, http.MethodPost, "/v1/webhooks/stripe", tc.body, opts...).ExpectProblem(t, http.StatusBadRequest, "invalid_signature")
			if n := w.env.Count(t, "stripe_events"); n != 0 {
				t.Errorf("%d events stored from an unverified payload", n)
			}
			if got := w.enrollment(t, e.ID); got.Status != enroll.EnrollmentPending || got.Seat != enroll.SeatHeld {
				t.Errorf("enrollment moved to %s/%s on an unverified payload", got.Status, got.Seat)
			}
		})
	}
}

func TestStripeWebhookRefusesOversizedBody(t *testing.T) {
	w := newHookWorld(t, 5)
	body := []byte(`{"pad":"` + strings.Repeat("x", 1<<20) + `"}`)
	w.env.Do(t, http.MethodPost, "/v1/webhooks/stripe", body,
		apitest.Header("Stripe-Signature", stripetest.SignTestPayload(body, webhookSecret, time.Time{}))).Expect(t, http.StatusRequestEntityTooLarge)
	if n := w.env.Count(t, "stripe_events"); n != 0 {
		t.Errorf("%d events stored", n)
	}
}

func TestStripeWebhookUnconfiguredIsUnavailable(t *testing.T) {
	env := apitest.NewEnv(t) // no webhook secret
	payload := stripetest.GenericEvent("evt_1", "invoice.paid", map[string]any{"id": "in_1", "object": "invoice"})
	env.Do(t, http.MethodPost, "/v1/webhooks/stripe", payload,
		apitest.Header("Stripe-Signature", stripetest.SignTestPayload(payload, webhookSecret, time.Time{}))).ExpectProblem(t, http.StatusServiceUnavailable, "webhooks_unavailable")
	if n := env.Count(t, "stripe_events"); n != 0 {
		t.Errorf("%d events stored", n)
	}
}

func TestStripeWebhookAcknowledgesWhatItCannotApply(t *testing.T) {
	w := newHookWorld(t, 5)
	e, _ := w.hold(t, "amira@example.test", uuid.New())
	for _, payload := range [][]byte{
		paidEv(t, uuid.New()), // an enrollment we never had (another app on the account)
		stripetest.GenericEvent("evt_invoice", "invoice.paid", map[string]any{"id": "in_1", "object": "invoice"}),
	} {
		w.deliver(t, payload).Expect(t, http.StatusOK)
	}
	if got := w.enrollment(t, e.ID); got.Status != enroll.EnrollmentPending || got.Seat != enroll.SeatHeld || got.PaidAt != nil {
		t.Errorf("her enrollment moved to %s/%s", got.Status, got.Seat)
	}
	if paid, held, _ := w.seats(t); paid != 0 || held != 1 {
		t.Errorf("seats paid/held = %d/%d, want 0/1", paid, held)
	}
	if n := w.env.Count(t, "stripe_events"); n != 2 {
		t.Errorf("%d events stored, want 2 (kept for the record)", n)
	}
	if n := w.env.Count(t, "access_grants"); n != 0 {
		t.Errorf("%d grants written", n)
	}
}

// A payment that finds no seat (the coach lowered capacity under the
// holds) is honoured: she is in, the cohort is marked overbooked and the
// lead coach is told.
func TestStripeWebhookPaymentWithoutSeatIsHonoured(t *testing.T) {
	w := newHookWorld(t, 2)
	a, _ := w.hold(t, "amira@example.test", uuid.New())
	b, tokenB := w.hold(t, "beatriz@example.test", uuid.New())
	w.deliver(t, paidEv(t, a.ID)).Expect(t, http.StatusOK)
	must(t, w.env.DB.Exec(`UPDATE cohorts SET capacity = seats_paid WHERE id = ?`, w.cohort.ID).Error)
	w.deliver(t, checkoutPayload(t, "evt_paid_b", enroll.EventCheckoutCompleted, b.ID, "paid", 1)).Expect(t, http.StatusOK)

	if got := w.enrollment(t, b.ID); got.Status != enroll.EnrollmentActive || got.Seat != enroll.SeatOverflow {
		t.Errorf("status/seat = %s/%s, want active/overflow", got.Status, got.Seat)
	}
	if !w.canRead(t, tokenB) {
		t.Error("an honoured payment does not read the lesson")
	}
	if paid, held, overflow := w.seats(t); paid != 1 || held != 0 || overflow != 1 {
		t.Errorf("seats paid/held/overflow = %d/%d/%d, want 1/0/1", paid, held, overflow)
	}
	var flags []models.OutboxMessage
	must(t, w.env.DB.Where("template = ?", enroll.TemplateCohortOverbooked).Find(&flags).Error)
	if len(flags) != 1 || flags[0].ToEmail != w.coach.Email || flags[0].Data["participant_email"] != "beatriz@example.test" {
		t.Errorf("overbooked flags = %+v, want one to %s about beatriz", flags, w.coach.Email)
	}
}

// TestStripeWebhookRace: 20 seats, 20 holds. For 15 of them
// checkout.session.completed arrives three times each, for the other 5
// checkout.session.expired twice each and, twice each, a paid
// checkout.session.completed of a foreign session naming them (100 USD
// cents for a 97 EUR place), all shuffled and fired at once. The foreign
// payments are kept and sent to the coach for review, never honoured.
func TestStripeWebhookRace(t *testing.T) {
	const seats, paying = 20, 15
	const foreign = seats - paying
	w := newHookWorld(t, seats)
	ids := make([]uuid.UUID, seats)
	var deliveries [][]byte
	for i := range ids {
		ids[i] = uuid.New()
		w.hold(t, fmt.Sprintf("woman%02d@example.test", i), ids[i])
		if i < paying {
			p := checkoutPayload(t, fmt.Sprintf("evt_paid_%02d", i), enroll.EventCheckoutCompleted, ids[i], "paid", i)
			deliveries = append(deliveries, p, p, p)
		} else {
			p := checkoutPayload(t, fmt.Sprintf("evt_expired_%02d", i), enroll.EventCheckoutExpired, ids[i], "", 31)
			f := at(t, stripetest.CheckoutSessionEvent(fmt.Sprintf("evt_foreign_%02d", i), enroll.EventCheckoutCompleted, enroll.CheckoutSession{
				ID: fmt.Sprintf("cs_foreign_%02d", i), Status: enroll.SessionComplete, PaymentStatus: "paid",
				PaymentIntentID: fmt.Sprintf("pi_foreign_%02d", i), AmountTotal: 100, Currency: "USD", EnrollmentID: ids[i].String()}), 10)
			deliveries = append(deliveries, p, p, f, f)
		}
	}
	rand.Shuffle(len(deliveries), func(i, j int) { deliveries[i], deliveries[j] = deliveries[j], deliveries[i] })

	statuses := make([]int, len(deliveries))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, p := range deliveries {
		sig := stripetest.SignTestPayload(p, webhookSecret, time.Time{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			statuses[i] = w.env.Do(t, http.MethodPost, "/v1/webhooks/stripe", p, apitest.Header("Stripe-Signature", sig)).Status
		}()
	}
	close(start)
	wg.Wait()

	for i, s := range statuses {
		if s != http.StatusOK {
			t.Errorf("delivery %d answered %d, want 200", i, s)
		}
	}
	paid, held, overflow := w.seats(t)
	if paid != paying || held != 0 || overflow != 0 || paid > seats {
		t.Errorf("seats paid/held/overflow = %d/%d/%d, want %d/0/0", paid, held, overflow, paying)
	}
	for i, id := range ids {
		e := w.enrollment(t, id)
		want, seat := enroll.EnrollmentActive, enroll.SeatPaid
		if i >= paying {
			want, seat = enroll.EnrollmentExpired, enroll.SeatNone
		}
		if e.Status != want || e.Seat != seat {
			t.Errorf("enrollment %d: %s/%s, want %s/%s", i, e.Status, e.Seat, want, seat)
		}
	}
	var grants, welcomes int64
	must(t, w.env.DB.Table("access_grants").Where("enrollment_id IS NOT NULL AND revoked_at IS NULL").Count(&grants).Error)
	must(t, w.env.DB.Table("outbox").Where("template = ?", enroll.TemplateEnrollmentWelcome).Count(&welcomes).Error)
	if grants != paying || welcomes != paying {
		t.Errorf("%d live grants, %d welcome emails; want %d each", grants, welcomes, paying)
	}
	if n := w.env.Count(t, "enrollments"); n != seats {
		t.Errorf("%d enrollments, want %d (no duplicates)", n, seats)
	}
	var stored, applied int64
	must(t, w.env.DB.Table("stripe_events").Count(&stored).Error)
	must(t, w.env.DB.Table("stripe_events").Where("applied_at IS NOT NULL").Count(&applied).Error)
	if stored != seats+foreign || applied != seats {
		t.Errorf("events stored/applied = %d/%d, want %d/%d (each id once, foreign ones not applied)", stored, applied, seats+foreign, seats)
	}
	var reviews, flagged int64
	must(t, w.env.DB.Table("outbox").Where("template = ? AND to_email = ?", enroll.TemplatePaymentReview, w.coach.Email).Count(&reviews).Error)
	must(t, w.env.DB.Table("enrollments").Where("payment_review = ?", enroll.MismatchSession).Count(&flagged).Error)
	if reviews != foreign || flagged != foreign {
		t.Errorf("%d review emails, %d places flagged; want %d each", reviews, flagged, foreign)
	}
}

// The case through the API: a correctly signed payment of 100 USD
// cents on a session Grace never created, naming her 97 EUR place, leaves
// her place as it was (no access), and the coach is asked to review it.
func TestStripeWebhookForeignSessionIsNotHonoured(t *testing.T) {
	w := newHookWorld(t, 5)
	e, token := w.hold(t, "amira@example.test", uuid.New())
	payload := stripetest.CheckoutSessionEvent("evt_foreign", enroll.EventCheckoutCompleted, enroll.CheckoutSession{
		ID: "cs_live_someone_elses", Status: enroll.SessionComplete, PaymentStatus: "paid", PaymentIntentID: "pi_foreign",
		AmountTotal: 100, Currency: "USD", EnrollmentID: e.ID.String()})
	w.deliver(t, payload).Expect(t, http.StatusOK)
	got := w.enrollment(t, e.ID)
	if got.Status != enroll.EnrollmentPending || got.PaidAt != nil || w.canRead(t, token) {
		t.Fatalf("a foreign session moved her place to %s (paid %v)", got.Status, got.PaidAt)
	}
	if got.PaymentReview == nil || *got.PaymentReview != enroll.MismatchSession {
		t.Errorf("payment review = %v, want %s", got.PaymentReview, enroll.MismatchSession)
	}
	// The coach sees it on her list of the cohort's places.
	_, admin := w.env.Coach(t, "admin@coach.test", people.RoleAdmin)
	var list struct {
		Data []struct {
			ID            uuid.UUID `json:"id"`
			PaymentReview *struct {
				Reason string `json:"reason"`
			} `json:"payment_review"`
		} `json:"data"`
	}
	w.env.Do(t, "GET", "/v1/admin/cohorts/"+w.cohort.ID.String()+"/enrollments", nil, apitest.Token(admin)).Expect(t, 200).JSON(t, &list)
	if len(list.Data) != 1 || list.Data[0].PaymentReview == nil || list.Data[0].PaymentReview.Reason != string(enroll.MismatchSession) {
		t.Errorf("admin list = %+v, want her place flagged %s", list.Data, enroll.MismatchSession)
	}
	var review models.OutboxMessage
	must(t, w.env.DB.Where("template = ?", enroll.TemplatePaymentReview).Take(&review).Error)
	if review.ToEmail != w.coach.Email || review.Data["checkout_session_id"] != "cs_live_someone_elses" || review.Data["paid_currency"] != "USD" {
		t.Errorf("review email = %+v, want one to %s about the foreign session", review, w.coach.Email)
	}
	// Her own checkout still completes.
	w.deliver(t, paidEv(t, e.ID)).Expect(t, http.StatusOK)
	if got := w.enrollment(t, e.ID); got.Status != enroll.EnrollmentActive || !w.canRead(t, token) {
		t.Errorf("her own payment after the foreign one left her %s", got.Status)
	}
}

// Correctly signed events holding text PostgreSQL refuses are answered 200
// and kept (the signed bytes beside a sanitised copy), never a 5xx that
// Stripe would redeliver forever; one whose id is unusable is kept as
// rejected, and a payment whose odd text sits in a field Grace does not
// read still applies.
func TestStripeWebhookStoresUnstorableText(t *testing.T) {
	for _, bad := range []struct{ name, raw string }{
		{"NUL escape", `\u0000`},
		{"lone surrogate", `\ud800`},
		{"invalid UTF-8", "\xff\xfe"},
	} {
		t.Run(bad.name, func(t *testing.T) {
			w := newHookWorld(t, 5)
			e, token := w.hold(t, "amira@example.test", uuid.New())
			spoil := func(payload []byte) []byte {
				t.Helper()
				out := bytes.ReplaceAll(payload, []byte("SPOILED"), []byte(bad.raw))
				if bytes.Equal(out, payload) {
					t.Fatal("nothing to spoil")
				}
				return out
			}
			paid := paidEv(t, e.ID)
			paid = bytes.Replace(paid, []byte(`"customer_email":null`), []byte(`"customer_email":null,"customer_details":{"name":"Amira SPOILED"}`), 1)
			deliveries := [][]byte{
				spoil(stripetest.GenericEvent("evt_note", "customer.updated", map[string]any{"id": "cus_1", "object": "customer", "name": "SPOILED"})),
				spoil(stripetest.GenericEvent("evt_SPOILED", "customer.updated", map[string]any{"id": "cus_1", "object": "customer"})),
				spoil(paid),
			}
			for _, p := range deliveries {
				for range 2 {
					w.deliver(t, p).Expect(t, http.StatusOK)
				}
			}
			var rows []struct {
				ID         string
				PayloadRaw []byte
			}
			must(t, w.env.DB.Raw(`SELECT id, payload_raw FROM stripe_events ORDER BY id`).Scan(&rows).Error)
			if len(rows) != len(deliveries) {
				t.Fatalf("%d events stored, want %d (each once)", len(rows), len(deliveries))
			}
			for _, r := range rows {
				if !slices.ContainsFunc(deliveries, func(p []byte) bool { return bytes.Equal(p, r.PayloadRaw) }) {
					t.Errorf("event %q: payload_raw is not the signed bytes", r.ID)
				}
			}
			if got := w.enrollment(t, e.ID); got.Status != enroll.EnrollmentActive || !w.canRead(t, token) {
				t.Errorf("the payment with odd text elsewhere left her %s", got.Status)
			}
		})
	}
}

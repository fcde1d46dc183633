package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/grace-coaching/grace/api/apitest"
	"github.com/grace-coaching/grace/emails"
	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/drip"
	"github.com/grace-coaching/grace/models/enroll"
	"github.com/grace-coaching/grace/models/people"
)

// mailWorld is the API with Resend webhooks verified by the real verifier,
// a cohort led by a coach, a marketing and a transactional sequence, and
// Jane with a sent marketing email, a scheduled one and a scheduled
// reminder in the cohort.
type mailWorld struct {
	env                  *apitest.Env
	secret               string
	admin, lead          string // tokens
	stranger             string // a coach of no cohort
	cohort               enroll.Cohort
	marketing, reminders drip.EmailStep
	jane                 people.Participant
	sent                 drip.EmailDelivery
	scheduled, reminder  drip.EmailDelivery
}

func newMailWorld(t *testing.T) *mailWorld {
	t.Helper()
	w := &mailWorld{secret: emails.NewTestWebhookSecret(t.Name())}
	verifier, err := emails.NewWebhookVerifier(w.secret)
	if err != nil {
		t.Fatal(err)
	}
	w.env = apitest.NewEnv(t, apitest.WithEmailWebhook(verifier))
	env := w.env
	_, w.admin = env.Coach(t, "admin@coach.test", people.RoleAdmin)
	lead, leadToken := env.Coach(t, "lead@coach.test", people.RoleCoach)
	w.lead = leadToken
	_, w.stranger = env.Coach(t, "stranger@coach.test", people.RoleCoach)
	prog := env.Program(t, "say-no-with-grace", catalog.ProgramPublished, true)
	start := env.Clock.Now().Add(7 * 24 * time.Hour)
	w.cohort = enroll.Cohort{ProgramID: prog.ID, Name: "Spring circle", StartsAt: start, EndsAt: start.Add(42 * 24 * time.Hour),
		Timezone: "Europe/London", Capacity: 10, PriceCents: 9700, Currency: "EUR", Status: enroll.CohortOpen}
	ok(t, env.DB.Create(&w.cohort).Error)
	ok(t, env.DB.Create(&enroll.CohortCoach{CohortID: w.cohort.ID, CoachID: lead.ID, Lead: true}).Error)
	w.marketing = w.step(t, "Welcome", drip.TriggerFreeAccessClaimed, drip.SequenceMarketing)
	w.reminders = w.step(t, "Reminders", drip.TriggerSessionReminder, drip.SequenceTransactional)
	w.jane = w.participant(t, "jane@example.com")
	w.sent = w.delivery(t, w.jane, w.marketing, drip.DeliverySent, false)
	w.scheduled = w.delivery(t, w.jane, w.marketing, drip.DeliveryScheduled, false)
	w.reminder = w.delivery(t, w.jane, w.reminders, drip.DeliveryScheduled, true)
	return w
}

func ok(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (w *mailWorld) step(t *testing.T, name string, trigger drip.Trigger, kind drip.SequenceKind) drip.EmailStep {
	t.Helper()
	seq := drip.EmailSequence{Name: name, Trigger: trigger, Kind: kind, Active: true}
	ok(t, w.env.DB.Create(&seq).Error)
	minutes := 60
	step := drip.EmailStep{SequenceID: seq.ID, Position: 1, OffsetMinutes: &minutes, Subject: "Hello", Body: "Hi {{first_name}}"}
	ok(t, w.env.DB.Create(&step).Error)
	return step
}

// participant creates her and reads back the token the database generated.
func (w *mailWorld) participant(t *testing.T, email string) people.Participant {
	t.Helper()
	p, _ := w.env.Participant(t, email)
	var out people.Participant
	ok(t, w.env.DB.Take(&out, "id = ?", p.ID).Error)
	return out
}

// delivery writes a row as the scheduler (and, for sent, the worker) would;
// one clock minute apart, so the log's order is known.
func (w *mailWorld) delivery(t *testing.T, p people.Participant, step drip.EmailStep, status drip.DeliveryStatus, inCohort bool) drip.EmailDelivery {
	t.Helper()
	w.env.Clock.Advance(time.Minute)
	now := w.env.Clock.Now()
	d := drip.EmailDelivery{ParticipantID: p.ID, Email: p.Email, SequenceID: &step.SequenceID, StepID: &step.ID,
		SubjectKey: "test:" + uuid.NewString(), AnchorAt: now, Timezone: "UTC", Status: status, SendAt: now.Add(time.Hour), CreatedAt: now}
	if inCohort {
		d.CohortID = &w.cohort.ID
	}
	if status == drip.DeliverySent {
		id := uuid.NewString()
		d.SentAt, d.ResendID, d.Attempts, d.SendAt = &now, &id, 1, now
	}
	ok(t, w.env.DB.Create(&d).Error)
	return d
}

func (w *mailWorld) status(t *testing.T, d drip.EmailDelivery) (drip.DeliveryStatus, string) {
	t.Helper()
	var got drip.EmailDelivery
	ok(t, w.env.DB.Take(&got, "id = ?", d.ID).Error)
	reason := ""
	if got.LastError != nil {
		reason = *got.LastError
	}
	return got.Status, reason
}

type unsubscribeBody struct {
	Email          string     `json:"email"`
	Unsubscribed   bool       `json:"unsubscribed"`
	UnsubscribedAt *time.Time `json:"unsubscribed_at"`
}

func multipartOneClick(t *testing.T) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	ok(t, mw.WriteField("List-Unsubscribe", "One-Click"))
	ok(t, mw.Close())
	return mw.FormDataContentType(), b.Bytes()
}

// Mail clients POST the one-click form from their servers (any Origin, no
// credentials); the portal may POST JSON or nothing. Each stops marketing
// mail at once, and only marketing mail.
func TestUnsubscribeOneClickPOST(t *testing.T) {
	mpType, mpBody := multipartOneClick(t)
	tests := []struct {
		name        string
		contentType string
		body        any
	}{
		{"RFC 8058 form", "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click"},
		{"multipart form", mpType, mpBody},
		{"JSON from the portal", "application/json", map[string]any{}},
		{"empty body", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newMailWorld(t)
			path := "/v1/unsubscribe/" + w.jane.UnsubscribeToken
			opts := []apitest.Option{apitest.Header("Origin", "https://mail.example.net"), apitest.FromIP("198.51.100.7")}
			if tt.contentType != "" {
				opts = append(opts, apitest.Header("Content-Type", tt.contentType))
			}
			res := w.env.Do(t, http.MethodPost, path, tt.body, opts...).Expect(t, http.StatusOK)
			var got unsubscribeBody
			res.JSON(t, &got)
			if !got.Unsubscribed || got.UnsubscribedAt == nil || got.Email != "j***@example.com" {
				t.Fatalf("response = %+v", got)
			}
			if st, reason := w.status(t, w.scheduled); st != drip.DeliveryCancelled || !strings.HasPrefix(reason, "unsubscribed: ") {
				t.Errorf("scheduled marketing email = %s %q, want cancelled: unsubscribed", st, reason)
			}
			if st, _ := w.status(t, w.reminder); st != drip.DeliveryScheduled {
				t.Errorf("the transactional reminder became %s", st)
			}
			var consent models.Consent
			ok(t, w.env.DB.Take(&consent, "participant_id = ?", w.jane.ID).Error)
			if consent.Granted || consent.Kind != models.ConsentMarketing || consent.IP == nil || *consent.IP != "198.51.100.7" {
				t.Errorf("consent = %+v, want a withdrawn marketing consent from the client's address", consent)
			}

			// Clicking again is harmless and keeps the first moment.
			first := *got.UnsubscribedAt
			w.env.Clock.Advance(time.Hour)
			w.env.Do(t, http.MethodPost, path, tt.body, opts...).Expect(t, http.StatusOK).JSON(t, &got)
			if !got.Unsubscribed || !got.UnsubscribedAt.Equal(first) {
				t.Errorf("second POST = %+v, want unsubscribed since %v", got, first)
			}
			if n := w.env.Count(t, "consents"); n != 1 {
				t.Errorf("%d consent rows, want 1", n)
			}
		})
	}
}

// Scanners and link previews fetch URLs: a GET describes and changes
// nothing. A browser gets a page whose button POSTs back.
func TestUnsubscribeGETDoesNotUnsubscribe(t *testing.T) {
	w := newMailWorld(t)
	path := "/v1/unsubscribe/" + w.jane.UnsubscribeToken
	var got unsubscribeBody
	res := w.env.Do(t, http.MethodGet, path, nil).Expect(t, http.StatusOK)
	res.JSON(t, &got)
	if got.Unsubscribed || got.UnsubscribedAt != nil || got.Email != "j***@example.com" {
		t.Errorf("GET = %+v", got)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	browser := apitest.Header("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	res = w.env.Do(t, http.MethodGet, path, nil, browser).Expect(t, http.StatusOK)
	page := string(res.Body)
	if !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") || !strings.Contains(page, `<form method="post">`) ||
		!strings.Contains(page, "j***@example.com") || strings.Contains(page, "jane@example.com") {
		t.Errorf("page = %s", page)
	}
	// The link carries her token: the page runs nothing and leaks no referrer.
	checkStrictPage(t, res)
	if st, _ := w.status(t, w.scheduled); st != drip.DeliveryScheduled {
		t.Errorf("a GET changed the marketing email to %s", st)
	}
	var p people.Participant
	ok(t, w.env.DB.Take(&p, "id = ?", w.jane.ID).Error)
	if p.MarketingUnsubscribedAt != nil || w.env.Count(t, "consents") != 0 {
		t.Fatal("a GET unsubscribed her")
	}

	// The page's button: a browser form POST, answered with a page.
	res = w.env.Do(t, http.MethodPost, path, "List-Unsubscribe=One-Click", browser,
		apitest.Header("Content-Type", "application/x-www-form-urlencoded")).Expect(t, http.StatusOK)
	if !strings.Contains(string(res.Body), "You are unsubscribed") {
		t.Errorf("confirmation page = %s", res.Body)
	}
	checkStrictPage(t, res)
	w.env.Do(t, http.MethodGet, path, nil).Expect(t, http.StatusOK).JSON(t, &got)
	if !got.Unsubscribed {
		t.Error("GET after the POST does not show her unsubscribed")
	}
}

func TestUnsubscribeUnknownTokenIs404(t *testing.T) {
	w := newMailWorld(t)
	for _, token := range []string{strings.Repeat("ab", 32), "short"} {
		w.env.Do(t, http.MethodGet, "/v1/unsubscribe/"+token, nil).ExpectProblem(t, http.StatusNotFound, "not_found")
		w.env.Do(t, http.MethodPost, "/v1/unsubscribe/"+token, "List-Unsubscribe=One-Click",
			apitest.Header("Content-Type", "application/x-www-form-urlencoded")).ExpectProblem(t, http.StatusNotFound, "not_found")
	}
}

// resendEvent is a webhook body in Resend's shape.
func resendEvent(typ, emailID, to string, bounceType string) []byte {
	data := map[string]any{"created_at": "2026-03-02T09:00:00.000000+00:00", "email_id": emailID,
		"from": "Grace <grace@example.com>", "to": []string{to}, "subject": "Welcome"}
	if bounceType != "" {
		data["bounce"] = map[string]any{"type": bounceType, "subType": "General", "message": "550 5.1.1 no such user"}
	}
	b, _ := json.Marshal(map[string]any{"type": typ, "created_at": time.Now().UTC().Format(time.RFC3339Nano), "data": data})
	return b
}

// post sends body to the webhook with the given signature headers.
func (w *mailWorld) post(t *testing.T, body []byte, h http.Header) *apitest.Response {
	t.Helper()
	var opts []apitest.Option
	for k := range h {
		opts = append(opts, apitest.Header(k, h.Get(k)))
	}
	return w.env.Do(t, http.MethodPost, "/v1/webhooks/resend", body, opts...)
}

func (w *mailWorld) deliver(t *testing.T, svixID string, body []byte) *apitest.Response {
	t.Helper()
	return w.post(t, body, emails.SignTestWebhook(w.secret, svixID, time.Now(), body))
}

type suppressionList struct {
	Data []struct {
		Email  string  `json:"email"`
		Reason string  `json:"reason"`
		Detail *string `json:"detail"`
	} `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

func TestResendWebhookSuppressesHardBouncesAndComplaints(t *testing.T) {
	tests := []struct {
		name, typ, bounceType string
		reason                drip.SuppressionReason // "" means not suppressed
	}{
		{"hard bounce", drip.EmailEventBounced, "Permanent", drip.SuppressionBounced},
		{"complaint", drip.EmailEventComplained, "", drip.SuppressionComplained},
		{"soft bounce", drip.EmailEventBounced, "Transient", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newMailWorld(t)
			w.deliver(t, "msg_"+uuid.NewString(), resendEvent(tt.typ, *w.sent.ResendID, w.jane.Email, tt.bounceType)).Expect(t, http.StatusOK)
			if n := w.env.Count(t, "resend_events"); n != 1 {
				t.Errorf("%d events stored, want 1", n)
			}
			var list suppressionList
			w.env.Do(t, http.MethodGet, "/v1/admin/suppressions", nil, apitest.Token(w.admin)).Expect(t, http.StatusOK).JSON(t, &list)
			for _, d := range []drip.EmailDelivery{w.scheduled, w.reminder} {
				st, reason := w.status(t, d)
				if tt.reason == "" && st != drip.DeliveryScheduled {
					t.Errorf("a %s cancelled a delivery: %s %q", tt.name, st, reason)
				}
				if tt.reason != "" && (st != drip.DeliveryCancelled || reason != "suppressed: "+string(tt.reason)) {
					t.Errorf("delivery = %s %q, want cancelled: suppressed: %s", st, reason, tt.reason)
				}
			}
			if tt.reason == "" {
				if len(list.Data) != 0 {
					t.Errorf("suppressions = %+v, want none", list.Data)
				}
				return
			}
			if len(list.Data) != 1 || list.Data[0].Email != w.jane.Email || list.Data[0].Reason != string(tt.reason) || list.Data[0].Detail == nil {
				t.Errorf("suppressions = %+v, want %s %s with a detail", list.Data, w.jane.Email, tt.reason)
			}
		})
	}
}

func TestResendWebhookSignatures(t *testing.T) {
	w := newMailWorld(t)
	body := resendEvent(drip.EmailEventComplained, *w.sent.ResendID, w.jane.Email, "")
	now := time.Now()
	tampered := bytes.Replace(body, []byte("email.complained"), []byte("email.delivered"), 1)
	tests := []struct {
		name   string
		body   []byte
		header http.Header
	}{
		{"tampered body", tampered, emails.SignTestWebhook(w.secret, "msg_t", now, body)},
		{"wrong secret", body, emails.SignTestWebhook(emails.NewTestWebhookSecret("attacker"), "msg_t", now, body)},
		{"stale", body, emails.SignTestWebhook(w.secret, "msg_t", now.Add(-10*time.Minute), body)},
		{"unsigned", body, http.Header{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w.post(t, tt.body, tt.header).ExpectProblem(t, http.StatusBadRequest, "invalid_signature")
		})
	}
	if n := w.env.Count(t, "resend_events"); n != 0 {
		t.Fatalf("%d events stored from refused requests", n)
	}
	if n := w.env.Count(t, "email_suppressions"); n != 0 {
		t.Fatal("a refused request suppressed an address")
	}

	// Valid, then replayed (Resend retries with the same svix-id): applied
	// once. Lifting the suppression in between shows the replay did nothing.
	w.deliver(t, "msg_once", body).Expect(t, http.StatusOK)
	w.env.Do(t, http.MethodDelete, "/v1/admin/suppressions/"+w.jane.Email, nil, apitest.Token(w.admin)).Expect(t, http.StatusNoContent)
	var res struct {
		Received bool `json:"received"`
	}
	w.deliver(t, "msg_once", body).Expect(t, http.StatusOK).JSON(t, &res)
	if !res.Received {
		t.Error("a replay must be acknowledged")
	}
	if n := w.env.Count(t, "resend_events"); n != 1 {
		t.Errorf("%d events after a replay, want 1", n)
	}
	if n := w.env.Count(t, "email_suppressions"); n != 0 {
		t.Error("the replay suppressed the address again")
	}
}

func TestResendWebhookNotConfiguredIs503(t *testing.T) {
	env := apitest.NewEnv(t)
	body := resendEvent(drip.EmailEventDelivered, "e1", "jane@example.com", "")
	h := emails.SignTestWebhook(emails.NewTestWebhookSecret("x"), "msg_1", time.Now(), body)
	env.Do(t, http.MethodPost, "/v1/webhooks/resend", body, apitest.Header("svix-id", h.Get("svix-id")),
		apitest.Header("svix-timestamp", h.Get("svix-timestamp")), apitest.Header("svix-signature", h.Get("svix-signature"))).
		ExpectProblem(t, http.StatusServiceUnavailable, "webhooks_unavailable")
}

// A failure of ours must be a 5xx, so Resend delivers the event again, and
// the retry is then applied.
func TestResendWebhookDatabaseFailureAsksForARetry(t *testing.T) {
	w := newMailWorld(t)
	body := resendEvent(drip.EmailEventBounced, *w.sent.ResendID, w.jane.Email, "Permanent")
	ok(t, w.env.DB.Exec(`ALTER TABLE email_suppressions RENAME TO email_suppressions_away`).Error)
	res := w.deliver(t, "msg_retry", body)
	if res.Status < 500 {
		t.Fatalf("status = %d, want 5xx", res.Status)
	}
	ok(t, w.env.DB.Exec(`ALTER TABLE email_suppressions_away RENAME TO email_suppressions`).Error)
	if n := w.env.Count(t, "resend_events"); n != 0 {
		t.Fatal("the failed event was stored, so its retry would be skipped")
	}
	w.deliver(t, "msg_retry", body).Expect(t, http.StatusOK)
	if n := w.env.Count(t, "email_suppressions"); n != 1 {
		t.Errorf("%d suppressions after the retry, want 1", n)
	}
}

type deliveryList struct {
	Data []struct {
		ID        uuid.UUID `json:"id"`
		Status    string    `json:"status"`
		LastError *string   `json:"last_error"`
		ResendID  *string   `json:"resend_id"`
		Attempts  int       `json:"attempts"`
		Events    []struct {
			Type       string    `json:"type"`
			OccurredAt time.Time `json:"occurred_at"`
		} `json:"events"`
	} `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

func (l deliveryList) ids() []uuid.UUID {
	out := []uuid.UUID{}
	for _, d := range l.Data {
		out = append(out, d.ID)
	}
	return out
}

func TestDeliveryLogShowsEventsAndReasons(t *testing.T) {
	w := newMailWorld(t)
	for i, typ := range []string{drip.EmailEventSent, drip.EmailEventDelivered, drip.EmailEventOpened, drip.EmailEventClicked} {
		w.deliver(t, fmt.Sprintf("msg_%d", i), resendEvent(typ, *w.sent.ResendID, w.jane.Email, "")).Expect(t, http.StatusOK)
		time.Sleep(2 * time.Millisecond) // created_at is the wall clock here
	}
	w.env.Do(t, http.MethodPost, "/v1/unsubscribe/"+w.jane.UnsubscribeToken, nil).Expect(t, http.StatusOK)

	var list deliveryList
	w.env.Do(t, http.MethodGet, "/v1/admin/emails?participant_id="+w.jane.ID.String(), nil, apitest.Token(w.admin)).
		Expect(t, http.StatusOK).JSON(t, &list)
	if want := []uuid.UUID{w.reminder.ID, w.scheduled.ID, w.sent.ID}; fmt.Sprint(list.ids()) != fmt.Sprint(want) {
		t.Fatalf("ids = %v, want newest first %v", list.ids(), want)
	}
	sent := list.Data[2]
	var types []string
	for _, e := range sent.Events {
		types = append(types, e.Type)
	}
	if want := "[email.sent email.delivered email.opened email.clicked]"; fmt.Sprint(types) != want || sent.ResendID == nil || sent.Attempts != 1 {
		t.Errorf("sent delivery = %+v, events %v, want %s", sent, types, want)
	}
	if c := list.Data[1]; c.Status != string(drip.DeliveryCancelled) || c.LastError == nil || !strings.HasPrefix(*c.LastError, "unsubscribed: ") {
		t.Errorf("unsubscribed delivery = %+v", c)
	}

	w.env.Do(t, http.MethodGet, "/v1/admin/emails?status=cancelled", nil, apitest.Token(w.admin)).Expect(t, http.StatusOK).JSON(t, &list)
	if fmt.Sprint(list.ids()) != fmt.Sprint([]uuid.UUID{w.scheduled.ID}) {
		t.Errorf("status=cancelled ids = %v", list.ids())
	}
	w.env.Do(t, http.MethodGet, "/v1/admin/emails?sequence_id="+w.reminders.SequenceID.String(), nil, apitest.Token(w.admin)).
		Expect(t, http.StatusOK).JSON(t, &list)
	if fmt.Sprint(list.ids()) != fmt.Sprint([]uuid.UUID{w.reminder.ID}) {
		t.Errorf("sequence_id ids = %v", list.ids())
	}
	w.env.Do(t, http.MethodGet, "/v1/admin/emails?limit=2", nil, apitest.Token(w.admin)).Expect(t, http.StatusOK).JSON(t, &list)
	if len(list.Data) != 2 || list.NextCursor == nil {
		t.Fatalf("first page = %d rows, cursor %v", len(list.Data), list.NextCursor)
	}
	w.env.Do(t, http.MethodGet, "/v1/admin/emails?limit=2&cursor="+*list.NextCursor, nil, apitest.Token(w.admin)).Expect(t, http.StatusOK).JSON(t, &list)
	if fmt.Sprint(list.ids()) != fmt.Sprint([]uuid.UUID{w.sent.ID}) || list.NextCursor != nil {
		t.Errorf("second page = %v", list.ids())
	}

	for _, q := range []string{"status=bounced", "participant_id=nope", "sequence_id=42"} {
		w.env.Do(t, http.MethodGet, "/v1/admin/emails?"+q, nil, apitest.Token(w.admin)).ExpectProblem(t, http.StatusBadRequest, "invalid_query")
	}
	w.env.Do(t, http.MethodGet, "/v1/admin/emails", nil).ExpectProblem(t, http.StatusUnauthorized, "unauthorized")
}

// A coach sees the deliveries of the cohorts she leads or co-leads; a lead's
// free-workshop emails belong to no cohort and are the admin's.
func TestDeliveryLogIsScopedToHerCohorts(t *testing.T) {
	w := newMailWorld(t)
	tests := []struct {
		name  string
		token string
		want  []uuid.UUID
	}{
		{"admin", w.admin, []uuid.UUID{w.reminder.ID, w.scheduled.ID, w.sent.ID}},
		{"the cohort's coach", w.lead, []uuid.UUID{w.reminder.ID}},
		{"a coach of no cohort", w.stranger, []uuid.UUID{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var list deliveryList
			w.env.Do(t, http.MethodGet, "/v1/admin/emails", nil, apitest.Token(tt.token)).Expect(t, http.StatusOK).JSON(t, &list)
			if fmt.Sprint(list.ids()) != fmt.Sprint(tt.want) {
				t.Errorf("ids = %v, want %v", list.ids(), tt.want)
			}
		})
	}
}

func TestSuppressionDelete(t *testing.T) {
	w := newMailWorld(t)
	w.deliver(t, "msg_c", resendEvent(drip.EmailEventComplained, "", "Mia+drip@Example.com", "")).Expect(t, http.StatusOK)
	var list suppressionList
	w.env.Do(t, http.MethodGet, "/v1/admin/suppressions", nil, apitest.Token(w.admin)).Expect(t, http.StatusOK).JSON(t, &list)
	if len(list.Data) != 1 || list.Data[0].Email != "mia+drip@example.com" {
		t.Fatalf("suppressions = %+v", list.Data)
	}
	w.env.Do(t, http.MethodDelete, "/v1/admin/suppressions/mia+drip%40example.com", nil, apitest.Token(w.lead)).
		ExpectProblem(t, http.StatusForbidden, "forbidden")
	w.env.Do(t, http.MethodDelete, "/v1/admin/suppressions/mia+drip%40example.com", nil, apitest.Token(w.admin)).Expect(t, http.StatusNoContent)
	w.env.Do(t, http.MethodDelete, "/v1/admin/suppressions/mia+drip@example.com", nil, apitest.Token(w.admin)).
		ExpectProblem(t, http.StatusNotFound, "not_found")
	if n := w.env.Count(t, "email_suppressions"); n != 0 {
		t.Errorf("%d suppressions left", n)
	}
}

// A signed event whose content PostgreSQL cannot hold as sent is still a
// 200, never a 5xx that Resend would redeliver forever: it is stored with
// the bytes as received, applied when its identity is sound, and kept as
// rejected, with the reason, when it cannot be what it claims.
func TestResendWebhookStoresWhatPostgresCannotHold(t *testing.T) {
	event := func(typ, emailID, subject, message string) []byte {
		return []byte(`{"type":"` + typ + `","created_at":"2026-03-02T09:00:00.000Z","data":{"email_id":"` + emailID +
			`","to":["jane@example.com"],"subject":"` + subject + `","bounce":{"type":"Permanent","message":"` + message + `"}}}`)
	}
	tests := []struct {
		name     string
		body     func(w *mailWorld) []byte
		rejected string // "" when applied
	}{
		{"NUL in the subject", func(w *mailWorld) []byte { return event("email.bounced", *w.sent.ResendID, `Wel\u0000come`, "550") }, ""},
		{"lone surrogate", func(w *mailWorld) []byte { return event("email.bounced", *w.sent.ResendID, `\ud800`, "550") }, ""},
		{"raw invalid UTF-8", func(w *mailWorld) []byte { return event("email.bounced", *w.sent.ResendID, "\xff\xfe", "550 \xc3") }, ""},
		{"NUL in the bounce message", func(w *mailWorld) []byte { return event("email.bounced", *w.sent.ResendID, "Hi", `550\u0000 gone`) }, ""},
		{"7,000-character email_id", func(w *mailWorld) []byte { return event("email.bounced", strings.Repeat("e", 7000), "Hi", "550") },
			"email_id is not a Resend id (7000 bytes)"},
		{"NUL in the email_id", func(w *mailWorld) []byte { return event("email.bounced", *w.sent.ResendID+`\u0000`, "Hi", "550") },
			"email_id holds characters no Resend id has"},
		{"NUL in the type", func(w *mailWorld) []byte { return event(`email.bounced\u0000`, *w.sent.ResendID, "Hi", "550") },
			"type is not an event type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newMailWorld(t)
			body := tt.body(w)
			w.deliver(t, "msg_odd", body).Expect(t, http.StatusOK)
			var rows []struct {
				PayloadRaw []byte
				Rejected   *string
			}
			ok(t, w.env.DB.Raw(`SELECT payload_raw, rejected FROM resend_events WHERE svix_id = 'msg_odd'`).Scan(&rows).Error)
			if len(rows) != 1 || !bytes.Equal(rows[0].PayloadRaw, body) {
				t.Fatalf("stored %d events, want 1 with the body as received", len(rows))
			}
			if got := rows[0].Rejected; (got == nil) != (tt.rejected == "") || (got != nil && *got != tt.rejected) {
				t.Fatalf("rejected = %v, want %q", got, tt.rejected)
			}
			wantSuppressed := int64(0)
			if tt.rejected == "" {
				wantSuppressed = 1
			}
			if n := w.env.Count(t, "email_suppressions"); n != wantSuppressed {
				t.Fatalf("%d suppressions, want %d", n, wantSuppressed)
			}
			// Resend's retry of the same event changes nothing.
			w.deliver(t, "msg_odd", body).Expect(t, http.StatusOK)
			if n := w.env.Count(t, "resend_events"); n != 1 {
				t.Fatalf("%d events after the retry, want 1", n)
			}
		})
	}
}

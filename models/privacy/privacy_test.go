package privacy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/domain"
	"github.com/grace-coaching/grace/models/drip"
	"github.com/grace-coaching/grace/models/enroll"
	"github.com/grace-coaching/grace/models/enroll/enrolltest"
	"github.com/grace-coaching/grace/models/modelstest"
	"github.com/grace-coaching/grace/models/people"
)

// Her, as a stranger or an abuser would search for her.
const (
	herEmail = "zelda.quokka@example.org"
	herName  = "Zelda Quokkabright"
	herIP    = "198.51.100.77"
	herUA    = "Mozilla/5.0 (ZeldaPhone)"
)

var herClient = models.ClientInfo{IP: herIP, UserAgent: herUA}

type world struct {
	t     *testing.T
	svc   *domain.Services
	db    *gorm.DB
	clock *models.FakeClock
	gw    *enrolltest.Gateway
}

func newWorld(t *testing.T) *world {
	t.Helper()
	db := modelstest.NewDB(t)
	clock := models.NewFakeClock(modelstest.Start)
	gw := enrolltest.New()
	svc := domain.New(domain.Deps{DB: db, Clock: clock, Limits: modelstest.Limits(), Payments: gw, AppBaseURL: "http://portal.test"})
	return &world{t: t, svc: svc, db: db, clock: clock, gw: gw}
}

func (w *world) exec(sql string, args ...any) {
	w.t.Helper()
	if err := w.db.Exec(sql, args...).Error; err != nil {
		w.t.Fatalf("%s: %v", sql, err)
	}
}

func (w *world) id(sql string, args ...any) uuid.UUID {
	w.t.Helper()
	var id uuid.UUID
	if err := w.db.Raw(sql, args...).Row().Scan(&id); err != nil {
		w.t.Fatalf("%s: %v", sql, err)
	}
	return id
}

// fill walks her through everything Grace does with a woman: a drip
// sequence waits for her, she claims free access, signs in, pays for a
// cohort (Stripe reports it), joins a waitlist, gets emails (Resend
// reports on them, one bounces), subscribes a calendar, asks for an
// erase code; and rows from before keys were hashed name her in clear.
func (w *world) fill() *people.Participant {
	t, ctx := w.t, context.Background()
	t.Helper()
	program := w.id(`INSERT INTO programs (slug, title, status, free_access_until) VALUES ('no-contact', 'No Contact', 'published', ?) RETURNING id`,
		w.clock.Now().Add(30*24*time.Hour))
	seq := w.id(`INSERT INTO email_sequences (name, trigger, program_id, kind, active) VALUES ('welcome', 'free_access_claimed', ?, 'transactional', true) RETURNING id`, program)
	w.exec(`INSERT INTO email_steps (sequence_id, position, offset_minutes, subject, body) VALUES (?, 1, 0, 'Welcome', 'Hello {{name}}')`, seq)

	modelstest.MustDo(t, w.svc.People.ClaimFreeAccess(ctx, "no-contact", people.FreeAccessInput{Email: herEmail, Name: herName,
		MarketingConsent: true, DisclaimerAccepted: true}, herClient))
	w.runTasks()
	var token string
	if err := w.db.Raw(`SELECT data->>'token' FROM outbox WHERE template = 'login_link' AND to_email = ?`, herEmail).Row().Scan(&token); err != nil {
		t.Fatal(err)
	}
	_, _, p, err := w.svc.People.ExchangeLoginToken(ctx, token, herClient)
	modelstest.MustDo(t, err)

	cohort := w.id(`INSERT INTO cohorts (program_id, name, starts_at, ends_at, timezone, capacity, price_cents, currency, status)
		VALUES (?, 'Spring', ?, ?, 'Europe/Berlin', 10, 9700, 'EUR', 'open') RETURNING id`, program,
		w.clock.Now().Add(7*24*time.Hour), w.clock.Now().Add(60*24*time.Hour))
	modelstest.MustDo(t, w.svc.Enroll.StartCheckout(ctx, cohort, enroll.CheckoutInput{Email: herEmail, Name: herName, DisclaimerAccepted: true}, herClient))
	w.runTasks()
	var checkoutToken string
	if err := w.db.Raw(`SELECT data->>'token' FROM outbox WHERE template = 'checkout_link' AND to_email = ?`, herEmail).Row().Scan(&checkoutToken); err != nil {
		t.Fatal(err)
	}
	res, err := w.svc.Enroll.RedeemCheckoutLink(ctx, checkoutToken, herClient)
	modelstest.MustDo(t, err)
	payload := fmt.Sprintf(`{"id":"evt_1","type":"checkout.session.completed","data":{"object":{"id":%q,"customer":"cus_zelda",
		"customer_details":{"email":%q,"name":%q}}}}`, *res.Enrollment.CheckoutSessionID, herEmail, herName)
	modelstest.MustDo(t, w.svc.Enroll.ApplyPaymentEvent(ctx, enroll.PaymentEvent{ID: "evt_1", Type: enroll.EventCheckoutCompleted,
		Payload: []byte(payload), Session: &enroll.CheckoutSession{ID: *res.Enrollment.CheckoutSessionID, Status: enroll.SessionComplete,
			PaymentStatus: "paid", PaymentIntentID: "pi_zelda", AmountTotal: 9700, Currency: "EUR", EnrollmentID: res.Enrollment.ID.String()}}))

	full := w.id(`INSERT INTO cohorts (program_id, name, starts_at, ends_at, timezone, capacity, price_cents, currency, status, seats_paid)
		VALUES (?, 'Summer', ?, ?, 'Europe/Berlin', 1, 9700, 'EUR', 'open', 1) RETURNING id`, program,
		w.clock.Now().Add(90*24*time.Hour), w.clock.Now().Add(120*24*time.Hour))
	modelstest.MustDo(t, w.svc.Enroll.JoinWaitlist(ctx, full, enroll.WaitlistInput{Email: herEmail, Name: herName}, herClient))
	w.runTasks()

	// Her drip email went out (its body frozen), and Resend reported it
	// delivered; another email of hers bounced.
	w.exec(`UPDATE email_deliveries SET status = 'sent', sent_at = ?, resend_id = 're_zelda',
		rendered = jsonb_build_object('subject', 'Welcome', 'html', '<p>Hello ' || ?::text || '</p>', 'to', ?::text) WHERE participant_id = ?`,
		w.clock.Now(), herName, herEmail, p.ID)
	w.exec(`UPDATE outbox SET status = 'sent', sent_at = ?, provider_message_id = 're_login' WHERE to_email = ?`, w.clock.Now(), herEmail)
	for i, typ := range []string{drip.EmailEventDelivered, drip.EmailEventBounced} {
		body := fmt.Sprintf(`{"type":%q,"data":{"email_id":"re_zelda","to":[%q],"subject":"Hello %s"}}`, typ, herEmail, herName)
		modelstest.MustDo(t, w.svc.Drip.ApplyEmailEvent(ctx, drip.EmailEvent{SvixID: fmt.Sprintf("msg_%d", i), Type: typ,
			ResendEmailID: "re_zelda", To: []string{herEmail}, OccurredAt: w.clock.Now(), Payload: []byte(body)}))
	}

	_, err = w.svc.Enroll.RotateCalendarToken(ctx, p)
	modelstest.MustDo(t, err)
	modelstest.MustDo(t, w.svc.Privacy.RequestEraseCode(ctx, p))
	w.exec(`INSERT INTO idempotency_keys (scope, key, request_hash, status_code, response_body) VALUES ('checkout', 'k1', '\x00', 201, convert_to(?, 'UTF8'))`,
		`{"email":"`+strings.ToUpper(herEmail)+`"}`)
	w.exec(`INSERT INTO rate_limits (key, window_start, hits) VALUES (?, ?, 1)`, "free:email:"+herEmail, w.clock.Now())
	return p
}

// runTasks is the task worker's turn after a public form: the form only
// leaves a task, the worker does her part of it.
func (w *world) runTasks() {
	w.t.Helper()
	if _, err := w.svc.Kernel.RunTasksOnce(context.Background()); err != nil {
		w.t.Fatal(err)
	}
}

// column is one column that can hold text about her.
type column struct{ table, name, typ string }

// columns discovers, at test time, every column of every table that can
// hold her address, name or IP: tables added later are searched too.
func columns(t *testing.T, db *gorm.DB) []column {
	t.Helper()
	var cols []column
	rows, err := db.Raw(`
		SELECT c.table_name, c.column_name, c.data_type
		FROM information_schema.columns c
		JOIN information_schema.tables tb ON tb.table_schema = c.table_schema AND tb.table_name = c.table_name
		WHERE c.table_schema = 'public' AND tb.table_type = 'BASE TABLE' AND c.table_name <> 'goose_db_version'
		  AND c.data_type IN ('text', 'character varying', 'character', 'jsonb', 'json', 'bytea', 'inet', 'ARRAY', 'uuid')
		ORDER BY 1, 2`).Rows()
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var c column
		if err := rows.Scan(&c.table, &c.name, &c.typ); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, c)
	}
	if len(cols) < 30 {
		t.Fatalf("discovered only %d columns", len(cols))
	}
	return cols
}

// mentions is the condition that a column's value contains needle, in
// any case; bytea is searched as bytes and as text.
func mentions(c column) string {
	q := `"` + c.name + `"`
	switch c.typ {
	case "bytea":
		return "(position(convert_to(@n, 'UTF8') in " + q + ") > 0 OR strpos(lower(encode(" + q + ", 'escape')), @n) > 0)"
	case "inet":
		return "strpos(lower(host(" + q + ")), @n) > 0"
	case "uuid":
		return "false"
	default:
		return "strpos(lower(" + q + "::text), @n) > 0"
	}
}

// aboutHer counts, per table, the rows that mention a needle or
// reference one of ids in a uuid column.
func aboutHer(t *testing.T, db *gorm.DB, needles []string, ids []uuid.UUID) map[string]int64 {
	t.Helper()
	byTable := map[string][]column{}
	var order []string
	for _, c := range columns(t, db) {
		if _, ok := byTable[c.table]; !ok {
			order = append(order, c.table)
		}
		byTable[c.table] = append(byTable[c.table], c)
	}
	out := map[string]int64{}
	for _, table := range order {
		var conds []string
		args := map[string]any{"ids": ids}
		for i, n := range needles {
			args[fmt.Sprintf("n%d", i)] = strings.ToLower(n)
		}
		for _, c := range byTable[table] {
			if c.typ == "uuid" {
				if len(ids) > 0 {
					conds = append(conds, `"`+c.name+`" IN @ids`)
				}
				continue
			}
			for i := range needles {
				conds = append(conds, strings.ReplaceAll(mentions(c), "@n", fmt.Sprintf("@n%d", i)))
			}
		}
		if len(conds) == 0 {
			continue
		}
		var n int64
		if err := db.Raw(`SELECT count(*) FROM "`+table+`" WHERE `+strings.Join(conds, " OR "), args).Row().Scan(&n); err != nil {
			t.Fatalf("search %s: %v", table, err)
		}
		if n > 0 {
			out[table] = n
		}
	}
	return out
}

var needles = []string{herEmail, herName, herIP, herUA, strings.ToUpper(herEmail)}

func TestEraseLeavesNoRowAnywhereThatNamesHer(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	p := w.fill()

	before := aboutHer(t, w.db, needles, nil)
	// The fill reached every room, or the test proves nothing.
	for _, table := range []string{"participants", "consents", "outbox", "email_deliveries", "stripe_events", "resend_events",
		"email_suppressions", "idempotency_keys", "rate_limits"} {
		if before[table] == 0 {
			t.Errorf("before erasure no row of %s names her: the fill missed it", table)
		}
	}

	first, err := w.svc.Privacy.Erase(ctx, p.ID)
	modelstest.MustDo(t, err)
	if left := aboutHer(t, w.db, needles, nil); len(left) > 0 {
		t.Fatalf("after erasure rows still name her: %v", left)
	}
	// Payments stay, as anonymous amounts.
	var paid int64
	if err := w.db.Raw(`SELECT sum(amount_paid_cents) FROM enrollments WHERE participant_id = ?`, p.ID).Row().Scan(&paid); err != nil || paid != 9700 {
		t.Errorf("paid after erasure = %d, %v; want the 9700 accounting keeps", paid, err)
	}
	// Stripe was asked to delete her customers: the one its event named
	// and any under her address.
	er := w.gw.CustomerErasures()
	if len(er) != 1 || er[0].Email != herEmail || len(er[0].CustomerIDs) != 1 || er[0].CustomerIDs[0] != "cus_zelda" {
		t.Errorf("customer erasures = %+v, want cus_zelda and her address", er)
	}

	// Idempotent: again, nothing fails, nothing reappears, the first time stays.
	again, err := w.svc.Privacy.Erase(ctx, p.ID)
	modelstest.MustDo(t, err)
	if !again.Equal(first) {
		t.Errorf("second erasure says %v, want the first's %v", again, first)
	}
	if left := aboutHer(t, w.db, needles, nil); len(left) > 0 {
		t.Fatalf("after a second erasure rows name her: %v", left)
	}

	// Someone else types her address: a participant is made, but no email
	// reaches her.
	modelstest.MustDo(t, w.svc.People.ClaimFreeAccess(ctx, "no-contact", people.FreeAccessInput{Email: herEmail, Name: "Someone Else",
		DisclaimerAccepted: true}, models.ClientInfo{IP: "203.0.113.5"}))
	modelstest.MustDo(t, w.svc.People.RequestLoginLink(ctx, herEmail, models.ClientInfo{IP: "203.0.113.5"}))
	var queued int64
	w.db.Raw(`SELECT count(*) FROM outbox WHERE to_email = ?`, herEmail).Row().Scan(&queued)
	if queued != 0 {
		t.Errorf("%d emails queued to her erased address", queued)
	}
}

func TestExportHoldsEveryTablesRowsAboutHer(t *testing.T) {
	w := newWorld(t)
	p := w.fill()
	var ids []uuid.UUID
	w.db.Raw(`SELECT id FROM enrollments WHERE participant_id = ?`, p.ID).Scan(&ids)
	ids = append(ids, p.ID)
	want := aboutHer(t, w.db, needles, ids)

	start := time.Now()
	x, err := w.svc.Privacy.Export(context.Background(), p.ID)
	modelstest.MustDo(t, err)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("export took %v", d)
	}
	for table, n := range want {
		if got := len(x.Tables[table]); int64(got) < n {
			t.Errorf("export has %d rows of %s, the schema holds %d about her", got, table, n)
		}
	}
	for _, secret := range []string{"token_hash", "code_hash", "unsubscribe_token"} {
		b, _ := json.Marshal(x.Tables)
		if strings.Contains(string(b), `"`+secret+`"`) {
			t.Errorf("export carries %s", secret)
		}
	}
	var consent map[string]any
	if len(x.Tables["consents"]) == 0 || json.Unmarshal(x.Tables["consents"][0], &consent) != nil || consent["ip"] != herIP || consent["document_id"] == nil {
		t.Errorf("export consents = %s, want her evidence and the document she saw", x.Tables["consents"])
	}
}

func TestEraseCodeIsCappedAndSingleUse(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	p := w.fill()
	modelstest.MustDo(t, w.svc.Privacy.RequestEraseCode(ctx, p))
	var code string
	if err := w.db.Raw(`SELECT data->>'code' FROM outbox WHERE template = 'erase_code' ORDER BY created_at DESC, id DESC LIMIT 1`).Row().Scan(&code); err != nil {
		t.Fatal(err)
	}
	var stored []byte
	w.db.Raw(`SELECT code_hash FROM erase_codes WHERE participant_id = ?`, p.ID).Row().Scan(&stored)
	if strings.Contains(string(stored), code) {
		t.Fatal("the erase code is stored in clear")
	}
	modelstest.WantCode(t, w.svc.Privacy.EraseWithCode(ctx, p, "12345"), "validation_failed")
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	for i := 0; i < privacyMaxAttempts; i++ {
		modelstest.WantCode(t, w.svc.Privacy.EraseWithCode(ctx, p, wrong), "invalid_code")
	}
	// Past the cap even the right code is refused.
	modelstest.WantCode(t, w.svc.Privacy.EraseWithCode(ctx, p, code), "invalid_code")
	var erased *time.Time
	w.db.Raw(`SELECT erased_at FROM participants WHERE id = ?`, p.ID).Row().Scan(&erased)
	if erased != nil {
		t.Fatal("erased by a capped code")
	}

	// A fresh code works, once, and expires.
	modelstest.MustDo(t, w.svc.Privacy.RequestEraseCode(ctx, p))
	w.db.Raw(`SELECT data->>'code' FROM outbox WHERE template = 'erase_code' ORDER BY created_at DESC, id DESC LIMIT 1`).Row().Scan(&code)
	w.clock.Advance(16 * time.Minute)
	modelstest.WantCode(t, w.svc.Privacy.EraseWithCode(ctx, p, code), "invalid_code")
	modelstest.MustDo(t, w.svc.Privacy.RequestEraseCode(ctx, p))
	w.db.Raw(`SELECT data->>'code' FROM outbox WHERE template = 'erase_code' ORDER BY created_at DESC, id DESC LIMIT 1`).Row().Scan(&code)
	modelstest.MustDo(t, w.svc.Privacy.EraseWithCode(ctx, p, code))
	w.db.Raw(`SELECT erased_at FROM participants WHERE id = ?`, p.ID).Row().Scan(&erased)
	if erased == nil {
		t.Fatal("the right code did not erase her")
	}
}

const privacyMaxAttempts = 5

// Stripe failing midway erases nothing, and the same code works for the
// retry: she is not sent round for another email.
func TestEraseAfterProviderFailureRetriesWithTheSameCode(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	p := w.fill()
	w.clock.Advance(time.Minute)
	modelstest.MustDo(t, w.svc.Privacy.RequestEraseCode(ctx, p))
	var code string
	w.db.Raw(`SELECT data->>'code' FROM outbox WHERE template = 'erase_code' ORDER BY created_at DESC, id DESC LIMIT 1`).Row().Scan(&code)
	w.gw.Fail(enrolltest.DeleteCustomer, errors.Join(enroll.ErrPaymentProvider, errors.New("stripe down")))
	if err := w.svc.Privacy.EraseWithCode(ctx, p, code); !errors.Is(err, enroll.ErrPaymentProvider) {
		t.Fatalf("erase with Stripe down: %v", err)
	}
	if n := aboutHer(t, w.db, needles, nil); n["participants"] == 0 {
		t.Fatal("a failed erasure changed her row")
	}
	w.gw.Fail(enrolltest.DeleteCustomer, nil)
	modelstest.MustDo(t, w.svc.Privacy.EraseWithCode(ctx, p, code))
	if left := aboutHer(t, w.db, needles, nil); len(left) > 0 {
		t.Fatalf("rows still name her: %v", left)
	}
}

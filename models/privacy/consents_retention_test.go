package privacy_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/modelstest"
	"github.com/grace-coaching/grace/models/people"
)

func TestConsentDocumentEditsAreVersionsAndRepeatsAreNot(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	admin := modelstest.NewCoach(t, w.db, "admin@grace.test", people.RoleAdmin)

	for _, kind := range []string{"disclaimer", "privacy", "marketing"} {
		d, err := w.svc.Privacy.CurrentDocument(ctx, kind)
		modelstest.MustDo(t, err)
		if d.Version != 1 || strings.TrimSpace(d.Body) == "" || !strings.Contains(d.HTML, "<") {
			t.Errorf("seeded %s = v%d %q", kind, d.Version, d.Body)
		}
	}
	d, _ := w.svc.Privacy.CurrentDocument(ctx, "disclaimer")
	if !strings.Contains(d.Body, "not psychotherapy") {
		t.Errorf("the seeded disclaimer does not say it is not psychotherapy: %q", d.Body)
	}
	modelstest.WantCode(t, func() error { _, err := w.svc.Privacy.CurrentDocument(ctx, "cookies"); return err }(), "not_found")

	text := "## New wording\n\nCoaching, *not* therapy."
	v2, created, err := w.svc.Privacy.EditDocument(ctx, admin, "disclaimer", text)
	modelstest.MustDo(t, err)
	if !created || v2.Version != 2 || v2.Body != text || v2.EditedBy == nil || *v2.EditedBy != admin.ID {
		t.Fatalf("edit = %+v created %v, want version 2 by the admin with the exact text", v2, created)
	}
	same, created, err := w.svc.Privacy.EditDocument(ctx, admin, "disclaimer", text)
	modelstest.MustDo(t, err)
	if created || same.Version != 2 {
		t.Errorf("the same text again made version %d (created %v)", same.Version, created)
	}
	_, _, err = w.svc.Privacy.EditDocument(ctx, admin, "disclaimer", "   ")
	modelstest.WantCode(t, err, "validation_failed")

	// Concurrent editors of different texts each get their own version.
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		go func() {
			_, _, err := w.svc.Privacy.EditDocument(ctx, admin, "privacy", "text "+strings.Repeat("x", i+1))
			errs <- err
		}()
	}
	for i := 0; i < 4; i++ {
		modelstest.MustDo(t, <-errs)
	}
	cur, _ := w.svc.Privacy.CurrentDocument(ctx, "privacy")
	if cur.Version != 5 {
		t.Errorf("after 4 concurrent edits privacy is version %d, want 5", cur.Version)
	}
}

// Whether she accepted the first versioned disclaimer or a text from before
// consent texts were versioned documents (no document_id, a text version of
// its own, which counts as version 1), she is not locked out until a later
// version is published, and then she is asked again.
func TestDisclaimerVersionChangeForcesReacceptance(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before bool
	}{{"accepted version 1", false}, {"accepted before documents", true}} {
		t.Run(tc.name, func(t *testing.T) { disclaimerReacceptance(t, tc.before) })
	}
}

func disclaimerReacceptance(t *testing.T, beforeDocuments bool) {
	w := newWorld(t)
	ctx := context.Background()
	admin := modelstest.NewCoach(t, w.db, "admin@grace.test", people.RoleAdmin)
	p := w.fill()
	token := w.session(p)
	if beforeDocuments {
		w.exec(`UPDATE consents SET document_id = NULL, text_version = 'disclaimer-before-documents' WHERE participant_id = ? AND kind = 'disclaimer'`, p.ID)
	}

	_, ps, err := w.svc.People.AuthenticateParticipant(ctx, token)
	modelstest.MustDo(t, err)
	if ps.ConsentDue != nil {
		t.Fatalf("consent due before any change: %v", ps.ConsentDue)
	}
	_, _, err = w.svc.Privacy.EditDocument(ctx, admin, "disclaimer", "A new disclaimer.")
	modelstest.MustDo(t, err)
	_, ps, err = w.svc.People.AuthenticateParticipant(ctx, token)
	modelstest.MustDo(t, err)
	if ps.ConsentDue == nil || ps.ConsentDue.Code != "consent_required" || ps.ConsentDue.ConsentVersion != 2 || ps.ConsentDue.ConsentKind != "disclaimer" {
		t.Fatalf("consent due = %+v, want consent_required for disclaimer version 2", ps.ConsentDue)
	}

	_, err = w.svc.Privacy.AcceptConsent(ctx, p, "disclaimer", 1, herClient)
	modelstest.WantCode(t, err, "consent_version_stale")
	_, err = w.svc.Privacy.AcceptConsent(ctx, p, "marketing", 1, herClient)
	modelstest.WantCode(t, err, "validation_failed")
	c, err := w.svc.Privacy.AcceptConsent(ctx, p, "disclaimer", 2, herClient)
	modelstest.MustDo(t, err)
	if c.TextVersion != "2" || c.DocumentID == nil || c.IP == nil || *c.IP != herIP {
		t.Errorf("acceptance = %+v, want version 2 with her evidence", c)
	}
	again, err := w.svc.Privacy.AcceptConsent(ctx, p, "disclaimer", 2, herClient)
	modelstest.MustDo(t, err)
	if again.ID != c.ID {
		t.Error("accepting twice recorded a second consent")
	}
	_, ps, err = w.svc.People.AuthenticateParticipant(ctx, token)
	modelstest.MustDo(t, err)
	if ps.ConsentDue != nil {
		t.Errorf("consent still due after accepting: %v", ps.ConsentDue)
	}
}

// session signs her in again and returns the token.
func (w *world) session(p *people.Participant) string {
	w.t.Helper()
	w.clock.Advance(time.Minute) // her newest email is then the last one
	modelstest.MustDo(w.t, w.svc.People.RequestLoginLink(context.Background(), p.Email, models.ClientInfo{IP: "192.0.2.1"}))
	w.runTasks()
	var token string
	if err := w.db.Raw(`SELECT data->>'token' FROM outbox WHERE template = 'login_link' ORDER BY created_at DESC, id DESC LIMIT 1`).Row().Scan(&token); err != nil {
		w.t.Fatal(err)
	}
	s, _, _, err := w.svc.People.ExchangeLoginToken(context.Background(), token, models.ClientInfo{IP: "192.0.2.1"})
	modelstest.MustDo(w.t, err)
	return s
}

func TestRetentionForgetsOnScheduleAndOnlyOnce(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.fill()
	count := func(sql string) int64 {
		t.Helper()
		var n int64
		if err := w.db.Raw(sql).Row().Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	bodies := `SELECT count(*) FROM outbox WHERE status = 'sent' AND data <> '{}'::jsonb`
	drips := `SELECT count(*) FROM email_deliveries WHERE rendered IS NOT NULL`
	evidence := `SELECT count(*) FROM consents WHERE ip IS NOT NULL OR user_agent IS NOT NULL`
	hooks := `SELECT (SELECT count(*) FROM stripe_events WHERE payload <> '{}'::jsonb) + (SELECT count(*) FROM resend_events WHERE payload <> '{}'::jsonb)`
	sessions := `SELECT (SELECT count(*) FROM participant_sessions) + (SELECT count(*) FROM login_links) + (SELECT count(*) FROM erase_codes)`
	for _, q := range []string{bodies, drips, evidence, hooks, sessions} {
		if count(q) == 0 {
			t.Fatalf("nothing to forget for %s", q)
		}
	}

	// Day 1: only the expired links and codes go.
	w.clock.Advance(24 * time.Hour)
	r, err := w.svc.Privacy.RunRetention(ctx)
	modelstest.MustDo(t, err)
	if r["login_links"] == 0 || r["erase_codes"] == 0 || r["email_bodies"] != 0 || r["consent_evidence"] != 0 || r["stripe_payloads"] != 0 {
		t.Errorf("day 1 report = %v", r)
	}
	// Day 31: sessions (30 days) and webhook payloads (30 days) go.
	w.clock.Advance(30 * 24 * time.Hour)
	r, err = w.svc.Privacy.RunRetention(ctx)
	modelstest.MustDo(t, err)
	if count(hooks) != 0 || count(sessions) != 0 || count(bodies) == 0 {
		t.Errorf("day 31: report %v, hooks %d, sessions %d, bodies %d", r, count(hooks), count(sessions), count(bodies))
	}
	// Day 91: sent email bodies go; consent evidence stays.
	w.clock.Advance(60 * 24 * time.Hour)
	_, err = w.svc.Privacy.RunRetention(ctx)
	modelstest.MustDo(t, err)
	if count(bodies) != 0 || count(drips) != 0 || count(evidence) == 0 {
		t.Errorf("day 91: bodies %d, drip bodies %d, evidence %d", count(bodies), count(drips), count(evidence))
	}
	// After three years the evidence goes too; a second run finds nothing.
	w.clock.Advance(3 * 365 * 24 * time.Hour)
	_, err = w.svc.Privacy.RunRetention(ctx)
	modelstest.MustDo(t, err)
	if count(evidence) != 0 {
		t.Errorf("consent evidence kept past its period: %d", count(evidence))
	}
	r, err = w.svc.Privacy.RunRetention(ctx)
	modelstest.MustDo(t, err)
	for k, n := range r {
		if n != 0 {
			t.Errorf("a second run forgot %d more %s", n, k)
		}
	}
	// The decisions themselves stay: what she agreed to, and when.
	if count(`SELECT count(*) FROM consents`) == 0 {
		t.Error("retention deleted the consents themselves")
	}
}

// The worker's loop sweeps once at start, so a restarted process never
// waits a day for what is already due, and stops with its context.
func TestRetentionLoopSweepsAtStartAndStops(t *testing.T) {
	w := newWorld(t)
	w.fill()
	w.clock.Advance(time.Hour) // her sign-in links have expired
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.svc.Privacy.RunRetentionDaily(ctx, time.Hour); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int64
		if err := w.db.Raw(`SELECT count(*) FROM login_links`).Row().Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the loop did not sweep at start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the loop did not stop with its context")
	}
}

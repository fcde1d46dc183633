package emails_test

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/grace-coaching/grace/emails"
	"github.com/grace-coaching/grace/emails/emailstest"
	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/people"
)

// giveaways are words that tell whoever reads her inbox what she joined:
// the program, the cohort, the practice, the topic.
var giveaways = []string{"say no", "grace", "boundar", "abuse", "coach", "cohort", "program", "sign in", "sign-in", "welcome", "spring circle"}

var preheaderRE = regexp.MustCompile(`(?s)<div style="display:none;[^"]*" aria-hidden="true">(.*?)</div>`)

// preview is what a mail client shows beside the subject: the hidden
// preheader's visible text.
func preview(t *testing.T, html string) string {
	t.Helper()
	m := preheaderRE.FindStringSubmatch(html)
	if m == nil {
		t.Fatalf("no preheader in the HTML")
	}
	return m[1]
}

// assertNeutral fails when sender, subject or preview names anything.
func assertNeutral(t *testing.T, e emailstest.Email) {
	t.Helper()
	p := preview(t, e.HTML)
	for _, part := range []struct{ name, v string }{{"from", e.From}, {"subject", e.Subject}, {"preview", p}} {
		for _, w := range giveaways {
			if strings.Contains(strings.ToLower(part.v), w) {
				t.Errorf("%s of a discreet email %q says %q", part.name, part.v, w)
			}
		}
	}
	if e.Subject != emails.DefaultDiscreetSubject {
		t.Errorf("subject %q, want %q", e.Subject, emails.DefaultDiscreetSubject)
	}
	if stripped := strings.NewReplacer("&#847;", "", "&zwnj;", "", "&nbsp;", "").Replace(p); strings.TrimSpace(stripped) != "" {
		t.Errorf("preview says %q, want nothing", stripped)
	}
}

func discreetWorker(t *testing.T, h *harness, d emails.Discreet) *emails.Worker {
	t.Helper()
	r, err := emails.NewRenderer("https://app.grace.example/", "Grace", d)
	if err != nil {
		t.Fatal(err)
	}
	h.renderer = r
	return h.worker(t, emails.WorkerConfig{})
}

func deliveredTo(t *testing.T, fake *emailstest.Resend, addr, template string) emailstest.Email {
	t.Helper()
	for _, e := range fake.Delivered() {
		if len(e.To) == 1 && e.To[0] == addr && e.Tags["template"] == template {
			return e
		}
	}
	t.Fatalf("no %s email delivered to %s", template, addr)
	return emailstest.Email{}
}

func freeProgram(t *testing.T, h *harness) *catalog.Program {
	t.Helper()
	until := h.clock.Now().Add(30 * 24 * time.Hour)
	p, err := h.svc.Catalog.CreateProgram(context.Background(), catalog.ProgramInput{
		Slug: "say-no-with-grace", Title: "Say No With Grace: Boundaries After Abuse", Status: catalog.ProgramPublished,
		FreeAccessUntil: &until, Currency: "EUR",
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func claim(t *testing.T, h *harness, email string, discreet bool) {
	t.Helper()
	err := h.svc.People.ClaimFreeAccess(context.Background(), "say-no-with-grace", people.FreeAccessInput{
		Email: email, Name: "Ana", DisclaimerAccepted: true, Discreet: discreet,
	}, models.ClientInfo{IP: "203.0.113.7"})
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	runTasks(t, h) // the form only leaves a task; the worker's turn does the claim
}

// runTasks is the task worker's turn: it runs what the public forms left.
func runTasks(t *testing.T, h *harness) {
	t.Helper()
	if _, err := h.svc.Kernel.RunTasksOnce(context.Background()); err != nil {
		t.Fatalf("running the tasks: %v", err)
	}
}

func participant(t *testing.T, h *harness, email string) *people.Participant {
	t.Helper()
	var p people.Participant
	if err := h.db.Where("email = ?", email).Take(&p).Error; err != nil {
		t.Fatal(err)
	}
	return &p
}

func welcome(t *testing.T, h *harness, email string) {
	t.Helper()
	err := h.svc.Kernel.EnqueueEmail(h.db, "enrollment_welcome", email, "Ana", "", map[string]any{
		"enrollment_id": "e1", "cohort_id": "c1", "cohort_name": "Say No With Grace, Spring Circle",
		"starts_at": "2026-03-01T09:00:00Z", "timezone": "Europe/Paris",
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDiscreetEmailsNameNothingOutside: a woman in discreet mode gets her
// sign-in link and her welcome from "Notes" at the neutral address, under
// "Your update", with a blank preview, and the body she opens is the
// usual one. Her choice is read when the email is sent: switched on after
// the welcome was queued, it still covers it.
func TestDiscreetEmailsNameNothingOutside(t *testing.T) {
	h := newHarness(t)
	w := discreetWorker(t, h, emails.Discreet{Address: "notes@neutral.example"})
	freeProgram(t, h)

	claim(t, h, "ana@example.com", true)
	claim(t, h, "bea@example.com", false)
	welcome(t, h, "bea@example.com")
	// Bea switches discreet mode on after her welcome was queued.
	if _, err := h.svc.People.UpdateParticipant(context.Background(), participant(t, h, "bea@example.com").ID,
		people.ParticipantPatch{Discreet: models.Some(true)}); err != nil {
		t.Fatal(err)
	}
	welcome(t, h, "ana@example.com")
	claim(t, h, "cat@example.com", false)
	runOnce(t, w, 4)
	runOnce(t, w, 1)

	for _, tc := range []struct{ to, template, body string }{
		{"ana@example.com", "login_link", "Say No With Grace: Boundaries After Abuse"},
		{"ana@example.com", "enrollment_welcome", "Say No With Grace, Spring Circle"},
		{"bea@example.com", "enrollment_welcome", "Say No With Grace, Spring Circle"},
	} {
		t.Run(tc.to+"/"+tc.template, func(t *testing.T) {
			e := deliveredTo(t, h.fake, tc.to, tc.template)
			if e.From != `"Notes" <notes@neutral.example>` {
				t.Errorf("from %q, want the neutral sender at DISCREET_EMAIL_FROM", e.From)
			}
			assertNeutral(t, e)
			if !strings.Contains(e.HTML, tc.body) || !strings.Contains(e.Text, tc.body) {
				t.Errorf("the body no longer says %q:\n%s", tc.body, e.Text)
			}
		})
	}
	// The control: a woman not in discreet mode gets the usual email.
	e := deliveredTo(t, h.fake, "cat@example.com", "login_link")
	if e.From != "Grace <hello@grace.example>" || !strings.Contains(e.Subject, "Grace") {
		t.Errorf("a normal email went out as %q / %q", e.From, e.Subject)
	}
}

// TestDiscreetWithoutNeutralAddressKeepsTheAddress: without
// DISCREET_EMAIL_FROM the neutral name goes on the regular address.
func TestDiscreetWithoutNeutralAddressKeepsTheAddress(t *testing.T) {
	h := newHarness(t)
	w := discreetWorker(t, h, emails.Discreet{SenderName: "Mia", Subject: "Hello again"})
	freeProgram(t, h)
	claim(t, h, "ana@example.com", true)
	runOnce(t, w, 1)
	e := deliveredTo(t, h.fake, "ana@example.com", "login_link")
	if e.From != `"Mia" <hello@grace.example>` || e.Subject != "Hello again" {
		t.Errorf("sent as %q / %q", e.From, e.Subject)
	}
}

// TestAFormTurnsDiscreetOnNeverOff: a stranger who claims with her address
// and discreet false does not take her protection away.
func TestAFormTurnsDiscreetOnNeverOff(t *testing.T) {
	h := newHarness(t)
	freeProgram(t, h)
	claim(t, h, "ana@example.com", true)
	claim(t, h, "ana@example.com", false)
	if !participant(t, h, "ana@example.com").Discreet {
		t.Fatal("a form with discreet false switched discreet mode off")
	}
	claim(t, h, "bea@example.com", false)
	claim(t, h, "bea@example.com", true)
	if !participant(t, h, "bea@example.com").Discreet {
		t.Fatal("a form with discreet true did not switch it on")
	}
	me, err := h.svc.People.UpdateParticipant(context.Background(), participant(t, h, "ana@example.com").ID,
		people.ParticipantPatch{Discreet: models.Some(false)})
	if err != nil || me.Discreet {
		t.Fatalf("she could not switch it off herself: %v, %+v", err, me)
	}
}

// TestPauseHoldsAllButSignIn: while she is paused her sign-in link goes,
// her welcome does not (cancelled with reason paused, its secrets gone);
// once she resumes, email goes again.
func TestPauseHoldsAllButSignIn(t *testing.T) {
	h := newHarness(t)
	w := h.worker(t, emails.WorkerConfig{})
	freeProgram(t, h)
	claim(t, h, "ana@example.com", false)
	runOnce(t, w, 1)
	p := participant(t, h, "ana@example.com")
	if _, err := h.svc.People.Pause(context.Background(), p, people.PauseInput{}); err != nil {
		t.Fatal(err)
	}
	welcome(t, h, "ana@example.com")
	if err := h.svc.People.RequestLoginLink(context.Background(), "ana@example.com", models.ClientInfo{IP: "203.0.113.7"}); err != nil {
		t.Fatal(err)
	}
	runTasks(t, h)
	runOnce(t, w, 2)

	var welcomes []models.OutboxMessage
	h.db.Where("template = 'enrollment_welcome'").Find(&welcomes)
	if len(welcomes) != 1 || welcomes[0].Status != models.OutboxCancelled || welcomes[0].LastError == nil ||
		!strings.HasPrefix(*welcomes[0].LastError, "paused:") {
		t.Fatalf("the welcome while paused: %+v", welcomes)
	}
	logins := 0
	for _, e := range h.fake.Delivered() {
		if e.Tags["template"] == "enrollment_welcome" {
			t.Fatal("a welcome went out while she was paused")
		}
		if e.Tags["template"] == "login_link" {
			logins++
		}
	}
	if logins != 2 {
		t.Fatalf("%d sign-in links delivered, want 2 (one before, one during the pause)", logins)
	}

	if _, err := h.svc.People.Resume(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	welcome(t, h, "ana@example.com")
	runOnce(t, w, 1)
	deliveredTo(t, h.fake, "ana@example.com", "enrollment_welcome")
}

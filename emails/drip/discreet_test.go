package drip_test

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/grace-coaching/grace/emails"
	"github.com/grace-coaching/grace/emails/drip"
	"github.com/grace-coaching/grace/emails/emailstest"
	"github.com/grace-coaching/grace/models"
	dripdom "github.com/grace-coaching/grace/models/drip"
	"github.com/grace-coaching/grace/models/people"
)

var preheaderRE = regexp.MustCompile(`(?s)<div style="display:none;[^"]*" aria-hidden="true">(.*?)</div>`)

func participantByEmail(t *testing.T, n node, email string) *people.Participant {
	t.Helper()
	var p people.Participant
	if err := n.db.Where("email = ?", email).Take(&p).Error; err != nil {
		t.Fatal(err)
	}
	return &p
}

func deliveredTo(fake *emailstest.Resend, addr string) []emailstest.Email {
	var out []emailstest.Email
	for _, e := range fake.Delivered() {
		if len(e.To) == 1 && e.To[0] == addr {
			out = append(out, e)
		}
	}
	return out
}

// TestDiscreetAndPausedDrip: a step whose subject names the program goes
// to a discreet woman from the neutral sender under the neutral subject,
// with a blank preview and the body unchanged; a paused woman's step is
// skipped with reason paused, and once she resumes her next step is sent.
func TestDiscreetAndPausedDrip(t *testing.T) {
	nd, clock, seeded := fakeClockWorld(t, 3)
	ctx := context.Background()
	if err := nd.db.Exec(`UPDATE email_steps SET subject = 'Your {{program_title}} journey begins, {{first_name}}' WHERE id = ?`,
		seeded.StepID).Error; err != nil {
		t.Fatal(err)
	}
	addr := func(i int) string { return "p" + string(rune('0'+i)) + "-" + seeded.Tag + "@example.com" }
	discreet, paused, plain := addr(1), addr(2), addr(3)
	if _, err := nd.svc.People.UpdateParticipant(ctx, participantByEmail(t, nd, discreet).ID,
		people.ParticipantPatch{Discreet: models.Some(true)}); err != nil {
		t.Fatal(err)
	}
	if _, err := nd.svc.People.Pause(ctx, participantByEmail(t, nd, paused),
		people.PauseInput{Until: models.Some(clock.Now().Add(48 * time.Hour).Format(time.RFC3339))}); err != nil {
		t.Fatal(err)
	}

	fake := emailstest.NewResend(t)
	w := newWorker(t, nd, newSender(t, fake), drip.WorkerConfig{Discreet: emails.Discreet{Address: "notes@neutral.example"}})
	drain(t, w)

	got := deliveredTo(fake, discreet)
	if len(got) != 1 {
		t.Fatalf("%d emails to the discreet woman, want 1", len(got))
	}
	e := got[0]
	if e.From != `"Notes" <notes@neutral.example>` || e.Subject != emails.DefaultDiscreetSubject {
		t.Errorf("discreet drip email sent as %q / %q", e.From, e.Subject)
	}
	m := preheaderRE.FindStringSubmatch(e.HTML)
	if m == nil || strings.TrimSpace(strings.NewReplacer("&#847;", "", "&zwnj;", "", "&nbsp;", "").Replace(m[1])) != "" {
		t.Errorf("discreet preview is not blank: %v", m)
	}
	if strings.Contains(e.HTML, "<title>Your Say No") || !strings.Contains(e.HTML, "Say No With Grace") || !strings.Contains(e.Text, "Say No With Grace") {
		t.Errorf("discreet title leaks or the body lost its content:\n%s", e.Text)
	}
	if p := deliveredTo(fake, plain); len(p) != 1 || p[0].Subject != "Your Say No With Grace journey begins, Woman3" || p[0].From != "Grace <hello@grace.example>" {
		t.Errorf("the plain woman's email: %+v", p)
	}
	if n := len(deliveredTo(fake, paused)); n != 0 {
		t.Fatalf("%d emails to the paused woman", n)
	}
	var skipped struct {
		Status    dripdom.DeliveryStatus
		LastError string
	}
	nd.db.Raw(`SELECT status, last_error FROM email_deliveries WHERE email = ?`, paused).Scan(&skipped)
	if skipped.Status != dripdom.DeliverySkipped || !strings.HasPrefix(skipped.LastError, dripdom.ReasonPaused+": ") {
		t.Fatalf("the paused woman's step: %+v", skipped)
	}

	// She resumes; her next step, due later, is sent.
	if _, err := nd.svc.People.Resume(ctx, participantByEmail(t, nd, paused)); err != nil {
		t.Fatal(err)
	}
	if err := nd.db.Exec(`INSERT INTO email_deliveries (participant_id, email, sequence_id, step_id, subject_key, program_id, anchor_at, timezone, status, send_at)
		SELECT participant_id, email, sequence_id, step_id, subject_key || ':2', program_id, anchor_at, timezone, 'scheduled', ?
		FROM email_deliveries WHERE email = ?`, clock.Now().Add(time.Hour), paused).Error; err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Hour)
	drain(t, w)
	if n := len(deliveredTo(fake, paused)); n != 1 {
		t.Fatalf("%d emails to her after she resumed, want 1", n)
	}
}

// TestAStepDueDuringAnEndedPauseIsSkipped: a worker that runs after her
// pause ended by itself still skips the step that fell due inside it.
func TestAStepDueDuringAnEndedPauseIsSkipped(t *testing.T) {
	nd, clock, seeded := fakeClockWorld(t, 1)
	ctx := context.Background()
	email := "p1-" + seeded.Tag + "@example.com"
	// Due a minute ago; the pause ran from before that until a moment from now.
	if err := nd.db.Exec(`UPDATE participants SET paused_at = ?, paused_until = ? WHERE email = ?`,
		clock.Now().Add(-time.Hour), clock.Now().Add(time.Minute), email).Error; err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Minute)
	me := nd.svc.People.Me(ctx, participantByEmail(t, nd, email))
	if me.Paused {
		t.Fatal("the pause did not end by itself")
	}
	fake := emailstest.NewResend(t)
	drain(t, newWorker(t, nd, newSender(t, fake), drip.WorkerConfig{}))
	if n := len(fake.Delivered()); n != 0 {
		t.Fatalf("%d emails sent for a step due during her pause", n)
	}
}

package emails_test

import (
	"errors"
	"maps"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/grace-coaching/grace/emails"
)

func newRenderer(t *testing.T) *emails.Renderer {
	t.Helper()
	r, err := emails.NewRenderer("https://app.grace.example/", "Grace")
	if err != nil {
		t.Fatalf("NewRenderer: %v", err)
	}
	return r
}

func TestRenderEveryTemplate(t *testing.T) {
	r := newRenderer(t)
	tests := []struct {
		template string
		data     map[string]any
		link     string
		want     []string // in both parts
	}{
		{
			template: "login_link",
			data:     map[string]any{"name": "Ana", "token": "tok-123", "code": "482913", "expires_minutes": 10},
			link:     "https://app.grace.example/login?token=tok-123",
			want:     []string{"Hello Ana,", "482913", "10 minutes", "ignore this email", "asked to sign in"},
		},
		{
			template: "erase_code",
			data:     map[string]any{"code": "730214", "expires_minutes": 15},
			link:     "https://app.grace.example/portal",
			want:     []string{"Hello,", "730214", "15 minutes", "cannot be undone", "Nothing is erased without this code"},
		},
		{
			template: "password_reset",
			data:     map[string]any{"name": "Grace", "token": "tok-456", "expires_minutes": 60},
			link:     "https://app.grace.example/coach/reset-password?token=tok-456",
			want:     []string{"Hello Grace,", "60 minutes", "ignore this email", "reset the password"},
		},
		{
			template: "coach_invite",
			data:     map[string]any{"name": "Bea", "inviter_name": "Grace", "token": "tok-789", "expires_hours": 72},
			link:     "https://app.grace.example/coach/accept-invite?token=tok-789",
			want:     []string{"Hello Bea,", "Grace has invited you", "72 hours", "ignore this email", "invited this email address"},
		},
		{
			template: "enrollment_welcome",
			data: map[string]any{"name": "Ana", "enrollment_id": "e-1", "cohort_id": "c-1", "cohort_name": "Spring Circle",
				"starts_at": "2025-04-05T17:00:00Z", "timezone": "Europe/Paris"},
			link: "https://app.grace.example/portal",
			// 17:00 UTC is 19:00 in Paris on that (summer-time) Saturday.
			want: []string{"Hello Ana,", "Spring Circle", "Saturday 5 April 2025 at 19:00 (Europe/Paris)", "not psychotherapy", "enrolled in Spring Circle"},
		},
		{
			template: "waitlist_offer",
			data: map[string]any{"name": "Bea", "enrollment_id": "e-2", "cohort_id": "c-2", "cohort_name": "Spring Circle",
				"token": "tok-wait", "expires_hours": 24},
			link: "https://app.grace.example/checkout?token=tok-wait",
			want: []string{"Hello Bea,", "Spring Circle", "24 hours", "next person waiting", "joined the waitlist"},
		},
		{
			template: "checkout_link",
			data:     map[string]any{"token": "tok-book", "cohort_id": "c-6", "cohort_name": "Spring Circle", "expires_hours": 24},
			link:     "https://app.grace.example/checkout?token=tok-book",
			want:     []string{"Hello,", "Spring Circle", "complete your booking", "24 hours", "ignore this email", "asked to book Spring Circle"},
		},
		{
			template: "checkout_already_enrolled",
			data:     map[string]any{"cohort_id": "c-7", "cohort_name": "Spring Circle"},
			link:     "https://app.grace.example/login",
			want:     []string{"Hello,", "Spring Circle", "already have your place", "nothing more to book or pay", "ignore this email"},
		},
		{
			template: "cohort_overbooked",
			data: map[string]any{"name": "Grace", "cohort_id": "c-3", "cohort_name": "Spring Circle", "capacity": 20,
				"participant_name": "Cleo", "participant_email": "cleo@example.com"},
			link: "https://app.grace.example/coach/cohorts/c-3",
			want: []string{"Hello Grace,", "Spring Circle", "20 seats", "Cleo", "cleo@example.com", "raise its capacity or refund", "you coach Spring Circle"},
		},
		{
			template: "enrollment_reinstated",
			data: map[string]any{"name": "Grace", "cohort_id": "c-4", "cohort_name": "Spring Circle", "capacity": 20,
				"participant_name": "Dora", "participant_email": "dora@example.com", "overbooked": true},
			link: "https://app.grace.example/coach/cohorts/c-4",
			want: []string{"Hello Grace,", "Spring Circle", "was cancelled", "Dora", "dora@example.com", "20 seats", "beyond capacity", "cancel her enrollment again and refund", "you coach Spring Circle"},
		},
		{
			template: "payment_review",
			data: map[string]any{"name": "Grace", "cohort_id": "c-5", "cohort_name": "Spring Circle", "capacity": 20,
				"participant_name": "Eva", "participant_email": "eva@example.com", "reason": "session_mismatch",
				"checkout_session_id": "cs_foreign", "payment_intent_id": "pi_foreign", "paid_cents": 100, "paid_currency": "USD",
				"discount_cents": 0, "price_cents": 9700, "currency": "EUR"},
			link: "https://app.grace.example/coach/cohorts/c-5",
			want: []string{"Hello Grace,", "Spring Circle", "Eva", "eva@example.com", "no record of opening for her place", "Paid: 1.00 USD",
				"Price: 97.00 EUR", "cs_foreign", "pi_foreign", "enrol her without payment", "you coach Spring Circle"},
		},
	}
	tests = append(tests, struct {
		template string
		data     map[string]any
		link     string
		want     []string
	}{
		template: "marketing_optin",
		data:     map[string]any{"name": "", "token": "tok", "confirm_url": "https://api.grace.example/v1/consents/confirm/tok", "expires_days": 7},
		link:     "https://api.grace.example/v1/consents/confirm/tok",
		want:     []string{"Hello,", "If that was you, please confirm", "7 days", "nothing is sent to you unless you confirm", "ticked the box"},
	})
	// +1: drip_test passes pre-rendered content through (render_drip_test_test.go).
	if got, want := len(r.Templates()), len(tests)+1; got != want {
		t.Fatalf("renderer has %d templates %v; this test covers %d", got, r.Templates(), want)
	}
	for _, tc := range tests {
		t.Run(tc.template, func(t *testing.T) {
			out, err := r.Render(tc.template, "", tc.data)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if out.Subject == "" || strings.ContainsAny(out.Subject, "\r\n") {
				t.Errorf("subject %q: want one non-empty line", out.Subject)
			}
			for part, body := range map[string]string{"html": out.HTML, "text": out.Text} {
				if !strings.Contains(body, tc.link) {
					t.Errorf("%s part lacks the link %s:\n%s", part, tc.link, body)
				}
				for _, w := range tc.want {
					if !strings.Contains(body, w) {
						t.Errorf("%s part lacks %q:\n%s", part, w, body)
					}
				}
			}
			if !strings.Contains(out.HTML, `href="`+tc.link+`"`) {
				t.Errorf("html part has no clickable link to %s", tc.link)
			}
			if strings.Contains(out.Text, "<") {
				t.Errorf("text part contains markup:\n%s", out.Text)
			}
			if strings.Contains(out.HTML+out.Text, "<no value>") {
				t.Errorf("a template printed a missing value")
			}
		})
	}
}

func TestRenderLoginLinkShowsCodeProminently(t *testing.T) {
	out, err := newRenderer(t).Render("login_link", "Ana", map[string]any{"token": "t", "code": "048213", "expires_minutes": 10})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.HTML, "font-size:32px") || !strings.Contains(out.HTML, ">048213</p>") {
		t.Errorf("the code is not set large on its own line:\n%s", out.HTML)
	}
	if !strings.Contains(out.Text, "\n    048213\n") {
		t.Errorf("the code is not on its own line in the text part:\n%s", out.Text)
	}
	if strings.Contains(out.Subject, "048213") {
		t.Errorf("the code leaks into the subject, visible on a locked screen: %q", out.Subject)
	}
}

func TestRenderProgramTitleIsOptional(t *testing.T) {
	r := newRenderer(t)
	base := map[string]any{"name": "Ana", "token": "t", "code": "123456", "expires_minutes": 10}
	without, err := r.Render("login_link", "", base)
	if err != nil {
		t.Fatal(err)
	}
	withTitle := maps.Clone(base)
	withTitle["program_title"] = "Say No With Grace"
	with, err := r.Render("login_link", "", withTitle)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(without.Text, "joining") {
		t.Errorf("welcome line without a program:\n%s", without.Text)
	}
	if !strings.Contains(with.Text, `joining "Say No With Grace"`) || !strings.Contains(with.HTML, "<strong>Say No With Grace</strong>") {
		t.Errorf("program title missing:\n%s\n%s", with.Text, with.HTML)
	}
}

func TestRenderEscapesHTMLInNames(t *testing.T) {
	const evil = `<script>alert("x")</script>`
	r := newRenderer(t)
	tests := []struct {
		template string
		toName   string
		data     map[string]any
	}{
		{"login_link", evil, map[string]any{"token": "t", "code": "123456", "expires_minutes": 10, "program_title": evil}},
		{"password_reset", "", map[string]any{"name": evil, "token": "t", "expires_minutes": 60}},
		{"coach_invite", "", map[string]any{"name": evil, "inviter_name": evil, "token": "t", "expires_hours": 72}},
		{"enrollment_welcome", "", map[string]any{"name": evil, "enrollment_id": "e", "cohort_id": "c", "cohort_name": evil,
			"starts_at": "2025-04-05T17:00:00Z", "timezone": "Europe/Paris"}},
		{"waitlist_offer", "", map[string]any{"name": evil, "enrollment_id": "e", "cohort_id": "c", "cohort_name": evil,
			"token": "t", "expires_hours": 24}},
		{"checkout_link", "", map[string]any{"token": "t", "cohort_id": "c", "cohort_name": evil, "expires_hours": 24}},
		{"checkout_already_enrolled", "", map[string]any{"cohort_id": "c", "cohort_name": evil}},
		{"cohort_overbooked", "", map[string]any{"name": "Grace", "cohort_id": "c", "cohort_name": evil, "capacity": 20,
			"participant_name": evil, "participant_email": "a@example.com"}},
		{"enrollment_reinstated", "", map[string]any{"name": "Grace", "cohort_id": "c", "cohort_name": evil, "capacity": 20,
			"participant_name": evil, "participant_email": "a@example.com", "overbooked": false}},
		{"payment_review", "", map[string]any{"name": "Grace", "cohort_id": "c", "cohort_name": evil, "capacity": 20,
			"participant_name": evil, "participant_email": "a@example.com", "reason": "amount_short", "checkout_session_id": evil,
			"payment_intent_id": "", "paid_cents": 100, "paid_currency": "EUR", "discount_cents": 0, "price_cents": 9700, "currency": "EUR"}},
	}
	for _, tc := range tests {
		t.Run(tc.template, func(t *testing.T) {
			out, err := r.Render(tc.template, tc.toName, tc.data)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(out.HTML, "<script") {
				t.Fatalf("html part contains an unescaped script tag:\n%s", out.HTML)
			}
			if !strings.Contains(out.HTML, "&lt;script&gt;") {
				t.Fatalf("html part lacks the escaped name:\n%s", out.HTML)
			}
			// Plain text is not markup: the name reads as she typed it.
			if !strings.Contains(out.Text, evil) {
				t.Fatalf("text part altered the name:\n%s", out.Text)
			}
		})
	}
}

func TestRenderGreeting(t *testing.T) {
	r := newRenderer(t)
	tests := []struct {
		name   string
		toName string
		data   string
		want   string
	}{
		{"data name wins", "Outbox Name", "Ana", "Hello Ana,"},
		{"falls back to the recipient name", "Bea", "", "Hello Bea,"},
		{"no name at all", "  ", "", "Hello,"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := r.Render("password_reset", tc.toName, map[string]any{"name": tc.data, "token": "t", "expires_minutes": 60})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(strings.SplitN(out.Text, "\n\n", 2)[1], tc.want+"\n") {
				t.Errorf("greeting: want %q in\n%s", tc.want, out.Text)
			}
		})
	}
}

func TestRenderEscapesTheTokenInTheLink(t *testing.T) {
	out, err := newRenderer(t).Render("login_link", "", map[string]any{"token": "a+b/c=&x", "code": "123456", "expires_minutes": 10})
	if err != nil {
		t.Fatal(err)
	}
	want := "https://app.grace.example/login?token=" + url.QueryEscape("a+b/c=&x")
	if !strings.Contains(out.Text, want+"\n") {
		t.Fatalf("text part lacks %s:\n%s", want, out.Text)
	}
	u, err := url.Parse(want)
	if err != nil || u.Query().Get("token") != "a+b/c=&x" {
		t.Fatalf("link does not round-trip the token: %v %v", u, err)
	}
}

func TestRenderRefusesBadInput(t *testing.T) {
	r := newRenderer(t)
	tests := []struct {
		name     string
		template string
		data     map[string]any
		unknown  bool
	}{
		{"unknown template", "welcome_gift", map[string]any{"token": "t"}, true},
		{"missing token", "password_reset", map[string]any{"expires_minutes": 60}, false},
		{"empty token", "password_reset", map[string]any{"token": "", "expires_minutes": 60}, false},
		{"token not a string", "password_reset", map[string]any{"token": 42, "expires_minutes": 60}, false},
		{"login without code", "login_link", map[string]any{"token": "t", "expires_minutes": 10}, false},
		{"login code not a string", "login_link", map[string]any{"token": "t", "code": 123456, "expires_minutes": 10}, false},
		{"login without expiry", "login_link", map[string]any{"token": "t", "code": "123456"}, false},
		{"invite without inviter", "coach_invite", map[string]any{"token": "t", "expires_hours": 72}, false},
		{"nil data", "coach_invite", nil, false},
		{"welcome without start", "enrollment_welcome", map[string]any{"enrollment_id": "e", "cohort_id": "c", "cohort_name": "C", "timezone": "Europe/Paris"}, false},
		{"welcome with a malformed start", "enrollment_welcome", map[string]any{"enrollment_id": "e", "cohort_id": "c", "cohort_name": "C", "starts_at": "next Tuesday", "timezone": "Europe/Paris"}, false},
		{"welcome with an unknown zone", "enrollment_welcome", map[string]any{"enrollment_id": "e", "cohort_id": "c", "cohort_name": "C", "starts_at": "2025-04-05T17:00:00Z", "timezone": "Mars/Olympus"}, false},
		{"offer without token", "waitlist_offer", map[string]any{"enrollment_id": "e", "cohort_id": "c", "cohort_name": "C", "expires_hours": 24}, false},
		{"overbooked without participant", "cohort_overbooked", map[string]any{"cohort_id": "c", "cohort_name": "C", "capacity": 20, "participant_name": "P"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := r.Render(tc.template, "Ana", tc.data)
			if err == nil {
				t.Fatalf("rendered %q; want an error", out.Subject)
			}
			if got := errors.Is(err, emails.ErrUnknownTemplate); got != tc.unknown {
				t.Fatalf("errors.Is(ErrUnknownTemplate) = %v for %v", got, err)
			}
		})
	}
}

func TestNewRendererRefusesBadBaseURL(t *testing.T) {
	for _, base := range []string{"", "app.grace.example", "ftp://app.grace.example", "https://app.grace.example/?x=1", "https://"} {
		if _, err := emails.NewRenderer(base, "Grace"); err == nil {
			t.Errorf("NewRenderer(%q) succeeded", base)
		}
	}
	r, err := emails.NewRenderer("http://localhost:8080/app", "")
	if err != nil {
		t.Fatal(err)
	}
	out, err := r.Render("login_link", "", map[string]any{"token": "t", "code": "123456", "expires_minutes": 10})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.Text, "http://localhost:8080/app/login?token=t\n") || !strings.Contains(out.Subject, "Grace") {
		t.Fatalf("base path or default product lost:\n%s\n%s", out.Subject, out.Text)
	}
}

// The waitlist offer's link is her checkout link: a token, never her
// address, in the URL (a URL lands in logs and browser histories).
func TestRenderWaitlistOfferLinksHerCheckoutWithoutHerAddress(t *testing.T) {
	out, err := newRenderer(t).Render("waitlist_offer", "Ana", map[string]any{"enrollment_id": "e", "cohort_id": "c-9",
		"cohort_name": "C", "token": "tok+/=", "expires_hours": 24})
	if err != nil {
		t.Fatal(err)
	}
	want := "https://app.grace.example/checkout?token=" + url.QueryEscape("tok+/=")
	if !strings.Contains(out.Text, want+"\n") || strings.Contains(out.Text, "@") {
		t.Fatalf("text part lacks %s, or names an address:\n%s", want, out.Text)
	}
}

// Outbox data goes through JSON, so the welcome email must accept the start
// as stored (a string) and as the domain may pass it (a time.Time), and show
// the cohort's local time either way.
func TestRenderWelcomeShowsTheStartInTheCohortZone(t *testing.T) {
	r := newRenderer(t)
	start := time.Date(2025, 1, 10, 1, 30, 0, 0, time.UTC)
	for name, at := range map[string]any{"string": start.Format(time.RFC3339), "time": start} {
		t.Run(name, func(t *testing.T) {
			out, err := r.Render("enrollment_welcome", "Ana", map[string]any{"enrollment_id": "e", "cohort_id": "c",
				"cohort_name": "C", "starts_at": at, "timezone": "America/New_York"})
			if err != nil {
				t.Fatal(err)
			}
			// 01:30 UTC on the 10th is still the evening of the 9th in New York.
			const want = "Thursday 9 January 2025 at 20:30 (America/New_York)"
			if !strings.Contains(out.Text, want) || !strings.Contains(out.HTML, want) {
				t.Fatalf("want %q in both parts:\n%s", want, out.Text)
			}
		})
	}
}

package drip_test

import (
	"strings"
	"testing"

	"github.com/grace-coaching/grace/emails/drip"
	dripdom "github.com/grace-coaching/grace/models/drip"
)

func newRenderer(t *testing.T) *drip.Renderer {
	t.Helper()
	r, err := drip.NewRenderer("Grace")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

const unsubURL = "https://api.example.com/v1/unsubscribe/0123456789abcdef0123456789abcdef"

func marketingRequest(subject, body string) dripdom.RenderRequest {
	return dripdom.RenderRequest{
		Step: dripdom.StepContent{Subject: subject, Body: body},
		Vars: dripdom.Vars{
			FirstName:       "Ana",
			ProgramTitle:    "Say No With Grace",
			CohortName:      "Spring Circle",
			PortalURL:       "https://portal.example.com/portal",
			LessonTitle:     "Boundaries 101",
			SessionStartsAt: "Tuesday 10 March 2026 at 10:00 (America/Los_Angeles)",
			UnsubscribeURL:  unsubURL,
		},
		Marketing:         true,
		UnsubscribeMailto: "mailto:unsubscribe@example.com?subject=unsubscribe-0123456789abcdef0123456789abcdef",
	}
}

func TestRenderStepFillsPlaceholders(t *testing.T) {
	r := newRenderer(t)
	req := marketingRequest("Welcome, {{first_name}}: {{ program_title }}",
		"Hi {{first_name}},\n\nYour cohort **{{cohort_name}}** meets {{session_starts_at}}.\n\n"+
			"Read [{{lesson_title}}]({{portal_url}}/lessons) or go to {{portal_url}}.")
	out, err := r.RenderStep(req)
	if err != nil {
		t.Fatal(err)
	}
	if out.Subject != "Welcome, Ana: Say No With Grace" {
		t.Errorf("subject %q", out.Subject)
	}
	for _, want := range []string{
		"Hi Ana,", "<strong>Spring Circle</strong>", "Tuesday 10 March 2026 at 10:00 (America/Los_Angeles)",
		`href="https://portal.example.com/portal/lessons"`, ">Boundaries 101</a>",
		`href="https://portal.example.com/portal" rel="nofollow noopener noreferrer">https://portal.example.com/portal</a>`,
		`<title>Welcome, Ana: Say No With Grace</title>`,
		"you joined Say No With Grace with Grace",
		`<a href="` + unsubURL + `"`, "Unsubscribe</a> with one click",
	} {
		if !strings.Contains(out.HTML, want) {
			t.Errorf("HTML lacks %q:\n%s", want, out.HTML)
		}
	}
	for _, want := range []string{
		"Hi Ana,", "**Spring Circle**", "[Boundaries 101](https://portal.example.com/portal/lessons)",
		"Unsubscribe with one click: " + unsubURL,
	} {
		if !strings.Contains(out.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, out.Text)
		}
	}
	if strings.Contains(out.HTML+out.Text+out.Subject, "GRACEPLACEHOLDER") || strings.Contains(out.HTML+out.Text, "placeholder.grace.invalid") {
		t.Errorf("a token survived:\n%s\n%s", out.HTML, out.Text)
	}
	wantList := "<" + unsubURL + ">, <" + req.UnsubscribeMailto + ">"
	if out.Headers["List-Unsubscribe"] != wantList || out.Headers["List-Unsubscribe-Post"] != "List-Unsubscribe=One-Click" {
		t.Errorf("headers %v", out.Headers)
	}

	// Deterministic: the same request renders the same bytes, cached or not.
	again, _ := r.RenderStep(req)
	fresh, _ := newRenderer(t).RenderStep(req)
	if again.HTML != out.HTML || fresh.HTML != out.HTML || fresh.Text != out.Text || fresh.Subject != out.Subject {
		t.Error("rendering is not deterministic")
	}
}

func TestRenderStepEscapesValues(t *testing.T) {
	r := newRenderer(t)
	req := marketingRequest("Hi {{first_name}}", "Dear {{first_name}}, welcome.")
	req.Vars.FirstName = `<script>alert(1)</script>*Ana*[x](javascript:alert(1))&`
	out, err := r.RenderStep(req)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.HTML, "<script>") || strings.Contains(out.HTML, "<em>Ana</em>") || strings.Contains(out.HTML, `href="javascript`) {
		t.Fatalf("a value was read as HTML or Markdown:\n%s", out.HTML)
	}
	if !strings.Contains(out.HTML, "&lt;script&gt;alert(1)&lt;/script&gt;*Ana*[x](javascript:alert(1))&amp;") {
		t.Errorf("the value is not shown escaped:\n%s", out.HTML)
	}
	if !strings.Contains(out.Text, "Dear <script>alert(1)</script>*Ana*") {
		t.Errorf("the text part should carry the value as is:\n%s", out.Text)
	}

	// Coach-written HTML is shown as text, as in lessons.
	out, err = r.RenderStep(marketingRequest("Hi", `<img src=x onerror=alert(1)> hello`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.HTML, "<img") {
		t.Fatalf("raw HTML passed through:\n%s", out.HTML)
	}
}

func TestRenderStepTransactionalHasNoUnsubscribe(t *testing.T) {
	r := newRenderer(t)
	req := marketingRequest("Your session {{session_starts_at}}", "See you {{session_starts_at}}.")
	req.Marketing, req.UnsubscribeMailto, req.Vars.UnsubscribeURL = false, "", ""
	out, err := r.RenderStep(req)
	if err != nil {
		t.Fatal(err)
	}
	if out.Headers != nil || strings.Contains(out.HTML, "Unsubscribe") || strings.Contains(out.Text, "Unsubscribe") {
		t.Fatalf("transactional email carries unsubscribe: %v\n%s", out.Headers, out.HTML)
	}
	if !strings.Contains(out.HTML, "not a newsletter") {
		t.Errorf("footer:\n%s", out.HTML)
	}
}

func TestRenderStepRefuses(t *testing.T) {
	r := newRenderer(t)
	tests := []struct {
		name string
		req  dripdom.RenderRequest
		want string
	}{
		{"unknown placeholder in the body", marketingRequest("Hi", "Hello {{nickname}}"), "{{nickname}}"},
		{"unknown placeholder in the subject", marketingRequest("Hi {{last_name}}", "Hello"), "{{last_name}}"},
		{"marketing without an unsubscribe URL", func() dripdom.RenderRequest {
			r := marketingRequest("Hi", "Hello")
			r.Vars.UnsubscribeURL = ""
			return r
		}(), "unsubscribe"},
		{"a subject that renders empty", func() dripdom.RenderRequest {
			r := marketingRequest("{{lesson_title}}", "Hello")
			r.Vars.LessonTitle = " "
			return r
		}(), "subject"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := r.RenderStep(tc.req); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %q", err, tc.want)
			}
		})
	}
}

func TestRenderStepWithoutAProvenNameGreetsNeutrally(t *testing.T) {
	r := newRenderer(t)
	for _, tc := range []struct{ subject, wantSubject, body, wantText string }{
		{"Welcome, {{first_name}}", "Welcome", "Hi {{first_name}},\n\nGlad you are here.", "Hi,"},
		{"Your workshop is open, {{first_name}}", "Your workshop is open", "Dear {{first_name}}, welcome.", "Dear, welcome."},
		{"{{first_name}}, what comes after the workshop", "What comes after the workshop", "{{first_name}}, take a breath.", "Take a breath."},
	} {
		req := marketingRequest(tc.subject, tc.body)
		req.Vars.FirstName = ""
		out, err := r.RenderStep(req)
		if err != nil {
			t.Fatal(err)
		}
		if out.Subject != tc.wantSubject {
			t.Errorf("subject %q, want %q", out.Subject, tc.wantSubject)
		}
		if !strings.Contains(out.Text, tc.wantText) || !strings.Contains(out.HTML, tc.wantText) {
			t.Errorf("body of %q lacks %q:\n%s", tc.body, tc.wantText, out.Text)
		}
		for _, part := range []string{out.Subject, out.Text, out.HTML} {
			if strings.Contains(part, "GRACEPLACEHOLDER") || strings.Contains(part, " ,") {
				t.Errorf("a gap where the name was: %q", part)
			}
		}
	}
}

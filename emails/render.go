// Package emails turns outbox rows into delivered email: it renders the
// embedded templates, sends through a Sender (Resend in production, the log
// in development) and runs the worker that drains the outbox exactly once.
package emails

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"net/url"
	"regexp"
	"slices"
	"strings"
	texttemplate "text/template"
	"time"
)

//go:embed templates
var templateFS embed.FS

// ErrUnknownTemplate is returned by Render for a name with no template.
var ErrUnknownTemplate = errors.New("emails: unknown template")

// templateSpec is what one email needs: where its link points and which data
// keys must be present. The keys are the contract with the domain
// (models.enqueueEmail callers); sample fills them for the start-up dry run.
// A link is either linkPath plus the data's token, or, for emails that carry
// no token, whatever link builds from the data (a path and query under the
// base URL, escaped by link itself).
type templateSpec struct {
	linkPath string
	link     func(data map[string]any) string
	required []string
	sample   map[string]any
	// passthrough emails arrive already rendered (subject, html and text
	// in the data) and are sent as they are, the subject after
	// subjectPrefix: no template files, no layout.
	passthrough   bool
	subjectPrefix string
	// credential emails carry a way to sign in (a link, a code, a reset):
	// they still go while her email is paused, since she asked for them.
	credential bool
	// absoluteLink names the data key that holds the whole link, an
	// http(s) URL, for links into the API rather than the web app.
	absoluteLink string
}

var catalog = map[string]templateSpec{
	"login_link": {
		credential: true,
		linkPath:   "/login",
		required:   []string{"token", "code", "expires_minutes"},
		sample:     map[string]any{"name": "Sample", "token": "sample-token", "code": "123456", "expires_minutes": 10, "program_title": "Sample Program"},
	},
	// The code confirming her own erasure (privacy.RequestEraseCode). The
	// preheader and subject say nothing about what she uses.
	"erase_code": {
		credential: true,
		link:       func(map[string]any) string { return "/portal" },
		required:   []string{"code", "expires_minutes"},
		sample:     map[string]any{"code": "123456", "expires_minutes": 15},
	},
	"password_reset": {
		credential: true,
		linkPath:   "/coach/reset-password",
		required:   []string{"token", "expires_minutes"},
		sample:     map[string]any{"name": "Sample", "token": "sample-token", "expires_minutes": 60},
	},
	"coach_invite": {
		credential: true,
		linkPath:   "/coach/accept-invite",
		required:   []string{"token", "inviter_name", "expires_hours"},
		sample:     map[string]any{"name": "Sample", "inviter_name": "Inviter", "token": "sample-token", "expires_hours": 72},
	},
	"enrollment_welcome": {
		link:     func(map[string]any) string { return "/portal" },
		required: []string{"enrollment_id", "cohort_id", "cohort_name", "starts_at", "timezone"},
		sample: map[string]any{"name": "Sample", "enrollment_id": "sample-enrollment", "cohort_id": "sample-cohort",
			"cohort_name": "Sample Cohort", "starts_at": "2025-03-01T09:00:00Z", "timezone": "Europe/London"},
	},
	// A waitlist offer and a checkout form's answer carry her checkout
	// link (enroll.TemplateCheckoutLink); her address is never in a URL.
	"waitlist_offer": {
		linkPath: "/checkout",
		required: []string{"enrollment_id", "cohort_id", "cohort_name", "token", "expires_hours"},
		sample: map[string]any{"name": "Sample", "enrollment_id": "sample-enrollment", "cohort_id": "sample-cohort",
			"cohort_name": "Sample Cohort", "token": "sample-token", "expires_hours": 24},
	},
	"checkout_link": {
		// Her way to book, asked for on the form: it goes while she is paused.
		credential: true,
		linkPath:   "/checkout",
		required:   []string{"token", "cohort_id", "cohort_name", "expires_hours"},
		sample:     map[string]any{"token": "sample-token", "cohort_id": "sample-cohort", "cohort_name": "Sample Cohort", "expires_hours": 24},
	},
	// A checkout form filled in for an address already enrolled: the way
	// to the portal's sign-in page, which carries no credential.
	"checkout_already_enrolled": {
		link:     func(map[string]any) string { return "/login" },
		required: []string{"cohort_id", "cohort_name"},
		sample:   map[string]any{"cohort_id": "sample-cohort", "cohort_name": "Sample Cohort"},
	},
	// A coach's test send of a drip step (models.TestSendStep), rendered by
	// emails/drip with sample values; the subject says it is a test.
	"drip_test": {
		passthrough:   true,
		subjectPrefix: "[Test] ",
		required:      []string{"subject", "html", "text"},
		sample:        map[string]any{"subject": "Sample", "html": "<p>Sample</p>", "text": "Sample"},
	},
	"cohort_overbooked": {
		link: func(data map[string]any) string {
			return "/coach/cohorts/" + url.PathEscape(fmt.Sprint(data["cohort_id"]))
		},
		required: []string{"cohort_id", "cohort_name", "capacity", "participant_name", "participant_email"},
		sample: map[string]any{"name": "Sample", "cohort_id": "sample-cohort", "cohort_name": "Sample Cohort",
			"capacity": 20, "participant_name": "Participant", "participant_email": "participant@example.com"},
	},
	"enrollment_reinstated": {
		link: func(data map[string]any) string {
			return "/coach/cohorts/" + url.PathEscape(fmt.Sprint(data["cohort_id"]))
		},
		required: []string{"cohort_id", "cohort_name", "capacity", "participant_name", "participant_email", "overbooked"},
		sample: map[string]any{"name": "Sample", "cohort_id": "sample-cohort", "cohort_name": "Sample Cohort",
			"capacity": 20, "participant_name": "Participant", "participant_email": "participant@example.com", "overbooked": true},
	},
	// A marketing opt-in to confirm (people.RequestMarketingOptIn). The
	// link is the API's, built by the domain's injected builder: it is
	// absolute already.
	"marketing_optin": {
		absoluteLink: "confirm_url",
		required:     []string{"token", "confirm_url", "expires_days"},
		sample:       map[string]any{"name": "", "token": "sample-token", "confirm_url": "https://api.example.com/v1/consents/confirm/sample-token", "expires_days": 7},
	},
	// A payment that did not match its checkout (enroll.flagPayment).
	"payment_review": {
		link: func(data map[string]any) string {
			return "/coach/cohorts/" + url.PathEscape(fmt.Sprint(data["cohort_id"]))
		},
		// The session, payment intent and paid currency are always sent but
		// may be empty (a session without its currency is flagged too).
		required: []string{"cohort_id", "cohort_name", "participant_name", "participant_email", "reason",
			"paid_cents", "discount_cents", "price_cents", "currency"},
		sample: map[string]any{"name": "Sample", "cohort_id": "sample-cohort", "cohort_name": "Sample Cohort", "capacity": 20,
			"participant_name": "Participant", "participant_email": "participant@example.com", "reason": "session_mismatch",
			"checkout_session_id": "cs_sample", "payment_intent_id": "pi_sample", "paid_cents": 100, "paid_currency": "USD",
			"discount_cents": 0, "price_cents": 9700, "currency": "EUR"},
	},
}

// funcs are the helpers templates may call.
var funcs = map[string]any{"localTime": localTime, "money": money}

// localTime shows an instant as a reader in zone would say it, with the zone
// named, because a cohort's participants may live elsewhere:
// "Saturday 1 March 2025 at 09:00 (Europe/London)". at is an RFC 3339 string
// (as outbox data stores it) or a time.Time.
func localTime(at any, zone any) (string, error) {
	var t time.Time
	switch v := at.(type) {
	case time.Time:
		t = v
	case string:
		var err error
		if t, err = time.Parse(time.RFC3339, v); err != nil {
			return "", fmt.Errorf("localTime: %w", err)
		}
	default:
		return "", fmt.Errorf("localTime: %T is not a time", at)
	}
	name := fmt.Sprint(zone)
	loc, err := time.LoadLocation(name)
	if err != nil {
		return "", fmt.Errorf("localTime: %w", err)
	}
	return t.In(loc).Format("Monday 2 January 2006 at 15:04") + " (" + name + ")", nil
}

// Rendered is one email ready to send.
type Rendered struct {
	Subject string
	HTML    string
	Text    string
}

// Renderer renders the embedded templates. It is safe for concurrent use.
type Renderer struct {
	baseURL  string
	product  string
	discreet Discreet
	sets     map[string]*templateSet
}

type templateSet struct {
	spec    templateSpec
	subject *texttemplate.Template
	html    *htmltemplate.Template
	text    *texttemplate.Template
}

// view is what the templates see. Data is the outbox row's data as stored;
// the fields above it are derived so templates never build URLs themselves.
type view struct {
	Product string
	Subject string
	Name    string
	Link    string
	Code    string
	Data    map[string]any
	// Discreet replaces the template's preview with DiscreetPreheader.
	Discreet          bool
	DiscreetPreheader htmltemplate.HTML
}

// NewRenderer parses every template and renders each once with sample data,
// so a broken template stops the process at start-up rather than failing
// the first real email. baseURL is the web app (APP_BASE_URL) that links
// point into. discreet, when given, sets the neutral texts of RenderDiscreet
// (the defaults otherwise).
func NewRenderer(baseURL, productName string, discreet ...Discreet) (*Renderer, error) {
	u, err := url.Parse(strings.TrimSpace(baseURL))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("emails: base URL %q must be an absolute http(s) URL without query or fragment", baseURL)
	}
	if strings.TrimSpace(productName) == "" {
		productName = "Grace"
	}
	r := &Renderer{
		baseURL: strings.TrimRight(u.String(), "/"),
		product: strings.TrimSpace(productName),
		sets:    make(map[string]*templateSet, len(catalog)),
	}
	if len(discreet) > 0 {
		r.discreet = discreet[0]
	}
	if err := r.discreet.Validate(); err != nil {
		return nil, err
	}
	r.discreet = r.discreet.WithDefaults()

	layoutHTML, err := readTemplate("layout.html")
	if err != nil {
		return nil, err
	}
	layoutText, err := readTemplate("layout.txt")
	if err != nil {
		return nil, err
	}
	htmlBase, err := htmltemplate.New("layout.html").Funcs(funcs).Option("missingkey=error").Parse(layoutHTML)
	if err != nil {
		return nil, fmt.Errorf("emails: parse layout.html: %w", err)
	}
	textBase, err := texttemplate.New("layout.txt").Funcs(funcs).Option("missingkey=error").Parse(layoutText)
	if err != nil {
		return nil, fmt.Errorf("emails: parse layout.txt: %w", err)
	}

	for name, spec := range catalog {
		set := &templateSet{spec: spec}
		if !spec.passthrough {
			if set, err = parseSet(name, spec, htmlBase, textBase); err != nil {
				return nil, err
			}
		}
		r.sets[name] = set
		if _, err := r.Render(name, "Sample", spec.sample); err != nil {
			return nil, fmt.Errorf("emails: dry run: %w", err)
		}
		if _, err := r.RenderDiscreet(name, "Sample", spec.sample); err != nil {
			return nil, fmt.Errorf("emails: dry run, discreet: %w", err)
		}
	}
	return r, nil
}

func parseSet(name string, spec templateSpec, htmlBase *htmltemplate.Template, textBase *texttemplate.Template) (*templateSet, error) {
	subjectSrc, err := readTemplate(name + ".subject")
	if err != nil {
		return nil, err
	}
	htmlSrc, err := readTemplate(name + ".html")
	if err != nil {
		return nil, err
	}
	textSrc, err := readTemplate(name + ".txt")
	if err != nil {
		return nil, err
	}

	set := &templateSet{spec: spec}
	if set.subject, err = texttemplate.New(name + ".subject").Funcs(funcs).Option("missingkey=error").Parse(subjectSrc); err != nil {
		return nil, fmt.Errorf("emails: parse %s.subject: %w", name, err)
	}
	if set.html, err = htmlBase.Clone(); err != nil {
		return nil, fmt.Errorf("emails: clone layout for %s: %w", name, err)
	}
	// The content file's top level becomes "content"; its {{define}} blocks
	// ("reason", "preheader") join the same set and fill the layout's slots.
	if _, err = set.html.New("content").Parse(htmlSrc); err != nil {
		return nil, fmt.Errorf("emails: parse %s.html: %w", name, err)
	}
	if set.text, err = textBase.Clone(); err != nil {
		return nil, fmt.Errorf("emails: clone layout for %s: %w", name, err)
	}
	if _, err = set.text.New("content").Parse(textSrc); err != nil {
		return nil, fmt.Errorf("emails: parse %s.txt: %w", name, err)
	}
	for _, slot := range []string{"content", "reason"} {
		if set.html.Lookup(slot) == nil || set.text.Lookup(slot) == nil {
			return nil, fmt.Errorf("emails: template %s must define %q in both its html and txt files", name, slot)
		}
	}
	return set, nil
}

func readTemplate(file string) (string, error) {
	b, err := templateFS.ReadFile("templates/" + file)
	if err != nil {
		return "", fmt.Errorf("emails: read template %s: %w", file, err)
	}
	return string(b), nil
}

// Templates lists the template names Render accepts, sorted.
func (r *Renderer) Templates() []string {
	names := make([]string, 0, len(r.sets))
	for name := range r.sets {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Render renders template for a recipient. The greeting uses data["name"]
// and falls back to toName. Missing required data is an error, never an
// email with a hole in it.
func (r *Renderer) Render(template, toName string, data map[string]any) (Rendered, error) {
	return r.render(template, toName, data, false)
}

// RenderDiscreet renders template for a recipient in discreet mode: the
// subject and the preview are the neutral ones, the body is Render's.
func (r *Renderer) RenderDiscreet(template, toName string, data map[string]any) (Rendered, error) {
	return r.render(template, toName, data, true)
}

// Credential reports whether template carries a way to sign in, which a
// pause does not hold back.
func (r *Renderer) Credential(template string) bool {
	set, ok := r.sets[template]
	return ok && set.spec.credential
}

// Discreet is the neutral texts RenderDiscreet uses.
func (r *Renderer) Discreet() Discreet { return r.discreet }

func (r *Renderer) render(template, toName string, data map[string]any, discreet bool) (Rendered, error) {
	set, ok := r.sets[template]
	if !ok {
		return Rendered{}, fmt.Errorf("%w: %q", ErrUnknownTemplate, template)
	}
	for _, key := range set.spec.required {
		if v, ok := data[key]; !ok || v == nil || v == "" {
			return Rendered{}, fmt.Errorf("emails: template %s: data is missing %q", template, key)
		}
	}
	if set.spec.passthrough {
		out, err := renderPassthrough(template, set.spec.subjectPrefix, data)
		if discreet {
			out.Subject = r.discreet.Subject
		}
		return out, err
	}
	v := view{
		Product: r.product,
		Name:    strings.TrimSpace(toName),
		Data:    data,
	}
	switch {
	case set.spec.absoluteLink != "":
		link, _ := data[set.spec.absoluteLink].(string)
		if u, err := url.Parse(link); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return Rendered{}, fmt.Errorf("emails: template %s: data %q must be an http(s) URL", template, set.spec.absoluteLink)
		}
		v.Link = link
	case set.spec.link != nil:
		v.Link = r.baseURL + set.spec.link(data)
	default:
		token, ok := data["token"].(string)
		if !ok {
			return Rendered{}, fmt.Errorf("emails: template %s: data %q must be a string", template, "token")
		}
		v.Link = r.baseURL + set.spec.linkPath + "?token=" + url.QueryEscape(token)
	}
	if name, ok := data["name"].(string); ok && strings.TrimSpace(name) != "" {
		v.Name = strings.TrimSpace(name)
	}
	if code, ok := data["code"]; ok {
		s, isString := code.(string)
		if !isString {
			return Rendered{}, fmt.Errorf("emails: template %s: data %q must be a string", template, "code")
		}
		v.Code = s
	}

	var buf bytes.Buffer
	if err := set.subject.Execute(&buf, v); err != nil {
		return Rendered{}, fmt.Errorf("emails: render %s subject: %w", template, err)
	}
	// A subject is one line, whatever a name in it contains.
	v.Subject = strings.Join(strings.Fields(buf.String()), " ")
	if discreet {
		v.Subject = r.discreet.Subject
		v.Discreet, v.DiscreetPreheader = true, r.discreet.PreheaderHTML()
	}

	buf.Reset()
	if err := set.html.ExecuteTemplate(&buf, "layout.html", v); err != nil {
		return Rendered{}, fmt.Errorf("emails: render %s html: %w", template, err)
	}
	html := buf.String()

	buf.Reset()
	if err := set.text.ExecuteTemplate(&buf, "layout.txt", v); err != nil {
		return Rendered{}, fmt.Errorf("emails: render %s text: %w", template, err)
	}
	return Rendered{Subject: v.Subject, HTML: html, Text: tidyText(buf.String())}, nil
}

// renderPassthrough sends pre-rendered content as it is, the subject
// prefixed and kept to one line.
func renderPassthrough(template, prefix string, data map[string]any) (Rendered, error) {
	var parts [3]string
	for i, key := range []string{"subject", "html", "text"} {
		v, ok := data[key].(string)
		if !ok {
			return Rendered{}, fmt.Errorf("emails: template %s: data %q must be a string", template, key)
		}
		parts[i] = v
	}
	return Rendered{Subject: prefix + strings.Join(strings.Fields(parts[0]), " "), HTML: parts[1], Text: parts[2]}, nil
}

var blankRuns = regexp.MustCompile(`\n{3,}`)

// tidyText removes the blank-line runs that optional template sections leave.
func tidyText(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t")
	}
	return strings.TrimSpace(blankRuns.ReplaceAllString(strings.Join(lines, "\n"), "\n\n")) + "\n"
}

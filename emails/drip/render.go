// Package drip sends the coach's drip sequences: it renders a step for one
// recipient (models.DripRenderer) inside the layout every Grace email
// shares, and runs the worker that forms batches, sends them through
// Resend's batch endpoint under the shared rate limit and records the
// outcome.
package drip

import (
	"bytes"
	"errors"
	"fmt"
	"html"
	htmltemplate "html/template"
	"regexp"
	"strings"
	"sync"
	texttemplate "text/template"
	"unicode"
	"unicode/utf8"

	"github.com/grace-coaching/grace/emails"
	"github.com/grace-coaching/grace/models"
	dripdom "github.com/grace-coaching/grace/models/drip"
)

// Renderer renders drip steps. It is safe for concurrent use, and its
// output is a function of its input alone: a batch re-rendered would be the
// same bytes (though the worker never re-renders; it resends what it
// stored).
//
// A step is rendered once per (subject, body, kind) with every placeholder
// replaced by a token, and each recipient's email is that skeleton with the
// tokens replaced by her values, HTML-escaped in the HTML part. So her name
// is never read as Markdown or HTML, and a batch of 100 costs one Markdown
// render, not 100.
type Renderer struct {
	product  string
	discreet emails.Discreet
	html     *htmltemplate.Template
	text     *texttemplate.Template

	mu    sync.Mutex
	cache map[skeletonKey]*skeleton
}

type skeletonKey struct {
	subject, body string
	marketing     bool
	hasProgram    bool
	discreet      bool
}

// skeleton is a rendered step whose placeholders are still tokens.
type skeleton struct {
	subject, html, text string
}

// maxSkeletons bounds the cache; a coach has tens of steps, not thousands.
const maxSkeletons = 512

var _ dripdom.Renderer = (*Renderer)(nil)

// placeholderRE matches {{name}}, spaces allowed inside the braces.
var placeholderRE = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_]+)\s*\}\}`)

// Tokens stand in for placeholders while the step is rendered. A text
// value's token is one alphanumeric word, which neither Markdown nor HTML
// escaping touches. A link's token is itself an absolute https URL, so the
// Markdown sanitiser keeps it where the coach wrote [a link]({{portal_url}})
// and autolinks it where she wrote the bare placeholder; her real URL
// replaces it afterwards.
func token(name string) string {
	bare := strings.ReplaceAll(name, "_", "")
	if strings.HasSuffix(name, "_url") {
		return "https://placeholder.grace.invalid/" + bare + "/end"
	}
	return "GRACEPLACEHOLDER" + bare + "END"
}

var knownPlaceholders = func() map[string]bool {
	m := map[string]bool{}
	for _, p := range dripdom.Placeholders {
		m[p] = true
	}
	return m
}()

// NewRenderer parses the shared layout with the drip slots. product names
// the sender in the layout's header and footer ("Grace" when empty).
// discreet, when given, is the neutral subject and preview of a discreet
// woman's email (the defaults otherwise).
func NewRenderer(product string, discreet ...emails.Discreet) (*Renderer, error) {
	product = strings.TrimSpace(product)
	if product == "" {
		product = "Grace"
	}
	var d emails.Discreet
	if len(discreet) > 0 {
		d = discreet[0]
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	h, t, err := emails.Layout()
	if err != nil {
		return nil, fmt.Errorf("drip: layout: %w", err)
	}
	if _, err := h.Parse(htmlSlots); err != nil {
		return nil, fmt.Errorf("drip: html slots: %w", err)
	}
	if _, err := t.Parse(textSlots); err != nil {
		return nil, fmt.Errorf("drip: text slots: %w", err)
	}
	return &Renderer{product: product, discreet: d.WithDefaults(), html: h, text: t, cache: map[skeletonKey]*skeleton{}}, nil
}

// The drip's slots in the shared layout. The footer of marketing email says
// how to stop it, in one click.
const htmlSlots = `{{define "content"}}<div style="margin:0;">{{.Body}}</div>{{end}}` +
	`{{define "reason"}}You are receiving this email because you joined {{if .HasProgram}}{{.ProgramTitle}}{{else}}a programme{{end}} with {{.Product}}.{{end}}` +
	`{{define "notice"}}{{if .Marketing}}Don't want these emails? <a href="{{.UnsubscribeURL}}" style="color:#5f5a55;">Unsubscribe</a> with one click. Sent by {{.Product}}.{{else}}This message is about a programme you joined, not a newsletter. Sent by {{.Product}}.{{end}}{{end}}`

const textSlots = `{{define "content"}}{{.Body}}{{end}}` +
	`{{define "reason"}}You are receiving this email because you joined {{if .HasProgram}}{{.ProgramTitle}}{{else}}a programme{{end}} with {{.Product}}.{{end}}` +
	`{{define "notice"}}{{if .Marketing}}Don't want these emails? Unsubscribe with one click: {{.UnsubscribeURL}}
Sent by {{.Product}}.{{else}}This message is about a programme you joined, not a newsletter. Sent by {{.Product}}.{{end}}{{end}}`

type htmlView struct {
	Product, Subject, ProgramTitle, UnsubscribeURL string
	Body                                           htmltemplate.HTML
	Marketing, HasProgram                          bool
	// The layout's preview: the neutral one in discreet mode.
	Discreet          bool
	DiscreetPreheader htmltemplate.HTML
}

type textView struct {
	Product, Subject, ProgramTitle, UnsubscribeURL, Body string
	Marketing, HasProgram                                bool
}

// RenderStep renders req's step for its recipient. An unknown placeholder
// is an error (the step editor refuses them, so this is a step saved
// before that rule), and so is marketing email without an unsubscribe URL.
func (r *Renderer) RenderStep(req dripdom.RenderRequest) (dripdom.RenderedEmail, error) {
	if req.Marketing && req.Vars.UnsubscribeURL == "" {
		return dripdom.RenderedEmail{}, errors.New("drip: marketing email needs an unsubscribe URL")
	}
	sk, err := r.skeleton(skeletonKey{
		subject:    req.Step.Subject,
		body:       req.Step.Body,
		marketing:  req.Marketing,
		hasProgram: strings.TrimSpace(req.Vars.ProgramTitle) != "",
		discreet:   req.Discreet,
	})
	if err != nil {
		return dripdom.RenderedEmail{}, err
	}

	values := varsByName(req.Vars)
	rawPairs := make([]string, 0, 2*len(values))
	htmlPairs := make([]string, 0, 2*len(values))
	for _, name := range dripdom.Placeholders {
		v := values[name]
		rawPairs = append(rawPairs, token(name), v)
		htmlPairs = append(htmlPairs, token(name), html.EscapeString(v))
	}
	raw, escaped := strings.NewReplacer(rawPairs...), strings.NewReplacer(htmlPairs...)

	subject, htmlBody, text := sk.subject, sk.html, sk.text
	nameless := strings.TrimSpace(req.Vars.FirstName) == ""
	if nameless {
		// No name she has confirmed: greet her without one rather than
		// with a gap ("Hi ,").
		subject, htmlBody, text = withoutName(subject), withoutName(htmlBody), withoutName(text)
	}
	out := dripdom.RenderedEmail{
		// A subject is one line, whatever a value in it contains.
		Subject: strings.Join(strings.Fields(raw.Replace(subject)), " "),
		HTML:    escaped.Replace(htmlBody),
		Text:    raw.Replace(text),
	}
	if nameless {
		out.Subject = capitalise(out.Subject)
	}
	if out.Subject == "" {
		return dripdom.RenderedEmail{}, errors.New("drip: the subject renders empty")
	}
	if req.Discreet {
		// Checked above all the same: a step whose subject renders empty
		// is broken for everyone.
		out.Subject, out.Discreet = r.discreet.Subject, true
	}
	if req.Marketing {
		// RFC 2369 and RFC 8058: mail clients show an unsubscribe button,
		// and the https form takes a one-click POST.
		list := "<" + req.Vars.UnsubscribeURL + ">"
		if req.UnsubscribeMailto != "" {
			list += ", <" + req.UnsubscribeMailto + ">"
		}
		out.Headers = map[string]string{
			"List-Unsubscribe":      list,
			"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
		}
	}
	return out, nil
}

var (
	nameToken = token("first_name")
	// The name and what only made sense with it: the comma before it
	// ("open, {{first_name}}"), the space before it ("Hi {{first_name}},"),
	// or, leading a sentence, the comma after it ("{{first_name}}, what").
	nameAfterComma = regexp.MustCompile(`,[ \t]*` + nameToken)
	nameAfterSpace = regexp.MustCompile(`[ \t]+` + nameToken)
	nameLeading    = regexp.MustCompile(nameToken + `,?[ \t]*(\p{Ll})?`)
)

// withoutName removes the first_name placeholder from a skeleton so the
// sentence around it still reads: "Hi {{first_name}}," becomes "Hi,",
// "Welcome, {{first_name}}" becomes "Welcome" and "{{first_name}}, what
// comes next" becomes "What comes next".
func withoutName(s string) string {
	if !strings.Contains(s, nameToken) {
		return s
	}
	s = nameAfterComma.ReplaceAllString(s, "")
	s = nameAfterSpace.ReplaceAllString(s, "")
	return nameLeading.ReplaceAllStringFunc(s, func(m string) string {
		r, _ := utf8.DecodeLastRuneInString(m)
		if unicode.IsLower(r) {
			return string(unicode.ToUpper(r))
		}
		return ""
	})
}

// capitalise upper-cases a subject's first letter, which may have followed
// a name that was left out.
func capitalise(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if !unicode.IsLower(r) {
		return s
	}
	return string(unicode.ToUpper(r)) + s[n:]
}

func varsByName(v dripdom.Vars) map[string]string {
	return map[string]string{
		"first_name":        v.FirstName,
		"program_title":     v.ProgramTitle,
		"cohort_name":       v.CohortName,
		"portal_url":        v.PortalURL,
		"lesson_title":      v.LessonTitle,
		"session_starts_at": v.SessionStartsAt,
		"unsubscribe_url":   v.UnsubscribeURL,
	}
}

// skeleton renders (or finds) the step with tokens for placeholders.
func (r *Renderer) skeleton(k skeletonKey) (*skeleton, error) {
	r.mu.Lock()
	sk, ok := r.cache[k]
	r.mu.Unlock()
	if ok {
		return sk, nil
	}

	subject, err := tokenise(k.subject)
	if err != nil {
		return nil, fmt.Errorf("drip: subject: %w", err)
	}
	body, err := tokenise(k.body)
	if err != nil {
		return nil, fmt.Errorf("drip: body: %w", err)
	}
	hv := htmlView{
		Product: r.product, Subject: subject, ProgramTitle: token("program_title"),
		UnsubscribeURL: token("unsubscribe_url"), Marketing: k.marketing, HasProgram: k.hasProgram,
		Discreet: k.discreet,
		// Sanitised by RenderMarkdown, the same renderer as lessons.
		Body: htmltemplate.HTML(models.RenderMarkdown(body)),
	}
	if k.discreet {
		hv.Subject, hv.DiscreetPreheader = r.discreet.Subject, r.discreet.PreheaderHTML()
	}
	var buf bytes.Buffer
	if err := r.html.ExecuteTemplate(&buf, "layout.html", hv); err != nil {
		return nil, fmt.Errorf("drip: render html: %w", err)
	}
	sk = &skeleton{subject: subject, html: buf.String()}
	buf.Reset()
	tv := textView{
		Product: r.product, Subject: subject, ProgramTitle: hv.ProgramTitle, UnsubscribeURL: hv.UnsubscribeURL,
		Body: strings.TrimSpace(body), Marketing: k.marketing, HasProgram: k.hasProgram,
	}
	if err := r.text.ExecuteTemplate(&buf, "layout.txt", tv); err != nil {
		return nil, fmt.Errorf("drip: render text: %w", err)
	}
	sk.text = emails.TidyText(buf.String())

	r.mu.Lock()
	if len(r.cache) >= maxSkeletons {
		clear(r.cache)
	}
	r.cache[k] = sk
	r.mu.Unlock()
	return sk, nil
}

// tokenise replaces every {{placeholder}} in s with its token, refusing an
// unknown one.
func tokenise(s string) (string, error) {
	var unknown []string
	out := placeholderRE.ReplaceAllStringFunc(s, func(m string) string {
		name := placeholderRE.FindStringSubmatch(m)[1]
		if !knownPlaceholders[name] {
			unknown = append(unknown, "{{"+name+"}}")
			return m
		}
		return token(name)
	})
	if len(unknown) > 0 {
		return "", fmt.Errorf("unknown placeholder %s", strings.Join(unknown, ", "))
	}
	return out, nil
}

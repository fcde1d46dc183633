package api

import (
	"bytes"
	"fmt"
	"html"
	"html/template"
	"net/http"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"
	"github.com/pb33f/libopenapi"
	"github.com/pb33f/libopenapi/datamodel/high/base"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
	"github.com/pb33f/libopenapi/orderedmap"
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"
)

// The reference at /docs is rendered here, from the embedded spec, into
// plain HTML: no script, from us or a CDN, so it works under a policy that
// allows none, and nobody's browser fetches a third party's code from the
// coach's domain. It is built once per server, on first request.

// docsRenderer renders the spec on first use and keeps the page.
type docsRenderer struct {
	once sync.Once
	page []byte
	err  error
}

func (d *docsRenderer) get() ([]byte, error) {
	d.once.Do(func() { d.page, d.err = renderDocs(openAPISpec) })
	return d.page, d.err
}

func (h *handlers) docs(c echo.Context) error {
	page, err := h.docsPage.get()
	if err != nil {
		return fmt.Errorf("render /docs: %w", err)
	}
	return c.HTMLBlob(http.StatusOK, page)
}

type docsPage struct {
	Title, Version string
	Intro          template.HTML
	Tags           []docsTag
	Schemes        []docsNamed
	Schemas        []docsNamed
}

type docsTag struct {
	Name        string
	Description template.HTML
	Ops         []docsOp
}

type docsOp struct {
	ID, Method, Path, Summary string
	Description               template.HTML
	Auth                      []string
	Params                    []docsParam
	Body                      *docsBody
	Responses                 []docsResponse
}

type docsParam struct {
	Name, In    string
	Required    bool
	Type        template.HTML
	Description template.HTML
}

type docsBody struct {
	Required    bool
	Description template.HTML
	Media       []docsMedia
}

type docsMedia struct {
	Type   string
	Schema template.HTML
}

type docsResponse struct {
	Status      string
	Description template.HTML
	Headers     []docsParam
	Media       []docsMedia
}

type docsNamed struct {
	Name string
	Body template.HTML
}

// renderDocs turns an OpenAPI 3 document into the /docs page: operations
// grouped by tag in the spec's order, each with its parameters, request
// body, responses (error codes are in the descriptions) and the schemas they
// link to, listed after the operations.
func renderDocs(spec []byte) ([]byte, error) {
	doc, err := libopenapi.NewDocument(spec)
	if err != nil {
		return nil, err
	}
	built, err := doc.BuildV3Model()
	if err != nil {
		return nil, err
	}
	m := &built.Model
	md := goldmark.New(goldmark.WithExtensions(extension.Table))
	r := &docsBuilder{md: md}
	page := docsPage{Title: m.Info.Title, Version: m.Info.Version, Intro: r.markdown(m.Info.Description)}

	byTag := map[string]int{}
	addTag := func(name string, desc string) int {
		if i, ok := byTag[name]; ok {
			return i
		}
		byTag[name] = len(page.Tags)
		page.Tags = append(page.Tags, docsTag{Name: name, Description: r.markdown(desc)})
		return len(page.Tags) - 1
	}
	for _, t := range m.Tags {
		addTag(t.Name, t.Description)
	}
	if m.Paths != nil {
		for pair := m.Paths.PathItems.First(); pair != nil; pair = pair.Next() {
			path, item := pair.Key(), pair.Value()
			for op := item.GetOperations().First(); op != nil; op = op.Next() {
				o := op.Value()
				tag := "other"
				if len(o.Tags) > 0 {
					tag = o.Tags[0]
				}
				i := addTag(tag, "")
				page.Tags[i].Ops = append(page.Tags[i].Ops, r.operation(strings.ToUpper(op.Key()), path, item, o, m.Security))
			}
		}
	}
	if m.Components != nil {
		if m.Components.SecuritySchemes != nil {
			for pair := m.Components.SecuritySchemes.First(); pair != nil; pair = pair.Next() {
				s := pair.Value()
				page.Schemes = append(page.Schemes, docsNamed{Name: pair.Key(),
					Body: template.HTML("<p><code>"+html.EscapeString(strings.TrimSpace(s.Type+" "+s.Scheme))+"</code></p>") + r.markdown(s.Description)})
			}
		}
		if m.Components.Schemas != nil {
			for pair := m.Components.Schemas.First(); pair != nil; pair = pair.Next() {
				page.Schemas = append(page.Schemas, docsNamed{Name: pair.Key(), Body: template.HTML(r.schemaBody(pair.Value(), 0))})
			}
		}
	}
	var buf bytes.Buffer
	if err := docsTemplate.Execute(&buf, page); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type docsBuilder struct {
	md goldmark.Markdown
}

// markdown renders the spec's CommonMark. Raw HTML in it is escaped
// (goldmark's default), so the page holds only what the renderer makes.
func (r *docsBuilder) markdown(src string) template.HTML {
	if strings.TrimSpace(src) == "" {
		return ""
	}
	var b bytes.Buffer
	if err := r.md.Convert([]byte(src), &b); err != nil {
		return template.HTML("<p>" + html.EscapeString(src) + "</p>")
	}
	return template.HTML(b.String())
}

// inlineMarkdown is markdown for a phrase: one paragraph loses its <p>.
func (r *docsBuilder) inlineMarkdown(src string) template.HTML {
	out := strings.TrimSpace(string(r.markdown(src)))
	if inner, ok := strings.CutPrefix(out, "<p>"); ok && strings.Count(out, "<p>") == 1 {
		if inner, ok = strings.CutSuffix(inner, "</p>"); ok {
			return template.HTML(inner)
		}
	}
	return template.HTML(out)
}

func (r *docsBuilder) operation(method, path string, item *v3.PathItem, o *v3.Operation, global []*base.SecurityRequirement) docsOp {
	op := docsOp{ID: o.OperationId, Method: method, Path: path, Summary: o.Summary, Description: r.markdown(o.Description)}
	security := o.Security
	if security == nil {
		security = global
	}
	for _, req := range security {
		if req == nil || req.Requirements == nil || req.Requirements.Len() == 0 {
			op.Auth = append(op.Auth, "none")
			continue
		}
		var names []string
		for p := req.Requirements.First(); p != nil; p = p.Next() {
			names = append(names, p.Key())
		}
		op.Auth = append(op.Auth, strings.Join(names, " + "))
	}
	// Path-level parameters first, unless the operation redefines one.
	seen := map[string]bool{}
	for _, p := range o.Parameters {
		seen[p.In+" "+p.Name] = true
	}
	for _, p := range item.Parameters {
		if !seen[p.In+" "+p.Name] {
			op.Params = append(op.Params, r.param(p.Name, p.In, p.Required != nil && *p.Required, p.Schema, p.Description))
		}
	}
	for _, p := range o.Parameters {
		op.Params = append(op.Params, r.param(p.Name, p.In, p.Required != nil && *p.Required, p.Schema, p.Description))
	}
	if rb := o.RequestBody; rb != nil {
		op.Body = &docsBody{Required: rb.Required != nil && *rb.Required, Description: r.markdown(rb.Description), Media: r.media(rb.Content)}
	}
	if o.Responses != nil {
		if o.Responses.Codes != nil {
			for pair := o.Responses.Codes.First(); pair != nil; pair = pair.Next() {
				op.Responses = append(op.Responses, r.response(pair.Key(), pair.Value()))
			}
		}
		if o.Responses.Default != nil {
			op.Responses = append(op.Responses, r.response("default", o.Responses.Default))
		}
	}
	return op
}

func (r *docsBuilder) param(name, in string, required bool, schema *base.SchemaProxy, desc string) docsParam {
	return docsParam{Name: name, In: in, Required: required, Type: template.HTML(r.typeOf(schema)), Description: r.markdown(desc)}
}

func (r *docsBuilder) media(content *orderedmap.Map[string, *v3.MediaType]) []docsMedia {
	if content == nil {
		return nil
	}
	var out []docsMedia
	for pair := content.First(); pair != nil; pair = pair.Next() {
		m := docsMedia{Type: pair.Key()}
		if pair.Value().Schema != nil {
			m.Schema = template.HTML(r.schemaBody(pair.Value().Schema, 0))
		}
		out = append(out, m)
	}
	return out
}

func (r *docsBuilder) response(status string, res *v3.Response) docsResponse {
	out := docsResponse{Status: status, Description: r.markdown(res.Description)}
	if res.Headers != nil {
		for pair := res.Headers.First(); pair != nil; pair = pair.Next() {
			h := pair.Value()
			out.Headers = append(out.Headers, r.param(pair.Key(), "header", h.Required, h.Schema, h.Description))
		}
	}
	out.Media = r.media(res.Content)
	return out
}

// schemaRef is the name of a component schema a proxy points at, or "".
func schemaRef(sp *base.SchemaProxy) string {
	if sp == nil || !sp.IsReference() {
		return ""
	}
	ref := sp.GetReference()
	if i := strings.LastIndexByte(ref, '/'); i >= 0 {
		return ref[i+1:]
	}
	return ref
}

func schemaLink(name string) string {
	return `<a href="#schema-` + html.EscapeString(name) + `">` + html.EscapeString(name) + `</a>`
}

// maxSchemaDepth bounds inline expansion; deeper parts are links or "object".
const maxSchemaDepth = 6

// typeOf is a schema's one-line type: a link to a component, or a type with
// its format, enum values and bounds.
func (r *docsBuilder) typeOf(sp *base.SchemaProxy) string {
	if name := schemaRef(sp); name != "" {
		return schemaLink(name)
	}
	if sp == nil {
		return "any"
	}
	s := sp.Schema()
	if s == nil {
		return "any"
	}
	var parts []string
	nullable := s.Nullable != nil && *s.Nullable
	for _, t := range s.Type {
		if t == "null" {
			nullable = true
			continue
		}
		if t == "array" && s.Items != nil && s.Items.IsA() {
			parts = append(parts, "array of "+r.typeOf(s.Items.A))
			continue
		}
		parts = append(parts, html.EscapeString(t))
	}
	for _, group := range []struct {
		word string
		list []*base.SchemaProxy
	}{{"all of", s.AllOf}, {"one of", s.OneOf}, {"any of", s.AnyOf}} {
		if len(group.list) == 0 {
			continue
		}
		var alts []string
		for _, a := range group.list {
			alts = append(alts, r.typeOf(a))
		}
		parts = append(parts, group.word+" ("+strings.Join(alts, ", ")+")")
	}
	if len(parts) == 0 {
		parts = append(parts, "any")
	}
	out := strings.Join(parts, " or ")
	if s.Format != "" {
		out += " (" + html.EscapeString(s.Format) + ")"
	}
	if nullable {
		out += " or null"
	}
	if len(s.Enum) > 0 {
		var vals []string
		for _, v := range s.Enum {
			if v != nil {
				vals = append(vals, "<code>"+html.EscapeString(v.Value)+"</code>")
			}
		}
		out += ": one of " + strings.Join(vals, ", ")
	}
	var bounds []string
	if s.MinLength != nil {
		bounds = append(bounds, fmt.Sprintf("min length %d", *s.MinLength))
	}
	if s.MaxLength != nil {
		bounds = append(bounds, fmt.Sprintf("max length %d", *s.MaxLength))
	}
	if s.Minimum != nil {
		bounds = append(bounds, fmt.Sprintf("min %g", *s.Minimum))
	}
	if s.Maximum != nil {
		bounds = append(bounds, fmt.Sprintf("max %g", *s.Maximum))
	}
	if s.MaxItems != nil {
		bounds = append(bounds, fmt.Sprintf("at most %d items", *s.MaxItems))
	}
	if s.Default != nil {
		bounds = append(bounds, "default <code>"+html.EscapeString(s.Default.Value)+"</code>")
	}
	if len(bounds) > 0 {
		out += " <span class=\"t\">(" + strings.Join(bounds, ", ") + ")</span>"
	}
	return out
}

// schemaBody is a schema's type and, for an object, its properties, nested
// objects expanded in place and components linked.
func (r *docsBuilder) schemaBody(sp *base.SchemaProxy, depth int) string {
	var b strings.Builder
	b.WriteString(`<div class="schema"><span class="t">`)
	b.WriteString(r.typeOf(sp))
	b.WriteString(`</span>`)
	if schemaRef(sp) == "" && sp != nil {
		if s := sp.Schema(); s != nil {
			if s.Description != "" && depth == 0 {
				b.WriteString(`<div class="d">`)
				b.WriteString(string(r.markdown(s.Description)))
				b.WriteString(`</div>`)
			}
			r.properties(&b, s, depth)
		}
	}
	b.WriteString(`</div>`)
	return b.String()
}

func (r *docsBuilder) properties(b *strings.Builder, s *base.Schema, depth int) {
	props := s
	if s.Items != nil && s.Items.IsA() && schemaRef(s.Items.A) == "" {
		if items := s.Items.A.Schema(); items != nil {
			props = items
		}
	}
	if props.Properties == nil || props.Properties.Len() == 0 || depth >= maxSchemaDepth {
		return
	}
	required := map[string]bool{}
	for _, n := range props.Required {
		required[n] = true
	}
	b.WriteString("<ul>")
	for pair := props.Properties.First(); pair != nil; pair = pair.Next() {
		name, p := pair.Key(), pair.Value()
		b.WriteString("<li><code>")
		b.WriteString(html.EscapeString(name))
		b.WriteString(`</code> <span class="t">`)
		b.WriteString(r.typeOf(p))
		b.WriteString("</span>")
		if required[name] {
			b.WriteString(` <span class="req">required</span>`)
		}
		if schemaRef(p) == "" && p != nil {
			if ps := p.Schema(); ps != nil {
				if ps.Description != "" {
					b.WriteString(` <span class="d">`)
					b.WriteString(string(r.inlineMarkdown(ps.Description)))
					b.WriteString(`</span>`)
				}
				r.properties(b, ps, depth+1)
			}
		}
		b.WriteString("</li>")
	}
	b.WriteString("</ul>")
}

var docsTemplate = template.Must(template.New("docs").Funcs(pageFuncs).Funcs(template.FuncMap{
	"lower": strings.ToLower,
}).Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} reference</title>
{{pageStyle}}
</head>
<body>
<div class="docs">
<nav aria-label="Operations">
<p><strong>{{.Title}}</strong> {{.Version}}<br><a href="/openapi.yaml">openapi.yaml</a></p>
{{range .Tags}}{{if .Ops}}<h2><a href="#tag-{{.Name}}">{{.Name}}</a></h2>
<ul>{{range .Ops}}<li><a href="#op-{{.ID}}"><span class="method">{{.Method}}</span></a> <a href="#op-{{.ID}}">{{.Summary}}</a></li>{{end}}</ul>
{{end}}{{end}}<h2><a href="#schemas">schemas</a></h2>
</nav>
<main class="reference">
<h1>{{.Title}} <small>{{.Version}}</small></h1>
<p>The machine-readable contract is <a href="/openapi.yaml">/openapi.yaml</a>.</p>
{{.Intro}}
{{if .Schemes}}<h2 id="authentication">Authentication schemes</h2>
{{range .Schemes}}<h3 id="scheme-{{.Name}}">{{.Name}}</h3>{{.Body}}{{end}}{{end}}
{{range .Tags}}{{if .Ops}}<section id="tag-{{.Name}}">
<h2>{{.Name}}</h2>
{{.Description}}
{{range .Ops}}<article class="op" id="op-{{.ID}}">
<h3><span class="method">{{.Method}}</span> <span class="path">{{.Path}}</span></h3>
<p><strong>{{.Summary}}</strong>{{if .ID}} <span class="note">({{.ID}})</span>{{end}}</p>
{{.Description}}
<p>Authentication: {{range $i, $a := .Auth}}{{if $i}} or {{end}}{{if eq $a "none"}}none{{else}}<a href="#scheme-{{$a}}">{{$a}}</a>{{end}}{{else}}none{{end}}</p>
{{if .Params}}<h4>Parameters</h4>
<table><thead><tr><th>name</th><th>in</th><th>type</th><th>description</th></tr></thead><tbody>
{{range .Params}}<tr><td><code>{{.Name}}</code>{{if .Required}} <span class="req">required</span>{{end}}</td><td>{{.In}}</td><td class="schema">{{.Type}}</td><td>{{.Description}}</td></tr>
{{end}}</tbody></table>{{end}}
{{with .Body}}<h4>Request body{{if .Required}} <span class="req">required</span>{{end}}</h4>
{{.Description}}
{{range .Media}}<p><code>{{.Type}}</code></p>{{.Schema}}{{end}}{{end}}
<h4>Responses</h4>
<table><thead><tr><th>status</th><th>description</th></tr></thead><tbody>
{{range .Responses}}<tr><td class="status">{{.Status}}</td><td>{{.Description}}
{{range .Headers}}<p>Header <code>{{.Name}}</code>: <span class="schema">{{.Type}}</span>{{.Description}}</p>{{end}}
{{range .Media}}<p><code>{{.Type}}</code></p>{{.Schema}}{{end}}</td></tr>
{{end}}</tbody></table>
</article>
{{end}}</section>
{{end}}{{end}}
<section id="schemas">
<h2>Schemas</h2>
{{range .Schemas}}<article class="op" id="schema-{{.Name}}">
<h3>{{.Name}}</h3>
{{.Body}}
</article>
{{end}}</section>
</main>
</div>
</body>
</html>
`))

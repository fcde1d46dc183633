package models

import (
	"bytes"
	"html"
	"regexp"
	"sync"

	"github.com/microcosm-cc/bluemonday"
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/parser"
	"github.com/yuin/goldmark/renderer"
	"github.com/yuin/goldmark/text"
	"github.com/yuin/goldmark/util"
)

// linkRel is set on every link in rendered Markdown: lessons link out to
// other sites, which must neither gain search rank from us, nor script the
// portal's window, nor learn which lesson a participant was reading.
const linkRel = "nofollow noopener noreferrer"

// markdownRenderer turns coach-written Markdown into HTML safe to show in the
// portal. goldmark shows raw HTML as text and drops dangerous link targets;
// bluemonday then removes anything that still should not be there, so a gap
// in one layer is not a hole.
type markdownRenderer struct {
	md     goldmark.Markdown
	policy *bluemonday.Policy
}

// sharedMarkdown is built on first use; both parts are safe for concurrent use.
var sharedMarkdown = sync.OnceValue(func() *markdownRenderer {
	md := goldmark.New(
		goldmark.WithExtensions(extension.Table, extension.Strikethrough, extension.Linkify),
		goldmark.WithParserOptions(parser.WithASTTransformers(util.Prioritized(linkRelTransformer{}, 1000))),
		// Ahead of the HTML renderer (1000), which would drop raw HTML silently.
		goldmark.WithRendererOptions(renderer.WithNodeRenderers(util.Prioritized(rawHTMLEscaper{}, 100))),
	)

	p := bluemonday.UGCPolicy()
	// Absolute http(s) and mailto links only: lessons are shown on another
	// origin than the one they were written for, so a relative URL is a
	// broken link at best.
	p.AllowRelativeURLs(false)
	p.AllowURLSchemes("http", "https", "mailto")
	p.RequireNoFollowOnLinks(true)
	p.RequireNoReferrerOnLinks(true)
	// The only rel a link can carry is the one the transformer sets (raw
	// HTML never reaches this point).
	p.AllowAttrs("rel").Matching(regexp.MustCompile(`^` + linkRel + `$`)).OnElements("a")
	// Fenced code keeps its language so the portal can highlight it.
	p.AllowAttrs("class").Matching(regexp.MustCompile(`^language-[A-Za-z0-9_+-]{1,40}$`)).OnElements("code")
	return &markdownRenderer{md: md, policy: p}
})

// linkRelTransformer marks every link the policy will keep, autolinked bare
// URLs included. A link to any other scheme gets no attribute, so the
// sanitiser, dropping its href, drops the whole <a> and keeps the text.
type linkRelTransformer struct{}

var keptLinkRE = regexp.MustCompile(`(?i)^(https?://|mailto:)`)

func (linkRelTransformer) Transform(doc *ast.Document, reader text.Reader, _ parser.Context) {
	source := reader.Source()
	_ = ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		switch l := n.(type) {
		case *ast.Link:
			if keptLinkRE.Match(l.Destination) {
				l.SetAttributeString("rel", []byte(linkRel))
			}
		case *ast.AutoLink:
			if l.AutoLinkType == ast.AutoLinkEmail || keptLinkRE.Match(l.URL(source)) {
				l.SetAttributeString("rel", []byte(linkRel))
			}
		}
		return ast.WalkContinue, nil
	})
}

// rawHTMLEscaper shows HTML typed into Markdown as text. Dropping it (what
// goldmark does by default) would make a coach's words vanish without a
// trace; shown as text, a pasted embed code tells her to use media_url.
type rawHTMLEscaper struct{}

func (rawHTMLEscaper) RegisterFuncs(reg renderer.NodeRendererFuncRegisterer) {
	reg.Register(ast.KindHTMLBlock, renderHTMLBlockAsText)
	reg.Register(ast.KindRawHTML, renderRawHTMLAsText)
}

func renderHTMLBlockAsText(w util.BufWriter, source []byte, node ast.Node, entering bool) (ast.WalkStatus, error) {
	if !entering {
		return ast.WalkContinue, nil
	}
	n := node.(*ast.HTMLBlock)
	var raw []byte
	for i := range n.Lines().Len() {
		line := n.Lines().At(i)
		raw = append(raw, line.Value(source)...)
	}
	if n.HasClosure() {
		raw = append(raw, n.ClosureLine.Value(source)...)
	}
	_, _ = w.WriteString("<p>")
	_, _ = w.Write(util.EscapeHTML(bytes.TrimRight(raw, "\r\n")))
	_, _ = w.WriteString("</p>\n")
	return ast.WalkContinue, nil
}

func renderRawHTMLAsText(w util.BufWriter, source []byte, node ast.Node, entering bool) (ast.WalkStatus, error) {
	if !entering {
		return ast.WalkSkipChildren, nil
	}
	n := node.(*ast.RawHTML)
	for i := range n.Segments.Len() {
		seg := n.Segments.At(i)
		_, _ = w.Write(util.EscapeHTML(seg.Value(source)))
	}
	return ast.WalkSkipChildren, nil
}

// RenderMarkdown renders CommonMark with GFM tables, strikethrough and
// autolinks to sanitised HTML. It is called when a lesson is written, never
// when it is read.
func RenderMarkdown(md string) string {
	r := sharedMarkdown()
	var buf bytes.Buffer
	if err := r.md.Convert([]byte(md), &buf); err != nil {
		// goldmark only fails when the writer does; a bytes.Buffer does not.
		// Show the text, escaped, rather than nothing.
		return "<pre>" + html.EscapeString(md) + "</pre>"
	}
	return r.policy.SanitizeReader(&buf).String()
}

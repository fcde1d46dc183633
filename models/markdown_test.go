package models_test

import (
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/grace-coaching/grace/models"
)

// liveMarkup finds what a browser would run from rendered HTML: a tag that
// executes or embeds, an event handler attribute, or a script scheme inside
// a tag.
var liveMarkup = []*regexp.Regexp{
	regexp.MustCompile(`(?i)<\s*(script|style|iframe|svg|object|embed|form|input|math|meta|link|base)\b`),
	regexp.MustCompile(`(?i)<[^>]*\son[a-z]+\s*=`),
	regexp.MustCompile(`(?i)<[^>]*(javascript|vbscript|data)\s*:`),
}

var urlAttr = regexp.MustCompile(`(?i)\b(href|src|action|formaction|cite|xlink:href)\s*=\s*"([^"]*)"`)

// checkNoLiveMarkup fails unless every URL in out is absolute http(s) or
// mailto and nothing in it would run.
func checkNoLiveMarkup(t *testing.T, out string) {
	t.Helper()
	for _, re := range liveMarkup {
		if m := re.FindString(out); m != "" {
			t.Errorf("live markup %q in output:\n%s", m, out)
		}
	}
	for _, m := range urlAttr.FindAllStringSubmatch(out, -1) {
		v := strings.ToLower(m[2])
		if !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "https://") && !strings.HasPrefix(v, "mailto:") {
			t.Errorf("URL attribute %q in output:\n%s", m[0], out)
		}
	}
}

func TestMarkdownNeutralisesHostileInput(t *testing.T) {
	tests := []struct {
		name string
		in   string
		// keep is text that must survive (escaped or as plain text), so a
		// renderer that simply drops everything does not pass.
		keep string
	}{
		{"script tag", `<script>alert(1)</script> after`, "after"},
		{"script in paragraph", "Hello <script>alert(1)</script> world", "world"},
		{"img onerror", `<img src=x onerror=alert(1)> caption`, "caption"},
		{"markdown javascript link", `[click me](javascript:alert(1))`, "click me"},
		{"mixed case javascript link", `[click me](JaVaScRiPt:alert(1))`, "click me"},
		{"entity-encoded javascript link", `[click me](&#106;avascript:alert(1))`, "click me"},
		{"javascript link with spaces", "[click me](<java\tscript:alert(1)>)", "click me"},
		{"vbscript link", `[click me](vbscript:msgbox(1))`, "click me"},
		{"data html link", `<a href="data:text/html,<script>alert(1)</script>">click me</a>`, "click me"},
		{"markdown data link", `[click me](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)`, "click me"},
		{"data image", `![pic](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)`, "pic"},
		{"iframe", `<iframe src="https://evil.example"></iframe> text`, "text"},
		{"svg onload", `<svg onload=alert(1)> text`, "text"},
		{"style tag", `<style>body{display:none}</style> text`, "text"},
		{"event handler on allowed tag", `<p onclick="alert(1)">text</p>`, "text"},
		{"entity tricks", `&lt;script&gt;alert(1)&lt;/script&gt;`, "alert(1)"},
		{"double-encoded entities", `&amp;lt;script&amp;gt;`, "script"},
		{"autolink javascript", `<javascript:alert(1)>`, ""},
		{"reference link javascript", "[click me][x]\n\n[x]: javascript:alert(1)", "click me"},
		{"html comment smuggling", "<!-- --><script>alert(1)</script><!-- -->", ""},
		{"broken tag", `<scr<script>ipt>alert(1)</script>`, ""},
		{"link title breakout", `[x](https://example.com "a\" onmouseover=\"alert(1)")`, "x"},
		{"image title breakout", `![x](https://example.com/a.png "a\" onerror=\"alert(1)")`, ""},
		{"form", `<form action="https://evil.example"><input name=x></form> text`, "text"},
		{"relative link", `[click me](/admin)`, "click me"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := models.RenderMarkdown(tt.in)
			checkNoLiveMarkup(t, out)
			if !strings.Contains(out, tt.keep) {
				t.Errorf("output lost the text %q:\n%s", tt.keep, out)
			}
		})
	}
}

func TestMarkdownRendersNormalMarkdown(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"heading", "# Why no contact\n\n## Part one", []string{"<h1>Why no contact</h1>", "<h2>Part one</h2>"}},
		{"emphasis", "*gently* and **firmly** and ~~never~~", []string{"<em>gently</em>", "<strong>firmly</strong>", "<del>never</del>"}},
		{"lists", "- one\n- two\n\n1. first\n2. second", []string{"<ul>\n<li>one</li>", "<ol>\n<li>first</li>"}},
		{"link", "[the book](https://example.com/book)", []string{`<a href="https://example.com/book" rel="nofollow noopener noreferrer">the book</a>`}},
		{"mailto link", "[write to me](mailto:grace@example.com)", []string{`<a href="mailto:grace@example.com" rel="nofollow noopener noreferrer">write to me</a>`}},
		{"bare url autolink", "See https://example.com/help today", []string{`<a href="https://example.com/help" rel="nofollow noopener noreferrer">https://example.com/help</a>`}},
		{"table", "| a | b |\n|---|---|\n| 1 | 2 |", []string{"<table>", "<th>a</th>", "<td>2</td>"}},
		{"image", "![a calm lake](https://media.example.com/lake.jpg)", []string{`<img src="https://media.example.com/lake.jpg" alt="a calm lake">`}},
		{"blockquote", "> You can say no.", []string{"<blockquote>\n<p>You can say no.</p>\n</blockquote>"}},
		{"code", "```go\nfmt.Println(1)\n```", []string{`<pre><code class="language-go">fmt.Println(1)`}},
		{"text that looks like html is shown, not run", "1 < 2 & 3 > 2", []string{"1 &lt; 2 &amp; 3 &gt; 2"}},
		{"raw html is shown as text", "Say <b>no</b>.\n\n<div>block</div>", []string{"Say &lt;b&gt;no&lt;/b&gt;.", "&lt;div&gt;block&lt;/div&gt;"}},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := models.RenderMarkdown(tt.in)
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// The renderer is shared; rendering from many goroutines must give every
// caller its own, correct output (run with -race).
func TestMarkdownConcurrentRendering(t *testing.T) {
	var wg sync.WaitGroup
	errs := make(chan string, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := strings.Repeat("word ", i) + "**end**"
			out := models.RenderMarkdown(in)
			if !strings.HasSuffix(out, "<strong>end</strong></p>\n") || strings.Count(out, "word") != i {
				errs <- out
			}
		}()
	}
	wg.Wait()
	close(errs)
	for out := range errs {
		t.Errorf("wrong output under concurrency: %q", out)
	}
}

package api_test

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/grace-coaching/grace/api"
	"github.com/grace-coaching/grace/api/apitest"
)

func serve(e http.Handler, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	return rec
}

// corsHeaders are the Access-Control-* headers of an answer.
func corsHeaders(h http.Header) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			out[k] = strings.Join(v, ", ")
		}
	}
	return out
}

// With CORS_ORIGINS unset no answer carries a CORS header, so no other
// site's script can read one; with it set only the admin panel's and the
// portal's origins may, with credentials, and their preflights are
// answered.
func TestCORSAnswersOnlyTheConfiguredOrigins(t *testing.T) {
	const admin, portal, stranger = "https://admin.say-no.example", "https://portal.say-no.example", "https://evil.example"
	preflight := func(origin string) *http.Request {
		req := httptest.NewRequest(http.MethodOptions, "/v1/auth/login", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", http.MethodPost)
		req.Header.Set("Access-Control-Request-Headers", "authorization,content-type,idempotency-key")
		return req
	}
	simple := func(origin string) *http.Request {
		req := httptest.NewRequest(http.MethodGet, "/healthz", nil)
		req.Header.Set("Origin", origin)
		return req
	}

	t.Run("unset: no CORS headers at all", func(t *testing.T) {
		e := api.New(api.Config{})
		for _, req := range []*http.Request{simple(stranger), simple(portal), preflight(stranger), preflight(portal)} {
			rec := serve(e, req)
			if h := corsHeaders(rec.Header()); len(h) != 0 {
				t.Errorf("%s from %s: CORS headers %v, want none", req.Method, req.Header.Get("Origin"), h)
			}
			if req.Method == http.MethodGet && rec.Code != http.StatusOK {
				t.Errorf("GET from %s = %d", req.Header.Get("Origin"), rec.Code)
			}
		}
	})

	t.Run("set: only those origins", func(t *testing.T) {
		e := api.New(api.Config{CORSOrigins: []string{admin, portal}})
		for _, origin := range []string{admin, portal} {
			rec := serve(e, simple(origin))
			h := rec.Header()
			if rec.Code != http.StatusOK || h.Get("Access-Control-Allow-Origin") != origin || h.Get("Access-Control-Allow-Credentials") != "true" ||
				!strings.Contains(h.Get("Access-Control-Expose-Headers"), "Retry-After") || !strings.Contains(h.Get("Vary"), "Origin") {
				t.Errorf("GET from %s = %d, headers %v", origin, rec.Code, h)
			}
			rec = serve(e, preflight(origin))
			h = rec.Header()
			if rec.Code != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != origin || h.Get("Access-Control-Allow-Credentials") != "true" ||
				!strings.Contains(h.Get("Access-Control-Allow-Methods"), http.MethodPost) ||
				!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Idempotency-Key") ||
				!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") || h.Get("Access-Control-Max-Age") != "600" {
				t.Errorf("preflight from %s = %d, headers %v", origin, rec.Code, h)
			}
		}
		for _, origin := range []string{stranger, "https://admin.say-no.example.evil.example", "http://portal.say-no.example", "null"} {
			for _, req := range []*http.Request{simple(origin), preflight(origin)} {
				if h := corsHeaders(serve(e, req).Header()); len(h) != 0 {
					t.Errorf("%s from %s: CORS headers %v, want none", req.Method, origin, h)
				}
			}
		}
	})
}

// HSTS only when the browser's connection really was https: TLS to Grace,
// or a trusted proxy saying so; a client cannot switch it on (or a plain
// http answer claim it) by forging X-Forwarded-Proto.
func TestHSTSOnlyOverHTTPS(t *testing.T) {
	_, proxies, err := net.ParseCIDR("10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		trusted bool // TRUSTED_PROXIES configured
		peer    string
		proto   []string
		tls     bool
		want    bool
	}{
		{"plain http", false, "203.0.113.9", nil, false, false},
		{"TLS to Grace", false, "203.0.113.9", nil, true, true},
		{"forged header, no proxies trusted", false, "203.0.113.9", []string{"https"}, false, false},
		{"forged header from a client", true, "203.0.113.9", []string{"https"}, false, false},
		{"trusted proxy, https", true, "10.1.2.3", []string{"https"}, false, true},
		{"trusted proxy, http", true, "10.1.2.3", []string{"http"}, false, false},
		{"trusted proxy appended http to a forged https", true, "10.1.2.3", []string{"https, http"}, false, false},
		{"trusted proxy appended https", true, "10.1.2.3", []string{"http", "https"}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := api.Config{}
			if tt.trusted {
				cfg.TrustedProxies = []*net.IPNet{proxies}
			}
			req := httptest.NewRequest(http.MethodGet, "/healthz", nil)
			req.RemoteAddr = tt.peer + ":40000"
			for _, p := range tt.proto {
				req.Header.Add("X-Forwarded-Proto", p)
			}
			if tt.tls {
				req.TLS = &tls.ConnectionState{}
			}
			got := serve(api.New(cfg), req).Header().Get("Strict-Transport-Security")
			if tt.want && got != "max-age=63072000; includeSubDomains" || !tt.want && got != "" {
				t.Fatalf("Strict-Transport-Security = %q, want it %v", got, tt.want)
			}
		})
	}
}

// Every answer carries the safe headers; a JSON answer, error or not, a
// policy under which nothing loads and nothing frames it.
func TestJSONAnswersCarryTheSafeHeaders(t *testing.T) {
	env := apitest.NewEnv(t)
	for _, res := range []*apitest.Response{
		env.Do(t, http.MethodGet, "/healthz", nil).Expect(t, http.StatusOK),
		env.Do(t, http.MethodGet, "/v1/programs/no-such-program", nil).Expect(t, http.StatusNotFound),
		env.Do(t, http.MethodGet, "/v1/portal/me", nil).Expect(t, http.StatusUnauthorized),
		env.Do(t, http.MethodGet, "/openapi.yaml", nil).Expect(t, http.StatusOK),
	} {
		for k, want := range map[string]string{
			"X-Content-Type-Options":  "nosniff",
			"X-Frame-Options":         "DENY",
			"Referrer-Policy":         "no-referrer",
			"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
		} {
			if got := res.Header.Get(k); got != want {
				t.Errorf("%s: %s = %q, want %q", res.Header.Get("Content-Type"), k, got, want)
			}
		}
		if res.Header.Get("Strict-Transport-Security") != "" || res.Header.Get("X-Xss-Protection") != "" {
			t.Errorf("plain http answer with %v", res.Header)
		}
	}
}

// checkStrictPage holds an HTML answer to the page policy: the strict CSP
// and the safe headers, no script of any kind, no resource from another
// origin, and every inline style allowed by its hash (so the browser
// applies what the policy says and nothing else).
func checkStrictPage(t *testing.T, res *apitest.Response) {
	t.Helper()
	if !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("Content-Type %q, want a page", res.Header.Get("Content-Type"))
	}
	csp := res.Header.Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'none'", "form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'"} {
		if !strings.Contains(csp, d) {
			t.Errorf("CSP %q lacks %s", csp, d)
		}
	}
	if strings.Contains(csp, "script-src") || strings.Contains(csp, "unsafe-") || strings.Contains(csp, "*") {
		t.Errorf("CSP %q allows more than it should", csp)
	}
	for k, want := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"} {
		if got := res.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	z := html.NewTokenizer(strings.NewReader(string(res.Body)))
	styles := 0
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			break
		}
		if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
			continue
		}
		tok := z.Token()
		switch tok.Data {
		case "script", "iframe", "object", "embed":
			t.Errorf("the page has a <%s>", tok.Data)
		case "style":
			if z.Next() != html.TextToken {
				t.Fatal("empty <style>")
			}
			sum := sha256.Sum256(z.Text())
			if h := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, h) {
				t.Errorf("an inline style is not allowed by the CSP %q (its hash is %s)", csp, h)
			}
			styles++
		}
		for _, a := range tok.Attr {
			switch {
			case a.Key == "style" || strings.HasPrefix(a.Key, "on"):
				t.Errorf("<%s %s=%q>: inline style or script", tok.Data, a.Key, a.Val)
			case (a.Key == "src" || (a.Key == "href" && tok.Data == "link")) && (strings.Contains(a.Val, "//") || strings.HasPrefix(a.Val, "http")):
				t.Errorf("<%s %s=%q> loads from another origin", tok.Data, a.Key, a.Val)
			case a.Key == "action" && a.Val != "":
				t.Errorf("<form action=%q>: a form posts back to its own page", a.Val)
			}
		}
	}
	if styles != 1 {
		t.Errorf("%d inline stylesheets, want the one page style", styles)
	}
}

// /docs is the reference rendered on the server: no script from anyone,
// and every operation of the spec on it, with its schemas linked.
func TestDocsIsAScriptFreeReferenceOfEveryOperation(t *testing.T) {
	env := apitest.NewEnv(t)
	res := env.Do(t, http.MethodGet, "/docs", nil).Expect(t, http.StatusOK)
	checkStrictPage(t, res)
	page := string(res.Body)
	ops := specOperations(t)
	if len(ops) < 50 {
		t.Fatalf("only %d operations in the spec?", len(ops))
	}
	for _, op := range ops {
		method, path, _ := strings.Cut(op, " ")
		if !strings.Contains(page, `<span class="method">`+method+`</span> <span class="path">`+path+`</span>`) {
			t.Errorf("/docs does not list %s", op)
		}
	}
	for _, want := range []string{
		`id="tag-public"`, `id="op-listPublicPrograms"`, // grouped by tag, one anchor per operation
		`<a href="#schema-PublicProgramList">PublicProgramList</a>`, `id="schema-PublicProgramList"`, // schemas linked and listed
		`<code>Idempotency-Key</code>`,              // parameters
		`<td class="status">422</td>`,               // responses
		"<code>validation_failed</code>", "<table>", // the error codes, Markdown tables rendered
		`<a href="/openapi.yaml">`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("/docs lacks %s", want)
		}
	}
	// Rendered once: the second answer is the same page.
	if again := env.Do(t, http.MethodGet, "/docs", nil).Expect(t, http.StatusOK); string(again.Body) != page {
		t.Error("/docs changed between two requests")
	}
}

package api

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"html/template"
	"mime"
	"net"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// cors answers the two browser clients, the admin panel and the portal, and
// nobody else: with no origins configured a browser on any other site gets
// no CORS headers at all, so it cannot read a single answer. The clients
// send credentials (the coach's remembered-device cookie rides on login),
// which is why an origin is never a wildcard (config.go refuses one).
func cors(origins []string) echo.MiddlewareFunc {
	if len(origins) == 0 {
		return func(next echo.HandlerFunc) echo.HandlerFunc { return next }
	}
	return middleware.CORSWithConfig(middleware.CORSConfig{
		AllowOrigins:     origins,
		AllowMethods:     []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete},
		AllowHeaders:     []string{echo.HeaderAuthorization, echo.HeaderContentType, "Idempotency-Key", "If-Match"},
		AllowCredentials: true,
		ExposeHeaders:    []string{echo.HeaderXRequestID, echo.HeaderRetryAfter, "Age", "ETag"},
		MaxAge:           600,
	})
}

// hstsValue keeps browsers on https for two years once they have seen it
// over https; subdomains of the API's host too.
const hstsValue = "max-age=63072000; includeSubDomains"

// jsonCSP is for every answer that is not a page: nothing in it may load or
// run, nor may it be framed.
const jsonCSP = "default-src 'none'; frame-ancestors 'none'"

// pageCSS is the one stylesheet of every HTML page Grace serves (/docs, the
// unsubscribe page), inlined by {{pageStyle}} and allowed by its hash, so a
// page needs no second request and runs under a policy that allows nothing
// else: no script at all, no other style, forms only to Grace itself.
//
//go:embed page.css
var pageCSS string

// Trusted as HTML: it is our own embedded file, not input.
var pageStyleTag = template.HTML("<style>" + pageCSS + "</style>")

// htmlCSP is the policy of every HTML answer.
var htmlCSP = func() string {
	sum := sha256.Sum256([]byte(pageCSS))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; " +
		"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
}()

// pageFuncs gives a page template {{pageStyle}}, the only style its policy
// allows.
var pageFuncs = template.FuncMap{"pageStyle": func() template.HTML { return pageStyleTag }}

// safeHeaders sets the headers every answer carries. Referrer-Policy
// no-referrer matters more than usual: unsubscribe and sign-in links carry
// their token in the URL, and no page may hand it to another site. HSTS is
// sent only when the request reached us over https, directly or from a
// trusted proxy that says so; over plain http it would be ignored at best
// and, behind a forged X-Forwarded-Proto, a lie. The Content-Security-Policy
// depends on what the handler wrote, so it is set just before the header
// goes out.
func safeHeaders(trusted []*net.IPNet) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			res := c.Response()
			h := res.Header()
			h.Set(echo.HeaderXContentTypeOptions, "nosniff")
			h.Set(echo.HeaderXFrameOptions, "DENY")
			h.Set(echo.HeaderReferrerPolicy, "no-referrer")
			if servedOverHTTPS(c.Request(), trusted) {
				h.Set(echo.HeaderStrictTransportSecurity, hstsValue)
			}
			res.Before(func() {
				if isHTML(h.Get(echo.HeaderContentType)) {
					h.Set(echo.HeaderContentSecurityPolicy, htmlCSP)
				} else {
					h.Set(echo.HeaderContentSecurityPolicy, jsonCSP)
				}
			})
			return next(c)
		}
	}
}

// servedOverHTTPS reports whether the client's connection is https: TLS to
// us, or a trusted proxy's X-Forwarded-Proto. Only the last value counts,
// the one the proxy next to us wrote; earlier ones came from the client.
func servedOverHTTPS(req *http.Request, trusted []*net.IPNet) bool {
	if req.TLS != nil {
		return true
	}
	values := req.Header.Values(echo.HeaderXForwardedProto)
	if len(values) == 0 || !fromTrustedProxy(req.RemoteAddr, trusted) {
		return false
	}
	last := values[len(values)-1]
	if i := strings.LastIndexByte(last, ','); i >= 0 {
		last = last[i+1:]
	}
	return strings.EqualFold(strings.TrimSpace(last), "https")
}

func fromTrustedProxy(remoteAddr string, trusted []*net.IPNet) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	for _, n := range trusted {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

func isHTML(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "text/html" || mt == "application/xhtml+xml")
}

package models

import (
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// NormalizeEmail is how every email is stored and looked up.
func NormalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// validEmail accepts a bare address (no display name), as a sign-up form would.
func validEmail(s string) bool {
	if len(s) > 254 || s == "" {
		return false
	}
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && a.Name == "" && strings.Contains(s[strings.LastIndexByte(s, '@'):], ".")
}

var slugRE = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// checker collects field errors so a client sees every problem at once.
type checker struct{ fields []FieldError }

func (c *checker) add(field, msg string) {
	c.fields = append(c.fields, FieldError{Field: field, Message: msg})
}

// notNull refuses an explicit null for a PATCH field that must keep a value.
func (c *checker) notNull(field string, cleared bool) {
	if cleared {
		c.add(field, "must not be null")
	}
}

func (c *checker) email(field, v string) {
	if !validEmail(v) {
		c.add(field, "must be a valid email address")
	}
}

func (c *checker) text(field, v string, min, max int) {
	n := utf8.RuneCountInString(strings.TrimSpace(v))
	switch {
	case !utf8.ValidString(v):
		c.add(field, "must be valid UTF-8")
	case n < min && min == 1:
		c.add(field, "must not be empty")
	case n < min:
		c.add(field, "is too short")
	case utf8.RuneCountInString(v) > max:
		c.add(field, "is too long")
	}
}

func (c *checker) timezone(field, v string) {
	if v == "" || len(v) > 64 {
		c.add(field, "must be an IANA time zone such as Europe/London")
		return
	}
	if _, err := time.LoadLocation(v); err != nil || v == "Local" {
		c.add(field, "must be an IANA time zone such as Europe/London")
	}
}

func (c *checker) httpURL(field, v string) {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(v) > 2000 {
		c.add(field, "must be an http or https URL")
	}
}

func (c *checker) err() error {
	if len(c.fields) == 0 {
		return nil
	}
	return Invalid(c.fields...)
}

// ClientInfo is where a request came from, recorded as consent evidence and
// used for per-IP rate limits.
type ClientInfo struct {
	IP        string
	UserAgent string
}

var currencyRE = regexp.MustCompile(`^[A-Z]{3}$`)

// storedTime is t as it comes back from Postgres (UTC, microseconds; the
// driver truncates), so what a write returns equals what a later read returns.
func storedTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// singleLine refuses control characters in a one-line label: it travels
// into calendar feeds and email subjects, where a line break is structure.
func singleLine(c *checker, field, v string) {
	if strings.ContainsFunc(v, unicode.IsControl) {
		c.add(field, "must be a single line without control characters")
	}
}

func storedTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := storedTime(*t)
	return &u
}

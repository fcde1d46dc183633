package models

import (
	"fmt"
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
func ValidEmail(s string) bool {
	if len(s) > 254 || s == "" {
		return false
	}
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && a.Name == "" && strings.Contains(s[strings.LastIndexByte(s, '@'):], ".")
}

var SlugRE = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// checker collects field errors so a client sees every problem at once.
type Checker struct{ fields []FieldError }

func (c *Checker) Add(field, msg string) {
	c.fields = append(c.fields, FieldError{Field: field, Message: msg})
}

// notNull refuses an explicit null for a PATCH field that must keep a value.
func (c *Checker) NotNull(field string, cleared bool) {
	if cleared {
		c.Add(field, "must not be null")
	}
}

func (c *Checker) Email(field, v string) {
	if !ValidEmail(v) {
		c.Add(field, "must be a valid email address")
	}
}

func (c *Checker) Text(field, v string, min, max int) {
	n := utf8.RuneCountInString(strings.TrimSpace(v))
	switch {
	case !utf8.ValidString(v):
		c.Add(field, "must be valid UTF-8")
	case n < min && min == 1:
		c.Add(field, "must not be empty")
	case n < min:
		c.Add(field, "is too short")
	case utf8.RuneCountInString(v) > max:
		c.Add(field, "is too long")
	}
}

func (c *Checker) Timezone(field, v string) {
	if v == "" || len(v) > 64 {
		c.Add(field, "must be an IANA time zone such as Europe/London")
		return
	}
	if _, err := time.LoadLocation(v); err != nil || v == "Local" {
		c.Add(field, "must be an IANA time zone such as Europe/London")
	}
}

func (c *Checker) HttpURL(field, v string) {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(v) > 2000 {
		c.Add(field, "must be an http or https URL")
	}
}

func (c *Checker) Err() error {
	if len(c.fields) == 0 {
		return nil
	}
	return Invalid(c.fields...)
}

// ClientInfo is where a request came from, recorded as consent evidence and
// used for per-IP rate limits.
type ClientInfo struct {
	IP        string `json:"ip"`
	UserAgent string `json:"user_agent"`
}

var CurrencyRE = regexp.MustCompile(`^[A-Z]{3}$`)

// storedTime is t as it comes back from Postgres (UTC, microseconds; the
// driver truncates), so what a write returns equals what a later read returns.
func StoredTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// singleLine refuses control characters in a one-line label: it travels
// into calendar feeds and email subjects, where a line break is structure.
func SingleLine(c *Checker, field, v string) {
	if strings.ContainsFunc(v, unicode.IsControl) {
		c.Add(field, "must be a single line without control characters")
	}
}

func StoredTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := StoredTime(*t)
	return &u
}

// MaxPersonNameLen bounds a typed participant name, in characters.
const MaxPersonNameLen = 100

// linkLikeRE finds what a mail client would turn into a link or an address:
// a scheme, "www.", or a dotted token ending in a label of letters
// ("evil.example", "bit.ly"). Fullwidth and ideographic dots count too.
var linkLikeRE = regexp.MustCompile(`(?i)[a-z][a-z0-9+.-]*:/|www[.．。｡]|[\p{L}\p{N}_-][.．。｡][\p{L}]{2,}`)

// PersonName checks a participant's name as a stranger may type it on a
// public form: it can reach her in an email, so it must be plain text she
// could not mistake for a message, a link or an address. One line, no
// control or bidirectional-override characters, no URL, domain or email
// address, 1 to MaxPersonNameLen characters.
func (c *Checker) PersonName(field, v string) {
	trimmed := strings.TrimSpace(v)
	n := utf8.RuneCountInString(trimmed)
	switch {
	case !utf8.ValidString(v):
		c.Add(field, "must be valid UTF-8")
	case n == 0:
		c.Add(field, "must not be empty")
	case n > MaxPersonNameLen:
		c.Add(field, fmt.Sprintf("must be at most %d characters", MaxPersonNameLen))
	case strings.ContainsFunc(trimmed, hiddenOrBreaking):
		c.Add(field, "must be a single line without control characters")
	case strings.Contains(trimmed, "@") || strings.Contains(trimmed, "＠"):
		c.Add(field, "must be a name, not an email address")
	case linkLikeRE.MatchString(trimmed):
		c.Add(field, "must be a name, not a web address")
	}
}

// hiddenOrBreaking is a control character, a line or paragraph separator,
// or a bidirectional override or isolate (which can make text read other
// than it is stored).
func hiddenOrBreaking(r rune) bool {
	switch {
	case unicode.IsControl(r), r == '\u2028', r == '\u2029':
		return true
	case r >= '\u202A' && r <= '\u202E', r >= '\u2066' && r <= '\u2069', r == '\u200E', r == '\u200F', r == '\u061C':
		return true
	}
	return false
}

// MaskEmail keeps enough of an address for her to recognise it on a page a
// link in her email opens, which may be forwarded:
// "jane@example.com" -> "j***@example.com".
func MaskEmail(email string) string {
	local, domain, ok := strings.Cut(email, "@")
	if !ok || local == "" {
		return "***"
	}
	r, _ := utf8.DecodeRuneInString(local)
	return string(r) + "***@" + domain
}

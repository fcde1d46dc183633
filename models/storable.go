package models

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// What PostgreSQL can store of text that came from outside: it refuses NUL
// in text and jsonb, invalid UTF-8 anywhere, and lone surrogate escapes in
// jsonb. The webhook handlers of enroll and drip keep what they were sent
// through these.

// StorableText reports whether s can be a PostgreSQL text value.
func StorableText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// CleanText is s with what PostgreSQL refuses (invalid bytes, NUL) turned
// into U+FFFD, so that what is kept still reads as what was sent.
func CleanText(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// StorableJSON is a signed webhook's raw body as a JSON object PostgreSQL's
// jsonb accepts, and the raw bytes when that object is not them verbatim
// (nil otherwise: the jsonb column already holds them). A provider's
// event must always be stored: answering 5xx to text Postgres refuses
// would have it redelivered forever.
func StorableJSON(raw []byte) (doc string, original []byte) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 {
		return "{}", nil
	}
	if trimmed[0] == '{' && json.Valid(trimmed) {
		if jsonbSafe(trimmed) {
			return string(trimmed), nil
		}
		// encoding/json turns invalid bytes and lone surrogates into
		// U+FFFD as it decodes; CleanText takes the NULs.
		var v any
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.UseNumber()
		if err := dec.Decode(&v); err == nil {
			if out, err := json.Marshal(cleanJSON(v)); err == nil {
				return string(out), raw
			}
		}
	}
	// Not an object: kept as a string.
	text := string(raw)
	if !StorableText(text) {
		original = raw
	}
	out, _ := json.Marshal(map[string]string{"raw": CleanText(text)})
	return string(out), original
}

// jsonbSafe reports whether valid JSON b is also valid jsonb input: UTF-8,
// with no \u0000 escape and no surrogate escape outside a pair. Escapes
// occur only inside strings, and each is consumed whole, so an escaped
// backslash followed by "u0000" is not mistaken for one.
func jsonbSafe(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		if i+1 < len(b) && b[i+1] != 'u' {
			i++
			continue
		}
		r, ok := hexRune(b, i)
		switch {
		case !ok || r == 0:
			return false
		case r >= 0xD800 && r <= 0xDBFF: // high surrogate: a low one must follow
			lo, ok := hexRune(b, i+6)
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return false
			}
			i += 11
		case r >= 0xDC00 && r <= 0xDFFF: // a low surrogate alone
			return false
		default:
			i += 5
		}
	}
	return true
}

// hexRune reads the \uXXXX escape starting at b[i].
func hexRune(b []byte, i int) (rune, bool) {
	if i+6 > len(b) || b[i] != '\\' || b[i+1] != 'u' {
		return 0, false
	}
	var r rune
	for _, c := range b[i+2 : i+6] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// cleanJSON applies CleanText to every string of a decoded JSON value, keys
// included.
func cleanJSON(v any) any {
	switch x := v.(type) {
	case string:
		return CleanText(x)
	case []any:
		for i := range x {
			x[i] = cleanJSON(x[i])
		}
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			out[CleanText(k)] = cleanJSON(val)
		}
		return out
	}
	return v
}

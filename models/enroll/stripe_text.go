package enroll

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// A correctly signed event may still carry text PostgreSQL refuses: a NUL
// (a \u0000 escape) in a text value, a \u0000 or a lone surrogate escape in
// jsonb, or bytes that are not UTF-8 anywhere. Answering such an event 5xx
// would make the provider redeliver it forever, so it is always stored:
// the payload as a sanitised copy with the signed bytes kept beside it,
// and, when a field the domain reads is itself unusable, as a rejected
// event that changes nothing.

// Rejection reasons stored on stripe_events.rejected_reason.
const (
	// RejectUnstorableText: a field the domain reads holds a NUL or bytes
	// that are not UTF-8; the event is kept, never applied.
	RejectUnstorableText = "unstorable_text"
)

// storableText reports whether s can be a PostgreSQL text value.
func storableText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// cleanText is s with what PostgreSQL refuses (invalid bytes, NUL) turned
// into U+FFFD, so that what is kept still reads as what was sent.
func cleanText(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// unstorableField names the first field of ev that the domain would write
// or look up and that PostgreSQL cannot hold, or "".
func unstorableField(ev PaymentEvent) string {
	fields := [][2]string{{"id", ev.ID}, {"type", ev.Type},
		{"payment_intent", ev.ChargePaymentIntentID}, {"dispute_status", ev.DisputeStatus}}
	if s := ev.Session; s != nil {
		fields = append(fields, [2]string{"session.id", s.ID}, [2]string{"session.payment_intent", s.PaymentIntentID},
			[2]string{"session.currency", s.Currency}, [2]string{"session.status", s.Status},
			[2]string{"session.payment_status", s.PaymentStatus}, [2]string{"session.client_reference_id", s.EnrollmentID},
			[2]string{"session.url", s.URL})
	}
	for _, f := range fields {
		if !storableText(f[1]) {
			return f[0]
		}
	}
	return ""
}

// storedEventID is the id an event is stored under: its own, or, when that
// cannot be a text key, a stable stand-in derived from its bytes, so that a
// redelivery still finds the row it left.
func storedEventID(id string) string {
	if storableText(id) {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return "unstorable_" + hex.EncodeToString(sum[:16])
}

// storablePayload is the raw event as a JSON object PostgreSQL's jsonb
// accepts, and the raw bytes when that object is not them verbatim (nil
// otherwise: the payload column already holds them).
func storablePayload(raw []byte) (doc string, original []byte) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 {
		return "{}", nil
	}
	if trimmed[0] == '{' && json.Valid(trimmed) {
		if jsonbSafe(trimmed) {
			return string(trimmed), nil
		}
		// encoding/json turns invalid bytes and lone surrogates into
		// U+FFFD as it decodes; cleanText takes the NULs.
		var v any
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.UseNumber()
		if err := dec.Decode(&v); err == nil {
			if out, err := json.Marshal(cleanJSON(v)); err == nil {
				return string(out), raw
			}
		}
	}
	// Not an object (only ever a test's): kept as a string.
	text := string(raw)
	if !storableText(text) {
		original = raw
	}
	out, _ := json.Marshal(map[string]string{"raw": cleanText(text)})
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

// cleanJSON applies cleanText to every string of a decoded JSON value, keys
// included.
func cleanJSON(v any) any {
	switch x := v.(type) {
	case string:
		return cleanText(x)
	case []any:
		for i := range x {
			x[i] = cleanJSON(x[i])
		}
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			out[cleanText(k)] = cleanJSON(val)
		}
		return out
	}
	return v
}

// storeRejectedEvent keeps an event the domain will not apply, once, with
// the reason, and acknowledges it: the provider must not send it again.
func (s *Service) storeRejectedEvent(ctx context.Context, ev PaymentEvent, reason string) error {
	id := storedEventID(ev.ID)
	doc, original := storablePayload(ev.Payload)
	if original == nil {
		original = ev.Payload
	}
	s.Log.WarnContext(ctx, "payment event stored but not applied", "event_id", id, "type", cleanText(ev.Type), "reason", reason)
	return s.DB.WithContext(ctx).Exec(`INSERT INTO stripe_events (id, type, payload, payload_raw, rejected_reason, received_at)
		VALUES (?, ?, ?::jsonb, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		id, cleanText(ev.Type), doc, original, reason, s.Now()).Error
}

package models

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"gorm.io/gorm"
)

// DataSubject is the woman whose data is exported or erased, with every
// value that identifies her in a row: a room's share of her data is the
// rows that reference ParticipantID or contain one of these.
type DataSubject struct {
	ParticipantID uuid.UUID
	Email         string
	Name          string
	// IPs are the addresses she was seen from (her consents' evidence).
	IPs []string
	// EnrollmentIDs are her enrollments, which provider events reference.
	EnrollmentIDs []uuid.UUID
}

// Needles are the texts that identify her, lower case, for matching rows
// that mention her by value rather than by id. An empty name (already
// erased) or one too short to be distinctive is not searched for.
func (d DataSubject) Needles() []string {
	out := []string{strings.ToLower(d.Email)}
	if n := strings.ToLower(strings.TrimSpace(d.Name)); len([]rune(n)) >= 4 {
		out = append(out, n)
	}
	for _, ip := range d.IPs {
		out = append(out, strings.ToLower(ip))
	}
	return out
}

// ErasedAddressHash is the fingerprint an erased address is remembered by:
// SHA-256 of the normalised address under a fixed prefix. PostgreSQL
// computes the same value (ErasedAddressSQL), so a check needs no
// round trip of its own.
func ErasedAddressHash(email string) []byte {
	h := sha256.Sum256([]byte("grace:erased:" + NormalizeEmail(email)))
	return h[:]
}

// ErasedAddressSQL is ErasedAddressHash in SQL over a normalised address
// expression.
func ErasedAddressSQL(expr string) string {
	return "sha256(convert_to('grace:erased:' || " + expr + ", 'UTF8'))"
}

// RateLimitKey is how a rate-limit key is stored: its namespace (up to the
// second colon, e.g. "free:email:") in clear, for operators, and the value
// it counts (an address, an IP) as a SHA-256 fingerprint, so the table
// never holds who tried. Keys without a value are kept as they are.
func RateLimitKey(key string) string {
	i := strings.IndexByte(key, ':')
	if i < 0 {
		return key
	}
	j := strings.IndexByte(key[i+1:], ':')
	if j < 0 {
		return key
	}
	cut := i + 1 + j + 1
	return key[:cut] + RateLimitValueHash(key[cut:])
}

// RateLimitValueHash is the stored form of a rate-limit key's value.
func RateLimitValueHash(value string) string {
	h := sha256.Sum256([]byte("grace:rate:" + value))
	return hex.EncodeToString(h[:16])
}

// ExportRows reads the rows of table matching where as JSON objects, less
// the columns in omit (secrets such as token hashes, which tell her
// nothing). table and where are the caller's constants, never input.
func ExportRows(db *gorm.DB, table, where string, omit []string, args ...any) ([]json.RawMessage, error) {
	expr := "to_jsonb(t)"
	for _, c := range omit {
		expr += " - '" + c + "'"
	}
	var rows []string
	if err := db.Raw("SELECT ("+expr+")::text FROM "+table+" t WHERE "+where+" ORDER BY 1", args...).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("export %s: %w", table, err)
	}
	out := make([]json.RawMessage, len(rows))
	for i, r := range rows {
		out[i] = json.RawMessage(r)
	}
	return out, nil
}

// MentionsSQL is a condition true when the text of expr contains one of
// needles, case-insensitively: for payloads that name her by value.
func MentionsSQL(expr string, needles []string) (string, []any) {
	if len(needles) == 0 {
		return "false", nil
	}
	parts := make([]string, len(needles))
	args := make([]any, len(needles))
	for i, n := range needles {
		parts[i] = "strpos(lower(" + expr + "), ?) > 0"
		args[i] = n
	}
	return "(" + strings.Join(parts, " OR ") + ")", args
}

// ExportSubject is the kernel's share of her data: the emails queued for
// her address.
func (s *Kernel) ExportSubject(tx *gorm.DB, d DataSubject) (map[string][]json.RawMessage, error) {
	rows, err := ExportRows(tx, "outbox", "to_email = ?", nil, d.Email)
	if err != nil {
		return nil, err
	}
	return map[string][]json.RawMessage{"outbox": rows}, nil
}

// EraseSubject erases the kernel's share: the outbox rows to her or about
// her, the rate-limit windows counting her address or IPs (stored hashed,
// or in clear from before keys were), and idempotency records of answers
// that named her.
func (s *Kernel) EraseSubject(tx *gorm.DB, d DataSubject) error {
	needles := d.Needles()
	mentions, args := MentionsSQL("data::text", needles)
	if err := tx.Exec("DELETE FROM outbox WHERE to_email = ? OR "+mentions, append([]any{d.Email}, args...)...).Error; err != nil {
		return fmt.Errorf("erase outbox: %w", err)
	}
	var suffixes []string
	for _, n := range append([]string{d.Email}, d.IPs...) {
		suffixes = append(suffixes, ":"+RateLimitValueHash(n))
	}
	clear, cargs := MentionsSQL("key", needles)
	if err := tx.Exec("DELETE FROM rate_limits WHERE right(key, 33) IN ? OR "+clear, append([]any{suffixes}, cargs...)...).Error; err != nil {
		return fmt.Errorf("erase rate limits: %w", err)
	}
	body, bargs := MentionsSQL("encode(response_body, 'escape')", needles)
	if err := tx.Exec("DELETE FROM idempotency_keys WHERE response_body IS NOT NULL AND "+body, bargs...).Error; err != nil {
		return fmt.Errorf("erase idempotency keys: %w", err)
	}
	return nil
}

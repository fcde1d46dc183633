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
	return ExportRowsAs(db, table, expr, where, args...)
}

// ExportRowsAs is ExportRows with the row's JSON built by expr over t.
func ExportRowsAs(db *gorm.DB, table, expr, where string, args ...any) ([]json.RawMessage, error) {
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

// kernelRowsOf are the conditions for the kernel tables' rows about her:
// emails to her or naming her, rate-limit windows counting her address or
// IPs (stored hashed, or in clear from before keys were), and
// idempotency records of answers that named her.
func kernelRowsOf(d DataSubject) map[string]struct {
	where string
	args  []any
} {
	needles := d.Needles()
	mentions, margs := MentionsSQL("data::text", needles)
	var suffixes []string
	for _, n := range append([]string{d.Email}, d.IPs...) {
		suffixes = append(suffixes, ":"+RateLimitValueHash(n))
	}
	clear, cargs := MentionsSQL("key", needles)
	body, bargs := MentionsSQL("encode(response_body, 'escape')", needles)
	task, targs := MentionsSQL("payload::text", needles)
	type cond = struct {
		where string
		args  []any
	}
	return map[string]cond{
		"outbox":           {"(to_email = ? OR " + mentions + ")", append([]any{d.Email}, margs...)},
		"rate_limits":      {"(right(key, 33) IN ? OR " + clear + ")", append([]any{suffixes}, cargs...)},
		"idempotency_keys": {"(response_body IS NOT NULL AND " + body + ")", bargs},
		// A form's task not yet run (a task that ran is deleted with it).
		"tasks": {task, targs},
	}
}

// kernelTables is the order the kernel's share is read and erased in.
var kernelTables = []string{"outbox", "rate_limits", "idempotency_keys", "tasks"}

// ExportSubject is the kernel's share of her data.
func (s *Kernel) ExportSubject(tx *gorm.DB, d DataSubject) (map[string][]json.RawMessage, error) {
	conds := kernelRowsOf(d)
	out := map[string][]json.RawMessage{}
	for _, t := range kernelTables {
		// An email's sign-in token or code stays out of a file she may keep
		// lying around: a live one would sign its reader in.
		expr := "to_jsonb(t) - 'request_hash' - 'claim_token'"
		if t == "outbox" {
			expr = "jsonb_set(to_jsonb(t), '{data}', t.data - 'token' - 'code')"
		}
		rows, err := ExportRowsAs(tx, t, expr, conds[t].where, conds[t].args...)
		if err != nil {
			return nil, err
		}
		out[t] = rows
	}
	return out, nil
}

// EraseSubject deletes the kernel's share: none of it is needed once she
// is gone (a sent email's record goes with its content).
func (s *Kernel) EraseSubject(tx *gorm.DB, d DataSubject) error {
	conds := kernelRowsOf(d)
	for _, t := range kernelTables {
		if err := tx.Exec("DELETE FROM "+t+" WHERE "+conds[t].where, conds[t].args...).Error; err != nil {
			return fmt.Errorf("erase %s: %w", t, err)
		}
	}
	return nil
}

package models

import (
	"errors"
	"fmt"
	"time"
)

// Kind is the category of a domain error. The HTTP layer maps each Kind to a
// status in one place; the domain never speaks HTTP.
type Kind string

const (
	KindInvalid      Kind = "invalid"      // the input breaks a rule (422)
	KindBadRequest   Kind = "bad_request"  // the input cannot be understood (400)
	KindUnauthorized Kind = "unauthorized" // no or bad credentials (401)
	KindForbidden    Kind = "forbidden"    // known caller, not allowed (403)
	KindNotFound     Kind = "not_found"    // (404)
	KindConflict     Kind = "conflict"     // clashes with current state (409)
	KindGone         Kind = "gone"         // existed once, no longer available (410)
	// KindStale: the write names a version that is no longer current (412).
	KindStale Kind = "stale"
	// KindVersionRequired: the write would replace a version it does not
	// name (428): a lost update refused before it happens.
	KindVersionRequired Kind = "version_required"
	KindRateLimited     Kind = "rate_limited" // (429)
	KindUnavailable     Kind = "unavailable"  // a dependency is not configured or down (503)
	KindUpstream        Kind = "upstream"     // a payment or email provider failed (502)
)

// FieldError names one invalid input field; Field uses the JSON name.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is a domain error with a stable machine Code that clients may rely on.
type Error struct {
	Kind    Kind
	Code    string
	Message string
	Fields  []FieldError
	// UnlockAt is set for lesson_locked so the portal can show a countdown.
	UnlockAt *time.Time
	// RetryAfter is set for rate_limited.
	RetryAfter time.Duration
	// Links name where to go next: a link name mapped to the id of its
	// target, e.g. enroll.LinkWaitlist to the cohort's id on sold_out. The
	// API layer builds the URLs.
	Links map[string]string
	// ConsentKind and ConsentVersion name the text she must accept, for
	// consent_required.
	ConsentKind    string
	ConsentVersion int
	// Err is the cause, kept for logs and errors.Is; never shown to clients.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// E builds a domain error.
func E(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid builds a validation error listing the offending fields.
func Invalid(fields ...FieldError) *Error {
	msg := "The request has invalid fields."
	if len(fields) == 1 {
		msg = fields[0].Field + ": " + fields[0].Message
	}
	return &Error{Kind: KindInvalid, Code: "validation_failed", Message: msg, Fields: fields}
}

// NotFound is the error for a missing resource; what names it, e.g. "lesson".
func NotFound(what string) *Error {
	return E(KindNotFound, "not_found", "The %s was not found.", what)
}

// AsError returns the domain error inside err, if any.
func AsError(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// IsCode reports whether err is a domain error with the given code.
func IsCode(err error, code string) bool {
	e, ok := AsError(err)
	return ok && e.Code == code
}

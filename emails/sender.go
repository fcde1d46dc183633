package emails

import (
	"context"
	"errors"
)

// Message is one email handed to a Sender.
type Message struct {
	// ID is the idempotency key: the outbox row id. A provider that sees the
	// same ID twice must deliver once, so a retry after a lost response is safe.
	ID      string
	From    string
	To      string
	ToName  string
	Subject string
	HTML    string
	Text    string
	Tags    map[string]string
}

// Sender delivers a message and returns the provider's id for it.
//
// An error wrapping ErrPermanent means retrying the same message cannot
// succeed (an invalid address, a rejected payload); any other error is
// transient (network, timeout, 5xx, rate limit) and worth retrying.
type Sender interface {
	Send(ctx context.Context, msg Message) (providerID string, err error)
}

// ErrPermanent marks a delivery failure that retrying cannot fix.
var ErrPermanent = errors.New("permanent delivery failure")

// Permanent reports whether err is a failure retrying cannot fix.
func Permanent(err error) bool { return errors.Is(err, ErrPermanent) }

// MarkPermanent wraps err so that Permanent(err) is true. Senders other than
// the ones in this package use it to classify their failures.
func MarkPermanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

type permanentError struct{ err error }

func (e permanentError) Error() string        { return e.err.Error() }
func (e permanentError) Unwrap() error        { return e.err }
func (e permanentError) Is(target error) bool { return target == ErrPermanent }

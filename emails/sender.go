package emails

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"
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

// BatchEmail is one email of a Batch. Headers are extra MIME headers
// (List-Unsubscribe on marketing email); Tags are the provider's tags.
type BatchEmail struct {
	// From, when set, is this email's sender instead of the batch's (a
	// discreet woman's email comes from the neutral sender).
	From    string
	To      string
	Subject string
	HTML    string
	Text    string
	Headers map[string]string
	Tags    map[string]string
}

// Batch is one provider call of up to MaxBatch emails from one sender.
type Batch struct {
	// Key is the idempotency key of the call. A provider that sees the same
	// key again answers the first call's result and sends nothing, so a
	// retry after a crash or a timeout must repeat exactly the same emails.
	Key    string
	From   string
	Emails []BatchEmail
}

// MaxBatch is the most emails one batch call may carry (Resend's limit).
const MaxBatch = 100

// BatchResult is the provider's answer, index by index with Batch.Emails:
// IDs[i] is the provider's id of email i, or "" when the provider refused
// that one email, Errors[i] saying why. The others went out.
type BatchResult struct {
	IDs    []string
	Errors []string
}

// BatchSender delivers a batch in one call. Its error follows Sender's
// contract (Permanent or transient); on a 429 RateLimited reports how long
// the provider asked to wait. A nil error means the call was accepted,
// which does not mean every email was: see BatchResult.Errors.
type BatchSender interface {
	SendBatch(ctx context.Context, b Batch) (BatchResult, error)
}

// ProviderError is a failed provider call. Status is the HTTP status, 0
// when no response arrived (network error, timeout).
type ProviderError struct {
	Status int
	// RetryAfter is the provider's Retry-After on a 429, 0 when absent.
	RetryAfter time.Duration
	Message    string
}

func (e *ProviderError) Error() string {
	if e.Status == 0 {
		return "resend: " + e.Message
	}
	return fmt.Sprintf("resend: HTTP %d: %s", e.Status, e.Message)
}

// RateLimited reports whether err is the provider's 429, and the wait it
// asked for (0 when it did not say).
func RateLimited(err error) (retryAfter time.Duration, ok bool) {
	var pe *ProviderError
	if errors.As(err, &pe) && pe.Status == http.StatusTooManyRequests {
		return pe.RetryAfter, true
	}
	return 0, false
}

// SendBatch logs every email of b at INFO (text bodies included) and
// returns fake ids: a developer without a Resend key sees the drip emails
// in the log, and nothing is sent.
func (d DevSender) SendBatch(ctx context.Context, b Batch) (BatchResult, error) {
	log := d.Log
	if log == nil {
		log = slog.Default()
	}
	res := BatchResult{IDs: make([]string, len(b.Emails)), Errors: make([]string, len(b.Emails))}
	for i, e := range b.Emails {
		res.IDs[i] = "dev-" + uuid.NewString()
		log.InfoContext(ctx, "drip email not sent (dev sender, DEV MODE); text body follows",
			"provider_id", res.IDs[i],
			"batch_key", b.Key,
			"to", e.To,
			"subject", e.Subject,
			"headers", e.Headers,
			"text", e.Text,
		)
	}
	return res, nil
}

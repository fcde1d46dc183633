package stripe

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/grace-coaching/grace/models/enroll"
)

// ErrBadSignature marks a webhook payload whose Stripe-Signature header is
// missing, malformed, wrong (tampered body or other secret), or dated more
// than the tolerance in the past or in the future. Nothing in such a
// payload may be believed.
var ErrBadSignature = errors.New("stripe webhook: bad signature")

// ErrMalformedEvent marks a correctly signed payload we cannot decode.
var ErrMalformedEvent = errors.New("stripe webhook: malformed event")

// SignatureTolerance is how far a signature's timestamp may be from now,
// either way, before it is refused as a possible replay (Stripe's own
// default).
const SignatureTolerance = webhook.DefaultTolerance

// errTooNew is a signature dated beyond the tolerance in the future.
// stripe-go (v76 validatePayload) only refuses time.Since(t) > tolerance,
// which is negative for a future t, so a payload signed ahead of time would
// stay replayable for as long as its date is ahead plus the tolerance.
var errTooNew = errors.New("timestamp is too far in the future")

// ParseEvent verifies payload against its Stripe-Signature header and
// reduces the event to the fields the domain reads. It implements
// api.PaymentWebhook.
func (c *Client) ParseEvent(payload []byte, sigHeader string) (enroll.PaymentEvent, error) {
	if c.webhookSecret == "" {
		return enroll.PaymentEvent{}, fmt.Errorf("%w: no webhook secret configured", ErrBadSignature)
	}
	// The payload's API version is whatever the webhook endpoint in the
	// Stripe dashboard is pinned to; the fields we read are stable across
	// versions, so a mismatch must not reject a genuine event.
	ev, err := webhook.ConstructEventWithOptions(payload, sigHeader, c.webhookSecret, webhook.ConstructEventOptions{
		Tolerance:                SignatureTolerance,
		IgnoreAPIVersionMismatch: true,
	})
	if err != nil {
		if errors.Is(err, webhook.ErrNotSigned) || errors.Is(err, webhook.ErrInvalidHeader) ||
			errors.Is(err, webhook.ErrNoValidSignature) || errors.Is(err, webhook.ErrTooOld) {
			return enroll.PaymentEvent{}, fmt.Errorf("%w: %v", ErrBadSignature, err)
		}
		return enroll.PaymentEvent{}, fmt.Errorf("%w: %v", ErrMalformedEvent, err)
	}
	if at, ok := signedAt(sigHeader); !ok || time.Until(at) > SignatureTolerance {
		return enroll.PaymentEvent{}, fmt.Errorf("%w: %v", ErrBadSignature, errTooNew)
	}
	return decodeEvent(ev, payload)
}

// signedAt is the timestamp a verified Stripe-Signature header was checked
// against, read as stripe-go reads it (the last "t=" wins), so the date we
// bound is the one the signature covers.
func signedAt(header string) (time.Time, bool) {
	var at time.Time
	found := false
	for pair := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(pair, "=")
		if !ok || k != "t" {
			continue
		}
		sec, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return time.Time{}, false
		}
		at, found = time.Unix(sec, 0), true
	}
	return at, found
}

func decodeEvent(ev stripego.Event, payload []byte) (enroll.PaymentEvent, error) {
	if ev.ID == "" || ev.Type == "" {
		return enroll.PaymentEvent{}, fmt.Errorf("%w: no id or type", ErrMalformedEvent)
	}
	out := enroll.PaymentEvent{
		ID:      ev.ID,
		Type:    string(ev.Type),
		Created: time.Unix(ev.Created, 0).UTC(),
		Payload: payload,
	}
	if ev.Data == nil || len(ev.Data.Raw) == 0 {
		if isKnownType(out.Type) {
			return enroll.PaymentEvent{}, fmt.Errorf("%w: %s without data.object", ErrMalformedEvent, out.Type)
		}
		return out, nil
	}
	raw := ev.Data.Raw
	switch {
	case strings.HasPrefix(out.Type, "checkout.session."):
		var s stripego.CheckoutSession
		if err := json.Unmarshal(raw, &s); err != nil {
			return enroll.PaymentEvent{}, fmt.Errorf("%w: %s: %v", ErrMalformedEvent, out.Type, err)
		}
		cs := sessionFrom(&s)
		out.Session = &cs
	case out.Type == enroll.EventChargeRefunded:
		var ch stripego.Charge
		if err := json.Unmarshal(raw, &ch); err != nil {
			return enroll.PaymentEvent{}, fmt.Errorf("%w: %s: %v", ErrMalformedEvent, out.Type, err)
		}
		if ch.PaymentIntent != nil {
			out.ChargePaymentIntentID = ch.PaymentIntent.ID
		}
		out.AmountCaptured = ch.AmountCaptured
		out.AmountRefunded = ch.AmountRefunded
	case strings.HasPrefix(out.Type, "charge.dispute."):
		var d stripego.Dispute
		if err := json.Unmarshal(raw, &d); err != nil {
			return enroll.PaymentEvent{}, fmt.Errorf("%w: %s: %v", ErrMalformedEvent, out.Type, err)
		}
		if d.PaymentIntent != nil {
			out.ChargePaymentIntentID = d.PaymentIntent.ID
		}
		out.DisputeStatus = string(d.Status)
	}
	return out, nil
}

func isKnownType(t string) bool {
	switch t {
	case enroll.EventCheckoutCompleted, enroll.EventCheckoutAsyncSucceeded, enroll.EventCheckoutAsyncFailed,
		enroll.EventCheckoutExpired, enroll.EventChargeRefunded, enroll.EventDisputeCreated, enroll.EventDisputeClosed:
		return true
	}
	return false
}

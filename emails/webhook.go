package emails

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/resend/resend-go/v2"

	"github.com/grace-coaching/grace/models/drip"
)

// Resend signs its webhooks the Svix way: these headers carry the event id,
// the send time and the signatures of "id.timestamp.body".
const (
	HeaderSvixID        = "svix-id"
	HeaderSvixTimestamp = "svix-timestamp"
	HeaderSvixSignature = "svix-signature"
)

// WebhookVerifier checks Resend's webhook signatures and reduces a verified
// body to a models.EmailEvent. A timestamp more than five minutes from now
// (Svix's tolerance) is refused, so a captured request cannot be replayed
// later; a replay inside the window is caught by the svix-id.
type WebhookVerifier struct {
	secret string
	hooks  resend.WebhooksSvc
}

// NewWebhookVerifier builds a verifier for the endpoint's signing secret
// ("whsec_" and base64).
func NewWebhookVerifier(secret string) (*WebhookVerifier, error) {
	secret = strings.TrimSpace(secret)
	raw, ok := strings.CutPrefix(secret, "whsec_")
	if !ok {
		return nil, errors.New("emails: the Resend webhook secret must start with whsec_")
	}
	if key, err := base64.StdEncoding.DecodeString(raw); err != nil || len(key) == 0 {
		return nil, errors.New("emails: the Resend webhook secret is not whsec_ followed by base64")
	}
	// Verification is local: the client's key and URL are never used.
	return &WebhookVerifier{secret: secret, hooks: resend.NewClient("").Webhooks}, nil
}

// resendWebhook is the part of Resend's email event payload Grace reads:
// {"type": ..., "created_at": ..., "data": {"email_id": ..., "to": [...],
// "bounce": {"type": "Permanent", "subType": ..., "message": ...}}}.
type resendWebhook struct {
	Type      string `json:"type"`
	CreatedAt string `json:"created_at"`
	Data      struct {
		EmailID string          `json:"email_id"`
		To      json.RawMessage `json:"to"`
		Bounce  *struct {
			Type    string `json:"type"`
			SubType string `json:"subType"`
			Message string `json:"message"`
		} `json:"bounce"`
	} `json:"data"`
}

// ParseEmailEvent verifies the signature headers against the raw body and
// parses it. Any error means "refuse with 400": a bad, missing or stale
// signature, or a signed body that is not a Resend event.
func (v *WebhookVerifier) ParseEmailEvent(payload []byte, header http.Header) (drip.EmailEvent, error) {
	id, ts := header.Get(HeaderSvixID), header.Get(HeaderSvixTimestamp)
	err := v.hooks.Verify(&resend.VerifyWebhookOptions{
		Payload:       string(payload),
		Headers:       resend.WebhookHeaders{Id: id, Timestamp: ts, Signature: header.Get(HeaderSvixSignature)},
		WebhookSecret: v.secret,
	})
	if err != nil {
		return drip.EmailEvent{}, fmt.Errorf("resend webhook: %w", err)
	}
	var body resendWebhook
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(&body); err != nil {
		return drip.EmailEvent{}, fmt.Errorf("resend webhook: body is not an event: %w", err)
	}
	if body.Type == "" {
		return drip.EmailEvent{}, errors.New("resend webhook: the event has no type")
	}
	ev := drip.EmailEvent{
		SvixID:        id,
		Type:          body.Type,
		ResendEmailID: body.Data.EmailID,
		To:            recipients(body.Data.To),
		OccurredAt:    eventTime(body.CreatedAt, ts),
		Payload:       payload,
	}
	if b := body.Data.Bounce; b != nil {
		ev.BounceType, ev.BounceSubType, ev.BounceMessage = b.Type, b.SubType, b.Message
	}
	return ev, nil
}

// recipients reads data.to, a list of addresses (a single string is
// accepted too), keeping the bare address of "Name <addr>" forms.
func recipients(raw json.RawMessage) []string {
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		var one string
		if json.Unmarshal(raw, &one) != nil || one == "" {
			return nil
		}
		list = []string{one}
	}
	out := make([]string, 0, len(list))
	for _, s := range list {
		if a, err := mail.ParseAddress(s); err == nil {
			s = a.Address
		}
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// eventTime is when the event happened: the payload's created_at, else the
// signed send time.
func eventTime(createdAt, svixTimestamp string) time.Time {
	if t, err := time.Parse(time.RFC3339Nano, createdAt); err == nil {
		return t.UTC()
	}
	if secs, err := strconv.ParseInt(svixTimestamp, 10, 64); err == nil {
		return time.Unix(secs, 0).UTC()
	}
	return time.Time{}
}

// SignTestWebhook returns the headers Resend would send with body, signed
// with secret ("whsec_" + base64) for the event id at time ts. Tests use it
// to post real signed webhooks; Grace itself never signs.
func SignTestWebhook(secret, id string, ts time.Time, body []byte) http.Header {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		panic("emails: SignTestWebhook: the secret is not whsec_ followed by base64")
	}
	stamp := strconv.FormatInt(ts.Unix(), 10)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + stamp + "."))
	mac.Write(body)
	h := http.Header{}
	h.Set(HeaderSvixID, id)
	h.Set(HeaderSvixTimestamp, stamp)
	h.Set(HeaderSvixSignature, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	return h
}

// NewTestWebhookSecret returns a random-looking but fixed-format signing
// secret for tests, derived from seed so a test can name its own.
func NewTestWebhookSecret(seed string) string {
	sum := sha256.Sum256([]byte(seed))
	return "whsec_" + base64.StdEncoding.EncodeToString(sum[:24])
}

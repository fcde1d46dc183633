package emails

import (
	"context"
	"log/slog"

	"github.com/google/uuid"
)

// DevSender delivers nothing: it logs each message at INFO, links and codes
// included, so a developer without a Resend key can sign in from the logs.
// It must never run in production, where the log is not a private channel:
// cmd/grace builds it only in dev mode (GRACE_ENV=dev), and production
// refuses to start without a Resend key.
type DevSender struct {
	Log *slog.Logger // nil: slog.Default()
}

// Send logs msg and returns a fake provider id, "dev-<uuid>".
func (d DevSender) Send(ctx context.Context, msg Message) (string, error) {
	log := d.Log
	if log == nil {
		log = slog.Default()
	}
	id := "dev-" + uuid.NewString()
	log.InfoContext(ctx, "email not sent (dev sender); text body follows",
		"provider_id", id,
		"outbox_id", msg.ID,
		"to", msg.To,
		"subject", msg.Subject,
		"text", msg.Text,
	)
	return id, nil
}

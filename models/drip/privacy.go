package drip

import (
	"encoding/json"
	"fmt"

	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
)

// The drip room's share of her data, for models/privacy: the deliveries
// to her (with their frozen bodies), the provider's events about them,
// and a suppression of her address.

// resendEventsOf is the condition for the Resend events about her: those
// of her deliveries or of outbox emails to her, and any whose payload
// names her.
func resendEventsOf(d models.DataSubject) (string, []any) {
	needles := d.Needles()
	inPayload, a1 := models.MentionsSQL("payload::text", needles)
	inRaw, a2 := models.MentionsSQL("encode(payload_raw, 'escape')", needles)
	args := []any{d.ParticipantID, d.Email}
	args = append(append(args, a1...), a2...)
	return `(delivery_id IN (SELECT id FROM email_deliveries WHERE participant_id = ?)
		OR resend_email_id IN (SELECT provider_message_id FROM outbox WHERE to_email = ? AND provider_message_id IS NOT NULL)
		OR ` + inPayload + ` OR (payload_raw IS NOT NULL AND ` + inRaw + `))`, args
}

// ExportSubject returns her rows of the drip room's tables.
func (s *Service) ExportSubject(tx *gorm.DB, d models.DataSubject) (map[string][]json.RawMessage, error) {
	out := map[string][]json.RawMessage{}
	var err error
	if out["email_deliveries"], err = models.ExportRows(tx, "email_deliveries", "participant_id = ?", nil, d.ParticipantID); err != nil {
		return nil, err
	}
	where, args := resendEventsOf(d)
	if out["resend_events"], err = models.ExportRows(tx, "resend_events", where, []string{"payload_raw"}, args...); err != nil {
		return nil, err
	}
	if out["email_suppressions"], err = models.ExportRows(tx, "email_suppressions", "email = ?", nil, d.Email); err != nil {
		return nil, err
	}
	return out, nil
}

// EraseSubject empties the provider's events about her, deletes her
// deliveries (scheduled ones are cancelled with them) and her address's
// suppression: the erased-address fingerprint blocks her address instead,
// without keeping it.
func (s *Service) EraseSubject(tx *gorm.DB, d models.DataSubject) error {
	where, args := resendEventsOf(d)
	steps := []struct {
		what, sql string
		args      []any
	}{
		{"email events", `UPDATE resend_events SET payload = '{}'::jsonb, payload_raw = NULL WHERE ` + where, args},
		{"deliveries", `DELETE FROM email_deliveries WHERE participant_id = ? OR email = ?`, []any{d.ParticipantID, d.Email}},
		{"suppression", `DELETE FROM email_suppressions WHERE email = ?`, []any{d.Email}},
	}
	for _, st := range steps {
		if err := tx.Exec(st.sql, st.args...).Error; err != nil {
			return fmt.Errorf("erase %s: %w", st.what, err)
		}
	}
	return nil
}

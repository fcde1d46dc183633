package enroll

import (
	"context"
	"encoding/json"
	"fmt"

	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
)

// The enroll room's share of her data, for models/privacy: enrollments
// (kept as the anonymous amounts accounting needs), her calendar token,
// the payment events about her, and her customer record at the provider.

// stripeEventsOf is the condition for the payment events about her: those
// of her enrollments, and any whose payload names her.
func stripeEventsOf(d models.DataSubject) (string, []any) {
	needles := d.Needles()
	inPayload, a1 := models.MentionsSQL("payload::text", needles)
	inRaw, a2 := models.MentionsSQL("encode(payload_raw, 'escape')", needles)
	args := []any{d.EnrollmentIDs}
	args = append(append(args, a1...), a2...)
	return "(enrollment_id IN ? OR " + inPayload + " OR (payload_raw IS NOT NULL AND " + inRaw + "))", args
}

// ExportSubject returns her rows of the enroll room's tables.
func (s *Service) ExportSubject(tx *gorm.DB, d models.DataSubject) (map[string][]json.RawMessage, error) {
	out := map[string][]json.RawMessage{}
	var err error
	if out["enrollments"], err = models.ExportRows(tx, "enrollments", "participant_id = ?", nil, d.ParticipantID); err != nil {
		return nil, err
	}
	if out["calendar_tokens"], err = models.ExportRows(tx, "calendar_tokens", "participant_id = ?", []string{"token_hash"}, d.ParticipantID); err != nil {
		return nil, err
	}
	if out["checkout_links"], err = models.ExportRows(tx, "checkout_links", "participant_id = ?", []string{"token_hash"}, d.ParticipantID); err != nil {
		return nil, err
	}
	where, args := stripeEventsOf(d)
	if out["stripe_events"], err = models.ExportRows(tx, "stripe_events", where, []string{"payload_raw"}, args...); err != nil {
		return nil, err
	}
	return out, nil
}

// EraseSubject keeps her enrollments' amounts, currency, dates and states
// (what accounting must keep) and drops what points at her: the checkout
// link, the review note, her place on a waitlist, her calendar feed, and
// the content of every payment event about her.
func (s *Service) EraseSubject(tx *gorm.DB, d models.DataSubject) error {
	now := s.Now()
	where, args := stripeEventsOf(d)
	steps := []struct {
		what, sql string
		args      []any
	}{
		{"calendar token", `DELETE FROM calendar_tokens WHERE participant_id = ?`, []any{d.ParticipantID}},
		{"checkout links", `DELETE FROM checkout_links WHERE participant_id = ?`, []any{d.ParticipantID}},
		{"waitlist", `UPDATE enrollments SET status = ?, cancelled_at = ?, updated_at = ? WHERE participant_id = ? AND status = ? AND seat = ?`,
			[]any{EnrollmentCancelled, now, now, d.ParticipantID, EnrollmentWaitlisted, SeatNone}},
		{"enrollments", `UPDATE enrollments SET checkout_url = NULL, payment_review = NULL WHERE participant_id = ? AND (checkout_url IS NOT NULL OR payment_review IS NOT NULL)`,
			[]any{d.ParticipantID}},
		{"payment events", `UPDATE stripe_events SET payload = '{}'::jsonb, payload_raw = NULL WHERE ` + where, args},
	}
	for _, st := range steps {
		if err := tx.Exec(st.sql, st.args...).Error; err != nil {
			return fmt.Errorf("erase %s: %w", st.what, err)
		}
	}
	return nil
}

// EraseProviderData deletes her customer data at the payment provider:
// the customers its events about her name and any the provider holds for
// her address. It runs before her rows are erased, since those events are
// how her customers are found, and is safe to repeat.
func (s *Service) EraseProviderData(ctx context.Context, d models.DataSubject) error {
	if s.payments == nil {
		return nil
	}
	where, args := stripeEventsOf(d)
	var ids []string
	err := s.DB.WithContext(ctx).Raw(`
		SELECT DISTINCT payload->'data'->'object'->>'customer' FROM stripe_events
		WHERE `+where+` AND jsonb_typeof(payload->'data'->'object'->'customer') = 'string'`, args...).Scan(&ids).Error
	if err != nil {
		return fmt.Errorf("find her customers: %w", err)
	}
	return s.payments.DeleteCustomerData(ctx, CustomerErasure{Email: d.Email, CustomerIDs: ids})
}

package people

import (
	"encoding/json"
	"fmt"

	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
)

// The people room's share of her data, for models/privacy: her profile,
// sessions, sign-in links, grants, consents and progress.

// ErasedEmail is the address her participant row keeps once she is
// erased: nothing of hers, unique, and undeliverable (.invalid).
func ErasedEmail(d models.DataSubject) string {
	return "erased-" + d.ParticipantID.String() + "@erased.invalid"
}

// ExportSubject returns her rows of the people room's tables.
func (s *Service) ExportSubject(tx *gorm.DB, d models.DataSubject) (map[string][]json.RawMessage, error) {
	tables := []struct {
		name, where string
		omit        []string
	}{
		{"participants", "id = ?", []string{"unsubscribe_token"}},
		{"participant_sessions", "participant_id = ?", []string{"token_hash"}},
		{"login_links", "participant_id = ?", []string{"token_hash", "code_hash"}},
		{"access_grants", "participant_id = ?", nil},
		{"consents", "participant_id = ?", nil},
		{"lesson_completions", "participant_id = ?", nil},
		{"marketing_optins", "participant_id = ?", []string{"token_hash"}},
		// Who read her data: hers to see, and kept after her erasure (it
		// names the coaches, not her).
		{"participant_access_log", "participant_id = ?", nil},
	}
	out := map[string][]json.RawMessage{}
	for _, t := range tables {
		rows, err := models.ExportRows(tx, t.name, t.where, t.omit, d.ParticipantID)
		if err != nil {
			return nil, err
		}
		out[t.name] = rows
	}
	return out, nil
}

// EraseSubject signs her out everywhere, voids her links, revokes her
// access, strips her consents' evidence (the decisions stay, with the
// version she saw and when, about nobody) and pseudonymises her row: it
// stays only because payments reference it.
func (s *Service) EraseSubject(tx *gorm.DB, d models.DataSubject) error {
	now := s.Now()
	steps := []struct {
		what, sql string
		args      []any
	}{
		{"sessions", `DELETE FROM participant_sessions WHERE participant_id = ?`, []any{d.ParticipantID}},
		{"login links", `DELETE FROM login_links WHERE participant_id = ?`, []any{d.ParticipantID}},
		{"opt-in requests", `DELETE FROM marketing_optins WHERE participant_id = ?`, []any{d.ParticipantID}},
		{"grants", `UPDATE access_grants SET revoked_at = ? WHERE participant_id = ? AND revoked_at IS NULL`, []any{now, d.ParticipantID}},
		{"consent evidence", `UPDATE consents SET ip = NULL, user_agent = NULL WHERE participant_id = ? AND (ip IS NOT NULL OR user_agent IS NOT NULL)`, []any{d.ParticipantID}},
		{"participant", `
			UPDATE participants SET email = ?, name = '', timezone = 'UTC', timezone_set = false,
				unsubscribe_token = replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', ''),
				marketing_unsubscribed_at = COALESCE(marketing_unsubscribed_at, ?),
				erased_at = COALESCE(erased_at, ?), updated_at = ?
			WHERE id = ?`, []any{ErasedEmail(d), now, now, now, d.ParticipantID}},
	}
	for _, st := range steps {
		if err := tx.Exec(st.sql, st.args...).Error; err != nil {
			return fmt.Errorf("erase %s: %w", st.what, err)
		}
	}
	return nil
}

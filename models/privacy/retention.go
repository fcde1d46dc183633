package privacy

import (
	"context"
	"fmt"
	"time"
)

// retentionBatch bounds each statement of a sweep, so a first run over
// years of rows never holds long locks or one huge transaction.
const retentionBatch = 1000

// RetentionReport counts what one sweep forgot, by rule.
type RetentionReport map[string]int64

// sweep is one retention rule: an UPDATE or DELETE over the rows whose
// ids the select picks, run in batches until none is left.
type sweep struct {
	name string
	// table and pick: the statement is run on table's rows WHERE id IN
	// (pick LIMIT batch); pick's ? is the cutoff.
	table, action, pick string
	cutoff              time.Time
}

// RunRetention forgets what is kept only for a while: sent emails'
// content after Retention.EmailBodies, consents' IP and user agent after
// Retention.ConsentEvidence, expired sessions, sign-in links, coach
// tokens and erase codes, and webhook payloads after
// Retention.WebhookPayloads. Time is the kernel clock's; every rule only
// touches rows it has not already cleared, so a second run finds nothing.
func (s *Service) RunRetention(ctx context.Context) (RetentionReport, error) {
	now := s.Now()
	emails, evidence, hooks := now.Add(-s.retention.EmailBodies), now.Add(-s.retention.ConsentEvidence), now.Add(-s.retention.WebhookPayloads)
	sweeps := []sweep{
		{"email_bodies", "outbox", `SET data = '{}'::jsonb, to_name = ''`,
			`SELECT id FROM outbox WHERE status = 'sent' AND data <> '{}'::jsonb AND sent_at < ?`, emails},
		{"drip_bodies", "email_deliveries", `SET rendered = NULL`,
			`SELECT id FROM email_deliveries WHERE status = 'sent' AND rendered IS NOT NULL AND sent_at < ?`, emails},
		{"consent_evidence", "consents", `SET ip = NULL, user_agent = NULL`,
			`SELECT id FROM consents WHERE (ip IS NOT NULL OR user_agent IS NOT NULL) AND created_at < ?`, evidence},
		{"participant_sessions", "participant_sessions", `DELETE`,
			`SELECT id FROM participant_sessions WHERE expires_at < ?`, now},
		{"login_links", "login_links", `DELETE`,
			`SELECT id FROM login_links WHERE expires_at < ?`, now},
		{"coach_sessions", "coach_sessions", `DELETE`,
			`SELECT id FROM coach_sessions WHERE expires_at < ?`, now},
		{"coach_action_tokens", "coach_action_tokens", `DELETE`,
			`SELECT id FROM coach_action_tokens WHERE expires_at < ?`, now},
		{"erase_codes", "erase_codes", `DELETE`,
			`SELECT participant_id FROM erase_codes WHERE expires_at < ?`, now},
		{"stripe_payloads", "stripe_events", `SET payload = '{}'::jsonb, payload_raw = NULL`,
			`SELECT id FROM stripe_events WHERE received_at < ? AND (payload <> '{}'::jsonb OR payload_raw IS NOT NULL)`, hooks},
		{"resend_payloads", "resend_events", `SET payload = '{}'::jsonb, payload_raw = NULL`,
			`SELECT svix_id FROM resend_events WHERE received_at < ? AND (payload <> '{}'::jsonb OR payload_raw IS NOT NULL)`, hooks},
	}
	keys := map[string]string{"erase_codes": "participant_id", "resend_events": "svix_id"}
	report := RetentionReport{}
	for _, sw := range sweeps {
		key := keys[sw.table]
		if key == "" {
			key = "id"
		}
		stmt := "UPDATE " + sw.table + " " + sw.action
		if sw.action == "DELETE" {
			stmt = "DELETE FROM " + sw.table
		}
		stmt += " WHERE " + key + " IN (" + sw.pick + " LIMIT ?)"
		for {
			res := s.DB.WithContext(ctx).Exec(stmt, sw.cutoff, retentionBatch)
			if res.Error != nil {
				return report, fmt.Errorf("retention %s: %w", sw.name, res.Error)
			}
			report[sw.name] += res.RowsAffected
			if res.RowsAffected < retentionBatch {
				break
			}
		}
	}
	return report, nil
}

// RunRetentionDaily runs RunRetention now and then every interval until
// ctx ends. Every instance may run it: the sweeps are idempotent.
func (s *Service) RunRetentionDaily(ctx context.Context, every time.Duration) {
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		report, err := s.RunRetention(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			s.Log.ErrorContext(ctx, "retention sweep", "err", err)
		case err == nil:
			args := []any{}
			for k, v := range report {
				if v > 0 {
					args = append(args, k, v)
				}
			}
			if len(args) > 0 {
				s.Log.InfoContext(ctx, "retention sweep", args...)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// Package driptest writes due drip deliveries in bulk, for the tests and
// benchmarks of the drip worker: thousands of rows straight into the
// tables, without the scheduling code that is not their subject.
package driptest

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	dripdom "github.com/grace-coaching/grace/models/drip"
)

// Seeded is what SeedDue wrote.
type Seeded struct {
	ProgramID  uuid.UUID
	SequenceID uuid.UUID
	StepID     uuid.UUID
	// Tag is in every participant's address (p<i>-<tag>@example.com), so
	// several seeds can share a database.
	Tag   string
	Count int
}

// StepBody is the seeded step: a welcome email with every common
// placeholder and a little Markdown.
const StepBody = `Hi {{first_name}},

Welcome to **{{program_title}}**. Your first lesson is waiting in [your portal]({{portal_url}}).

- Take ten minutes today.
- Notice one moment you wanted to say no.

With care,
Grace`

// SeedDue writes one published program, one active marketing sequence of
// one step, n participants and one delivery each, due at sendAt (use a
// moment in the past of the worker's clock).
func SeedDue(ctx context.Context, db *gorm.DB, n int, sendAt time.Time) (Seeded, error) {
	s := Seeded{Tag: strings.ReplaceAll(uuid.NewString(), "-", "")[:12], Count: n}
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Raw(`INSERT INTO programs (slug, title, status) VALUES (?, 'Say No With Grace', 'published') RETURNING id`,
			"drip-"+s.Tag).Row().Scan(&s.ProgramID); err != nil {
			return fmt.Errorf("program: %w", err)
		}
		if err := tx.Raw(`INSERT INTO email_sequences (name, trigger, program_id, kind, active)
			VALUES ('Welcome', 'free_access_claimed', ?, 'marketing', true) RETURNING id`, s.ProgramID).Row().Scan(&s.SequenceID); err != nil {
			return fmt.Errorf("sequence: %w", err)
		}
		if err := tx.Raw(`INSERT INTO email_steps (sequence_id, position, offset_minutes, subject, body)
			VALUES (?, 1, 0, 'Welcome, {{first_name}}', ?) RETURNING id`, s.SequenceID, StepBody).Row().Scan(&s.StepID); err != nil {
			return fmt.Errorf("step: %w", err)
		}
		// Women who signed in before: their address is proven, so email
		// greets them by name.
		if err := tx.Exec(`INSERT INTO participants (email, name, timezone, email_verified_at)
			SELECT 'p' || g || '-' || ? || '@example.com', 'Woman' || g || ' Test', 'UTC', now() FROM generate_series(1, ?) g`,
			s.Tag, n).Error; err != nil {
			return fmt.Errorf("participants: %w", err)
		}
		// Marketing email goes only to women who said yes to it.
		if err := tx.Exec(`INSERT INTO consents (participant_id, program_id, kind, text_version, granted)
			SELECT p.id, ?, 'marketing', 'seed', true FROM participants p WHERE p.email LIKE ?`,
			s.ProgramID, "%-"+s.Tag+"@example.com").Error; err != nil {
			return fmt.Errorf("consents: %w", err)
		}
		if err := tx.Exec(`INSERT INTO email_deliveries (participant_id, email, sequence_id, step_id, subject_key, program_id,
				anchor_at, timezone, status, send_at)
			SELECT p.id, p.email, ?, ?, 'program:' || ?::text, ?, ?, 'UTC', 'scheduled', ?
			FROM participants p WHERE p.email LIKE ?`,
			s.SequenceID, s.StepID, s.ProgramID, s.ProgramID, sendAt, sendAt, "%-"+s.Tag+"@example.com").Error; err != nil {
			return fmt.Errorf("deliveries: %w", err)
		}
		return nil
	})
	return s, err
}

// Counts returns how many deliveries of the seed are in each status.
func Counts(ctx context.Context, db *gorm.DB, s Seeded) (map[dripdom.DeliveryStatus]int, error) {
	var rows []struct {
		Status dripdom.DeliveryStatus
		N      int
	}
	err := db.WithContext(ctx).Raw(`SELECT status, count(*) AS n FROM email_deliveries WHERE sequence_id = ? GROUP BY status`,
		s.SequenceID).Scan(&rows).Error
	out := map[dripdom.DeliveryStatus]int{}
	for _, r := range rows {
		out[r.Status] = r.N
	}
	return out, err
}

// Pending is how many deliveries of the seed are not settled yet
// (scheduled or sending).
func Pending(ctx context.Context, db *gorm.DB, s Seeded) (int, error) {
	c, err := Counts(ctx, db, s)
	return c["scheduled"] + c["sending"], err
}

package models

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// RateLimit allows Max hits per Window.
type RateLimit struct {
	Max    int
	Window time.Duration
}

// allow counts one hit against key in a fixed window kept in Postgres, so the
// limit holds across every instance of the service. It returns a
// rate_limited error carrying how long to wait.
func (s *Kernel) Allow(ctx context.Context, key string, l RateLimit) error {
	return s.AllowIn(s.DB.WithContext(ctx), key, l)
}

// allowIn counts the hit inside db, which may be a transaction: the hit then
// commits (or rolls back) with the work it guards, in the same commit.
func (s *Kernel) AllowIn(db *gorm.DB, key string, l RateLimit) error {
	if l.Max <= 0 {
		return nil
	}
	now := s.Now()
	var row struct {
		WindowStart time.Time
		Hits        int
	}
	err := db.Raw(`
		INSERT INTO rate_limits AS r (key, window_start, hits) VALUES (?, ?, 1)
		ON CONFLICT (key) DO UPDATE SET
			window_start = CASE WHEN r.window_start <= ?::timestamptz - make_interval(secs => ?) THEN excluded.window_start ELSE r.window_start END,
			hits         = CASE WHEN r.window_start <= ?::timestamptz - make_interval(secs => ?) THEN 1 ELSE r.hits + 1 END
		RETURNING window_start, hits`,
		key, now, now, l.Window.Seconds(), now, l.Window.Seconds()).Scan(&row).Error
	if err != nil {
		return fmt.Errorf("rate limit %s: %w", key, err)
	}
	if row.Hits > l.Max {
		wait := row.WindowStart.Add(l.Window).Sub(now)
		if wait < time.Second {
			wait = time.Second
		}
		return &Error{Kind: KindRateLimited, Code: "rate_limited", Message: "Too many attempts. Please wait a moment and try again.", RetryAfter: wait}
	}
	return nil
}

// PruneRateLimits deletes windows that ended, so the table stays small.
func (s *Kernel) PruneRateLimits(ctx context.Context, olderThan time.Duration) (int64, error) {
	res := s.DB.WithContext(ctx).Exec(`DELETE FROM rate_limits WHERE window_start < ?`, s.Now().Add(-olderThan))
	return res.RowsAffected, res.Error
}

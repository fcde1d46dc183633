package models

import (
	"context"
	"fmt"
	"net/netip"
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
	key = RateLimitKey(key)
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
		return rateLimited(row.WindowStart.Add(l.Window).Sub(now))
	}
	return nil
}

// PruneRateLimits deletes windows that ended, so the table stays small.
func (s *Kernel) PruneRateLimits(ctx context.Context, olderThan time.Duration) (int64, error) {
	res := s.DB.WithContext(ctx).Exec(`DELETE FROM rate_limits WHERE window_start < ?`, s.Now().Add(-olderThan))
	return res.RowsAffected, res.Error
}

// Budget is a token bucket shared by every instance: Rate tokens a second,
// at most Burst saved up. It guards work that costs CPU whatever the
// answer (password hashing), where a per-client limit cannot help against
// a flood from many clients.
type Budget struct {
	Rate  float64
	Burst int
}

// Spend takes one token from the named bucket, or returns a rate_limited
// error carrying when the next one is due. It shares the rate_limits table
// and its pruning: a bucket's row holds, in window_start, the instant its
// debt is paid off (GCRA's theoretical arrival time), so a pruned row is a
// full bucket; hits counts the refusals since the last token. The check and
// the take are one upsert on one row, so instances racing for the last
// token cannot both get it. Time is the kernel clock's, as for every limit.
func (s *Kernel) Spend(ctx context.Context, key string, b Budget) error {
	if !(b.Rate > 0) {
		return nil
	}
	key = RateLimitKey(key)
	now := s.Now()
	interval := 1 / b.Rate
	// The bucket holds Burst intervals of debt at most.
	tolerance := float64(max(b.Burst, 1)) * interval
	var row struct {
		WindowStart time.Time
		Hits        int
	}
	// The token is taken only if the debt after taking it stays within the
	// tolerance; else the row keeps its debt and counts a refusal.
	err := s.DB.WithContext(ctx).Raw(`
		INSERT INTO rate_limits AS r (key, window_start, hits) VALUES (@key, CAST(@now AS timestamptz) + make_interval(secs => @t), 0)
		ON CONFLICT (key) DO UPDATE SET
			window_start = CASE WHEN GREATEST(r.window_start, CAST(@now AS timestamptz)) + make_interval(secs => @t) <= CAST(@now AS timestamptz) + make_interval(secs => @tol)
				THEN GREATEST(r.window_start, CAST(@now AS timestamptz)) + make_interval(secs => @t) ELSE r.window_start END,
			hits = CASE WHEN GREATEST(r.window_start, CAST(@now AS timestamptz)) + make_interval(secs => @t) <= CAST(@now AS timestamptz) + make_interval(secs => @tol)
				THEN 0 ELSE r.hits + 1 END
		RETURNING window_start, hits`,
		map[string]any{"key": key, "now": now, "t": interval, "tol": tolerance}).Scan(&row).Error
	if err != nil {
		return fmt.Errorf("budget %s: %w", key, err)
	}
	if row.Hits == 0 {
		return nil
	}
	// The next token is free once the debt is back within the tolerance.
	return rateLimited(row.WindowStart.Add(-time.Duration((tolerance - interval) * float64(time.Second))).Sub(now))
}

// Backoff slows a client down after failures rather than locking anyone
// out: the first Free failures cost nothing, then each one doubles the wait
// before the next attempt, from Base up to Max. Failures are forgotten
// after Window without one.
//
// Cap, when set, is a hard stop: after Cap failures the next attempt waits
// out the whole Window, however patient the client.
type Backoff struct {
	Free      int
	Base, Max time.Duration
	Window    time.Duration
	Cap       int
}

// wait is how long after the last of n failures the next attempt may come.
func (b Backoff) wait(n int) time.Duration {
	if b.Cap > 0 && n >= b.Cap {
		return b.Window
	}
	if b.Base <= 0 || n < b.Free {
		return 0
	}
	d := b.Base
	for i := b.Free; i < n && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// CheckBackoff refuses an attempt while any of keys is still waiting out
// its backoff, with the longest wait. It only reads: the cost of an attempt
// that is let through is recorded by FailedAttempt once it fails.
func (s *Kernel) CheckBackoff(ctx context.Context, b Backoff, keys ...string) error {
	if b.Base <= 0 || len(keys) == 0 {
		return nil
	}
	keys = storedKeys(keys)
	var rows []struct {
		WindowStart time.Time
		Hits        int
	}
	if err := s.DB.WithContext(ctx).Raw(`SELECT window_start, hits FROM rate_limits WHERE key IN ?`, keys).Scan(&rows).Error; err != nil {
		return fmt.Errorf("backoff: %w", err)
	}
	now := s.Now()
	var wait time.Duration
	for _, r := range rows {
		if now.Sub(r.WindowStart) >= b.Window {
			continue
		}
		wait = max(wait, r.WindowStart.Add(b.wait(r.Hits)).Sub(now))
	}
	if wait > 0 {
		return rateLimited(wait)
	}
	return nil
}

// FailedAttempt counts one failure against each of keys, restarting the
// count after a quiet Window; window_start is the last failure.
func (s *Kernel) FailedAttempt(ctx context.Context, b Backoff, keys ...string) error {
	if b.Base <= 0 {
		return nil
	}
	now := s.Now()
	for _, key := range storedKeys(keys) {
		err := s.DB.WithContext(ctx).Exec(`
			INSERT INTO rate_limits AS r (key, window_start, hits) VALUES (?, ?, 1)
			ON CONFLICT (key) DO UPDATE SET window_start = excluded.window_start,
				hits = CASE WHEN r.window_start <= excluded.window_start - make_interval(secs => ?) THEN 1 ELSE r.hits + 1 END`,
			key, now, b.Window.Seconds()).Error
		if err != nil {
			return fmt.Errorf("backoff %s: %w", key, err)
		}
	}
	return nil
}

// ForgetFailures clears keys' backoff, after an attempt that succeeded.
func (s *Kernel) ForgetFailures(ctx context.Context, keys ...string) error {
	if err := s.DB.WithContext(ctx).Exec(`DELETE FROM rate_limits WHERE key IN ?`, storedKeys(keys)).Error; err != nil {
		return fmt.Errorf("backoff: %w", err)
	}
	return nil
}

// storedKeys maps keys to their stored form (RateLimitKey).
func storedKeys(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = RateLimitKey(k)
	}
	return out
}

// Network is the address block a client most likely controls as a whole:
// its IPv4 /24 or IPv6 /64 (one customer's LAN or one host's allocation).
// Limits keyed by it hold against a flood spread over neighbouring
// addresses. Anything that is not an address is its own network.
func Network(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	bits := 64
	if a.Is4() {
		bits = 24
	}
	p, err := a.WithZone("").Prefix(bits)
	if err != nil {
		return ip
	}
	return p.String()
}

// ClientKey is what a per-client limit counts under: an IPv4 address as it
// is, an IPv6 address as its /64. One IPv6 host commonly holds a whole /64
// and may pick a fresh address for every request, so per-address limits
// would not hold against it.
func ClientKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Unmap().Is4() {
		return ip
	}
	return Network(ip)
}

func rateLimited(wait time.Duration) error {
	if wait < time.Second {
		wait = time.Second
	}
	return &Error{Kind: KindRateLimited, Code: "rate_limited", Message: "Too many attempts. Please wait a moment and try again.", RetryAfter: wait}
}

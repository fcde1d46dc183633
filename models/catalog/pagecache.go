package catalog

import (
	"context"
	"sync"
	"time"

	"gorm.io/gorm"
)

// The public program page is what a launch-day crowd hits, all at once and
// all for the same few slugs, so each process keeps the pages it served in
// memory for programPageTTL. Every catalogue write through this process
// purges them at once; other processes see it within the TTL. Only pages
// that exist are kept, so random slugs cannot fill memory. An expired page
// is kept for programPageStale more, as the last good answer while the
// database is away: a stale page beats a 503 for a visitor. The public
// list is kept the same way, but only as that last good answer: it is
// always read fresh while the database answers.
const (
	programPageTTL   = time.Second
	programPageStale = 24 * time.Hour
	programPageMax   = 1024
)

// answerCache keeps catalogue answers by key (a slug, a list's page).
type answerCache[T any] struct {
	mu sync.RWMutex
	// gen counts purges: an answer read from the database is stored only
	// if no write committed since the read began.
	gen     uint64
	entries map[string]cacheEntry[T]
}

// Times are the kernel clock's: a stale answer's Age is part of it.
type cacheEntry[T any] struct {
	value T
	built time.Time
}

// get returns the cached answer (ok false when absent or expired) and the
// generation to pass to put.
func (c *answerCache[T]) get(key string, now time.Time) (value T, ok bool, gen uint64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if e, found := c.entries[key]; found && !now.Before(e.built) && now.Sub(e.built) < programPageTTL {
		return e.value, true, c.gen
	}
	return value, false, c.gen
}

// generation is what to pass to put for an answer about to be read.
func (c *answerCache[T]) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// stale returns the last answer built for key, expired or not, with when
// it was built; ok false when there is none worth serving.
func (c *answerCache[T]) stale(key string, now time.Time) (value T, built time.Time, ok bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if e, found := c.entries[key]; found && now.Sub(e.built) < programPageTTL+programPageStale {
		return e.value, e.built, true
	}
	return value, time.Time{}, false
}

func (c *answerCache[T]) put(key string, value T, gen uint64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if len(c.entries) >= programPageMax {
		for k, e := range c.entries {
			if now.Sub(e.built) >= programPageTTL+programPageStale {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= programPageMax {
			clear(c.entries)
		}
	}
	c.entries[key] = cacheEntry[T]{value: value, built: now}
}

func (c *answerCache[T]) purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.entries)
}

func newAnswerCache[T any]() *answerCache[T] {
	return &answerCache[T]{entries: map[string]cacheEntry[T]{}}
}

// inCatalogTx is inTx for writes to programs and lessons: once fn has
// committed, this process's public pages are purged.
func (s *Service) inCatalogTx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	if err := s.InTx(ctx, fn); err != nil {
		return err
	}
	s.catalogChanged()
	return nil
}

// catalogChanged is called after every committed write to programs or
// lessons, so this process never serves a page older than its own writes.
func (s *Service) catalogChanged() {
	s.pages.purge()
	s.lists.purge()
}

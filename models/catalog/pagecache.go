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
// database is away: a stale page beats a 503 for a visitor.
const (
	programPageTTL   = time.Second
	programPageStale = 24 * time.Hour
	programPageMax   = 1024
)

type programPageCache struct {
	mu sync.RWMutex
	// gen counts purges: a page read from the database is stored only if no
	// write committed since the read began.
	gen     uint64
	entries map[string]programPageEntry
}

// Times are the kernel clock's: a stale page's Age is part of the answer.
type programPageEntry struct {
	page  *PublishedProgram
	built time.Time
}

// get returns the cached page (nil when absent or expired) and the
// generation to pass to put.
func (c *programPageCache) get(slug string, now time.Time) (*PublishedProgram, uint64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if e, ok := c.entries[slug]; ok && !now.Before(e.built) && now.Sub(e.built) < programPageTTL {
		return e.page, c.gen
	}
	return nil, c.gen
}

// stale returns the last page built for slug, expired or not, with when it
// was built; nil when there is none worth serving.
func (c *programPageCache) stale(slug string, now time.Time) (*PublishedProgram, time.Time) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if e, ok := c.entries[slug]; ok && now.Sub(e.built) < programPageTTL+programPageStale {
		return e.page, e.built
	}
	return nil, time.Time{}
}

func (c *programPageCache) put(slug string, page *PublishedProgram, gen uint64, now time.Time) {
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
	c.entries[slug] = programPageEntry{page: page, built: now}
}

func (c *programPageCache) purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.entries)
}

func newProgramPageCache() *programPageCache {
	return &programPageCache{entries: map[string]programPageEntry{}}
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
func (s *Service) catalogChanged() { s.pages.purge() }

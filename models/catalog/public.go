package catalog

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/grace-coaching/grace/models"
)

// The published catalogue: what anyone may read about the programs on offer.

// ListedProgram is a published program as the catalogue lists it, with
// whether free access can be claimed right now.
type ListedProgram struct {
	Program
	FreeAccessOpen bool
}

// PublishedProgram is a catalogue page: the program and the outline of its
// published lessons.
type PublishedProgram struct {
	ListedProgram
	Lessons []LessonOutline
	// Stale is set when the page is the cached copy served while the
	// database is unavailable; Age is then how old it is.
	Stale bool
	Age   time.Duration
	// Crisis is the crisis resources (nil when none are written), added on
	// every read from their own cache, so an edit shows at once.
	Crisis *CrisisResources
}

// LessonOutline is a lesson's place in a program, without its content.
type LessonOutline struct {
	ID               uuid.UUID
	Position         int
	Title            string
	FreePreview      bool
	UnlockOffsetDays int
	DurationSeconds  *int
}

// PublishedList is a page of the public catalogue. Stale is set when it is
// the last good answer, served while the database is unavailable; Age is
// then how old it is.
type PublishedList struct {
	models.Page[ListedProgram]
	Stale bool
	Age   time.Duration
}

// ListPublishedPrograms is the public catalogue, newest first. While the
// database is unavailable the last answer this process gave for the same
// page (limit and cursor) is served, marked Stale with its Age; a page
// never answered is the unavailable error.
func (s *Service) ListPublishedPrograms(ctx context.Context, pp models.PageParams) (*PublishedList, error) {
	key := fmt.Sprintf("%d|%s", pp.Limit, pp.Cursor)
	cache, gen := s.lists, s.lists.generation()
	page, err := listProgramsNewestFirst(s.DB.WithContext(ctx).Model(&Program{}).Where("status = ?", ProgramPublished), pp)
	now := s.Now()
	switch {
	case err == nil:
		out := &PublishedList{Page: models.Page[ListedProgram]{Items: make([]ListedProgram, len(page.Items)), NextCursor: page.NextCursor}}
		for i, p := range page.Items {
			out.Items[i] = ListedProgram{Program: p}
		}
		cache.put(key, out.Page, gen, now)
		return withFreeAccess(out, now), nil
	case models.IsUnavailable(err):
		old, built, ok := cache.stale(key, now)
		if !ok {
			return nil, err
		}
		return withFreeAccess(&PublishedList{Page: old, Stale: true, Age: max(now.Sub(built), 0)}, now), nil
	default:
		return nil, err
	}
}

// withFreeAccess says, as of now, whether each program's free-access window
// is open, on a copy of l's items: the cached ones are shared.
func withFreeAccess(l *PublishedList, now time.Time) *PublishedList {
	items := make([]ListedProgram, len(l.Items))
	for i, p := range l.Items {
		items[i] = ListedProgram{Program: p.Program, FreeAccessOpen: p.Program.FreeAccessOpen(now)}
	}
	l.Items = items
	return l
}

// GetPublishedProgram is the public program page, the read every campaign
// email sends a crowd to. Pages are served from a short-lived in-process
// cache (see answerCache); a miss costs two indexed queries. Nothing is
// rendered: the description stays Markdown. Draft, archived and unknown
// programs are all simply not found. The result's Lessons are shared with
// the cache: read them, do not change them. While the database is
// unavailable the last page built is served, marked Stale with its Age; a
// page never built is the unavailable error.
func (s *Service) GetPublishedProgram(ctx context.Context, slug string) (*PublishedProgram, error) {
	if len(slug) > 100 || !models.SlugRE.MatchString(slug) {
		return nil, models.NotFound("program")
	}
	cache, now := s.pages, s.Now()
	page, ok, gen := cache.get(slug, now)
	if !ok {
		loaded, err := s.loadPublishedProgram(ctx, slug)
		switch {
		case err == nil:
			page = loaded
			cache.put(slug, page, gen, now)
		case models.IsUnavailable(err):
			old, built, ok := cache.stale(slug, now)
			if !ok {
				return nil, models.MapDBError(err, "program")
			}
			stale := *old
			stale.Stale, stale.Age = true, max(now.Sub(built), 0)
			// The database is away: only what is already in memory.
			stale.Crisis = s.cachedCrisis()
			page = &stale
		default:
			return nil, err
		}
	}
	out := *page
	if !out.Stale {
		out.Crisis = s.CrisisResources(ctx)
	}
	// Computed on every read, so the window closes on time whatever the cache holds.
	out.FreeAccessOpen = out.Program.FreeAccessOpen(s.Now())
	return &out, nil
}

func (s *Service) loadPublishedProgram(ctx context.Context, slug string) (*PublishedProgram, error) {
	db := s.DB.WithContext(ctx)
	out := &PublishedProgram{}
	err := db.Where("slug = ? AND status = ?", slug, ProgramPublished).Take(&out.Program).Error
	if err != nil {
		return nil, models.MapDBError(err, "program")
	}
	out.Lessons = []LessonOutline{}
	err = db.Raw(`SELECT id, position, title, free_preview, unlock_offset_days, duration_seconds
		FROM lessons WHERE program_id = ? AND published ORDER BY position`, out.Program.ID).Scan(&out.Lessons).Error
	if err != nil {
		return nil, fmt.Errorf("program outline: %w", err)
	}
	return out, nil
}

package catalog_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/domain"
	"github.com/grace-coaching/grace/models/modelstest"
)

func newLessonProgram(t *testing.T, svc *domain.Services, slug string) *catalog.Program {
	t.Helper()
	p, err := svc.Catalog.CreateProgram(context.Background(), catalog.ProgramInput{Slug: slug, Title: "Program " + slug})
	if err != nil {
		t.Fatalf("create program: %v", err)
	}
	return p
}

func addLessons(t *testing.T, svc *domain.Services, programID uuid.UUID, titles ...string) []*catalog.Lesson {
	t.Helper()
	var out []*catalog.Lesson
	for _, title := range titles {
		l, err := svc.Catalog.CreateLesson(context.Background(), programID, catalog.LessonInput{Title: title})
		if err != nil {
			t.Fatalf("create lesson %q: %v", title, err)
		}
		out = append(out, l)
	}
	return out
}

// order returns the program's lesson titles by position, failing unless the
// positions are exactly 1..n.
func order(t *testing.T, db *gorm.DB, programID uuid.UUID) []string {
	t.Helper()
	var rows []catalog.Lesson
	if err := db.Where("program_id = ?", programID).Order("position").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	titles := make([]string, len(rows))
	for i, l := range rows {
		if l.Position != i+1 {
			t.Fatalf("positions are not 1..n: lesson %q at %d, want %d", l.Title, l.Position, i+1)
		}
		titles[i] = l.Title
	}
	return titles
}

func TestLessonCreatePositions(t *testing.T) {
	tests := []struct {
		name     string
		position int
		want     []string
		wantPos  int
	}{
		{"no position goes last", 0, []string{"a", "b", "c", "new"}, 4},
		{"first shifts everyone down", 1, []string{"new", "a", "b", "c"}, 1},
		{"middle", 2, []string{"a", "new", "b", "c"}, 2},
		{"last+1 goes last", 4, []string{"a", "b", "c", "new"}, 4},
		{"far past the end is clamped to last", 99, []string{"a", "b", "c", "new"}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, _, db := modelstest.NewService(t)
			p := newLessonProgram(t, svc, "p")
			addLessons(t, svc, p.ID, "a", "b", "c")
			l, err := svc.Catalog.CreateLesson(context.Background(), p.ID, catalog.LessonInput{Title: "new", Position: tt.position})
			if err != nil {
				t.Fatal(err)
			}
			if l.Position != tt.wantPos {
				t.Errorf("returned position %d, want %d", l.Position, tt.wantPos)
			}
			if got := order(t, db, p.ID); !slices.Equal(got, tt.want) {
				t.Errorf("order = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLessonCreateRejectsBadInputWithoutWriting(t *testing.T) {
	long := strings.Repeat("x", 201)
	neg, tooLong := -1, 86401
	bad := "ftp://example.com/a.mp3"
	tests := []struct {
		name   string
		in     catalog.LessonInput
		fields []string
	}{
		{"blank title", catalog.LessonInput{Title: "   "}, []string{"title"}},
		{"long title", catalog.LessonInput{Title: long}, []string{"title"}},
		{"negative duration", catalog.LessonInput{Title: "t", DurationSeconds: &neg}, []string{"duration_seconds"}},
		{"duration over a day", catalog.LessonInput{Title: "t", DurationSeconds: &tooLong}, []string{"duration_seconds"}},
		{"media not http", catalog.LessonInput{Title: "t", MediaURL: &bad}, []string{"media_url"}},
		{"unlock too late", catalog.LessonInput{Title: "t", UnlockOffsetDays: 3651}, []string{"unlock_offset_days"}},
		{"negative position", catalog.LessonInput{Title: "t", Position: -1}, []string{"position"}},
		{"every problem at once", catalog.LessonInput{Title: "", UnlockOffsetDays: -1, MediaURL: &bad}, []string{"title", "media_url", "unlock_offset_days"}},
	}
	svc, _, db := modelstest.NewService(t)
	p := newLessonProgram(t, svc, "p")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := svc.Catalog.CreateLesson(context.Background(), p.ID, tt.in)
			e, ok := models.AsError(err)
			if !ok || e.Code != "validation_failed" {
				t.Fatalf("err = %v, want validation_failed", err)
			}
			var got []string
			for _, f := range e.Fields {
				got = append(got, f.Field)
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tt.fields))
			if !slices.Equal(got, want) {
				t.Errorf("fields = %v, want %v", got, want)
			}
			var n int64
			db.Model(&catalog.Lesson{}).Count(&n)
			if n != 0 {
				t.Errorf("%d lessons written", n)
			}
		})
	}
	if _, err := svc.Catalog.CreateLesson(context.Background(), uuid.New(), catalog.LessonInput{Title: "t"}); !models.IsCode(err, "not_found") {
		t.Errorf("unknown program: err = %v, want not_found", err)
	}
}

func TestLessonBodyHTMLRenderedOnEveryWrite(t *testing.T) {
	svc, _, db := modelstest.NewService(t)
	ctx := context.Background()
	p := newLessonProgram(t, svc, "p")
	l, err := svc.Catalog.CreateLesson(ctx, p.ID, catalog.LessonInput{Title: "t", Body: "**bold** <script>alert(1)</script>"})
	if err != nil {
		t.Fatal(err)
	}
	stored := func() string {
		var html string
		db.Raw(`SELECT body_html FROM lessons WHERE id = ?`, l.ID).Scan(&html)
		return html
	}
	if h := stored(); !strings.Contains(h, "<strong>bold</strong>") || strings.Contains(h, "<script") {
		t.Errorf("body_html after create = %q", h)
	}
	if _, err := svc.Catalog.UpdateLesson(ctx, l.ID, catalog.LessonPatch{Body: models.Some("# New <iframe src=x>")}); err != nil {
		t.Fatal(err)
	}
	if h := stored(); !strings.Contains(h, "<h1>New") || strings.Contains(h, "<iframe") || strings.Contains(h, "bold") {
		t.Errorf("body_html after update = %q", h)
	}
	// A patch that leaves the body alone leaves the HTML alone.
	before := stored()
	if _, err := svc.Catalog.UpdateLesson(ctx, l.ID, catalog.LessonPatch{Title: models.Some("t2")}); err != nil {
		t.Fatal(err)
	}
	if h := stored(); h != before {
		t.Errorf("body_html changed on a title patch: %q -> %q", before, h)
	}
}

func TestLessonUpdateChangesOnlySentFields(t *testing.T) {
	svc, clock, _ := modelstest.NewService(t)
	ctx := context.Background()
	p := newLessonProgram(t, svc, "p")
	media, dur := "https://media.example.com/a.mp3", 300
	l, err := svc.Catalog.CreateLesson(ctx, p.ID, catalog.LessonInput{Title: "t", Body: "b", MediaURL: &media, DurationSeconds: &dur, UnlockOffsetDays: 3})
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(60e9)
	got, err := svc.Catalog.UpdateLesson(ctx, l.ID, catalog.LessonPatch{MediaURL: models.Optional[string]{Set: true, Null: true}, Published: models.Some(true)})
	if err != nil {
		t.Fatal(err)
	}
	if got.MediaURL != nil || !got.Published || got.Title != "t" || got.Body != "b" || got.DurationSeconds == nil || *got.DurationSeconds != 300 || got.UnlockOffsetDays != 3 {
		t.Errorf("after patch: %+v", got)
	}
	if !got.UpdatedAt.Equal(clock.Now()) {
		t.Errorf("updated_at = %v, want %v", got.UpdatedAt, clock.Now())
	}
	reread, _ := svc.Catalog.GetLesson(ctx, l.ID)
	if reread.MediaURL != nil || !reread.Published || reread.Title != "t" {
		t.Errorf("stored: %+v", reread)
	}
	_, err = svc.Catalog.UpdateLesson(ctx, l.ID, catalog.LessonPatch{Title: models.Optional[string]{Set: true, Null: true}})
	if !models.IsCode(err, "validation_failed") {
		t.Errorf("null title: err = %v, want validation_failed", err)
	}
}

func TestLessonDeleteCompactsPositions(t *testing.T) {
	tests := []struct {
		name   string
		delete int // index of the lesson to delete
		want   []string
	}{
		{"first", 0, []string{"b", "c", "d"}},
		{"middle", 1, []string{"a", "c", "d"}},
		{"last", 3, []string{"a", "b", "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, _, db := modelstest.NewService(t)
			p := newLessonProgram(t, svc, "p")
			ls := addLessons(t, svc, p.ID, "a", "b", "c", "d")
			if err := svc.Catalog.DeleteLesson(context.Background(), ls[tt.delete].ID); err != nil {
				t.Fatal(err)
			}
			if got := order(t, db, p.ID); !slices.Equal(got, tt.want) {
				t.Errorf("order = %v, want %v", got, tt.want)
			}
			if err := svc.Catalog.DeleteLesson(context.Background(), ls[tt.delete].ID); !models.IsCode(err, "not_found") {
				t.Errorf("second delete: err = %v, want not_found", err)
			}
		})
	}
}

func TestLessonReorder(t *testing.T) {
	svc, _, db := modelstest.NewService(t)
	ctx := context.Background()
	p := newLessonProgram(t, svc, "p")
	other := newLessonProgram(t, svc, "other")
	ls := addLessons(t, svc, p.ID, "a", "b", "c")
	stranger := addLessons(t, svc, other.ID, "x")[0]
	a, b, c := ls[0].ID, ls[1].ID, ls[2].ID

	bad := []struct {
		name string
		ids  []uuid.UUID
	}{
		{"missing one", []uuid.UUID{c, a}},
		{"duplicate", []uuid.UUID{c, a, a}},
		{"duplicate instead of one", []uuid.UUID{c, a, c}},
		{"foreign lesson", []uuid.UUID{c, a, b, stranger.ID}},
		{"foreign instead of one", []uuid.UUID{c, a, stranger.ID}},
		{"unknown id", []uuid.UUID{c, a, b, uuid.New()}},
		{"empty", []uuid.UUID{}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := svc.Catalog.ReorderLessons(ctx, p.ID, tt.ids)
			e, ok := models.AsError(err)
			if !ok || e.Code != "validation_failed" || len(e.Fields) != 1 || e.Fields[0].Field != "lesson_ids" {
				t.Fatalf("err = %v, want validation_failed on lesson_ids", err)
			}
			if got := order(t, db, p.ID); !slices.Equal(got, []string{"a", "b", "c"}) {
				t.Errorf("order changed by a refused reorder: %v", got)
			}
		})
	}

	got, err := svc.Catalog.ReorderLessons(ctx, p.ID, []uuid.UUID{c, a, b})
	if err != nil {
		t.Fatal(err)
	}
	var titles []string
	for _, l := range got {
		titles = append(titles, l.Title)
	}
	if want := []string{"c", "a", "b"}; !slices.Equal(titles, want) || !slices.Equal(order(t, db, p.ID), want) {
		t.Errorf("returned %v, stored %v, want %v", titles, order(t, db, p.ID), want)
	}
	if got := order(t, db, other.ID); !slices.Equal(got, []string{"x"}) {
		t.Errorf("other program changed: %v", got)
	}
	if _, err := svc.Catalog.ReorderLessons(ctx, uuid.New(), nil); !models.IsCode(err, "not_found") {
		t.Errorf("unknown program: err = %v, want not_found", err)
	}
}

// Creates, deletes and reorders racing in one program queue on its row lock:
// every one succeeds and the positions end up exactly 1..n.
func TestLessonConcurrentWritesKeepPositionsDense(t *testing.T) {
	svc, _, db := modelstest.NewService(t)
	ctx := context.Background()
	p := newLessonProgram(t, svc, "p")
	seed := addLessons(t, svc, p.ID, "s1", "s2", "s3", "s4")

	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Half insert at the front, half append: both paths race.
			pos := 0
			if i%2 == 0 {
				pos = 1
			}
			if _, err := svc.Catalog.CreateLesson(ctx, p.ID, catalog.LessonInput{Title: fmt.Sprintf("n%d", i), Position: pos}); err != nil {
				errs <- err
			}
		}()
	}
	for _, l := range seed[:2] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := svc.Catalog.DeleteLesson(ctx, l.ID); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent write failed: %v", err)
	}
	if got := order(t, db, p.ID); len(got) != 22 {
		t.Errorf("%d lessons, want 22: %v", len(got), got)
	}
}

// The public page is cached, but never behind a write made through the
// service: publishing, editing or unpublishing shows on the next read.
func TestLessonWritesShowOnThePublicPageAtOnce(t *testing.T) {
	svc, _, _ := modelstest.NewService(t)
	ctx := context.Background()
	p, err := svc.Catalog.CreateProgram(ctx, catalog.ProgramInput{Slug: "live", Title: "Live", Status: catalog.ProgramPublished})
	if err != nil {
		t.Fatal(err)
	}
	outline := func() []string {
		t.Helper()
		page, err := svc.Catalog.GetPublishedProgram(ctx, "live")
		if err != nil {
			t.Fatal(err)
		}
		var titles []string
		for _, l := range page.Lessons {
			titles = append(titles, l.Title)
		}
		return titles
	}
	if got := outline(); len(got) != 0 {
		t.Fatalf("outline = %v, want empty", got)
	}
	l, err := svc.Catalog.CreateLesson(ctx, p.ID, catalog.LessonInput{Title: "One", Published: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := outline(); !slices.Equal(got, []string{"One"}) {
		t.Errorf("after create: %v", got)
	}
	two, _ := svc.Catalog.CreateLesson(ctx, p.ID, catalog.LessonInput{Title: "Two", Published: true, Position: 1})
	if got := outline(); !slices.Equal(got, []string{"Two", "One"}) {
		t.Errorf("after insert: %v", got)
	}
	if _, err := svc.Catalog.ReorderLessons(ctx, p.ID, []uuid.UUID{l.ID, two.ID}); err != nil {
		t.Fatal(err)
	}
	if got := outline(); !slices.Equal(got, []string{"One", "Two"}) {
		t.Errorf("after reorder: %v", got)
	}
	if _, err := svc.Catalog.UpdateLesson(ctx, l.ID, catalog.LessonPatch{Published: models.Some(false)}); err != nil {
		t.Fatal(err)
	}
	if got := outline(); !slices.Equal(got, []string{"Two"}) {
		t.Errorf("after unpublish: %v", got)
	}
	if err := svc.Catalog.DeleteLesson(ctx, two.ID); err != nil {
		t.Fatal(err)
	}
	if got := outline(); len(got) != 0 {
		t.Errorf("after delete: %v", got)
	}
	if _, err := svc.Catalog.UpdateProgram(ctx, nil, p.ID, catalog.ProgramPatch{Status: models.Some(catalog.ProgramArchived)}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Catalog.GetPublishedProgram(ctx, "live"); !models.IsCode(err, "not_found") {
		t.Errorf("archived program: err = %v, want not_found", err)
	}
}

// Readers racing a writer must not put a page read before a write back into
// the cache after it: a read that starts after a write has returned shows
// that write or a later one, never an older one.
func TestLessonPageCacheRacingReadersAndWriter(t *testing.T) {
	svc, _, _ := modelstest.NewService(t)
	ctx := context.Background()
	p, err := svc.Catalog.CreateProgram(ctx, catalog.ProgramInput{Slug: "race", Title: "Race", Status: catalog.ProgramPublished})
	if err != nil {
		t.Fatal(err)
	}
	l, err := svc.Catalog.CreateLesson(ctx, p.ID, catalog.LessonInput{Title: "0", Published: true})
	if err != nil {
		t.Fatal(err)
	}
	var committed atomic.Int64 // the last version whose write has returned
	done := make(chan struct{})
	var wg sync.WaitGroup
	var stale atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				floor := committed.Load()
				page, err := svc.Catalog.GetPublishedProgram(ctx, "race")
				if err != nil {
					t.Error(err)
					return
				}
				if v, _ := strconv.ParseInt(page.Lessons[0].Title, 10, 64); v < floor {
					stale.Add(1)
				}
			}
		}()
	}
	for i := int64(1); i <= 60; i++ {
		if _, err := svc.Catalog.UpdateLesson(ctx, l.ID, catalog.LessonPatch{Title: models.Some(strconv.FormatInt(i, 10))}); err != nil {
			t.Fatal(err)
		}
		committed.Store(i)
	}
	close(done)
	wg.Wait()
	if n := stale.Load(); n > 0 {
		t.Errorf("%d reads showed a page older than a write that had already returned", n)
	}
}

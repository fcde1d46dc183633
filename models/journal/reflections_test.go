package journal_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/domain"
	"github.com/grace-coaching/grace/models/journal"
	"github.com/grace-coaching/grace/models/modelstest"
	"github.com/grace-coaching/grace/models/people"
)

type world struct {
	svc     *domain.Services
	clock   *models.FakeClock
	db      *gorm.DB
	program *catalog.Program
	lessons []*catalog.Lesson // day 0, day 0, day 7
}

func newWorld(t *testing.T) *world {
	t.Helper()
	svc, clock, db := modelstest.NewService(t)
	w := &world{svc: svc, clock: clock, db: db}
	w.program = &catalog.Program{Slug: "p", Title: "P", Status: catalog.ProgramPublished, Currency: "EUR"}
	modelstest.MustDo(t, db.Create(w.program).Error)
	for i, days := range []int{0, 0, 7} {
		l := &catalog.Lesson{ProgramID: w.program.ID, Position: i + 1, Title: fmt.Sprintf("Lesson %d", i+1), Published: true, UnlockOffsetDays: days}
		modelstest.MustDo(t, db.Create(l).Error)
		w.lessons = append(w.lessons, l)
	}
	return w
}

// participant is a woman with access to the program from now.
func (w *world) participant(t *testing.T, email string) *people.Participant {
	t.Helper()
	p := &people.Participant{Email: email, Name: "P", Timezone: "UTC"}
	modelstest.MustDo(t, w.db.Create(p).Error)
	modelstest.MustDo(t, w.db.Create(&people.AccessGrant{ParticipantID: p.ID, ProgramID: w.program.ID,
		Source: people.GrantFreeAccess, StartsAt: w.clock.Now()}).Error)
	return p
}

func (w *world) save(t *testing.T, p *people.Participant, lesson uuid.UUID, text string, pre journal.Precondition) *journal.Reflection {
	t.Helper()
	r, err := w.svc.Journal.SaveReflection(context.Background(), p, lesson, text, pre)
	if err != nil {
		t.Fatalf("save %q: %v", text, err)
	}
	return r
}

func ifMatch(r *journal.Reflection) journal.Precondition {
	return journal.Precondition{Given: true, Revisions: []string{r.Revision()}}
}

func TestSaveReflectionVersionsAndPreconditions(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	her := w.participant(t, "her@example.com")
	lesson := w.lessons[0].ID

	_, err := w.svc.Journal.GetReflection(ctx, her, lesson)
	modelstest.WantCode(t, err, "reflection_not_found")

	first := w.save(t, her, lesson, "I said no today.", journal.Precondition{})
	if first.Version != 1 || first.Text != "I said no today." {
		t.Fatalf("first save = %+v", first)
	}
	got, err := w.svc.Journal.GetReflection(ctx, her, lesson)
	if err != nil || got.Text != first.Text || got.Revision() != first.Revision() {
		t.Fatalf("get = %+v, %v", got, err)
	}

	// A retried autosave of the same text, with or without (even a stale)
	// If-Match, changes nothing and answers the same version.
	w.clock.Advance(time75s)
	for _, pre := range []journal.Precondition{{}, ifMatch(first), {Given: true, Revisions: []string{"stale.1"}}} {
		again := w.save(t, her, lesson, "I said no today.", pre)
		if again.Revision() != first.Revision() || !again.UpdatedAt.Equal(first.UpdatedAt) {
			t.Fatalf("same text again changed the reflection: %+v, was %+v", again, first)
		}
	}

	_, err = w.svc.Journal.SaveReflection(ctx, her, lesson, "Overwritten blindly", journal.Precondition{})
	modelstest.WantCode(t, err, "precondition_required")
	_, err = w.svc.Journal.SaveReflection(ctx, her, lesson, "Overwritten from a stale tab",
		journal.Precondition{Given: true, Revisions: []string{first.ID.String() + ".0"}})
	modelstest.WantCode(t, err, "precondition_failed")
	if got, _ := w.svc.Journal.GetReflection(ctx, her, lesson); got.Text != "I said no today." {
		t.Fatalf("a refused write changed the text to %q", got.Text)
	}

	second := w.save(t, her, lesson, "I said no today, and meant it.", ifMatch(first))
	if second.Version != 2 || second.ID != first.ID || !second.UpdatedAt.After(first.UpdatedAt) {
		t.Fatalf("second = %+v", second)
	}
	third := w.save(t, her, lesson, "Any version will do.", journal.Precondition{Given: true, Any: true})
	if third.Version != 3 {
		t.Fatalf("If-Match * = %+v", third)
	}

	// Empty text deletes; the next write is a first write again, of a new
	// reflection that no old revision matches.
	if gone := w.save(t, her, lesson, "", ifMatch(third)); gone != nil {
		t.Fatalf("empty text left %+v", gone)
	}
	_, err = w.svc.Journal.GetReflection(ctx, her, lesson)
	modelstest.WantCode(t, err, "reflection_not_found")
	if gone := w.save(t, her, lesson, "", journal.Precondition{}); gone != nil {
		t.Fatal("deleting nothing should answer nothing")
	}
	_, err = w.svc.Journal.SaveReflection(ctx, her, lesson, "Old tab", ifMatch(third))
	modelstest.WantCode(t, err, "precondition_failed")
	fresh := w.save(t, her, lesson, "Starting again.", journal.Precondition{})
	if fresh.ID == first.ID || fresh.Version != 1 {
		t.Fatalf("recreated = %+v", fresh)
	}
}

const time75s = 75_000_000_000

func TestSaveReflectionRefusesBadText(t *testing.T) {
	w := newWorld(t)
	her := w.participant(t, "her@example.com")
	for name, text := range map[string]string{
		"invalid UTF-8": "caf\xe9",
		"too long":      strings.Repeat("é", journal.MaxReflectionLength+1),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := w.svc.Journal.SaveReflection(context.Background(), her, w.lessons[0].ID, text, journal.Precondition{})
			e := modelstest.WantCode(t, err, "validation_failed")
			if len(e.Fields) != 1 || e.Fields[0].Field != "text" {
				t.Fatalf("fields = %+v", e.Fields)
			}
		})
	}
	if r := w.save(t, her, w.lessons[0].ID, "", journal.Precondition{}); r != nil || count(t, w.db, "participant_keys") != 0 {
		t.Fatal("an empty first save must write nothing, not even her key")
	}
	if r := w.save(t, her, w.lessons[0].ID, strings.Repeat("é", journal.MaxReflectionLength), journal.Precondition{}); r.Version != 1 {
		t.Fatal("the longest reflection should be accepted")
	}
	if n := count(t, w.db, "reflections"); n != 1 {
		t.Fatalf("%d reflections written", n)
	}
}

// The gate decides: a locked lesson, a program she has no access to, an
// unknown lesson. Taking back a share needs no access.
func TestReflectionsFollowTheGate(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	her := w.participant(t, "her@example.com")
	stranger := &people.Participant{Email: "stranger@example.com", Name: "S", Timezone: "UTC"}
	modelstest.MustDo(t, w.db.Create(stranger).Error)

	_, err := w.svc.Journal.SaveReflection(ctx, her, w.lessons[2].ID, "too early", journal.Precondition{})
	modelstest.WantCode(t, err, "lesson_locked")
	_, err = w.svc.Journal.GetReflection(ctx, stranger, w.lessons[0].ID)
	modelstest.WantCode(t, err, "no_access")
	_, err = w.svc.Journal.SaveReflection(ctx, stranger, w.lessons[0].ID, "no access", journal.Precondition{})
	modelstest.WantCode(t, err, "no_access")
	_, err = w.svc.Journal.ShareReflection(ctx, her, uuid.New(), journal.Precondition{})
	modelstest.WantCode(t, err, "not_found")

	w.save(t, her, w.lessons[0].ID, "shared, then access ends", journal.Precondition{})
	if _, err := w.svc.Journal.ShareReflection(ctx, her, w.lessons[0].ID, journal.Precondition{}); err != nil {
		t.Fatal(err)
	}
	modelstest.MustDo(t, w.db.Exec(`UPDATE access_grants SET revoked_at = now() WHERE participant_id = ?`, her.ID).Error)
	modelstest.MustDo(t, w.svc.Journal.UnshareReflection(ctx, her, w.lessons[0].ID))
	var shared int64
	w.db.Raw(`SELECT count(*) FROM reflections WHERE shared_at IS NOT NULL`).Scan(&shared)
	if shared != 0 || count(t, w.db, "reflections") != 1 {
		t.Fatalf("after unshare: %d shared", shared)
	}
}

func count(t *testing.T, db *gorm.DB, table string) int64 {
	t.Helper()
	var n int64
	modelstest.MustDo(t, db.Table(table).Count(&n).Error)
	return n
}

// plaintextColumns lists every column of the schema that could hold text
// (text, varchar, json, jsonb, bytea, arrays of them) where needle occurs.
func plaintextColumns(t *testing.T, db *gorm.DB, needle string) []string {
	t.Helper()
	var cols []struct{ TableName, ColumnName, DataType string }
	modelstest.MustDo(t, db.Raw(`
		SELECT table_name, column_name, data_type FROM information_schema.columns
		WHERE table_schema = 'public' AND data_type IN ('text', 'character varying', 'json', 'jsonb', 'bytea', 'ARRAY')
		ORDER BY table_name, column_name`).Scan(&cols).Error)
	if len(cols) < 20 {
		t.Fatalf("only %d text columns found: the query is wrong", len(cols))
	}
	var hits []string
	for _, c := range cols {
		cond := fmt.Sprintf(`strpos(%q::text, ?) > 0`, c.ColumnName)
		if c.DataType == "bytea" {
			cond = fmt.Sprintf(`position(convert_to(?, 'UTF8') IN %q) > 0`, c.ColumnName)
		}
		var n int64
		modelstest.MustDo(t, db.Table(c.TableName).Where(cond, needle).Count(&n).Error)
		if n > 0 {
			hits = append(hits, c.TableName+"."+c.ColumnName)
		}
	}
	return hits
}

func TestDatabaseNeverHoldsTheText(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	her := w.participant(t, "her@example.com")
	const secret = "He reads my messages at night"
	r := w.save(t, her, w.lessons[0].ID, secret, journal.Precondition{})
	if _, err := w.svc.Journal.ShareReflection(ctx, her, w.lessons[0].ID, ifMatch(r)); err != nil {
		t.Fatal(err)
	}
	w.save(t, her, w.lessons[1].ID, secret+" (again)", journal.Precondition{})

	// The grep must be able to find what it looks for: a lesson title is
	// stored in the clear.
	if hits := plaintextColumns(t, w.db, "Lesson 2"); len(hits) == 0 {
		t.Fatal("the column grep found not even a lesson title")
	}
	for _, needle := range []string{secret, "messages at night"} {
		if hits := plaintextColumns(t, w.db, needle); len(hits) > 0 {
			t.Errorf("the database holds %q in %v", needle, hits)
		}
	}
}

// A different master key (someone restored the database elsewhere, or the
// key was mistyped) fails closed: a clear error, never garbage, and no write.
func TestWrongMasterKeyFailsClosed(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	her := w.participant(t, "her@example.com")
	r := w.save(t, her, w.lessons[0].ID, "only with the right key", journal.Precondition{})

	sameID, _ := journal.NewKeyring(journal.NewMasterKey("test"))
	otherID, _ := journal.NewKeyring(journal.NewMasterKey("other"))
	for name, tc := range map[string]struct {
		ring *journal.Keyring
		want error
	}{
		"same id, other key": {sameID, journal.ErrUndecryptable},
		"unknown key id":     {otherID, journal.ErrUnknownMasterKey},
	} {
		t.Run(name, func(t *testing.T) {
			wrong := journal.New(w.svc.Kernel, w.svc.People, tc.ring)
			got, err := wrong.GetReflection(ctx, her, w.lessons[0].ID)
			modelstest.WantCode(t, err, "reflection_key_unavailable")
			if got != nil || !errors.Is(err, tc.want) {
				t.Fatalf("got %+v, err %v, want %v", got, err, tc.want)
			}
			_, err = wrong.SaveReflection(ctx, her, w.lessons[0].ID, "written under the wrong key", ifMatch(r))
			modelstest.WantCode(t, err, "reflection_key_unavailable")
			_, err = wrong.SaveReflection(ctx, her, w.lessons[1].ID, "a new lesson, still her key", journal.Precondition{})
			modelstest.WantCode(t, err, "reflection_key_unavailable")
		})
	}
	if got, err := w.svc.Journal.GetReflection(ctx, her, w.lessons[0].ID); err != nil || got.Revision() != r.Revision() {
		t.Fatalf("the right key reads %+v, %v", got, err)
	}
	if n := count(t, w.db, "reflections"); n != 1 {
		t.Fatalf("the wrong key wrote: %d reflections", n)
	}
}

// Moving ciphertext between rows, participants, lessons or between her
// text and her shared copy fails to open: the associated data binds each.
func TestSwappedCiphertextDoesNotOpen(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	her := w.participant(t, "her@example.com")
	other := w.participant(t, "other@example.com")
	a := w.save(t, her, w.lessons[0].ID, "lesson one, hers", journal.Precondition{})
	w.save(t, her, w.lessons[1].ID, "lesson two, hers", journal.Precondition{})
	w.save(t, other, w.lessons[0].ID, "lesson one, the other woman's", journal.Precondition{})
	if _, err := w.svc.Journal.ShareReflection(ctx, her, w.lessons[0].ID, ifMatch(a)); err != nil {
		t.Fatal(err)
	}
	exec := func(sql string, args ...any) {
		t.Helper()
		modelstest.MustDo(t, w.db.Exec(sql, args...).Error)
	}
	// Her data key wrapped for the other woman: the wrap binds her id.
	exec(`UPDATE participant_keys k SET wrapped_key = h.wrapped_key FROM participant_keys h WHERE k.participant_id = ? AND h.participant_id = ?`, other.ID, her.ID)
	_, err := w.svc.Journal.GetReflection(ctx, other, w.lessons[0].ID)
	if !errors.Is(err, journal.ErrUndecryptable) {
		t.Fatalf("another woman's wrapped key opened: %v", err)
	}

	var saved struct{ Ciphertext []byte }
	modelstest.MustDo(t, w.db.Raw(`SELECT ciphertext FROM reflections WHERE participant_id = ? AND lesson_id = ?`, her.ID, w.lessons[0].ID).Scan(&saved).Error)
	original := saved.Ciphertext
	for name, swap := range map[string]string{
		"another lesson's text":   `UPDATE reflections r SET ciphertext = s.ciphertext FROM reflections s WHERE r.participant_id = @p AND r.lesson_id = @a AND s.participant_id = @p AND s.lesson_id = @b`,
		"her shared copy as text": `UPDATE reflections SET ciphertext = shared_ciphertext WHERE participant_id = @p AND lesson_id = @a`,
	} {
		t.Run(name, func(t *testing.T) {
			exec(swap, map[string]any{"p": her.ID, "a": w.lessons[0].ID, "b": w.lessons[1].ID})
			t.Cleanup(func() {
				exec(`UPDATE reflections SET ciphertext = ? WHERE participant_id = ? AND lesson_id = ?`, original, her.ID, w.lessons[0].ID)
			})
			got, err := w.svc.Journal.GetReflection(ctx, her, w.lessons[0].ID)
			if !errors.Is(err, journal.ErrUndecryptable) {
				t.Fatalf("swapped ciphertext read as %+v, err %v", got, err)
			}
		})
	}
	if got, err := w.svc.Journal.GetReflection(ctx, her, w.lessons[0].ID); err != nil || got.Text != "lesson one, hers" {
		t.Fatalf("restored row reads %+v, %v", got, err)
	}
	// The other woman's row moved under her id: a unique key clash aside,
	// it cannot open either (her key, her id, the other's ciphertext).
	exec(`DELETE FROM reflections WHERE participant_id = ? AND lesson_id = ?`, her.ID, w.lessons[0].ID)
	exec(`UPDATE reflections SET participant_id = ? WHERE participant_id = ? AND lesson_id = ?`, her.ID, other.ID, w.lessons[0].ID)
	_, err = w.svc.Journal.GetReflection(ctx, her, w.lessons[0].ID)
	if !errors.Is(err, journal.ErrUndecryptable) {
		t.Fatalf("the other woman's reflection opened as hers: %v", err)
	}
}

// Shredding her key makes every copy of her reflections unreadable: rows
// restored from a backup taken before do not open, not even once she has
// a new key.
func TestShredMakesHerReflectionsUnreadable(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	her := w.participant(t, "her@example.com")
	other := w.participant(t, "other@example.com")
	r := w.save(t, her, w.lessons[0].ID, "to be shredded", journal.Precondition{})
	w.save(t, her, w.lessons[1].ID, "this too", journal.Precondition{})
	w.save(t, other, w.lessons[0].ID, "not hers: stays", journal.Precondition{})
	if _, err := w.svc.Journal.ShareReflection(ctx, her, w.lessons[0].ID, ifMatch(r)); err != nil {
		t.Fatal(err)
	}
	type backupRow struct {
		ID, ParticipantID, LessonID uuid.UUID
		Ciphertext                  []byte
		Version                     int64
	}
	var backup []backupRow
	modelstest.MustDo(t, w.db.Raw(`SELECT id, participant_id, lesson_id, ciphertext, version FROM reflections WHERE participant_id = ?`, her.ID).Scan(&backup).Error)
	if len(backup) != 2 {
		t.Fatalf("backup holds %d rows", len(backup))
	}

	for range 2 { // shredding again does nothing
		modelstest.MustDo(t, w.svc.Kernel.InTx(ctx, func(tx *gorm.DB) error { return w.svc.Journal.Shred(tx, her.ID) }))
	}
	var left int64
	w.db.Raw(`SELECT (SELECT count(*) FROM reflections WHERE participant_id = ?) + (SELECT count(*) FROM participant_keys WHERE participant_id = ?)`, her.ID, her.ID).Scan(&left)
	if left != 0 {
		t.Fatalf("%d rows of hers survive the shred", left)
	}
	if got, err := w.svc.Journal.GetReflection(ctx, other, w.lessons[0].ID); err != nil || got.Text != "not hers: stays" {
		t.Fatalf("the other woman's reflection: %+v, %v", got, err)
	}

	// The backup comes back, without her key.
	restore := func() {
		t.Helper()
		modelstest.MustDo(t, w.db.Exec(`DELETE FROM reflections WHERE participant_id = ?`, her.ID).Error)
		for _, b := range backup {
			modelstest.MustDo(t, w.db.Exec(`INSERT INTO reflections (id, participant_id, lesson_id, ciphertext, version) VALUES (?, ?, ?, ?, ?)`,
				b.ID, b.ParticipantID, b.LessonID, b.Ciphertext, b.Version).Error)
		}
	}
	restore()
	_, err := w.svc.Journal.GetReflection(ctx, her, w.lessons[0].ID)
	modelstest.WantCode(t, err, "reflection_key_unavailable")
	if !errors.Is(err, journal.ErrShredded) {
		t.Fatalf("err = %v, want ErrShredded", err)
	}
	// She writes again elsewhere and so has a new key: the old rows still
	// do not open under it.
	modelstest.MustDo(t, w.db.Exec(`DELETE FROM reflections WHERE participant_id = ? AND lesson_id = ?`, her.ID, w.lessons[1].ID).Error)
	w.save(t, her, w.lessons[1].ID, "a new start", journal.Precondition{})
	_, err = w.svc.Journal.GetReflection(ctx, her, w.lessons[0].ID)
	if !errors.Is(err, journal.ErrUndecryptable) {
		t.Fatalf("an old row under her new key: err = %v, want ErrUndecryptable", err)
	}
}

// A rotated master key: data keys wrapped by the previous one still open,
// and each is rewrapped under the new one on her next write.
func TestMasterKeyRotation(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	her := w.participant(t, "her@example.com")
	old := journal.NewMasterKey("2026-01")
	oldRing, _ := journal.NewKeyring(old)
	before := journal.New(w.svc.Kernel, w.svc.People, oldRing)
	r, err := before.SaveReflection(ctx, her, w.lessons[0].ID, "written before the rotation", journal.Precondition{})
	if err != nil {
		t.Fatal(err)
	}
	next := journal.NewMasterKey("2026-02")
	rotated, _ := journal.NewKeyring(next, old)
	after := journal.New(w.svc.Kernel, w.svc.People, rotated)
	if got, err := after.GetReflection(ctx, her, w.lessons[0].ID); err != nil || got.Text != r.Text {
		t.Fatalf("after rotation: %+v, %v", got, err)
	}
	keyID := func() string {
		var id string
		w.db.Raw(`SELECT master_key_id FROM participant_keys WHERE participant_id = ?`, her.ID).Scan(&id)
		return id
	}
	if keyID() != "2026-01" {
		t.Fatal("a read must not rewrap")
	}
	if _, err := after.SaveReflection(ctx, her, w.lessons[0].ID, "written after", ifMatch(r)); err != nil {
		t.Fatal(err)
	}
	if keyID() != "2026-02" {
		t.Fatalf("her key is still wrapped by %s", keyID())
	}
	onlyNew, _ := journal.NewKeyring(next)
	if got, err := journal.New(w.svc.Kernel, w.svc.People, onlyNew).GetReflection(ctx, her, w.lessons[0].ID); err != nil || got.Text != "written after" {
		t.Fatalf("with the old key retired: %+v, %v", got, err)
	}
}

// Two tabs saving her first words at once: one wins, the other is told to
// load first, and she has one key and one reflection.
func TestConcurrentFirstSaves(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	her := w.participant(t, "her@example.com")
	const tabs = 8
	var wg sync.WaitGroup
	errs := make([]error, tabs)
	start := make(chan struct{})
	for i := range tabs {
		wg.Go(func() {
			<-start
			_, errs[i] = w.svc.Journal.SaveReflection(ctx, her, w.lessons[0].ID, fmt.Sprintf("tab %d", i), journal.Precondition{})
		})
	}
	close(start)
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !models.IsCode(err, "precondition_required"):
			t.Errorf("a losing tab got %v, want precondition_required", err)
		}
	}
	if won != 1 || count(t, w.db, "reflections") != 1 || count(t, w.db, "participant_keys") != 1 {
		t.Fatalf("%d tabs won; %d reflections, %d keys", won, count(t, w.db, "reflections"), count(t, w.db, "participant_keys"))
	}
	if got, err := w.svc.Journal.GetReflection(ctx, her, w.lessons[0].ID); err != nil || got.Version != 1 {
		t.Fatalf("after the race: %+v, %v", got, err)
	}
}

// Without a configured key nothing is written, in the clear or otherwise.
func TestNoKeyringNoReflections(t *testing.T) {
	w := newWorld(t)
	her := w.participant(t, "her@example.com")
	_, err := journal.New(w.svc.Kernel, w.svc.People, nil).SaveReflection(context.Background(), her, w.lessons[0].ID, "x", journal.Precondition{})
	modelstest.WantCode(t, err, "reflections_unavailable")
	if count(t, w.db, "reflections")+count(t, w.db, "participant_keys") != 0 {
		t.Fatal("rows written without a key")
	}
}

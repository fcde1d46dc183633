package journal

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/people"
)

// MaxReflectionLength is the longest reflection, in characters: pages of
// writing, and a bound on what one autosave costs.
const MaxReflectionLength = 20000

// Reflection is her text on one lesson, decrypted for her.
type Reflection struct {
	ID            uuid.UUID
	ParticipantID uuid.UUID
	LessonID      uuid.UUID
	Text          string
	// Version counts the changes to Text, from 1; saving the same text
	// again does not change it.
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
	// Shared is the snapshot she shared, nil when she shares none.
	Shared *Share
}

// Revision names this version of this reflection (the API's ETag). It
// carries the id, so a reflection deleted and written again never matches
// a revision of the one before.
func (r *Reflection) Revision() string { return revision(r.ID, r.Version) }

func revision(id uuid.UUID, version int64) string {
	return id.String() + "." + strconv.FormatInt(version, 10)
}

// Share is which version she shared, and when. A coach reads that
// snapshot, not her latest text: she shared those words, and what she
// writes afterwards (perhaps forgetting it is shared) stays hers until she
// shares again.
type Share struct {
	Version  int64
	SharedAt time.Time
}

// SharedReflection is what a coach reads: the snapshot a participant shared.
type SharedReflection struct {
	ReflectionID uuid.UUID
	LessonID     uuid.UUID
	LessonTitle  string
	ProgramID    uuid.UUID
	Text         string
	Version      int64
	SharedAt     time.Time
}

// Precondition is which version of her reflection a write means to
// replace (the API's If-Match). The first write needs none; writing over
// an existing reflection does, so a stale tab or a second device can never
// silently overwrite what she wrote elsewhere.
type Precondition struct {
	// Given is true when the client named a version.
	Given bool
	// Any accepts whatever version is current (If-Match: *), as long as one exists.
	Any bool
	// Revisions are the revisions the client accepts; one must be current.
	Revisions []string
}

var (
	errNoReflection = models.E(models.KindNotFound, "reflection_not_found", "You have not written a reflection for this lesson.")
	errStale        = models.E(models.KindStale, "precondition_failed",
		"Your reflection was changed elsewhere (another tab or device) since you loaded it. Load it again, then save.")
	errVersionRequired = models.E(models.KindVersionRequired, "precondition_required",
		"You already have a reflection here: send If-Match with the ETag of the version you are replacing.")
)

// check decides whether a write naming pre may replace the current row
// (nil: there is none).
func (pre Precondition) check(cur *reflectionRow) error {
	switch {
	case cur == nil && pre.Given:
		return errStale
	case cur == nil:
		return nil
	case !pre.Given:
		return errVersionRequired
	case pre.Any || slices.Contains(pre.Revisions, revision(cur.ID, cur.Version)):
		return nil
	}
	return errStale
}

type reflectionRow struct {
	ID               uuid.UUID `gorm:"type:uuid;primaryKey"`
	ParticipantID    uuid.UUID
	LessonID         uuid.UUID
	Ciphertext       []byte
	Version          int64
	SharedCiphertext []byte
	SharedVersion    *int64
	SharedAt         *time.Time
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

func (reflectionRow) TableName() string { return "reflections" }

type keyRow struct {
	ParticipantID uuid.UUID `gorm:"type:uuid;primaryKey"`
	MasterKeyID   string
	WrappedKey    []byte
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

func (keyRow) TableName() string { return "participant_keys" }

func (r *reflectionRow) reveal(text string) *Reflection {
	out := &Reflection{ID: r.ID, ParticipantID: r.ParticipantID, LessonID: r.LessonID, Text: text, Version: r.Version,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
	if r.SharedAt != nil && r.SharedVersion != nil {
		out.Shared = &Share{Version: *r.SharedVersion, SharedAt: *r.SharedAt}
	}
	return out
}

func checkText(text string) error {
	var c models.Checker
	switch {
	case !utf8.ValidString(text):
		c.Add("text", "must be valid UTF-8")
	case utf8.RuneCountInString(text) > MaxReflectionLength:
		c.Add("text", fmt.Sprintf("must be at most %d characters", MaxReflectionLength))
	}
	return c.Err()
}

// dataKey opens her data key. With create it makes one on her first write
// and rewraps one still wrapped by a previous master key, so rotation
// completes as she writes; without it a missing key is ErrShredded.
func (s *Service) dataKey(tx *gorm.DB, ring *Keyring, participantID uuid.UUID, create bool) (cipher.AEAD, error) {
	var k keyRow
	err := tx.Where("participant_id = ?", participantID).Take(&k).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		if !create {
			return nil, keyUnavailable(ErrShredded)
		}
		aead, wrapped := ring.newDataKey(participantID)
		now := models.StoredTime(s.Now())
		res := tx.Exec(`
			INSERT INTO participant_keys (participant_id, master_key_id, wrapped_key, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (participant_id) DO NOTHING`, participantID, ring.current, wrapped, now, now)
		if res.Error != nil {
			return nil, models.MapDBError(res.Error, "reflection key")
		}
		if res.RowsAffected == 1 {
			return aead, nil
		}
		// Her other tab made it first: use that one.
		err = tx.Where("participant_id = ?", participantID).Take(&k).Error
	}
	if err != nil {
		return nil, models.MapDBError(err, "reflection key")
	}
	aead, raw, err := ring.unwrap(participantID, k.MasterKeyID, k.WrappedKey)
	if err != nil {
		return nil, keyUnavailable(err)
	}
	if create && k.MasterKeyID != ring.current {
		err := tx.Exec(`UPDATE participant_keys SET master_key_id = ?, wrapped_key = ?, updated_at = ? WHERE participant_id = ? AND master_key_id = ?`,
			ring.current, ring.wrap(participantID, raw), models.StoredTime(s.Now()), participantID, k.MasterKeyID).Error
		if err != nil {
			return nil, models.MapDBError(err, "reflection key")
		}
	}
	return aead, nil
}

// findReflection reads her reflection on a lesson, locked when lock is
// set; nil when there is none.
func findReflection(tx *gorm.DB, participantID, lessonID uuid.UUID, lock bool) (*reflectionRow, error) {
	q := tx.Where("participant_id = ? AND lesson_id = ?", participantID, lessonID)
	if lock {
		q = q.Clauses(models.RowLock)
	}
	var r reflectionRow
	err := q.Take(&r).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, models.MapDBError(err, "reflection")
	}
	return &r, nil
}

// gated runs fn in a transaction, for a lesson she may read now (the
// gate's answer otherwise), with the keyring.
func (s *Service) gated(ctx context.Context, p *people.Participant, lessonID uuid.UUID,
	fn func(tx *gorm.DB, ring *Keyring) (*Reflection, error)) (*Reflection, error) {
	ring, err := s.ring()
	if err != nil {
		return nil, err
	}
	if _, err := s.people.ReadLesson(ctx, p, lessonID); err != nil {
		return nil, err
	}
	var out *Reflection
	err = s.InTx(ctx, func(tx *gorm.DB) error {
		var err error
		out, err = fn(tx, ring)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// GetReflection returns her reflection on a lesson she may read now.
func (s *Service) GetReflection(ctx context.Context, p *people.Participant, lessonID uuid.UUID) (*Reflection, error) {
	return s.gated(ctx, p, lessonID, func(tx *gorm.DB, ring *Keyring) (*Reflection, error) {
		row, err := findReflection(tx, p.ID, lessonID, false)
		if err != nil {
			return nil, err
		}
		if row == nil {
			return nil, errNoReflection
		}
		aead, err := s.dataKey(tx, ring, p.ID, false)
		if err != nil {
			return nil, err
		}
		text, err := open(aead, copyCurrent, p.ID, lessonID, row.Ciphertext)
		if err != nil {
			return nil, keyUnavailable(err)
		}
		return row.reveal(text), nil
	})
}

// SaveReflection writes her reflection on a lesson she may read now, as an
// autosave would, and returns it; nil when empty text left none.
//
// Saving the text that is already there changes nothing and answers the
// same version, whatever pre says: a retried save, or a second autosave of
// unchanged text, is never a conflict. Any other write over an existing
// reflection must name its current version (pre). Empty text deletes the
// reflection, and with it any snapshot she shared: an emptied box means
// she wants nothing kept, and keeping an empty ciphertext would keep the
// fact that she once wrote here.
func (s *Service) SaveReflection(ctx context.Context, p *people.Participant, lessonID uuid.UUID, text string, pre Precondition) (*Reflection, error) {
	if err := checkText(text); err != nil {
		return nil, err
	}
	return s.gated(ctx, p, lessonID, func(tx *gorm.DB, ring *Keyring) (*Reflection, error) {
		row, err := findReflection(tx, p.ID, lessonID, true)
		if err != nil {
			return nil, err
		}
		if row == nil {
			if err := pre.check(nil); err != nil || text == "" {
				// Nothing to write, and no key made: the database does not
				// even learn that she opened the box.
				return nil, err
			}
		}
		aead, err := s.dataKey(tx, ring, p.ID, true)
		if err != nil {
			return nil, err
		}
		if row == nil {
			now := models.StoredTime(s.Now())
			row = &reflectionRow{ID: uuid.New(), ParticipantID: p.ID, LessonID: lessonID,
				Ciphertext: seal(aead, copyCurrent, p.ID, lessonID, text), Version: 1, CreatedAt: now, UpdatedAt: now}
			res := tx.Exec(`
				INSERT INTO reflections (id, participant_id, lesson_id, ciphertext, version, created_at, updated_at)
				VALUES (?, ?, ?, ?, 1, ?, ?) ON CONFLICT (participant_id, lesson_id) DO NOTHING`,
				row.ID, p.ID, lessonID, row.Ciphertext, now, now)
			if res.Error != nil {
				return nil, models.MapDBError(res.Error, "reflection")
			}
			if res.RowsAffected == 1 {
				return row.reveal(text), nil
			}
			// Another tab's first save won the race: this one is now a
			// write over it, and is judged as one.
			if row, err = findReflection(tx, p.ID, lessonID, true); err != nil {
				return nil, err
			}
			if row == nil {
				return nil, errors.New("reflection: conflicting insert left no row")
			}
		}
		current, err := open(aead, copyCurrent, p.ID, lessonID, row.Ciphertext)
		if err != nil {
			return nil, keyUnavailable(err)
		}
		if current == text {
			return row.reveal(text), nil
		}
		if err := pre.check(row); err != nil {
			return nil, err
		}
		if text == "" {
			return nil, models.MapDBError(tx.Exec(`DELETE FROM reflections WHERE id = ?`, row.ID).Error, "reflection")
		}
		row.Ciphertext = seal(aead, copyCurrent, p.ID, lessonID, text)
		row.Version++
		row.UpdatedAt = models.StoredTime(s.Now())
		err = tx.Exec(`UPDATE reflections SET ciphertext = ?, version = ?, updated_at = ? WHERE id = ?`,
			row.Ciphertext, row.Version, row.UpdatedAt, row.ID).Error
		if err != nil {
			return nil, models.MapDBError(err, "reflection")
		}
		return row.reveal(text), nil
	})
}

// ShareReflection shares the current version of her reflection on a lesson
// she may read now with the coaches of her cohort, replacing any snapshot
// shared before. pre is optional here (sharing replaces no words of hers),
// but when given it must be current, so she never shares a text she has not
// seen. Sharing the version already shared changes nothing.
func (s *Service) ShareReflection(ctx context.Context, p *people.Participant, lessonID uuid.UUID, pre Precondition) (*Reflection, error) {
	return s.gated(ctx, p, lessonID, func(tx *gorm.DB, ring *Keyring) (*Reflection, error) {
		row, err := findReflection(tx, p.ID, lessonID, true)
		if err != nil {
			return nil, err
		}
		if row == nil {
			return nil, errNoReflection
		}
		if pre.Given {
			if err := pre.check(row); err != nil {
				return nil, err
			}
		}
		aead, err := s.dataKey(tx, ring, p.ID, false)
		if err != nil {
			return nil, err
		}
		text, err := open(aead, copyCurrent, p.ID, lessonID, row.Ciphertext)
		if err != nil {
			return nil, keyUnavailable(err)
		}
		if row.SharedVersion != nil && *row.SharedVersion == row.Version {
			return row.reveal(text), nil
		}
		now := models.StoredTime(s.Now())
		row.SharedCiphertext = seal(aead, copyShared, p.ID, lessonID, text)
		row.SharedVersion, row.SharedAt = &row.Version, &now
		err = tx.Exec(`UPDATE reflections SET shared_ciphertext = ?, shared_version = ?, shared_at = ? WHERE id = ?`,
			row.SharedCiphertext, row.Version, now, row.ID).Error
		if err != nil {
			return nil, models.MapDBError(err, "reflection")
		}
		return row.reveal(text), nil
	})
}

// UnshareReflection takes back what she shared on a lesson; sharing nothing
// is already done. It needs no access to the lesson: taking her words back
// must work even after her access ended.
func (s *Service) UnshareReflection(ctx context.Context, p *people.Participant, lessonID uuid.UUID) error {
	err := s.DB.WithContext(ctx).Exec(`
		UPDATE reflections SET shared_ciphertext = NULL, shared_version = NULL, shared_at = NULL
		WHERE participant_id = ? AND lesson_id = ? AND shared_at IS NOT NULL`, p.ID, lessonID).Error
	return models.MapDBError(err, "reflection")
}

// The coach scope of reflections: a coach (not an admin) reads a
// participant's shared reflections only while she has a live place
// (active or disputed) in a cohort the coach leads or co-leads, and only on
// lessons of that cohort's program. Anything else is not found. Kept as
// one pair of conditions so the tightened participant scope can replace it
// in one place.
const (
	coachSeesParticipant = `EXISTS (
		SELECT 1 FROM enrollments e JOIN cohort_coaches cc ON cc.cohort_id = e.cohort_id
		WHERE e.participant_id = participants.id AND cc.coach_id = ? AND e.status IN ('active', 'disputed'))`
	coachSeesReflection = `EXISTS (
		SELECT 1 FROM enrollments e JOIN cohorts co ON co.id = e.cohort_id JOIN cohort_coaches cc ON cc.cohort_id = co.id
		WHERE e.participant_id = r.participant_id AND co.program_id = l.program_id AND cc.coach_id = ?
			AND e.status IN ('active', 'disputed'))`
)

// SharedReflections are the snapshots a participant shared, as the coach
// actor may read them, newest share first. A participant outside the
// coach's scope is not found. This is the one place a coach reads a
// participant's reflections: the access log belongs here.
func (s *Service) SharedReflections(ctx context.Context, actor *people.Coach, participantID uuid.UUID) ([]SharedReflection, error) {
	ring, err := s.ring()
	if err != nil {
		return nil, err
	}
	if actor == nil {
		return nil, people.ErrAdminOnly
	}
	db := s.DB.WithContext(ctx)
	var found int64
	q := people.ScopeManaged(db.Table("participants").Where("id = ?", participantID), actor, coachSeesParticipant)
	if err := q.Count(&found).Error; err != nil {
		return nil, models.MapDBError(err, "participant")
	}
	if found == 0 {
		return nil, models.NotFound("participant")
	}
	type sharedRow struct {
		ID, LessonID, ProgramID uuid.UUID
		LessonTitle             string
		SharedCiphertext        []byte
		SharedVersion           int64
		SharedAt                time.Time
	}
	var rows []sharedRow
	q = db.Table("reflections r").Joins("JOIN lessons l ON l.id = r.lesson_id").
		Select("r.id, r.lesson_id, l.program_id, l.title AS lesson_title, r.shared_ciphertext, r.shared_version, r.shared_at").
		Where("r.participant_id = ? AND r.shared_at IS NOT NULL", participantID)
	q = people.ScopeManaged(q, actor, coachSeesReflection)
	if err := q.Order("r.shared_at DESC, r.id").Scan(&rows).Error; err != nil {
		return nil, models.MapDBError(err, "reflection")
	}
	out := make([]SharedReflection, 0, len(rows))
	if len(rows) == 0 {
		return out, nil
	}
	aead, err := s.dataKey(db, ring, participantID, false)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		text, err := open(aead, copyShared, participantID, r.LessonID, r.SharedCiphertext)
		if err != nil {
			return nil, keyUnavailable(err)
		}
		out = append(out, SharedReflection{ReflectionID: r.ID, LessonID: r.LessonID, LessonTitle: r.LessonTitle,
			ProgramID: r.ProgramID, Text: text, Version: r.SharedVersion, SharedAt: r.SharedAt})
	}
	// She sees in her access log that her coach read what she shared; a
	// read that cannot be logged is not answered.
	viewer, err := people.ViewerOf(actor)
	if err != nil {
		return nil, err
	}
	if err := people.LogAccess(db, s.Now(), viewer, people.AccessReflectionRead, participantID); err != nil {
		return nil, err
	}
	return out, nil
}

// Shred destroys her data key and her reflections in the caller's
// transaction (her erasure). Without the key, every copy of her
// reflections that outlives this (a backup, a replica, a dump) is
// unreadable ciphertext. Shredding again, or shredding a woman who never
// wrote, does nothing.
func (s *Service) Shred(tx *gorm.DB, participantID uuid.UUID) error {
	if err := tx.Exec(`DELETE FROM participant_keys WHERE participant_id = ?`, participantID).Error; err != nil {
		return models.MapDBError(err, "reflection key")
	}
	if err := tx.Exec(`DELETE FROM reflections WHERE participant_id = ?`, participantID).Error; err != nil {
		return models.MapDBError(err, "reflection")
	}
	return nil
}

package people

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
)

// The access log: every read of a participant's personal data by a coach or
// an admin, which she can read in her portal.
//
// What counts as one read: opening her profile, an export, an email
// previewed with her data and (later) a reflection she shared are logged
// one entry each. A list (participants, a cohort's enrollments, the
// delivery log) shows only her name and address and is logged as one entry
// per woman on the page actually shown, with the list's own kind, written
// by the same statement that reads the page: the list costs no extra round
// trip, and an entry cannot be lost while the page is served. A failed
// write fails the read: nothing is shown that was not logged.

// AccessKind is what a coach or admin read.
type AccessKind string

const (
	AccessProfileViewed     AccessKind = "profile_viewed"     // her profile: grants, consents, progress
	AccessListed            AccessKind = "listed"             // a row of the participant list or a search
	AccessEnrollmentsListed AccessKind = "enrollments_listed" // a row of a cohort's enrollment list
	AccessDeliveriesListed  AccessKind = "deliveries_listed"  // her emails in the delivery log
	AccessEmailPreviewed    AccessKind = "email_previewed"    // a drip step rendered with her data
	AccessExported          AccessKind = "exported"           // her data exported by a coach
	AccessReflectionRead    AccessKind = "reflection_read"    // a reflection she shared
)

// AccessKinds lists every kind, for the API's enum.
var AccessKinds = []AccessKind{AccessProfileViewed, AccessListed, AccessEnrollmentsListed, AccessDeliveriesListed,
	AccessEmailPreviewed, AccessExported, AccessReflectionRead}

// AccessEntry is one logged read.
type AccessEntry struct {
	ID            uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	ParticipantID uuid.UUID `gorm:"type:uuid"`
	CoachID       *uuid.UUID
	CoachName     string
	What          AccessKind
	CreatedAt     time.Time
}

func (AccessEntry) TableName() string { return "participant_access_log" }

// LogAccess records that v read what of each participant, in one INSERT in
// tx (so it commits or rolls back with the read). Ids that name no
// participant are ignored. It is the one call every room uses.
func LogAccess(tx *gorm.DB, at time.Time, v Viewer, what AccessKind, participantIDs ...uuid.UUID) error {
	if len(participantIDs) == 0 {
		return nil
	}
	err := tx.Exec(`
		INSERT INTO participant_access_log (participant_id, coach_id, coach_name, what, created_at)
		SELECT id, ?, ?, ?, ? FROM participants WHERE id IN ?`,
		v.CoachID, v.CoachName, what, models.StoredTime(at), participantIDs).Error
	if err != nil {
		return fmt.Errorf("log access: %w", err)
	}
	return nil
}

// ReadLogged runs page, a query for one page of a list (ordered and limited
// to limit+1 rows, the extra one telling whether another page follows), and
// logs what for every distinct participant among the first limit rows, in
// one statement. order is page's ORDER BY in terms of its own output
// columns; idColumn the output column that holds the participant id.
func ReadLogged[T any](db *gorm.DB, at time.Time, v Viewer, what AccessKind, page *gorm.DB, order, idColumn string, limit int) ([]T, error) {
	var rows []T
	err := db.Raw(`
		WITH shown AS MATERIALIZED (?),
		numbered AS (SELECT shown.*, row_number() OVER (ORDER BY `+order+`) AS page_row FROM shown),
		logged AS (
			INSERT INTO participant_access_log (participant_id, coach_id, coach_name, what, created_at)
			SELECT DISTINCT `+idColumn+`, ?::uuid, ?, ?, ?::timestamptz FROM numbered WHERE page_row <= ? AND `+idColumn+` IS NOT NULL
		)
		SELECT * FROM numbered ORDER BY page_row`,
		page, v.CoachID, v.CoachName, what, models.StoredTime(at), limit).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("read and log %s: %w", what, err)
	}
	return rows, nil
}

// ListAccessLog is her own access log, newest first: who read what, when.
func (s *Service) ListAccessLog(ctx context.Context, p *Participant, pp models.PageParams) (models.Page[AccessEntry], error) {
	if p == nil {
		return models.Page[AccessEntry]{}, models.NotFound("participant")
	}
	return s.accessLog(s.DB.WithContext(ctx), p.ID, pp)
}

// ListParticipantAccessLog is one participant's access log for an admin.
func (s *Service) ListParticipantAccessLog(ctx context.Context, actor *Coach, participantID uuid.UUID, pp models.PageParams) (models.Page[AccessEntry], error) {
	if err := RequireAdmin(actor); err != nil {
		return models.Page[AccessEntry]{}, err
	}
	db := s.DB.WithContext(ctx)
	var exists bool
	if err := db.Raw(`SELECT EXISTS (SELECT 1 FROM participants WHERE id = ?)`, participantID).Scan(&exists).Error; err != nil {
		return models.Page[AccessEntry]{}, fmt.Errorf("find participant: %w", err)
	}
	if !exists {
		return models.Page[AccessEntry]{}, models.NotFound("participant")
	}
	return s.accessLog(db, participantID, pp)
}

func (s *Service) accessLog(db *gorm.DB, participantID uuid.UUID, pp models.PageParams) (models.Page[AccessEntry], error) {
	return models.PageNewestFirst(db.Model(&AccessEntry{}).Where("participant_id = ?", participantID), pp, "access log",
		func(e AccessEntry) models.Cursor { return models.Cursor{At: e.CreatedAt, ID: e.ID} })
}

package people

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
)

// MaxParticipantQuery is the longest search term a coach may send.
const MaxParticipantQuery = 254

// ParticipantDetail is what a coach sees of one participant: who she is, the
// access she has had, what she consented to and how far she got.
type ParticipantDetail struct {
	Participant Participant
	Grants      []GrantDetail
	Consents    []models.Consent
	Progress    []LessonProgress
}

// GrantDetail is an access grant with the program it opens, by name.
type GrantDetail struct {
	AccessGrant
	ProgramSlug  string
	ProgramTitle string
}

// LessonProgress is one lesson a participant completed.
type LessonProgress struct {
	ProgramID   uuid.UUID
	LessonID    uuid.UUID
	CompletedAt time.Time
}

// escapeLike makes s match itself literally inside a LIKE pattern, so a
// coach searching for "50%" or "a_b" finds exactly that.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// ListParticipants lists the participants v may see, newest first; q,
// when not blank, keeps those whose email or name contains it, ignoring
// case. Each woman on the page is logged as listed.
func (s *Service) ListParticipants(ctx context.Context, actor *Coach, q string, pp models.PageParams) (models.Page[Participant], error) {
	v, err := ViewerOf(actor)
	if err != nil {
		return models.Page[Participant]{}, err
	}
	q = strings.TrimSpace(q)
	if utf8.RuneCountInString(q) > MaxParticipantQuery || !utf8.ValidString(q) {
		e := models.E(models.KindBadRequest, "invalid_query", "q must be at most %d characters.", MaxParticipantQuery)
		e.Fields = []models.FieldError{{Field: "q", Message: fmt.Sprintf("must be at most %d characters", MaxParticipantQuery)}}
		return models.Page[Participant]{}, e
	}
	cur, err := pp.Decode()
	if err != nil {
		return models.Page[Participant]{}, err
	}
	db := s.DB.WithContext(ctx)
	page := v.ScopeParticipants(db.Model(&Participant{}), "participants.id")
	if q != "" {
		pattern := "%" + escapeLike(q) + "%"
		// Backslash is LIKE's default escape; said explicitly so a changed
		// standard_conforming_strings cannot change the meaning.
		page = page.Where(`(email ILIKE ? ESCAPE '\' OR name ILIKE ? ESCAPE '\')`, pattern, pattern)
	}
	if cur != nil {
		page = page.Where("(created_at, id) < (?, ?)", cur.At, cur.ID)
	}
	limit := pp.PageSize()
	page = page.Order("created_at DESC, id DESC").Limit(limit + 1)
	rows, err := ReadLogged[Participant](db, s.Now(), v, AccessListed, page, "created_at DESC, id DESC", "id", limit)
	if err != nil {
		return models.Page[Participant]{}, fmt.Errorf("list participants: %w", err)
	}
	return models.PageOf(rows, limit, func(p Participant) models.Cursor { return models.Cursor{At: p.CreatedAt, ID: p.ID} }), nil
}

// GetParticipantDetail returns a participant v may see with her grants
// (revoked ones too), consent records and lesson completions, each oldest
// first, and logs the read in the same transaction. A coach sees only the
// grants that make her one of hers, the progress and consents of those
// programs, and never the consent evidence (IP address, user agent): that
// is for admins, who answer for it. Someone outside v's scope is not found,
// exactly as someone who does not exist.
func (s *Service) GetParticipantDetail(ctx context.Context, actor *Coach, id uuid.UUID) (*ParticipantDetail, error) {
	v, err := ViewerOf(actor)
	if err != nil {
		return nil, err
	}
	d := &ParticipantDetail{Grants: []GrantDetail{}, Consents: []models.Consent{}, Progress: []LessonProgress{}}
	err = s.InTx(ctx, func(tx *gorm.DB) error {
		if err := v.ScopeParticipants(tx.Model(&Participant{}), "participants.id").Where("id = ?", id).Take(&d.Participant).Error; err != nil {
			return models.MapDBError(err, "participant")
		}
		if err := LogAccess(tx, s.Now(), v, AccessProfileViewed, id); err != nil {
			return err
		}
		grants := v.ScopeGrants(tx.Table("access_grants g").Select("g.*, pr.slug AS program_slug, pr.title AS program_title").
			Joins("JOIN programs pr ON pr.id = g.program_id").Where("g.participant_id = ?", id))
		if err := grants.Order("g.created_at, g.id").Scan(&d.Grants).Error; err != nil {
			return fmt.Errorf("participant grants: %w", err)
		}
		programs := make([]uuid.UUID, 0, len(d.Grants))
		for _, g := range d.Grants {
			programs = append(programs, g.ProgramID)
		}
		// host() prints the address without the /32 a bare inet would carry.
		evidence := "NULL AS ip, NULL AS user_agent"
		if v.Admin {
			evidence = "host(ip) AS ip, user_agent"
		}
		consents := tx.Table("consents").Select("id, participant_id, program_id, kind, text_version, granted, "+evidence+", created_at").
			Where("participant_id = ?", id)
		if !v.Admin {
			consents = consents.Where("(program_id IS NULL OR program_id IN ?)", append(programs, uuid.Nil))
		}
		if err := consents.Order("created_at, id").Scan(&d.Consents).Error; err != nil {
			return fmt.Errorf("participant consents: %w", err)
		}
		progress := tx.Table("lesson_completions c").Select("l.program_id, c.lesson_id, c.completed_at").
			Joins("JOIN lessons l ON l.id = c.lesson_id").Where("c.participant_id = ?", id)
		if !v.Admin {
			progress = progress.Where("l.program_id IN ?", append(programs, uuid.Nil))
		}
		if err := progress.Order("c.completed_at, c.lesson_id").Scan(&d.Progress).Error; err != nil {
			return fmt.Errorf("participant progress: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

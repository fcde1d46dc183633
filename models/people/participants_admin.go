package people

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

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

// ListParticipants lists participants newest first; q, when not blank, keeps
// those whose email or name contains it, ignoring case.
func (s *Service) ListParticipants(ctx context.Context, q string, pp models.PageParams) (models.Page[Participant], error) {
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
	db := s.DB.WithContext(ctx).Model(&Participant{})
	if q != "" {
		pattern := "%" + escapeLike(q) + "%"
		// Backslash is LIKE's default escape; said explicitly so a changed
		// standard_conforming_strings cannot change the meaning.
		db = db.Where(`(email ILIKE ? ESCAPE '\' OR name ILIKE ? ESCAPE '\')`, pattern, pattern)
	}
	if cur != nil {
		db = db.Where("(created_at, id) < (?, ?)", cur.At, cur.ID)
	}
	limit := pp.PageSize()
	var rows []Participant
	if err := db.Order("created_at DESC, id DESC").Limit(limit + 1).Find(&rows).Error; err != nil {
		return models.Page[Participant]{}, fmt.Errorf("list participants: %w", err)
	}
	return models.PageOf(rows, limit, func(p Participant) models.Cursor { return models.Cursor{At: p.CreatedAt, ID: p.ID} }), nil
}

// GetParticipantDetail returns a participant with all her grants (revoked
// ones too), consent records and lesson completions, each oldest first.
func (s *Service) GetParticipantDetail(ctx context.Context, id uuid.UUID) (*ParticipantDetail, error) {
	db := s.DB.WithContext(ctx)
	d := &ParticipantDetail{Grants: []GrantDetail{}, Consents: []models.Consent{}, Progress: []LessonProgress{}}
	if err := db.Where("id = ?", id).Take(&d.Participant).Error; err != nil {
		return nil, models.MapDBError(err, "participant")
	}
	if err := db.Raw(`
		SELECT g.*, p.slug AS program_slug, p.title AS program_title
		FROM access_grants g JOIN programs p ON p.id = g.program_id
		WHERE g.participant_id = ? ORDER BY g.created_at, g.id`, id).Scan(&d.Grants).Error; err != nil {
		return nil, fmt.Errorf("participant grants: %w", err)
	}
	// host() prints the address without the /32 a bare inet would carry.
	if err := db.Raw(`
		SELECT id, participant_id, program_id, kind, text_version, granted, host(ip) AS ip, user_agent, created_at
		FROM consents WHERE participant_id = ? ORDER BY created_at, id`, id).Scan(&d.Consents).Error; err != nil {
		return nil, fmt.Errorf("participant consents: %w", err)
	}
	if err := db.Raw(`
		SELECT l.program_id, c.lesson_id, c.completed_at
		FROM lesson_completions c JOIN lessons l ON l.id = c.lesson_id
		WHERE c.participant_id = ? ORDER BY c.completed_at, c.lesson_id`, id).Scan(&d.Progress).Error; err != nil {
		return nil, fmt.Errorf("participant progress: %w", err)
	}
	return d, nil
}

package people

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
)

// Session lifetimes.
const (
	CoachSessionTTL       = 30 * 24 * time.Hour
	ParticipantSessionTTL = 30 * 24 * time.Hour
)

var errBadToken = models.E(models.KindUnauthorized, "invalid_token", "The token is missing, expired or revoked. Sign in again.")

// AuthenticateCoach resolves a bearer token to an active coach and her live
// session, in one query.
func (s *Service) AuthenticateCoach(ctx context.Context, token string) (*Coach, *CoachSession, error) {
	var row struct {
		Coach
		SessionID        uuid.UUID
		SessionExpiresAt time.Time
	}
	err := s.DB.WithContext(ctx).Raw(`
		SELECT c.*, cs.id AS session_id, cs.expires_at AS session_expires_at
		FROM coach_sessions cs JOIN coaches c ON c.id = cs.coach_id
		WHERE cs.token_hash = ? AND cs.revoked_at IS NULL AND cs.expires_at > ? AND c.active`,
		models.HashToken(token), s.Now()).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil, errBadToken
	}
	if err != nil {
		return nil, nil, err
	}
	coach := row.Coach
	return &coach, &CoachSession{ID: row.SessionID, CoachID: coach.ID, ExpiresAt: row.SessionExpiresAt}, nil
}

// AuthenticateParticipant resolves a portal session token to its participant.
func (s *Service) AuthenticateParticipant(ctx context.Context, token string) (*Participant, *ParticipantSession, error) {
	var row struct {
		Participant
		SessionID        uuid.UUID
		SessionExpiresAt time.Time
		DisclaimerDue    *int
	}
	err := s.DB.WithContext(ctx).Raw(`
		SELECT p.*, ps.id AS session_id, ps.expires_at AS session_expires_at, `+disclaimerDueSQL+` AS disclaimer_due
		FROM participant_sessions ps JOIN participants p ON p.id = ps.participant_id
		WHERE ps.token_hash = ? AND ps.revoked_at IS NULL AND ps.expires_at > ?`,
		models.HashToken(token), s.Now()).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil, errBadToken
	}
	if err != nil {
		return nil, nil, err
	}
	p := row.Participant
	ps := &ParticipantSession{ID: row.SessionID, ParticipantID: p.ID, ExpiresAt: row.SessionExpiresAt}
	if row.DisclaimerDue != nil {
		ps.ConsentDue = models.ConsentRequired(models.ConsentDisclaimer, *row.DisclaimerDue)
	}
	return &p, ps, nil
}

// disclaimerDueSQL is, for the participant p of a portal query, the
// version of the disclaimer she must accept before the portal serves her
// again, or NULL. It is due once she accepted an earlier version (on a
// claim or checkout form) but not the newest: a woman a coach added
// herself was never shown a form, and the coach talks to her directly.
// A grant with no document predates versioned documents: version 1 is the
// text in force when they became data, so it counts as that version and she
// is asked again only once a later one is published, never locked out by
// the migration itself. Two probes of her consents by index, inside the
// query that reads her session anyway, so the check costs no round trip.
const disclaimerDueSQL = `(
	SELECT cd.version FROM (SELECT id, version FROM consent_documents WHERE kind = 'disclaimer' ORDER BY version DESC LIMIT 1) cd
	WHERE EXISTS (SELECT 1 FROM consents c WHERE c.participant_id = p.id AND c.kind = 'disclaimer' AND c.granted)
	  AND NOT EXISTS (SELECT 1 FROM consents c WHERE c.participant_id = p.id AND c.kind = 'disclaimer' AND c.granted
	    AND (c.document_id = cd.id OR (c.document_id IS NULL AND cd.version = 1))))`

// newCoachSession issues a bearer token for coach inside tx.
func (s *Service) newCoachSession(tx *gorm.DB, coach *Coach) (string, *CoachSession, error) {
	token, hash := models.NewToken()
	cs := &CoachSession{CoachID: coach.ID, TokenHash: hash, ExpiresAt: s.Now().Add(CoachSessionTTL)}
	if err := tx.Create(cs).Error; err != nil {
		return "", nil, err
	}
	return token, cs, nil
}

// newParticipantSession issues a portal session token inside tx. She got
// here with a link or code from her inbox, so her address is proven.
func (s *Service) newParticipantSession(tx *gorm.DB, p *Participant) (string, *ParticipantSession, error) {
	if p.EmailVerifiedAt == nil {
		now := s.Now()
		if err := tx.Exec(`UPDATE participants SET email_verified_at = ? WHERE id = ? AND email_verified_at IS NULL`, now, p.ID).Error; err != nil {
			return "", nil, models.MapDBError(err, "participant")
		}
		p.EmailVerifiedAt = &now
	}
	token, hash := models.NewToken()
	ps := &ParticipantSession{ParticipantID: p.ID, TokenHash: hash, ExpiresAt: s.Now().Add(ParticipantSessionTTL)}
	if err := tx.Create(ps).Error; err != nil {
		return "", nil, err
	}
	return token, ps, nil
}

type CoachSession struct {
	ID        uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	CoachID   uuid.UUID
	TokenHash []byte
	ExpiresAt time.Time
	RevokedAt *time.Time
	CreatedAt time.Time
}

type ParticipantSession struct {
	ID            uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	ParticipantID uuid.UUID
	TokenHash     []byte
	ExpiresAt     time.Time
	RevokedAt     *time.Time
	CreatedAt     time.Time
	// ConsentDue, when set, is the consent_required error her portal
	// requests answer until she accepts the newest disclaimer.
	ConsentDue *models.Error `gorm:"-"`
}

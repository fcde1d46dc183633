package people

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
)

// Sign-in links: short-lived, since the email they travel in may be read by
// someone else later; a code is void after a few wrong guesses.
const (
	LoginLinkTTL         = 10 * time.Minute
	MaxLoginCodeAttempts = 5
)

var (
	errInvalidLoginToken = models.E(models.KindUnauthorized, "invalid_login_token", "This sign-in link is invalid, already used or expired. Request a new one.")
	errInvalidCode       = models.E(models.KindUnauthorized, "invalid_code", "The code is wrong or expired. Check the latest email or request a new one.")
)

// loginCodeHash binds the code to its link, so two links that happen to share
// a code do not share a hash, and a leaked table cannot be matched against
// one precomputed table of the million codes.
func loginCodeHash(linkID uuid.UUID, code string) []byte {
	h := sha256.New()
	h.Write(linkID[:])
	h.Write([]byte(code))
	return h.Sum(nil)
}

// sendLoginLink creates a sign-in link for p and enqueues its email inside
// tx; extra adds template data (program_title for a free-access claim).
//
// Only the newest code works: the codes of her earlier links are voided (as
// if guessed wrong too often), so exactly one 6-digit code is live for her,
// whatever the clock says about which link came first. Their link tokens
// keep working until they expire. Her row is locked first so concurrent
// requests issue links one after the other.
func (s *Service) sendLoginLink(tx *gorm.DB, p *Participant, extra map[string]any) error {
	if err := tx.Exec(`SELECT 1 FROM participants WHERE id = ? FOR UPDATE`, p.ID).Error; err != nil {
		return err
	}
	err := tx.Exec(`UPDATE login_links SET code_attempts = ? WHERE participant_id = ? AND used_at IS NULL AND code_attempts < ?`,
		MaxLoginCodeAttempts, p.ID, MaxLoginCodeAttempts).Error
	if err != nil {
		return err
	}
	token, tokenHash := models.NewToken()
	code := models.NewCode()
	link := LoginLink{
		ID:            uuid.New(),
		ParticipantID: p.ID,
		TokenHash:     tokenHash,
		ExpiresAt:     s.Now().Add(LoginLinkTTL),
	}
	link.CodeHash = loginCodeHash(link.ID, code)
	if err := tx.Create(&link).Error; err != nil {
		return models.MapDBError(err, "login link")
	}
	data := map[string]any{
		"name":            p.Name,
		"token":           token,
		"code":            code,
		"expires_minutes": int(LoginLinkTTL / time.Minute),
	}
	for k, v := range extra {
		data[k] = v
	}
	return s.EnqueueEmail(tx, models.TemplateLoginLink, p.Email, p.Name, "login_link:"+link.ID.String(), data)
}

// RequestLoginLink emails a sign-in link and code to a known participant. It
// answers nil for an unknown email too, so the endpoint never tells anyone
// whether a woman has an account.
func (s *Service) RequestLoginLink(ctx context.Context, email string, client models.ClientInfo) error {
	email = models.NormalizeEmail(email)
	var c models.Checker
	c.Email("email", email)
	if err := c.Err(); err != nil {
		return err
	}
	if err := s.Allow(ctx, "portal-link:ip:"+client.IP, s.Limits.PortalLinkPerIP); err != nil {
		return err
	}
	if err := s.Allow(ctx, "portal-link:email:"+email, s.Limits.PortalLinkPerKey); err != nil {
		return err
	}
	return s.InTx(ctx, func(tx *gorm.DB) error {
		var p Participant
		err := tx.Where("email = ?", email).Take(&p).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return s.sendLoginLink(tx, &p, nil)
	})
}

// ExchangeLoginToken signs her in with the token of a sign-in link. The link
// is spent by a guarded UPDATE, so of two concurrent exchanges exactly one
// wins. Only this call spends it: opening the link in a browser (or a mail
// scanner fetching it) does not.
func (s *Service) ExchangeLoginToken(ctx context.Context, token string, client models.ClientInfo) (string, *ParticipantSession, *Participant, error) {
	if err := s.Allow(ctx, "session:ip:"+client.IP, s.Limits.SessionPerIP); err != nil {
		return "", nil, nil, err
	}
	if token == "" {
		return "", nil, nil, errInvalidLoginToken
	}
	var (
		sessionToken string
		session      *ParticipantSession
		p            Participant
	)
	err := s.InTx(ctx, func(tx *gorm.DB) error {
		now := s.Now()
		var ids []uuid.UUID
		err := tx.Raw(`
			UPDATE login_links SET used_at = ?
			WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?
			RETURNING participant_id`, now, models.HashToken(token), now).Scan(&ids).Error
		if err != nil {
			return err
		}
		if len(ids) != 1 {
			return errInvalidLoginToken
		}
		if err := tx.Where("id = ?", ids[0]).Take(&p).Error; err != nil {
			return models.MapDBError(err, "participant")
		}
		sessionToken, session, err = s.newParticipantSession(tx, &p)
		return err
	})
	if err != nil {
		return "", nil, nil, err
	}
	return sessionToken, session, &p, nil
}

// ExchangeLoginCode signs her in with her email and the 6-digit code of her
// newest sign-in link (the only one whose code is live, see sendLoginLink).
// Attempts on a link are serialised by a row lock, so no burst of parallel
// guesses gets more than MaxLoginCodeAttempts tries; after that even the
// right code is refused.
func (s *Service) ExchangeLoginCode(ctx context.Context, email, code string, client models.ClientInfo) (string, *ParticipantSession, *Participant, error) {
	email = models.NormalizeEmail(email)
	var c models.Checker
	c.Email("email", email)
	if !isLoginCode(code) {
		c.Add("code", "must be 6 digits")
	}
	if err := c.Err(); err != nil {
		return "", nil, nil, err
	}
	if err := s.Allow(ctx, "session:ip:"+client.IP, s.Limits.SessionPerIP); err != nil {
		return "", nil, nil, err
	}
	var (
		sessionToken string
		session      *ParticipantSession
		p            Participant
		wrong        bool
	)
	err := s.InTx(ctx, func(tx *gorm.DB) error {
		now := s.Now()
		var link struct {
			ID            uuid.UUID
			ParticipantID uuid.UUID
			CodeHash      []byte
			CodeAttempts  int
		}
		err := tx.Raw(`
			SELECT l.id, l.participant_id, l.code_hash, l.code_attempts
			FROM login_links l JOIN participants p ON p.id = l.participant_id
			WHERE p.email = ? AND l.used_at IS NULL AND l.expires_at > ? AND l.code_attempts < ?
			ORDER BY l.created_at DESC, l.id DESC
			LIMIT 1
			FOR UPDATE OF l`, email, now, MaxLoginCodeAttempts).Take(&link).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return errInvalidCode
		}
		if err != nil {
			return err
		}
		if subtle.ConstantTimeCompare(loginCodeHash(link.ID, code), link.CodeHash) != 1 {
			// Committed although the answer is an error: the attempt must count.
			wrong = true
			return tx.Exec(`UPDATE login_links SET code_attempts = code_attempts + 1 WHERE id = ?`, link.ID).Error
		}
		if err := tx.Exec(`UPDATE login_links SET used_at = ? WHERE id = ?`, now, link.ID).Error; err != nil {
			return err
		}
		if err := tx.Where("id = ?", link.ParticipantID).Take(&p).Error; err != nil {
			return models.MapDBError(err, "participant")
		}
		sessionToken, session, err = s.newParticipantSession(tx, &p)
		return err
	})
	if err == nil && wrong {
		err = errInvalidCode
	}
	if err != nil {
		return "", nil, nil, err
	}
	return sessionToken, session, &p, nil
}

func isLoginCode(code string) bool {
	if len(code) != 6 {
		return false
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return false
		}
	}
	return true
}

// EndParticipantSession revokes a portal session (sign-out). Revoking a
// revoked session is a no-op.
func (s *Service) EndParticipantSession(ctx context.Context, sessionID uuid.UUID) error {
	return s.DB.WithContext(ctx).Exec(`UPDATE participant_sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`,
		s.Now(), sessionID).Error
}

// PortalProgram is a program she has access to, with her progress.
type PortalProgram struct {
	ID               uuid.UUID
	Slug             string
	Title            string
	Summary          string
	AccessStartsAt   time.Time
	LessonsTotal     int
	LessonsCompleted int
}

// ListPortalPrograms lists the programs she holds an unrevoked grant to,
// ordered by when her access started.
func (s *Service) ListPortalPrograms(ctx context.Context, p *Participant, page models.PageParams) (models.Page[PortalProgram], error) {
	after, err := page.Decode()
	if err != nil {
		return models.Page[PortalProgram]{}, err
	}
	limit := page.PageSize()
	args := []any{p.ID, p.ID}
	keyset := ""
	if after != nil {
		keyset = "AND (g.access_starts_at, pr.id) > (?, ?)"
		args = append(args, after.At, after.ID)
	}
	args = append(args, limit+1)
	var rows []PortalProgram
	err = s.DB.WithContext(ctx).Raw(`
		WITH g AS (
			SELECT program_id, min(starts_at) AS access_starts_at
			FROM access_grants
			WHERE participant_id = ? AND revoked_at IS NULL
			GROUP BY program_id
		)
		SELECT pr.id, pr.slug, pr.title, pr.summary, g.access_starts_at,
			(SELECT count(*) FROM lessons l WHERE l.program_id = pr.id AND l.published) AS lessons_total,
			(SELECT count(*) FROM lesson_completions lc JOIN lessons l ON l.id = lc.lesson_id
			 WHERE lc.participant_id = ? AND l.program_id = pr.id AND l.published) AS lessons_completed
		FROM g JOIN programs pr ON pr.id = g.program_id
		WHERE pr.status IN ('published', 'archived') `+keyset+`
		ORDER BY g.access_starts_at, pr.id
		LIMIT ?`, args...).Scan(&rows).Error
	if err != nil {
		return models.Page[PortalProgram]{}, err
	}
	for i := range rows {
		rows[i].AccessStartsAt = rows[i].AccessStartsAt.UTC()
	}
	return models.PageOf(rows, limit, func(r PortalProgram) models.Cursor { return models.Cursor{At: r.AccessStartsAt, ID: r.ID} }), nil
}

// PortalLessonSummary is one line of a program's lesson list in the portal.
type PortalLessonSummary struct {
	ID              uuid.UUID
	Title           string
	Position        int
	FreePreview     bool
	DurationSeconds *int
	Locked          bool
	// UnlockAt is nil when access does not depend on time: a free preview,
	// or a lesson she holds no grant for.
	UnlockAt  *time.Time
	Completed bool
}

// ListPortalLessons lists a program's published lessons with, for her, which
// are locked, when they unlock and which she has completed. She may list a
// program she holds no grant to only when it has a free preview to offer.
func (s *Service) ListPortalLessons(ctx context.Context, p *Participant, slug string, page models.PageParams) (models.Page[PortalLessonSummary], error) {
	after, err := page.Decode()
	if err != nil {
		return models.Page[PortalLessonSummary]{}, err
	}
	db := s.DB.WithContext(ctx)
	var prog struct {
		ID            uuid.UUID
		GrantStartsAt *time.Time
		HasPreview    bool
	}
	err = db.Raw(`
		SELECT pr.id,
			(SELECT min(ag.starts_at) FROM access_grants ag
			 WHERE ag.participant_id = ? AND ag.program_id = pr.id AND ag.revoked_at IS NULL) AS grant_starts_at,
			EXISTS (SELECT 1 FROM lessons l WHERE l.program_id = pr.id AND l.published AND l.free_preview) AS has_preview
		FROM programs pr
		WHERE pr.slug = ? AND pr.status <> 'draft'`, p.ID, slug).Take(&prog).Error
	if err != nil {
		return models.Page[PortalLessonSummary]{}, models.MapDBError(err, "program")
	}
	if prog.GrantStartsAt == nil && !prog.HasPreview {
		return models.Page[PortalLessonSummary]{}, errNoAccess
	}

	limit := page.PageSize()
	args := []any{p.ID, prog.ID}
	keyset := ""
	if after != nil {
		keyset = "AND (l.position, l.id) > (?, ?)"
		args = append(args, after.Pos, after.ID)
	}
	args = append(args, limit+1)
	var rows []struct {
		ID               uuid.UUID
		Title            string
		Position         int
		FreePreview      bool
		DurationSeconds  *int
		UnlockOffsetDays int
		Completed        bool
	}
	err = db.Raw(`
		SELECT l.id, l.title, l.position, l.free_preview, l.duration_seconds, l.unlock_offset_days,
			EXISTS (SELECT 1 FROM lesson_completions lc WHERE lc.participant_id = ? AND lc.lesson_id = l.id) AS completed
		FROM lessons l
		WHERE l.program_id = ? AND l.published `+keyset+`
		ORDER BY l.position, l.id
		LIMIT ?`, args...).Scan(&rows).Error
	if err != nil {
		return models.Page[PortalLessonSummary]{}, err
	}
	now := s.Now()
	out := make([]PortalLessonSummary, len(rows))
	for i, r := range rows {
		sum := PortalLessonSummary{ID: r.ID, Title: r.Title, Position: r.Position, FreePreview: r.FreePreview,
			DurationSeconds: r.DurationSeconds, Completed: r.Completed}
		switch {
		case r.FreePreview:
		case prog.GrantStartsAt == nil:
			sum.Locked = true
		default:
			at := UnlockAt(*prog.GrantStartsAt, r.UnlockOffsetDays, p.Timezone)
			sum.UnlockAt = &at
			sum.Locked = now.Before(at)
		}
		out[i] = sum
	}
	return models.PageOf(out, limit, func(r PortalLessonSummary) models.Cursor { return models.Cursor{Pos: r.Position, ID: r.ID} }), nil
}

type LoginLink struct {
	ID            uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	ParticipantID uuid.UUID
	TokenHash     []byte
	CodeHash      []byte
	CodeAttempts  int
	ExpiresAt     time.Time
	UsedAt        *time.Time
	CreatedAt     time.Time
}

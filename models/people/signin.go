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
// tx, deduplicated by dedupeKey (the task's); extra adds template data (program_title for a free-access claim).
//
// Only the newest code works: the codes of her earlier links are voided (as
// if guessed wrong too often), so exactly one 6-digit code is live for her,
// whatever the clock says about which link came first. Their link tokens
// keep working until they expire. Her row is locked first so concurrent
// requests issue links one after the other.
func (s *Service) sendLoginLink(tx *gorm.DB, p *Participant, dedupeKey string, extra map[string]any) error {
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
		"name":            p.GreetingName(),
		"token":           token,
		"code":            code,
		"expires_minutes": int(LoginLinkTTL / time.Minute),
	}
	for k, v := range extra {
		data[k] = v
	}
	return s.EnqueueEmail(tx, models.TemplateLoginLink, p.Email, p.GreetingName(), dedupeKey, data)
}

// RequestLoginLink asks for a sign-in link and code for an address. Every
// caller is answered alike, in the same time: the same checks and rate
// limits, then one task (TaskLoginLink); the worker emails a known
// participant and nobody else.
func (s *Service) RequestLoginLink(ctx context.Context, email string, client models.ClientInfo) error {
	email = models.NormalizeEmail(email)
	var c models.Checker
	c.Email("email", email)
	if err := c.Err(); err != nil {
		return err
	}
	if err := s.Allow(ctx, "portal-link:ip:"+models.ClientKey(client.IP), s.Limits.PortalLinkPerIP); err != nil {
		return err
	}
	if err := s.Allow(ctx, "portal-link:email:"+email, s.Limits.PortalLinkPerKey); err != nil {
		return err
	}
	return s.EnqueueTask(ctx, TaskLoginLink, emailTask{Email: email})
}

// TaskLoginLink is the task of a sign-in link request.
const TaskLoginLink = "people.login_link"

// emailTask is the payload of a task that needs only the address.
type emailTask struct {
	Email string `json:"email"`
}

// runLoginLink emails a sign-in link to a known participant; for an
// unknown address it does nothing.
func (s *Service) runLoginLink(ctx context.Context, tx *gorm.DB, t models.Task) error {
	var in emailTask
	if err := t.Decode(&in); err != nil {
		return err
	}
	var p Participant
	err := tx.Where("email = ?", in.Email).Take(&p).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return s.sendLoginLink(tx, &p, models.TaskDedupeKey(t, "login_link"), nil)
}

// ExchangeLoginToken signs her in with the token of a sign-in link. The link
// is spent by a guarded UPDATE, so of two concurrent exchanges exactly one
// wins. Only this call spends it: opening the link in a browser (or a mail
// scanner fetching it) does not.
func (s *Service) ExchangeLoginToken(ctx context.Context, token string, client models.ClientInfo) (string, *ParticipantSession, *Participant, error) {
	if err := s.Allow(ctx, "session:ip:"+models.ClientKey(client.IP), s.Limits.SessionPerIP); err != nil {
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
	if err := s.Allow(ctx, "session:ip:"+models.ClientKey(client.IP), s.Limits.SessionPerIP); err != nil {
		return "", nil, nil, err
	}
	// Failures are counted per address across all her links, known or not
	// (the same cost either way), and stop after the day's cap.
	failKey := "session:code-fail:" + email
	if err := s.CheckBackoff(ctx, s.Limits.LoginCodeFailuresPerEmail, failKey); err != nil {
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
	if errors.Is(err, errInvalidCode) {
		if ferr := s.FailedAttempt(ctx, s.Limits.LoginCodeFailuresPerEmail, failKey); ferr != nil {
			return "", nil, nil, ferr
		}
	}
	if err != nil {
		return "", nil, nil, err
	}
	if err := s.ForgetFailures(ctx, failKey); err != nil {
		s.Log.WarnContext(ctx, "sign-in code: clear backoff", "err", err)
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

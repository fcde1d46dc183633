package people

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/grace-coaching/grace/models"
)

// How a coach gets in: her password, her sessions, and the single-use
// links that set a password (invites and resets).

// Lifetimes of the single-use links emailed to coaches.
const (
	PasswordResetTTL = time.Hour
	InviteTTL        = 7 * 24 * time.Hour
)

// Password length bounds, in characters. The upper bound keeps a hash cheap
// enough that long inputs cannot be used to burn CPU.
const (
	MinPasswordLen = 10
	MaxPasswordLen = 128
)

func checkPassword(c *models.Checker, field, v string) {
	n := utf8.RuneCountInString(v)
	switch {
	case !utf8.ValidString(v):
		c.Add(field, "must be valid UTF-8")
	case n < MinPasswordLen:
		c.Add(field, fmt.Sprintf("must be at least %d characters", MinPasswordLen))
	case n > MaxPasswordLen:
		c.Add(field, fmt.Sprintf("must be at most %d characters", MaxPasswordLen))
	}
}

func (s *Service) newActionToken(tx *gorm.DB, coach *Coach, purpose TokenPurpose, ttl time.Duration) (string, *CoachActionToken, error) {
	token, hash := models.NewToken()
	now := s.Now()
	tok := &CoachActionToken{CoachID: coach.ID, Purpose: purpose, TokenHash: hash, ExpiresAt: now.Add(ttl), CreatedAt: now}
	if err := tx.Create(tok).Error; err != nil {
		return "", nil, fmt.Errorf("create %s token: %w", purpose, err)
	}
	return token, tok, nil
}

// Login exchanges a coach's email and password for a session token, from a
// device she has not signed in from (or that did not say so); see
// LoginFromDevice.
func (s *Service) Login(ctx context.Context, email, password string, client models.ClientInfo) (string, *CoachSession, *Coach, error) {
	res, err := s.LoginFromDevice(ctx, email, password, "", client)
	if err != nil {
		return "", nil, nil, err
	}
	return res.Token, res.Session, res.Coach, nil
}

// LoginFromDevice exchanges a coach's email and password for a session
// token. device is the credential a previous login returned for this
// browser (LoginResult.Device), or "". Every failure that involves the
// credentials is the same error after the same amount of hashing, so
// neither the answer nor its timing reveals whether the email has an
// account.
//
// A known device of hers (see loginKnownDevice) is let through the limits
// a flood exhausts; any other device meets them all, before any hash.
func (s *Service) LoginFromDevice(ctx context.Context, email, password, device string, client models.ClientInfo) (*LoginResult, error) {
	email = models.NormalizeEmail(email)
	if known, ok, err := s.knownDevice(ctx, device, email); err != nil {
		return nil, err
	} else if ok {
		return s.loginKnownDevice(ctx, email, password, known)
	}
	ipKey, netKey := "login:fail:ip:"+models.ClientKey(client.IP), "login:fail:net:"+models.Network(client.IP)
	// Everything that can refuse comes before the hash, cheapest first: a
	// flood must not buy argon2 time, and the shared budget is spent last,
	// so attempts another limit refuses leave it to the coaches.
	if err := s.Allow(ctx, "login:ip:"+models.ClientKey(client.IP), s.Limits.LoginPerIP); err != nil {
		return nil, err
	}
	if err := s.Allow(ctx, "login:net:"+models.Network(client.IP), s.Limits.LoginPerNetwork); err != nil {
		return nil, err
	}
	if err := s.CheckBackoff(ctx, s.Limits.LoginBackoffPerIP, ipKey); err != nil {
		return nil, err
	}
	if err := s.CheckBackoff(ctx, s.Limits.LoginBackoffPerNetwork, netKey); err != nil {
		return nil, err
	}
	if err := s.Allow(ctx, "login:email:"+email, s.Limits.LoginPerEmail); err != nil {
		return nil, err
	}
	if err := s.Spend(ctx, "login:hash-budget", s.Limits.PasswordHashes); err != nil {
		return nil, err
	}
	res, err := s.checkPasswordAndSignIn(ctx, email, password, uuid.Nil)
	if errors.Is(err, errInvalidCredentials) {
		// Known or not, a failure slows its address and network alike, so
		// the answer and its cost still say nothing about the email.
		if err := s.FailedAttempt(ctx, s.Limits.LoginBackoffPerIP, ipKey); err != nil {
			return nil, err
		}
		if err := s.FailedAttempt(ctx, s.Limits.LoginBackoffPerNetwork, netKey); err != nil {
			return nil, err
		}
	}
	if err != nil {
		return nil, err
	}
	// Her address is trusted again; its network keeps its count, since the
	// failures may be someone else's.
	if err := s.ForgetFailures(ctx, ipKey); err != nil {
		s.Log.WarnContext(ctx, "login: clear backoff", "err", err)
	}
	return res, nil
}

// checkPasswordAndSignIn costs exactly one hash, known email or not, and
// on a match opens a session and remembers the device (device, when it is
// one of hers already; else a new one).
func (s *Service) checkPasswordAndSignIn(ctx context.Context, email, password string, device uuid.UUID) (*LoginResult, error) {
	var coach Coach
	found := true
	if err := s.DB.WithContext(ctx).Where("email = ?", email).Take(&coach).Error; err != nil {
		if !errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, fmt.Errorf("find coach: %w", err)
		}
		found = false
	}
	hash := ""
	if found && coach.PasswordHash != nil {
		hash = *coach.PasswordHash
	}
	ok, err := s.hasher.Verify(ctx, password, hash)
	if err != nil {
		return nil, fmt.Errorf("verify password: %w", err)
	}
	if !ok || !found || !coach.Active || hash == "" {
		return nil, errInvalidCredentials
	}
	res := &LoginResult{Coach: &coach}
	err = s.InTx(ctx, func(tx *gorm.DB) error {
		// The hash was checked outside any lock. Re-check it under a share
		// lock, so a password reset or deactivation that commits meanwhile
		// wins: either it sees (and revokes) this session, or this login sees
		// the new state and fails.
		var ids []uuid.UUID
		if err := tx.Raw(`SELECT id FROM coaches WHERE id = ? AND active AND password_hash = ? FOR SHARE`,
			coach.ID, hash).Scan(&ids).Error; err != nil {
			return fmt.Errorf("recheck coach: %w", err)
		}
		if len(ids) == 0 {
			return errInvalidCredentials
		}
		var err error
		if res.Token, res.Session, err = s.newCoachSession(tx, &coach); err != nil {
			return err
		}
		res.Device, err = s.rememberDevice(tx, coach.ID, device)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.Log.InfoContext(ctx, "coach logged in", "coach_id", coach.ID, "known_device", device != uuid.Nil)
	return res, nil
}

// Logout revokes one session; other sessions of the coach stay valid.
func (s *Service) Logout(ctx context.Context, sessionID uuid.UUID) error {
	err := s.DB.WithContext(ctx).Exec(`UPDATE coach_sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, s.Now(), sessionID).Error
	if err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	return nil
}

// RequestPasswordReset asks for a reset link for an address. Every caller
// is answered alike, in the same time: the same checks and rate limits,
// then one task (TaskPasswordReset); the worker emails an active coach and
// nobody else.
func (s *Service) RequestPasswordReset(ctx context.Context, email string, client models.ClientInfo) error {
	email = models.NormalizeEmail(email)
	var v models.Checker
	v.Email("email", email)
	if err := v.Err(); err != nil {
		return err
	}
	if err := s.Allow(ctx, "reset:ip:"+models.ClientKey(client.IP), s.Limits.ResetPerIP); err != nil {
		return err
	}
	if err := s.Allow(ctx, "reset:email:"+email, s.Limits.ResetPerEmail); err != nil {
		return err
	}
	return s.EnqueueTask(ctx, TaskPasswordReset, emailTask{Email: email})
}

// TaskPasswordReset is the task of a password reset request.
const TaskPasswordReset = "people.password_reset"

// runPasswordReset emails an active coach a single-use reset link.
func (s *Service) runPasswordReset(ctx context.Context, tx *gorm.DB, t models.Task) error {
	var in emailTask
	if err := t.Decode(&in); err != nil {
		return err
	}
	var coach Coach
	err := tx.Where("email = ? AND active", in.Email).Take(&coach).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("find coach: %w", err)
	}
	token, _, err := s.newActionToken(tx, &coach, PurposePasswordReset, PasswordResetTTL)
	if err != nil {
		return err
	}
	err = s.EnqueueEmail(tx, models.TemplatePasswordReset, coach.Email, coach.Name, models.TaskDedupeKey(t, "password_reset"), map[string]any{
		"name":            coach.Name,
		"token":           token,
		"expires_minutes": int(PasswordResetTTL / time.Minute),
	})
	if err != nil {
		return err
	}
	s.Log.InfoContext(ctx, "password reset requested", "coach_id", coach.ID)
	return nil
}

// ConfirmPasswordToken sets a coach's password with a reset or invite token.
// The token works once; every other link she was sent stops working and
// every session she had is revoked, since whoever held them may not be her.
func (s *Service) ConfirmPasswordToken(ctx context.Context, token, password string) error {
	var v models.Checker
	checkPassword(&v, "password", password)
	if err := v.Err(); err != nil {
		return err
	}
	if token == "" {
		return errInvalidActionToken
	}
	hashed := models.HashToken(token)
	// A cheap look-up first, so a guessed token costs no argon2 time.
	var tok CoachActionToken
	err := s.DB.WithContext(ctx).
		Where("token_hash = ? AND used_at IS NULL AND expires_at > ?", hashed, s.Now()).
		Take(&tok).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return errInvalidActionToken
	}
	if err != nil {
		return fmt.Errorf("find action token: %w", err)
	}
	pwHash, err := s.hasher.Hash(ctx, password)
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	err = s.InTx(ctx, func(tx *gorm.DB) error {
		now := s.Now()
		// Lock the coach before the token, the order deactivation uses, so
		// the two cannot deadlock.
		var coach Coach
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("id = ? AND active", tok.CoachID).Take(&coach).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return errInvalidActionToken
			}
			return fmt.Errorf("lock coach: %w", err)
		}
		// The guard in the WHERE makes the token single use even when
		// confirms race: only one UPDATE can see used_at still NULL.
		res := tx.Exec(`UPDATE coach_action_tokens SET used_at = ? WHERE id = ? AND used_at IS NULL AND expires_at > ?`, now, tok.ID, now)
		if res.Error != nil {
			return fmt.Errorf("use action token: %w", res.Error)
		}
		if res.RowsAffected != 1 {
			return errInvalidActionToken
		}
		if err := tx.Exec(`UPDATE coaches SET password_hash = ?, updated_at = ? WHERE id = ?`, pwHash, now, coach.ID).Error; err != nil {
			return fmt.Errorf("set password: %w", err)
		}
		return s.revokeCoachCredentials(tx, coach.ID, now)
	})
	if err != nil {
		return err
	}
	s.Log.InfoContext(ctx, "coach password set", "coach_id", tok.CoachID, "purpose", tok.Purpose)
	return nil
}

// revokeCoachCredentials ends every session of a coach, forgets her devices
// and voids every link she was emailed and has not used.
func (s *Service) revokeCoachCredentials(tx *gorm.DB, coachID uuid.UUID, now time.Time) error {
	if err := tx.Exec(`UPDATE coach_sessions SET revoked_at = ? WHERE coach_id = ? AND revoked_at IS NULL`, now, coachID).Error; err != nil {
		return fmt.Errorf("revoke sessions: %w", err)
	}
	if err := tx.Exec(`UPDATE coach_action_tokens SET used_at = ? WHERE coach_id = ? AND used_at IS NULL`, now, coachID).Error; err != nil {
		return fmt.Errorf("void action tokens: %w", err)
	}
	// A known device skips the flood limits; after a reset it must earn
	// that again.
	if err := tx.Exec(`UPDATE coach_devices SET revoked_at = ? WHERE coach_id = ? AND revoked_at IS NULL`, now, coachID).Error; err != nil {
		return fmt.Errorf("revoke devices: %w", err)
	}
	return nil
}

// TokenPurpose is why a coach action token was minted. Either kind sets
// her password; the purpose decides its lifetime and the log says which.
type TokenPurpose string

const (
	PurposePasswordReset TokenPurpose = "password_reset"
	PurposeInvite        TokenPurpose = "invite"
)

type CoachActionToken struct {
	ID        uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	CoachID   uuid.UUID
	Purpose   TokenPurpose
	TokenHash []byte
	ExpiresAt time.Time
	UsedAt    *time.Time
	CreatedAt time.Time
}

package people

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/grace-coaching/grace/models"
)

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

var (
	// One error for every failed login, so a response never tells an
	// attacker which emails have accounts or which accounts are deactivated.
	errInvalidCredentials = models.E(models.KindUnauthorized, "invalid_credentials", "The email or password is incorrect.")
	errInvalidActionToken = models.E(models.KindInvalid, "invalid_token", "This link is invalid, has expired or has already been used. Request a new one.")
	errLastAdmin          = models.E(models.KindConflict, "last_admin", "Grace needs at least one active admin: make another coach an admin first.")
	ErrAdminOnly          = models.E(models.KindForbidden, "forbidden", "Only an admin may do this.")
)

func errEmailTaken(err error) error {
	return &models.Error{Kind: models.KindConflict, Code: "email_taken", Message: "Another coach already uses this email.", Err: err}
}

// CreateCoachInput is a coach created with a password already chosen: the
// first admin from the CLI, or the seed.
type CreateCoachInput struct {
	Email    string
	Name     string
	Role     Role
	Password string
}

// InviteCoachInput is a coach an admin invites; she picks her own password.
type InviteCoachInput struct {
	Email string
	Name  string
	Role  Role
}

// UpdateCoachInput changes an existing coach; unset fields stay as they are.
type UpdateCoachInput struct {
	Name   models.Optional[string]
	Role   models.Optional[Role]
	Active models.Optional[bool]
}

func checkRole(c *models.Checker, field string, r Role) {
	if r != RoleAdmin && r != RoleCoach {
		c.Add(field, "must be one of: admin, coach")
	}
}

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

func RequireAdmin(actor *Coach) error {
	if actor == nil || actor.Role != RoleAdmin || !actor.Active {
		return ErrAdminOnly
	}
	return nil
}

// CreateCoach creates an active coach with a password.
func (s *Service) CreateCoach(ctx context.Context, in CreateCoachInput) (*Coach, error) {
	email, name := models.NormalizeEmail(in.Email), strings.TrimSpace(in.Name)
	var v models.Checker
	v.Email("email", email)
	v.Text("name", name, 1, 200)
	checkRole(&v, "role", in.Role)
	checkPassword(&v, "password", in.Password)
	if err := v.Err(); err != nil {
		return nil, err
	}
	hash, err := s.hasher.Hash(ctx, in.Password)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	now := s.Now()
	coach := &Coach{Email: email, Name: name, Role: in.Role, PasswordHash: &hash, Active: true, CreatedAt: now, UpdatedAt: now}
	if err := s.DB.WithContext(ctx).Create(coach).Error; err != nil {
		if models.IsUniqueViolation(err, "coaches_email_key") {
			return nil, errEmailTaken(err)
		}
		return nil, models.MapDBError(err, "coach")
	}
	return coach, nil
}

// InviteCoach creates a coach without a password and emails her a link to
// choose one. The coach, the link and the email commit together or not at all.
func (s *Service) InviteCoach(ctx context.Context, inviter *Coach, in InviteCoachInput) (*Coach, error) {
	if err := RequireAdmin(inviter); err != nil {
		return nil, err
	}
	email, name := models.NormalizeEmail(in.Email), strings.TrimSpace(in.Name)
	var v models.Checker
	v.Email("email", email)
	v.Text("name", name, 1, 200)
	checkRole(&v, "role", in.Role)
	if err := v.Err(); err != nil {
		return nil, err
	}
	now := s.Now()
	coach := &Coach{Email: email, Name: name, Role: in.Role, Active: true, CreatedAt: now, UpdatedAt: now}
	err := s.InTx(ctx, func(tx *gorm.DB) error {
		if err := tx.Create(coach).Error; err != nil {
			if models.IsUniqueViolation(err, "coaches_email_key") {
				return errEmailTaken(err)
			}
			return models.MapDBError(err, "coach")
		}
		token, tok, err := s.newActionToken(tx, coach, PurposeInvite, InviteTTL)
		if err != nil {
			return err
		}
		return s.EnqueueEmail(tx, models.TemplateCoachInvite, coach.Email, coach.Name, "coach_invite:"+tok.ID.String(), map[string]any{
			"name":          coach.Name,
			"inviter_name":  inviter.Name,
			"token":         token,
			"expires_hours": int(InviteTTL / time.Hour),
		})
	})
	if err != nil {
		return nil, err
	}
	s.Log.InfoContext(ctx, "coach invited", "coach_id", coach.ID, "inviter_id", inviter.ID)
	return coach, nil
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

// Login exchanges a coach's email and password for a session token. Every
// failure that involves the credentials is the same error after the same
// amount of hashing, so neither the answer nor its timing reveals whether the
// email has an account.
func (s *Service) Login(ctx context.Context, email, password string, client models.ClientInfo) (string, *CoachSession, *Coach, error) {
	email = models.NormalizeEmail(email)
	// Limits come before the hash: a flood must not buy argon2 time.
	if err := s.Allow(ctx, "login:ip:"+client.IP, s.Limits.LoginPerIP); err != nil {
		return "", nil, nil, err
	}
	if err := s.Allow(ctx, "login:email:"+email, s.Limits.LoginPerEmail); err != nil {
		return "", nil, nil, err
	}
	var coach Coach
	found := true
	if err := s.DB.WithContext(ctx).Where("email = ?", email).Take(&coach).Error; err != nil {
		if !errors.Is(err, gorm.ErrRecordNotFound) {
			return "", nil, nil, fmt.Errorf("find coach: %w", err)
		}
		found = false
	}
	hash := ""
	if found && coach.PasswordHash != nil {
		hash = *coach.PasswordHash
	}
	ok, err := s.hasher.Verify(ctx, password, hash)
	if err != nil {
		return "", nil, nil, fmt.Errorf("verify password: %w", err)
	}
	if !ok || !found || !coach.Active || hash == "" {
		return "", nil, nil, errInvalidCredentials
	}
	var token string
	var session *CoachSession
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
		token, session, err = s.newCoachSession(tx, &coach)
		return err
	})
	if err != nil {
		return "", nil, nil, err
	}
	s.Log.InfoContext(ctx, "coach logged in", "coach_id", coach.ID)
	return token, session, &coach, nil
}

// Logout revokes one session; other sessions of the coach stay valid.
func (s *Service) Logout(ctx context.Context, sessionID uuid.UUID) error {
	err := s.DB.WithContext(ctx).Exec(`UPDATE coach_sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, s.Now(), sessionID).Error
	if err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	return nil
}

// RequestPasswordReset emails an active coach a single-use reset link. It
// answers the same for every email, registered or not.
func (s *Service) RequestPasswordReset(ctx context.Context, email string, client models.ClientInfo) error {
	email = models.NormalizeEmail(email)
	var v models.Checker
	v.Email("email", email)
	if err := v.Err(); err != nil {
		return err
	}
	if err := s.Allow(ctx, "reset:ip:"+client.IP, s.Limits.ResetPerIP); err != nil {
		return err
	}
	if err := s.Allow(ctx, "reset:email:"+email, s.Limits.ResetPerEmail); err != nil {
		return err
	}
	var coach Coach
	err := s.DB.WithContext(ctx).Where("email = ? AND active", email).Take(&coach).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("find coach: %w", err)
	}
	err = s.InTx(ctx, func(tx *gorm.DB) error {
		token, tok, err := s.newActionToken(tx, &coach, PurposePasswordReset, PasswordResetTTL)
		if err != nil {
			return err
		}
		return s.EnqueueEmail(tx, models.TemplatePasswordReset, coach.Email, coach.Name, "password_reset:"+tok.ID.String(), map[string]any{
			"name":            coach.Name,
			"token":           token,
			"expires_minutes": int(PasswordResetTTL / time.Minute),
		})
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

// revokeCoachCredentials ends every session of a coach and voids every link
// she was emailed and has not used.
func (s *Service) revokeCoachCredentials(tx *gorm.DB, coachID uuid.UUID, now time.Time) error {
	if err := tx.Exec(`UPDATE coach_sessions SET revoked_at = ? WHERE coach_id = ? AND revoked_at IS NULL`, now, coachID).Error; err != nil {
		return fmt.Errorf("revoke sessions: %w", err)
	}
	if err := tx.Exec(`UPDATE coach_action_tokens SET used_at = ? WHERE coach_id = ? AND used_at IS NULL`, now, coachID).Error; err != nil {
		return fmt.Errorf("void action tokens: %w", err)
	}
	return nil
}

// ListCoaches lists every coach, active or not, oldest first.
func (s *Service) ListCoaches(ctx context.Context, p models.PageParams) (models.Page[Coach], error) {
	cur, err := p.Decode()
	if err != nil {
		return models.Page[Coach]{}, err
	}
	limit := p.PageSize()
	q := s.DB.WithContext(ctx).Order("created_at, id").Limit(limit + 1)
	if cur != nil {
		q = q.Where("(created_at, id) > (?, ?)", cur.At, cur.ID)
	}
	var rows []Coach
	if err := q.Find(&rows).Error; err != nil {
		return models.Page[Coach]{}, fmt.Errorf("list coaches: %w", err)
	}
	return models.PageOf(rows, limit, func(c Coach) models.Cursor { return models.Cursor{At: c.CreatedAt, ID: c.ID} }), nil
}

// UpdateCoach changes a coach's name, role or active flag. Deactivating her
// ends her sessions and voids her links. Grace always keeps one active admin.
func (s *Service) UpdateCoach(ctx context.Context, actor *Coach, id uuid.UUID, in UpdateCoachInput) (*Coach, error) {
	if err := RequireAdmin(actor); err != nil {
		return nil, err
	}
	var v models.Checker
	if in.Name.Set {
		if in.Name.Null {
			v.Add("name", "must not be null")
		} else {
			in.Name.Value = strings.TrimSpace(in.Name.Value)
			v.Text("name", in.Name.Value, 1, 200)
		}
	}
	if in.Role.Set {
		if in.Role.Null {
			v.Add("role", "must not be null")
		} else {
			checkRole(&v, "role", in.Role.Value)
		}
	}
	if in.Active.Set && in.Active.Null {
		v.Add("active", "must not be null")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	var coach *Coach
	err := s.InTx(ctx, func(tx *gorm.DB) error {
		var err error
		coach, err = s.changeCoach(tx, actor, id, in)
		return err
	})
	if err != nil {
		return nil, err
	}
	return coach, nil
}

// DeactivateCoach deactivates a coach and revokes everything that lets her in.
// Deactivating an inactive coach succeeds and changes nothing more.
func (s *Service) DeactivateCoach(ctx context.Context, actor *Coach, id uuid.UUID) error {
	if err := RequireAdmin(actor); err != nil {
		return err
	}
	return s.InTx(ctx, func(tx *gorm.DB) error {
		_, err := s.changeCoach(tx, actor, id, UpdateCoachInput{Active: models.Some(false)})
		return err
	})
}

// changeCoach applies a validated update by actor inside tx.
func (s *Service) changeCoach(tx *gorm.DB, actor *Coach, id uuid.UUID, in UpdateCoachInput) (*Coach, error) {
	now := s.Now()
	// Lock every active admin, in one order, before looking at the target:
	// two admins demoting each other at once then queue here, and the
	// second sees that she would remove the last admin, or that she is no
	// longer an admin herself.
	var admins []uuid.UUID
	if err := tx.Raw(`SELECT id FROM coaches WHERE role = 'admin' AND active ORDER BY id FOR UPDATE`).Scan(&admins).Error; err != nil {
		return nil, fmt.Errorf("lock admins: %w", err)
	}
	if !slices.Contains(admins, actor.ID) {
		return nil, ErrAdminOnly
	}
	var coach Coach
	if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("id = ?", id).Take(&coach).Error; err != nil {
		return nil, models.MapDBError(err, "coach")
	}
	wasActive, wasAdmin := coach.Active, coach.Active && coach.Role == RoleAdmin
	// Every column is written, set or not: the row is locked, so the
	// unset ones are written back as they are.
	changes := map[string]any{"name": coach.Name, "role": coach.Role, "active": coach.Active}
	models.Apply(changes, "name", &coach.Name, in.Name)
	models.Apply(changes, "role", &coach.Role, in.Role)
	models.Apply(changes, "active", &coach.Active, in.Active)
	if wasAdmin && !(coach.Active && coach.Role == RoleAdmin) && len(admins) <= 1 {
		return nil, errLastAdmin
	}
	coach.UpdatedAt = now
	changes["updated_at"] = now
	if err := tx.Model(&Coach{}).Where("id = ?", coach.ID).Updates(changes).Error; err != nil {
		return nil, models.MapDBError(err, "coach")
	}
	if !coach.Active {
		// Also when she was already inactive: whatever slipped in is revoked,
		// which keeps DELETE idempotent and safe to retry.
		if err := s.revokeCoachCredentials(tx, coach.ID, now); err != nil {
			return nil, err
		}
	}
	if wasActive && !coach.Active {
		s.Log.InfoContext(tx.Statement.Context, "coach deactivated", "coach_id", coach.ID)
	}
	return &coach, nil
}

// Role of a coach account.
type Role string

type Coach struct {
	ID           uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	Email        string
	Name         string
	Role         Role
	PasswordHash *string
	Active       bool
	CreatedAt    time.Time
	UpdatedAt    time.Time
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

const (
	RoleAdmin Role = "admin"
	RoleCoach Role = "coach"
)

// isAdmin reports whether the actor manages every cohort, not only her own.
func IsAdmin(actor *Coach) bool { return actor != nil && actor.Role == RoleAdmin }

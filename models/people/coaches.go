package people

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/grace-coaching/grace/models"
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

const (
	RoleAdmin Role = "admin"
	RoleCoach Role = "coach"
)

// isAdmin reports whether the actor manages every cohort, not only her own.
func IsAdmin(actor *Coach) bool { return actor != nil && actor.Role == RoleAdmin }

// IsAdmin makes a coach the catalogue's Actor.
func (c *Coach) IsAdmin() bool { return IsAdmin(c) }

// ScopeManaged limits q to what actor manages: everything for an admin,
// else the rows cond (SQL with one ? for her id) admits. Whatever lies
// outside is simply not found, never forbidden. A nil actor is no coach.
func ScopeManaged(q *gorm.DB, actor *Coach, cond string) *gorm.DB {
	if IsAdmin(actor) {
		return q
	}
	var id uuid.UUID
	if actor != nil {
		id = actor.ID
	}
	return q.Where(cond, id)
}

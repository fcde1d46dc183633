package people

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
)

// Known devices: a coach's browser that signed in before carries a signed
// device id (the API keeps it in the grace_device cookie). A correct
// password from it still works while a flood has backed off her address or
// network or spent the shared hash budget: it has limits of its own, which
// failures from unknown devices never touch. Devices are rows, so they can
// be revoked; the signature lets a forged one be refused without a query.

// DeviceTTL is how long a device stays known without signing in again.
const DeviceTTL = 365 * 24 * time.Hour

// CoachDevice is a device a coach signed in from.
type CoachDevice struct {
	ID         uuid.UUID `gorm:"type:uuid;primaryKey"`
	CoachID    uuid.UUID
	CreatedAt  time.Time
	LastUsedAt time.Time
	ExpiresAt  time.Time
	RevokedAt  *time.Time
}

// LoginResult is a successful coach login: her session token and the
// signed device credential to keep for the next login.
type LoginResult struct {
	Token   string
	Session *CoachSession
	Coach   *Coach
	Device  string
}

const deviceVersion = "v1"

func (s *Service) deviceMAC(id uuid.UUID) []byte {
	m := hmac.New(sha256.New, s.deviceKey)
	m.Write([]byte("grace_device:" + deviceVersion + ":"))
	m.Write(id[:])
	return m.Sum(nil)
}

// signDevice is the credential naming device id: version, id and MAC.
func (s *Service) signDevice(id uuid.UUID) string {
	enc := base64.RawURLEncoding
	return deviceVersion + "." + enc.EncodeToString(id[:]) + "." + enc.EncodeToString(s.deviceMAC(id))
}

// deviceID returns the id a credential names, if its signature is ours.
func (s *Service) deviceID(credential string) (uuid.UUID, bool) {
	if credential == "" || len(credential) > 200 {
		return uuid.Nil, false
	}
	parts := strings.Split(credential, ".")
	if len(parts) != 3 || parts[0] != deviceVersion {
		return uuid.Nil, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || len(raw) != 16 {
		return uuid.Nil, false
	}
	mac, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return uuid.Nil, false
	}
	id := uuid.UUID(raw)
	if !hmac.Equal(mac, s.deviceMAC(id)) {
		return uuid.Nil, false
	}
	return id, true
}

// knownDevice is the device the credential names when it is a live device
// of the coach with this email; anything else (forged, revoked, expired,
// another coach's) is an unknown device.
func (s *Service) knownDevice(ctx context.Context, credential, email string) (uuid.UUID, bool, error) {
	id, ok := s.deviceID(credential)
	if !ok {
		return uuid.Nil, false, nil
	}
	var ids []uuid.UUID
	err := s.DB.WithContext(ctx).Raw(`
		SELECT d.id FROM coach_devices d JOIN coaches c ON c.id = d.coach_id
		WHERE d.id = ? AND d.revoked_at IS NULL AND d.expires_at > ? AND c.email = ? AND c.active`,
		id, s.Now(), email).Scan(&ids).Error
	if err != nil {
		return uuid.Nil, false, fmt.Errorf("known device: %w", err)
	}
	return id, len(ids) == 1, nil
}

// rememberDevice records, inside the login's transaction, the device she
// signed in from: a known one is refreshed, any other becomes a new one.
func (s *Service) rememberDevice(tx *gorm.DB, coachID, known uuid.UUID) (string, error) {
	now := s.Now()
	if known != uuid.Nil {
		res := tx.Exec(`UPDATE coach_devices SET last_used_at = ?, expires_at = ? WHERE id = ? AND coach_id = ? AND revoked_at IS NULL`,
			now, now.Add(DeviceTTL), known, coachID)
		if res.Error != nil {
			return "", fmt.Errorf("refresh device: %w", res.Error)
		}
		if res.RowsAffected == 1 {
			return s.signDevice(known), nil
		}
	}
	d := CoachDevice{ID: uuid.New(), CoachID: coachID, CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(DeviceTTL)}
	if err := tx.Create(&d).Error; err != nil {
		return "", fmt.Errorf("remember device: %w", err)
	}
	return s.signDevice(d.ID), nil
}

// loginKnownDevice is a login from one of her known devices: none of the
// per-address, per-network or shared limits a flood exhausts apply, only
// the device's own backoff and the known devices' own hash budget.
func (s *Service) loginKnownDevice(ctx context.Context, email, password string, device uuid.UUID) (*LoginResult, error) {
	failKey := "login:device-fail:" + device.String()
	if err := s.CheckBackoff(ctx, s.Limits.KnownDeviceLogins, failKey); err != nil {
		return nil, err
	}
	if err := s.Spend(ctx, "login:hash-budget:known-devices", s.Limits.KnownDeviceHashes); err != nil {
		return nil, err
	}
	res, err := s.checkPasswordAndSignIn(ctx, email, password, device)
	if errors.Is(err, errInvalidCredentials) {
		if ferr := s.FailedAttempt(ctx, s.Limits.KnownDeviceLogins, failKey); ferr != nil {
			return nil, ferr
		}
	}
	if err != nil {
		return nil, err
	}
	if err := s.ForgetFailures(ctx, failKey); err != nil {
		s.Log.WarnContext(ctx, "login: clear device backoff", "err", err)
	}
	return res, nil
}

// RevokeAllCoachSessions is "sign out everywhere" for a coach: every
// session of hers, the caller's too, and every device she signed in from.
// Revoking again changes nothing.
func (s *Service) RevokeAllCoachSessions(ctx context.Context, coachID uuid.UUID) error {
	return s.InTx(ctx, func(tx *gorm.DB) error {
		now := s.Now()
		if err := tx.Exec(`UPDATE coach_sessions SET revoked_at = ? WHERE coach_id = ? AND revoked_at IS NULL`, now, coachID).Error; err != nil {
			return fmt.Errorf("revoke sessions: %w", err)
		}
		if err := tx.Exec(`UPDATE coach_devices SET revoked_at = ? WHERE coach_id = ? AND revoked_at IS NULL`, now, coachID).Error; err != nil {
			return fmt.Errorf("revoke devices: %w", err)
		}
		return nil
	})
}

// RevokeAllParticipantSessions is "sign out everywhere" for her: every
// portal session, the caller's too, and every sign-in link not yet used, so
// an email someone else reads later cannot sign them in. Idempotent.
func (s *Service) RevokeAllParticipantSessions(ctx context.Context, participantID uuid.UUID) error {
	return s.InTx(ctx, func(tx *gorm.DB) error {
		now := s.Now()
		if err := tx.Exec(`UPDATE participant_sessions SET revoked_at = ? WHERE participant_id = ? AND revoked_at IS NULL`, now, participantID).Error; err != nil {
			return fmt.Errorf("revoke sessions: %w", err)
		}
		if err := tx.Exec(`UPDATE login_links SET used_at = ? WHERE participant_id = ? AND used_at IS NULL`, now, participantID).Error; err != nil {
			return fmt.Errorf("void sign-in links: %w", err)
		}
		return nil
	})
}

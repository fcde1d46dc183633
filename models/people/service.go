// Package people is who uses Grace: coach accounts and their sessions,
// participants, their sign-in links and portal, and the gate that decides
// which lessons she may read.
package people

import (
	"context"
	"crypto/rand"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
)

// Service runs the rules about coaches and participants. Handlers call
// exactly one of its methods.
type Service struct {
	*models.Kernel
	hasher     *models.PasswordHasher
	drip       ParticipantHooks
	confirmURL func(token string) string
	deviceKey  []byte
	crisis     CrisisSource
}

// CrisisSource serves the crisis resources every portal answer carries,
// from memory (catalog.Service).
type CrisisSource interface {
	CrisisResources(ctx context.Context) *catalog.CrisisResources
}

// ParticipantHooks hear of what changes a participant's email schedule,
// inside the transaction that changes it. The drip engine implements them.
type ParticipantHooks interface {
	OnFreeAccessClaimed(tx *gorm.DB, participantID, programID uuid.UUID) error
	OnParticipantTimezoneSet(tx *gorm.DB, participantID uuid.UUID) error
}

// Deps are what the people service needs besides the kernel.
type Deps struct {
	// Hasher hashes passwords; nil is one hash per CPU.
	Hasher *models.PasswordHasher
	Hooks  ParticipantHooks
	// ConsentConfirmURL builds the link of a marketing opt-in confirmation
	// from its token (api.ConsentConfirmURL); the domain knows no routes.
	ConsentConfirmURL func(token string) string
	// DeviceKey signs coaches' known-device cookies (HMAC-SHA256), at least
	// 32 bytes; nil derives a random one, so devices are forgotten when the
	// process restarts.
	DeviceKey []byte
	// Crisis serves the crisis resources (catalog.Service).
	Crisis CrisisSource
}

// New builds the people service.
func New(k *models.Kernel, d Deps) *Service {
	if d.Hasher == nil {
		d.Hasher = models.NewPasswordHasher(0)
	}
	key := d.DeviceKey
	if len(key) == 0 {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			panic("people: no randomness for the device key: " + err.Error())
		}
	}
	s := &Service{Kernel: k, hasher: d.Hasher, drip: d.Hooks, confirmURL: d.ConsentConfirmURL, deviceKey: key, crisis: d.Crisis}
	k.RegisterTask(TaskLoginLink, s.runLoginLink)
	k.RegisterTask(TaskFreeAccess, s.runFreeAccess)
	k.RegisterTask(TaskPasswordReset, s.runPasswordReset)
	return s
}

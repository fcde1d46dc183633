// Package people is who uses Grace: coach accounts and their sessions,
// participants, their sign-in links and portal, and the gate that decides
// which lessons she may read.
package people

import (
	"context"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
)

// Service runs the rules about coaches and participants. Handlers call
// exactly one of its methods.
type Service struct {
	*models.Kernel
	hasher *models.PasswordHasher
	drip   ParticipantHooks
	crisis CrisisSource
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

// New builds the people service; a nil hasher is one hash per CPU.
func New(k *models.Kernel, hasher *models.PasswordHasher, hooks ParticipantHooks, crisis CrisisSource) *Service {
	if hasher == nil {
		hasher = models.NewPasswordHasher(0)
	}
	return &Service{Kernel: k, hasher: hasher, drip: hooks, crisis: crisis}
}

// Package enroll is how a woman takes a place in a cohort: cohorts and
// their live sessions, checkout and seat holds, the enrollment state
// machine fed by payment events, the sweeper, the waitlist and her
// calendar.
package enroll

import (
	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/people"
)

// Service runs the enrollment rules. Handlers call exactly one of its
// methods.
type Service struct {
	*models.Kernel
	people *people.Service
	drip   EnrollmentHooks
	// payments is nil when no provider is configured: paid checkout then
	// answers payments_unavailable.
	payments PaymentGateway
	// baseURL is the portal's public URL, for links handed to the provider.
	baseURL string
}

// EnrollmentHooks hear of the changes that move a woman's email schedule,
// inside the transaction that makes them. The drip engine implements them.
type EnrollmentHooks interface {
	OnEnrollmentStatusChange(tx *gorm.DB, e *Enrollment, prev EnrollmentStatus) error
	OnCohortUpdated(tx *gorm.DB, prev, cur *Cohort) error
	OnLiveSessionCreated(tx *gorm.DB, l *LiveSession) error
	OnLiveSessionMoved(tx *gorm.DB, l *LiveSession) error
	OnLiveSessionDeleting(tx *gorm.DB, id uuid.UUID) error
}

// Deps are what enrollment needs beside the kernel.
type Deps struct {
	People *people.Service
	Hooks  EnrollmentHooks
	// Payments is the payment provider; nil runs without paid checkout.
	Payments PaymentGateway
	// AppBaseURL is the portal's public URL (checkout return links).
	AppBaseURL string
}

// New builds the enrollment service and registers its tasks with k.
func New(k *models.Kernel, d Deps) *Service {
	s := &Service{Kernel: k, people: d.People, drip: d.Hooks, payments: d.Payments, baseURL: d.AppBaseURL}
	k.RegisterTask(TaskCheckout, s.runCheckout)
	k.RegisterTask(TaskWaitlist, s.runWaitlist)
	return s
}

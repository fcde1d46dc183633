// Package domain wires the domain services together: the one place that
// knows every room and which hooks run into which. cmd/grace, the API
// tests and the bench build the domain through it.
package domain

import (
	"log/slog"

	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/drip"
	"github.com/grace-coaching/grace/models/enroll"
	"github.com/grace-coaching/grace/models/journal"
	"github.com/grace-coaching/grace/models/people"
	"github.com/grace-coaching/grace/models/privacy"
)

// Services are the domain, one service per room over one kernel.
type Services struct {
	Kernel  *models.Kernel
	Catalog *catalog.Service
	People  *people.Service
	Enroll  *enroll.Service
	Drip    *drip.Service
	Journal *journal.Service
	Privacy *privacy.Service
}

// Deps are what the domain needs from the outside world.
type Deps struct {
	DB     *gorm.DB
	Clock  models.Clock
	Log    *slog.Logger
	Hasher *models.PasswordHasher
	Limits *models.Limits // nil: DefaultLimits
	// Payments is the payment provider; nil runs without paid checkout.
	Payments enroll.PaymentGateway
	// AppBaseURL is the portal's public URL (checkout return links).
	AppBaseURL string
	// DripRenderer renders drip email steps; emails/drip provides it.
	DripRenderer drip.Renderer
	// UnsubscribeURL builds her one-click unsubscribe link from her token
	// (api.UnsubscribeURL); the domain does not know the API's routes.
	UnsubscribeURL func(token string) string
	// UnsubscribeMailbox is the address of the mailto: List-Unsubscribe
	// form, e.g. "unsubscribe@example.com"; "" leaves it out.
	UnsubscribeMailbox string
	// Reflections is the master keyring reflections are encrypted under;
	// nil leaves reflections unavailable (nothing is stored in the clear).
	Reflections *journal.Keyring
	// ConsentConfirmURL builds the link that confirms a marketing opt-in
	// from its token (api.ConsentConfirmURL).
	ConsentConfirmURL func(token string) string
	// DeviceKey signs coaches' known-device cookies; nil derives a random
	// one per process (dev and tests).
	DeviceKey []byte
	// Retention is how long data kept for a while is kept; zero fields
	// take privacy.DefaultRetention's.
	Retention privacy.Retention
}

// New builds every service. The drip engine is built first: the others
// call its hooks inside their transactions.
func New(d Deps) *Services {
	k := models.NewKernel(d.DB, d.Clock, d.Log, d.Limits)
	dr := drip.New(k, drip.Deps{Renderer: d.DripRenderer, AppBaseURL: d.AppBaseURL, UnsubscribeURL: d.UnsubscribeURL,
		UnsubscribeMailbox: d.UnsubscribeMailbox})
	cat := catalog.New(k, dr)
	p := people.New(k, people.Deps{Hasher: d.Hasher, Hooks: dr, ConsentConfirmURL: d.ConsentConfirmURL, DeviceKey: d.DeviceKey, Crisis: cat})
	en := enroll.New(k, enroll.Deps{People: p, Hooks: dr, Payments: d.Payments, AppBaseURL: d.AppBaseURL})
	jn := journal.New(k, p, d.Reflections)
	return &Services{
		Kernel:  k,
		Catalog: cat,
		People:  p,
		Enroll:  en,
		Drip:    dr,
		Journal: jn,
		// Her data rights: each room erases its own share. Drip and enroll
		// find her rows by her address and deliveries, so they go before
		// people and the kernel remove those.
		Privacy: privacy.New(k, privacy.Deps{People: p, Enroll: en,
			Parts: []privacy.Part{dr, en, jn, p, k}, Providers: []privacy.Provider{en}, Retention: d.Retention}),
	}
}

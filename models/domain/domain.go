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
	p := people.New(k, d.Hasher, dr)
	en := enroll.New(k, enroll.Deps{People: p, Hooks: dr, Payments: d.Payments, AppBaseURL: d.AppBaseURL})
	return &Services{
		Kernel:  k,
		Catalog: catalog.New(k, dr),
		People:  p,
		Enroll:  en,
		Drip:    dr,
		// Her data rights: each room erases its own share. Drip and enroll
		// find her rows by her address and deliveries, so they go before
		// people and the kernel remove those.
		Privacy: privacy.New(k, privacy.Deps{People: p, Enroll: en,
			Parts: []privacy.Part{dr, en, p, k}, Providers: []privacy.Provider{en}, Retention: d.Retention}),
	}
}

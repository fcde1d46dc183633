package models

import (
	"log/slog"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Service is the domain: every rule about coaches, programs, access and
// email lives behind its methods. Handlers call exactly one of them.
type Service struct {
	db     *gorm.DB
	clock  Clock
	log    *slog.Logger
	hasher *PasswordHasher
	limits Limits
	pages  *programPageCache

	// payments is nil when no provider is configured: paid checkout then
	// answers payments_unavailable.
	payments PaymentGateway
	// baseURL is the portal's public URL, for links handed to the provider.
	baseURL string

	// renderer renders drip steps (previews, test sends, batches); nil in
	// code paths that never render.
	renderer DripRenderer
	// apiBaseURL is this API's public URL, for one-click unsubscribe links.
	apiBaseURL string
	// unsubscribeMailbox receives mailto: unsubscribes ("" leaves the
	// mailto form out of List-Unsubscribe).
	unsubscribeMailbox string
}

// Limits are the rate limits; tests shrink windows through the clock, not these.
type Limits struct {
	LoginPerIP       RateLimit
	LoginPerEmail    RateLimit
	ResetPerIP       RateLimit
	ResetPerEmail    RateLimit
	PortalLinkPerIP  RateLimit
	PortalLinkPerKey RateLimit // per email
	SessionPerIP     RateLimit // code and token exchanges
	// CheckoutPerIP caps seat holds and waitlist joins from one address:
	// holding seats is how a script could block a cohort.
	CheckoutPerIP RateLimit
}

// DefaultLimits are generous for people and tight for scripts.
func DefaultLimits() Limits {
	return Limits{
		LoginPerIP:       RateLimit{Max: 20, Window: 15 * time.Minute},
		LoginPerEmail:    RateLimit{Max: 5, Window: 15 * time.Minute},
		ResetPerIP:       RateLimit{Max: 10, Window: time.Hour},
		ResetPerEmail:    RateLimit{Max: 3, Window: time.Hour},
		PortalLinkPerIP:  RateLimit{Max: 20, Window: 15 * time.Minute},
		PortalLinkPerKey: RateLimit{Max: 5, Window: 15 * time.Minute},
		SessionPerIP:     RateLimit{Max: 30, Window: 15 * time.Minute},
		CheckoutPerIP:    RateLimit{Max: 20, Window: 15 * time.Minute},
	}
}

// Deps are what the domain needs from the outside world.
type Deps struct {
	DB     *gorm.DB
	Clock  Clock
	Log    *slog.Logger
	Hasher *PasswordHasher
	Limits *Limits // nil: DefaultLimits
	// Payments is the payment provider; nil runs without paid checkout.
	Payments PaymentGateway
	// AppBaseURL is the portal's public URL (checkout return links).
	AppBaseURL string
	// DripRenderer renders drip email steps; emails/drip provides it.
	DripRenderer DripRenderer
	// APIBaseURL is this API's public URL ("" means AppBaseURL), for the
	// one-click unsubscribe link in List-Unsubscribe.
	APIBaseURL string
	// UnsubscribeMailbox is the address of the mailto: List-Unsubscribe
	// form, e.g. "unsubscribe@example.com"; "" leaves it out.
	UnsubscribeMailbox string
}

func NewService(d Deps) *Service {
	if d.Clock == nil {
		d.Clock = SystemClock{}
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Hasher == nil {
		d.Hasher = NewPasswordHasher(0)
	}
	// GORM stamps created_at/updated_at itself; it must read the same clock
	// as the rules, or a test that moves time sees rows from another era.
	if d.DB != nil {
		clock := d.Clock
		d.DB.Config.NowFunc = func() time.Time { return clock.Now().UTC() }
	}
	limits := DefaultLimits()
	if d.Limits != nil {
		limits = *d.Limits
	}
	if d.APIBaseURL == "" {
		d.APIBaseURL = d.AppBaseURL
	}
	return &Service{db: d.DB, clock: d.Clock, log: d.Log, hasher: d.Hasher, limits: limits, pages: newProgramPageCache(),
		payments: d.Payments, baseURL: d.AppBaseURL, renderer: d.DripRenderer,
		apiBaseURL: strings.TrimRight(d.APIBaseURL, "/"), unsubscribeMailbox: d.UnsubscribeMailbox}
}

// Now is the service clock's time, in UTC.
func (s *Service) Now() time.Time { return s.clock.Now().UTC() }

// DB exposes the handle for health checks and the worker.
func (s *Service) DB() *gorm.DB { return s.db }

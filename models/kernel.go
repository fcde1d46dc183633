package models

import (
	"log/slog"
	"time"

	"gorm.io/gorm"
)

// Kernel is what every domain service shares: the database, the clock, the
// logger and the rate limits, and the mechanics built on them
// (transactions, the pgx pipeline, rate limiting, idempotency keys, the
// outbox). Each domain package's Service embeds one; a process has one.
type Kernel struct {
	DB     *gorm.DB
	Clock  Clock
	Log    *slog.Logger
	Limits Limits
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

// NewKernel fills in the defaults: the system clock, a discarding logger
// and DefaultLimits when limits is nil.
func NewKernel(db *gorm.DB, clock Clock, log *slog.Logger, limits *Limits) *Kernel {
	if clock == nil {
		clock = SystemClock{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// GORM stamps created_at/updated_at itself; it must read the same clock
	// as the rules, or a test that moves time sees rows from another era.
	if db != nil {
		db.Config.NowFunc = func() time.Time { return clock.Now().UTC() }
	}
	l := DefaultLimits()
	if limits != nil {
		l = *limits
	}
	return &Kernel{DB: db, Clock: clock, Log: log, Limits: l}
}

// Now is the kernel clock's time, in UTC.
func (k *Kernel) Now() time.Time { return k.Clock.Now().UTC() }

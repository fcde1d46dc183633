package models

import (
	"log/slog"
	"runtime"
	"sync"
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

	// tasks holds the task handlers the rooms registered (tasks.go).
	tasks     *taskQueue
	tasksOnce sync.Once
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
	// LoginPerNetwork counts attempts from an IPv4 /24 or IPv6 /64 (see
	// Network): a flood spread over neighbouring addresses trips it before
	// any of them reaches LoginPerIP.
	LoginPerNetwork RateLimit
	// Failed logins slow down the address and the network they came from,
	// never the account: an attacker guessing her password must not lock
	// the real coach out.
	LoginBackoffPerIP      Backoff
	LoginBackoffPerNetwork Backoff
	// PasswordHashes is the budget of argon2 hashes anonymous clients can
	// cause, shared by every instance: past it a login is refused before it
	// costs a hash, so a flood from any number of addresses cannot take the
	// cores from everyone else.
	PasswordHashes Budget
	// LoginCodeFailuresPerEmail slows and then stops guessing of her
	// 6-digit sign-in code across every link she is sent: a link allows a
	// few guesses, and a fresh link must not buy a fresh few forever.
	LoginCodeFailuresPerEmail Backoff
	// KnownDeviceLogins and KnownDeviceHashes are what a coach's known
	// device (a grace_device cookie) may spend when the limits above are
	// exhausted by a flood: per device, and a small hash budget of their
	// own that a flood of unknown devices cannot touch.
	KnownDeviceLogins Backoff
	KnownDeviceHashes Budget
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

		LoginPerNetwork: RateLimit{Max: 100, Window: 15 * time.Minute},
		// An office behind one address, or a /24 of them, may hold a few
		// coaches who mistype: a few failures are free, then waits double.
		LoginBackoffPerIP:      Backoff{Free: 3, Base: time.Second, Max: 5 * time.Minute, Window: 15 * time.Minute},
		LoginBackoffPerNetwork: Backoff{Free: 10, Base: time.Second, Max: 5 * time.Minute, Window: 15 * time.Minute},
		PasswordHashes:         HashBudget(DefaultHashesPerCore),
		// Ten wrong codes a day, the first three free, then waits double.
		LoginCodeFailuresPerEmail: Backoff{Free: 3, Base: time.Second, Max: 15 * time.Minute, Window: 24 * time.Hour, Cap: 10},
		KnownDeviceLogins:         Backoff{Free: 3, Base: time.Second, Max: 15 * time.Minute, Window: time.Hour, Cap: 10},
		KnownDeviceHashes:         Budget{Rate: 1, Burst: 5},
	}
}

// DefaultHashesPerCore is the hash budget's rate per core: one argon2id
// hash (19 MiB, t=2) takes about 35 ms of one core here, so 4 a second use
// about 15% of the cores, leaving the rest to everyone else under a flood.
const DefaultHashesPerCore = 4

// HashBudget is perCore hashes a second for each of this machine's cores,
// with a burst of half a second's worth (at least 2), so a few coaches
// signing in at once never wait.
func HashBudget(perCore float64) Budget {
	rate := perCore * float64(runtime.NumCPU())
	return Budget{Rate: rate, Burst: max(2, int(rate/2))}
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

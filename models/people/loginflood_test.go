package people_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/domain"
	"github.com/grace-coaching/grace/models/modelstest"
	"github.com/grace-coaching/grace/models/people"
)

// floodWorld is the people service with limits of the test's choosing, a
// hasher that counts its hashes and a coach with goodPassword.
type floodWorld struct {
	svc    *domain.Services
	clock  *models.FakeClock
	hasher *models.PasswordHasher
	coach  *people.Coach
}

// quietLimits turns off every login limit; a test turns on the one it is about.
func quietLimits() models.Limits {
	l := models.DefaultLimits()
	l.LoginPerIP, l.LoginPerEmail, l.LoginPerNetwork = models.RateLimit{}, models.RateLimit{}, models.RateLimit{}
	l.LoginBackoffPerIP, l.LoginBackoffPerNetwork = models.Backoff{}, models.Backoff{}
	l.PasswordHashes = models.Budget{}
	return l
}

func newFloodWorld(t *testing.T, limits models.Limits) *floodWorld {
	t.Helper()
	w := &floodWorld{clock: models.NewFakeClock(modelstest.Start), hasher: models.NewPasswordHasher(2)}
	w.svc = domain.New(domain.Deps{DB: modelstest.NewDB(t), Clock: w.clock, Hasher: w.hasher, Limits: &limits})
	w.coach = mustCreateCoach(t, w.svc, "grace@example.com", people.RoleCoach)
	return w
}

// login tries email and password from ip and returns the error's code ("" for
// a session), failing the test on anything but a domain error.
func (w *floodWorld) login(t *testing.T, email, password, ip string) (string, *models.Error) {
	t.Helper()
	_, _, _, err := w.svc.People.Login(context.Background(), email, password, models.ClientInfo{IP: ip})
	if err == nil {
		return "", nil
	}
	e, ok := models.AsError(err)
	if !ok {
		t.Fatalf("login from %s: %v", ip, err)
	}
	return e.Code, e
}

// hashesDuring is how many hashes fn cost.
func (w *floodWorld) hashesDuring(fn func()) int {
	before := w.hasher.Hashes()
	fn()
	return w.hasher.Hashes() - before
}

// A flood spread over the addresses of one network trips the network's
// limit, and the attempts it refuses cost no hash; a neighbouring network
// is not affected. An IPv6 /64 is one network, as an IPv4 /24 is.
func TestLoginNetworkLimitComesBeforeTheHash(t *testing.T) {
	tests := []struct {
		name     string
		addr     func(i int) string
		neighbor string
	}{
		{"IPv4 /24", func(i int) string { return fmt.Sprintf("203.0.113.%d", i+1) }, "203.0.114.1"},
		{"IPv6 /64", func(i int) string { return fmt.Sprintf("2001:db8:1:2:%x::%x", i+1, i+7) }, "2001:db8:1:3::1"},
	}
	const max = 5
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := quietLimits()
			l.LoginPerIP = models.RateLimit{Max: 20, Window: 15 * time.Minute}
			l.LoginPerNetwork = models.RateLimit{Max: max, Window: 15 * time.Minute}
			w := newFloodWorld(t, l)
			hashed := w.hashesDuring(func() {
				for i := range max {
					if code, _ := w.login(t, fmt.Sprintf("spray%d@example.com", i), goodPassword, tt.addr(i)); code != "invalid_credentials" {
						t.Fatalf("attempt %d within the limit: %q", i, code)
					}
				}
			})
			if hashed != max {
				t.Fatalf("%d attempts within the limit cost %d hashes", max, hashed)
			}
			hashed = w.hashesDuring(func() {
				for i := max; i < 4*max; i++ {
					code, e := w.login(t, fmt.Sprintf("spray%d@example.com", i), goodPassword, tt.addr(i))
					if code != "rate_limited" || e.RetryAfter < time.Second {
						t.Fatalf("attempt %d from a fresh address of the network: %q", i, code)
					}
				}
				// Her right password from the flooded network waits too.
				if code, _ := w.login(t, w.coach.Email, goodPassword, tt.addr(99)); code != "rate_limited" {
					t.Fatalf("right password from the flooded network: %q", code)
				}
			})
			if hashed != 0 {
				t.Fatalf("refused attempts cost %d hashes", hashed)
			}
			if code, _ := w.login(t, w.coach.Email, goodPassword, tt.neighbor); code != "" {
				t.Fatalf("the right password from the next network: %q", code)
			}
		})
	}
}

// The hash budget is global: attempts from as many networks as there are
// attempts are refused once it is spent, before any hash, with the wait for
// the next token, and it refills with the clock. Known and unknown emails
// are refused alike.
func TestLoginHashBudget(t *testing.T) {
	l := quietLimits()
	l.PasswordHashes = models.Budget{Rate: 2, Burst: 2}
	w := newFloodWorld(t, l)
	ip := func(i int) string { return fmt.Sprintf("10.%d.%d.1", i/250, i%250) }
	n := 0
	try := func(email, password, want string) *models.Error {
		t.Helper()
		n++
		code, e := w.login(t, email, password, ip(n))
		if code != want {
			t.Fatalf("attempt %d (%s): %q, want %q", n, email, code, want)
		}
		return e
	}
	steps := []struct {
		name    string
		advance time.Duration
		email   string
		want    string
		hashes  int
	}{
		{"burst, unknown email", 0, "nobody@example.com", "invalid_credentials", 1},
		{"burst, wrong password", 0, "grace@example.com", "invalid_credentials", 1},
		{"spent, unknown email", 0, "nobody@example.com", "rate_limited", 0},
		{"spent, known email", 0, "grace@example.com", "rate_limited", 0},
		{"half a second refills one", 500 * time.Millisecond, "nobody@example.com", "invalid_credentials", 1},
		{"and only one", 0, "nobody@example.com", "rate_limited", 0},
		{"a second refills two", time.Second, "nobody@example.com", "invalid_credentials", 1},
	}
	for _, st := range steps {
		w.clock.Advance(st.advance)
		password := "wrong password!"
		if st.email == "nobody@example.com" {
			password = goodPassword
		}
		var e *models.Error
		if got := w.hashesDuring(func() { e = try(st.email, password, st.want) }); got != st.hashes {
			t.Fatalf("%s: %d hashes, want %d", st.name, got, st.hashes)
		}
		if st.want == "rate_limited" && (e.RetryAfter < time.Second || e.RetryAfter > 2*time.Second) {
			t.Fatalf("%s: retry after %s", st.name, e.RetryAfter)
		}
	}
	// Under budget, her right password works.
	w.clock.Advance(time.Second)
	try(w.coach.Email, goodPassword, "")
}

// Failures slow down the address (and network) they come from, doubling
// the wait each time, and never her account: she signs in from elsewhere
// meanwhile, and a success from the address forgives it.
func TestLoginBackoffSlowsTheAddressNotTheAccount(t *testing.T) {
	l := quietLimits()
	l.LoginBackoffPerIP = models.Backoff{Free: 2, Base: time.Second, Max: 4 * time.Second, Window: 15 * time.Minute}
	w := newFloodWorld(t, l)
	const guesser = "192.0.2.10"
	for i := range 2 {
		if code, _ := w.login(t, w.coach.Email, "wrong password!", guesser); code != "invalid_credentials" {
			t.Fatalf("free failure %d: %q", i, code)
		}
	}
	for _, wait := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second} {
		var e *models.Error
		if got := w.hashesDuring(func() { _, e = w.login(t, "nobody@example.com", goodPassword, guesser) }); got != 0 || e == nil || e.Code != "rate_limited" {
			t.Fatalf("attempt inside the backoff: %v after %d hashes", e, got)
		}
		if e.RetryAfter != wait {
			t.Fatalf("retry after %s, want %s", e.RetryAfter, wait)
		}
		if code, _ := w.login(t, w.coach.Email, goodPassword, "198.51.100.20"); code != "" {
			t.Fatalf("her right password from her own address: %q", code)
		}
		w.clock.Advance(wait)
		if code, _ := w.login(t, w.coach.Email, "wrong password!", guesser); code != "invalid_credentials" {
			t.Fatalf("attempt after waiting %s: %q", wait, code)
		}
	}
	w.clock.Advance(4 * time.Second)
	if code, _ := w.login(t, w.coach.Email, goodPassword, guesser); code != "" {
		t.Fatalf("the right password after the wait: %q", code)
	}
	if code, _ := w.login(t, w.coach.Email, "wrong password!", guesser); code != "invalid_credentials" {
		t.Fatalf("a failure after a success is free again: %q", code)
	}
}

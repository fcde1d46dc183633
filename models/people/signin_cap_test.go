package people_test

import (
	"context"
	"testing"
	"time"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/domain"
	"github.com/grace-coaching/grace/models/modelstest"
	"github.com/grace-coaching/grace/models/people"
)

// latestCode is the code of the newest sign-in email to email, once the
// task worker has had its turn: a link request only leaves a task.
func latestCode(t *testing.T, svc *domain.Services, email string) string {
	t.Helper()
	if _, err := svc.Kernel.RunTasksOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	var msg models.OutboxMessage
	if err := svc.Kernel.DB.Where("template = ? AND to_email = ?", models.TemplateLoginLink, email).
		Order("created_at DESC, id DESC").First(&msg).Error; err != nil {
		t.Fatalf("latest sign-in email: %v", err)
	}
	return msg.Data["code"].(string)
}

func wrongCode(code string) string {
	if code == "000000" {
		return "000001"
	}
	return "000000"
}

func TestCodeGuessingAcrossLinksStopsAtTheCap(t *testing.T) {
	_, clock, db := modelstest.NewService(t)
	lim := models.DefaultLimits()
	// Only the per-address cap is under test: links come as fast as asked.
	lim.PortalLinkPerIP, lim.PortalLinkPerKey, lim.SessionPerIP = models.RateLimit{}, models.RateLimit{}, models.RateLimit{}
	lim.PasswordHashes = models.Budget{}
	svc := domain.New(domain.Deps{DB: db, Clock: clock, Limits: &lim})
	ctx := context.Background()
	email := "jane@example.com"
	if err := db.Create(&people.Participant{Email: email, Name: "Jane", Timezone: "UTC"}).Error; err != nil {
		t.Fatal(err)
	}
	capN := lim.LoginCodeFailuresPerEmail.Cap
	guesses := 0
	// A fresh link before every guess, each from another address: no link
	// and no client ever reaches its own limit, yet guessing stops.
	for attempt := 0; attempt < 3*capN; attempt++ {
		modelstest.MustDo(t, svc.People.RequestLoginLink(ctx, email, models.ClientInfo{IP: "203.0.113.1"}))
		_, _, _, err := svc.People.ExchangeLoginCode(ctx, email, wrongCode(latestCode(t, svc, email)), models.ClientInfo{IP: "198.51.100.1"})
		if e, ok := models.AsError(err); ok && e.Code == "rate_limited" {
			// Backoff: wait it out and try again, as a patient script would.
			if e.RetryAfter > lim.LoginCodeFailuresPerEmail.Max {
				break
			}
			clock.Advance(e.RetryAfter)
			continue
		}
		modelstest.WantCode(t, err, "invalid_code")
		guesses++
	}
	if guesses != capN {
		t.Fatalf("%d wrong guesses were checked, want the cap of %d", guesses, capN)
	}
	// Even the right code is refused now, until the day is over.
	modelstest.MustDo(t, svc.People.RequestLoginLink(ctx, email, models.ClientInfo{IP: "203.0.113.1"}))
	_, _, _, err := svc.People.ExchangeLoginCode(ctx, email, latestCode(t, svc, email), models.ClientInfo{IP: "198.51.100.1"})
	if e := modelstest.WantCode(t, err, "rate_limited"); e.RetryAfter < 23*time.Hour {
		t.Errorf("retry after %v, want about a day", e.RetryAfter)
	}
	clock.Advance(lim.LoginCodeFailuresPerEmail.Window)
	modelstest.MustDo(t, svc.People.RequestLoginLink(ctx, email, models.ClientInfo{IP: "203.0.113.1"}))
	if _, _, _, err := svc.People.ExchangeLoginCode(ctx, email, latestCode(t, svc, email), models.ClientInfo{IP: "198.51.100.1"}); err != nil {
		t.Fatalf("the right code after the day: %v", err)
	}
	// Her success clears the count: she starts the next day with a full cap.
	var rows int64
	db.Table("rate_limits").Where("key = ?", "session:code-fail:"+email).Count(&rows)
	if rows != 0 {
		t.Error("a successful sign-in left her failures counted")
	}
}

func TestIPv6AddressesInOneSlash64ShareALimit(t *testing.T) {
	_, clock, db := modelstest.NewService(t)
	lim := models.DefaultLimits()
	lim.PortalLinkPerIP = models.RateLimit{Max: 2, Window: time.Hour}
	lim.PortalLinkPerKey = models.RateLimit{}
	svc := domain.New(domain.Deps{DB: db, Clock: clock, Limits: &lim})
	ctx := context.Background()
	for i, ip := range []string{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9"} {
		if err := svc.People.RequestLoginLink(ctx, "a@example.com", models.ClientInfo{IP: ip}); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	err := svc.People.RequestLoginLink(ctx, "a@example.com", models.ClientInfo{IP: "2001:db8:1:2:abcd::3"})
	modelstest.WantCode(t, err, "rate_limited")
	// The next /64 is another client, and IPv4 neighbours are not merged.
	modelstest.MustDo(t, svc.People.RequestLoginLink(ctx, "a@example.com", models.ClientInfo{IP: "2001:db8:1:3::1"}))
	for _, ip := range []string{"203.0.113.1", "203.0.113.2", "203.0.113.3"} {
		modelstest.MustDo(t, svc.People.RequestLoginLink(ctx, "a@example.com", models.ClientInfo{IP: ip}))
	}
}

func TestKnownDeviceFailuresAreItsOwn(t *testing.T) {
	_, clock, db := modelstest.NewService(t)
	lim := models.DefaultLimits()
	svc := domain.New(domain.Deps{DB: db, Clock: clock, Limits: &lim})
	ctx := context.Background()
	const pw = "correct horse battery"
	if _, err := svc.People.CreateCoach(ctx, people.CreateCoachInput{Email: "ada@example.com", Name: "Ada", Role: people.RoleCoach, Password: pw}); err != nil {
		t.Fatal(err)
	}
	first, err := svc.People.LoginFromDevice(ctx, "ada@example.com", pw, "", models.ClientInfo{IP: "198.51.100.7"})
	modelstest.MustDo(t, err)
	// Someone with her cookie but not her password is slowed on that
	// device alone, up to its cap.
	refused := false
	for range lim.KnownDeviceLogins.Cap + 1 {
		_, err := svc.People.LoginFromDevice(ctx, "ada@example.com", "wrong password!", first.Device, models.ClientInfo{IP: "198.51.100.7"})
		if models.IsCode(err, "rate_limited") {
			refused = true
			break
		}
		modelstest.WantCode(t, err, "invalid_credentials")
		clock.Advance(lim.KnownDeviceLogins.Max)
	}
	if !refused {
		t.Fatal("wrong passwords from a known device never slowed down")
	}
	// Her address was never backed off by those: a login without the
	// device still works.
	if _, err := svc.People.LoginFromDevice(ctx, "ada@example.com", pw, "", models.ClientInfo{IP: "198.51.100.7"}); err != nil {
		t.Fatalf("login without the device: %v", err)
	}
}

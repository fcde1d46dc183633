package people_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/domain"
	"github.com/grace-coaching/grace/models/modelstest"
	"github.com/grace-coaching/grace/models/people"
)

// portalProgram inserts a published program with an open free-access window.
func portalProgram(t *testing.T, db *gorm.DB, now time.Time, slug string) *catalog.Program {
	t.Helper()
	until := now.Add(7 * 24 * time.Hour)
	p := &catalog.Program{Slug: slug, Title: "Program " + slug, Status: catalog.ProgramPublished, FreeAccessUntil: &until, Currency: "EUR"}
	if err := db.Create(p).Error; err != nil {
		t.Fatalf("create program: %v", err)
	}
	return p
}

func portalCount(t *testing.T, db *gorm.DB, table string) int64 {
	t.Helper()
	var n int64
	if err := db.Table(table).Count(&n).Error; err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

func TestPortalConcurrentClaimsMakeOneParticipantAndGrant(t *testing.T) {
	_, clock, db := modelstest.NewService(t)
	svc := domain.New(domain.Deps{DB: db, Clock: clock, Limits: &models.Limits{}})
	portalProgram(t, db, clock.Now(), "say-no-with-grace")
	ctx := context.Background()

	const n = 10
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			// Differently spelt, the same address.
			email := "jane@example.com"
			if i%2 == 1 {
				email = " JANE@example.com"
			}
			errs[i] = svc.People.ClaimFreeAccess(ctx, "say-no-with-grace",
				people.FreeAccessInput{Email: email, Name: "Jane", MarketingConsent: true, DisclaimerAccepted: true},
				models.ClientInfo{IP: fmt.Sprintf("203.0.113.%d", i), UserAgent: "race"})
			// As many task workers as claims, racing for the tasks.
			if errs[i] == nil {
				_, errs[i] = svc.Kernel.RunTasksOnce(ctx)
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("claim %d: %v", i, err)
		}
	}
	// One disclaimer consent, no marketing one: the form's yes is one
	// request she must confirm, emailed once however many forms raced.
	for table, want := range map[string]int64{"participants": 1, "access_grants": 1, "consents": 1, "marketing_optins": 1, "login_links": n, "outbox": n + 1} {
		if got := portalCount(t, db, table); got != want {
			t.Errorf("%s = %d, want %d", table, got, want)
		}
	}
}

func TestPortalClaimRecordsSafeEvidence(t *testing.T) {
	for _, tc := range []struct {
		name   string
		client models.ClientInfo
		wantIP *string
		wantUA func(*string) bool
	}{
		{"no address or agent", models.ClientInfo{}, nil, func(ua *string) bool { return ua == nil }},
		{"garbled address", models.ClientInfo{IP: "not-an-ip", UserAgent: "ok"}, nil, func(ua *string) bool { return ua != nil && *ua == "ok" }},
		{"IPv6", models.ClientInfo{IP: "2001:db8::1", UserAgent: "ok"}, modelstest.Ptr("2001:db8::1"), func(ua *string) bool { return ua != nil }},
		{"agent cut mid-character", models.ClientInfo{IP: "203.0.113.1", UserAgent: strings.Repeat("é", 600) + "\xff"},
			modelstest.Ptr("203.0.113.1"), func(ua *string) bool {
				return ua != nil && len([]rune(*ua)) == 600 && !strings.ContainsRune(*ua, '\uFFFD')
			}},
		{"very long agent", models.ClientInfo{IP: "203.0.113.1", UserAgent: strings.Repeat("a", 5000)},
			modelstest.Ptr("203.0.113.1"), func(ua *string) bool { return ua != nil && len(*ua) == 1000 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc, clock, db := modelstest.NewService(t)
			portalProgram(t, db, clock.Now(), "say-no-with-grace")
			err := svc.People.ClaimFreeAccess(context.Background(), "say-no-with-grace",
				people.FreeAccessInput{Email: "jane@example.com", Name: "Jane", DisclaimerAccepted: true}, tc.client)
			if err != nil {
				t.Fatalf("claim: %v", err)
			}
			// The evidence travels with the task to the worker.
			if n, err := svc.Kernel.RunTasksOnce(context.Background()); n != 1 || err != nil {
				t.Fatalf("tasks run = %d, %v", n, err)
			}
			var cs []models.Consent
			db.Find(&cs)
			if len(cs) != 1 || cs[0].Kind != models.ConsentDisclaimer {
				t.Fatalf("consents = %+v, want the disclaimer alone", cs)
			}
			for _, c := range cs {
				if (c.IP == nil) != (tc.wantIP == nil) || (c.IP != nil && *c.IP != *tc.wantIP) {
					t.Errorf("%s ip = %v, want %v", c.Kind, c.IP, tc.wantIP)
				}
				if !tc.wantUA(c.UserAgent) {
					t.Errorf("%s user agent = %v", c.Kind, c.UserAgent)
				}
				if c.Kind == models.ConsentMarketing && c.Granted {
					t.Error("marketing recorded as granted; she did not tick it")
				}
			}
		})
	}
}

func TestPortalClaimErrors(t *testing.T) {
	svc, clock, db := modelstest.NewService(t)
	portalProgram(t, db, clock.Now(), "open")
	closed := &catalog.Program{Slug: "closed", Title: "Closed", Status: catalog.ProgramPublished, Currency: "EUR"}
	db.Create(closed)
	ok := people.FreeAccessInput{Email: "jane@example.com", Name: "Jane", DisclaimerAccepted: true}
	for _, tc := range []struct {
		name string
		slug string
		in   people.FreeAccessInput
		kind models.Kind
		code string
	}{
		{"closed", "closed", ok, models.KindGone, "free_access_closed"},
		{"unknown", "nope", ok, models.KindNotFound, "not_found"},
		{"no disclaimer", "open", people.FreeAccessInput{Email: "jane@example.com", Name: "Jane"}, models.KindInvalid, "validation_failed"},
		{"invalid UTF-8 name", "open", people.FreeAccessInput{Email: "jane@example.com", Name: "\xff", DisclaimerAccepted: true}, models.KindInvalid, "validation_failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := svc.People.ClaimFreeAccess(context.Background(), tc.slug, tc.in, models.ClientInfo{IP: "203.0.113.1"})
			e, isDomain := models.AsError(err)
			if !isDomain || e.Kind != tc.kind || e.Code != tc.code {
				t.Fatalf("err = %v, want %s/%s", err, tc.kind, tc.code)
			}
			if n := portalCount(t, db, "participants"); n != 0 {
				t.Errorf("participants = %d, want 0", n)
			}
			if n := portalCount(t, db, "tasks"); n != 0 {
				t.Errorf("tasks = %d, want 0", n)
			}
		})
	}
}

func TestPortalUpdateParticipant(t *testing.T) {
	svc, _, db := modelstest.NewService(t)
	p := &people.Participant{Email: "jane@example.com", Name: "Jane", Timezone: "UTC"}
	db.Create(p)
	ctx := context.Background()

	got, err := svc.People.UpdateParticipant(ctx, p.ID, people.ParticipantPatch{Timezone: models.Some("Asia/Tokyo")})
	if err != nil || got.Timezone != "Asia/Tokyo" || got.Name != "Jane" {
		t.Fatalf("update = %+v, %v", got, err)
	}
	for _, patch := range []people.ParticipantPatch{
		{Timezone: models.Some("Local")},
		{Timezone: models.Some("Europe/Nowhere")},
		{Name: models.Some(strings.Repeat("x", 201))},
		{Name: models.Optional[string]{Set: true, Null: true}},
	} {
		if _, err := svc.People.UpdateParticipant(ctx, p.ID, patch); !models.IsCode(err, "validation_failed") {
			t.Errorf("patch %+v: err = %v, want validation_failed", patch, err)
		}
	}
	if _, err := svc.People.UpdateParticipant(ctx, [16]byte{9}, people.ParticipantPatch{Name: models.Some("X")}); !models.IsCode(err, "not_found") {
		t.Errorf("unknown participant: err = %v, want not_found", err)
	}
}

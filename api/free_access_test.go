package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grace-coaching/grace/api/apitest"
	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/people"
)

func freeAccessBody(email string, marketing bool) map[string]any {
	return map[string]any{"email": email, "name": "Jane Doe", "marketing_consent": marketing, "disclaimer_accepted": true}
}

// freeAccessRows counts every table a claim writes to (rate_limits aside).
func freeAccessRows(t *testing.T, env *apitest.Env) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, table := range []string{"participants", "access_grants", "consents", "login_links", "outbox"} {
		out[table] = env.Count(t, table)
	}
	return out
}

func freeAccessConsents(t *testing.T, env *apitest.Env) []models.Consent {
	t.Helper()
	var cs []models.Consent
	if err := env.DB.Order("created_at, kind").Find(&cs).Error; err != nil {
		t.Fatalf("read consents: %v", err)
	}
	return cs
}

func TestFreeAccessClaimCreatesParticipantGrantConsentsAndEmail(t *testing.T) {
	env := apitest.NewEnv(t)
	prog := env.Program(t, "say-no-with-grace", catalog.ProgramPublished, true)

	env.Do(t, http.MethodPost, "/v1/programs/say-no-with-grace/free-access", freeAccessBody("Jane@Example.com", true),
		apitest.FromIP("203.0.113.5"), apitest.Header("User-Agent", "TestBrowser/1.0")).
		Expect(t, http.StatusAccepted)

	var p people.Participant
	if err := env.DB.Take(&p).Error; err != nil {
		t.Fatalf("read participant: %v", err)
	}
	if p.Email != "jane@example.com" || p.Name != "Jane Doe" || p.Timezone != "UTC" {
		t.Errorf("participant = %+v", p)
	}
	var grants []people.AccessGrant
	env.DB.Find(&grants)
	if len(grants) != 1 || grants[0].ParticipantID != p.ID || grants[0].ProgramID != prog.ID ||
		grants[0].Source != people.GrantFreeAccess || !grants[0].StartsAt.Equal(env.Clock.Now()) || grants[0].RevokedAt != nil {
		t.Errorf("grants = %+v, want one free_access grant starting now", grants)
	}

	cs := freeAccessConsents(t, env)
	want := map[models.ConsentKind]struct {
		version string
		granted bool
	}{
		// Marketing waits for her confirmation (double opt-in).
		models.ConsentDisclaimer: {"1", true},
	}
	if len(cs) != len(want) {
		t.Fatalf("consents = %+v, want %d", cs, len(want))
	}
	for _, c := range cs {
		w, ok := want[c.Kind]
		if !ok || c.TextVersion != w.version || c.Granted != w.granted {
			t.Errorf("consent %s: version %q granted %v, want %q %v", c.Kind, c.TextVersion, c.Granted, w.version, w.granted)
		}
		if c.ParticipantID != p.ID || c.ProgramID == nil || *c.ProgramID != prog.ID {
			t.Errorf("consent %s belongs to %v / %v", c.Kind, c.ParticipantID, c.ProgramID)
		}
		if c.IP == nil || *c.IP != "203.0.113.5" {
			t.Errorf("consent %s ip = %v, want 203.0.113.5", c.Kind, c.IP)
		}
		if c.UserAgent == nil || *c.UserAgent != "TestBrowser/1.0" {
			t.Errorf("consent %s user agent = %v", c.Kind, c.UserAgent)
		}
		if !c.CreatedAt.Equal(env.Clock.Now()) {
			t.Errorf("consent %s created_at = %v, want %v", c.Kind, c.CreatedAt, env.Clock.Now())
		}
	}

	msgs := portalLoginEmails(t, env, "jane@example.com")
	if len(msgs) != 1 {
		t.Fatalf("login_link emails = %d, want 1", len(msgs))
	}
	data := msgs[0].Data
	if data["program_title"] != prog.Title || data["name"] != "" /* unproven: not greeted by the typed name */ || data["expires_minutes"] != float64(10) ||
		!sixDigits.MatchString(fmt.Sprint(data["code"])) || data["token"] == "" {
		t.Errorf("email data = %v", data)
	}
	// The emailed link signs her in.
	env.Do(t, http.MethodPost, "/v1/portal/sessions", map[string]any{"token": data["token"]}).Expect(t, http.StatusCreated)
}

func TestFreeAccessSecondClaimOnlyResendsTheEmail(t *testing.T) {
	env := apitest.NewEnv(t)
	env.Program(t, "say-no-with-grace", catalog.ProgramPublished, true)
	const path = "/v1/programs/say-no-with-grace/free-access"
	first := env.Do(t, http.MethodPost, path, freeAccessBody("jane@example.com", false)).Expect(t, http.StatusAccepted)
	before := freeAccessRows(t, env)
	var grant people.AccessGrant
	env.DB.Take(&grant)

	env.Clock.Advance(time.Hour)
	second := env.Do(t, http.MethodPost, path, freeAccessBody("jane@example.com", false)).Expect(t, http.StatusAccepted)
	if string(first.Body) != string(second.Body) {
		t.Errorf("answers differ: %s vs %s; a claim must not reveal an earlier one", first.Body, second.Body)
	}
	after := freeAccessRows(t, env)
	for _, table := range []string{"participants", "access_grants", "consents"} {
		if after[table] != before[table] {
			t.Errorf("%s %d -> %d, want unchanged", table, before[table], after[table])
		}
	}
	if after["outbox"] != before["outbox"]+1 || after["login_links"] != before["login_links"]+1 {
		t.Errorf("outbox %d -> %d, login_links %d -> %d, want one more of each",
			before["outbox"], after["outbox"], before["login_links"], after["login_links"])
	}
	var again people.AccessGrant
	env.DB.Take(&again)
	if !again.StartsAt.Equal(grant.StartsAt) {
		t.Errorf("grant start moved %v -> %v; her drip schedule must not restart", grant.StartsAt, again.StartsAt)
	}

	// A yes afterwards asks her to confirm, once however often the form is
	// sent, and records no consent until she does.
	env.Clock.Advance(time.Hour)
	env.Do(t, http.MethodPost, path, freeAccessBody("jane@example.com", true)).Expect(t, http.StatusAccepted)
	env.Clock.Advance(time.Hour)
	env.Do(t, http.MethodPost, path, freeAccessBody("jane@example.com", true)).Expect(t, http.StatusAccepted)
	cs := freeAccessConsents(t, env)
	if len(cs) != 1 || cs[0].Kind != models.ConsentDisclaimer {
		t.Fatalf("consents = %+v, want the disclaimer alone", cs)
	}
	if n := env.Count(t, "marketing_optins"); n != 1 {
		t.Errorf("opt-in requests = %d, want 1", n)
	}
	if n := env.Count(t, "access_grants"); n != 1 {
		t.Errorf("grants = %d, want 1", n)
	}
}

func TestFreeAccessExistingParticipantKeepsHerName(t *testing.T) {
	env := apitest.NewEnv(t)
	env.Program(t, "say-no-with-grace", catalog.ProgramPublished, true)
	p, _ := env.Participant(t, "jane@example.com")
	body := freeAccessBody("jane@example.com", false)
	body["name"] = "Someone Else"
	env.Do(t, http.MethodPost, "/v1/programs/say-no-with-grace/free-access", body).Expect(t, http.StatusAccepted)

	var stored people.Participant
	env.DB.Take(&stored, "id = ?", p.ID)
	if stored.Name != p.Name {
		t.Errorf("name = %q, want %q: an anonymous form must not rename her", stored.Name, p.Name)
	}
	if n := env.Count(t, "participants"); n != 1 {
		t.Errorf("participants = %d, want 1", n)
	}
	if n := env.Count(t, "consents"); n != 1 {
		t.Errorf("consents = %d, want the disclaimer of her first claim of this program", n)
	}
}

func TestFreeAccessRefused(t *testing.T) {
	const slug = "say-no-with-grace"
	valid := `{"email":"jane@example.com","name":"Jane","marketing_consent":false,"disclaimer_accepted":true}`
	type refusal struct {
		name    string
		setup   func(t *testing.T, env *apitest.Env)
		slug    string
		body    string
		status  int
		code    string
		field   string
		message string
	}
	open := func(t *testing.T, env *apitest.Env) { env.Program(t, slug, catalog.ProgramPublished, true) }
	cases := []refusal{
		{name: "no free-access window", setup: func(t *testing.T, env *apitest.Env) { env.Program(t, slug, catalog.ProgramPublished, false) },
			body: valid, status: http.StatusGone, code: "free_access_closed"},
		{name: "window ended", setup: func(t *testing.T, env *apitest.Env) {
			env.Program(t, slug, catalog.ProgramPublished, true)
			env.Clock.Advance(30 * 24 * time.Hour)
		}, body: valid, status: http.StatusGone, code: "free_access_closed"},
		{name: "draft program", setup: func(t *testing.T, env *apitest.Env) { env.Program(t, slug, catalog.ProgramDraft, true) },
			body: valid, status: http.StatusNotFound, code: "not_found"},
		{name: "archived program", setup: func(t *testing.T, env *apitest.Env) { env.Program(t, slug, catalog.ProgramArchived, true) },
			body: valid, status: http.StatusNotFound, code: "not_found"},
		{name: "unknown program", setup: open, slug: "no-such-program", body: valid, status: http.StatusNotFound, code: "not_found"},
		{name: "disclaimer not accepted", setup: open,
			body:   `{"email":"jane@example.com","name":"Jane","marketing_consent":true,"disclaimer_accepted":false}`,
			status: http.StatusUnprocessableEntity, code: "validation_failed", field: "disclaimer_accepted", message: "not psychotherapy"},
		{name: "disclaimer missing", setup: open, body: `{"email":"jane@example.com","name":"Jane","marketing_consent":true}`,
			status: http.StatusUnprocessableEntity, code: "validation_failed", field: "disclaimer_accepted"},
		{name: "marketing choice missing", setup: open, body: `{"email":"jane@example.com","name":"Jane","disclaimer_accepted":true}`,
			status: http.StatusUnprocessableEntity, code: "validation_failed", field: "marketing_consent"},
		{name: "bad email", setup: open, body: `{"email":"jane@","name":"Jane","marketing_consent":false,"disclaimer_accepted":true}`,
			status: http.StatusUnprocessableEntity, code: "validation_failed", field: "email"},
		{name: "blank name", setup: open, body: `{"email":"jane@example.com","name":"   ","marketing_consent":false,"disclaimer_accepted":true}`,
			status: http.StatusUnprocessableEntity, code: "validation_failed", field: "name"},
		{name: "long name", setup: open, body: `{"email":"jane@example.com","name":"` + strings.Repeat("n", 201) + `","marketing_consent":false,"disclaimer_accepted":true}`,
			status: http.StatusUnprocessableEntity, code: "validation_failed", field: "name"},
		{name: "disclaimer as a string", setup: open, body: `{"email":"jane@example.com","name":"Jane","marketing_consent":false,"disclaimer_accepted":"yes"}`,
			status: http.StatusUnprocessableEntity, code: "validation_failed", field: "disclaimer_accepted"},
	}
	for _, b := range portalBadBodies(valid) {
		cases = append(cases, refusal{name: b.name, setup: open, body: b.body, status: b.status, code: b.code})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := apitest.NewEnv(t)
			tc.setup(t, env)
			target := tc.slug
			if target == "" {
				target = slug
			}
			p := env.Do(t, http.MethodPost, "/v1/programs/"+target+"/free-access", tc.body).ExpectProblem(t, tc.status, tc.code)
			if tc.field != "" {
				found := false
				for _, fe := range p.Errors {
					if fe.Field == tc.field && strings.Contains(fe.Message, tc.message) {
						found = true
					}
				}
				if !found {
					t.Errorf("errors = %+v, want one for %s mentioning %q", p.Errors, tc.field, tc.message)
				}
			}
			for table, n := range freeAccessRows(t, env) {
				if n != 0 {
					t.Errorf("%s has %d rows, want none written", table, n)
				}
			}
		})
	}
}

func TestFreeAccessRateLimitedPerEmail(t *testing.T) {
	env := apitest.NewEnv(t)
	env.Program(t, "say-no-with-grace", catalog.ProgramPublished, true)
	limit := models.DefaultLimits().PortalLinkPerKey.Max
	for i := range limit {
		env.Do(t, http.MethodPost, "/v1/programs/say-no-with-grace/free-access", freeAccessBody("jane@example.com", false),
			apitest.FromIP(fmt.Sprintf("198.51.100.%d", i+1))).Expect(t, http.StatusAccepted)
	}
	env.Do(t, http.MethodPost, "/v1/programs/say-no-with-grace/free-access", freeAccessBody("jane@example.com", false),
		apitest.FromIP("198.51.100.99")).ExpectProblem(t, http.StatusTooManyRequests, "rate_limited")
	if n := len(portalLoginEmails(t, env, "jane@example.com")); n != limit {
		t.Errorf("emails = %d, want %d", n, limit)
	}
}

func TestFreeAccessConcurrentClaims(t *testing.T) {
	env := portalEnvWithoutLimits(t)
	env.Program(t, "say-no-with-grace", catalog.ProgramPublished, true)

	const n = 10
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			statuses[i] = env.Do(t, http.MethodPost, "/v1/programs/say-no-with-grace/free-access",
				freeAccessBody("jane@example.com", true)).Status
		})
	}
	wg.Wait()
	for _, s := range statuses {
		if s != http.StatusAccepted {
			t.Errorf("statuses = %v, want every claim accepted", statuses)
			break
		}
	}
	rows := freeAccessRows(t, env)
	// Her marketing yes is one confirmation email, however many forms raced.
	want := map[string]int64{"participants": 1, "access_grants": 1, "consents": 1, "login_links": n, "outbox": n + 1}
	for table, w := range want {
		if rows[table] != w {
			t.Errorf("%s = %d, want %d", table, rows[table], w)
		}
	}
}

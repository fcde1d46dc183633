package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grace-coaching/grace/api/apitest"
	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/people"
)

// Helpers of the coach-account tests carry an acct prefix: other features'
// tests share this package.

const acctPassword = "correct horse battery"

type acctCoach struct {
	ID        string `json:"id"`
	Email     string `json:"email"`
	Name      string `json:"name"`
	Role      string `json:"role"`
	Active    bool   `json:"active"`
	CreatedAt string `json:"created_at"`
}

type acctLogin struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	Coach     acctCoach `json:"coach"`
}

// acctCoachWithPassword creates a coach who can log in with acctPassword.
func acctCoachWithPassword(t *testing.T, env *apitest.Env, email string, role people.Role) *people.Coach {
	t.Helper()
	c, err := env.Svc.People.CreateCoach(context.Background(), people.CreateCoachInput{Email: email, Name: "Coach " + email, Role: role, Password: acctPassword})
	if err != nil {
		t.Fatalf("create coach: %v", err)
	}
	return c
}

func acctLoginAs(t *testing.T, env *apitest.Env, email, password string, opts ...apitest.Option) *apitest.Response {
	t.Helper()
	return env.Do(t, "POST", "/v1/auth/login", map[string]string{"email": email, "password": password}, opts...)
}

// acctToken logs in and returns the bearer token.
func acctToken(t *testing.T, env *apitest.Env, email, password string) string {
	t.Helper()
	var out acctLogin
	acctLoginAs(t, env, email, password).Expect(t, 200).JSON(t, &out)
	return out.Token
}

// acctEmails returns the outbox rows of template, oldest first.
func acctEmails(t *testing.T, env *apitest.Env, template string) []models.OutboxMessage {
	t.Helper()
	var msgs []models.OutboxMessage
	if err := env.DB.Where("template = ?", template).Order("created_at, id").Find(&msgs).Error; err != nil {
		t.Fatal(err)
	}
	return msgs
}

// acctOnlyEmail asserts exactly one email of template was queued, to email,
// and returns the token it carries.
func acctOnlyEmail(t *testing.T, env *apitest.Env, template, email string) (models.OutboxMessage, string) {
	t.Helper()
	msgs := acctEmails(t, env, template)
	if len(msgs) != 1 {
		t.Fatalf("%d %s emails queued, want 1", len(msgs), template)
	}
	m := msgs[0]
	token, _ := m.Data["token"].(string)
	if m.ToEmail != email || token == "" || m.Status != models.OutboxPending {
		t.Fatalf("email = %+v", m)
	}
	return m, token
}

// acctSnapshot fingerprints every row the coach-account routes can write, so
// a refused request can be shown to have changed nothing.
func acctSnapshot(t *testing.T, env *apitest.Env) string {
	t.Helper()
	var s string
	err := env.DB.Raw(`SELECT concat_ws(' | ',
		(SELECT string_agg(concat_ws(',', id, email, name, role, active, password_hash, updated_at), ';' ORDER BY id) FROM coaches),
		(SELECT string_agg(concat_ws(',', id, revoked_at), ';' ORDER BY id) FROM coach_sessions),
		(SELECT string_agg(concat_ws(',', id, used_at), ';' ORDER BY id) FROM coach_action_tokens),
		(SELECT count(*) FROM outbox),
		(SELECT count(*) FROM rate_limits))`).Scan(&s).Error
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type acctBadInput struct {
	name   string
	body   any
	status int
	code   string
}

// acctBadInputs are the refusals every write route owes: malformed JSON, an
// unknown field, a body over 1 MiB, and bodies that break a rule (422).
func acctBadInputs(invalid ...any) []acctBadInput {
	cases := []acctBadInput{
		{"malformed json", `{"email": `, 400, "malformed_json"},
		{"not an object", `[1, 2]`, 400, "malformed_json"},
		{"two objects", `{} {}`, 400, "malformed_json"},
		{"unknown field", `{"email": "grace@example.com", "is_admin": true}`, 400, "unknown_field"},
		{"over 1 MiB", `{"email": "` + strings.Repeat("a", 1<<20) + `"}`, 413, "body_too_large"},
	}
	for i, body := range invalid {
		cases = append(cases, acctBadInput{fmt.Sprintf("invalid %d", i+1), body, 422, "validation_failed"})
	}
	return cases
}

func TestLoginSucceeds(t *testing.T) {
	env := apitest.NewEnv(t)
	grace := acctCoachWithPassword(t, env, "grace@example.com", people.RoleAdmin)

	var out acctLogin
	// Email is matched however she types it.
	acctLoginAs(t, env, "  Grace@Example.com ", acctPassword).Expect(t, 200).JSON(t, &out)
	if out.Token == "" || out.Coach.ID != grace.ID.String() || out.Coach.Email != "grace@example.com" || out.Coach.Role != "admin" || !out.Coach.Active {
		t.Fatalf("login = %+v", out)
	}
	if want := env.Clock.Now().Add(people.CoachSessionTTL); !out.ExpiresAt.Equal(want) {
		t.Fatalf("expires_at = %v, want %v", out.ExpiresAt, want)
	}
	var me acctCoach
	env.Do(t, "GET", "/v1/auth/me", nil, apitest.Token(out.Token)).Expect(t, 200).JSON(t, &me)
	if me != out.Coach {
		t.Fatalf("me = %+v, want %+v", me, out.Coach)
	}
}

func TestLoginFailuresLookTheSame(t *testing.T) {
	env := apitest.NewEnv(t)
	acctCoachWithPassword(t, env, "grace@example.com", people.RoleAdmin)
	_, adminToken := env.Coach(t, "admin@example.com", people.RoleAdmin)
	gone := acctCoachWithPassword(t, env, "gone@example.com", people.RoleCoach)
	env.Do(t, "DELETE", "/v1/admin/coaches/"+gone.ID.String(), nil, apitest.Token(adminToken)).Expect(t, 204)

	tests := []struct{ name, email, password string }{
		{"wrong password", "grace@example.com", "not her password"},
		{"unknown email", "nobody@example.com", acctPassword},
		{"deactivated coach", "gone@example.com", acctPassword},
		{"no password yet", "admin@example.com", acctPassword},
	}
	var first *apitest.Problem
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := acctLoginAs(t, env, tc.email, tc.password, apitest.FromIP(fmt.Sprintf("203.0.113.%d", i))).ExpectProblem(t, 401, "invalid_credentials")
			if first == nil {
				first = &p
			} else if p.Detail != first.Detail || p.Title != first.Title || p.Type != first.Type {
				t.Fatalf("problem %+v differs from %+v", p, *first)
			}
		})
	}
	if n := env.Count(t, "coach_sessions"); n != 1 { // only the fixture admin's
		t.Fatalf("%d coach sessions after failed logins, want 1", n)
	}
}

func TestAuthTokenExpiresAfter30Days(t *testing.T) {
	env := apitest.NewEnv(t)
	acctCoachWithPassword(t, env, "grace@example.com", people.RoleAdmin)
	token := acctToken(t, env, "grace@example.com", acctPassword)

	env.Clock.Advance(people.CoachSessionTTL - time.Minute)
	env.Do(t, "GET", "/v1/auth/me", nil, apitest.Token(token)).Expect(t, 200)
	env.Clock.Advance(2 * time.Minute)
	env.Do(t, "GET", "/v1/auth/me", nil, apitest.Token(token)).ExpectProblem(t, 401, "invalid_token")
}

func TestAuthRequiresAToken(t *testing.T) {
	env := apitest.NewEnv(t)
	env.Do(t, "GET", "/v1/auth/me", nil).ExpectProblem(t, 401, "unauthorized")
	env.Do(t, "POST", "/v1/auth/logout", nil).ExpectProblem(t, 401, "unauthorized")
	env.Do(t, "GET", "/v1/auth/me", nil, apitest.Token("made-up")).ExpectProblem(t, 401, "invalid_token")
	// A participant's token is no coach token.
	_, portal := env.Participant(t, "p@example.com")
	env.Do(t, "GET", "/v1/auth/me", nil, apitest.Token(portal)).ExpectProblem(t, 401, "invalid_token")
}

// Once the shared hash budget is spent, a login from anywhere is a 429
// with Retry-After, the same for a known and an unknown email, and the
// budget refills with the clock.
func TestLoginHashBudgetIs429WithRetryAfter(t *testing.T) {
	env := apitest.NewEnv(t)
	acctCoachWithPassword(t, env, "grace@example.com", people.RoleAdmin)
	env.Svc.Kernel.Limits.PasswordHashes = models.Budget{Rate: 1, Burst: 1}
	acctLoginAs(t, env, "nobody@example.com", acctPassword, apitest.FromIP("192.0.2.1")).ExpectProblem(t, 401, "invalid_credentials")
	var bodies []string
	for i, email := range []string{"grace@example.com", "nobody@example.com"} {
		res := acctLoginAs(t, env, email, acctPassword, apitest.FromIP(fmt.Sprintf("198.51.%d.1", i)))
		p := res.ExpectProblem(t, 429, "rate_limited")
		if res.Header.Get("Retry-After") != "1" || p.RetryAfterSeconds != 1 {
			t.Fatalf("Retry-After %q, retry_after_seconds %d; want 1", res.Header.Get("Retry-After"), p.RetryAfterSeconds)
		}
		p.RequestID = ""
		bodies = append(bodies, fmt.Sprintf("%+v", p))
	}
	if bodies[0] != bodies[1] {
		t.Fatalf("known and unknown emails are refused differently:\n%s\n%s", bodies[0], bodies[1])
	}
	env.Clock.Advance(time.Second)
	acctLoginAs(t, env, "grace@example.com", acctPassword, apitest.FromIP("198.51.0.1")).Expect(t, 200)
}

func TestAuthLogoutRevokesOnlyThatToken(t *testing.T) {
	env := apitest.NewEnv(t)
	acctCoachWithPassword(t, env, "grace@example.com", people.RoleAdmin)
	laptop := acctToken(t, env, "grace@example.com", acctPassword)
	phone := acctToken(t, env, "grace@example.com", acctPassword)

	env.Do(t, "POST", "/v1/auth/logout", nil, apitest.Token(laptop)).Expect(t, 204)
	env.Do(t, "GET", "/v1/auth/me", nil, apitest.Token(laptop)).ExpectProblem(t, 401, "invalid_token")
	env.Do(t, "POST", "/v1/auth/logout", nil, apitest.Token(laptop)).ExpectProblem(t, 401, "invalid_token")
	env.Do(t, "GET", "/v1/auth/me", nil, apitest.Token(phone)).Expect(t, 200)
}

func TestLoginRateLimitPerEmail(t *testing.T) {
	env := apitest.NewEnv(t)
	acctCoachWithPassword(t, env, "grace@example.com", people.RoleAdmin)

	// Changing IP does not help: the limit follows the account.
	for i := range 5 {
		acctLoginAs(t, env, "grace@example.com", "guess number "+strconv.Itoa(i), apitest.FromIP(fmt.Sprintf("203.0.113.%d", i))).
			ExpectProblem(t, 401, "invalid_credentials")
	}
	// Even the right password waits: otherwise the 429 would only ever hide
	// wrong guesses and the limit would leak which guess was right.
	res := acctLoginAs(t, env, "GRACE@example.com", acctPassword, apitest.FromIP("203.0.113.99"))
	p := res.ExpectProblem(t, 429, "rate_limited")
	header, err := strconv.Atoi(res.Header.Get("Retry-After"))
	if err != nil || header != p.RetryAfterSeconds || header < 1 || header > 15*60 {
		t.Fatalf("Retry-After %q, retry_after_seconds %d", res.Header.Get("Retry-After"), p.RetryAfterSeconds)
	}
	// Another account from the same addresses is not affected.
	acctCoachWithPassword(t, env, "other@example.com", people.RoleCoach)
	acctLoginAs(t, env, "other@example.com", acctPassword, apitest.FromIP("203.0.113.1")).Expect(t, 200)

	env.Clock.Advance(time.Duration(header) * time.Second)
	acctLoginAs(t, env, "grace@example.com", acctPassword, apitest.FromIP("203.0.113.99")).Expect(t, 200)
}

func TestLoginRateLimitPerIP(t *testing.T) {
	env := apitest.NewEnv(t)
	// The fixed window alone: the backoff after failures has its own test.
	env.Svc.Kernel.Limits.LoginBackoffPerIP, env.Svc.Kernel.Limits.LoginBackoffPerNetwork = models.Backoff{}, models.Backoff{}
	acctCoachWithPassword(t, env, "grace@example.com", people.RoleAdmin)
	ip := apitest.FromIP("198.51.100.7")
	limit := models.DefaultLimits().LoginPerIP.Max
	for i := range limit {
		acctLoginAs(t, env, fmt.Sprintf("spray%d@example.com", i), acctPassword, ip).ExpectProblem(t, 401, "invalid_credentials")
	}
	res := acctLoginAs(t, env, "grace@example.com", acctPassword, ip)
	res.ExpectProblem(t, 429, "rate_limited")
	if res.Header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	acctLoginAs(t, env, "grace@example.com", acctPassword, apitest.FromIP("198.51.100.8")).Expect(t, 200)
	env.Clock.Advance(models.DefaultLimits().LoginPerIP.Window)
	acctLoginAs(t, env, "grace@example.com", acctPassword, ip).Expect(t, 200)
}

func TestPasswordResetUnknownEmailRevealsNothing(t *testing.T) {
	env := apitest.NewEnv(t)
	gone := acctCoachWithPassword(t, env, "gone@example.com", people.RoleCoach)
	_, adminToken := env.Coach(t, "admin@example.com", people.RoleAdmin)
	env.Do(t, "DELETE", "/v1/admin/coaches/"+gone.ID.String(), nil, apitest.Token(adminToken)).Expect(t, 204)

	var bodies []string
	for _, email := range []string{"nobody@example.com", "gone@example.com"} {
		res := env.Do(t, "POST", "/v1/auth/password-resets", map[string]string{"email": email}).Expect(t, 202)
		bodies = append(bodies, string(res.Body))
	}
	if bodies[0] != bodies[1] || !strings.Contains(bodies[0], `"accepted"`) {
		t.Fatalf("bodies = %q", bodies)
	}
	if n := env.Count(t, "outbox"); n != 0 {
		t.Fatalf("%d emails queued, want none", n)
	}
	if n := env.Count(t, "coach_action_tokens"); n != 0 {
		t.Fatalf("%d tokens written, want none", n)
	}
}

func TestPasswordResetFlow(t *testing.T) {
	env := apitest.NewEnv(t)
	acctCoachWithPassword(t, env, "grace@example.com", people.RoleAdmin)
	stolen := acctToken(t, env, "grace@example.com", acctPassword)

	env.Do(t, "POST", "/v1/auth/password-resets", map[string]string{"email": "Grace@Example.com"}).Expect(t, 202)
	msg, token := acctOnlyEmail(t, env, models.TemplatePasswordReset, "grace@example.com")
	if msg.Data["expires_minutes"] != float64(60) || msg.Data["name"] != "Coach grace@example.com" {
		t.Fatalf("email data = %v", msg.Data)
	}

	const newPassword = "a brand new password"
	env.Do(t, "POST", "/v1/auth/password-resets/confirm", map[string]string{"token": token, "password": newPassword}).Expect(t, 204)
	env.Do(t, "POST", "/v1/auth/password-resets/confirm", map[string]string{"token": token, "password": "another new password"}).
		ExpectProblem(t, 422, "invalid_token")

	// Whoever held her old session is out; the old password is dead.
	env.Do(t, "GET", "/v1/auth/me", nil, apitest.Token(stolen)).ExpectProblem(t, 401, "invalid_token")
	acctLoginAs(t, env, "grace@example.com", acctPassword).ExpectProblem(t, 401, "invalid_credentials")
	fresh := acctToken(t, env, "grace@example.com", newPassword)
	env.Do(t, "GET", "/v1/auth/me", nil, apitest.Token(fresh)).Expect(t, 200)
}

func TestPasswordResetTokenExpiresAfterAnHour(t *testing.T) {
	env := apitest.NewEnv(t)
	acctCoachWithPassword(t, env, "grace@example.com", people.RoleAdmin)
	env.Do(t, "POST", "/v1/auth/password-resets", map[string]string{"email": "grace@example.com"}).Expect(t, 202)
	_, token := acctOnlyEmail(t, env, models.TemplatePasswordReset, "grace@example.com")

	env.Clock.Advance(people.PasswordResetTTL + time.Second)
	env.Do(t, "POST", "/v1/auth/password-resets/confirm", map[string]string{"token": token, "password": "too late for this"}).
		ExpectProblem(t, 422, "invalid_token")
	acctLoginAs(t, env, "grace@example.com", acctPassword).Expect(t, 200)
}

func TestPasswordResetRateLimit(t *testing.T) {
	env := apitest.NewEnv(t)
	acctCoachWithPassword(t, env, "grace@example.com", people.RoleAdmin)
	limit := models.DefaultLimits().ResetPerEmail.Max
	for i := range limit {
		env.Do(t, "POST", "/v1/auth/password-resets", map[string]string{"email": "grace@example.com"}, apitest.FromIP(fmt.Sprintf("203.0.113.%d", i))).Expect(t, 202)
	}
	res := env.Do(t, "POST", "/v1/auth/password-resets", map[string]string{"email": "grace@example.com"}, apitest.FromIP("203.0.113.200"))
	res.ExpectProblem(t, 429, "rate_limited")
	if res.Header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	// Her inbox is not flooded.
	if got := len(acctEmails(t, env, models.TemplatePasswordReset)); got != limit {
		t.Fatalf("%d reset emails, want %d", got, limit)
	}
}

func TestPasswordConfirmRace(t *testing.T) {
	env := apitest.NewEnv(t)
	acctCoachWithPassword(t, env, "grace@example.com", people.RoleAdmin)
	env.Do(t, "POST", "/v1/auth/password-resets", map[string]string{"email": "grace@example.com"}).Expect(t, 202)
	_, token := acctOnlyEmail(t, env, models.TemplatePasswordReset, "grace@example.com")

	const n = 10
	statuses := make([]int, n)
	codes := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := env.Do(t, "POST", "/v1/auth/password-resets/confirm", map[string]string{"token": token, "password": fmt.Sprintf("racing password %d", i)})
			statuses[i] = res.Status
			if res.Status != 204 {
				var p apitest.Problem
				_ = json.Unmarshal(res.Body, &p) // a bad body shows as an empty code
				codes[i] = p.Code
			}
		}()
	}
	wg.Wait()
	wins := 0
	for i := range n {
		switch {
		case statuses[i] == 204:
			wins++
		case statuses[i] != 422 || codes[i] != "invalid_token":
			t.Errorf("confirm %d: %d %s, want 204 or 422 invalid_token", i, statuses[i], codes[i])
		}
	}
	if wins != 1 {
		t.Fatalf("%d confirms succeeded, want exactly 1", wins)
	}
}

func TestAuthBadInputWritesNothing(t *testing.T) {
	env := apitest.NewEnv(t)
	acctCoachWithPassword(t, env, "grace@example.com", people.RoleAdmin)
	env.Do(t, "POST", "/v1/auth/password-resets", map[string]string{"email": "grace@example.com"}).Expect(t, 202)
	_, token := acctOnlyEmail(t, env, models.TemplatePasswordReset, "grace@example.com")

	routes := []struct {
		path    string
		invalid []any
	}{
		{"/v1/auth/login", []any{
			map[string]any{"email": "grace@example.com"},
			map[string]any{"email": "grace@example.com", "password": 12345678901},
			map[string]any{"email": "", "password": acctPassword},
		}},
		{"/v1/auth/password-resets", []any{
			map[string]any{},
			map[string]any{"email": "not an email"},
			map[string]any{"email": strings.Repeat("a", 250) + "@example.com"},
		}},
		{"/v1/auth/password-resets/confirm", []any{
			map[string]any{"token": token},
			map[string]any{"token": token, "password": "too short"},
			map[string]any{"token": token, "password": strings.Repeat("x", 129)},
			map[string]any{"password": "long enough password"},
		}},
	}
	for _, r := range routes {
		for _, tc := range acctBadInputs(r.invalid...) {
			t.Run(r.path+"/"+tc.name, func(t *testing.T) {
				before := acctSnapshot(t, env)
				env.Do(t, "POST", r.path, tc.body).ExpectProblem(t, tc.status, tc.code)
				if after := acctSnapshot(t, env); after != before {
					t.Fatalf("rows changed:\nbefore %s\nafter  %s", before, after)
				}
			})
		}
	}
	// The token survived every refused attempt.
	env.Do(t, "POST", "/v1/auth/password-resets/confirm", map[string]string{"token": token, "password": "finally a good one"}).Expect(t, 204)
}

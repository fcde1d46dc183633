package api_test

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grace-coaching/grace/api"
	"github.com/grace-coaching/grace/api/apitest"
	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/domain"
	"github.com/grace-coaching/grace/models/people"
)

// portalEnvWithoutLimits is an Env whose rate limits are off, for racing
// tests that send more identical requests than the limits allow.
func portalEnvWithoutLimits(t *testing.T) *apitest.Env {
	t.Helper()
	env := apitest.NewEnv(t)
	env.Svc = domain.New(domain.Deps{DB: env.DB, Clock: env.Clock, Limits: &models.Limits{}})
	env.Echo = api.New(api.Config{Service: env.Svc})
	return env
}

// portalLoginEmails returns the login_link emails queued for addr, oldest first.
func portalLoginEmails(t *testing.T, env *apitest.Env, addr string) []models.OutboxMessage {
	t.Helper()
	var msgs []models.OutboxMessage
	if err := env.DB.Where("template = ? AND to_email = ?", models.TemplateLoginLink, addr).Order("created_at, id").Find(&msgs).Error; err != nil {
		t.Fatalf("read outbox: %v", err)
	}
	return msgs
}

// portalLastLogin returns the token and code of the newest sign-in email to
// addr: the one for her link whose code is still live. (The fake clock gives
// emails sent in one test the same created_at, so time cannot tell.)
func portalLastLogin(t *testing.T, env *apitest.Env, addr string) (token, code string) {
	t.Helper()
	var live people.LoginLink
	err := env.DB.Where("participant_id = (SELECT id FROM participants WHERE email = ?) AND used_at IS NULL AND code_attempts < ?",
		addr, people.MaxLoginCodeAttempts).Take(&live).Error
	if err != nil {
		t.Fatalf("find her live login link: %v", err)
	}
	for _, m := range portalLoginEmails(t, env, addr) {
		token, _ = m.Data["token"].(string)
		code, _ = m.Data["code"].(string)
		if string(models.HashToken(token)) == string(live.TokenHash) {
			if !sixDigits.MatchString(code) {
				t.Fatalf("login_link email has code %q", code)
			}
			return token, code
		}
	}
	t.Fatalf("no login_link email to %s carries her live link", addr)
	return "", ""
}

func portalRequestLink(t *testing.T, env *apitest.Env, addr string) (token, code string) {
	t.Helper()
	env.Do(t, http.MethodPost, "/v1/portal/login-links", map[string]any{"email": addr}).Expect(t, http.StatusAccepted)
	return portalLastLogin(t, env, addr)
}

type portalSession struct {
	Token       string    `json:"token"`
	ExpiresAt   time.Time `json:"expires_at"`
	Participant struct {
		ID        string    `json:"id"`
		Email     string    `json:"email"`
		Name      string    `json:"name"`
		Timezone  string    `json:"timezone"`
		CreatedAt time.Time `json:"created_at"`
	} `json:"participant"`
}

// portalBadBodies are the malformed bodies every JSON write route must refuse
// before touching the database; valid is a body the route would accept.
func portalBadBodies(valid string) []struct {
	name, body string
	status     int
	code       string
} {
	return []struct {
		name, body string
		status     int
		code       string
	}{
		{"malformed JSON", `{"email":`, http.StatusBadRequest, "malformed_json"},
		{"not an object", `[1,2]`, http.StatusBadRequest, "malformed_json"},
		{"two objects", valid + valid, http.StatusBadRequest, "malformed_json"},
		{"unknown field", strings.TrimSuffix(valid, "}") + `,"is_admin":true}`, http.StatusBadRequest, "unknown_field"},
		{"over 1 MiB", strings.TrimSuffix(valid, "}") + `,"pad":"` + strings.Repeat("a", 1<<20) + `"}`, http.StatusRequestEntityTooLarge, "body_too_large"},
	}
}

var sixDigits = regexp.MustCompile(`^[0-9]{6}$`)

func TestPortalLoginLinkForKnownEmail(t *testing.T) {
	env := apitest.NewEnv(t)
	p, _ := env.Participant(t, "jane@example.com")
	// She signed in from her inbox before, so the email may greet her by name.
	if err := env.DB.Model(&people.Participant{}).Where("id = ?", p.ID).Update("email_verified_at", env.Clock.Now()).Error; err != nil {
		t.Fatal(err)
	}

	env.Do(t, http.MethodPost, "/v1/portal/login-links", map[string]any{"email": "Jane@Example.com"}).
		Expect(t, http.StatusAccepted)

	msgs := portalLoginEmails(t, env, "jane@example.com")
	if len(msgs) != 1 {
		t.Fatalf("login_link emails = %d, want 1", len(msgs))
	}
	data := msgs[0].Data
	if data["name"] != p.Name || data["expires_minutes"] != float64(10) {
		t.Errorf("email data = %v, want name %q and expires_minutes 10", data, p.Name)
	}
	code, _ := data["code"].(string)
	if !sixDigits.MatchString(code) {
		t.Errorf("code = %q, want 6 digits", code)
	}
	var link people.LoginLink
	if err := env.DB.Where("participant_id = ?", p.ID).Take(&link).Error; err != nil {
		t.Fatalf("read login link: %v", err)
	}
	if want := env.Clock.Now().Add(10 * time.Minute); !link.ExpiresAt.Equal(want) {
		t.Errorf("expires_at = %v, want %v", link.ExpiresAt, want)
	}
	bareCode := sha256.Sum256([]byte(code))
	if string(link.CodeHash) == string(bareCode[:]) || strings.Contains(string(link.CodeHash), code) {
		t.Error("the code is stored unsalted or in clear; equal codes of two links would hash alike")
	}
	if string(link.TokenHash) != string(models.HashToken(data["token"].(string))) {
		t.Error("token_hash is not the SHA-256 of the emailed token")
	}
}

func TestPortalLoginLinkForUnknownEmailRevealsNothing(t *testing.T) {
	env := apitest.NewEnv(t)
	env.Participant(t, "jane@example.com")

	known := env.Do(t, http.MethodPost, "/v1/portal/login-links", map[string]any{"email": "jane@example.com"}).Expect(t, http.StatusAccepted)
	unknown := env.Do(t, http.MethodPost, "/v1/portal/login-links", map[string]any{"email": "nobody@example.com"}).Expect(t, http.StatusAccepted)

	if string(known.Body) != string(unknown.Body) {
		t.Errorf("answers differ: known %s, unknown %s", known.Body, unknown.Body)
	}
	if n := len(portalLoginEmails(t, env, "nobody@example.com")); n != 0 {
		t.Errorf("emails to an unknown address = %d, want 0", n)
	}
	if n := env.Count(t, "participants"); n != 1 {
		t.Errorf("participants = %d, want 1: asking for a link must not create an account", n)
	}
}

func TestPortalLoginLinkBadInput(t *testing.T) {
	env := apitest.NewEnv(t)
	env.Participant(t, "jane@example.com")
	cases := portalBadBodies(`{"email":"jane@example.com"}`)
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"missing email", `{}`, http.StatusUnprocessableEntity, "validation_failed"},
		{"not an email", `{"email":"jane"}`, http.StatusUnprocessableEntity, "validation_failed"},
		{"display name", `{"email":"Jane <jane@example.com>"}`, http.StatusUnprocessableEntity, "validation_failed"},
		{"email of wrong type", `{"email":42}`, http.StatusUnprocessableEntity, "validation_failed"},
	} {
		cases = append(cases, tc)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := env.Count(t, "outbox")
			env.Do(t, http.MethodPost, "/v1/portal/login-links", tc.body).ExpectProblem(t, tc.status, tc.code)
			if after := env.Count(t, "outbox"); after != before {
				t.Errorf("outbox rows %d -> %d, want none written", before, after)
			}
			if n := env.Count(t, "login_links"); n != 0 {
				t.Errorf("login_links = %d, want 0", n)
			}
		})
	}
}

func TestPortalLoginLinkRateLimitedPerEmail(t *testing.T) {
	env := apitest.NewEnv(t)
	env.Participant(t, "jane@example.com")
	limit := models.DefaultLimits().PortalLinkPerKey.Max
	for i := range limit {
		// Different addresses, so only the per-email limit can trip.
		env.Do(t, http.MethodPost, "/v1/portal/login-links", map[string]any{"email": "jane@example.com"},
			apitest.FromIP(fmt.Sprintf("198.51.100.%d", i+1))).Expect(t, http.StatusAccepted)
	}
	p := env.Do(t, http.MethodPost, "/v1/portal/login-links", map[string]any{"email": "jane@example.com"},
		apitest.FromIP("198.51.100.99")).ExpectProblem(t, http.StatusTooManyRequests, "rate_limited")
	if p.RetryAfterSeconds <= 0 {
		t.Errorf("retry_after_seconds = %d, want > 0", p.RetryAfterSeconds)
	}
	if n := len(portalLoginEmails(t, env, "jane@example.com")); n != limit {
		t.Errorf("emails = %d, want %d", n, limit)
	}
}

func TestPortalSessionFromLinkToken(t *testing.T) {
	env := apitest.NewEnv(t)
	p, _ := env.Participant(t, "jane@example.com")
	token, _ := portalRequestLink(t, env, "jane@example.com")

	var s portalSession
	env.Do(t, http.MethodPost, "/v1/portal/sessions", map[string]any{"token": token}).Expect(t, http.StatusCreated).JSON(t, &s)
	if s.Participant.ID != p.ID.String() || s.Participant.Email != "jane@example.com" {
		t.Errorf("signed in as %+v, want %s", s.Participant, p.ID)
	}
	if want := env.Clock.Now().Add(people.ParticipantSessionTTL); !s.ExpiresAt.Equal(want) {
		t.Errorf("expires_at = %v, want %v", s.ExpiresAt, want)
	}
	var me portalSession
	env.Do(t, http.MethodGet, "/v1/portal/me", nil, apitest.Token(s.Token)).Expect(t, http.StatusOK).JSON(t, &me.Participant)
	if me.Participant.ID != p.ID.String() {
		t.Errorf("the new session is %s's, want %s's", me.Participant.ID, p.ID)
	}

	env.Do(t, http.MethodPost, "/v1/portal/sessions", map[string]any{"token": token}).
		ExpectProblem(t, http.StatusUnauthorized, "invalid_login_token")
}

func TestPortalSessionLinkTokenExpiry(t *testing.T) {
	for _, tc := range []struct {
		name    string
		advance time.Duration
		status  int
	}{
		{"just before expiry", 10*time.Minute - time.Second, http.StatusCreated},
		{"at expiry", 10 * time.Minute, http.StatusUnauthorized},
		{"after expiry", 10*time.Minute + time.Second, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := apitest.NewEnv(t)
			env.Participant(t, "jane@example.com")
			token, code := portalRequestLink(t, env, "jane@example.com")
			env.Clock.Advance(tc.advance)
			res := env.Do(t, http.MethodPost, "/v1/portal/sessions", map[string]any{"token": token}).Expect(t, tc.status)
			if tc.status == http.StatusUnauthorized {
				if p := res.Problem(t); p.Code != "invalid_login_token" {
					t.Errorf("code = %q, want invalid_login_token", p.Code)
				}
				// The code of an expired link is as dead as its token.
				env.Do(t, http.MethodPost, "/v1/portal/sessions", map[string]any{"email": "jane@example.com", "code": code}).
					ExpectProblem(t, http.StatusUnauthorized, "invalid_code")
			}
		})
	}
}

func TestPortalSessionUnknownLinkToken(t *testing.T) {
	env := apitest.NewEnv(t)
	env.Participant(t, "jane@example.com")
	portalRequestLink(t, env, "jane@example.com")
	before := env.Count(t, "participant_sessions")
	env.Do(t, http.MethodPost, "/v1/portal/sessions", map[string]any{"token": "not-a-token"}).
		ExpectProblem(t, http.StatusUnauthorized, "invalid_login_token")
	if after := env.Count(t, "participant_sessions"); after != before {
		t.Errorf("sessions %d -> %d, want none created", before, after)
	}
}

func TestPortalSessionLinkTokenRace(t *testing.T) {
	env := apitest.NewEnv(t)
	env.Participant(t, "jane@example.com")
	token, _ := portalRequestLink(t, env, "jane@example.com")
	before := env.Count(t, "participant_sessions")

	const n = 10
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			statuses[i] = env.Do(t, http.MethodPost, "/v1/portal/sessions", map[string]any{"token": token}).Status
		})
	}
	wg.Wait()
	won := 0
	for _, s := range statuses {
		switch s {
		case http.StatusCreated:
			won++
		case http.StatusUnauthorized:
		default:
			t.Errorf("status %d, want 201 or 401", s)
		}
	}
	if won != 1 {
		t.Errorf("%d exchanges of one link won, want exactly 1 (statuses %v)", won, statuses)
	}
	if after := env.Count(t, "participant_sessions"); after != before+1 {
		t.Errorf("sessions %d -> %d, want exactly one more", before, after)
	}
}

func TestPortalSessionFromCode(t *testing.T) {
	env := apitest.NewEnv(t)
	p, _ := env.Participant(t, "jane@example.com")
	_, code := portalRequestLink(t, env, "jane@example.com")

	var s portalSession
	env.Do(t, http.MethodPost, "/v1/portal/sessions", map[string]any{"email": "JANE@example.com", "code": code}).
		Expect(t, http.StatusCreated).JSON(t, &s)
	if s.Participant.ID != p.ID.String() || s.Token == "" {
		t.Fatalf("session = %+v, want one for %s", s, p.ID)
	}
	env.Do(t, http.MethodGet, "/v1/portal/me", nil, apitest.Token(s.Token)).Expect(t, http.StatusOK)

	// The code signed her in once; its link is spent.
	env.Do(t, http.MethodPost, "/v1/portal/sessions", map[string]any{"email": "jane@example.com", "code": code}).
		ExpectProblem(t, http.StatusUnauthorized, "invalid_code")
}

func TestPortalSessionCodeUsesNewestLink(t *testing.T) {
	env := apitest.NewEnv(t)
	env.Participant(t, "jane@example.com")
	oldToken, oldCode := portalRequestLink(t, env, "jane@example.com")
	_, newCode := portalRequestLink(t, env, "jane@example.com")
	if oldCode == newCode {
		t.Skip("the two random codes collided (1 in a million)")
	}
	env.Do(t, http.MethodPost, "/v1/portal/sessions", map[string]any{"email": "jane@example.com", "code": oldCode}).
		ExpectProblem(t, http.StatusUnauthorized, "invalid_code")
	env.Do(t, http.MethodPost, "/v1/portal/sessions", map[string]any{"email": "jane@example.com", "code": newCode}).
		Expect(t, http.StatusCreated)
	// The earlier email's link still works: only its code was superseded.
	env.Do(t, http.MethodPost, "/v1/portal/sessions", map[string]any{"token": oldToken}).Expect(t, http.StatusCreated)
}

func TestPortalSessionCodeVoidAfterFiveWrongTries(t *testing.T) {
	env := apitest.NewEnv(t)
	p, _ := env.Participant(t, "jane@example.com")
	_, code := portalRequestLink(t, env, "jane@example.com")
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	// A minute between tries waits out her address's backoff (seconds
	// here), so the link's own limit of five is what voids the code, well
	// inside the link's ten minutes.
	for i := range 5 {
		env.Clock.Advance(time.Minute)
		env.Do(t, http.MethodPost, "/v1/portal/sessions", map[string]any{"email": "jane@example.com", "code": wrong}).
			ExpectProblem(t, http.StatusUnauthorized, "invalid_code")
		var attempts int
		env.DB.Raw(`SELECT code_attempts FROM login_links WHERE participant_id = ?`, p.ID).Scan(&attempts)
		if attempts != i+1 {
			t.Fatalf("after %d wrong codes code_attempts = %d", i+1, attempts)
		}
	}
	before := env.Count(t, "participant_sessions")
	env.Clock.Advance(time.Minute)
	env.Do(t, http.MethodPost, "/v1/portal/sessions", map[string]any{"email": "jane@example.com", "code": code}).
		ExpectProblem(t, http.StatusUnauthorized, "invalid_code")
	if after := env.Count(t, "participant_sessions"); after != before {
		t.Errorf("sessions %d -> %d: the right code worked after 5 wrong tries", before, after)
	}
}

func TestPortalSessionCodeGuessRace(t *testing.T) {
	env := apitest.NewEnv(t)
	// Only the link's own limit races here: her address's backoff would
	// answer some parallel guesses 429 before the link counts them.
	env.Svc.Kernel.Limits.LoginCodeFailuresPerEmail = models.Backoff{}
	p, _ := env.Participant(t, "jane@example.com")
	_, code := portalRequestLink(t, env, "jane@example.com")

	// Ten parallel guesses must not get more than five tries between them.
	const n = 10
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		guess := fmt.Sprintf("%06d", i)
		if guess == code {
			guess = fmt.Sprintf("%06d", n+1)
		}
		wg.Go(func() {
			statuses[i] = env.Do(t, http.MethodPost, "/v1/portal/sessions", map[string]any{"email": "jane@example.com", "code": guess}).Status
		})
	}
	wg.Wait()
	for _, s := range statuses {
		if s != http.StatusUnauthorized {
			t.Errorf("status %d, want 401 for every wrong guess (statuses %v)", s, statuses)
		}
	}
	var attempts int
	env.DB.Raw(`SELECT code_attempts FROM login_links WHERE participant_id = ?`, p.ID).Scan(&attempts)
	if attempts != 5 {
		t.Errorf("code_attempts = %d, want 5", attempts)
	}
	env.Do(t, http.MethodPost, "/v1/portal/sessions", map[string]any{"email": "jane@example.com", "code": code}).
		ExpectProblem(t, http.StatusUnauthorized, "invalid_code")
}

func TestPortalSessionCodeForUnknownEmail(t *testing.T) {
	env := apitest.NewEnv(t)
	env.Do(t, http.MethodPost, "/v1/portal/sessions", map[string]any{"email": "nobody@example.com", "code": "123456"}).
		ExpectProblem(t, http.StatusUnauthorized, "invalid_code")
	if n := env.Count(t, "participant_sessions"); n != 0 {
		t.Errorf("sessions = %d, want 0", n)
	}
}

func TestPortalSessionBadInput(t *testing.T) {
	env := apitest.NewEnv(t)
	env.Participant(t, "jane@example.com")
	token, code := portalRequestLink(t, env, "jane@example.com")
	cases := portalBadBodies(`{"token":"` + token + `"}`)
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"empty object", `{}`, http.StatusUnprocessableEntity, "validation_failed"},
		{"empty token", `{"token":""}`, http.StatusUnprocessableEntity, "validation_failed"},
		{"token and code", `{"token":"` + token + `","code":"` + code + `"}`, http.StatusUnprocessableEntity, "validation_failed"},
		{"token and email and code", `{"token":"` + token + `","email":"jane@example.com","code":"` + code + `"}`, http.StatusUnprocessableEntity, "validation_failed"},
		{"email without code", `{"email":"jane@example.com"}`, http.StatusUnprocessableEntity, "validation_failed"},
		{"code without email", `{"code":"` + code + `"}`, http.StatusUnprocessableEntity, "validation_failed"},
		{"five-digit code", `{"email":"jane@example.com","code":"12345"}`, http.StatusUnprocessableEntity, "validation_failed"},
		{"code with letters", `{"email":"jane@example.com","code":"12345a"}`, http.StatusUnprocessableEntity, "validation_failed"},
		{"bad email", `{"email":"jane","code":"` + code + `"}`, http.StatusUnprocessableEntity, "validation_failed"},
		{"token of wrong type", `{"token":123}`, http.StatusUnprocessableEntity, "validation_failed"},
	} {
		cases = append(cases, tc)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := env.Count(t, "participant_sessions")
			env.Do(t, http.MethodPost, "/v1/portal/sessions", tc.body).ExpectProblem(t, tc.status, tc.code)
			if after := env.Count(t, "participant_sessions"); after != before {
				t.Errorf("sessions %d -> %d, want none created", before, after)
			}
		})
	}
	// None of the refusals spent the link or counted against the code.
	env.Do(t, http.MethodPost, "/v1/portal/sessions", map[string]any{"email": "jane@example.com", "code": code}).Expect(t, http.StatusCreated)
}

func TestPortalLogoutRevokesOnlyThatSession(t *testing.T) {
	env := apitest.NewEnv(t)
	_, first := env.Participant(t, "jane@example.com")
	token, _ := portalRequestLink(t, env, "jane@example.com")
	var second portalSession
	env.Do(t, http.MethodPost, "/v1/portal/sessions", map[string]any{"token": token}).Expect(t, http.StatusCreated).JSON(t, &second)

	env.Do(t, http.MethodDelete, "/v1/portal/sessions/current", nil, apitest.Token(first)).Expect(t, http.StatusNoContent)
	env.Do(t, http.MethodGet, "/v1/portal/me", nil, apitest.Token(first)).ExpectProblem(t, http.StatusUnauthorized, "invalid_token")
	env.Do(t, http.MethodDelete, "/v1/portal/sessions/current", nil, apitest.Token(first)).ExpectProblem(t, http.StatusUnauthorized, "invalid_token")
	env.Do(t, http.MethodGet, "/v1/portal/me", nil, apitest.Token(second.Token)).Expect(t, http.StatusOK)
}

func TestPortalRoutesNeedAParticipantToken(t *testing.T) {
	env := apitest.NewEnv(t)
	_, coachToken := env.Coach(t, "coach@example.com", people.RoleAdmin)
	prog := env.Program(t, "say-no-with-grace", catalog.ProgramPublished, true)
	lesson := env.Lesson(t, prog.ID, "Preview", true, true, 0)
	p, liveToken := env.Participant(t, "jane@example.com")
	env.DB.Model(&people.ParticipantSession{}).Where("participant_id = ?", p.ID).Update("revoked_at", env.Clock.Now())
	expired, expiredToken := env.Participant(t, "expired@example.com")
	env.DB.Model(&people.ParticipantSession{}).Where("participant_id = ?", expired.ID).Update("expires_at", env.Clock.Now())
	for _, tc := range []struct {
		name string
		opts []apitest.Option
		code string
	}{
		{"no token", nil, "unauthorized"},
		{"unknown token", []apitest.Option{apitest.Token("nope")}, "invalid_token"},
		{"coach token", []apitest.Option{apitest.Token(coachToken)}, "invalid_token"},
		{"revoked token", []apitest.Option{apitest.Token(liveToken)}, "invalid_token"},
		{"expired token", []apitest.Option{apitest.Token(expiredToken)}, "invalid_token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env.Do(t, http.MethodGet, "/v1/portal/me", nil, tc.opts...).ExpectProblem(t, http.StatusUnauthorized, tc.code)
			env.Do(t, http.MethodGet, "/v1/portal/programs", nil, tc.opts...).ExpectProblem(t, http.StatusUnauthorized, tc.code)
			// The lesson read may authenticate inside its own query; it must
			// refuse exactly as the middleware does, before looking at the id.
			env.Do(t, http.MethodGet, "/v1/portal/lessons/"+lesson.ID.String(), nil, tc.opts...).ExpectProblem(t, http.StatusUnauthorized, tc.code)
			env.Do(t, http.MethodGet, "/v1/portal/lessons/not-a-uuid", nil, tc.opts...).ExpectProblem(t, http.StatusUnauthorized, tc.code)
			env.Do(t, http.MethodPut, "/v1/portal/lessons/"+lesson.ID.String()+"/completion", nil, tc.opts...).ExpectProblem(t, http.StatusUnauthorized, tc.code)
		})
	}
}

func TestPortalMeIsAlwaysTheCaller(t *testing.T) {
	env := apitest.NewEnv(t)
	a, tokenA := env.Participant(t, "a@example.com")
	b, tokenB := env.Participant(t, "b@example.com")
	for _, tc := range []struct {
		token string
		want  *people.Participant
	}{{tokenA, a}, {tokenB, b}} {
		var me struct {
			ID       string `json:"id"`
			Email    string `json:"email"`
			Timezone string `json:"timezone"`
		}
		env.Do(t, http.MethodGet, "/v1/portal/me", nil, apitest.Token(tc.token)).Expect(t, http.StatusOK).JSON(t, &me)
		if me.ID != tc.want.ID.String() || me.Email != tc.want.Email || me.Timezone != tc.want.Timezone {
			t.Errorf("me = %+v, want %s", me, tc.want.Email)
		}
	}
}

func TestPortalUpdateMe(t *testing.T) {
	env := apitest.NewEnv(t)
	p, token := env.Participant(t, "jane@example.com")
	other, _ := env.Participant(t, "other@example.com")

	var me struct {
		Name     string `json:"name"`
		Timezone string `json:"timezone"`
	}
	env.Do(t, http.MethodPatch, "/v1/portal/me", map[string]any{"name": "  Jane D. ", "timezone": "America/New_York"}, apitest.Token(token)).
		Expect(t, http.StatusOK).JSON(t, &me)
	if me.Name != "Jane D." || me.Timezone != "America/New_York" {
		t.Errorf("updated = %+v", me)
	}
	env.Do(t, http.MethodPatch, "/v1/portal/me", map[string]any{"timezone": "Europe/Paris"}, apitest.Token(token)).
		Expect(t, http.StatusOK).JSON(t, &me)
	if me.Name != "Jane D." || me.Timezone != "Europe/Paris" {
		t.Errorf("omitted name changed: %+v", me)
	}
	var stored people.Participant
	env.DB.Take(&stored, "id = ?", p.ID)
	if stored.Name != "Jane D." || stored.Timezone != "Europe/Paris" {
		t.Errorf("stored = %+v", stored)
	}
	var untouched people.Participant
	env.DB.Take(&untouched, "id = ?", other.ID)
	if untouched.Name != other.Name || untouched.Timezone != other.Timezone {
		t.Errorf("another participant changed: %+v", untouched)
	}

	cases := portalBadBodies(`{"name":"X"}`)
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"unknown time zone", `{"timezone":"Mars/Olympus"}`, http.StatusUnprocessableEntity, "validation_failed"},
		{"Local time zone", `{"timezone":"Local"}`, http.StatusUnprocessableEntity, "validation_failed"},
		{"empty time zone", `{"timezone":""}`, http.StatusUnprocessableEntity, "validation_failed"},
		{"null time zone", `{"timezone":null}`, http.StatusUnprocessableEntity, "validation_failed"},
		{"empty name", `{"name":"  "}`, http.StatusUnprocessableEntity, "validation_failed"},
		{"null name", `{"name":null}`, http.StatusUnprocessableEntity, "validation_failed"},
		{"long name", `{"name":"` + strings.Repeat("n", 201) + `"}`, http.StatusUnprocessableEntity, "validation_failed"},
		{"name of wrong type", `{"name":7}`, http.StatusUnprocessableEntity, "validation_failed"},
		{"email is not hers to change", `{"email":"x@example.com"}`, http.StatusBadRequest, "unknown_field"},
	} {
		cases = append(cases, tc)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env.Do(t, http.MethodPatch, "/v1/portal/me", tc.body, apitest.Token(token)).ExpectProblem(t, tc.status, tc.code)
			var now people.Participant
			env.DB.Take(&now, "id = ?", p.ID)
			if now.Name != "Jane D." || now.Timezone != "Europe/Paris" || now.Email != "jane@example.com" {
				t.Errorf("participant changed by a refused request: %+v", now)
			}
		})
	}
}

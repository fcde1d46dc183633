package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/grace-coaching/grace/api/apitest"
	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/people"
)

// optInToken is the confirmation token of the newest opt-in email to email.
func optInToken(t *testing.T, env *apitest.Env, email string) string {
	t.Helper()
	var msgs []models.OutboxMessage
	env.DB.Where("template = ? AND to_email = ?", people.TemplateMarketingOptIn, email).Order("created_at DESC").Find(&msgs)
	if len(msgs) == 0 {
		t.Fatalf("no opt-in email to %s", email)
	}
	tok, _ := msgs[0].Data["token"].(string)
	if u, _ := msgs[0].Data["confirm_url"].(string); !strings.HasSuffix(u, "/v1/consents/confirm/"+tok) {
		t.Fatalf("confirm_url = %q, want the API's confirm route", u)
	}
	return tok
}

func marketingConsents(t *testing.T, env *apitest.Env, pid any) []models.Consent {
	t.Helper()
	var cs []models.Consent
	env.DB.Where("participant_id = ? AND kind = ?", pid, models.ConsentMarketing).Order("created_at, id").Find(&cs)
	return cs
}

func TestStrangersClaimCannotResubscribeHer(t *testing.T) {
	env := apitest.NewEnv(t)
	env.Program(t, "say-no-with-grace", catalog.ProgramPublished, true)
	her, _ := env.Participant(t, "jane@example.com")
	unsubscribedAt := env.Clock.Now().Add(-time.Hour)
	env.DB.Exec(`UPDATE participants SET marketing_unsubscribed_at = ? WHERE id = ?`, unsubscribedAt, her.ID)

	// A stranger who knows her address ticks the box, twice.
	for range 2 {
		env.Do(t, http.MethodPost, "/v1/programs/say-no-with-grace/free-access", freeAccessBody("jane@example.com", true),
			apitest.FromIP("198.51.100.66"), apitest.Header("User-Agent", "Stranger/1.0")).Expect(t, http.StatusAccepted)
	}
	var p people.Participant
	env.DB.Where("id = ?", her.ID).Take(&p)
	if p.MarketingUnsubscribedAt == nil {
		t.Fatal("a stranger's claim cleared her unsubscribe")
	}
	if cs := marketingConsents(t, env, her.ID); len(cs) != 0 {
		t.Fatalf("a form recorded marketing consents %+v", cs)
	}
	if n := env.Count(t, "marketing_optins"); n != 1 {
		t.Fatalf("opt-in requests = %d, want 1 (one email a day, however many forms)", n)
	}
	token := optInToken(t, env, "jane@example.com")
	path := "/v1/consents/confirm/" + token

	// Looking (a mail scanner) changes nothing.
	var st struct {
		Email     string     `json:"email"`
		Confirmed bool       `json:"confirmed"`
		At        *time.Time `json:"confirmed_at"`
	}
	env.Do(t, http.MethodGet, path, nil).Expect(t, http.StatusOK).JSON(t, &st)
	if st.Confirmed || st.Email != "j***@example.com" {
		t.Fatalf("GET = %+v", st)
	}
	page := env.Do(t, http.MethodGet, path, nil, apitest.Header("Accept", "text/html")).Expect(t, http.StatusOK)
	if !strings.Contains(string(page.Body), `<form method="post">`) || strings.Contains(string(page.Body), "jane@example.com") {
		t.Fatalf("page: %s", page.Body)
	}
	if cs := marketingConsents(t, env, her.ID); len(cs) != 0 {
		t.Fatal("GET recorded a consent")
	}

	// She confirms from her inbox: her request is the evidence.
	env.Clock.Advance(time.Minute)
	env.Do(t, http.MethodPost, path, "List-Unsubscribe=ignored", apitest.FromIP("203.0.113.9"),
		apitest.Header("User-Agent", "HerPhone/2.0"), apitest.Header("Content-Type", "application/x-www-form-urlencoded")).
		Expect(t, http.StatusOK).JSON(t, &st)
	if !st.Confirmed || st.At == nil {
		t.Fatalf("POST = %+v", st)
	}
	first := *st.At
	env.Do(t, http.MethodPost, path, nil).Expect(t, http.StatusOK).JSON(t, &st)
	if !st.At.Equal(first) {
		t.Errorf("second confirm moved confirmed_at %v -> %v", first, st.At)
	}
	cs := marketingConsents(t, env, her.ID)
	if len(cs) != 1 || !cs[0].Granted || cs[0].IP == nil || *cs[0].IP != "203.0.113.9" || cs[0].UserAgent == nil || *cs[0].UserAgent != "HerPhone/2.0" {
		t.Fatalf("consents = %+v, want one grant with her confirming request's evidence", cs)
	}
	var after people.Participant
	env.DB.Where("id = ?", her.ID).Take(&after)
	if after.MarketingUnsubscribedAt != nil || after.EmailVerifiedAt == nil {
		t.Fatalf("after confirming: unsubscribed_at %v, verified %v", after.MarketingUnsubscribedAt, after.EmailVerifiedAt)
	}

	// A form's no afterwards withdraws nothing.
	env.Do(t, http.MethodPost, "/v1/programs/say-no-with-grace/free-access", freeAccessBody("jane@example.com", false),
		apitest.FromIP("198.51.100.66")).Expect(t, http.StatusAccepted)
	if cs := marketingConsents(t, env, her.ID); len(cs) != 1 || !cs[0].Granted {
		t.Fatalf("a form's no changed her consents: %+v", cs)
	}
}

func TestConsentConfirmBadLinks(t *testing.T) {
	env := apitest.NewEnv(t)
	env.Program(t, "say-no-with-grace", catalog.ProgramPublished, true)
	for _, tok := range []string{"short", strings.Repeat("x", 43), strings.Repeat("é", 40)} {
		env.Do(t, http.MethodGet, "/v1/consents/confirm/"+tok, nil).ExpectProblem(t, http.StatusNotFound, "not_found")
		env.Do(t, http.MethodPost, "/v1/consents/confirm/"+tok, nil).ExpectProblem(t, http.StatusNotFound, "not_found")
	}
	env.Do(t, http.MethodPost, "/v1/programs/say-no-with-grace/free-access", freeAccessBody("new@example.com", true)).
		Expect(t, http.StatusAccepted)
	token := optInToken(t, env, "new@example.com")
	env.Clock.Advance(people.MarketingOptInTTL)
	env.Do(t, http.MethodGet, "/v1/consents/confirm/"+token, nil).ExpectProblem(t, http.StatusGone, "optin_expired")
	env.Do(t, http.MethodPost, "/v1/consents/confirm/"+token, nil).ExpectProblem(t, http.StatusGone, "optin_expired")
	if n := env.Count(t, "consents"); n != 1 { // the disclaimer
		t.Errorf("consents = %d, want the disclaimer alone", n)
	}
}

func TestTypedNamesMustBePlainText(t *testing.T) {
	env := apitest.NewEnv(t)
	env.Program(t, "say-no-with-grace", catalog.ProgramPublished, true)
	_, portalToken := env.Participant(t, "pat@example.com")
	for _, name := range []string{
		"Jane\r\nBcc: you", "Jane\nDoe", "Visit https://evil.example", "www.evil.example", "go to evil.example now",
		"jane@example.com", "Jane\u202egnp.exe", strings.Repeat("a", 101), "hxxp://x", "Jane\u0000",
	} {
		t.Run(fmt.Sprintf("%q", name), func(t *testing.T) {
			body := freeAccessBody("jane@example.com", false)
			body["name"] = name
			res := env.Do(t, http.MethodPost, "/v1/programs/say-no-with-grace/free-access", body)
			if res.Status != http.StatusUnprocessableEntity && res.Status != http.StatusBadRequest {
				t.Fatalf("claim: status %d, want 422: %s", res.Status, res.Body)
			}
			if p := res.Problem(t); len(p.Errors) == 0 || p.Errors[0].Field != "name" {
				t.Fatalf("problem %+v does not name the field", p)
			}
			res = env.Do(t, http.MethodPatch, "/v1/portal/me", map[string]any{"name": name}, apitest.Token(portalToken))
			if res.Status != http.StatusUnprocessableEntity && res.Status != http.StatusBadRequest {
				t.Fatalf("portal: status %d, want 422: %s", res.Status, res.Body)
			}
		})
	}
	if n := env.Count(t, "participants"); n != 1 {
		t.Errorf("participants = %d: a refused claim wrote one", n)
	}
	for _, name := range []string{"Jane O'Brien", "José María", "李小龙", "J. R. R. Tolkien", "Anne-Marie St. Clair"} {
		body := freeAccessBody("ok@example.com", false)
		body["name"] = name
		env.Do(t, http.MethodPost, "/v1/programs/say-no-with-grace/free-access", body).Expect(t, http.StatusAccepted)
	}
}

func TestUnprovenAddressIsNotGreetedByTypedName(t *testing.T) {
	env := apitest.NewEnv(t)
	env.Program(t, "say-no-with-grace", catalog.ProgramPublished, true)
	body := freeAccessBody("jane@example.com", false)
	body["name"] = "Your Ex"
	env.Do(t, http.MethodPost, "/v1/programs/say-no-with-grace/free-access", body).Expect(t, http.StatusAccepted)
	var msg models.OutboxMessage
	env.DB.Where("template = ?", models.TemplateLoginLink).Take(&msg)
	if msg.ToName != "" || msg.Data["name"] != "" {
		t.Fatalf("login email to an unproven address carries the typed name: to %q, data %v", msg.ToName, msg.Data["name"])
	}
	// She signs in with the code: her address is proven, and the next
	// email may greet her by her own name.
	code, _ := msg.Data["code"].(string)
	env.Do(t, http.MethodPost, "/v1/portal/sessions", map[string]any{"email": "jane@example.com", "code": code}).Expect(t, http.StatusCreated)
	env.Do(t, http.MethodPatch, "/v1/portal/me", map[string]any{"name": "Jane"}, apitest.Token(portalSessionToken(t, env, "jane@example.com"))).
		Expect(t, http.StatusOK)
	env.Clock.Advance(time.Second)
	env.Do(t, http.MethodPost, "/v1/portal/login-links", map[string]any{"email": "jane@example.com"}).Expect(t, http.StatusAccepted)
	var latest models.OutboxMessage
	env.DB.Where("template = ?", models.TemplateLoginLink).Order("created_at DESC, id DESC").First(&latest)
	if latest.ToName != "Jane" || latest.Data["name"] != "Jane" {
		t.Fatalf("after sign-in: to %q, data %v, want her name", latest.ToName, latest.Data["name"])
	}
}

// portalSessionToken signs her in again with a fresh code and returns the token.
func portalSessionToken(t *testing.T, env *apitest.Env, email string) string {
	t.Helper()
	env.Clock.Advance(time.Second) // the newest email is the last one
	env.Do(t, http.MethodPost, "/v1/portal/login-links", map[string]any{"email": email}).Expect(t, http.StatusAccepted)
	var msg models.OutboxMessage
	env.DB.Where("template = ? AND to_email = ?", models.TemplateLoginLink, email).Order("created_at DESC, id DESC").First(&msg)
	var out struct {
		Token string `json:"token"`
	}
	env.Do(t, http.MethodPost, "/v1/portal/sessions", map[string]any{"email": email, "code": msg.Data["code"]}).Expect(t, http.StatusCreated).JSON(t, &out)
	return out.Token
}

func TestPortalSignOutEverywhere(t *testing.T) {
	env := apitest.NewEnv(t)
	_, first := env.Participant(t, "jane@example.com")
	second := portalSessionToken(t, env, "jane@example.com")
	// A link she was sent and has not used: someone reading her mail later
	// must not get in with it.
	env.Clock.Advance(time.Second)
	env.Do(t, http.MethodPost, "/v1/portal/login-links", map[string]any{"email": "jane@example.com"}).Expect(t, http.StatusAccepted)
	var msg models.OutboxMessage
	env.DB.Where("template = ?", models.TemplateLoginLink).Order("created_at DESC, id DESC").First(&msg)

	env.Do(t, http.MethodPost, "/v1/portal/sessions/revoke-all", nil, apitest.Token(second)).Expect(t, http.StatusNoContent)
	for _, tok := range []string{first, second} {
		env.Do(t, http.MethodGet, "/v1/portal/me", nil, apitest.Token(tok)).ExpectProblem(t, http.StatusUnauthorized, "invalid_token")
	}
	env.Do(t, http.MethodPost, "/v1/portal/sessions", map[string]any{"email": "jane@example.com", "code": msg.Data["code"]}).
		ExpectProblem(t, http.StatusUnauthorized, "invalid_code")
	env.Do(t, http.MethodPost, "/v1/portal/sessions", map[string]any{"token": msg.Data["token"]}).
		ExpectProblem(t, http.StatusUnauthorized, "invalid_login_token")
	env.Do(t, http.MethodPost, "/v1/portal/sessions/revoke-all", nil, apitest.Token(second)).ExpectProblem(t, http.StatusUnauthorized, "invalid_token")
	env.Do(t, http.MethodPost, "/v1/portal/sessions/revoke-all", nil).ExpectProblem(t, http.StatusUnauthorized, "unauthorized")
}

const coachPassword = "correct horse battery"

// coachLogin logs in through the API and returns the token and the
// grace_device cookie it set.
func coachLogin(t *testing.T, env *apitest.Env, email, device, ip string) (*apitest.Response, string, string) {
	t.Helper()
	opts := []apitest.Option{apitest.FromIP(ip)}
	if device != "" {
		opts = append(opts, apitest.Header("Cookie", "grace_device="+device))
	}
	res := env.Do(t, http.MethodPost, "/v1/auth/login", map[string]any{"email": email, "password": coachPassword}, opts...)
	if res.Status != http.StatusOK {
		return res, "", ""
	}
	var out struct {
		Token string `json:"token"`
	}
	res.JSON(t, &out)
	for _, line := range res.Header.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		if err != nil || c.Name != "grace_device" {
			continue
		}
		if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.MaxAge < 300*24*3600 || c.Value == "" {
			t.Fatalf("device cookie %q: want HttpOnly, SameSite=Strict, long-lived", line)
		}
		return res, out.Token, c.Value
	}
	t.Fatalf("login set no grace_device cookie: %v", res.Header)
	return nil, "", ""
}

func TestKnownDeviceLogsInDuringAFlood(t *testing.T) {
	env := apitest.NewEnv(t)
	ctx := context.Background()
	for _, email := range []string{"ada@example.com", "bea@example.com"} {
		if _, err := env.Svc.People.CreateCoach(ctx, people.CreateCoachInput{Email: email, Name: "Coach", Role: people.RoleCoach, Password: coachPassword}); err != nil {
			t.Fatal(err)
		}
	}
	_, _, adaDevice := coachLogin(t, env, "ada@example.com", "", "198.51.100.7")
	_, _, beaDevice := coachLogin(t, env, "bea@example.com", "", "192.0.2.1")

	// The flood: one hash a minute for everyone, and guesses from her own
	// network until it and her address are backed off and limited.
	lim := &env.Svc.Kernel.Limits
	lim.PasswordHashes = models.Budget{Rate: 1.0 / 60, Burst: 1}
	lim.LoginPerNetwork = models.RateLimit{Max: 10, Window: 15 * time.Minute}
	refused := 0
	for i := range 30 {
		res := env.Do(t, http.MethodPost, "/v1/auth/login", map[string]any{"email": fmt.Sprintf("x%d@example.com", i), "password": "wrong password!"},
			apitest.FromIP(fmt.Sprintf("198.51.100.%d", 100+i%50)))
		if res.Status == http.StatusTooManyRequests {
			refused++
		}
	}
	if refused < 25 {
		t.Fatalf("flood: %d of 30 refused, want the limits to bite", refused)
	}

	// Her own device still gets in, from the flooded network.
	res, token, again := coachLogin(t, env, "ada@example.com", adaDevice, "198.51.100.7")
	if res.Status != http.StatusOK || token == "" || again == "" {
		t.Fatalf("known device during the flood: %d %s", res.Status, res.Body)
	}
	env.Do(t, http.MethodGet, "/v1/auth/me", nil, apitest.Token(token)).Expect(t, http.StatusOK)

	// No cookie, a forged one, or another coach's: no privilege.
	forged := adaDevice[:len(adaDevice)-2] + "AA"
	if forged == adaDevice {
		forged = adaDevice[:len(adaDevice)-2] + "BB"
	}
	for name, device := range map[string]string{"unknown": "", "forged": forged, "another coach's": beaDevice, "garbage": "v1.%%%"} {
		res, _, _ := coachLogin(t, env, "ada@example.com", device, "198.51.100.7")
		if res.Status != http.StatusTooManyRequests {
			t.Errorf("%s device: status %d, want 429", name, res.Status)
		}
	}
}

func TestCoachSignOutEverywhere(t *testing.T) {
	env := apitest.NewEnv(t)
	if _, err := env.Svc.People.CreateCoach(context.Background(), people.CreateCoachInput{Email: "ada@example.com", Name: "Ada", Role: people.RoleCoach, Password: coachPassword}); err != nil {
		t.Fatal(err)
	}
	_, first, device := coachLogin(t, env, "ada@example.com", "", "198.51.100.7")
	_, second, _ := coachLogin(t, env, "ada@example.com", "", "203.0.113.7")

	res := env.Do(t, http.MethodPost, "/v1/auth/sessions/revoke-all", nil, apitest.Token(first)).Expect(t, http.StatusNoContent)
	if c, err := http.ParseSetCookie(res.Header.Get("Set-Cookie")); err != nil || c.Name != "grace_device" || c.MaxAge >= 0 {
		t.Errorf("revoke-all should clear the device cookie: %q", res.Header.Get("Set-Cookie"))
	}
	for _, tok := range []string{first, second} {
		env.Do(t, http.MethodGet, "/v1/auth/me", nil, apitest.Token(tok)).ExpectProblem(t, http.StatusUnauthorized, "invalid_token")
	}
	env.Do(t, http.MethodPost, "/v1/auth/sessions/revoke-all", nil, apitest.Token(first)).ExpectProblem(t, http.StatusUnauthorized, "invalid_token")
	var live int64
	env.DB.Table("coach_devices").Where("revoked_at IS NULL").Count(&live)
	if live != 0 {
		t.Fatalf("%d devices still known after sign-out everywhere", live)
	}
	// The forgotten device is an unknown one again: under a spent budget it
	// is refused like any other.
	env.Svc.Kernel.Limits.PasswordHashes = models.Budget{Rate: 1.0 / 3600, Burst: 1}
	env.Do(t, http.MethodPost, "/v1/auth/login", map[string]any{"email": "z@example.com", "password": "wrong password!"}).Expect(t, http.StatusUnauthorized)
	if res, _, _ := coachLogin(t, env, "ada@example.com", device, "198.51.100.7"); res.Status != http.StatusTooManyRequests {
		t.Errorf("revoked device: status %d, want 429", res.Status)
	}
}

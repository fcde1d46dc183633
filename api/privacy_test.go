package api_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/google/uuid"

	"github.com/grace-coaching/grace/api/apitest"
	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/people"
)

// privacyWorld is a woman who claimed a free program and signed in, and
// the admin and a coach who run it.
type privacyWorld struct {
	env                 *apitest.Env
	token, admin, coach string
	lesson              *catalog.Lesson
	participantID       uuid.UUID
}

func newPrivacyWorld(t *testing.T) *privacyWorld {
	t.Helper()
	env := apitest.NewEnv(t)
	prog := env.Program(t, "say-no-with-grace", catalog.ProgramPublished, true)
	lesson := env.Lesson(t, prog.ID, "Day one", true, false, 0)
	env.Do(t, http.MethodPost, "/v1/programs/say-no-with-grace/free-access", freeAccessBody("zelda@example.org", false),
		apitest.FromIP("198.51.100.7")).Expect(t, http.StatusAccepted)
	loginToken, _ := portalLastLogin(t, env, "zelda@example.org")
	var s struct {
		Token       string `json:"token"`
		Participant struct {
			ID uuid.UUID `json:"id"`
		} `json:"participant"`
	}
	env.Do(t, http.MethodPost, "/v1/portal/sessions", map[string]any{"token": loginToken}).Expect(t, http.StatusCreated).JSON(t, &s)
	_, admin := env.Coach(t, "admin@grace.test", people.RoleAdmin)
	_, coach := env.Coach(t, "coach@grace.test", people.RoleCoach)
	return &privacyWorld{env: env, token: s.Token, admin: admin, coach: coach, lesson: lesson, participantID: s.Participant.ID}
}

func TestConsentDocumentsAreReadableAndAdminEditable(t *testing.T) {
	w := newPrivacyWorld(t)
	env := w.env
	var doc struct {
		Kind    string `json:"kind"`
		Version int    `json:"version"`
		Text    string `json:"text"`
	}
	for _, kind := range []string{"disclaimer", "privacy", "marketing"} {
		env.Do(t, http.MethodGet, "/v1/consents/"+kind, nil).Expect(t, http.StatusOK).JSON(t, &doc)
		if doc.Kind != kind || doc.Version != 1 || doc.Text == "" {
			t.Errorf("GET %s = %+v", kind, doc)
		}
	}
	env.Do(t, http.MethodGet, "/v1/consents/cookies", nil).ExpectProblem(t, http.StatusNotFound, "not_found")

	path := "/v1/admin/consents/privacy"
	env.Do(t, http.MethodPut, path, map[string]any{"text": "x"}).ExpectProblem(t, http.StatusUnauthorized, "unauthorized")
	env.Do(t, http.MethodPut, path, map[string]any{"text": "x"}, apitest.Token(w.coach)).ExpectProblem(t, http.StatusForbidden, "forbidden")
	for _, tc := range []struct {
		body   any
		status int
	}{
		{map[string]any{}, http.StatusUnprocessableEntity},
		{map[string]any{"text": 7}, http.StatusUnprocessableEntity},
		{map[string]any{"text": "  "}, http.StatusUnprocessableEntity},
		{map[string]any{"text": "x", "version": 3}, http.StatusBadRequest},
	} {
		res := env.Do(t, http.MethodPut, path, tc.body, apitest.Token(w.admin))
		if res.Status != tc.status {
			t.Errorf("PUT %v = %d, want %d", tc.body, res.Status, tc.status)
		}
	}
	env.Do(t, http.MethodPut, "/v1/admin/consents/cookies", map[string]any{"text": "x"}, apitest.Token(w.admin)).ExpectProblem(t, http.StatusNotFound, "not_found")
	text := "## Privacy\n\nWe keep *little*."
	env.Do(t, http.MethodPut, path, map[string]any{"text": text}, apitest.Token(w.admin)).Expect(t, http.StatusCreated).JSON(t, &doc)
	if doc.Version != 2 || doc.Text != text {
		t.Errorf("edit = %+v", doc)
	}
	env.Do(t, http.MethodPut, path, map[string]any{"text": text}, apitest.Token(w.admin)).Expect(t, http.StatusOK).JSON(t, &doc)
	if doc.Version != 2 {
		t.Errorf("the same text again made version %d", doc.Version)
	}
	// A privacy notice change asks nothing of her: only the disclaimer gates.
	env.Do(t, http.MethodGet, "/v1/portal/me", nil, apitest.Token(w.token)).Expect(t, http.StatusOK)
}

func TestConsentVersionChangeForcesReacceptance(t *testing.T) {
	w := newPrivacyWorld(t)
	env := w.env
	lesson := lessonPath(w.lesson.ID)
	env.Do(t, http.MethodGet, lesson, nil, apitest.Token(w.token)).Expect(t, http.StatusOK)
	env.Do(t, http.MethodPut, "/v1/admin/consents/disclaimer", map[string]any{"text": "Coaching, still not therapy: new words."},
		apitest.Token(w.admin)).Expect(t, http.StatusCreated)

	// Her next portal requests, the one-round-trip lesson read included,
	// name the text and version she must accept.
	for _, path := range []string{"/v1/portal/me", "/v1/portal/programs", lesson} {
		res := env.Do(t, http.MethodGet, path, nil, apitest.Token(w.token))
		res.ExpectProblem(t, http.StatusForbidden, "consent_required")
		var body map[string]any
		res.JSON(t, &body)
		if body["consent_kind"] != "disclaimer" || body["consent_version"] != float64(2) {
			t.Errorf("%s: problem = %v, want consent_kind disclaimer, consent_version 2", path, body)
		}
	}
	// A bad token is still 401 first.
	env.Do(t, http.MethodGet, lesson, nil, apitest.Token("nope")).ExpectProblem(t, http.StatusUnauthorized, "invalid_token")
	// Her data rights never wait on her agreeing: who read her data stays open.
	env.Do(t, http.MethodGet, "/v1/portal/access-log", nil, apitest.Token(w.token)).Expect(t, http.StatusOK)

	accept := "/v1/portal/consents"
	env.Do(t, http.MethodPost, accept, map[string]any{"kind": "disclaimer", "version": 1}, apitest.Token(w.token)).
		ExpectProblem(t, http.StatusConflict, "consent_version_stale")
	env.Do(t, http.MethodPost, accept, map[string]any{"kind": "cookies", "version": 2}, apitest.Token(w.token)).
		ExpectProblem(t, http.StatusUnprocessableEntity, "validation_failed")
	env.Do(t, http.MethodPost, accept, map[string]any{"kind": "disclaimer"}, apitest.Token(w.token)).
		ExpectProblem(t, http.StatusUnprocessableEntity, "validation_failed")
	env.Do(t, http.MethodPost, accept, map[string]any{"kind": "disclaimer", "version": 2}).ExpectProblem(t, http.StatusUnauthorized, "unauthorized")
	before := env.Count(t, "consents")
	var c struct {
		Version string `json:"version"`
		Granted bool   `json:"granted"`
	}
	for i := 0; i < 2; i++ {
		env.Do(t, http.MethodPost, accept, map[string]any{"kind": "disclaimer", "version": 2}, apitest.Token(w.token),
			apitest.FromIP("198.51.100.8")).Expect(t, http.StatusOK).JSON(t, &c)
	}
	if c.Version != "2" || !c.Granted || env.Count(t, "consents") != before+1 {
		t.Errorf("acceptance = %+v, %d new consent rows; want one, version 2", c, env.Count(t, "consents")-before)
	}
	var ip *string
	env.DB.Raw(`SELECT host(ip) FROM consents WHERE text_version = '2' AND kind = 'disclaimer'`).Row().Scan(&ip)
	if ip == nil || *ip != "198.51.100.8" {
		t.Errorf("acceptance evidence ip = %v", ip)
	}
	env.Do(t, http.MethodGet, "/v1/portal/me", nil, apitest.Token(w.token)).Expect(t, http.StatusOK)
	env.Do(t, http.MethodGet, lesson, nil, apitest.Token(w.token)).Expect(t, http.StatusOK)
}

func TestExportAndEraseThroughThePortal(t *testing.T) {
	w := newPrivacyWorld(t)
	env := w.env
	env.Do(t, http.MethodGet, "/v1/portal/me/export", nil).ExpectProblem(t, http.StatusUnauthorized, "unauthorized")
	res := env.Do(t, http.MethodGet, "/v1/portal/me/export", nil, apitest.Token(w.token)).Expect(t, http.StatusOK)
	if res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("export Cache-Control = %q", res.Header.Get("Cache-Control"))
	}
	var x struct {
		Tables map[string][]json.RawMessage `json:"tables"`
	}
	res.JSON(t, &x)
	for _, table := range []string{"participants", "consents", "access_grants", "outbox", "participant_sessions"} {
		if len(x.Tables[table]) == 0 {
			t.Errorf("export has no %s", table)
		}
	}

	env.Do(t, http.MethodPost, "/v1/portal/me/erase-code", nil, apitest.Token(w.token)).Expect(t, http.StatusAccepted)
	var code string
	env.DB.Raw(`SELECT data->>'code' FROM outbox WHERE template = ?`, models.TemplateEraseCode).Row().Scan(&code)
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	env.Do(t, http.MethodDelete, "/v1/portal/me", map[string]any{"code": "12"}, apitest.Token(w.token)).
		ExpectProblem(t, http.StatusUnprocessableEntity, "validation_failed")
	env.Do(t, http.MethodDelete, "/v1/portal/me", map[string]any{}, apitest.Token(w.token)).
		ExpectProblem(t, http.StatusUnprocessableEntity, "validation_failed")
	env.Do(t, http.MethodDelete, "/v1/portal/me", map[string]any{"code": wrong}, apitest.Token(w.token)).
		ExpectProblem(t, http.StatusForbidden, "invalid_code")
	env.Do(t, http.MethodDelete, "/v1/portal/me", map[string]any{"code": code}, apitest.Token(w.token)).Expect(t, http.StatusNoContent)
	// Signed out everywhere, and nothing of her left to sign in to.
	env.Do(t, http.MethodGet, "/v1/portal/me", nil, apitest.Token(w.token)).ExpectProblem(t, http.StatusUnauthorized, "invalid_token")
	var n int64
	env.DB.Raw(`SELECT count(*) FROM participants WHERE email = 'zelda@example.org'`).Row().Scan(&n)
	if n != 0 {
		t.Error("her address is still on her row")
	}
	env.Do(t, http.MethodPost, "/v1/portal/login-links", map[string]any{"email": "zelda@example.org"}).Expect(t, http.StatusAccepted)
	env.DB.Raw(`SELECT count(*) FROM outbox WHERE to_email = 'zelda@example.org'`).Row().Scan(&n)
	if n != 0 {
		t.Errorf("%d emails queued to her erased address", n)
	}
}

func TestAdminEraseIsIdempotentAndAdminOnly(t *testing.T) {
	w := newPrivacyWorld(t)
	env := w.env
	path := "/v1/admin/participants/" + w.participantID.String() + "/erase"
	env.Do(t, http.MethodPost, path, nil, apitest.Token(w.coach)).ExpectProblem(t, http.StatusForbidden, "forbidden")
	env.Do(t, http.MethodPost, "/v1/admin/participants/not-a-uuid/erase", nil, apitest.Token(w.admin)).ExpectProblem(t, http.StatusNotFound, "not_found")
	env.Do(t, http.MethodPost, "/v1/admin/participants/"+uuid.NewString()+"/erase", nil, apitest.Token(w.admin)).ExpectProblem(t, http.StatusNotFound, "not_found")
	var first, second struct {
		ErasedAt string `json:"erased_at"`
	}
	env.Do(t, http.MethodPost, path, nil, apitest.Token(w.admin)).Expect(t, http.StatusOK).JSON(t, &first)
	env.Do(t, http.MethodPost, path, nil, apitest.Token(w.admin)).Expect(t, http.StatusOK).JSON(t, &second)
	if first.ErasedAt == "" || first.ErasedAt != second.ErasedAt {
		t.Errorf("erased_at %q then %q, want the first erasure's time twice", first.ErasedAt, second.ErasedAt)
	}
	env.Do(t, http.MethodGet, "/v1/portal/me", nil, apitest.Token(w.token)).ExpectProblem(t, http.StatusUnauthorized, "invalid_token")
}

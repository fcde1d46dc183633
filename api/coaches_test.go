package api_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/grace-coaching/grace/api/apitest"
	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/people"
)

type acctCoachList struct {
	Data       []acctCoach `json:"data"`
	NextCursor *string     `json:"next_cursor"`
}

func TestCoachAdminRoutesAreForAdminsOnly(t *testing.T) {
	env := apitest.NewEnv(t)
	admin, _ := env.Coach(t, "admin@example.com", people.RoleAdmin)
	_, coachToken := env.Coach(t, "coach@example.com", people.RoleCoach)
	_, portalToken := env.Participant(t, "p@example.com")

	path := "/v1/admin/coaches/" + admin.ID.String()
	requests := []struct {
		method, path string
		body         any
	}{
		{"GET", "/v1/admin/coaches", nil},
		{"POST", "/v1/admin/coaches", map[string]string{"email": "new@example.com", "name": "New", "role": "admin"}},
		{"PATCH", path, map[string]any{"role": "coach"}},
		{"DELETE", path, nil},
	}
	before := acctSnapshot(t, env)
	for _, r := range requests {
		t.Run(r.method, func(t *testing.T) {
			env.Do(t, r.method, r.path, r.body, apitest.Token(coachToken)).ExpectProblem(t, 403, "forbidden")
			env.Do(t, r.method, r.path, r.body, apitest.Token(portalToken)).ExpectProblem(t, 401, "invalid_token")
			env.Do(t, r.method, r.path, r.body).ExpectProblem(t, 401, "unauthorized")
		})
	}
	if after := acctSnapshot(t, env); after != before {
		t.Fatalf("refused requests changed rows:\nbefore %s\nafter  %s", before, after)
	}
}

func TestCoachInvite(t *testing.T) {
	env := apitest.NewEnv(t)
	_, adminToken := env.Coach(t, "admin@example.com", people.RoleAdmin)

	var created acctCoach
	env.Do(t, "POST", "/v1/admin/coaches", map[string]string{"email": "Maya@Example.com", "name": "  Maya Brooks ", "role": "coach"}, apitest.Token(adminToken)).
		Expect(t, 201).JSON(t, &created)
	if created.Email != "maya@example.com" || created.Name != "Maya Brooks" || created.Role != "coach" || !created.Active {
		t.Fatalf("created = %+v", created)
	}
	if want := env.Clock.Now().Format(time.RFC3339); created.CreatedAt != want {
		t.Fatalf("created_at = %s, want %s", created.CreatedAt, want)
	}
	msg, token := acctOnlyEmail(t, env, models.TemplateCoachInvite, "maya@example.com")
	if msg.ToName != "Maya Brooks" || msg.Data["name"] != "Maya Brooks" || msg.Data["inviter_name"] != "Coach admin@example.com" || msg.Data["expires_hours"] != float64(168) {
		t.Fatalf("invite email = %+v", msg)
	}

	// Until she accepts, there is no password that works, not even an empty one.
	acctLoginAs(t, env, "maya@example.com", "").ExpectProblem(t, 422, "validation_failed")
	acctLoginAs(t, env, "maya@example.com", "anything at all").ExpectProblem(t, 401, "invalid_credentials")

	env.Do(t, "POST", "/v1/auth/password-resets/confirm", map[string]string{"token": token, "password": "maya's own password"}).Expect(t, 204)
	var me acctCoach
	env.Do(t, "GET", "/v1/auth/me", nil, apitest.Token(acctToken(t, env, "maya@example.com", "maya's own password"))).Expect(t, 200).JSON(t, &me)
	if me != created {
		t.Fatalf("me = %+v, want %+v", me, created)
	}
	env.Do(t, "POST", "/v1/auth/password-resets/confirm", map[string]string{"token": token, "password": "someone else's pass"}).
		ExpectProblem(t, 422, "invalid_token")
}

func TestCoachInviteExpiresAfterSevenDays(t *testing.T) {
	env := apitest.NewEnv(t)
	_, adminToken := env.Coach(t, "admin@example.com", people.RoleAdmin)
	env.Do(t, "POST", "/v1/admin/coaches", map[string]string{"email": "maya@example.com", "name": "Maya", "role": "coach"}, apitest.Token(adminToken)).Expect(t, 201)
	_, token := acctOnlyEmail(t, env, models.TemplateCoachInvite, "maya@example.com")

	env.Clock.Advance(people.InviteTTL + time.Second)
	env.Do(t, "POST", "/v1/auth/password-resets/confirm", map[string]string{"token": token, "password": "maya's own password"}).
		ExpectProblem(t, 422, "invalid_token")
	acctLoginAs(t, env, "maya@example.com", "maya's own password").ExpectProblem(t, 401, "invalid_credentials")
}

func TestCoachInviteDuplicateEmailLeavesNoEmail(t *testing.T) {
	env := apitest.NewEnv(t)
	_, adminToken := env.Coach(t, "admin@example.com", people.RoleAdmin)
	before := acctSnapshot(t, env)
	env.Do(t, "POST", "/v1/admin/coaches", map[string]string{"email": "ADMIN@example.com", "name": "Twin", "role": "coach"}, apitest.Token(adminToken)).
		ExpectProblem(t, 409, "email_taken")
	if after := acctSnapshot(t, env); after != before {
		t.Fatalf("a failed invite changed rows:\nbefore %s\nafter  %s", before, after)
	}
	if n := env.Count(t, "outbox"); n != 0 {
		t.Fatalf("%d emails queued by a failed invite", n)
	}
}

func TestCoachList(t *testing.T) {
	env := apitest.NewEnv(t)
	_, adminToken := env.Coach(t, "admin@example.com", people.RoleAdmin)
	var invited []string
	for _, email := range []string{"a@example.com", "b@example.com", "c@example.com"} {
		env.Clock.Advance(time.Second)
		var c acctCoach
		env.Do(t, "POST", "/v1/admin/coaches", map[string]string{"email": email, "name": email, "role": "coach"}, apitest.Token(adminToken)).Expect(t, 201).JSON(t, &c)
		invited = append(invited, c.ID)
	}
	env.Do(t, "DELETE", "/v1/admin/coaches/"+invited[1], nil, apitest.Token(adminToken)).Expect(t, 204)

	var all []acctCoach
	path := "/v1/admin/coaches?limit=2"
	for pages := 0; ; pages++ {
		if pages > 2 {
			t.Fatal("pagination does not end")
		}
		var page acctCoachList
		env.Do(t, "GET", path, nil, apitest.Token(adminToken)).Expect(t, 200).JSON(t, &page)
		all = append(all, page.Data...)
		if page.NextCursor == nil {
			break
		}
		path = "/v1/admin/coaches?limit=2&cursor=" + *page.NextCursor
	}
	// The fixture admin was written with the real clock, the invites with the
	// fake one, so only the invites' relative order is known.
	var got []string
	for _, c := range all {
		if c.Email != "admin@example.com" {
			got = append(got, c.ID)
		}
		if (c.ID == invited[1]) == c.Active {
			t.Errorf("coach %s active = %v", c.Email, c.Active)
		}
	}
	if len(all) != 4 || strings.Join(got, ",") != strings.Join(invited, ",") {
		t.Fatalf("listed %+v", all)
	}

	env.Do(t, "GET", "/v1/admin/coaches?limit=0", nil, apitest.Token(adminToken)).ExpectProblem(t, 400, "invalid_query")
	env.Do(t, "GET", "/v1/admin/coaches?cursor=bogus", nil, apitest.Token(adminToken)).ExpectProblem(t, 400, "invalid_cursor")
}

func TestCoachUpdate(t *testing.T) {
	env := apitest.NewEnv(t)
	_, adminToken := env.Coach(t, "admin@example.com", people.RoleAdmin)
	maya := acctCoachWithPassword(t, env, "maya@example.com", people.RoleCoach)
	path := "/v1/admin/coaches/" + maya.ID.String()
	auth := apitest.Token(adminToken)

	var got acctCoach
	env.Do(t, "PATCH", path, map[string]any{"name": "Maya B."}, auth).Expect(t, 200).JSON(t, &got)
	if got.Name != "Maya B." || got.Role != "coach" || !got.Active || got.Email != "maya@example.com" {
		t.Fatalf("after rename = %+v", got)
	}
	env.Do(t, "PATCH", path, map[string]any{"role": "admin"}, auth).Expect(t, 200).JSON(t, &got)
	if got.Name != "Maya B." || got.Role != "admin" {
		t.Fatalf("after promotion = %+v", got)
	}
	// An empty patch changes nothing and says so.
	env.Do(t, "PATCH", path, map[string]any{}, auth).Expect(t, 200).JSON(t, &got)
	if got.Name != "Maya B." || got.Role != "admin" || !got.Active {
		t.Fatalf("after empty patch = %+v", got)
	}

	env.Do(t, "PATCH", "/v1/admin/coaches/"+uuid.NewString(), map[string]any{"name": "X"}, auth).ExpectProblem(t, 404, "not_found")
	env.Do(t, "PATCH", "/v1/admin/coaches/not-a-uuid", map[string]any{"name": "X"}, auth).ExpectProblem(t, 404, "not_found")
	env.Do(t, "DELETE", "/v1/admin/coaches/"+uuid.NewString(), nil, auth).ExpectProblem(t, 404, "not_found")
}

func TestCoachLastAdminCannotLeave(t *testing.T) {
	env := apitest.NewEnv(t)
	admin, adminToken := env.Coach(t, "admin@example.com", people.RoleAdmin)
	env.Coach(t, "coach@example.com", people.RoleCoach)
	// A deactivated admin does not count.
	old, _ := env.Coach(t, "old@example.com", people.RoleAdmin)
	env.Do(t, "DELETE", "/v1/admin/coaches/"+old.ID.String(), nil, apitest.Token(adminToken)).Expect(t, 204)

	self := "/v1/admin/coaches/" + admin.ID.String()
	before := acctSnapshot(t, env)
	env.Do(t, "DELETE", self, nil, apitest.Token(adminToken)).ExpectProblem(t, 409, "last_admin")
	env.Do(t, "PATCH", self, map[string]any{"active": false}, apitest.Token(adminToken)).ExpectProblem(t, 409, "last_admin")
	env.Do(t, "PATCH", self, map[string]any{"role": "coach"}, apitest.Token(adminToken)).ExpectProblem(t, 409, "last_admin")
	if after := acctSnapshot(t, env); after != before {
		t.Fatalf("refused changes wrote rows:\nbefore %s\nafter  %s", before, after)
	}
	env.Do(t, "GET", "/v1/auth/me", nil, apitest.Token(adminToken)).Expect(t, 200)

	// Once another admin exists she may step down.
	env.Do(t, "PATCH", "/v1/admin/coaches/"+old.ID.String(), map[string]any{"active": true}, apitest.Token(adminToken)).Expect(t, 200)
	env.Do(t, "PATCH", self, map[string]any{"role": "coach"}, apitest.Token(adminToken)).Expect(t, 200)
	env.Do(t, "GET", "/v1/admin/coaches", nil, apitest.Token(adminToken)).ExpectProblem(t, 403, "forbidden")
}

func TestCoachLastAdminRace(t *testing.T) {
	env := apitest.NewEnv(t)
	a, aToken := env.Coach(t, "a@example.com", people.RoleAdmin)
	b, bToken := env.Coach(t, "b@example.com", people.RoleAdmin)

	// Each admin removes the other at the same moment.
	statuses := make([]int, 2)
	var wg sync.WaitGroup
	for i, r := range []struct{ token, target string }{{aToken, b.ID.String()}, {bToken, a.ID.String()}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = env.Do(t, "DELETE", "/v1/admin/coaches/"+r.target, nil, apitest.Token(r.token)).Status
		}()
	}
	wg.Wait()
	// The loser is refused for the rule (409), or because the winner removed
	// her first: mid-request (403) or before it (401, her token died).
	ok := 0
	for _, s := range statuses {
		switch s {
		case 204:
			ok++
		case 401, 403, 409:
		default:
			t.Fatalf("statuses = %v", statuses)
		}
	}
	var admins int64
	env.DB.Model(&people.Coach{}).Where("role = 'admin' AND active").Count(&admins)
	if ok != 1 || admins != 1 {
		t.Fatalf("statuses %v left %d active admins; want one 204 and 1 admin", statuses, admins)
	}
}

func TestCoachDeleteRevokesHerTokens(t *testing.T) {
	env := apitest.NewEnv(t)
	_, adminToken := env.Coach(t, "admin@example.com", people.RoleAdmin)
	maya := acctCoachWithPassword(t, env, "maya@example.com", people.RoleCoach)
	laptop := acctToken(t, env, "maya@example.com", acctPassword)
	phone := acctToken(t, env, "maya@example.com", acctPassword)
	env.Do(t, "POST", "/v1/auth/password-resets", map[string]string{"email": "maya@example.com"}).Expect(t, 202)
	_, link := acctOnlyEmail(t, env, models.TemplatePasswordReset, "maya@example.com")

	path := "/v1/admin/coaches/" + maya.ID.String()
	env.Do(t, "DELETE", path, nil, apitest.Token(adminToken)).Expect(t, 204)
	for _, tok := range []string{laptop, phone} {
		env.Do(t, "GET", "/v1/auth/me", nil, apitest.Token(tok)).ExpectProblem(t, 401, "invalid_token")
	}
	env.Do(t, "POST", "/v1/auth/password-resets/confirm", map[string]string{"token": link, "password": "a way back in?"}).ExpectProblem(t, 422, "invalid_token")
	acctLoginAs(t, env, "maya@example.com", acctPassword).ExpectProblem(t, 401, "invalid_credentials")
	env.Do(t, "DELETE", path, nil, apitest.Token(adminToken)).Expect(t, 204) // idempotent

	// Reactivated, she logs in afresh; the old tokens stay dead.
	var back acctCoach
	env.Do(t, "PATCH", path, map[string]any{"active": true}, apitest.Token(adminToken)).Expect(t, 200).JSON(t, &back)
	if !back.Active {
		t.Fatalf("after reactivation = %+v", back)
	}
	env.Do(t, "GET", "/v1/auth/me", nil, apitest.Token(laptop)).ExpectProblem(t, 401, "invalid_token")
	acctLoginAs(t, env, "maya@example.com", acctPassword).Expect(t, 200)

	// PATCH active=false is the same as DELETE.
	fresh := acctToken(t, env, "maya@example.com", acctPassword)
	env.Do(t, "PATCH", path, map[string]any{"active": false}, apitest.Token(adminToken)).Expect(t, 200)
	env.Do(t, "GET", "/v1/auth/me", nil, apitest.Token(fresh)).ExpectProblem(t, 401, "invalid_token")
}

func TestCoachBadInputWritesNothing(t *testing.T) {
	env := apitest.NewEnv(t)
	_, adminToken := env.Coach(t, "admin@example.com", people.RoleAdmin)
	maya := acctCoachWithPassword(t, env, "maya@example.com", people.RoleCoach)
	auth := apitest.Token(adminToken)

	routes := []struct {
		method, path string
		invalid      []any
	}{
		{"POST", "/v1/admin/coaches", []any{
			map[string]any{},
			map[string]any{"email": "not-an-email", "name": "X", "role": "coach"},
			map[string]any{"email": "x@example.com", "name": strings.Repeat("n", 201), "role": "coach"},
			map[string]any{"email": "x@example.com", "name": "   ", "role": "coach"},
			map[string]any{"email": "x@example.com", "name": "X", "role": "owner"},
			map[string]any{"email": "x@example.com", "name": 7, "role": "coach"},
		}},
		{"PATCH", "/v1/admin/coaches/" + maya.ID.String(), []any{
			map[string]any{"name": ""},
			map[string]any{"name": nil},
			map[string]any{"name": strings.Repeat("n", 201)},
			map[string]any{"role": "owner"},
			map[string]any{"role": nil},
			map[string]any{"active": "yes"},
			map[string]any{"active": nil},
		}},
	}
	for _, r := range routes {
		for _, tc := range acctBadInputs(r.invalid...) {
			t.Run(r.method+"/"+tc.name, func(t *testing.T) {
				before := acctSnapshot(t, env)
				env.Do(t, r.method, r.path, tc.body, auth).ExpectProblem(t, tc.status, tc.code)
				if after := acctSnapshot(t, env); after != before {
					t.Fatalf("rows changed:\nbefore %s\nafter  %s", before, after)
				}
			})
		}
	}
}

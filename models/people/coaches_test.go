package people_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/domain"
	"github.com/grace-coaching/grace/models/modelstest"
	"github.com/grace-coaching/grace/models/people"
)

const goodPassword = "correct horse battery"

func mustCreateCoach(t *testing.T, svc *domain.Services, email string, role people.Role) *people.Coach {
	t.Helper()
	c, err := svc.People.CreateCoach(context.Background(), people.CreateCoachInput{Email: email, Name: "Coach " + email, Role: role, Password: goodPassword})
	if err != nil {
		t.Fatalf("create coach %s: %v", email, err)
	}
	return c
}

// emailedToken returns the token of the newest email of template sent to email.
func emailedToken(t *testing.T, db *gorm.DB, template, email string) string {
	t.Helper()
	var msgs []models.OutboxMessage
	if err := db.Where("template = ? AND to_email = ?", template, email).Order("created_at DESC, id").Find(&msgs).Error; err != nil {
		t.Fatal(err)
	}
	if len(msgs) == 0 {
		t.Fatalf("no %s email to %s", template, email)
	}
	token, _ := msgs[0].Data["token"].(string)
	if token == "" {
		t.Fatalf("%s email has no token: %v", template, msgs[0].Data)
	}
	return token
}

func TestCoachCreateValidatesAndHashes(t *testing.T) {
	svc, _, db := modelstest.NewService(t)
	ctx := context.Background()

	tests := []struct {
		name   string
		in     people.CreateCoachInput
		fields []string
	}{
		{"bad email", people.CreateCoachInput{Email: "grace", Name: "Grace", Role: people.RoleAdmin, Password: goodPassword}, []string{"email"}},
		{"blank name", people.CreateCoachInput{Email: "g@example.com", Name: "   ", Role: people.RoleAdmin, Password: goodPassword}, []string{"name"}},
		{"long name", people.CreateCoachInput{Email: "g@example.com", Name: strings.Repeat("n", 201), Role: people.RoleAdmin, Password: goodPassword}, []string{"name"}},
		{"unknown role", people.CreateCoachInput{Email: "g@example.com", Name: "Grace", Role: "owner", Password: goodPassword}, []string{"role"}},
		{"short password", people.CreateCoachInput{Email: "g@example.com", Name: "Grace", Role: people.RoleAdmin, Password: "123456789"}, []string{"password"}},
		{"long password", people.CreateCoachInput{Email: "g@example.com", Name: "Grace", Role: people.RoleAdmin, Password: strings.Repeat("p", 129)}, []string{"password"}},
		{"everything", people.CreateCoachInput{}, []string{"email", "name", "role", "password"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := svc.People.CreateCoach(ctx, tc.in)
			e := modelstest.WantCode(t, err, "validation_failed")
			var got []string
			for _, f := range e.Fields {
				got = append(got, f.Field)
			}
			if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
				t.Fatalf("fields = %v, want %v", got, tc.fields)
			}
		})
	}
	var n int64
	db.Model(&people.Coach{}).Count(&n)
	if n != 0 {
		t.Fatalf("%d coaches written by invalid input", n)
	}

	// Ten characters of any script is long enough: the rule counts
	// characters, not bytes.
	c, err := svc.People.CreateCoach(ctx, people.CreateCoachInput{Email: "  Grace@Example.COM ", Name: " Grace Hart ", Role: people.RoleAdmin, Password: "éééééééééé"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Email != "grace@example.com" || c.Name != "Grace Hart" || !c.Active {
		t.Fatalf("coach = %+v", c)
	}
	var stored people.Coach
	db.First(&stored, "id = ?", c.ID)
	if stored.PasswordHash == nil || !strings.HasPrefix(*stored.PasswordHash, "$argon2id$") || strings.Contains(*stored.PasswordHash, "éé") {
		t.Fatalf("stored password hash = %v", stored.PasswordHash)
	}

	_, err = svc.People.CreateCoach(ctx, people.CreateCoachInput{Email: "GRACE@example.com", Name: "Other", Role: people.RoleCoach, Password: goodPassword})
	modelstest.WantCode(t, err, "email_taken")
}

func TestLoginFailuresAreIndistinguishable(t *testing.T) {
	svc, _, _ := modelstest.NewService(t)
	ctx := context.Background()
	admin := mustCreateCoach(t, svc, "admin@example.com", people.RoleAdmin)
	gone := mustCreateCoach(t, svc, "gone@example.com", people.RoleCoach)
	if err := svc.People.DeactivateCoach(ctx, admin, gone.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.People.InviteCoach(ctx, admin, people.InviteCoachInput{Email: "invited@example.com", Name: "Invited", Role: people.RoleCoach}); err != nil {
		t.Fatal(err)
	}

	tests := []struct{ name, email, password string }{
		{"wrong password", "admin@example.com", "wrong password!"},
		{"unknown email", "nobody@example.com", goodPassword},
		{"deactivated coach", "gone@example.com", goodPassword},
		{"invite not accepted", "invited@example.com", ""},
	}
	var first *models.Error
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := svc.People.Login(ctx, tc.email, tc.password, models.ClientInfo{IP: fmt.Sprintf("198.51.100.%d", i)})
			e := modelstest.WantCode(t, err, "invalid_credentials")
			if e.Kind != models.KindUnauthorized {
				t.Fatalf("kind = %s", e.Kind)
			}
			if first == nil {
				first = e
			} else if e.Message != first.Message {
				t.Fatalf("message %q differs from %q", e.Message, first.Message)
			}
		})
	}

	token, session, coach, err := svc.People.Login(ctx, " ADMIN@example.com", goodPassword, models.ClientInfo{IP: "198.51.100.9"})
	if err != nil {
		t.Fatal(err)
	}
	if coach.ID != admin.ID || session.CoachID != admin.ID || !session.ExpiresAt.Equal(svc.Kernel.Now().Add(people.CoachSessionTTL)) {
		t.Fatalf("coach %v session %+v", coach.ID, session)
	}
	if got, _, err := svc.People.AuthenticateCoach(ctx, token); err != nil || got.ID != admin.ID {
		t.Fatalf("token authenticates %v, %v", got, err)
	}
}

func TestPasswordResetTokenWorksOnceUnderRace(t *testing.T) {
	svc, _, db := modelstest.NewService(t)
	ctx := context.Background()
	coach := mustCreateCoach(t, svc, "grace@example.com", people.RoleAdmin)
	if err := svc.People.RequestPasswordReset(ctx, coach.Email, models.ClientInfo{IP: "198.51.100.1"}); err != nil {
		t.Fatal(err)
	}
	runTasks(t, svc)
	token := emailedToken(t, db, models.TemplatePasswordReset, coach.Email)

	const n = 10
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = svc.People.ConfirmPasswordToken(ctx, token, fmt.Sprintf("new password %02d", i))
		}()
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("confirms %d and %d both succeeded", winner, i)
		case err == nil:
			winner = i
		case !models.IsCode(err, "invalid_token"):
			t.Fatalf("confirm %d: %v, want invalid_token", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no confirm succeeded")
	}
	// The password that won is the one that works.
	if _, _, _, err := svc.People.Login(ctx, coach.Email, fmt.Sprintf("new password %02d", winner), models.ClientInfo{IP: "198.51.100.2"}); err != nil {
		t.Fatalf("login with the winning password: %v", err)
	}
}

func TestPasswordConfirmVoidsHerOtherLinks(t *testing.T) {
	svc, clock, db := modelstest.NewService(t)
	ctx := context.Background()
	coach := mustCreateCoach(t, svc, "grace@example.com", people.RoleAdmin)
	var tokens []string
	for range 2 {
		clock.Advance(time.Second) // emailedToken picks the newest email
		if err := svc.People.RequestPasswordReset(ctx, coach.Email, models.ClientInfo{IP: "198.51.100.1"}); err != nil {
			t.Fatal(err)
		}
		runTasks(t, svc)
		tokens = append(tokens, emailedToken(t, db, models.TemplatePasswordReset, coach.Email))
	}
	if tokens[0] == tokens[1] {
		t.Fatal("two requests got the same token")
	}
	if err := svc.People.ConfirmPasswordToken(ctx, tokens[1], "the newest one!"); err != nil {
		t.Fatal(err)
	}
	// An older email lying in her inbox must not reset the password again.
	modelstest.WantCode(t, svc.People.ConfirmPasswordToken(ctx, tokens[0], "the older one!!"), "invalid_token")

	// A bad password is reported before the token is looked at, and does not
	// use the token up.
	clock.Advance(time.Second)
	if err := svc.People.RequestPasswordReset(ctx, coach.Email, models.ClientInfo{IP: "198.51.100.1"}); err != nil {
		t.Fatal(err)
	}
	runTasks(t, svc)
	fresh := emailedToken(t, db, models.TemplatePasswordReset, coach.Email)
	e := modelstest.WantCode(t, svc.People.ConfirmPasswordToken(ctx, fresh, "short"), "validation_failed")
	if len(e.Fields) != 1 || e.Fields[0].Field != "password" {
		t.Fatalf("fields = %v", e.Fields)
	}
	if err := svc.People.ConfirmPasswordToken(ctx, fresh, "long enough now"); err != nil {
		t.Fatalf("token used up by a rejected password: %v", err)
	}
	modelstest.WantCode(t, svc.People.ConfirmPasswordToken(ctx, "", "long enough now"), "invalid_token")
	modelstest.WantCode(t, svc.People.ConfirmPasswordToken(ctx, "no-such-token", "long enough now"), "invalid_token")
}

func TestCoachLastAdminSurvivesRacingDemotions(t *testing.T) {
	svc, _, db := modelstest.NewService(t)
	ctx := context.Background()
	a := mustCreateCoach(t, svc, "a@example.com", people.RoleAdmin)
	b := mustCreateCoach(t, svc, "b@example.com", people.RoleAdmin)

	// Both admins step away at the same moment; without the lock both would
	// win. The loser is refused for the rule (last_admin) or, when the winner
	// removed her, because she is no longer an admin (forbidden).
	demote := people.UpdateCoachInput{Role: models.Some(people.RoleCoach)}
	tests := []struct {
		name string
		do   func(actor, other *people.Coach) error
	}{
		{"deactivate each other", func(actor, other *people.Coach) error { return svc.People.DeactivateCoach(ctx, actor, other.ID) }},
		{"demote each other", func(actor, other *people.Coach) error {
			_, err := svc.People.UpdateCoach(ctx, actor, other.ID, demote)
			return err
		}},
		{"demote themselves", func(actor, _ *people.Coach) error {
			_, err := svc.People.UpdateCoach(ctx, actor, actor.ID, demote)
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := db.Exec(`UPDATE coaches SET role = 'admin', active = true`).Error; err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i, pair := range [][2]*people.Coach{{a, b}, {b, a}} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[i] = tc.do(pair[0], pair[1])
				}()
			}
			wg.Wait()
			ok := 0
			for _, err := range errs {
				switch {
				case err == nil:
					ok++
				case !models.IsCode(err, "last_admin") && !models.IsCode(err, "forbidden"):
					t.Fatalf("unexpected error: %v", err)
				}
			}
			var admins int64
			db.Model(&people.Coach{}).Where("role = 'admin' AND active").Count(&admins)
			if ok != 1 || admins != 1 {
				t.Fatalf("%d succeeded, %d active admins left; want 1 and 1", ok, admins)
			}
		})
	}
}

func TestCoachUpdateRules(t *testing.T) {
	svc, _, _ := modelstest.NewService(t)
	ctx := context.Background()
	admin := mustCreateCoach(t, svc, "admin@example.com", people.RoleAdmin)
	coach := mustCreateCoach(t, svc, "coach@example.com", people.RoleCoach)

	_, err := svc.People.UpdateCoach(ctx, coach, admin.ID, people.UpdateCoachInput{Name: models.Some("Hacked")})
	modelstest.WantCode(t, err, "forbidden")
	modelstest.WantCode(t, svc.People.DeactivateCoach(ctx, coach, admin.ID), "forbidden")
	_, err = svc.People.InviteCoach(ctx, coach, people.InviteCoachInput{Email: "x@example.com", Name: "X", Role: people.RoleAdmin})
	modelstest.WantCode(t, err, "forbidden")

	_, err = svc.People.UpdateCoach(ctx, admin, uuid.New(), people.UpdateCoachInput{Name: models.Some("Nobody")})
	modelstest.WantCode(t, err, "not_found")
	modelstest.WantCode(t, svc.People.DeactivateCoach(ctx, admin, uuid.New()), "not_found")

	e := func() *models.Error {
		_, err := svc.People.UpdateCoach(ctx, admin, coach.ID, people.UpdateCoachInput{
			Name:   models.Optional[string]{Set: true, Null: true},
			Role:   models.Some(people.Role("owner")),
			Active: models.Optional[bool]{Set: true, Null: true},
		})
		return modelstest.WantCode(t, err, "validation_failed")
	}()
	if len(e.Fields) != 3 {
		t.Fatalf("fields = %v, want name, role and active", e.Fields)
	}

	// The last admin may rename herself but not step down.
	if _, err := svc.People.UpdateCoach(ctx, admin, admin.ID, people.UpdateCoachInput{Name: models.Some("  Grace  ")}); err != nil {
		t.Fatal(err)
	}
	_, err = svc.People.UpdateCoach(ctx, admin, admin.ID, people.UpdateCoachInput{Role: models.Some(people.RoleCoach)})
	modelstest.WantCode(t, err, "last_admin")
	modelstest.WantCode(t, svc.People.DeactivateCoach(ctx, admin, admin.ID), "last_admin")

	// With a second admin she can.
	promoted, err := svc.People.UpdateCoach(ctx, admin, coach.ID, people.UpdateCoachInput{Role: models.Some(people.RoleAdmin)})
	if err != nil || promoted.Role != people.RoleAdmin {
		t.Fatalf("promote: %+v, %v", promoted, err)
	}
	demoted, err := svc.People.UpdateCoach(ctx, admin, admin.ID, people.UpdateCoachInput{Role: models.Some(people.RoleCoach)})
	if err != nil || demoted.Role != people.RoleCoach || demoted.Name != "Grace" {
		t.Fatalf("demote: %+v, %v", demoted, err)
	}
}

func TestCoachDeactivationRevokesEverything(t *testing.T) {
	svc, clock, db := modelstest.NewService(t)
	ctx := context.Background()
	admin := mustCreateCoach(t, svc, "admin@example.com", people.RoleAdmin)
	coach := mustCreateCoach(t, svc, "coach@example.com", people.RoleCoach)
	token, _, _, err := svc.People.Login(ctx, coach.Email, goodPassword, models.ClientInfo{IP: "198.51.100.1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.People.RequestPasswordReset(ctx, coach.Email, models.ClientInfo{IP: "198.51.100.1"}); err != nil {
		t.Fatal(err)
	}
	runTasks(t, svc)
	link := emailedToken(t, db, models.TemplatePasswordReset, coach.Email)

	clock.Advance(time.Minute)
	for range 2 { // idempotent
		if err := svc.People.DeactivateCoach(ctx, admin, coach.ID); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := svc.People.AuthenticateCoach(ctx, token); !models.IsCode(err, "invalid_token") {
		t.Fatalf("session after deactivation: %v", err)
	}
	modelstest.WantCode(t, svc.People.ConfirmPasswordToken(ctx, link, "a new password"), "invalid_token")

	// Reactivating her does not bring the old session back.
	back, err := svc.People.UpdateCoach(ctx, admin, coach.ID, people.UpdateCoachInput{Active: models.Some(true)})
	if err != nil || !back.Active {
		t.Fatalf("reactivate: %+v, %v", back, err)
	}
	if _, _, err := svc.People.AuthenticateCoach(ctx, token); !models.IsCode(err, "invalid_token") {
		t.Fatalf("old session after reactivation: %v", err)
	}
	if _, _, _, err := svc.People.Login(ctx, coach.Email, goodPassword, models.ClientInfo{IP: "198.51.100.1"}); err != nil {
		t.Fatalf("login after reactivation: %v", err)
	}
}

func TestCoachListPages(t *testing.T) {
	svc, clock, _ := modelstest.NewService(t)
	ctx := context.Background()
	var want []uuid.UUID
	for i := range 5 {
		want = append(want, mustCreateCoach(t, svc, fmt.Sprintf("c%d@example.com", i), people.RoleCoach).ID)
		clock.Advance(time.Second)
	}
	var got []uuid.UUID
	p := models.PageParams{Limit: 2}
	for pages := 0; ; pages++ {
		if pages > 3 {
			t.Fatal("pagination does not end")
		}
		page, err := svc.People.ListCoaches(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page.Items {
			got = append(got, c.ID)
		}
		if page.NextCursor == nil {
			break
		}
		p.Cursor = *page.NextCursor
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("listed %v, want %v", got, want)
	}
	_, err := svc.People.ListCoaches(ctx, models.PageParams{Cursor: "not-a-cursor"})
	modelstest.WantCode(t, err, "invalid_cursor")
}

func TestCoachInviteRollsBackWithItsEmail(t *testing.T) {
	svc, _, db := modelstest.NewService(t)
	ctx := context.Background()
	admin := mustCreateCoach(t, svc, "admin@example.com", people.RoleAdmin)
	_, err := svc.People.InviteCoach(ctx, admin, people.InviteCoachInput{Email: "Admin@Example.com", Name: "Twin", Role: people.RoleCoach})
	modelstest.WantCode(t, err, "email_taken")
	for _, table := range []string{"outbox", "coach_action_tokens"} {
		var n int64
		db.Table(table).Count(&n)
		if n != 0 {
			t.Errorf("%s has %d rows after a failed invite", table, n)
		}
	}
}

// runTasks is the task worker's turn: a reset request leaves its work to it.
func runTasks(t *testing.T, svc *domain.Services) {
	t.Helper()
	if _, err := svc.Kernel.RunTasksOnce(context.Background()); err != nil {
		t.Fatalf("run tasks: %v", err)
	}
}

package api_test

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/grace-coaching/grace/api/apitest"
	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/people"
)

type catParticipant struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	Timezone  string    `json:"timezone"`
	CreatedAt time.Time `json:"created_at"`
}

type catParticipantDetail struct {
	catParticipant
	Grants []struct {
		ID           string     `json:"id"`
		ProgramID    string     `json:"program_id"`
		ProgramSlug  string     `json:"program_slug"`
		ProgramTitle string     `json:"program_title"`
		Source       string     `json:"source"`
		StartsAt     time.Time  `json:"starts_at"`
		RevokedAt    *time.Time `json:"revoked_at"`
	} `json:"grants"`
	Consents []struct {
		Kind        string  `json:"kind"`
		TextVersion string  `json:"text_version"`
		Granted     bool    `json:"granted"`
		ProgramID   *string `json:"program_id"`
		IP          *string `json:"ip"`
		UserAgent   *string `json:"user_agent"`
	} `json:"consents"`
	Progress []struct {
		ProgramID   string    `json:"program_id"`
		LessonID    string    `json:"lesson_id"`
		CompletedAt time.Time `json:"completed_at"`
	} `json:"progress"`
}

// catNamedParticipant writes a participant with exactly this email and name.
func catNamedParticipant(t *testing.T, env *apitest.Env, email, name string, createdAt time.Time) *people.Participant {
	t.Helper()
	p := &people.Participant{Email: email, Name: name, Timezone: "Europe/Berlin", CreatedAt: createdAt, UpdatedAt: createdAt}
	if err := env.DB.Create(p).Error; err != nil {
		t.Fatalf("create participant: %v", err)
	}
	return p
}

func TestParticipantsAdminSearch(t *testing.T) {
	env := apitest.NewEnv(t)
	_, tok := env.Coach(t, "admin@example.com", people.RoleAdmin) // every participant is an admin's
	start := env.Clock.Now()
	people := []struct{ email, name string }{
		{"jane.doe@example.com", "Jane Doe"},
		{"maria@example.org", "María JANSSEN"},
		{"sale@example.com", "50% Off Sara"},
		{"five@example.com", "500 Off Fiona"},
		{"under_score@example.com", "Una"},
		{"back@example.com", `Back\slash Bea`},
	}
	for i, p := range people {
		catNamedParticipant(t, env, p.email, p.name, start.Add(time.Duration(i)*time.Minute))
	}
	search := func(q string) []string {
		t.Helper()
		var page catList[catParticipant]
		env.Do(t, "GET", "/v1/admin/participants?q="+url.QueryEscape(q), nil, apitest.Token(tok)).Expect(t, 200).JSON(t, &page)
		var emails []string
		for _, p := range page.Data {
			emails = append(emails, p.Email)
		}
		return emails
	}
	tests := []struct {
		q    string
		want []string // newest first
	}{
		{"", []string{"back@example.com", "under_score@example.com", "five@example.com", "sale@example.com", "maria@example.org", "jane.doe@example.com"}},
		{"jan", []string{"maria@example.org", "jane.doe@example.com"}},
		{"JANE", []string{"jane.doe@example.com"}},
		{"example.org", []string{"maria@example.org"}},
		{"  doe  ", []string{"jane.doe@example.com"}},
		{"50%", []string{"sale@example.com"}},
		{"%", []string{"sale@example.com"}},
		{"_", []string{"under_score@example.com"}},
		{`\`, []string{"back@example.com"}},
		{"nobody", nil},
	}
	for _, tt := range tests {
		t.Run("q="+tt.q, func(t *testing.T) {
			if got := search(tt.q); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	env.Do(t, "GET", "/v1/admin/participants?q="+strings.Repeat("a", 255), nil, apitest.Token(tok)).ExpectProblem(t, 400, "invalid_query")
}

func TestParticipantsAdminPagination(t *testing.T) {
	env := apitest.NewEnv(t)
	_, tok := env.Coach(t, "admin@example.com", people.RoleAdmin) // every participant is an admin's
	// Same created_at for all: the id breaks the tie, and no one is lost or
	// shown twice at page edges.
	for _, e := range []string{"a@example.com", "b@example.com", "c@example.com", "d@example.com", "e@example.com"} {
		catNamedParticipant(t, env, e, "Same Name", env.Clock.Now())
	}
	seen := map[string]bool{}
	cursor, pages := "", 0
	for {
		u := "/v1/admin/participants?q=same&limit=2"
		if cursor != "" {
			u += "&cursor=" + url.QueryEscape(cursor)
		}
		var page catList[catParticipant]
		env.Do(t, "GET", u, nil, apitest.Token(tok)).Expect(t, 200).JSON(t, &page)
		pages++
		for _, p := range page.Data {
			if seen[p.Email] {
				t.Errorf("%s on two pages", p.Email)
			}
			seen[p.Email] = true
		}
		if page.NextCursor == nil || pages > 5 {
			break
		}
		cursor = *page.NextCursor
	}
	if pages != 3 || len(seen) != 5 {
		t.Errorf("%d pages, %d participants; want 3 and 5", pages, len(seen))
	}
	env.Do(t, "GET", "/v1/admin/participants?cursor=AAAA", nil, apitest.Token(tok)).ExpectProblem(t, 400, "invalid_cursor")
}

func TestParticipantsAdminDetail(t *testing.T) {
	env := apitest.NewEnv(t)
	_, tok := env.Coach(t, "admin@example.com", people.RoleAdmin) // every participant is an admin's
	now := env.Clock.Now()
	jane, _ := env.Participant(t, "jane@example.com")
	other, _ := env.Participant(t, "other@example.com")
	prog := env.Program(t, "say-no", catalog.ProgramPublished, true)
	paid := env.Program(t, "deep-dive", catalog.ProgramPublished, false)
	l1 := env.Lesson(t, prog.ID, "One", true, false, 0)
	l2 := env.Lesson(t, prog.ID, "Two", true, false, 0)

	env.Grant(t, jane.ID, prog.ID, people.GrantFreeAccess, now)
	env.Clock.Advance(time.Minute) // fixtures stamp created_at from the clock
	revoked := env.Grant(t, jane.ID, paid.ID, people.GrantComplimentary, now.Add(time.Hour))
	env.DB.Model(revoked).Update("revoked_at", now.Add(2*time.Hour))
	env.Grant(t, other.ID, paid.ID, people.GrantComplimentary, now)

	ip, ua := "203.0.113.7", "Mozilla/5.0"
	for _, c := range []*models.Consent{
		{ParticipantID: jane.ID, ProgramID: &prog.ID, Kind: models.ConsentDisclaimer, TextVersion: "disclaimer-2025-01", Granted: true, IP: &ip, UserAgent: &ua, CreatedAt: now},
		{ParticipantID: jane.ID, Kind: models.ConsentMarketing, TextVersion: "marketing-1", Granted: false, CreatedAt: now.Add(time.Minute)},
		{ParticipantID: other.ID, Kind: models.ConsentMarketing, TextVersion: "marketing-1", Granted: true, CreatedAt: now},
	} {
		if err := env.DB.Create(c).Error; err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []people.LessonCompletion{
		{ParticipantID: jane.ID, LessonID: l2.ID, CompletedAt: now.Add(2 * time.Hour)},
		{ParticipantID: jane.ID, LessonID: l1.ID, CompletedAt: now.Add(time.Hour)},
		{ParticipantID: other.ID, LessonID: l1.ID, CompletedAt: now},
	} {
		if err := env.DB.Create(&c).Error; err != nil {
			t.Fatal(err)
		}
	}

	var d catParticipantDetail
	env.Do(t, "GET", "/v1/admin/participants/"+jane.ID.String(), nil, apitest.Token(tok)).Expect(t, 200).JSON(t, &d)
	if d.Email != "jane@example.com" || d.Timezone != "Europe/London" {
		t.Errorf("participant: %+v", d.catParticipant)
	}
	if len(d.Grants) != 2 || d.Grants[0].ProgramSlug != "say-no" || d.Grants[0].ProgramTitle != prog.Title ||
		d.Grants[0].Source != "free_access" || d.Grants[0].RevokedAt != nil ||
		d.Grants[1].ProgramSlug != "deep-dive" || d.Grants[1].RevokedAt == nil || !d.Grants[1].RevokedAt.Equal(now.Add(2*time.Hour)) {
		t.Errorf("grants (only hers, oldest first, revoked included): %+v", d.Grants)
	}
	if len(d.Consents) != 2 || d.Consents[0].Kind != "disclaimer" || d.Consents[0].IP == nil || *d.Consents[0].IP != ip ||
		d.Consents[0].ProgramID == nil || *d.Consents[0].ProgramID != prog.ID.String() || d.Consents[0].UserAgent == nil ||
		d.Consents[1].Kind != "marketing" || d.Consents[1].Granted || d.Consents[1].IP != nil || d.Consents[1].ProgramID != nil {
		t.Errorf("consents: %+v", d.Consents)
	}
	if len(d.Progress) != 2 || d.Progress[0].LessonID != l1.ID.String() || d.Progress[1].LessonID != l2.ID.String() ||
		d.Progress[0].ProgramID != prog.ID.String() {
		t.Errorf("progress (only hers, oldest first): %+v", d.Progress)
	}

	// A woman with no history yet gets empty lists, not nulls.
	fresh, _ := env.Participant(t, "fresh@example.com")
	res := env.Do(t, "GET", "/v1/admin/participants/"+fresh.ID.String(), nil, apitest.Token(tok)).Expect(t, 200)
	for _, field := range []string{`"grants":[]`, `"consents":[]`, `"progress":[]`} {
		if !strings.Contains(string(res.Body), field) {
			t.Errorf("body lacks %s: %s", field, res.Body)
		}
	}

	env.Do(t, "GET", "/v1/admin/participants/"+uuid.NewString(), nil, apitest.Token(tok)).ExpectProblem(t, 404, "not_found")
	env.Do(t, "GET", "/v1/admin/participants/123", nil, apitest.Token(tok)).ExpectProblem(t, 404, "not_found")
}

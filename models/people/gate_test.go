package people_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/modelstest"
	"github.com/grace-coaching/grace/models/people"
)

func gateLesson(t *testing.T, db *gorm.DB, programID uuid.UUID, pos int, published, preview bool, days int) *catalog.Lesson {
	t.Helper()
	l := &catalog.Lesson{ProgramID: programID, Position: pos, Title: "Lesson", Body: "**Markdown**",
		// Deliberately not what body renders to: the read must serve the
		// stored HTML, never render on the hot path.
		BodyHTML: "<p>stored</p>", Published: published, FreePreview: preview, UnlockOffsetDays: days}
	if err := db.Create(l).Error; err != nil {
		t.Fatalf("create lesson: %v", err)
	}
	return l
}

func TestGateReadLessonDecisions(t *testing.T) {
	svc, clock, db := modelstest.NewService(t)
	ctx := context.Background()
	now := clock.Now()
	prog := &catalog.Program{Slug: "p", Title: "P", Status: catalog.ProgramPublished, Currency: "EUR"}
	draft := &catalog.Program{Slug: "d", Title: "D", Status: catalog.ProgramDraft, Currency: "EUR"}
	db.Create(prog)
	db.Create(draft)
	preview := gateLesson(t, db, prog.ID, 1, true, true, 5)
	day0 := gateLesson(t, db, prog.ID, 2, true, false, 0)
	day2 := gateLesson(t, db, prog.ID, 3, true, false, 2)
	hidden := gateLesson(t, db, prog.ID, 4, false, true, 0)
	inDraft := gateLesson(t, db, draft.ID, 1, true, true, 0)

	her := &people.Participant{Email: "her@example.com", Name: "Her", Timezone: "Europe/London"}
	other := &people.Participant{Email: "other@example.com", Name: "Other", Timezone: "UTC"}
	db.Create(her)
	db.Create(other)
	tokens := map[*people.Participant]string{her: gateSession(t, db, her, now), other: gateSession(t, db, other, now)}
	db.Create(&people.AccessGrant{ParticipantID: her.ID, ProgramID: prog.ID, Source: people.GrantFreeAccess, StartsAt: now})
	db.Create(&people.AccessGrant{ParticipantID: her.ID, ProgramID: draft.ID, Source: people.GrantComplimentary, StartsAt: now})
	db.Create(&people.LessonCompletion{ParticipantID: her.ID, LessonID: day0.ID, CompletedAt: now})

	unlock2 := now.AddDate(0, 0, 2)
	for _, tc := range []struct {
		name      string
		who       *people.Participant
		lesson    uuid.UUID
		code      string
		unlockAt  *time.Time
		completed bool
	}{
		{"preview ignores its drip delay", other, preview.ID, "", nil, false},
		{"granted day 0", her, day0.ID, "", &now, true},
		{"no grant", other, day0.ID, "no_access", nil, false},
		{"granted day 2 too early", her, day2.ID, "lesson_locked", &unlock2, false},
		{"unpublished", her, hidden.ID, "not_found", nil, false},
		{"draft program", her, inDraft.ID, "not_found", nil, false},
		{"unknown", her, uuid.New(), "not_found", nil, false},
	} {
		// Both ways in must decide alike: with a participant the middleware
		// authenticated, and with the token folded into the query.
		reads := map[string]func() (*people.PortalLesson, error){
			"ReadLesson": func() (*people.PortalLesson, error) { return svc.People.ReadLesson(ctx, tc.who, tc.lesson) },
			"ReadLessonWithToken": func() (*people.PortalLesson, error) {
				return svc.People.ReadLessonWithToken(ctx, tokens[tc.who], tc.lesson)
			},
		}
		for name, read := range reads {
			t.Run(tc.name+"/"+name, func(t *testing.T) {
				l, err := read()
				if tc.code != "" {
					e, ok := models.AsError(err)
					if !ok || e.Code != tc.code {
						t.Fatalf("err = %v, want %s", err, tc.code)
					}
					if (e.UnlockAt == nil) != (tc.unlockAt == nil) || (e.UnlockAt != nil && !e.UnlockAt.Equal(*tc.unlockAt)) {
						t.Errorf("UnlockAt = %v, want %v", e.UnlockAt, tc.unlockAt)
					}
					if cerr := svc.People.CompleteLesson(ctx, tc.who, tc.lesson); !models.IsCode(cerr, tc.code) {
						t.Errorf("CompleteLesson err = %v, want %s like the read", cerr, tc.code)
					}
					return
				}
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				if l.ID != tc.lesson || l.BodyHTML != "<p>stored</p>" || l.Body != "**Markdown**" || l.Completed != tc.completed || !l.Published {
					t.Errorf("lesson = %+v", l)
				}
				if (l.UnlockAt == nil) != (tc.unlockAt == nil) || (l.UnlockAt != nil && !l.UnlockAt.Equal(*tc.unlockAt)) {
					t.Errorf("UnlockAt = %v, want %v", l.UnlockAt, tc.unlockAt)
				}
			})
		}
	}

	clock.Set(unlock2)
	if _, err := svc.People.ReadLesson(ctx, her, day2.ID); err != nil {
		t.Errorf("at unlock time: %v", err)
	}
}

func TestGateCompleteLessonIsIdempotent(t *testing.T) {
	svc, clock, db := modelstest.NewService(t)
	ctx := context.Background()
	prog := &catalog.Program{Slug: "p", Title: "P", Status: catalog.ProgramPublished, Currency: "EUR"}
	db.Create(prog)
	l := gateLesson(t, db, prog.ID, 1, true, true, 0)
	p := &people.Participant{Email: "her@example.com", Name: "Her", Timezone: "UTC"}
	db.Create(p)

	first := clock.Now()
	for range 3 {
		if err := svc.People.CompleteLesson(ctx, p, l.ID); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Minute)
	}
	var cs []people.LessonCompletion
	db.Find(&cs)
	if len(cs) != 1 || !cs[0].CompletedAt.Equal(first) {
		t.Fatalf("completions = %+v, want one at %v", cs, first)
	}
	for range 2 {
		if err := svc.People.UncompleteLesson(ctx, p, l.ID); err != nil {
			t.Fatal(err)
		}
	}
	db.Find(&cs)
	if len(cs) != 0 {
		t.Errorf("completions = %+v after uncomplete, want none", cs)
	}
}

// gateSession gives p a live portal session and returns its token.
func gateSession(t *testing.T, db *gorm.DB, p *people.Participant, now time.Time) string {
	t.Helper()
	token := "token-of-" + p.Email
	s := &people.ParticipantSession{ParticipantID: p.ID, TokenHash: models.HashToken(token), ExpiresAt: now.Add(time.Hour)}
	if err := db.Create(s).Error; err != nil {
		t.Fatalf("create session: %v", err)
	}
	return token
}

func TestGateReadLessonWithTokenRefusesBadTokens(t *testing.T) {
	svc, clock, db := modelstest.NewService(t)
	ctx := context.Background()
	now := clock.Now()
	prog := &catalog.Program{Slug: "p", Title: "P", Status: catalog.ProgramPublished, Currency: "EUR"}
	db.Create(prog)
	l := gateLesson(t, db, prog.ID, 1, true, true, 0)
	p := &people.Participant{Email: "her@example.com", Name: "Her", Timezone: "UTC"}
	db.Create(p)
	live := gateSession(t, db, p, now)
	revoked := "revoked-token"
	db.Create(&people.ParticipantSession{ParticipantID: p.ID, TokenHash: models.HashToken(revoked), ExpiresAt: now.Add(time.Hour), RevokedAt: &now})
	expired := "expired-token"
	db.Create(&people.ParticipantSession{ParticipantID: p.ID, TokenHash: models.HashToken(expired), ExpiresAt: now})

	for _, tc := range []struct {
		name, token string
		lesson      uuid.UUID
		code        string
	}{
		{"live token", live, l.ID, ""},
		{"live token, unknown lesson", live, uuid.New(), "not_found"},
		{"revoked token", revoked, l.ID, "invalid_token"},
		{"expired token", expired, l.ID, "invalid_token"},
		{"unknown token", "nope", l.ID, "invalid_token"},
		{"unknown token, unknown lesson", "nope", uuid.New(), "invalid_token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := svc.People.ReadLessonWithToken(ctx, tc.token, tc.lesson)
			if tc.code == "" && err != nil || tc.code != "" && !models.IsCode(err, tc.code) {
				t.Errorf("err = %v, want %q", err, tc.code)
			}
		})
	}
}

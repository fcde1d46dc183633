package apitest

import (
	"crypto/rand"
	"encoding/base64"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/people"
)

// Fixtures write rows straight to the database, so a test of one feature does
// not depend on the endpoints of another. Tests of those endpoints use the API.

func randomToken(t testing.TB) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// Coach creates an active coach with the role and returns her and a live token.
func (e *Env) Coach(t testing.TB, email string, role people.Role) (*people.Coach, string) {
	t.Helper()
	c := &people.Coach{Email: email, Name: "Coach " + email, Role: role, Active: true, CreatedAt: e.Clock.Now()}
	if err := e.DB.Create(c).Error; err != nil {
		t.Fatalf("create coach: %v", err)
	}
	token := randomToken(t)
	s := &people.CoachSession{CoachID: c.ID, TokenHash: models.HashToken(token), ExpiresAt: e.Clock.Now().Add(people.CoachSessionTTL)}
	if err := e.DB.Create(s).Error; err != nil {
		t.Fatalf("create coach session: %v", err)
	}
	return c, token
}

// Participant creates a participant and returns her and a live portal token.
func (e *Env) Participant(t testing.TB, email string) (*people.Participant, string) {
	t.Helper()
	p := &people.Participant{Email: email, Name: "Participant " + email, Timezone: "Europe/London"}
	if err := e.DB.Create(p).Error; err != nil {
		t.Fatalf("create participant: %v", err)
	}
	token := randomToken(t)
	s := &people.ParticipantSession{ParticipantID: p.ID, TokenHash: models.HashToken(token), ExpiresAt: e.Clock.Now().Add(people.ParticipantSessionTTL)}
	if err := e.DB.Create(s).Error; err != nil {
		t.Fatalf("create participant session: %v", err)
	}
	return p, token
}

// Program creates a program with the status (and, when free is set, an open
// free-access window of 30 days).
func (e *Env) Program(t testing.TB, slug string, status catalog.ProgramStatus, free bool) *catalog.Program {
	t.Helper()
	p := &catalog.Program{Slug: slug, Title: "Program " + slug, Summary: "Summary", Status: status, PriceCents: 9700, Currency: "EUR"}
	if free {
		until := e.Clock.Now().Add(30 * 24 * time.Hour)
		p.FreeAccessUntil = &until
	}
	if err := e.DB.Create(p).Error; err != nil {
		t.Fatalf("create program: %v", err)
	}
	return p
}

// Lesson creates a lesson at the next position of program.
func (e *Env) Lesson(t testing.TB, programID uuid.UUID, title string, published, preview bool, unlockDays int) *catalog.Lesson {
	t.Helper()
	var n int64
	e.DB.Model(&catalog.Lesson{}).Where("program_id = ?", programID).Count(&n)
	l := &catalog.Lesson{ProgramID: programID, Position: int(n) + 1, Title: title, Body: "Body of " + title,
		BodyHTML: "<p>Body of " + title + "</p>\n", Published: published, FreePreview: preview, UnlockOffsetDays: unlockDays}
	if err := e.DB.Create(l).Error; err != nil {
		t.Fatalf("create lesson: %v", err)
	}
	return l
}

// Grant gives a participant access to a program from startsAt.
func (e *Env) Grant(t testing.TB, participantID, programID uuid.UUID, source people.GrantSource, startsAt time.Time) *people.AccessGrant {
	t.Helper()
	g := &people.AccessGrant{ParticipantID: participantID, ProgramID: programID, Source: source, StartsAt: startsAt}
	if err := e.DB.Create(g).Error; err != nil {
		t.Fatalf("create grant: %v", err)
	}
	return g
}

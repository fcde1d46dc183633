package seed_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/modelstest"
	"github.com/grace-coaching/grace/models/seed"
)

func TestRunSeedsTheWorkshopOnceAndIsIdempotent(t *testing.T) {
	svc, clock, db := modelstest.NewService(t)
	ctx := context.Background()

	var first bytes.Buffer
	if err := seed.Run(ctx, svc, &first); err != nil {
		t.Fatalf("first seed: %v", err)
	}
	if !strings.Contains(first.String(), "created admin coach "+seed.AdminEmail+" with password ") {
		t.Fatalf("first seed should print the admin password once; printed:\n%s", first.String())
	}

	var second bytes.Buffer
	if err := seed.Run(ctx, svc, &second); err != nil {
		t.Fatalf("second seed: %v", err)
	}
	if strings.Contains(second.String(), "password") {
		t.Fatalf("second seed printed a password again:\n%s", second.String())
	}

	counts := map[string]int64{"programs": 1, "lessons": int64(len(seed.Lessons)), "coaches": 1}
	for table, want := range counts {
		var n int64
		db.Table(table).Count(&n)
		if n != want {
			t.Errorf("%s: %d rows after two seeds, want %d", table, n, want)
		}
	}

	prog, err := svc.GetPublishedProgram(ctx, seed.ProgramSlug)
	if err != nil {
		t.Fatalf("seeded program is not public: %v", err)
	}
	if !prog.FreeAccessOpen {
		t.Error("free-access window should be open after seeding")
	}
	if prog.Program.FreeAccessUntil == nil || !prog.Program.FreeAccessUntil.Equal(clock.Now().Add(30*24*time.Hour)) {
		t.Errorf("free access until %v, want 30 days from now", prog.Program.FreeAccessUntil)
	}

	var lessons []models.Lesson
	db.Where("program_id = ?", prog.Program.ID).Order("position").Find(&lessons)
	if len(lessons) < 6 {
		t.Fatalf("%d lessons, want at least 6", len(lessons))
	}
	for i, l := range lessons {
		if l.Title != seed.Lessons[i].Title || !l.Published || l.BodyHTML == "" || strings.Contains(l.BodyHTML, "<script") {
			t.Errorf("lesson %d = %q published=%v html=%d bytes; want %q published with rendered body", i+1, l.Title, l.Published, len(l.BodyHTML), seed.Lessons[i].Title)
		}
	}

	if _, _, _, err := svc.Login(ctx, seed.AdminEmail, "not the password", models.ClientInfo{IP: "127.0.0.1"}); !models.IsCode(err, "invalid_credentials") {
		t.Errorf("wrong password for the seeded admin: err = %v", err)
	}
}

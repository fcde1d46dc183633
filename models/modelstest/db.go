// Package modelstest gives each test its own freshly migrated Postgres
// database, cloned from a template so the migrations run once per schema.
package modelstest

import (
	"context"
	"database/sql"
	"log/slog"
	"net/url"
	"os"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver pgtestdb opens
	"github.com/peterldowns/pgtestdb"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/migrations"
	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/domain"
	"github.com/grace-coaching/grace/models/journal"
	"github.com/grace-coaching/grace/models/people"
)

type gooseMigrator struct{}

func (gooseMigrator) Hash() (string, error) { return migrations.Hash() }

func (gooseMigrator) Migrate(ctx context.Context, db *sql.DB, _ pgtestdb.Config) error {
	return migrations.Up(ctx, db)
}

// serverConfig reads TEST_DATABASE_URL (default: the local trust-auth server).
func serverConfig(t testing.TB) pgtestdb.Config {
	t.Helper()
	raw := os.Getenv("TEST_DATABASE_URL")
	if raw == "" {
		raw = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("TEST_DATABASE_URL: %v", err)
	}
	pw, _ := u.User.Password()
	return pgtestdb.Config{
		DriverName:                "pgx",
		Host:                      u.Hostname(),
		Port:                      u.Port(),
		User:                      u.User.Username(),
		Password:                  pw,
		Database:                  "postgres",
		Options:                   u.RawQuery,
		ForceTerminateConnections: true,
	}
}

// URL creates a fresh database for this test and returns its connection URL.
// It fails the test (never skips) when Postgres cannot be reached.
func URL(t testing.TB) string {
	t.Helper()
	return pgtestdb.Custom(t, serverConfig(t), gooseMigrator{}).URL()
}

// NewDB opens GORM on a fresh database for this test.
func NewDB(t testing.TB) *gorm.DB {
	t.Helper()
	db, err := models.OpenDB(context.Background(), URL(t), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	t.Cleanup(func() {
		if sqlDB, err := db.DB(); err == nil {
			_ = sqlDB.Close()
		}
	})
	return db
}

// Start is the fake clock's start for tests: a fixed instant, so expiry and
// unlock arithmetic reads the same in every run.
var Start = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// Limits are the default limits without the password-hash budget: a fake
// clock stands still, so the budget would never refill and a test that
// signs in a few times would be refused for a reason it is not about. The
// budget's own tests turn it on.
func Limits() *models.Limits {
	l := models.DefaultLimits()
	l.PasswordHashes = models.Budget{}
	return &l
}

// NewService is a domain service on a fresh database with a fake clock.
func NewService(t testing.TB) (*domain.Services, *models.FakeClock, *gorm.DB) {
	t.Helper()
	db := NewDB(t)
	clock := models.NewFakeClock(Start)
	svc := domain.New(domain.Deps{DB: db, Clock: clock, Limits: Limits(), Reflections: Keyring(t)})
	return svc, clock, db
}

// Keyring is a keyring of one fresh random master key, as REFLECTIONS_KEY
// gives in production.
func Keyring(t testing.TB) *journal.Keyring {
	t.Helper()
	r, err := journal.NewKeyring(journal.NewMasterKey("test"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// WantCode fails the test unless err is a domain error with code.
func WantCode(t testing.TB, err error, code string) *models.Error {
	t.Helper()
	e, ok := models.AsError(err)
	if !ok || e.Code != code {
		t.Fatalf("err = %v, want code %s", err, code)
	}
	return e
}

// MustDo fails the test on err.
func MustDo(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Ptr is a pointer to a copy of v.
func Ptr[T any](v T) *T { return &v }

// NewCoach writes an active coach account with the given role.
func NewCoach(t testing.TB, db *gorm.DB, email string, role people.Role) *people.Coach {
	t.Helper()
	c := &people.Coach{Email: email, Name: email, Role: role, Active: true}
	if err := db.Create(c).Error; err != nil {
		t.Fatalf("create coach: %v", err)
	}
	return c
}

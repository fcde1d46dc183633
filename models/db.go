package models

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"
	"gorm.io/gorm/utils"
)

// OpenDB connects GORM to Postgres. The pool is sized for one process; many
// instances share the server's max_connections.
func OpenDB(ctx context.Context, dsn string, log *slog.Logger) (*gorm.DB, error) {
	db, err := gorm.Open(postgres.New(postgres.Config{DSN: dsn}), &gorm.Config{
		Logger:                 queryLogger{log: log, slow: 500 * time.Millisecond},
		NowFunc:                func() time.Time { return time.Now().UTC() },
		SkipDefaultTransaction: true,
		PrepareStmt:            false,
		TranslateError:         false,
	})
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	// Eight connections per core: Postgres on the same cores does more work
	// with fewer busy backends, and a hot row (a cohort on launch day) has
	// fewer waiters thrashing on its lock. Requests beyond the pool queue in
	// database/sql, which is cheaper than queueing in Postgres.
	conns := 8 * runtime.NumCPU()
	sqlDB.SetMaxOpenConns(conns)
	sqlDB.SetMaxIdleConns(conns)
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := sqlDB.PingContext(pingCtx); err != nil {
		return nil, fmt.Errorf("reach database: %w", err)
	}
	return db, nil
}

// Postgres error codes the domain turns into domain errors.
const (
	pgUniqueViolation     = "23505"
	PgForeignKeyViolation = "23503"
	pgCheckViolation      = "23514"
	pgSerialization       = "40001"
	pgDeadlock            = "40P01"
)

// pgCode returns the SQLSTATE of err, or "".
func PgCode(err error) (code, constraint string) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code, pgErr.ConstraintName
	}
	return "", ""
}

// isUniqueViolation reports whether err violates the named unique constraint
// (any unique constraint when name is empty).
func IsUniqueViolation(err error, name string) bool {
	code, constraint := PgCode(err)
	return code == pgUniqueViolation && (name == "" || constraint == name)
}

// ErrUnavailable is the answer while the database cannot be reached: the
// request was fine and is worth repeating in a few seconds.
var ErrUnavailable = &Error{Kind: KindUnavailable, Code: "service_unavailable",
	Message: "The service is briefly unavailable. Please try again in a few seconds.", RetryAfter: 5 * time.Second}

// IsUnavailable reports whether err means the database is away rather than
// that the query was wrong: it refused or dropped the connection, is
// shutting down or starting up (57P01-57P03), or the link broke (class 08).
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03" || strings.HasPrefix(pgErr.Code, "08")
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connErr) || errors.As(err, &netErr) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, sql.ErrConnDone) || pgconn.SafeToRetry(err) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrUnexpectedEOF)
}

// mapDBError turns database errors a client can cause into domain errors, in
// one place, and wraps the rest with context for the logs.
func MapDBError(err error, what string) error {
	if err == nil {
		return nil
	}
	if _, ok := AsError(err); ok {
		return err
	}
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return NotFound(what)
	}
	if IsUnavailable(err) {
		e := *ErrUnavailable
		e.Err = err
		return &e
	}
	switch code, constraint := PgCode(err); code {
	case pgUniqueViolation:
		return &Error{Kind: KindConflict, Code: "conflict", Message: fmt.Sprintf("The %s conflicts with an existing one.", what), Err: err}
	case PgForeignKeyViolation:
		return &Error{Kind: KindConflict, Code: "conflict", Message: fmt.Sprintf("The %s refers to, or is referred to by, another record.", what), Err: err}
	case pgCheckViolation:
		return &Error{Kind: KindInvalid, Code: "validation_failed", Message: fmt.Sprintf("The %s breaks the rule %s.", what, constraint), Err: err}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// inTx runs fn in a transaction; every domain write that must be atomic with
// its outbox rows goes through here.
func (s *Kernel) InTx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return s.DB.WithContext(ctx).Transaction(fn)
}

// queryLogger logs slow queries only. A failed query is not logged here: the
// domain maps the errors a client causes, and the HTTP layer logs the rest
// once, with the request id. It also never builds the SQL text of a fast
// query, which GORM's stock loggers do on every call.
type queryLogger struct {
	log  *slog.Logger
	slow time.Duration
}

func (l queryLogger) LogMode(logger.LogLevel) logger.Interface { return l }

func (l queryLogger) Info(ctx context.Context, msg string, args ...any) {
	l.log.InfoContext(ctx, fmt.Sprintf(msg, args...))
}

func (l queryLogger) Warn(ctx context.Context, msg string, args ...any) {
	l.log.WarnContext(ctx, fmt.Sprintf(msg, args...))
}

func (l queryLogger) Error(ctx context.Context, msg string, args ...any) {
	l.log.ErrorContext(ctx, fmt.Sprintf(msg, args...))
}

func (l queryLogger) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	elapsed := time.Since(begin)
	if elapsed < l.slow {
		return
	}
	// The caller, not the SQL: GORM interpolates values into the text, and
	// some (an outbox row's login token) must never reach a log.
	_, rows := fc()
	l.log.WarnContext(ctx, "slow query", "duration_ms", elapsed.Milliseconds(), "rows", rows, "caller", utils.FileWithLineNum())
}

// RowLock is SELECT ... FOR UPDATE: a parent row (a program, a sequence, a
// cohort) is the lock that serialises every change to what hangs off it.
var RowLock = clause.Locking{Strength: "UPDATE"}

// Take reads the one row q selects (locked FOR UPDATE when lock is set), or
// not found naming what. Every domain's find-by-id-in-scope ends this way.
func Take[T any](q *gorm.DB, lock bool, what string) (*T, error) {
	if lock {
		q = q.Clauses(RowLock)
	}
	var row T
	if err := q.Take(&row).Error; err != nil {
		return nil, MapDBError(err, what)
	}
	return &row, nil
}

package models

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/gorm"
)

// database/sql sends one statement per round trip and BEGIN as one of its
// own. On hot paths Grace sends what it already knows together, as a pgx
// pipeline on the pool's connection: the server runs the statements in
// order, each with its own snapshot, and answers them all at once.

// withPgx runs fn on a pooled connection's pgx driver. fn must leave the
// connection outside any transaction.
func (s *Kernel) WithPgx(ctx context.Context, fn func(*pgx.Conn) error) error {
	sqlDB, err := s.DB.DB()
	if err != nil {
		return err
	}
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return rawPgx(conn, fn)
}

func rawPgx(conn *sql.Conn, fn func(*pgx.Conn) error) error {
	return conn.Raw(func(driverConn any) error {
		c, ok := driverConn.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("database driver is %T, not pgx", driverConn)
		}
		return fn(c.Conn())
	})
}

// inTxPipelined is inTx for a transaction whose first statements do not
// depend on each other's answers: first queues them (reading their answers
// in the batch's callbacks) and they go out with BEGIN in one round trip.
// fn then continues the same transaction through GORM, and COMMIT ends it.
// Any error rolls it all back.
func (s *Kernel) InTxPipelined(ctx context.Context, first func(*pgx.Batch), fn func(tx *gorm.DB) error) (err error) {
	sqlDB, err := s.DB.DB()
	if err != nil {
		return err
	}
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	began := false
	defer func() {
		if p := recover(); p != nil {
			rollbackConn(conn, began)
			panic(p)
		}
		if err != nil {
			rollbackConn(conn, began)
		}
	}()
	err = rawPgx(conn, func(c *pgx.Conn) error {
		b := &pgx.Batch{}
		b.Queue("BEGIN")
		first(b)
		began = true
		return c.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return err
	}
	tx := s.DB.WithContext(ctx).Session(&gorm.Session{NewDB: true})
	tx.Statement.ConnPool = connTx{conn}
	if err = fn(tx); err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, "COMMIT")
	return err
}

// rollbackConn ends a failed pipelined transaction. A connection that
// cannot be rolled back is discarded rather than returned to the pool in
// the middle of a transaction.
func rollbackConn(conn *sql.Conn, began bool) {
	if !began {
		return
	}
	if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	}
}

// connTx is a pipelined transaction as GORM sees it: statements go to its
// connection, and being a TxCommitter makes a nested Transaction a
// savepoint rather than a second BEGIN.
type connTx struct{ *sql.Conn }

var errPipelinedTxEnd = errors.New("a pipelined transaction is ended by inTxPipelined")

func (connTx) Commit() error   { return errPipelinedTxEnd }
func (connTx) Rollback() error { return errPipelinedTxEnd }

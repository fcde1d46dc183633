package models

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
)

// Tasks are the per-address work of a public form, done after the answer.
//
// A form that must not reveal whether an address is known (checkout, the
// waitlist, a free-access claim, a sign-in link, a password reset) does the
// same statements for every caller, writes one task, and answers. A worker
// then claims the task under a lease (like the outbox's: attempts is the
// fencing token) and runs its kind's handler in one transaction with the
// task's deletion. The handler's writes, the emails it enqueues and the
// task's end commit together: a worker that dies before the commit leaves
// the task to be reclaimed when its lease expires, and one that lost its
// lease deletes nothing and rolls its work back. A task's emails use
// TaskDedupeKey, so even a handler that ran twice could not send twice.
//
// Rooms register a handler per kind (RegisterTask) when they are built;
// the worker is RunTasks, next to the outbox's.

// TaskHandler does one task's work inside tx; the task is deleted in the
// same transaction when it returns nil. An error rolls the work back and
// the task is tried again later, unless it is permanent (IsPermanentTask).
type TaskHandler func(ctx context.Context, tx *gorm.DB, t Task) error

// TaskStatus is where a task stands (tasks.status). A done task is
// deleted, so no address or IP lingers.
type TaskStatus string

const (
	TaskPending TaskStatus = "pending"
	TaskRunning TaskStatus = "running"
	TaskFailed  TaskStatus = "failed"
)

// Task is one unit of deferred work. Payload is its kind's JSON.
type Task struct {
	ID          uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	Kind        string
	Payload     json.RawMessage `gorm:"type:jsonb"`
	Status      TaskStatus
	Attempts    int
	RunAt       time.Time
	LockedUntil *time.Time
	LastError   *string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

func (Task) TableName() string { return "tasks" }

// Decode unmarshals the payload into v.
func (t Task) Decode(v any) error {
	if err := json.Unmarshal(t.Payload, v); err != nil {
		return Permanent(fmt.Errorf("task %s (%s): payload: %w", t.ID, t.Kind, err))
	}
	return nil
}

// TaskDedupeKey is the outbox dedupe key of a task's email named what:
// exactly one such email per task, however often it ran.
func TaskDedupeKey(t Task, what string) string {
	return "task:" + t.ID.String() + ":" + what
}

// Task worker defaults.
const (
	DefaultTaskLease       = 30 * time.Second
	DefaultTaskPoll        = 250 * time.Millisecond
	DefaultTaskConcurrency = 2
	MaxTaskAttempts        = 10

	taskBackoffBase = time.Second
	taskBackoffCap  = 5 * time.Minute
)

// permanentError marks a handler error that no retry can cure.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent wraps err so the task is given up on at once.
func Permanent(err error) error { return permanentError{err} }

// IsPermanentTask reports whether a handler's error is for good: marked
// Permanent, or a domain error about the request itself (its cohort or
// program gone, invalid input) rather than about the moment (a database
// or provider away, a rate limit).
func IsPermanentTask(err error) bool {
	var p permanentError
	if errors.As(err, &p) {
		return true
	}
	if e, ok := AsError(err); ok {
		switch e.Kind {
		case KindUnavailable, KindUpstream, KindRateLimited:
			return false
		}
		return true
	}
	return false
}

// taskQueue is the kernel's registry of handlers and the wake-up of this
// process's workers.
type taskQueue struct {
	mu       sync.RWMutex
	handlers map[string]TaskHandler
	wake     chan struct{}
}

func newTaskQueue() *taskQueue {
	return &taskQueue{handlers: map[string]TaskHandler{}, wake: make(chan struct{}, 1)}
}

func (k *Kernel) taskQueue() *taskQueue {
	k.tasksOnce.Do(func() {
		if k.tasks == nil {
			k.tasks = newTaskQueue()
		}
	})
	return k.tasks
}

// RegisterTask sets the handler of kind. A kind has one handler; a second
// registration is a programming error.
func (k *Kernel) RegisterTask(kind string, h TaskHandler) {
	q := k.taskQueue()
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, dup := q.handlers[kind]; dup {
		panic("models: task kind " + kind + " registered twice")
	}
	q.handlers[kind] = h
}

func (k *Kernel) taskHandler(kind string) TaskHandler {
	q := k.taskQueue()
	q.mu.RLock()
	defer q.mu.RUnlock()
	return q.handlers[kind]
}

// EnqueueTask writes one task of kind, due now, and wakes this process's
// task workers. It is one INSERT whatever the payload says, so the caller
// takes the same time for every address.
func (k *Kernel) EnqueueTask(ctx context.Context, kind string, payload any) error {
	raw, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("task %s: payload: %w", kind, err)
	}
	now := k.Now()
	t := Task{ID: uuid.New(), Kind: kind, Payload: raw, Status: TaskPending, RunAt: now, CreatedAt: now, UpdatedAt: now}
	if err := k.DB.WithContext(ctx).Create(&t).Error; err != nil {
		return MapDBError(err, "task")
	}
	select {
	case k.taskQueue().wake <- struct{}{}:
	default:
	}
	return nil
}

// ClaimTasks leases up to limit due tasks for lease: pending ones due now,
// and running ones whose worker's lease expired (it died mid-task).
func (k *Kernel) ClaimTasks(ctx context.Context, limit int, lease time.Duration) ([]Task, error) {
	if limit <= 0 {
		return nil, nil
	}
	if lease <= 0 {
		return nil, errors.New("tasks: claim lease must be positive")
	}
	now := k.Now()
	var ts []Task
	err := k.DB.WithContext(ctx).Raw(`
		WITH due AS MATERIALIZED (
			SELECT id FROM tasks
			WHERE (status = 'pending' OR (status = 'running' AND locked_until < ?))
			  AND run_at <= ?
			ORDER BY run_at
			LIMIT ?
			FOR UPDATE SKIP LOCKED
		)
		UPDATE tasks t
		SET status = 'running', locked_until = ?, attempts = t.attempts + 1, updated_at = ?
		FROM due
		WHERE t.id = due.id
		RETURNING t.*`,
		now, now, limit, now.Add(lease), now,
	).Scan(&ts).Error
	if err != nil {
		return nil, fmt.Errorf("claim tasks: %w", err)
	}
	return ts, nil
}

// ErrTaskLeaseLost is RunTask's answer for a task no longer held by the
// caller's claim: another worker reclaimed it, and its work was rolled back
// here.
var ErrTaskLeaseLost = errors.New("tasks: lease lost; the task was reclaimed elsewhere")

// RunTask runs a claimed task's handler and deletes the task in one
// transaction. The deletion comes first and is fenced by the claim's
// attempt: it locks the row, so no other worker can reclaim it while the
// work runs, and a worker whose lease was taken over deletes nothing and
// does nothing. A failing handler's task is retried with backoff, or given
// up on with its reason logged and its payload removed; RunTask then
// returns the handler's error, already logged.
func (k *Kernel) RunTask(ctx context.Context, t Task) error {
	h := k.taskHandler(t.Kind)
	var err error
	if h == nil {
		err = Permanent(fmt.Errorf("no handler for task kind %q", t.Kind))
	} else {
		err = k.InTx(ctx, func(tx *gorm.DB) error {
			res := tx.Exec(`DELETE FROM tasks WHERE id = ? AND status = 'running' AND attempts = ?`, t.ID, t.Attempts)
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected == 0 {
				return ErrTaskLeaseLost
			}
			return h(ctx, tx, t)
		})
	}
	if err == nil || errors.Is(err, ErrTaskLeaseLost) {
		return err
	}
	if ctx.Err() != nil {
		// Stopping: the lease runs out and another worker takes it over.
		return err
	}
	now := k.Now()
	var settle error
	if IsPermanentTask(err) || t.Attempts >= MaxTaskAttempts {
		k.Log.ErrorContext(ctx, "task given up", "task_id", t.ID, "kind", t.Kind, "attempts", t.Attempts, "err", err)
		settle = k.settleTask(ctx, `UPDATE tasks SET status = 'failed', payload = '{}', locked_until = NULL, last_error = ?, updated_at = ?
			WHERE id = ? AND status = 'running' AND attempts = ?`, TruncateError(err.Error()), now, t.ID, t.Attempts)
	} else {
		k.Log.WarnContext(ctx, "task failed, will retry", "task_id", t.ID, "kind", t.Kind, "attempts", t.Attempts, "err", err)
		settle = k.settleTask(ctx, `UPDATE tasks SET status = 'pending', run_at = ?, locked_until = NULL, last_error = ?, updated_at = ?
			WHERE id = ? AND status = 'running' AND attempts = ?`, now.Add(taskBackoff(t.Attempts)), TruncateError(err.Error()), now, t.ID, t.Attempts)
	}
	if settle != nil && !errors.Is(settle, ErrTaskLeaseLost) {
		k.Log.ErrorContext(ctx, "settle failed task", "task_id", t.ID, "kind", t.Kind, "err", settle)
	}
	return err
}

func (k *Kernel) settleTask(ctx context.Context, sql string, args ...any) error {
	res := k.DB.WithContext(ctx).Exec(sql, args...)
	if res.Error != nil {
		return fmt.Errorf("settle task: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrTaskLeaseLost
	}
	return nil
}

// taskBackoff doubles from a second to five minutes: a database blip is
// over in seconds, and her email should not wait for the end of the hour.
func taskBackoff(attempt int) time.Duration {
	d := taskBackoffBase
	for i := 1; i < attempt && d < taskBackoffCap; i++ {
		d *= 2
	}
	return min(d, taskBackoffCap)
}

// RunTasksOnce claims and runs due tasks until none is left, and returns
// how many it ran to completion. Tests and the bench drain the queue with
// it; RunTasks is the long-running worker.
func (k *Kernel) RunTasksOnce(ctx context.Context) (int, error) {
	done := 0
	for {
		ts, err := k.ClaimTasks(ctx, 16, DefaultTaskLease)
		if err != nil || len(ts) == 0 {
			return done, err
		}
		for _, t := range ts {
			if err := k.RunTask(ctx, t); err == nil {
				done++
			} else if ctx.Err() != nil {
				return done, ctx.Err()
			}
		}
	}
}

// TaskWorkerConfig configures RunTasks; zero values take the defaults.
type TaskWorkerConfig struct {
	Concurrency int
	Poll        time.Duration
	Lease       time.Duration
}

// RunTasks works the task queue until ctx is cancelled, then lets the tasks
// in hand finish (or roll back, if cancelling cut their statements off) and
// returns nil. Each of Concurrency loops claims one task at a time; an
// EnqueueTask in this process wakes them at once, and Poll finds the tasks
// other processes wrote.
func (k *Kernel) RunTasks(ctx context.Context, cfg TaskWorkerConfig) error {
	n := cfg.Concurrency
	if n <= 0 {
		n = DefaultTaskConcurrency
	}
	poll := cfg.Poll
	if poll <= 0 {
		poll = DefaultTaskPoll
	}
	lease := cfg.Lease
	if lease <= 0 {
		lease = DefaultTaskLease
	}
	wake := k.taskQueue().wake
	k.Log.InfoContext(ctx, "task worker started", "concurrency", n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			timer := time.NewTimer(poll)
			defer timer.Stop()
			for ctx.Err() == nil {
				// The task's own work runs on a context that outlives a
				// shutdown's cancel for a moment, so a task in hand commits
				// or rolls back cleanly instead of failing half-way.
				ts, err := k.ClaimTasks(ctx, 1, lease)
				if err != nil && ctx.Err() == nil {
					k.Log.ErrorContext(ctx, "claim tasks", "err", err)
				}
				for _, t := range ts {
					rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lease)
					_ = k.RunTask(rctx, t) // a failure is logged and settled there
					cancel()
				}
				if len(ts) > 0 {
					select {
					case wake <- struct{}{}: // another may be due: pass it on
					default:
					}
					continue
				}
				timer.Reset(poll)
				select {
				case <-ctx.Done():
				case <-wake:
				case <-timer.C:
				}
			}
		})
	}
	wg.Wait()
	k.Log.Info("task worker stopped")
	return nil
}

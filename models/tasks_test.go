package models_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/modelstest"
)

// taskKit is a kernel with one task kind whose handler emails the payload's
// address, deduplicated by the task, and can be made to stall or fail.
type taskKit struct {
	k     *models.Kernel
	clock *models.FakeClock
	// handle, when set, runs inside the task's transaction after the email
	// was enqueued; its error fails the task.
	handle func(ctx context.Context, call int32) error
	calls  atomic.Int32
}

const testTaskKind = "test.email"

func newTaskKit(t *testing.T) *taskKit {
	t.Helper()
	k, clock := newOutboxTestService(t)
	kit := &taskKit{k: k, clock: clock}
	k.RegisterTask(testTaskKind, func(ctx context.Context, tx *gorm.DB, task models.Task) error {
		var in struct {
			Email string `json:"email"`
		}
		if err := task.Decode(&in); err != nil {
			return err
		}
		if err := k.EnqueueEmail(tx, models.TemplateLoginLink, in.Email, "", models.TaskDedupeKey(task, "login"), map[string]any{"token": "t", "code": "123456", "expires_minutes": 10}); err != nil {
			return err
		}
		n := kit.calls.Add(1)
		if kit.handle != nil {
			return kit.handle(ctx, n)
		}
		return nil
	})
	return kit
}

func (kit *taskKit) enqueue(t *testing.T, email string) {
	t.Helper()
	if err := kit.k.EnqueueTask(context.Background(), testTaskKind, map[string]string{"email": email}); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
}

func (kit *taskKit) emails(t *testing.T, to string) int64 {
	t.Helper()
	var n int64
	modelstest.MustDo(t, kit.k.DB.Model(&models.OutboxMessage{}).Where("to_email = ?", to).Count(&n).Error)
	return n
}

func (kit *taskKit) tasks(t *testing.T) []models.Task {
	t.Helper()
	var ts []models.Task
	modelstest.MustDo(t, kit.k.DB.Order("created_at").Find(&ts).Error)
	return ts
}

func (kit *taskKit) runOnce(t *testing.T, want int) {
	t.Helper()
	n, err := kit.k.RunTasksOnce(context.Background())
	if err != nil {
		t.Fatalf("run tasks: %v", err)
	}
	if n != want {
		t.Fatalf("ran %d tasks, want %d", n, want)
	}
}

// A done task leaves its email and nothing else: the row with her address
// and IP is gone in the same commit.
func TestTaskRunsOnceAndLeavesNoPayload(t *testing.T) {
	kit := newTaskKit(t)
	kit.enqueue(t, "ada@example.com")
	kit.runOnce(t, 1)
	kit.runOnce(t, 0)
	if n := kit.emails(t, "ada@example.com"); n != 1 {
		t.Fatalf("emails = %d, want 1", n)
	}
	if ts := kit.tasks(t); len(ts) != 0 {
		t.Fatalf("tasks left: %+v", ts)
	}
}

// A worker killed between its claim and its commit (SIGKILL, a lost
// machine) leaves no trace but the claim: nothing runs while the lease
// holds, and once it runs out another worker does the task, once.
func TestTaskWorkerKilledAfterClaimIsDoneOnceAfterTheLease(t *testing.T) {
	kit := newTaskKit(t)
	kit.enqueue(t, "ada@example.com")
	claimed, err := kit.k.ClaimTasks(context.Background(), 1, models.DefaultTaskLease)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim = %d, %v", len(claimed), err)
	}
	// The dead worker does nothing more.
	kit.clock.Advance(models.DefaultTaskLease - time.Second)
	kit.runOnce(t, 0)
	kit.clock.Advance(2 * time.Second)
	kit.runOnce(t, 1)
	if n := kit.emails(t, "ada@example.com"); n != 1 {
		t.Fatalf("emails = %d, want 1", n)
	}
	// Should the dead worker come back, its claim is void.
	if err := kit.k.RunTask(context.Background(), claimed[0]); !errors.Is(err, models.ErrTaskLeaseLost) {
		t.Fatalf("stale run = %v, want ErrTaskLeaseLost", err)
	}
	if n := kit.emails(t, "ada@example.com"); n != 1 {
		t.Fatalf("emails after the stale run = %d, want 1", n)
	}
}

// A worker killed inside the task's transaction (after its email was
// written, before the commit): the connection's end rolls the work back,
// the task is reclaimed after its lease, and she gets exactly one email.
func TestTaskWorkerKilledMidTransactionLosesNothingAndDoublesNothing(t *testing.T) {
	kit := newTaskKit(t)
	inTx := make(chan struct{})
	kit.handle = func(ctx context.Context, call int32) error {
		if call == 1 {
			close(inTx)
			<-ctx.Done() // the kill: the statement and the transaction die with it
			return ctx.Err()
		}
		return nil
	}
	kit.enqueue(t, "ada@example.com")
	claimed, err := kit.k.ClaimTasks(context.Background(), 1, models.DefaultTaskLease)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim = %d, %v", len(claimed), err)
	}
	ctx, kill := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- kit.k.RunTask(ctx, claimed[0]) }()
	<-inTx
	kill()
	if err := <-done; err == nil {
		t.Fatal("the killed run committed")
	}
	if n := kit.emails(t, "ada@example.com"); n != 0 {
		t.Fatalf("emails after the kill = %d, want 0 (rolled back)", n)
	}
	if ts := kit.tasks(t); len(ts) != 1 || ts[0].Status != models.TaskRunning {
		t.Fatalf("after the kill the task is %+v, want it still claimed", ts)
	}
	kit.runOnce(t, 0) // its lease still holds
	kit.clock.Advance(models.DefaultTaskLease + time.Second)
	kit.runOnce(t, 1)
	if n := kit.emails(t, "ada@example.com"); n != 1 {
		t.Fatalf("emails = %d, want 1", n)
	}
	if ts := kit.tasks(t); len(ts) != 0 {
		t.Fatalf("tasks left: %+v", ts)
	}
}

// A passing failure retries with a growing wait; a permanent one, or the
// last attempt, gives up at once, keeps the reason and drops the payload.
func TestTaskFailuresRetryWithBackoffThenGiveUp(t *testing.T) {
	t.Run("transient", func(t *testing.T) {
		kit := newTaskKit(t)
		kit.handle = func(context.Context, int32) error { return errors.New("database blip") }
		kit.enqueue(t, "ada@example.com")
		var waits []time.Duration
		for attempt := 1; attempt <= models.MaxTaskAttempts; attempt++ {
			kit.runOnce(t, 0)
			ts := kit.tasks(t)
			if len(ts) != 1 || ts[0].Attempts != attempt {
				t.Fatalf("attempt %d: tasks %+v", attempt, ts)
			}
			if attempt == models.MaxTaskAttempts {
				if ts[0].Status != models.TaskFailed || string(ts[0].Payload) != "{}" || ts[0].LastError == nil || *ts[0].LastError != "database blip" {
					t.Fatalf("given up as %+v, payload %s", ts[0], ts[0].Payload)
				}
				break
			}
			if ts[0].Status != models.TaskPending {
				t.Fatalf("attempt %d: status %s", attempt, ts[0].Status)
			}
			wait := ts[0].RunAt.Sub(kit.clock.Now())
			waits = append(waits, wait)
			kit.runOnce(t, 0) // not due yet
			if after := kit.tasks(t); after[0].Attempts != attempt {
				t.Fatalf("attempt %d ran again before its wait", attempt)
			}
			kit.clock.Advance(wait)
		}
		if waits[0] != time.Second || waits[1] != 2*time.Second || waits[len(waits)-1] > 5*time.Minute {
			t.Fatalf("waits %v: want 1s, 2s, ... at most 5m", waits)
		}
		if n := kit.emails(t, "ada@example.com"); n != 0 {
			t.Fatalf("a failed task's email was kept: %d", n)
		}
	})
	t.Run("permanent", func(t *testing.T) {
		kit := newTaskKit(t)
		kit.handle = func(context.Context, int32) error { return models.NotFound("cohort") }
		kit.enqueue(t, "ada@example.com")
		kit.runOnce(t, 0)
		ts := kit.tasks(t)
		if len(ts) != 1 || ts[0].Status != models.TaskFailed || ts[0].Attempts != 1 || string(ts[0].Payload) != "{}" {
			t.Fatalf("task %+v, payload %s", ts, ts[0].Payload)
		}
	})
	t.Run("unknown kind", func(t *testing.T) {
		kit := newTaskKit(t)
		if err := kit.k.EnqueueTask(context.Background(), "test.nobody", map[string]string{"email": "ada@example.com"}); err != nil {
			t.Fatal(err)
		}
		kit.runOnce(t, 0)
		if ts := kit.tasks(t); len(ts) != 1 || ts[0].Status != models.TaskFailed || string(ts[0].Payload) != "{}" {
			t.Fatalf("task %+v", ts)
		}
	})
}

// The long-running worker does a task enqueued in its process at once,
// not at its next poll, and stops cleanly when cancelled.
func TestRunTasksWakesOnEnqueueAndStops(t *testing.T) {
	kit := newTaskKit(t)
	ctx, stop := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- kit.k.RunTasks(ctx, models.TaskWorkerConfig{Poll: time.Hour}) }()
	time.Sleep(50 * time.Millisecond) // let it block on its wait
	kit.enqueue(t, "ada@example.com")
	deadline := time.Now().Add(10 * time.Second)
	for kit.emails(t, "ada@example.com") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the enqueued task was not done within 10 s (the poll is an hour)")
		}
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("RunTasks = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RunTasks did not stop")
	}
}

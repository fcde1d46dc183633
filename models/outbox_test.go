package models_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/modelstest"
)

func newOutboxTestService(t *testing.T) (*models.Kernel, *models.FakeClock) {
	t.Helper()
	clock := models.NewFakeClock(modelstest.Start)
	return models.NewKernel(modelstest.NewDB(t), clock, nil, nil), clock
}

func countOutbox(t *testing.T, s *models.Kernel) int64 {
	t.Helper()
	var n int64
	if err := s.DB.Model(&models.OutboxMessage{}).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

func loadOutbox(t *testing.T, s *models.Kernel, id uuid.UUID) models.OutboxMessage {
	t.Helper()
	var m models.OutboxMessage
	if err := s.DB.First(&m, "id = ?", id).Error; err != nil {
		t.Fatalf("load outbox %s: %v", id, err)
	}
	return m
}

// insertOutbox writes a row in the given state; next is relative to the clock.
func insertOutbox(t *testing.T, s *models.Kernel, status models.OutboxStatus, next time.Duration, lockedFor *time.Duration) models.OutboxMessage {
	t.Helper()
	m := models.OutboxMessage{
		Template:      models.TemplateLoginLink,
		ToEmail:       "ana@example.com",
		ToName:        "Ana",
		Data:          map[string]any{"name": "Ana", "token": "secret-token", "code": "123456", "expires_minutes": 10},
		Status:        status,
		NextAttemptAt: s.Now().Add(next),
	}
	if lockedFor != nil {
		until := s.Now().Add(*lockedFor)
		m.LockedUntil = &until
	}
	if status == models.OutboxSent {
		now := s.Now()
		m.SentAt = &now
	}
	if err := s.DB.Create(&m).Error; err != nil {
		t.Fatalf("insert outbox: %v", err)
	}
	return m
}

func outboxDuration(d time.Duration) *time.Duration { return &d }

func TestEnqueueEmailCommitsWithItsTransaction(t *testing.T) {
	tests := []struct {
		name     string
		rollback bool
		want     int64
	}{
		{"commit writes the row", false, 1},
		{"rollback leaves no row", true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newOutboxTestService(t)
			errRollback := errors.New("the change failed")
			err := s.InTx(context.Background(), func(tx *gorm.DB) error {
				if err := s.EnqueueEmail(tx, models.TemplateLoginLink, " Ana@Example.com ", "Ana", "", map[string]any{"token": "t"}); err != nil {
					return err
				}
				if tc.rollback {
					return errRollback
				}
				return nil
			})
			if tc.rollback != errors.Is(err, errRollback) || (!tc.rollback && err != nil) {
				t.Fatalf("inTx: %v", err)
			}
			if got := countOutbox(t, s); got != tc.want {
				t.Fatalf("outbox rows = %d, want %d", got, tc.want)
			}
			if tc.want == 1 {
				var m models.OutboxMessage
				s.DB.First(&m)
				if m.ToEmail != "ana@example.com" || m.Status != models.OutboxPending || !m.NextAttemptAt.Equal(modelstest.Start) || m.Data["token"] != "t" {
					t.Fatalf("row = %+v", m)
				}
			}
		})
	}
}

func TestEnqueueEmailDedupeKey(t *testing.T) {
	tests := []struct {
		name string
		keys []string
		want int64
	}{
		{"same key twice writes one row", []string{"invite:1", "invite:1"}, 1},
		{"different keys write two rows", []string{"invite:1", "invite:2"}, 2},
		{"no key never dedupes", []string{"", ""}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newOutboxTestService(t)
			for i, key := range tc.keys {
				err := s.InTx(context.Background(), func(tx *gorm.DB) error {
					return s.EnqueueEmail(tx, models.TemplateCoachInvite, "coach@example.com", "Coach", key, map[string]any{"n": i})
				})
				if err != nil {
					t.Fatalf("enqueue %d: %v", i, err)
				}
			}
			if got := countOutbox(t, s); got != tc.want {
				t.Fatalf("outbox rows = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestClaimOutboxTakesOnlyDueRows(t *testing.T) {
	s, clock := newOutboxTestService(t)
	ctx := context.Background()
	lease := 5 * time.Minute

	older := insertOutbox(t, s, models.OutboxPending, -time.Minute, nil)
	due := insertOutbox(t, s, models.OutboxPending, 0, nil)
	expired := insertOutbox(t, s, models.OutboxSending, -10*time.Minute, outboxDuration(-time.Second))
	insertOutbox(t, s, models.OutboxPending, time.Second, nil)                             // not yet due
	insertOutbox(t, s, models.OutboxSending, -10*time.Minute, outboxDuration(time.Minute)) // another worker holds it
	insertOutbox(t, s, models.OutboxSent, -time.Hour, nil)
	insertOutbox(t, s, models.OutboxFailed, -time.Hour, nil)
	insertOutbox(t, s, models.OutboxCancelled, -time.Hour, nil)

	first, err := s.ClaimOutbox(ctx, 1, lease)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 1 || first[0].ID != expired.ID {
		t.Fatalf("limit 1 claimed %v, want the longest-due row %s", outboxIDs(first), expired.ID)
	}

	rest, err := s.ClaimOutbox(ctx, 10, lease)
	if err != nil {
		t.Fatal(err)
	}
	got := outboxIDs(rest)
	want := []uuid.UUID{older.ID, due.ID}
	slices.SortFunc(got, compareOutboxIDs)
	slices.SortFunc(want, compareOutboxIDs)
	if !slices.Equal(got, want) {
		t.Fatalf("claimed %v, want %v", got, want)
	}
	for _, m := range append(first, rest...) {
		if m.Status != models.OutboxSending || m.LockedUntil == nil || !m.LockedUntil.Equal(clock.Now().Add(lease)) {
			t.Errorf("claimed row %s: status %q locked_until %v", m.ID, m.Status, m.LockedUntil)
		}
		if m.Attempts != 1 {
			t.Errorf("claimed row %s: attempts %d, want 1", m.ID, m.Attempts)
		}
		if m.Data["token"] != "secret-token" || m.Template != models.TemplateLoginLink || m.ToEmail != "ana@example.com" {
			t.Errorf("claimed row %s came back incomplete: %+v", m.ID, m)
		}
	}

	again, err := s.ClaimOutbox(ctx, 10, lease)
	if err != nil || len(again) != 0 {
		t.Fatalf("second claim = %v, %v; want nothing while the leases hold", outboxIDs(again), err)
	}

	clock.Advance(lease + time.Second)
	reclaimed, err := s.ClaimOutbox(ctx, 10, lease)
	if err != nil {
		t.Fatal(err)
	}
	// The three just claimed, the not-yet-due one, and the one whose
	// minute-long lease has run out.
	if len(reclaimed) != 5 {
		t.Fatalf("after the leases expired claimed %d rows, want 5", len(reclaimed))
	}
}

func TestClaimOutboxRacingWorkersNeverShareARow(t *testing.T) {
	s, _ := newOutboxTestService(t)
	const rows, workers = 60, 6
	for range rows {
		insertOutbox(t, s, models.OutboxPending, 0, nil)
	}

	var (
		mu      sync.Mutex
		claimed = map[uuid.UUID]int{}
		wg      sync.WaitGroup
		start   = make(chan struct{})
	)
	for range workers {
		wg.Go(func() {
			<-start
			for {
				msgs, err := s.ClaimOutbox(context.Background(), 4, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if len(msgs) == 0 {
					return
				}
				mu.Lock()
				for _, m := range msgs {
					claimed[m.ID]++
				}
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()

	if len(claimed) != rows {
		t.Fatalf("claimed %d distinct rows, want %d", len(claimed), rows)
	}
	for id, n := range claimed {
		if n != 1 {
			t.Errorf("row %s claimed %d times", id, n)
		}
	}
}

func TestOutboxMarkSentRedactsSecrets(t *testing.T) {
	s, clock := newOutboxTestService(t)
	ctx := context.Background()
	row := insertOutbox(t, s, models.OutboxPending, 0, nil)
	claimed, err := s.ClaimOutbox(ctx, 1, time.Minute)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v, %v", outboxIDs(claimed), err)
	}
	clock.Advance(3 * time.Second)
	if err := s.MarkOutboxSent(ctx, row.ID, claimed[0].Attempts, "re_123"); err != nil {
		t.Fatal(err)
	}

	m := loadOutbox(t, s, row.ID)
	if m.Status != models.OutboxSent || m.SentAt == nil || !m.SentAt.Equal(clock.Now()) || m.LockedUntil != nil {
		t.Fatalf("status %q sent_at %v locked_until %v", m.Status, m.SentAt, m.LockedUntil)
	}
	if m.ProviderMessageID == nil || *m.ProviderMessageID != "re_123" {
		t.Fatalf("provider id = %v", m.ProviderMessageID)
	}
	if _, ok := m.Data["token"]; ok {
		t.Errorf("token still stored after delivery: %v", m.Data)
	}
	if _, ok := m.Data["code"]; ok {
		t.Errorf("code still stored after delivery: %v", m.Data)
	}
	if m.Data["name"] != "Ana" {
		t.Errorf("non-secret data lost: %v", m.Data)
	}
}

func TestOutboxMarkRetryAndFailed(t *testing.T) {
	s, clock := newOutboxTestService(t)
	ctx := context.Background()
	row := insertOutbox(t, s, models.OutboxPending, 0, nil)

	claimed, _ := s.ClaimOutbox(ctx, 1, time.Minute)
	next := clock.Now().Add(30 * time.Second)
	if err := s.MarkOutboxRetry(ctx, row.ID, claimed[0].Attempts, "resend: HTTP 500", next); err != nil {
		t.Fatal(err)
	}
	m := loadOutbox(t, s, row.ID)
	if m.Status != models.OutboxPending || !m.NextAttemptAt.Equal(next) || m.LockedUntil != nil || m.LastError == nil || *m.LastError != "resend: HTTP 500" {
		t.Fatalf("after retry: %+v", m)
	}
	if m.Data["token"] != "secret-token" {
		t.Fatalf("a retry must keep the token it still has to deliver: %v", m.Data)
	}
	if early, _ := s.ClaimOutbox(ctx, 1, time.Minute); len(early) != 0 {
		t.Fatal("claimed a retry before its next attempt was due")
	}

	clock.Advance(30 * time.Second)
	claimed, _ = s.ClaimOutbox(ctx, 1, time.Minute)
	if len(claimed) != 1 || claimed[0].Attempts != 2 {
		t.Fatalf("second claim: %+v", claimed)
	}
	long := strings.Repeat("é", 2500) + "\x00"
	if err := s.MarkOutboxFailed(ctx, row.ID, 2, long); err != nil {
		t.Fatal(err)
	}
	m = loadOutbox(t, s, row.ID)
	if m.Status != models.OutboxFailed || m.SentAt != nil || m.LockedUntil != nil {
		t.Fatalf("after failure: %+v", m)
	}
	if m.LastError == nil || len(*m.LastError) > models.MaxOutboxError+len("…") || !strings.HasPrefix(*m.LastError, "éé") {
		t.Fatalf("last_error not bounded: %v", m.LastError)
	}
	if _, ok := m.Data["token"]; ok {
		t.Errorf("token still stored after giving up: %v", m.Data)
	}
	if again, _ := s.ClaimOutbox(ctx, 1, time.Minute); len(again) != 0 {
		t.Fatal("claimed a failed message")
	}
}

// A worker that stalls past its lease must not overwrite the state written
// by the worker that reclaimed the row.
func TestOutboxMarkIsFencedByTheClaim(t *testing.T) {
	marks := map[string]func(s *models.Kernel, id uuid.UUID, attempt int) error{
		"sent": func(s *models.Kernel, id uuid.UUID, attempt int) error {
			return s.MarkOutboxSent(context.Background(), id, attempt, "re_late")
		},
		"retry": func(s *models.Kernel, id uuid.UUID, attempt int) error {
			return s.MarkOutboxRetry(context.Background(), id, attempt, "late", s.Now().Add(time.Hour))
		},
		"failed": func(s *models.Kernel, id uuid.UUID, attempt int) error {
			return s.MarkOutboxFailed(context.Background(), id, attempt, "late")
		},
	}
	for name, mark := range marks {
		t.Run(name, func(t *testing.T) {
			s, clock := newOutboxTestService(t)
			ctx := context.Background()
			row := insertOutbox(t, s, models.OutboxPending, 0, nil)

			stale, _ := s.ClaimOutbox(ctx, 1, time.Minute)
			clock.Advance(2 * time.Minute)
			fresh, _ := s.ClaimOutbox(ctx, 1, time.Minute)
			if len(stale) != 1 || len(fresh) != 1 || fresh[0].Attempts != 2 {
				t.Fatalf("claims: stale %+v fresh %+v", stale, fresh)
			}

			if err := mark(s, row.ID, stale[0].Attempts); !errors.Is(err, models.ErrOutboxLeaseLost) {
				t.Fatalf("stale mark: %v, want models.ErrOutboxLeaseLost", err)
			}
			if m := loadOutbox(t, s, row.ID); m.Status != models.OutboxSending || m.Attempts != 2 || m.LastError != nil {
				t.Fatalf("stale mark changed the row: %+v", m)
			}

			if err := mark(s, row.ID, fresh[0].Attempts); err != nil {
				t.Fatalf("current mark: %v", err)
			}
			if err := mark(s, row.ID, fresh[0].Attempts); !errors.Is(err, models.ErrOutboxLeaseLost) {
				t.Fatalf("marking a settled row again: %v, want models.ErrOutboxLeaseLost", err)
			}
		})
	}
}

func outboxIDs(msgs []models.OutboxMessage) []uuid.UUID {
	out := make([]uuid.UUID, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

func compareOutboxIDs(a, b uuid.UUID) int {
	return slices.Compare(a[:], b[:])
}

// A heartbeat keeps a message whose send outlives the claim's lease, and a
// worker that has lost the row can neither extend it nor take it back.
func TestExtendOutboxLease(t *testing.T) {
	const lease = 30 * time.Second
	s, clock := newOutboxTestService(t)
	ctx := context.Background()
	row := insertOutbox(t, s, models.OutboxPending, 0, nil)
	claimed, err := s.ClaimOutbox(ctx, 1, lease)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim = %v, %v", outboxIDs(claimed), err)
	}
	for range 3 { // 60 s of sending, twice the lease
		clock.Advance(lease * 2 / 3)
		if err := s.ExtendOutboxLease(ctx, row.ID, claimed[0].Attempts, lease); err != nil {
			t.Fatalf("extend: %v", err)
		}
		if m := loadOutbox(t, s, row.ID); m.LockedUntil == nil || !m.LockedUntil.Equal(clock.Now().Add(lease)) {
			t.Fatalf("locked_until = %v, want %v", m.LockedUntil, clock.Now().Add(lease))
		}
		if again, err := s.ClaimOutbox(ctx, 1, lease); err != nil || len(again) != 0 {
			t.Fatalf("claim under an extended lease = %v, %v; want nothing", outboxIDs(again), err)
		}
	}

	// The heartbeat stops (the worker died): the row is due one lease later.
	clock.Advance(lease + time.Second)
	fresh, err := s.ClaimOutbox(ctx, 1, lease)
	if err != nil || len(fresh) != 1 || fresh[0].Attempts != 2 {
		t.Fatalf("reclaim after the lease = %+v, %v; want attempt 2", fresh, err)
	}

	tests := []struct {
		name    string
		attempt int
		settle  bool
	}{
		{"stale claim after a reclaim", claimed[0].Attempts, false},
		{"current claim after it settled", fresh[0].Attempts, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.settle {
				modelstest.MustDo(t, s.MarkOutboxSent(ctx, row.ID, fresh[0].Attempts, "re_1"))
			}
			before := loadOutbox(t, s, row.ID)
			clock.Advance(time.Second)
			if err := s.ExtendOutboxLease(ctx, row.ID, tt.attempt, lease); !errors.Is(err, models.ErrOutboxLeaseLost) {
				t.Fatalf("extend = %v, want models.ErrOutboxLeaseLost", err)
			}
			if after := loadOutbox(t, s, row.ID); !equalLease(before.LockedUntil, after.LockedUntil) || after.Status != before.Status {
				t.Fatalf("a lost extend changed the row: %+v -> %+v", before, after)
			}
		})
	}
}

func equalLease(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

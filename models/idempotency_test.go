package models_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/modelstest"
)

func idemCode(t *testing.T, err error) string {
	t.Helper()
	de, ok := models.AsError(err)
	if !ok {
		t.Fatalf("err = %v, want a domain error", err)
	}
	return de.Code
}

func TestIdempotencyLifecycle(t *testing.T) {
	svc, clock, _ := modelstest.NewService(t)
	ctx := context.Background()
	hash, other := []byte("hash-a"), []byte("hash-b")

	claim, stored, err := svc.Kernel.BeginIdempotent(ctx, "checkout", "k1", hash)
	if err != nil || claim == nil || stored != nil {
		t.Fatalf("first Begin = %v, %v, %v; want a claim", claim, stored, err)
	}

	// While the first request runs: the same request waits, another is refused.
	if _, _, err := svc.Kernel.BeginIdempotent(ctx, "checkout", "k1", hash); idemCode(t, err) != "idempotency_in_progress" {
		t.Fatalf("duplicate in flight: %v", err)
	}
	if _, _, err := svc.Kernel.BeginIdempotent(ctx, "checkout", "k1", other); idemCode(t, err) != "idempotency_key_reused" {
		t.Fatalf("other request in flight: %v", err)
	}
	// Keys are per scope.
	if c, _, err := svc.Kernel.BeginIdempotent(ctx, "refund", "k1", other); err != nil || c == nil {
		t.Fatalf("same key in another scope: %v, %v", c, err)
	}

	want := models.StoredResponse{StatusCode: 201, Body: []byte(`{"enrollment_id":"e1"}`)}
	if err := svc.Kernel.FinishIdempotent(ctx, claim, want); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		c, got, err := svc.Kernel.BeginIdempotent(ctx, "checkout", "k1", hash)
		if err != nil || c != nil || got == nil || got.StatusCode != want.StatusCode || string(got.Body) != string(want.Body) {
			t.Fatalf("replay = %v, %+v, %v; want the stored answer", c, got, err)
		}
	}
	if _, _, err := svc.Kernel.BeginIdempotent(ctx, "checkout", "k1", other); idemCode(t, err) != "idempotency_key_reused" {
		t.Fatalf("other request after answer: %v", err)
	}

	// After the TTL the key is fresh again, even for another request.
	clock.Advance(models.IdempotencyKeyTTL + time.Second)
	if c, s, err := svc.Kernel.BeginIdempotent(ctx, "checkout", "k1", other); err != nil || c == nil || s != nil {
		t.Fatalf("after TTL: %v, %v, %v; want a new claim", c, s, err)
	}
	// Prune drops the expired refund key, not the fresh checkout claim.
	if n, err := svc.Kernel.PruneIdempotencyKeys(ctx); err != nil || n != 1 {
		t.Fatalf("prune = %d, %v; want the one expired key", n, err)
	}
	if _, _, err := svc.Kernel.BeginIdempotent(ctx, "checkout", "k1", other); idemCode(t, err) != "idempotency_in_progress" {
		t.Fatalf("fresh claim after prune: %v", err)
	}
}

func TestIdempotencyAbandonLetsARetryRun(t *testing.T) {
	svc, _, _ := modelstest.NewService(t)
	ctx := context.Background()
	claim, _, err := svc.Kernel.BeginIdempotent(ctx, "checkout", "k", []byte("h"))
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Kernel.AbandonIdempotent(ctx, claim); err != nil {
		t.Fatal(err)
	}
	retry, stored, err := svc.Kernel.BeginIdempotent(ctx, "checkout", "k", []byte("h"))
	if err != nil || retry == nil || stored != nil {
		t.Fatalf("retry after abandon = %v, %v, %v; want a claim", retry, stored, err)
	}
	// The abandoned claim cannot store an answer over the retry's.
	if err := svc.Kernel.FinishIdempotent(ctx, claim, models.StoredResponse{StatusCode: 201, Body: []byte("{}")}); err == nil {
		t.Fatal("a dead claim stored an answer")
	}
}

func TestIdempotencyDeadClaimIsTakenOver(t *testing.T) {
	svc, clock, _ := modelstest.NewService(t)
	ctx := context.Background()
	dead, _, err := svc.Kernel.BeginIdempotent(ctx, "checkout", "k", []byte("h"))
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(models.IdempotencyInFlightTimeout + time.Second)
	// A different request still may not take the key.
	if _, _, err := svc.Kernel.BeginIdempotent(ctx, "checkout", "k", []byte("other")); idemCode(t, err) != "idempotency_key_reused" {
		t.Fatalf("other request on a dead claim: %v", err)
	}
	retry, _, err := svc.Kernel.BeginIdempotent(ctx, "checkout", "k", []byte("h"))
	if err != nil || retry == nil {
		t.Fatalf("retry on a dead claim = %v, %v; want a claim", retry, err)
	}
	if err := svc.Kernel.FinishIdempotent(ctx, dead, models.StoredResponse{StatusCode: 201}); err == nil {
		t.Fatal("the dead claim stored an answer after being taken over")
	}
	if err := svc.Kernel.FinishIdempotent(ctx, retry, models.StoredResponse{StatusCode: 201, Body: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
}

func TestIdempotencyRejectsBadKeys(t *testing.T) {
	svc, _, db := modelstest.NewService(t)
	long := make([]byte, 256)
	for i := range long {
		long[i] = 'a'
	}
	for _, key := range []string{"", string(long), "tab\tkey", "ünicode"} {
		_, _, err := svc.Kernel.BeginIdempotent(context.Background(), "checkout", key, []byte("h"))
		if idemCode(t, err) != "invalid_idempotency_key" {
			t.Errorf("key %q: %v", key, err)
		}
	}
	var n int64
	if err := db.Table("idempotency_keys").Count(&n).Error; err != nil || n != 0 {
		t.Fatalf("rows = %d, %v; want none", n, err)
	}
}

func TestIdempotencyConcurrentDuplicatesOneRuns(t *testing.T) {
	svc, _, _ := modelstest.NewService(t)
	ctx := context.Background()
	const n = 20
	var claims, inProgress atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, _, err := svc.Kernel.BeginIdempotent(ctx, "checkout", "race", []byte("h"))
			switch de, _ := models.AsError(err); {
			case err == nil && c != nil:
				claims.Add(1)
			case de != nil && de.Code == "idempotency_in_progress":
				inProgress.Add(1)
			default:
				errs <- fmt.Errorf("unexpected: %v, %v", c, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if claims.Load() != 1 || inProgress.Load() != n-1 {
		t.Fatalf("claims = %d, in progress = %d; want 1 and %d", claims.Load(), inProgress.Load(), n-1)
	}
}

// The fence is the claim's own token, not the row's version: a write that
// leaves the claim in place (an operator's fix-up, a future column being
// backfilled) does not take the request's right to answer away, and a
// takeover always does.
func TestIdempotencyClaimIsFencedByItsToken(t *testing.T) {
	svc, clock, db := modelstest.NewService(t)
	ctx := context.Background()
	claim, _, err := svc.Kernel.BeginIdempotent(ctx, "checkout", "k", []byte("h"))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Exec(`UPDATE idempotency_keys SET created_at = created_at WHERE key = 'k'`).Error; err != nil {
		t.Fatal(err)
	}
	if err := svc.Kernel.FinishIdempotent(ctx, claim, models.StoredResponse{StatusCode: 201, Body: []byte("{}")}); err != nil {
		t.Fatalf("finish after an unrelated write: %v", err)
	}

	// Two claims of one key in turn hold different tokens.
	first, _, err := svc.Kernel.BeginIdempotent(ctx, "checkout", "k2", []byte("h"))
	if err != nil {
		t.Fatal(err)
	}
	var tokens []string
	readToken := func() {
		t.Helper()
		var tok string
		if err := db.Raw(`SELECT claim_token::text FROM idempotency_keys WHERE key = 'k2'`).Scan(&tok).Error; err != nil || tok == "" {
			t.Fatalf("claim_token = %q, %v", tok, err)
		}
		tokens = append(tokens, tok)
	}
	readToken()
	clock.Advance(models.IdempotencyInFlightTimeout + time.Second)
	second, _, err := svc.Kernel.BeginIdempotent(ctx, "checkout", "k2", []byte("h"))
	if err != nil || second == nil {
		t.Fatalf("takeover = %v, %v", second, err)
	}
	readToken()
	if tokens[0] == tokens[1] {
		t.Fatalf("the takeover kept the dead claim's token %s", tokens[0])
	}
	if err := svc.Kernel.AbandonIdempotent(ctx, first); err != nil {
		t.Fatal(err)
	}
	if err := svc.Kernel.FinishIdempotent(ctx, second, models.StoredResponse{StatusCode: 201, Body: []byte("{}")}); err != nil {
		t.Fatalf("the dead claim's abandon removed the live one: %v", err)
	}
}

package models_test

import (
	"context"
	"sync"
	"testing"

	"github.com/grace-coaching/grace/models"
)

func TestPasswordHasherRoundTrip(t *testing.T) {
	h := models.NewPasswordHasher(2)
	ctx := context.Background()
	hash, err := h.Hash(ctx, "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, password, hash string
		want                 bool
	}{
		{"right password", "correct horse battery", hash, true},
		{"wrong password", "correct horse batterx", hash, false},
		{"unknown account (no hash)", "correct horse battery", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := h.Verify(ctx, tt.password, tt.hash)
			if err != nil || ok != tt.want {
				t.Fatalf("Verify = %v, %v; want %v", ok, err, tt.want)
			}
		})
	}
	if hash2, _ := h.Hash(ctx, "correct horse battery"); hash2 == hash {
		t.Fatal("two hashes of one password are equal: the salt is not random")
	}
}

// A login flood must queue behind the cap rather than run one 19 MiB hash
// per request at once.
func TestPasswordHasherCapsConcurrentHashes(t *testing.T) {
	const cap = 2
	h := models.NewPasswordHasher(cap)
	var wg sync.WaitGroup
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := h.Verify(context.Background(), "password", ""); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if peak := h.Peak(); peak != cap {
		t.Fatalf("peak concurrent hashes = %d, want exactly the cap %d", peak, cap)
	}
}

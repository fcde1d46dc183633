package models_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/modelstest"
)

func TestPruneRateLimitsKeepsCurrentWindows(t *testing.T) {
	svc, clock, db := modelstest.NewService(t)
	ctx := context.Background()
	if err := db.Exec(`INSERT INTO rate_limits (key, window_start, hits) VALUES ('old', ?, 3), ('new', ?, 1)`,
		clock.Now().Add(-2*time.Hour), clock.Now()).Error; err != nil {
		t.Fatal(err)
	}
	n, err := svc.Kernel.PruneRateLimits(ctx, time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("pruned %d, %v; want 1", n, err)
	}
	var keys []string
	db.Raw(`SELECT key FROM rate_limits`).Scan(&keys)
	if len(keys) != 1 || keys[0] != "new" {
		t.Fatalf("left %v, want [new]", keys)
	}
	_ = models.DefaultLimits()
}

func TestNetwork(t *testing.T) {
	tests := []struct{ ip, want string }{
		{"203.0.113.7", "203.0.113.0/24"},
		{"::ffff:203.0.113.7", "203.0.113.0/24"},
		{"2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"not an address", "not an address"},
	}
	for _, tt := range tests {
		if got := models.Network(tt.ip); got != tt.want {
			t.Errorf("Network(%q) = %q, want %q", tt.ip, got, tt.want)
		}
	}
}

func TestClientKey(t *testing.T) {
	for _, tc := range []struct{ ip, want string }{
		{"203.0.113.7", "203.0.113.7"},
		{"::ffff:203.0.113.7", "::ffff:203.0.113.7"},
		{"2001:db8:1:2::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"},
		{"not-an-ip", "not-an-ip"},
	} {
		if got := models.ClientKey(tc.ip); got != tc.want {
			t.Errorf("ClientKey(%q) = %q, want %q", tc.ip, got, tc.want)
		}
	}
}

// Keys that count an address or an IP are stored as a fingerprint: the
// table never says who tried. The limit still counts per value.
func TestRateLimitKeysAreStoredHashed(t *testing.T) {
	svc, _, db := modelstest.NewService(t)
	ctx := context.Background()
	limit := models.RateLimit{Max: 2, Window: time.Hour}
	for _, key := range []string{"free:email:her@example.org", "session:ip:2001:db8::1"} {
		for i := 0; i < 2; i++ {
			if err := svc.Kernel.Allow(ctx, key, limit); err != nil {
				t.Fatalf("%s hit %d: %v", key, i, err)
			}
		}
		if err := svc.Kernel.Allow(ctx, key, limit); err == nil {
			t.Errorf("%s: third hit allowed", key)
		}
	}
	var keys []string
	db.Raw(`SELECT key FROM rate_limits ORDER BY key`).Scan(&keys)
	if len(keys) != 2 {
		t.Fatalf("keys = %v", keys)
	}
	for _, k := range keys {
		if strings.Contains(k, "her@example.org") || strings.Contains(k, "2001:db8") {
			t.Errorf("key %q stores its value in clear", k)
		}
		if !strings.HasPrefix(k, "free:email:") && !strings.HasPrefix(k, "session:ip:") {
			t.Errorf("key %q lost its namespace", k)
		}
	}
	if got := models.RateLimitKey("login:hash-budget"); got != "login:hash-budget" {
		t.Errorf("a key without a value became %q", got)
	}
}

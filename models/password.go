package models

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"

	"golang.org/x/crypto/argon2"
)

// argon2id parameters as OWASP's password storage cheat sheet advises.
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonKeyLen    = 32
	argonSaltLen   = 16
)

// PasswordHasher hashes with argon2id. Each hash takes 19 MiB, so a semaphore
// caps how many run at once: a login flood queues instead of exhausting memory.
type PasswordHasher struct {
	sem   chan struct{}
	dummy string

	running atomic.Int64
	peak    atomic.Int64
	hashes  atomic.Int64
}

// NewPasswordHasher allows at most concurrent hashes at once (0: one per CPU).
func NewPasswordHasher(concurrent int) *PasswordHasher {
	if concurrent <= 0 {
		concurrent = runtime.NumCPU()
	}
	h := &PasswordHasher{sem: make(chan struct{}, concurrent)}
	h.dummy = h.encode([]byte("grace-dummy-password-for-timing"), make([]byte, argonSaltLen))
	return h
}

func (h *PasswordHasher) acquire(ctx context.Context) error {
	select {
	case h.sem <- struct{}{}:
		h.hashes.Add(1)
		n := h.running.Add(1)
		for p := h.peak.Load(); n > p && !h.peak.CompareAndSwap(p, n); p = h.peak.Load() {
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *PasswordHasher) release() {
	h.running.Add(-1)
	<-h.sem
}

// Hashes counts the hashes computed (or about to be), for tests and
// metrics: a refused login must not have cost one.
func (h *PasswordHasher) Hashes() int { return int(h.hashes.Load()) }

// Peak is the most hashes that have run at once, for tests and metrics.
func (h *PasswordHasher) Peak() int { return int(h.peak.Load()) }

func (h *PasswordHasher) encode(password, salt []byte) string {
	key := argon2.IDKey(password, salt, argonTime, argonMemoryKiB, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemoryKiB, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// Hash returns a PHC-format argon2id hash of password.
func (h *PasswordHasher) Hash(ctx context.Context, password string) (string, error) {
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	return h.encode([]byte(password), salt), nil
}

// Verify reports whether password matches encoded. An empty encoded (unknown
// account) still costs one full hash, so timing does not reveal which emails
// exist.
func (h *PasswordHasher) Verify(ctx context.Context, password, encoded string) (bool, error) {
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	known := encoded != ""
	if !known {
		encoded = h.dummy
	}
	var version int
	var m, t uint32
	var p uint8
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errors.New("password hash: unknown format")
	}
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil {
		return false, fmt.Errorf("password hash: %w", err)
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return false, fmt.Errorf("password hash: %w", err)
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return false, fmt.Errorf("password hash: %w", err)
	}
	want, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil {
		return false, fmt.Errorf("password hash: %w", err)
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return known && subtle.ConstantTimeCompare(got, want) == 1, nil
}

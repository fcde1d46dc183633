package journal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/google/uuid"
)

// Envelope encryption. A master key from configuration wraps one random
// data key per participant; her data key encrypts each of her reflections.
// The database holds only ciphertext and wrapped keys, so a copy of it (a
// backup, a leaked dump, a curious operator with psql) reveals nothing
// without the master key, and deleting her key row alone makes every copy
// of her reflections unreadable. Both layers are AES-256-GCM from the
// standard library with a fresh random nonce per seal; the associated data
// binds each ciphertext to whose it is and what it is, so a row moved to
// another participant, lesson or column fails to open instead of showing
// another woman's words.

const (
	keySize   = 32
	nonceSize = 12
	// formatV1 prefixes every reflection ciphertext, so a later scheme can
	// live beside this one.
	formatV1 byte = 1
)

// Sentinel causes, for errors.Is. None of them carries key or text bytes.
var (
	// ErrUnknownMasterKey: a data key is wrapped by a master key id that is
	// not configured (rotated out too early, or the wrong REFLECTIONS_KEY).
	ErrUnknownMasterKey = errors.New("reflections: the master key that wrapped this data key is not configured")
	// ErrUndecryptable: authentication failed. The key is wrong, the row
	// was tampered with, or it was moved from another participant or lesson.
	ErrUndecryptable = errors.New("reflections: ciphertext does not authenticate under this key")
	// ErrShredded: her data key is gone, so her reflections are unreadable
	// by design.
	ErrShredded = errors.New("reflections: the participant's data key was shredded")
)

// MasterKey is a named AES-256 key. The id is stored beside every data key
// it wraps, so keys can rotate: configure the new one as current and the
// old one as previous until every data key has been rewrapped.
type MasterKey struct {
	ID  string
	key []byte
}

var keyIDRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// ParseMasterKey reads "id:base64", the base64 (standard or URL alphabet,
// padded or not) of exactly 32 bytes, e.g. the output of
// `printf '2026-01:%s' "$(openssl rand -base64 32)"`. Errors never echo the
// key material.
func ParseMasterKey(s string) (MasterKey, error) {
	id, b64, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok || !keyIDRE.MatchString(id) {
		return MasterKey{}, errors.New("must be <key id>:<base64 of 32 bytes>, the id of 1 to 64 letters, digits, dots, dashes or underscores")
	}
	var key []byte
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(b64); err == nil {
			key = b
			break
		}
	}
	if len(key) != keySize {
		return MasterKey{}, fmt.Errorf("key %q: must be the base64 of exactly %d random bytes", id, keySize)
	}
	return MasterKey{ID: id, key: key}, nil
}

// NewMasterKey is a fresh random master key, for tests and key generation.
func NewMasterKey(id string) MasterKey {
	return MasterKey{ID: id, key: randomBytes(keySize)}
}

// String is the key in the form ParseMasterKey reads. It is the secret:
// never log it.
func (k MasterKey) String() string { return k.ID + ":" + base64.StdEncoding.EncodeToString(k.key) }

// DevMasterKey derives a stable key from seed (the database URL in dev
// mode), so reflections written in one `make run` still open in the next.
// Anyone who knows the seed can derive it: it protects nothing and must
// never serve real participants.
func DevMasterKey(seed string) MasterKey {
	key, err := hkdf.Key(sha256.New, []byte(seed), []byte("grace dev reflections master key"), "v1", keySize)
	if err != nil {
		panic(err) // only for a length sha256 cannot produce
	}
	return MasterKey{ID: "dev", key: key}
}

// Keyring is the current master key, which wraps every new or rewrapped
// data key, and the previous ones, which only unwrap.
type Keyring struct {
	current string
	aeads   map[string]cipher.AEAD
}

// NewKeyring builds a keyring; ids must be distinct.
func NewKeyring(current MasterKey, previous ...MasterKey) (*Keyring, error) {
	r := &Keyring{current: current.ID, aeads: map[string]cipher.AEAD{}}
	for _, k := range append([]MasterKey{current}, previous...) {
		if !keyIDRE.MatchString(k.ID) || len(k.key) != keySize {
			return nil, fmt.Errorf("reflections key %q is not a valid master key", k.ID)
		}
		if _, dup := r.aeads[k.ID]; dup {
			return nil, fmt.Errorf("reflections key id %q is configured twice", k.ID)
		}
		r.aeads[k.ID] = newAEAD(k.key)
	}
	return r, nil
}

// CurrentID is the id of the master key that wraps new data keys.
func (r *Keyring) CurrentID() string { return r.current }

func newAEAD(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err) // only for a key that is not 16, 24 or 32 bytes
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return aead
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	// crypto/rand.Read never fails on supported platforms (it panics
	// instead of returning weak bytes).
	_, _ = rand.Read(b)
	return b
}

// wrapAAD binds a wrapped data key to her and to the master key id.
func wrapAAD(participantID uuid.UUID, masterID string) []byte {
	return append(append([]byte("grace.participant-key.v1\x00"), participantID[:]...), masterID...)
}

// newDataKey makes her data key and wraps it with the current master key.
func (r *Keyring) newDataKey(participantID uuid.UUID) (aead cipher.AEAD, wrapped []byte) {
	key := randomBytes(keySize)
	return newAEAD(key), r.wrap(participantID, key)
}

func (r *Keyring) wrap(participantID uuid.UUID, key []byte) []byte {
	nonce := randomBytes(nonceSize)
	return r.aeads[r.current].Seal(nonce, nonce, key, wrapAAD(participantID, r.current))
}

// unwrap opens her wrapped data key.
func (r *Keyring) unwrap(participantID uuid.UUID, masterID string, wrapped []byte) (cipher.AEAD, []byte, error) {
	aead, ok := r.aeads[masterID]
	if !ok {
		return nil, nil, fmt.Errorf("%w (key id %q; configured: current %q)", ErrUnknownMasterKey, masterID, r.current)
	}
	if len(wrapped) != nonceSize+keySize+aead.Overhead() {
		return nil, nil, ErrUndecryptable
	}
	key, err := aead.Open(nil, wrapped[:nonceSize], wrapped[nonceSize:], wrapAAD(participantID, masterID))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: her data key does not open with master key %q (is REFLECTIONS_KEY the key this database was written with?)", ErrUndecryptable, masterID)
	}
	return newAEAD(key), key, nil
}

// Which copy of a reflection a ciphertext is: her current text, or the
// snapshot she shared. Bound into the associated data, so one cannot be
// passed off as the other.
const (
	copyCurrent = "current"
	copyShared  = "shared"
)

func reflectionAAD(which string, participantID, lessonID uuid.UUID) []byte {
	b := append([]byte("grace.reflection.v1\x00"), which...)
	b = append(b, 0)
	b = append(b, participantID[:]...)
	return append(b, lessonID[:]...)
}

// seal encrypts text under her data key: format byte, nonce, ciphertext.
func seal(aead cipher.AEAD, which string, participantID, lessonID uuid.UUID, text string) []byte {
	nonce := randomBytes(nonceSize)
	out := append([]byte{formatV1}, nonce...)
	return aead.Seal(out, nonce, []byte(text), reflectionAAD(which, participantID, lessonID))
}

// open decrypts what seal wrote, or fails: it never returns unauthenticated
// bytes.
func open(aead cipher.AEAD, which string, participantID, lessonID uuid.UUID, box []byte) (string, error) {
	if len(box) < 1+nonceSize+aead.Overhead() || box[0] != formatV1 {
		return "", ErrUndecryptable
	}
	text, err := aead.Open(nil, box[1:1+nonceSize], box[1+nonceSize:], reflectionAAD(which, participantID, lessonID))
	if err != nil {
		return "", ErrUndecryptable
	}
	return string(text), nil
}

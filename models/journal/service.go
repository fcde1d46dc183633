// Package journal is what she writes for herself: private reflections on
// the lessons she reads, encrypted at rest with a key of her own (see
// keys.go), shown to a coach only as the snapshot she chooses to share,
// and shredded with her key when she is erased.
package journal

import (
	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/people"
)

// Service runs the rules about reflections. Handlers call exactly one of
// its methods.
type Service struct {
	*models.Kernel
	people *people.Service
	keys   *Keyring
}

// New builds the journal on the kernel. people's gate decides which
// lessons she may write about; keys is the master keyring, nil when none
// is configured (every call then answers reflections_unavailable, and
// nothing is written in the clear).
func New(k *models.Kernel, p *people.Service, keys *Keyring) *Service {
	return &Service{Kernel: k, people: p, keys: keys}
}

var errUnconfigured = models.E(models.KindUnavailable, "reflections_unavailable",
	"Reflections are not available on this server: no encryption key is configured.")

func (s *Service) ring() (*Keyring, error) {
	if s.keys == nil {
		return nil, errUnconfigured
	}
	return s.keys, nil
}

// keyUnavailable is the answer when her data key cannot be opened: the
// master key is wrong or missing, or her key was shredded. It fails closed
// (no text, no write), and the cause reaches the log, never the client.
func keyUnavailable(cause error) error {
	return &models.Error{Kind: models.KindUnavailable, Code: "reflection_key_unavailable",
		Message: "Your reflections cannot be opened right now. Nothing was changed.", Err: cause}
}

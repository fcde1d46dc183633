package api

import (
	"errors"

	"github.com/google/uuid"
)

type uuidValue = uuid.UUID

// parseUUID accepts only the canonical 36-character form, so one resource has
// one URL.
func parseUUID(s string) (uuid.UUID, error) {
	if len(s) != 36 {
		return uuid.Nil, errors.New("not a canonical uuid")
	}
	return uuid.Parse(s)
}

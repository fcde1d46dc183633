package models

import (
	"bytes"
	"encoding/json"
)

// Optional is a PATCH field: absent (Set false), explicitly null (Null), or a
// value. A *T cannot tell "leave it" from "clear it".
type Optional[T any] struct {
	Set   bool
	Null  bool
	Value T
}

// Some is a set, non-null Optional.
func Some[T any](v T) Optional[T] { return Optional[T]{Set: true, Value: v} }

func (o *Optional[T]) UnmarshalJSON(b []byte) error {
	o.Set = true
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		o.Null = true
		return nil
	}
	return json.Unmarshal(b, &o.Value)
}

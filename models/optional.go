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

// Cleared reports an explicit null: a PATCH asking to clear the field.
func (o Optional[T]) Cleared() bool { return o.Set && o.Null }

// Ptr is the value to store for a set field: nil when cleared.
func (o Optional[T]) Ptr() *T {
	if o.Null {
		return nil
	}
	v := o.Value
	return &v
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

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

// Changes are the columns a PATCH writes, gathered while its fields are
// applied to the loaded row, so the row (for checks and the answer) and the
// UPDATE never disagree. Build it as a map[string]any and hand that to
// GORM's Updates: GORM recognises the unnamed map type only and refuses a
// Changes as invalid data.
type Changes map[string]any

// Apply copies a set field onto the row's dst and records it as column.
func Apply[T any](ch Changes, column string, dst *T, o Optional[T]) {
	if !o.Set {
		return
	}
	*dst = o.Value
	ch[column] = o.Value
}

// ApplyPtr is Apply for a nullable column: an explicit null clears it.
func ApplyPtr[T any](ch Changes, column string, dst **T, o Optional[T]) {
	if !o.Set {
		return
	}
	*dst = o.Ptr()
	ch[column] = *dst
}

// SamePtr reports whether two optional values are equal: both absent, or
// both present and equal.
func SamePtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

package models

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
)

// PageParams asks for one page of a list. Cursor is opaque to clients.
type PageParams struct {
	Limit  int
	Cursor string
}

const (
	DefaultPageLimit = 50
	MaxPageLimit     = 100
)

// Page is one page of a keyset-paginated list.
type Page[T any] struct {
	Items      []T
	NextCursor *string
}

// Cursor is the keyset position after which the next page starts: the sort
// key of the last item and its id as the tie-breaker.
type Cursor struct {
	At  time.Time `json:"t,omitzero"`
	Pos int       `json:"p,omitempty"`
	ID  uuid.UUID `json:"i"`
}

// PageSize is the page length asked for, within bounds.
func (p PageParams) PageSize() int {
	switch {
	case p.Limit <= 0:
		return DefaultPageLimit
	case p.Limit > MaxPageLimit:
		return MaxPageLimit
	}
	return p.Limit
}

func encodeCursor(c Cursor) *string {
	b, _ := json.Marshal(c)
	s := base64.RawURLEncoding.EncodeToString(b)
	return &s
}

// Decode rejects a cursor the client tampered with as a 400, not a 500.
func (p PageParams) Decode() (*Cursor, error) {
	if p.Cursor == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(p.Cursor)
	var c Cursor
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	// Pos is an int4 column: a forged position outside it would reach the
	// database as an out-of-range parameter.
	if err != nil || c.ID == uuid.Nil || c.Pos < 0 || c.Pos > math.MaxInt32 {
		return nil, &Error{Kind: KindBadRequest, Code: "invalid_cursor", Message: "The cursor is not valid; start again without one.", Fields: []FieldError{{Field: "cursor", Message: "is not a cursor this API issued"}}}
	}
	return &c, nil
}

// pageOf trims the extra row fetched to learn whether another page exists.
func PageOf[T any](rows []T, limit int, key func(T) Cursor) Page[T] {
	if len(rows) <= limit {
		return Page[T]{Items: rows}
	}
	rows = rows[:limit]
	return Page[T]{Items: rows, NextCursor: encodeCursor(key(rows[len(rows)-1]))}
}

// PageNewestFirst reads one page of q (on one table with created_at and id
// columns) newest first, by (created_at, id) descending; what names the
// rows in an error.
func PageNewestFirst[T any](q *gorm.DB, pp PageParams, what string, key func(T) Cursor) (Page[T], error) {
	cur, err := pp.Decode()
	if err != nil {
		return Page[T]{}, err
	}
	if cur != nil {
		q = q.Where("(created_at, id) < (?, ?)", cur.At, cur.ID)
	}
	limit := pp.PageSize()
	var rows []T
	if err := q.Order("created_at DESC, id DESC").Limit(limit + 1).Find(&rows).Error; err != nil {
		return Page[T]{}, fmt.Errorf("list %s: %w", what, err)
	}
	return PageOf(rows, limit, key), nil
}

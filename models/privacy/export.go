package privacy

import (
	"context"
	"database/sql"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
)

// Export is everything Grace holds about her, table by table, each row as
// the database holds it (less secrets such as token hashes, which tell
// her nothing): machine-readable, and complete by construction, since
// every room exports its own tables.
type Export struct {
	ParticipantID uuid.UUID
	ExportedAt    time.Time
	Tables        map[string][]json.RawMessage
}

// Export reads everything about her in one repeatable-read transaction,
// so the tables agree with each other.
func (s *Service) Export(ctx context.Context, participantID uuid.UUID) (*Export, error) {
	out := &Export{ParticipantID: participantID, ExportedAt: s.Now(), Tables: map[string][]json.RawMessage{}}
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		d, err := s.subject(tx, participantID)
		if err != nil {
			return err
		}
		for _, p := range s.parts {
			tables, err := p.ExportSubject(tx, d)
			if err != nil {
				return err
			}
			for name, rows := range tables {
				if out.Tables[name] == nil {
					out.Tables[name] = []json.RawMessage{} // a table with nothing of hers is an empty list
				}
				out.Tables[name] = append(out.Tables[name], rows...)
			}
		}
		return nil
	}, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return nil, err
	}
	return out, nil
}

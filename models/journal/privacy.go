package journal

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
)

// The journal's share of her data, for models/privacy: her reflections,
// decrypted for her own export (the file is hers, the ciphertext would tell
// her nothing), and shredded with her data key on erasure.

// exportedReflection is one reflection as her export shows it.
type exportedReflection struct {
	ID         uuid.UUID  `json:"id"`
	LessonID   uuid.UUID  `json:"lesson_id"`
	Text       string     `json:"text"`
	Version    int64      `json:"version"`
	SharedText *string    `json:"shared_text"`
	SharedAt   *time.Time `json:"shared_at"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
}

// ExportSubject returns her reflections in clear, and her key's record
// without the wrapped key.
func (s *Service) ExportSubject(tx *gorm.DB, d models.DataSubject) (map[string][]json.RawMessage, error) {
	out := map[string][]json.RawMessage{}
	keys, err := models.ExportRows(tx, "participant_keys", "participant_id = ?", []string{"wrapped_key"}, d.ParticipantID)
	if err != nil {
		return nil, err
	}
	out["participant_keys"] = keys
	var rows []reflectionRow
	if err := tx.Where("participant_id = ?", d.ParticipantID).Order("created_at, id").Find(&rows).Error; err != nil {
		return nil, models.MapDBError(err, "reflection")
	}
	out["reflections"] = []json.RawMessage{}
	if len(rows) == 0 {
		return out, nil
	}
	ring, err := s.ring()
	if err != nil {
		return nil, err
	}
	aead, err := s.dataKey(tx, ring, d.ParticipantID, false)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		text, err := open(aead, copyCurrent, d.ParticipantID, r.LessonID, r.Ciphertext)
		if err != nil {
			return nil, keyUnavailable(err)
		}
		e := exportedReflection{ID: r.ID, LessonID: r.LessonID, Text: text, Version: r.Version, SharedAt: r.SharedAt,
			CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
		if r.SharedCiphertext != nil {
			shared, err := open(aead, copyShared, d.ParticipantID, r.LessonID, r.SharedCiphertext)
			if err != nil {
				return nil, keyUnavailable(err)
			}
			e.SharedText = &shared
		}
		b, err := json.Marshal(e)
		if err != nil {
			return nil, err
		}
		out["reflections"] = append(out["reflections"], b)
	}
	return out, nil
}

// EraseSubject shreds her reflections: the key goes, so no copy of them
// anywhere can be read again.
func (s *Service) EraseSubject(tx *gorm.DB, d models.DataSubject) error {
	return s.Shred(tx, d.ParticipantID)
}

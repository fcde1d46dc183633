package models_test

import (
	"strings"
	"testing"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/modelstest"
)

func TestTakeReadsOneRowOrNamesWhatIsMissing(t *testing.T) {
	db := modelstest.NewDB(t)
	row := models.OutboxMessage{Template: "t", ToEmail: "a@example.com", Data: map[string]any{}, Status: models.OutboxPending}
	modelstest.MustDo(t, db.Create(&row).Error)
	for _, tc := range []struct {
		name     string
		id       uuid.UUID
		lock     bool
		wantCode string // "" means found
	}{
		{"found", row.ID, false, ""},
		{"found and locked", row.ID, true, ""},
		{"missing", uuid.New(), false, "not_found"},
		{"missing and locked", uuid.New(), true, "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := db.Transaction(func(tx *gorm.DB) error {
				got, err := models.Take[models.OutboxMessage](tx.Where("id = ?", tc.id), tc.lock, "message")
				if err == nil && got.ID != tc.id {
					t.Errorf("took %s, want %s", got.ID, tc.id)
				}
				return err
			})
			switch {
			case tc.wantCode == "" && err != nil:
				t.Fatalf("err = %v", err)
			case tc.wantCode != "" && !models.IsCode(err, tc.wantCode):
				t.Fatalf("err = %v, want %s", err, tc.wantCode)
			case tc.wantCode != "" && !strings.Contains(err.Error(), "message"):
				t.Errorf("err = %v, want it to name the message", err)
			}
		})
	}
}

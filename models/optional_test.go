package models_test

import (
	"encoding/json"
	"testing"

	"github.com/grace-coaching/grace/models"
)

func TestApplyWritesOnlySetFields(t *testing.T) {
	var patch struct {
		Name models.Optional[string]
		Note models.Optional[string]
		Days models.Optional[int]
	}
	if err := json.Unmarshal([]byte(`{"Name":"Ana","Note":null}`), &patch); err != nil {
		t.Fatal(err)
	}
	row := struct {
		Name string
		Note *string
		Days int
	}{Name: "old", Note: new(string), Days: 3}
	ch := models.Changes{}
	models.Apply(ch, "name", &row.Name, patch.Name)
	models.ApplyPtr(ch, "note", &row.Note, patch.Note)
	models.Apply(ch, "days", &row.Days, patch.Days)
	if row.Name != "Ana" || row.Note != nil || row.Days != 3 {
		t.Fatalf("row = %+v, want name Ana, note cleared, days kept", row)
	}
	if len(ch) != 2 || ch["name"] != "Ana" || ch["note"].(*string) != nil {
		t.Fatalf("changes = %v, want name and a cleared note only", ch)
	}
}

func TestSamePtr(t *testing.T) {
	a, b, c := 1, 1, 2
	for _, tc := range []struct {
		name string
		x, y *int
		want bool
	}{
		{"both nil", nil, nil, true},
		{"one nil", &a, nil, false},
		{"equal values", &a, &b, true},
		{"different values", &a, &c, false},
	} {
		if got := models.SamePtr(tc.x, tc.y); got != tc.want {
			t.Errorf("%s: SamePtr = %v, want %v", tc.name, got, tc.want)
		}
	}
}

package models_test

import (
	"strings"
	"testing"

	"github.com/grace-coaching/grace/models"
)

func TestPersonName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"Jane Doe", true}, {"Jane O'Brien", true}, {"José María", true}, {"李小龙", true},
		{"J. R. R. Tolkien", true}, {"Anne-Marie St. Clair", true}, {strings.Repeat("a", 100), true},
		{"", false}, {"   ", false}, {strings.Repeat("a", 101), false},
		{"Jane\r\nBcc: x", false}, {"Jane\nDoe", false}, {"Jane\tDoe", false}, {"Jane\u2028Doe", false}, {"Jane\x00", false},
		{"Jane\u202egnp.exe", false}, {"\xff", false},
		{"https://evil.example", false}, {"Click hxxp://x", false}, {"www.evil", false}, {"see evil.example", false},
		{"bit.ly/abc", false}, {"evil．example", false}, {"jane@example.com", false}, {"Jane＠home", false},
	} {
		var c models.Checker
		c.PersonName("name", tc.name)
		if err := c.Err(); (err == nil) != tc.ok {
			t.Errorf("PersonName(%q) = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

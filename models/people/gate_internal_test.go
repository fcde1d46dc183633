package people

import (
	"testing"
	"time"
)

func TestGateUnlockAtCountsCalendarDays(t *testing.T) {
	for _, tc := range []struct {
		name     string
		start    string
		days     int
		timezone string
		want     string
	}{
		{"same instant for day 0", "2026-03-28T23:30:00Z", 0, "Europe/London", "2026-03-28T23:30:00Z"},
		{"plain days in UTC", "2026-03-02T09:00:00Z", 3, "UTC", "2026-03-05T09:00:00Z"},
		{"London spring forward keeps 09:00", "2026-03-27T09:00:00Z", 3, "Europe/London", "2026-03-30T08:00:00Z"},
		{"London autumn back keeps 09:00", "2026-10-24T08:00:00Z", 1, "Europe/London", "2026-10-25T09:00:00Z"},
		{"Sydney autumn back keeps 09:00", "2026-04-03T22:00:00Z", 2, "Australia/Sydney", "2026-04-05T23:00:00Z"},
		{"across a leap day", "2028-02-28T12:00:00Z", 1, "UTC", "2028-02-29T12:00:00Z"},
		{"long drip", "2026-01-15T10:00:00Z", 365, "America/New_York", "2027-01-15T10:00:00Z"},
		{"unknown zone falls back to UTC", "2026-03-27T09:00:00Z", 3, "Mars/Olympus", "2026-03-30T09:00:00Z"},
		{"empty zone falls back to UTC", "2026-03-27T09:00:00Z", 3, "", "2026-03-30T09:00:00Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start, _ := time.Parse(time.RFC3339, tc.start)
			got := UnlockAt(start, tc.days, tc.timezone)
			if got.Format(time.RFC3339) != tc.want || got.Location() != time.UTC {
				t.Errorf("UnlockAt(%s, %d, %q) = %v, want %s in UTC", tc.start, tc.days, tc.timezone, got, tc.want)
			}
		})
	}
}

func TestPortalLoginCodeHashIsBoundToTheLink(t *testing.T) {
	a, b := loginCodeHash([16]byte{1}, "123456"), loginCodeHash([16]byte{2}, "123456")
	if string(a) == string(b) {
		t.Error("one code hashes alike for two links")
	}
	if len(a) != 32 {
		t.Errorf("hash length %d, want 32 (the column's check)", len(a))
	}
	if string(a) != string(loginCodeHash([16]byte{1}, "123456")) {
		t.Error("hash is not deterministic")
	}
}

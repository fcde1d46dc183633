package drip_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/grace-coaching/grace/models/drip"
	"github.com/grace-coaching/grace/models/modelstest"
	"github.com/grace-coaching/grace/models/people"
)

// unlockFixture is one grant start, drip delay and zone.
type unlockFixture struct {
	name  string
	start time.Time
	days  int
	tz    string
}

// unlockFixtures are starts that make a drip delay end on, or cross, each
// of 2026's daylight-saving changes in the zone, at late-evening, small-hours
// and morning wall times, for delays of 0, 1, 7 and 30 days; Tehran (no DST
// since 2022) and UTC get the same dates.
func unlockFixtures(t *testing.T) []unlockFixture {
	t.Helper()
	changes := map[string][]string{
		"America/Los_Angeles": {"2026-03-08", "2026-11-01"},
		"Australia/Sydney":    {"2026-04-05", "2026-10-04"},
		"Europe/Berlin":       {"2026-03-29", "2026-10-25"},
		"Asia/Tehran":         {"2026-03-21", "2026-09-22"},
		"UTC":                 {"2026-03-08", "2026-10-25"},
	}
	var out []unlockFixture
	for tz, dates := range changes {
		loc, err := time.LoadLocation(tz)
		if err != nil {
			t.Fatal(err)
		}
		for _, date := range dates {
			day, err := time.ParseInLocation(time.DateOnly, date, loc)
			if err != nil {
				t.Fatal(err)
			}
			for _, days := range []int{0, 1, 7, 30} {
				for _, wall := range []struct{ h, m, back int }{
					{23, 30, days + 1}, // the evening before the delay's last day
					{23, 59, days},
					{2, 30, days}, // lands in the gap or the repeated hour
					{9, 0, days},
				} {
					start := time.Date(day.Year(), day.Month(), day.Day()-wall.back, wall.h, wall.m, 0, 0, loc)
					out = append(out, unlockFixture{tz + " " + start.Format("2006-01-02T15:04") + " +" + itoa(days), start, days, tz})
				}
			}
		}
		// Instants inside the repeated hour of a fall-back night, which a
		// wall time cannot name twice.
		if tz == "America/Los_Angeles" {
			for _, at := range []string{"2026-11-01T08:30:00Z", "2026-11-01T09:30:00Z"} {
				start, _ := time.Parse(time.RFC3339, at)
				for _, days := range []int{1, 7} {
					out = append(out, unlockFixture{tz + " " + at + " +" + itoa(days), start, days, tz})
				}
			}
		}
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }

// The scheduler (SQL, for every woman at once) and the gate (Go, for one
// lesson read) must agree on when a lesson unlocks, or a lesson_unlocked
// email announces a lesson she cannot open yet.
func TestUnlockAtSQLMatchesGo(t *testing.T) {
	db := modelstest.NewDB(t)
	ctx := context.Background()
	for _, tc := range unlockFixtures(t) {
		goAt := people.UnlockAt(tc.start, tc.days, tc.tz)
		wantSQL := goAt
		for _, safe := range []bool{false, true} {
			got, err := drip.UnlockAtSQLForTest(ctx, db, tc.start, tc.days, tc.tz, safe)
			if err != nil {
				t.Fatalf("%s (safe %v): %v", tc.name, safe, err)
			}
			if !got.Equal(wantSQL) {
				t.Errorf("%s (safe %v): SQL %s, want %s (Go %s)", tc.name, safe, got.UTC().Format(time.RFC3339),
					wantSQL.UTC().Format(time.RFC3339), goAt.Format(time.RFC3339))
			}
		}
	}
}

// A delay ending in a spring-forward gap opens the lesson just after the
// gap, when its email goes: 02:30 on the night Los Angeles skips from 02:00
// to 03:00 is 03:30 PDT.
func TestUnlockInASpringForwardGapIsAfterIt(t *testing.T) {
	la, err := time.LoadLocation("America/Los_Angeles")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 3, 7, 2, 30, 0, 0, la)
	if got, want := people.UnlockAt(start, 1, "America/Los_Angeles"), time.Date(2026, 3, 8, 10, 30, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("unlock %s, want %s (03:30 PDT)", got, want)
	}
}

// A zone Postgres does not know is UTC to both, in the scheduler's safe
// mode (the fast statement fails and is retried in it).
func TestUnlockAtSQLMatchesGoForUnknownZones(t *testing.T) {
	db := modelstest.NewDB(t)
	start := time.Date(2026, 3, 27, 9, 0, 0, 0, time.UTC)
	for _, tz := range []string{"Mars/Olympus", ""} {
		got, err := drip.UnlockAtSQLForTest(context.Background(), db, start, 3, tz, true)
		if err != nil {
			t.Fatalf("%q: %v", tz, err)
		}
		if want := people.UnlockAt(start, 3, tz); !got.Equal(want) {
			t.Errorf("%q: SQL %s, Go %s", tz, got.UTC().Format(time.RFC3339), want.Format(time.RFC3339))
		}
	}
}

package workerkit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestOrDefault(t *testing.T) {
	tests := []struct {
		v, def, want time.Duration
	}{
		{0, time.Second, time.Second},
		{-time.Minute, time.Second, time.Second},
		{time.Minute, time.Second, time.Minute},
	}
	for _, tc := range tests {
		if got := OrDefault(tc.v, tc.def); got != tc.want {
			t.Errorf("OrDefault(%s, %s) = %s, want %s", tc.v, tc.def, got, tc.want)
		}
	}
	if got := OrDefault(0, 4); got != 4 {
		t.Errorf("OrDefault(0, 4) = %d", got)
	}
}

func TestSleepStopsAtShutdown(t *testing.T) {
	if !Sleep(context.Background(), time.Millisecond) {
		t.Error("Sleep on a live context reported shutdown")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if Sleep(ctx, time.Hour) {
		t.Error("Sleep on a cancelled context reported it slept")
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Sleep on a cancelled context took %s", took)
	}
}

func TestRecord(t *testing.T) {
	errLost := errors.New("lease lost")
	o := Outcome{LeaseLost: errLost, Lost: "the lease was lost", Failed: "record outcome"}
	tests := []struct {
		name string
		err  error
		want string // "" means nothing is logged
	}{
		{"recorded", nil, ""},
		{"lease lost", fmt.Errorf("settle: %w", errLost), "level=WARN msg=\"the lease was lost\""},
		{"failed", errors.New("connection reset"), "level=ERROR msg=\"record outcome\" error=\"connection reset\""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, nil))
			Record(context.Background(), log, o, func(ctx context.Context) error {
				if _, ok := ctx.Deadline(); !ok {
					t.Error("the write has no deadline")
				}
				return tc.err
			})
			got := buf.String()
			if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Errorf("logged %q, want %q", got, tc.want)
			}
		})
	}
}

package workerkit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
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

func TestHeartbeat(t *testing.T) {
	errLost := errors.New("lease lost")
	o := Outcome{LeaseLost: errLost, Lost: "the lease was lost", Failed: "extend lease"}
	tests := []struct {
		name string
		// beat answers the nth extension (from 1).
		beat      func(n int) error
		wantLost  bool
		wantBeats func(n int) bool
	}{
		{"extends until stopped", func(int) error { return nil }, false, func(n int) bool { return n >= 3 }},
		{"a failure is retried at the next beat", func(n int) error {
			if n == 1 {
				return errors.New("connection reset")
			}
			return nil
		}, false, func(n int) bool { return n >= 3 }},
		{"a lost lease ends it", func(n int) error {
			if n == 2 {
				return fmt.Errorf("extend: %w", errLost)
			}
			return nil
		}, true, func(n int) bool { return n == 2 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var beats, lost atomic.Int32
			stop := Heartbeat(context.Background(), slog.New(slog.DiscardHandler), o, time.Millisecond,
				func(ctx context.Context) error {
					if _, ok := ctx.Deadline(); !ok {
						t.Error("the extension has no deadline")
					}
					return tc.beat(int(beats.Add(1)))
				},
				func() { lost.Add(1) })
			deadline := time.Now().Add(5 * time.Second)
			for beats.Load() < 3 && lost.Load() == 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if tc.wantLost {
				time.Sleep(20 * time.Millisecond) // no beat may follow a lost lease
			}
			stop()
			n := int(beats.Load())
			time.Sleep(5 * time.Millisecond)
			if after := int(beats.Load()); after != n {
				t.Errorf("%d beats after stop returned", after-n)
			}
			if !tc.wantBeats(n) || (lost.Load() == 1) != tc.wantLost || lost.Load() > 1 {
				t.Errorf("%d beats, lost called %d times; want lost %v", n, lost.Load(), tc.wantLost)
			}
		})
	}
}

package main

import (
	"bytes"
	"cmp"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The Lua scripts wrk runs. report.lua goes in front of each, so every run
// ends with the same JSON line.
//
//go:embed lua/*.lua
var luaScripts embed.FS

// wrkTool is the external load generator. HTTP scenarios are measured with
// it, not with a Go client in this process: on a small machine a client in
// Go takes much of the CPU the server needs and pulls every ratio toward 1.
type wrkTool struct {
	path string
	// how says where it came from, for the report.
	how string
	// scripts maps a script name ("" for report.lua alone) to its file.
	scripts map[string]string
}

// findWrk looks for wrk on PATH and, when it is missing and this process may
// install packages (root with apt-get), installs Debian's package.
func findWrk(ctx context.Context, dir string) (*wrkTool, error) {
	w := &wrkTool{scripts: map[string]string{}}
	if p, err := exec.LookPath("wrk"); err == nil {
		w.path, w.how = p, "found on PATH"
	} else {
		apt, aptErr := exec.LookPath("apt-get")
		if aptErr != nil || os.Geteuid() != 0 {
			return nil, errors.New("wrk is not on PATH and cannot be installed from here (needs root and apt-get): install it, e.g. `apt-get install wrk` on Debian, or `brew install wrk`")
		}
		progress("wrk is not on PATH: installing Debian's package (apt-get install -y wrk)")
		out, err := exec.CommandContext(ctx, apt, "install", "-y", "-q", "wrk").CombinedOutput()
		if err != nil {
			// A fresh machine may not have read the package lists yet.
			if upd, uerr := exec.CommandContext(ctx, apt, "update", "-q").CombinedOutput(); uerr != nil {
				return nil, fmt.Errorf("apt-get update: %w: %s", uerr, tail(upd))
			}
			out, err = exec.CommandContext(ctx, apt, "install", "-y", "-q", "wrk").CombinedOutput()
		}
		if err != nil {
			return nil, fmt.Errorf("apt-get install wrk: %w: %s", err, tail(out))
		}
		if w.path, err = exec.LookPath("wrk"); err != nil {
			return nil, errors.New("apt-get installed wrk but it is not on PATH")
		}
		w.how = "installed with apt-get install wrk"
	}
	report, err := luaScripts.ReadFile("lua/report.lua")
	if err != nil {
		return nil, err
	}
	for _, name := range []string{"", "claim", "flood"} {
		text := report
		if name != "" {
			own, err := luaScripts.ReadFile("lua/" + name + ".lua")
			if err != nil {
				return nil, err
			}
			text = slices.Concat(report, []byte("\n"), own)
		}
		path := filepath.Join(dir, "wrk-"+cmp.Or(name, "report")+".lua")
		if err := os.WriteFile(path, text, 0o600); err != nil {
			return nil, err
		}
		w.scripts[name] = path
	}
	return w, nil
}

// wrkRun is one invocation of wrk.
type wrkRun struct {
	url      string
	threads  int
	conns    int
	duration time.Duration
	headers  []string // "Name: value"
	script   string   // a key of wrkTool.scripts
	args     []string // the script's arguments
}

// run runs wrk and parses its report.
func (w *wrkTool) run(ctx context.Context, r wrkRun) (wrkResult, error) {
	script, ok := w.scripts[r.script]
	if !ok {
		return wrkResult{}, fmt.Errorf("no wrk script %q", r.script)
	}
	secs := max(1, int(r.duration.Round(time.Second)/time.Second))
	args := []string{"-t", strconv.Itoa(r.threads), "-c", strconv.Itoa(max(r.conns, r.threads)),
		"-d", strconv.Itoa(secs) + "s", "--latency", "--timeout", "10s", "-s", script}
	for _, h := range r.headers {
		args = append(args, "-H", h)
	}
	args = append(args, r.url)
	if len(r.args) > 0 {
		args = append(append(args, "--"), r.args...)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, w.path, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %w: %s", strings.Join(args, " "), err, tail(stderr.Bytes()))
	}
	res, err := parseWrk(stdout.Bytes())
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %w", r.url, err)
	}
	return res, nil
}

// wrkResult is what report.lua's done() prints: wrk's own counts and
// latency percentiles, and the responses by status.
type wrkResult struct {
	Requests   int64 `json:"requests"`
	DurationUS int64 `json:"duration_us"`
	Bytes      int64 `json:"bytes"`
	P50us      int64 `json:"p50_us"`
	P90us      int64 `json:"p90_us"`
	P99us      int64 `json:"p99_us"`
	MaxUS      int64 `json:"max_us"`
	Errors     struct {
		Connect int64 `json:"connect"`
		Read    int64 `json:"read"`
		Write   int64 `json:"write"`
		Status  int64 `json:"status"`
		Timeout int64 `json:"timeout"`
	} `json:"errors"`
	// Statuses counts every response by status; LateStatuses those after
	// the script's mark (a flood's first second left out).
	Statuses     map[string]int64 `json:"statuses"`
	LateStatuses map[string]int64 `json:"late_statuses"`
}

const wrkResultMarker = "BENCH_RESULT "

// parseWrk finds report.lua's line in wrk's output.
func parseWrk(out []byte) (wrkResult, error) {
	var r wrkResult
	for line := range strings.SplitSeq(string(out), "\n") {
		if js, ok := strings.CutPrefix(strings.TrimSpace(line), wrkResultMarker); ok {
			if err := json.Unmarshal([]byte(js), &r); err != nil {
				return wrkResult{}, fmt.Errorf("wrk report %q: %w", js, err)
			}
			if r.DurationUS <= 0 {
				return wrkResult{}, fmt.Errorf("wrk report %q: no duration", js)
			}
			return r, nil
		}
	}
	return wrkResult{}, fmt.Errorf("no %q line in wrk's output (was report.lua loaded?): %s", strings.TrimSpace(wrkResultMarker), tail(out))
}

// RPS is responses a second over wrk's timed run.
func (r wrkResult) RPS() float64 {
	return float64(r.Requests) / (float64(r.DurationUS) / 1e6)
}

// failures counts the responses that were not 2xx and the requests that got
// no response at all (connect, read, write errors and timeouts).
func (r wrkResult) failures() int64 {
	e := r.Errors
	return non2xx(r.Statuses) + e.Connect + e.Read + e.Write + e.Timeout
}

func non2xx(statuses map[string]int64) int64 {
	var n int64
	for s, c := range statuses {
		if !strings.HasPrefix(s, "2") || len(s) != 3 {
			n += c
		}
	}
	return n
}

// failureText names the failures, e.g. "429 x 12, timeout x 1".
func (r wrkResult) failureText() string {
	var parts []string
	for _, s := range slices.Sorted(maps.Keys(r.Statuses)) {
		if !strings.HasPrefix(s, "2") {
			parts = append(parts, fmt.Sprintf("%s x %d", s, r.Statuses[s]))
		}
	}
	e := r.Errors
	for _, x := range []struct {
		name string
		n    int64
	}{{"connect error", e.Connect}, {"read error", e.Read}, {"write error", e.Write}, {"timeout", e.Timeout}} {
		if x.n > 0 {
			parts = append(parts, fmt.Sprintf("%s x %d", x.name, x.n))
		}
	}
	return strings.Join(parts, ", ")
}

// tail is the end of a command's output, for an error message.
func tail(b []byte) string {
	const limit = 600
	s := strings.TrimSpace(string(b))
	if len(s) > limit {
		s = "..." + s[len(s)-limit:]
	}
	return s
}

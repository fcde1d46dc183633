package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
)

// proc is a server the bench started as its own process, so the load
// generator, Grace and each baseline are scheduled by the kernel like the
// separate programs they are in production.
type proc struct {
	name string
	cmd  *exec.Cmd
	addr string // host:port it serves on
	done chan error
}

// stop asks the server to shut down as it would be in production (SIGTERM)
// and kills it if it has not stopped after a while.
func (p *proc) stop() error {
	if p == nil || p.cmd.Process == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.Sys().(syscall.WaitStatus).Signaled() {
			return nil
		}
		return err
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within 30s of SIGTERM; killed", p.name)
	}
}

func (p *proc) url(path string) string { return "http://" + p.addr + path }

// buildGrace builds the real binary, as a deployment would, from the module
// this bench is part of.
func buildGrace(ctx context.Context, dir string) (string, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "grace")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/grace")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/grace: %w: %s", err, tail(out))
	}
	return bin, nil
}

func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD (is go on PATH?): %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run the bench from inside the Grace module (go run ./bench)")
	}
	return filepath.Dir(mod), nil
}

// graceEnv is the production configuration the bench runs `grace serve`
// with: request logging at info, the real middleware, client addresses
// taken from X-Forwarded-For sent by a proxy on loopback (so the claim's
// per-address limits see each request's own address), and a mail sender
// (Resend's API, pointed at the bench's sink) so nothing runs in a
// development mode. The email workers are off, as in a deployment that runs
// `grace worker` apart: a claim round's queued emails must not be sent
// during the next baseline round and take its CPU.
func graceEnv(dsn, sinkURL, pprofAddr string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"DATABASE_URL=" + dsn,
		"HTTP_ADDR=127.0.0.1:0",
		"LOG_LEVEL=info",
		"WORKER=off",
		"TRUSTED_PROXIES=127.0.0.1/32",
		"APP_BASE_URL=" + benchAppURL,
		"EMAIL_FROM=Grace Bench <hello@bench.example>",
		"RESEND_API_KEY=" + sinkAPIKey,
		"RESEND_API_URL=" + sinkURL,
		"GRACE_ENV=production",
	}
	if pprofAddr != "" {
		env = append(env, "GRACE_PPROF_ADDR="+pprofAddr)
	}
	return env
}

// startGrace runs `grace serve` with its log written to logPath and waits
// until it answers /healthz.
func startGrace(ctx context.Context, bin string, env []string, logPath string) (*proc, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start grace: %w", err)
	}
	p := &proc{name: "grace", cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); logFile.Close() }()

	// Grace logs where it listens (HTTP_ADDR=127.0.0.1:0 picks a free port).
	deadline := time.Now().Add(60 * time.Second)
	for p.addr == "" {
		select {
		case err := <-p.done:
			return nil, fmt.Errorf("grace serve exited: %v: %s", err, fileTail(logPath))
		case <-ctx.Done():
			_ = p.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = p.stop()
			return nil, fmt.Errorf("grace serve did not start within 60s: %s", fileTail(logPath))
		}
		p.addr = servingAddr(logPath)
	}
	if err := waitHTTP(ctx, p.url("/healthz")); err != nil {
		_ = p.stop()
		return nil, fmt.Errorf("grace: %w", err)
	}
	return p, nil
}

// servingAddr is the address in Grace's "serving" log line, or "".
func servingAddr(logPath string) string {
	f, err := os.Open(logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "serving" && line.Addr != "" {
			return line.Addr
		}
	}
	return ""
}

// logSummary counts Grace's log lines by level, to show the log was written
// and whether anything went wrong while it was measured, and gives the
// first ERROR line.
func logSummary(logPath string) (lines int, byLevel map[string]int, size int64, firstError string) {
	byLevel = map[string]int{}
	f, err := os.Open(logPath)
	if err != nil {
		return 0, byLevel, 0, ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil {
		size = st.Size()
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		lines++
		var line struct {
			Level string `json:"level"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil {
			byLevel[line.Level]++
			if line.Level == "ERROR" && firstError == "" {
				firstError = snippet(sc.Bytes())
			}
		}
	}
	return lines, byLevel, size, firstError
}

func fileTail(path string) string {
	b, _ := os.ReadFile(path)
	return tail(b)
}

// startBaseline runs this bench's own binary in baseline mode (baseline.go)
// as a separate process, and waits for the address it prints.
func startBaseline(ctx context.Context, args ...string) (*proc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, append([]string{"baseline"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start baseline: %w", err)
	}
	p := &proc{name: "baseline", cmd: cmd, done: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		addr <- strings.TrimSpace(strings.TrimPrefix(line, baselineListening))
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() { p.done <- cmd.Wait() }()
	select {
	case p.addr = <-addr:
	case <-time.After(30 * time.Second):
	}
	if p.addr == "" {
		_ = p.stop()
		return nil, fmt.Errorf("baseline %v did not start: %s", args, tail(stderr.Bytes()))
	}
	if err := waitHTTP(ctx, p.url("/healthz")); err != nil {
		_ = p.stop()
		return nil, fmt.Errorf("baseline: %w", err)
	}
	return p, nil
}

// waitHTTP polls url until it answers 200.
func waitHTTP(ctx context.Context, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("GET %s: %w", url, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// sinkAPIKey is the key Grace's Resend sender is configured with.
const sinkAPIKey = "re_bench_sink"

// mailSink stands in for Resend's API (POST /emails and /emails/batch) so
// Grace runs with a real mail sender configured; with WORKER=off it is only
// called if the workers are turned on. It keeps a count, not the emails.
type mailSink struct {
	srv  *httptest.Server
	sent atomic.Int64
}

func startMailSink() *mailSink {
	s := &mailSink{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/emails":
			s.sent.Add(1)
			_ = json.NewEncoder(w).Encode(map[string]string{"id": uuid.NewString()})
		case r.Method == http.MethodPost && r.URL.Path == "/emails/batch":
			var batch []json.RawMessage
			if err := json.Unmarshal(body, &batch); err != nil {
				http.Error(w, `{"name":"validation_error","message":"not a JSON array"}`, http.StatusUnprocessableEntity)
				return
			}
			data := make([]map[string]string, len(batch))
			for i := range data {
				data[i] = map[string]string{"id": uuid.NewString()}
			}
			s.sent.Add(int64(len(batch)))
			_ = json.NewEncoder(w).Encode(map[string]any{"data": data})
		default:
			http.Error(w, `{"name":"not_found","message":"not part of the sink"}`, http.StatusNotFound)
		}
	}))
	return s
}

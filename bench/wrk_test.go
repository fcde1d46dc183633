package main

import (
	"strings"
	"testing"
)

// wrkOutput is what wrk 4.1 prints with --latency and report.lua.
const wrkOutput = `Running 10s test @ http://127.0.0.1:41235/v1/programs/say-no
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.48ms    6.27ms  96.12ms   88.76%
    Req/Sec     6.37k     1.04k    9.01k    70.50%
  Latency Distribution
     50%    3.56ms
     75%    6.42ms
     90%   12.17ms
     99%   31.02ms
  126851 requests in 10.01s, 301.27MB read
  Non-2xx or 3xx responses: 12
Requests/sec:  12672.43
Transfer/sec:     30.10MB
BENCH_RESULT {"requests":126851,"duration_us":10010000,"bytes":315904131,"p50_us":3560,"p90_us":12170,"p99_us":31020,"max_us":96120,"errors":{"connect":0,"read":0,"write":0,"status":12,"timeout":0},"statuses":{"200":126839,"429":12},"late_statuses":{"200":126000}}
`

func TestParseWrk(t *testing.T) {
	tests := []struct {
		name         string
		out          string
		wantErr      string
		wantRequests int64
		wantRPS      float64
		wantP99us    int64
		wantFailures int64
		wantText     string
	}{
		{name: "full report", out: wrkOutput, wantRequests: 126851, wantRPS: 12672.6, wantP99us: 31020, wantFailures: 12, wantText: "429 x 12"},
		{
			name: "socket errors and a 500 are failures",
			out: `BENCH_RESULT {"requests":10,"duration_us":1000000,"bytes":1,"p50_us":1,"p90_us":1,"p99_us":2,"max_us":3,` +
				`"errors":{"connect":1,"read":2,"write":0,"status":1,"timeout":3},"statuses":{"200":9,"500":1},"late_statuses":{}}`,
			wantRequests: 10, wantRPS: 10, wantP99us: 2, wantFailures: 7, wantText: "500 x 1, connect error x 1, read error x 2, timeout x 3",
		},
		{
			// A 3xx is no page either; wrk's own status count leaves it out.
			name: "a redirect is not a success",
			out: `BENCH_RESULT {"requests":4,"duration_us":2000000,"bytes":1,"p50_us":1,"p90_us":1,"p99_us":1,"max_us":1,` +
				`"errors":{"connect":0,"read":0,"write":0,"status":0,"timeout":0},"statuses":{"200":3,"304":1}}`,
			wantRequests: 4, wantRPS: 2, wantP99us: 1, wantFailures: 1, wantText: "304 x 1",
		},
		{name: "report.lua not loaded", out: strings.Split(wrkOutput, "BENCH_RESULT")[0], wantErr: "no \"BENCH_RESULT\" line"},
		{name: "cut-off line", out: `BENCH_RESULT {"requests":12,"dur`, wantErr: "wrk report"},
		{name: "no duration", out: `BENCH_RESULT {"requests":12}`, wantErr: "no duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := parseWrk([]byte(tt.out))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Requests != tt.wantRequests || r.P99us != tt.wantP99us {
				t.Errorf("requests %d p99 %dus, want %d and %dus", r.Requests, r.P99us, tt.wantRequests, tt.wantP99us)
			}
			if rps := r.RPS(); rps < tt.wantRPS-0.5 || rps > tt.wantRPS+0.5 {
				t.Errorf("rps %.2f, want %.1f", rps, tt.wantRPS)
			}
			if f := r.failures(); f != tt.wantFailures {
				t.Errorf("failures %d, want %d", f, tt.wantFailures)
			}
			if got := r.failureText(); got != tt.wantText {
				t.Errorf("failure text %q, want %q", got, tt.wantText)
			}
		})
	}
}

func wrkRound(rps float64, p50ms, p99ms float64, statuses map[string]int64) wrkResult {
	var n int64
	for _, c := range statuses {
		n += c
	}
	return wrkResult{Requests: n, DurationUS: int64(float64(n) / rps * 1e6), P50us: int64(p50ms * 1000), P99us: int64(p99ms * 1000), Statuses: statuses}
}

func TestJudgeHTTPScenario(t *testing.T) {
	ok := func(rps, p50, p99 float64) []wrkResult {
		n := int64(rps * 10)
		return []wrkResult{wrkRound(rps*1.1, p50, p99, map[string]int64{"200": n}), wrkRound(rps, p50, p99, map[string]int64{"200": n}),
			wrkRound(rps*0.5, p50*3, p99*3, map[string]int64{"200": n})}
	}
	tests := []struct {
		name      string
		grace     []wrkResult
		baseline  []wrkResult
		minRatio  float64
		maxP99    float64
		wantRatio float64
		wantP99   float64
		wantPass  bool
		wantError string
	}{
		{name: "medians meet both targets", grace: ok(600, 2, 10), baseline: ok(1000, 1, 6), minRatio: 0.5, maxP99: 2, wantRatio: 0.6, wantP99: 10.0 / 6, wantPass: true},
		{name: "rate below target", grace: ok(400, 2, 10), baseline: ok(1000, 1, 6), minRatio: 0.5, maxP99: 2, wantRatio: 0.4, wantP99: 10.0 / 6},
		{name: "p99 over its limit", grace: ok(600, 2, 13), baseline: ok(1000, 1, 6), minRatio: 0.5, maxP99: 2, wantRatio: 0.6, wantP99: 13.0 / 6},
		{name: "no p99 limit", grace: ok(900, 2, 60), baseline: ok(1000, 1, 6), minRatio: 0.8, wantRatio: 0.9, wantP99: 10, wantPass: true},
		{
			// A fast 429 is not a fast claim: it fails the row however
			// good the ratio looks.
			name:  "a 429 on Grace's side fails the row",
			grace: append(ok(600, 2, 10)[:2], wrkRound(5000, 1, 2, map[string]int64{"202": 100, "429": 4900})), baseline: ok(1000, 1, 6),
			minRatio: 0.22, wantRatio: 0.66, wantP99: 10.0 / 6, wantError: "4900 Grace requests failed; first: 429 x 4900",
		},
		{
			name: "a failing baseline fails the row too", grace: ok(600, 2, 10),
			baseline: append(ok(1000, 1, 6)[:2], wrkRound(1000, 1, 6, map[string]int64{"200": 10, "500": 1})),
			minRatio: 0.5, wantRatio: 0.6, wantP99: 10.0 / 6, wantError: "1 baseline and 0 Grace requests failed; first: 500 x 1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := scenarioReport{Route: "GET /x", TargetRatio: tt.minRatio, MaxP99Ratio: tt.maxP99,
				GraceSide: summarizeWrk(tt.grace), BaselineSide: summarizeWrk(tt.baseline)}
			r.judge()
			if !near(r.RPSRatio, tt.wantRatio) || !near(r.P99Ratio, tt.wantP99) {
				t.Errorf("ratio %.3f p99 ratio %.3f, want %.3f and %.3f", r.RPSRatio, r.P99Ratio, tt.wantRatio, tt.wantP99)
			}
			if r.Pass != tt.wantPass {
				t.Errorf("pass %v, want %v (error %q)", r.Pass, tt.wantPass, r.Error)
			}
			if !strings.Contains(r.Error, tt.wantError) || (tt.wantError == "" && r.Error != "") {
				t.Errorf("error %q, want %q", r.Error, tt.wantError)
			}
		})
	}
}

func TestJudgeFlood(t *testing.T) {
	normal := func(rps float64) side {
		return summarizeWrk([]wrkResult{wrkRound(rps, 2, 10, map[string]int64{"200": int64(rps * 10)})})
	}
	tests := []struct {
		name      string
		many, one side
		manyCodes map[string]int64
		oneCodes  map[string]int64
		wantRatio float64
		wantShare float64
		wantPass  bool
		wantError string
	}{
		{name: "both targets met", many: normal(950), one: normal(1000), manyCodes: map[string]int64{"429": 995, "401": 5},
			oneCodes: map[string]int64{"429": 1000}, wantRatio: 0.95, wantShare: 0.995, wantPass: true},
		{name: "normal traffic slowed", many: normal(800), one: normal(1000), manyCodes: map[string]int64{"429": 995, "401": 5},
			oneCodes: map[string]int64{"429": 1000}, wantRatio: 0.8, wantShare: 0.995},
		{name: "too many hashed", many: normal(950), one: normal(1000), manyCodes: map[string]int64{"429": 900, "401": 100},
			oneCodes: map[string]int64{"429": 1000}, wantRatio: 0.95, wantShare: 0.9},
		{name: "the comparison flood was not refused", many: normal(950), one: normal(1000), manyCodes: map[string]int64{"429": 1000},
			oneCodes: map[string]int64{"429": 500, "401": 500}, wantRatio: 0.95, wantShare: 1, wantError: "comparison is broken"},
		{name: "normal traffic failed", many: summarizeWrk([]wrkResult{wrkRound(950, 2, 10, map[string]int64{"200": 9000, "503": 500})}),
			one: normal(1000), manyCodes: map[string]int64{"429": 1000}, oneCodes: map[string]int64{"429": 1000},
			wantRatio: 0.95, wantShare: 1, wantError: "normal traffic failed"},
		{name: "no flood answers", many: normal(950), one: normal(1000), manyCodes: map[string]int64{}, oneCodes: map[string]int64{"429": 10},
			wantRatio: 0.95, wantShare: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := floodReport{TargetRatio: floodTargetRatio, Target429: floodTarget429, Many: tt.many, One: tt.one,
				ManyStatuses: tt.manyCodes, OneStatuses: tt.oneCodes}
			r.judge()
			if !near(r.Ratio, tt.wantRatio) || !near(r.Share429, tt.wantShare) {
				t.Errorf("ratio %.3f share %.3f, want %.3f and %.3f", r.Ratio, r.Share429, tt.wantRatio, tt.wantShare)
			}
			if r.Pass != tt.wantPass {
				t.Errorf("pass %v, want %v (error %q)", r.Pass, tt.wantPass, r.Error)
			}
			if !strings.Contains(r.Error, tt.wantError) || (tt.wantError == "" && r.Error != "") {
				t.Errorf("error %q, want %q", r.Error, tt.wantError)
			}
		})
	}
}

func near(a, b float64) bool { return a > b-0.005 && a < b+0.005 }

package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

// printHTTP prints the wrk scenarios as one table, then the flood, then
// each scenario's rounds, statuses and profile.
func (rep *report) printHTTP(w io.Writer) {
	var rows []scenarioReport
	for _, r := range rep.Scenarios {
		if r.Route != "" {
			rows = append(rows, r)
		}
	}
	if len(rows) == 0 && rep.Flood == nil {
		return
	}
	fmt.Fprintf(w, "\nHTTP, measured with %s\n", rep.Wrk)
	fmt.Fprintf(w, "`grace serve` (built from this tree, every middleware, request log at info to a file) vs baselines in their own processes, pool %d each\n", rep.Pool)
	fmt.Fprintf(w, "wrk -t%d -c%d --latency, %gs warm-up then %gs timed per round, %d rounds interleaved grace/baseline, medians\n",
		rep.Threads, rep.Conns, rep.WarmupSeconds, rep.RoundSeconds, rep.Rounds)
	if rep.GraceLog != "" {
		fmt.Fprintf(w, "grace log: %s\n", rep.GraceLog)
	}
	if len(rows) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
		fmt.Fprintln(tw, "path\t| grace req/s\tp50 ms\tp99 ms\t| baseline req/s\tp50 ms\tp99 ms\t| ratio\t| p99 ratio\t| target\t| result")
		for _, r := range rows {
			g, b := r.GraceSide, r.BaselineSide
			fmt.Fprintf(tw, "%s\t| %.0f\t%.2f\t%.2f\t| %.0f\t%.2f\t%.2f\t| %.3f\t| %.2f\t| %s\t| %s\n",
				r.Route, g.RPS, g.P50ms, g.P99ms, b.RPS, b.P50ms, b.P99ms, r.RPSRatio, r.P99Ratio, targetText(r), verdict(r.Pass))
		}
		tw.Flush()
	}
	if f := rep.Flood; f != nil {
		fmt.Fprintf(w, "\n%s: normal traffic (%s, wrk -t%d -c%d) during a coach-login flood of %g/s (wrk -t1 -c%d, paced by delay(), random emails)\n",
			f.Name, f.Normal, rep.Threads, rep.Conns, f.Rate, floodConns)
		tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
		fmt.Fprintln(tw, "flood\t| normal req/s\tp50 ms\tp99 ms\t| flood req/s\tp50 ms\tp99 ms\t| flood answers after its first second")
		fmt.Fprintf(tw, "many addresses (random X-Forwarded-For)\t| %.0f\t%.2f\t%.2f\t| %.0f\t%.2f\t%.2f\t| %s\n", f.Many.RPS, f.Many.P50ms, f.Many.P99ms,
			f.ManyRate, f.ManyFlood.P50ms, f.ManyFlood.P99ms, statusText(f.ManyStatuses))
		fmt.Fprintf(tw, "one address over its limit (429 at once)\t| %.0f\t%.2f\t%.2f\t| %.0f\t%.2f\t%.2f\t| %s\n", f.One.RPS, f.One.P50ms, f.One.P99ms,
			f.OneRate, f.OneFlood.P50ms, f.OneFlood.P99ms, statusText(f.OneStatuses))
		tw.Flush()
		fmt.Fprintf(w, "ratio %.3f (target >= %.2f)   429 share of the many-address flood %.2f%% (target >= %.0f%%)   %s\n",
			f.Ratio, f.TargetRatio, 100*f.Share429, 100*f.Target429, verdict(f.Pass))
		if f.ManyRate < 0.9*f.Rate {
			fmt.Fprintf(w, "  note: the many-address flood reached %.0f/s of %g/s: Grace answered it too slowly for %d connections to keep the pace\n",
				f.ManyRate, f.Rate, floodConns)
		}
		if f.Error != "" {
			fmt.Fprintf(w, "  error: %s\n", f.Error)
		}
		if f.Profile != "" {
			fmt.Fprintf(w, "  %s\n", strings.ReplaceAll(strings.TrimSpace(f.Profile), "\n", "\n  "))
		}
	}
	for _, r := range rows {
		fmt.Fprintf(w, "\n%s  %s\n  grace:    %s\n  baseline: %s\n", r.Name, r.Route, r.Grace, r.Baseline)
		for _, s := range []struct {
			name string
			side
		}{{"grace", r.GraceSide}, {"baseline", r.BaselineSide}} {
			fmt.Fprintf(w, "  %-8s  rounds req/s %s   %d B/response (headers included)   %d requests: %s\n",
				s.name, roundsText(s.RoundsRPS), s.Bytes, s.Requests, statusText(s.Statuses))
		}
		if r.Error != "" {
			fmt.Fprintf(w, "  error: %s\n", r.Error)
		}
		if r.Profile != "" {
			fmt.Fprintf(w, "  %s\n", strings.ReplaceAll(strings.TrimSpace(r.Profile), "\n", "\n  "))
		}
	}
}

func targetText(r scenarioReport) string {
	t := fmt.Sprintf(">=%.2fx", r.TargetRatio)
	if r.MaxP99Ratio > 0 {
		t += fmt.Sprintf(", p99 <=%gx", r.MaxP99Ratio)
	}
	return t
}

func verdict(pass bool) string {
	if pass {
		return "PASS"
	}
	return "FAIL"
}

// statusText is responses by status, e.g. "200 x 1203, 429 x 3".
func statusText(statuses map[string]int64) string {
	if len(statuses) == 0 {
		return "no responses"
	}
	var parts []string
	for _, s := range slices.Sorted(maps.Keys(statuses)) {
		parts = append(parts, fmt.Sprintf("%s x %d", s, statuses[s]))
	}
	return strings.Join(parts, ", ")
}

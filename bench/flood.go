package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/grace-coaching/grace/models"
)

// The password flood (issue 10): normal traffic measured while a second wrk
// sends coach logins at a fixed rate, once from many addresses (random
// emails, a random client address each, so no per-address or per-email
// limit can help and only the shared hash budget stands between the flood
// and argon2) and once from one address already over its limit (answered
// 429 before any work). The ratio of normal traffic under the two is what
// the flood costs beyond answering it; on shared cores it says more than an
// absolute figure.
const (
	floodName        = "login-flood"
	floodTargetRatio = 0.9
	floodTarget429   = 0.99
	// floodOneAddress is the single flooding address; its first attempts
	// (within the flood's first second) trip its per-address limit.
	floodOneAddress = "203.0.113.7"
	// floodConns is enough connections to keep the rate even when Grace
	// answers the flood slowly: a paced connection waits for its answer
	// before it takes its next slot, so too few would turn a slow server
	// into a gentler flood.
	floodConns = 256
	// floodMark is the flood's first second, left out of its 429 share: the
	// limits see the flood then.
	floodMark = time.Second
)

// floodReport is the flood's outcome.
type floodReport struct {
	Name   string  `json:"name"`
	Rate   float64 `json:"flood_rate"`
	Normal string  `json:"normal_traffic"`
	// Many and One are normal traffic during the many-address flood and
	// during the flood answered 429 at once.
	Many side `json:"normal_during_many_address_flood"`
	One  side `json:"normal_during_one_address_flood"`
	// ManyStatuses and OneStatuses count the flood's responses after its
	// first second, over every round.
	ManyStatuses map[string]int64 `json:"many_address_flood_statuses"`
	OneStatuses  map[string]int64 `json:"one_address_flood_statuses"`
	ManyRate     float64          `json:"many_address_flood_rps"`
	OneRate      float64          `json:"one_address_flood_rps"`
	// ManyFlood and OneFlood are the floods' own latencies (medians over
	// the rounds): how long an attacker waits for each answer.
	ManyFlood   side    `json:"many_address_flood"`
	OneFlood    side    `json:"one_address_flood"`
	Ratio       float64 `json:"ratio"`
	Share429    float64 `json:"many_address_429_share"`
	OneShare429 float64 `json:"one_address_429_share"`
	TargetRatio float64 `json:"target_ratio"`
	Target429   float64 `json:"target_429_share"`
	Pass        bool    `json:"pass"`
	Error       string  `json:"error,omitempty"`
	Profile     string  `json:"profile,omitempty"`
}

func (h *httpBench) runFlood(ctx context.Context, b *bench) *floodReport {
	r := &floodReport{Name: floodName, Rate: h.cfg.floodRate, TargetRatio: floodTargetRatio, Target429: floodTarget429,
		Normal: "GET /v1/programs/{slug}", ManyStatuses: map[string]int64{}, OneStatuses: map[string]int64{}}
	err := func() error {
		prog, err := b.program(ctx, "flood-normal-bench", 7)
		if err != nil {
			return err
		}
		normal := httpSide{path: "/v1/programs/" + prog.Slug}
		if err := h.overLimit(ctx, floodOneAddress); err != nil {
			return err
		}
		var many, one, manyFlood, oneFlood []wrkResult
		var manySecs, oneSecs float64
		var manyReqs, oneReqs int64
		for i := 1; i <= h.cfg.rounds; i++ {
			for _, from := range []string{"many", floodOneAddress} {
				progress("%s: round %d/%d, flood from %s", floodName, i, h.cfg.rounds, from)
				// The middle round's many-address flood is profiled.
				profile := h.pprof != "" && from == "many" && i == (h.cfg.rounds+1)/2
				res, flood, err := h.underFlood(ctx, normal, from, profile, &r.Profile)
				if err != nil {
					return err
				}
				into := r.OneStatuses
				if from == "many" {
					many, manyFlood = append(many, res), append(manyFlood, flood)
					into = r.ManyStatuses
					manySecs += float64(flood.DurationUS) / 1e6
					manyReqs += flood.Requests
				} else {
					one, oneFlood = append(one, res), append(oneFlood, flood)
					oneSecs += float64(flood.DurationUS) / 1e6
					oneReqs += flood.Requests
				}
				for s, n := range flood.LateStatuses {
					into[s] += n
				}
			}
		}
		r.Many, r.One = summarizeWrk(many), summarizeWrk(one)
		r.ManyFlood, r.OneFlood = summarizeWrk(manyFlood), summarizeWrk(oneFlood)
		if manySecs > 0 && oneSecs > 0 {
			r.ManyRate, r.OneRate = float64(manyReqs)/manySecs, float64(oneReqs)/oneSecs
		}
		return nil
	}()
	if err != nil {
		r.Error = err.Error()
	}
	r.judge()
	return r
}

// underFlood runs one flood and, from its second second on, measures normal
// traffic (warm-up, then the timed run); the flood outlasts it by a second.
func (h *httpBench) underFlood(ctx context.Context, normal httpSide, from string, profile bool, top *string) (wrkResult, wrkResult, error) {
	type outcome struct {
		res wrkResult
		err error
	}
	floodDone := make(chan outcome, 1)
	run := wrkRun{
		url: h.grace.url("/v1/auth/login"), threads: 1, conns: floodConns,
		duration: floodMark + h.cfg.warmup + h.cfg.duration + time.Second, script: "flood",
		args: []string{strconv.FormatFloat(h.cfg.floodRate, 'f', -1, 64), from, strconv.Itoa(int(floodMark / time.Millisecond))},
	}
	go func() {
		res, err := h.wrk.run(ctx, run)
		floodDone <- outcome{res, err}
	}()
	var res wrkResult
	var err error
	select {
	case <-time.After(floodMark):
		var prof func() (string, error)
		if profile {
			prof = h.profile(ctx, floodName)
		}
		res, err = h.measureSide(ctx, "normal traffic", h.grace.url(""), normal)
		if prof != nil {
			t, perr := prof()
			if *top = t; perr != nil {
				*top = "profile failed: " + perr.Error()
			}
		}
	case <-ctx.Done():
		err = ctx.Err()
	}
	flood := <-floodDone
	if err != nil {
		return wrkResult{}, wrkResult{}, err
	}
	if flood.err != nil {
		return wrkResult{}, wrkResult{}, fmt.Errorf("flood: %w", flood.err)
	}
	return res, flood.res, nil
}

// judge sets the figures and the verdict. Normal traffic must be answered
// 2xx throughout, and the comparison flood must really be answered 429 (or
// the ratio compares two floods that cost the same).
func (r *floodReport) judge() {
	if r.One.RPS > 0 {
		r.Ratio = r.Many.RPS / r.One.RPS
	}
	r.Share429 = share(r.ManyStatuses, "429")
	r.OneShare429 = share(r.OneStatuses, "429")
	if r.Error == "" {
		switch {
		case r.Many.Errors > 0 || r.One.Errors > 0:
			r.Error = fmt.Sprintf("normal traffic failed: %d during the many-address flood, %d during the one-address flood; first: %s",
				r.Many.Errors, r.One.Errors, r.Many.FirstError+r.One.FirstError)
		case r.OneShare429 < floodTarget429:
			r.Error = fmt.Sprintf("the one-address flood was not answered 429 (%.1f%%: %v): the comparison is broken", 100*r.OneShare429, r.OneStatuses)
		}
	}
	r.Pass = r.Error == "" && r.Ratio >= r.TargetRatio && r.Share429 >= r.Target429
}

func share(statuses map[string]int64, status string) float64 {
	var total int64
	for _, n := range statuses {
		total += n
	}
	if total == 0 {
		return 0
	}
	return float64(statuses[status]) / float64(total)
}

// overLimit sends more logins from addr than its per-address limit allows
// (the limit counts every attempt, and is checked first), so the comparison
// flood is refused from its first request: its first second must not hash
// the attempts its address still had. The last answer must be 429.
func (h *httpBench) overLimit(ctx context.Context, addr string) error {
	attempts := models.DefaultLimits().LoginPerIP.Max + 5
	status := 0
	for i := range attempts {
		body := fmt.Sprintf(`{"email":"over-limit-%d@bench.example","password":"correct horse battery"}`, i)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.grace.url("/v1/auth/login"), strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", addr)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		status = resp.StatusCode
	}
	if status != http.StatusTooManyRequests {
		return fmt.Errorf("%d logins from %s and the last answered %d, not 429: the per-address login limit did not trip", attempts, addr, status)
	}
	return nil
}

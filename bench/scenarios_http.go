package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/people"
)

// httpScenarios are measured with wrk against `grace serve`, in report
// order. The flood (flood.go) comes after them.
var httpScenarios = []httpScenario{
	{
		name:        "portal-lesson",
		route:       "GET /v1/portal/lessons/{id}",
		grace:       "a participant's token -> gate -> day-3 lesson, every middleware, request log at info",
		baseline:    "bare Echo + pgx: one primary-key SELECT of the lesson row, every column Grace answers",
		minRatio:    0.5,
		maxP99Ratio: 2,
		setup:       setupPortalLessonHTTP,
	},
	{
		name:     "program-page",
		route:    "GET /v1/programs/{slug}",
		grace:    "the public program page, every middleware, request log at info",
		baseline: "bare Echo: Grace's own answer, fetched once, served from memory",
		minRatio: 0.8,
		setup:    setupProgramPageHTTP,
	},
	{
		name:     "free-access-claim",
		route:    "POST /v1/programs/{slug}/free-access",
		grace:    "a new email from a new client address (X-Forwarded-For) on every request: limits, program, participant, consents, grant, login link, outbox",
		baseline: "bare Echo + pgx: bind the same body, INSERT one participant row",
		minRatio: 0.22,
		setup:    setupClaimHTTP,
	},
}

// setupPortalLessonHTTP: a woman with an enrolment that started a week ago
// reads a day-3 lesson, so every step of the gate runs and the lesson is
// unlocked.
func setupPortalLessonHTTP(ctx context.Context, b *bench, _ *httpBench) (httpPlan, error) {
	prog, err := b.program(ctx, "portal-lesson-bench", 1)
	if err != nil {
		return httpPlan{}, err
	}
	lesson, err := b.svc.Catalog.CreateLesson(ctx, prog.ID, catalog.LessonInput{
		Title: "Day 3: The pause before yes", Body: lessonMarkdown(6 << 10),
		DurationSeconds: ptr(900), UnlockOffsetDays: 3, Published: true,
	})
	if err != nil {
		return httpPlan{}, fmt.Errorf("create lesson: %w", err)
	}
	p := &people.Participant{Email: "bench.reader@example.com", Name: "Bench Reader", Timezone: "Europe/Berlin"}
	if err := b.db.WithContext(ctx).Create(p).Error; err != nil {
		return httpPlan{}, fmt.Errorf("create participant: %w", err)
	}
	token, err := randomToken()
	if err != nil {
		return httpPlan{}, err
	}
	now := time.Now()
	session := &people.ParticipantSession{ParticipantID: p.ID, TokenHash: models.HashToken(token), ExpiresAt: now.Add(people.ParticipantSessionTTL)}
	if err := b.db.WithContext(ctx).Create(session).Error; err != nil {
		return httpPlan{}, fmt.Errorf("create session: %w", err)
	}
	grant := &people.AccessGrant{ParticipantID: p.ID, ProgramID: prog.ID, Source: people.GrantComplimentary, StartsAt: now.AddDate(0, 0, -7)}
	if err := b.db.WithContext(ctx).Create(grant).Error; err != nil {
		return httpPlan{}, fmt.Errorf("create grant: %w", err)
	}
	return httpPlan{
		grace:        httpSide{path: "/v1/portal/lessons/" + lesson.ID.String(), headers: []string{"Authorization: Bearer " + token}},
		baseline:     httpSide{path: "/lessons/" + lesson.ID.String()},
		baselineArgs: []string{"-kind", "lesson"},
	}, nil
}

// setupProgramPageHTTP: a launch-day program page with a real description
// and a seven-lesson outline. The baseline serves Grace's own bytes.
func setupProgramPageHTTP(ctx context.Context, b *bench, h *httpBench) (httpPlan, error) {
	prog, err := b.program(ctx, "say-no-with-grace-bench", 7)
	if err != nil {
		return httpPlan{}, err
	}
	path := "/v1/programs/" + prog.Slug
	page, err := fetch(ctx, h.grace.url(path))
	if err != nil {
		return httpPlan{}, err
	}
	file := filepath.Join(h.dir, "program-page.json")
	if err := os.WriteFile(file, page, 0o600); err != nil {
		return httpPlan{}, err
	}
	return httpPlan{
		grace:        httpSide{path: path},
		baseline:     httpSide{path: "/programs/" + prog.Slug},
		baselineArgs: []string{"-kind", "page", "-page", file},
	}, nil
}

// setupClaimHTTP: launch day of the free workshop. Every request is a
// different woman from her own address, so every claim is a first claim and
// no limit trips: a 429 here is a broken bench, not a result.
func setupClaimHTTP(ctx context.Context, b *bench, _ *httpBench) (httpPlan, error) {
	prog, err := b.program(ctx, "free-claim-bench", 7)
	if err != nil {
		return httpPlan{}, err
	}
	run, err := randomHex(3)
	if err != nil {
		return httpPlan{}, err
	}
	// Each wrk run numbers its addresses from its own block; claim.lua
	// spreads them over /24s.
	args := func(side string) func(int) []string {
		return func(n int) []string {
			return []string{fmt.Sprintf("%s%s%d", run, side, n), strconv.Itoa(n * 8_000_000)}
		}
	}
	path := "/programs/" + prog.Slug + "/free-access"
	return httpPlan{
		grace:        httpSide{path: "/v1" + path, script: "claim", args: args("g")},
		baseline:     httpSide{path: path, script: "claim", args: args("b")},
		baselineArgs: []string{"-kind", "claim"},
	}, nil
}

// fetch GETs url once and returns its body, failing unless it is 200.
func fetch(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d: %s", url, resp.StatusCode, snippet(body))
	}
	return body, nil
}

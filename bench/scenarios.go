package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
)

// scenario is one comparison: a Grace route against the least code that could
// give a similar answer, timed side by side, so the ratio shows what Grace's
// layers cost and not how fast this machine is.
type scenario struct {
	name string
	// grace and baseline say what each side does, for the report.
	grace, baseline string
	// minRatio is the target: Grace's requests/s over the baseline's.
	minRatio float64
	// maxP99Ratio caps Grace's p99 latency over the baseline's; 0: no cap.
	maxP99Ratio float64
	// setup builds the fixtures, registers the baseline's route on b.bare and
	// returns the request each side is timed with.
	setup func(ctx context.Context, b *bench) (grace, baseline request, err error)
	// setupCalls, used instead of setup, builds the fixtures and returns the
	// functions each side is timed calling directly, for scenarios measured
	// at the domain level rather than over HTTP.
	setupCalls func(ctx context.Context, b *bench) (grace, baseline target, err error)
}

// request makes one request against a server's base URL. It runs for every
// request, so a scenario that must vary its body (a webhook's event id) can.
type request func(ctx context.Context, base string) (*http.Request, error)

// scenarios is every comparison, in report order.
var scenarios = []scenario{
	{
		name:       "seat-hold",
		grace:      "a booking on one hot cohort: the checkout form (StartCheckout, one task), the task worker (participant, consents, checkout link emailed), her click (RedeemCheckoutLink: enrollment, guarded seat UPDATE, checkout recorded; provider stubbed to answer at once)",
		baseline:   "pgx: UPDATE cohorts SET seats_held = seats_held + 1 WHERE id = $1 on the same row",
		minRatio:   0.3,
		setupCalls: setupSeatHold,
	},
	{
		name:     "webhook-ingest",
		grace:    "POST /v1/webhooks/stripe: verify signature, store once, apply (mixed events, unknown enrollments)",
		baseline: "bare Echo + pgx: read body, INSERT INTO stripe_events (id, type, payload)",
		minRatio: 0.35,
		setup:    setupWebhookIngest,
	},
}

// program creates a published program with an open free-access window and,
// when lessons > 1, an outline of lessons-1 short published lessons, the
// first a free preview.
func (b *bench) program(ctx context.Context, slug string, lessons int) (*catalog.Program, error) {
	until := time.Now().AddDate(0, 0, 30)
	prog, err := b.svc.Catalog.CreateProgram(ctx, catalog.ProgramInput{
		Slug: slug, Title: "Say No With Grace",
		Summary:     "A free seven-day workshop on saying no kindly and without guilt, for women who have been taught that their needs come last.",
		Description: programMarkdown,
		Status:      catalog.ProgramPublished, FreeAccessUntil: &until, PriceCents: 9700, Currency: "EUR",
	})
	if err != nil {
		return nil, fmt.Errorf("create program: %w", err)
	}
	for i := 1; i < lessons; i++ {
		_, err := b.svc.Catalog.CreateLesson(ctx, prog.ID, catalog.LessonInput{
			Title: fmt.Sprintf("Day %d: %s", i, dayTitles[(i-1)%len(dayTitles)]), Body: lessonMarkdown(1 << 10),
			DurationSeconds: ptr(600 + 60*i), FreePreview: i == 1, UnlockOffsetDays: i - 1, Published: true,
		})
		if err != nil {
			return nil, fmt.Errorf("create lesson %d: %w", i, err)
		}
	}
	return prog, nil
}

var dayTitles = []string{
	"Noticing the automatic yes", "Where the guilt comes from", "The pause before yes",
	"Saying no without explaining", "When they push back", "Kindness that includes you",
}

const programMarkdown = `## What this workshop is

Seven short lessons, one a day, on the moment someone asks for more than you
want to give. You will learn to **notice** the automatic yes, to **pause**, and
to answer with a no that is kind to them *and* to you.

## Who it is for

Women who were taught that their needs come last, and especially those
rebuilding trust in their own judgement after a relationship that punished
every boundary. You need no experience with coaching or therapy.

## What you will practise

- Recognising the body's first signal that you are about to over-commit
- Three sentences that decline without apologising
- Holding your answer when someone pushes, sulks or bargains
- Undoing a yes you regret, gracefully

Each lesson takes ten to fifteen minutes and ends with one small exercise for
the day. Everything you write stays private to you.
`

// lessonMarkdown is a lesson body whose rendered HTML is at least minHTML
// bytes, written the way coaches write: headings, lists and emphasis.
func lessonMarkdown(minHTML int) string {
	const section = `## Part %d: the moment before you answer

When someone asks you for something, there is a moment, often less than a
second, before the *yes* leaves your mouth. Today we slow that moment down.
Notice what happens in your body: a tightening in the chest, a smile that
arrives before you have decided, the urge to fill the silence.

> "I'll have to check and get back to you" is a complete sentence.

Try this three times today:

1. Hear the request to the end without answering.
2. Take one full breath and notice what you **want**, not what you should do.
3. Answer only then, even if the answer is still yes.

If the old guilt arrives, name it kindly: *this is the habit, not the truth*.
You are allowed to take up space, to need time, and to change your mind.

`
	var sb strings.Builder
	for i := 1; len(models.RenderMarkdown(sb.String())) < minHTML; i++ {
		fmt.Fprintf(&sb, section, i)
	}
	return sb.String()
}

// randomToken makes a portal token the way the domain does: 32 random bytes,
// of which only the hash is stored.
func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func ptr[T any](v T) *T { return &v }

// snippet shortens a response body for an error message.
func snippet(b []byte) string {
	const limit = 300
	if len(b) > limit {
		return string(b[:limit]) + "..."
	}
	return string(b)
}

package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/grace-coaching/grace/api/apitest"
	"github.com/grace-coaching/grace/api/stripe"
	"github.com/grace-coaching/grace/api/stripe/stripetest"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/enroll"
	"github.com/grace-coaching/grace/models/enroll/enrolltest"
)

// countingGateway counts checkout sessions created, so a test can tell a
// replayed answer from a second checkout.
func idemCheckoutEnv(t *testing.T) (*apitest.Env, *enrolltest.Gateway, string) {
	t.Helper()
	client, err := stripe.New(stripe.Config{SecretKey: "sk_test_idem", APIURL: stripetest.StartMock(t)})
	if err != nil {
		t.Fatal(err)
	}
	gw := enrolltest.New()
	gw.Next = client
	env := apitest.NewEnv(t, apitest.WithPayments(gw, nil))
	prog := env.Program(t, "say-no-with-grace", catalog.ProgramPublished, false)
	start := env.Clock.Now().Add(14 * 24 * time.Hour)
	cohort := enroll.Cohort{ProgramID: prog.ID, Name: "Spring circle", StartsAt: start, EndsAt: start.Add(42 * 24 * time.Hour),
		Timezone: "Europe/London", Capacity: 12, PriceCents: 49700, Currency: "EUR", Status: enroll.CohortOpen}
	if err := env.DB.Create(&cohort).Error; err != nil {
		t.Fatal(err)
	}
	return env, gw, "/v1/cohorts/" + cohort.ID.String() + "/checkout"
}

func checkoutBody(email string) map[string]any {
	return map[string]any{"email": email, "name": "Ada", "disclaimer_accepted": true, "marketing_consent": false}
}

func TestCheckoutIdempotencyKeyReplaysTheFirstAnswer(t *testing.T) {
	env, gw, path := idemCheckoutEnv(t)
	key := apitest.Header("Idempotency-Key", "3b1f6c1e-checkout-1")

	first := env.Send(t, "POST", path, checkoutBody("ada@example.com"), key).Expect(t, 202)
	env.Clock.Advance(time.Minute)
	again := env.Send(t, "POST", path, checkoutBody("ada@example.com"), key).Expect(t, 202)
	if !bytes.Equal(again.Body, first.Body) || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("repeat = %s (replayed %q), want %s", again.Body, again.Header.Get("Idempotent-Replayed"), first.Body)
	}
	// One task, so one email: a double click does not mail her twice.
	if n := env.Count(t, "tasks"); n != 1 {
		t.Fatalf("tasks = %d, want 1", n)
	}
	env.RunTasks(t)
	var links int64
	env.DB.Table("outbox").Where("template = ?", enroll.TemplateCheckoutLink).Count(&links)
	if links != 1 {
		t.Fatalf("checkout emails = %d, want 1", links)
	}

	// Same key, another woman: refused, nothing queued for her.
	env.Do(t, "POST", path, checkoutBody("grace@example.com"), key).ExpectProblem(t, 422, "idempotency_key_reused")
	if n := env.Count(t, "tasks"); n != 0 {
		t.Fatalf("reused key queued %d tasks", n)
	}

	// A bad key is refused before anything runs.
	env.Do(t, "POST", path, checkoutBody("grace@example.com"), apitest.Header("Idempotency-Key", "")).ExpectProblem(t, 400, "invalid_idempotency_key")
	if n := env.Count(t, "tasks"); n != 0 {
		t.Fatalf("bad key queued %d tasks", n)
	}
	if len(gw.Creates()) != 0 {
		t.Fatalf("the form opened %d checkout sessions; only her link may", len(gw.Creates()))
	}
}

func TestCheckoutIdempotencyConcurrentDuplicatesHoldOneSeat(t *testing.T) {
	env, gw, path := idemCheckoutEnv(t)
	body, _ := json.Marshal(checkoutBody("ada@example.com"))
	const n = 12
	var wg sync.WaitGroup
	codes := make([]int, n)
	bodies := make([][]byte, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", "double-click")
			rec := httptest.NewRecorder()
			env.Echo.ServeHTTP(rec, req)
			codes[i], bodies[i] = rec.Code, rec.Body.Bytes()
		}()
	}
	wg.Wait()
	var created []byte
	for i, code := range codes {
		switch code {
		case http.StatusAccepted:
			if created != nil && !bytes.Equal(bodies[i], created) {
				t.Errorf("two different 202s: %s and %s", created, bodies[i])
			}
			created = bodies[i]
		case http.StatusConflict:
			if !bytes.Contains(bodies[i], []byte(`"idempotency_in_progress"`)) {
				t.Errorf("409 %s, want idempotency_in_progress", bodies[i])
			}
		default:
			t.Errorf("status %d: %s", code, bodies[i])
		}
	}
	if created == nil {
		t.Fatal("no request succeeded")
	}
	if n := env.Count(t, "tasks"); n != 1 {
		t.Fatalf("tasks = %d; want 1, so one email", n)
	}
	// Her link, clicked twice at once, still holds one seat, and both
	// clicks are sent to the one recorded session: any second call to
	// Stripe carries the same idempotency key, so Stripe answers the same
	// session to it.
	env.RunTasks(t)
	token, _ := env.EmailData(t, enroll.TemplateCheckoutLink, "ada@example.com")["token"].(string)
	var clicks sync.WaitGroup
	answers := make([]*apitest.Response, 2)
	for i := range answers {
		clicks.Go(func() { answers[i] = env.Do(t, "POST", "/v1/checkout-links/"+token, nil) })
	}
	clicks.Wait()
	var urls []string
	for _, a := range answers {
		var b enrCheckoutBody
		a.JSON(t, &b)
		urls = append(urls, b.CheckoutURL)
	}
	var en enroll.Enrollment
	if err := env.DB.Take(&en).Error; err != nil || en.CheckoutURL == nil {
		t.Fatalf("enrollment %+v, %v", en, err)
	}
	if urls[0] != *en.CheckoutURL || urls[1] != *en.CheckoutURL {
		t.Fatalf("clicks were sent to %v, the recorded session is %s", urls, *en.CheckoutURL)
	}
	if n := env.Count(t, "enrollments"); n != 1 {
		t.Fatalf("enrollments = %d, want 1", n)
	}
	for _, c := range gw.Creates() {
		if c.IdempotencyKey != "checkout:"+en.ID.String() {
			t.Fatalf("session created under key %q", c.IdempotencyKey)
		}
	}
}

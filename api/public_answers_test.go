package api_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grace-coaching/grace/api/apitest"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/enroll"
	"github.com/grace-coaching/grace/models/modelstest"
	"github.com/grace-coaching/grace/models/people"
)

// The five public forms answer every caller alike: whatever the address's
// state, the same status, headers and body, and (TestPublicFormsTakeTheSameTime)
// the same time. What differs is only what her inbox receives afterwards.

// pubWorld is one cohort with a woman in every state, a free program, and
// a coach.
type pubWorld struct {
	env    *apitest.Env
	cohort *enroll.Cohort // open, seats left
	full   *enroll.Cohort // sold out: one seat held, one paid
	prog   *catalog.Program
}

func newPubWorld(t *testing.T) *pubWorld {
	t.Helper()
	env, _ := enrEnv(t)
	w := &pubWorld{env: env, cohort: enrCohort(t, env, 10), full: enrCohort(t, env, 2)}
	w.prog = env.Program(t, "free-workshop", catalog.ProgramPublished, true)
	admin, _ := env.Coach(t, "coach@example.com", people.RoleAdmin)
	// known: a participant with no place anywhere.
	env.Participant(t, "known@example.com")
	for _, c := range []*enroll.Cohort{w.cohort, w.full} {
		// waitlisted
		p := w.participant(t, "waitlisted@example.com")
		pubExec(t, env, `INSERT INTO enrollments (cohort_id, participant_id, status, seat, currency, created_at, updated_at)
			VALUES (?, ?, 'waitlisted', 'none', ?, ?, ?)`, c.ID, p.ID, c.Currency, env.Clock.Now(), env.Clock.Now())
		// holding a seat, through her own link
		env.Checkout(t, c.ID, enrBuyer("holding@example.com"), apitest.FromIP("198.51.100.200")).Expect(t, 201)
		// enrolled
		if _, err := env.Svc.Enroll.AddComplimentary(context.Background(), admin, c.ID, "enrolled@example.com", "En"); err != nil {
			t.Fatal(err)
		}
	}
	// She claimed the free program before.
	env.Do(t, "POST", "/v1/programs/"+w.prog.Slug+"/free-access", freeAccessBody("claimed@example.com", false)).Expect(t, 202)
	pubExec(t, env, `DELETE FROM outbox`)
	pubExec(t, env, `DELETE FROM rate_limits`)
	return w
}

// participant finds or makes the participant with email.
func (w *pubWorld) participant(t *testing.T, email string) *people.Participant {
	t.Helper()
	var p people.Participant
	if err := w.env.DB.Where("email = ?", email).Take(&p).Error; err == nil {
		return &p
	}
	np, _ := w.env.Participant(t, email)
	return np
}

func pubExec(t *testing.T, env *apitest.Env, sql string, args ...any) {
	t.Helper()
	if err := env.DB.Exec(sql, args...).Error; err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// pubStates are the addresses of pubWorld, by state.
var pubStates = []string{"new@example.com", "known@example.com", "waitlisted@example.com", "holding@example.com", "enrolled@example.com", "claimed@example.com", "coach@example.com"}

type pubRoute struct {
	name string
	path func(w *pubWorld) string
	body func(email string) map[string]any
	// want is the template each address is then emailed ("" for none).
	want map[string]string
}

func pubRoutes() []pubRoute {
	buyer := func(email string) map[string]any { return enrBuyer(email) }
	emailOnly := func(email string) map[string]any { return map[string]any{"email": email} }
	waiter := func(email string) map[string]any { return map[string]any{"email": email, "name": "Wren"} }
	return []pubRoute{
		{name: "checkout", path: func(w *pubWorld) string { return "/v1/cohorts/" + w.cohort.ID.String() + "/checkout" }, body: buyer,
			want: map[string]string{"new@example.com": "checkout_link", "known@example.com": "checkout_link", "waitlisted@example.com": "checkout_link",
				"holding@example.com": "checkout_link", "enrolled@example.com": "checkout_already_enrolled", "claimed@example.com": "checkout_link",
				"coach@example.com": "checkout_link"}},
		// A sold-out cohort, so no seat is offered on joining: nobody is
		// emailed, and only those with no place in it are added.
		{name: "waitlist", path: func(w *pubWorld) string { return "/v1/cohorts/" + w.full.ID.String() + "/waitlist" }, body: waiter,
			want: map[string]string{}},
		{name: "free-access claim", path: func(w *pubWorld) string { return "/v1/programs/" + w.prog.Slug + "/free-access" },
			body: func(email string) map[string]any { return freeAccessBody(email, false) },
			want: map[string]string{"new@example.com": "login_link", "known@example.com": "login_link", "waitlisted@example.com": "login_link",
				"holding@example.com": "login_link", "enrolled@example.com": "login_link", "claimed@example.com": "login_link", "coach@example.com": "login_link"}},
		{name: "login link", path: func(*pubWorld) string { return "/v1/portal/login-links" }, body: emailOnly,
			want: map[string]string{"known@example.com": "login_link", "waitlisted@example.com": "login_link", "holding@example.com": "login_link",
				"enrolled@example.com": "login_link", "claimed@example.com": "login_link"}},
		{name: "password reset", path: func(*pubWorld) string { return "/v1/auth/password-resets" }, body: emailOnly,
			want: map[string]string{"coach@example.com": "password_reset"}},
	}
}

// answerShape is what a caller sees of an answer: status, headers (the
// request id aside) and body.
func answerShape(r *apitest.Response) string {
	var hs []string
	for k, v := range r.Header {
		if k == "X-Request-Id" {
			continue
		}
		hs = append(hs, k+": "+strings.Join(v, ","))
	}
	slices.Sort(hs)
	return fmt.Sprintf("%d\n%s\n%s", r.Status, strings.Join(hs, "\n"), r.Body)
}

func TestPublicFormsAnswerEveryAddressAlike(t *testing.T) {
	for _, route := range pubRoutes() {
		t.Run(route.name, func(t *testing.T) {
			w := newPubWorld(t)
			env := w.env
			seatsBefore := fmt.Sprint(enrSeats(t, env, w.cohort.ID))
			var first string
			for i, email := range pubStates {
				res := env.Send(t, "POST", route.path(w), route.body(email), apitest.FromIP(fmt.Sprintf("203.0.113.%d", i+1)))
				shape := answerShape(res)
				if i == 0 {
					first = shape
					if res.Status != http.StatusAccepted {
						t.Fatalf("status %d: %s", res.Status, res.Body)
					}
					continue
				}
				if shape != first {
					t.Fatalf("%s is answered\n%s\nbut %s\n%s", email, shape, pubStates[0], first)
				}
			}
			// Before the worker: nothing a stranger could read has changed.
			if n := env.Count(t, "outbox"); n != 0 {
				t.Fatalf("the form itself enqueued %d emails", n)
			}
			if after := fmt.Sprint(enrSeats(t, env, w.cohort.ID)); after != seatsBefore {
				t.Fatalf("seats moved from %s to %s by the form", seatsBefore, after)
			}
			env.RunTasks(t)

			var sent []struct{ ToEmail, Template string }
			env.DB.Raw(`SELECT to_email, template FROM outbox ORDER BY to_email`).Scan(&sent)
			got := map[string]string{}
			for _, m := range sent {
				if _, dup := got[m.ToEmail]; dup {
					t.Fatalf("%s was emailed twice: %+v", m.ToEmail, sent)
				}
				got[m.ToEmail] = m.Template
			}
			for _, email := range pubStates {
				if got[email] != route.want[email] {
					t.Errorf("%s was emailed %q, want %q", email, got[email], route.want[email])
				}
			}
			if len(got) != len(route.want) {
				t.Errorf("emails %v, want %v", got, route.want)
			}
			if n := env.Count(t, "tasks"); n != 0 {
				t.Errorf("%d tasks left with their payload", n)
			}
			if after := fmt.Sprint(enrSeats(t, env, w.cohort.ID)); after != seatsBefore {
				t.Fatalf("seats moved from %s to %s by the worker", seatsBefore, after)
			}
			if route.name == "waitlist" {
				var waiting []string
				env.DB.Raw(`SELECT p.email FROM enrollments e JOIN participants p ON p.id = e.participant_id
					WHERE e.cohort_id = ? AND e.status = 'waitlisted' ORDER BY 1`, w.full.ID).Scan(&waiting)
				want := []string{"claimed@example.com", "coach@example.com", "known@example.com", "new@example.com", "waitlisted@example.com"}
				if !slices.Equal(waiting, want) {
					t.Errorf("waiting = %v, want %v", waiting, want)
				}
			}
		})
	}
}

// A stranger who types her address learns nothing and can do nothing with
// her checkout: the form answers as for anyone, the link goes to her inbox
// only, and the link (GET) describes without side effects.
func TestCheckoutLinkIsHersAlone(t *testing.T) {
	env, gw := enrEnv(t)
	c := enrCohort(t, env, 3)
	var held enrCheckoutBody
	token := env.CheckoutToken(t, c.ID, enrBuyer("ada@example.com"))
	env.Do(t, "POST", "/v1/checkout-links/"+token, nil).Expect(t, 201).JSON(t, &held)

	// The stranger's form: 202, and her hold is untouched.
	res := env.Send(t, "POST", "/v1/cohorts/"+c.ID.String()+"/checkout", enrBuyer("ada@example.com"), apitest.FromIP("192.0.2.66"))
	res.Expect(t, 202)
	if strings.Contains(string(res.Body), held.EnrollmentID) || strings.Contains(string(res.Body), "checkout") {
		t.Fatalf("the form answered %s", res.Body)
	}
	env.RunTasks(t)
	if paid, h := enrSeats(t, env, c.ID); paid != 0 || h != 1 {
		t.Fatalf("seats paid/held = %d/%d, want her one hold", paid, h)
	}

	// GET describes, many times, changing nothing.
	before := enrRows(t, env)
	var link struct {
		CohortID   string    `json:"cohort_id"`
		CohortName string    `json:"cohort_name"`
		PriceCents int64     `json:"price_cents"`
		Currency   string    `json:"currency"`
		ExpiresAt  time.Time `json:"expires_at"`
	}
	for range 3 {
		env.Do(t, "GET", "/v1/checkout-links/"+token, nil).Expect(t, 200).JSON(t, &link)
	}
	if link.CohortID != c.ID.String() || link.CohortName != c.Name || link.PriceCents != 49700 || link.Currency != "EUR" ||
		!link.ExpiresAt.Equal(env.Clock.Now().Add(enroll.CheckoutLinkTTL)) {
		t.Fatalf("link = %+v", link)
	}
	if after := enrRows(t, env); after != before || len(gw.Creates()) != 1 {
		t.Fatalf("GET changed data:\nbefore %s\nafter  %s", before, after)
	}

	// A guessed, empty-looking or expired token is 404 for GET and POST.
	for _, bad := range []string{"not-a-token", strings.Repeat("A", 43)} {
		env.Do(t, "GET", "/v1/checkout-links/"+bad, nil).ExpectProblem(t, 404, "invalid_checkout_link")
		env.Do(t, "POST", "/v1/checkout-links/"+bad, nil).ExpectProblem(t, 404, "invalid_checkout_link")
	}
	env.Clock.Advance(enroll.CheckoutLinkTTL + time.Second)
	env.Do(t, "GET", "/v1/checkout-links/"+token, nil).ExpectProblem(t, 404, "invalid_checkout_link")
	env.Do(t, "POST", "/v1/checkout-links/"+token, nil).ExpectProblem(t, 404, "invalid_checkout_link")
}

// Sold out by the time she clicks: 409 sold_out with the waitlist, and
// her link still describes what it was for.
func TestCheckoutLinkSoldOutMeanwhile(t *testing.T) {
	env, _ := enrEnv(t)
	c := enrCohort(t, env, 1)
	late := env.CheckoutToken(t, c.ID, enrBuyer("late@example.com"), apitest.FromIP("198.51.100.1"))
	env.Checkout(t, c.ID, enrBuyer("early@example.com"), apitest.FromIP("198.51.100.2")).Expect(t, 201)
	res := env.Do(t, "POST", "/v1/checkout-links/"+late, nil)
	res.ExpectProblem(t, 409, "sold_out")
	var body struct {
		WaitlistURL string `json:"waitlist_url"`
	}
	res.JSON(t, &body)
	if body.WaitlistURL != "/v1/cohorts/"+c.ID.String()+"/waitlist" {
		t.Fatalf("waitlist_url = %q", body.WaitlistURL)
	}
	// And the form itself is now sold out for everyone.
	env.Do(t, "POST", "/v1/cohorts/"+c.ID.String()+"/checkout", enrBuyer("late@example.com")).ExpectProblem(t, 409, "sold_out")
	env.Do(t, "POST", "/v1/cohorts/"+c.ID.String()+"/checkout", enrBuyer("someone@example.com")).ExpectProblem(t, 409, "sold_out")
}

// timedPost times one request through the server, in process (no network
// between): what differs is only the work the handler does.
func timedPost(env *apitest.Env, path, body, ip string) (time.Duration, int) {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.RemoteAddr = ip + ":40000"
	rec := httptest.NewRecorder()
	start := time.Now()
	env.Echo.ServeHTTP(rec, req)
	return time.Since(start), rec.Code
}

// TestPublicFormsTakeTheSameTime: per form, pairs of requests for a known
// and an unknown address (each a fresh address, so no rate limit is
// reached; the order within a pair at random, so warming favours neither),
// on a warm server with the worker's backlog drained between pairs. A
// per-address difference in the answer's work, like the 3 ms a look-up
// and an insert cost before, makes the known request the slower of almost
// every pair (33 of 36 before); here the count must be what a coin gives,
// within 3.3 standard deviations (p < 0.001 two-sided).
func TestPublicFormsTakeTheSameTime(t *testing.T) {
	const pairs = 60
	w := newPubWorld(t)
	env := w.env
	// The known addresses are enrolled (the state that answered 409
	// before) in a cohort with seats to spare, and claimed the free
	// program; the coaches are active. Every request has its own address
	// and network address, so the real rate limits run and never refuse.
	big := enrCohort(t, env, 500)
	var admin people.Coach
	modelstest.MustDo(t, env.DB.Where("email = ?", "coach@example.com").Take(&admin).Error)
	coaches := make([]string, pairs)
	known := make([]string, pairs)
	for i := range pairs {
		known[i] = fmt.Sprintf("known%03d@example.com", i)
		coaches[i] = fmt.Sprintf("coach%03d@example.com", i)
		if _, err := env.Svc.Enroll.AddComplimentary(context.Background(), &admin, big.ID, known[i], "K"); err != nil {
			t.Fatal(err)
		}
		env.Coach(t, coaches[i], people.RoleCoach)
	}
	rng := rand.New(rand.NewPCG(9, 9))
	type form struct {
		name  string
		path  string
		body  func(email string) string
		known []string
	}
	forms := []form{
		{"checkout", "/v1/cohorts/" + big.ID.String() + "/checkout",
			func(e string) string {
				return `{"email":"` + e + `","name":"Ada","disclaimer_accepted":true,"marketing_consent":false}`
			}, known},
		{"waitlist", "/v1/cohorts/" + big.ID.String() + "/waitlist",
			func(e string) string { return `{"email":"` + e + `","name":"Ada"}` }, known},
		{"free-access claim", "/v1/programs/" + w.prog.Slug + "/free-access",
			func(e string) string {
				return `{"email":"` + e + `","name":"Ada","disclaimer_accepted":true,"marketing_consent":false}`
			}, known},
		{"login link", "/v1/portal/login-links", func(e string) string { return `{"email":"` + e + `"}` }, known},
		{"password reset", "/v1/auth/password-resets", func(e string) string { return `{"email":"` + e + `"}` }, coaches},
	}
	ip := 0
	nextIP := func() string { ip++; return fmt.Sprintf("10.9.%d.%d", ip/250, ip%250+1) }
	for _, f := range forms {
		// Warm up: the statements planned, the pool full.
		for i := range 10 {
			timedPost(env, f.path, f.body(fmt.Sprintf("warm-%s-%d@example.com", strings.ReplaceAll(f.name, " ", ""), i)), nextIP())
		}
		env.RunTasks(t)
		var diffs []time.Duration
		var knownTimes, unknownTimes []time.Duration
		slower := 0
		for i := range pairs {
			unknown := fmt.Sprintf("stranger-%s-%03d@example.com", strings.ReplaceAll(f.name, " ", ""), i)
			var dk, du time.Duration
			var ck, cu int
			if rng.IntN(2) == 0 {
				dk, ck = timedPost(env, f.path, f.body(f.known[i]), nextIP())
				du, cu = timedPost(env, f.path, f.body(unknown), nextIP())
			} else {
				du, cu = timedPost(env, f.path, f.body(unknown), nextIP())
				dk, ck = timedPost(env, f.path, f.body(f.known[i]), nextIP())
			}
			if ck != http.StatusAccepted || cu != http.StatusAccepted {
				t.Fatalf("%s: statuses %d (known) and %d (unknown)", f.name, ck, cu)
			}
			diffs = append(diffs, dk-du)
			knownTimes, unknownTimes = append(knownTimes, dk), append(unknownTimes, du)
			if dk > du {
				slower++
			}
			env.RunTasks(t) // the worker's turn, outside the timed answers
		}
		med := func(ds []time.Duration) time.Duration {
			s := slices.Clone(ds)
			slices.Sort(s)
			return s[len(s)/2]
		}
		t.Logf("%-17s median known %v, unknown %v, median paired difference %v; known slower in %d of %d pairs",
			f.name, med(knownTimes), med(unknownTimes), med(diffs), slower, pairs)
		// 3.3 standard deviations of a fair coin over the pairs.
		bound := int(3.3 * 0.5 * math.Sqrt(pairs))
		if slower < pairs/2-bound || slower > pairs/2+bound {
			t.Errorf("%s: known slower in %d of %d pairs, outside %d..%d: a consistent gap (median difference %v)",
				f.name, slower, pairs, pairs/2-bound, pairs/2+bound, med(diffs))
		}
	}
}

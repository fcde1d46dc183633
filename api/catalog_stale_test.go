package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/api"
	"github.com/grace-coaching/grace/api/apitest"
	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/domain"
	"github.com/grace-coaching/grace/models/modelstest"
)

// dbProxy forwards TCP to Postgres until it is cut: then open connections
// break and new ones are refused, as when the server goes away.
type dbProxy struct {
	l     net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func startDBProxy(t *testing.T, target string) *dbProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dbProxy{l: l}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(s, c); s.Close() }()
			go func() { _, _ = io.Copy(c, s); c.Close() }()
		}
	}()
	t.Cleanup(p.cut)
	return p
}

// cut stops listening (new connections are refused) and drops every open one.
func (p *dbProxy) cut() {
	p.l.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// serverBehindDBProxy is an API whose only way to its fresh database is a
// proxy the test can cut.
func serverBehindDBProxy(t *testing.T) (*echo.Echo, *gorm.DB, *models.FakeClock, *dbProxy) {
	t.Helper()
	u, err := url.Parse(modelstest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := startDBProxy(t, u.Host)
	u.Host = proxy.l.Addr().String()
	db, err := models.OpenDB(context.Background(), u.String(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if sqlDB, err := db.DB(); err == nil {
			_ = sqlDB.Close()
		}
	})
	clock := models.NewFakeClock(modelstest.Start)
	e := api.New(api.Config{Service: domain.New(domain.Deps{DB: db, Clock: clock, Limits: modelstest.Limits()})})
	return e, db, clock, proxy
}

// While the database is away the public program page keeps answering its
// last good copy, byte for byte, with an Age header counting from when it
// was built; a page this server never built is a 503.
func TestPublicProgramServesItsLastGoodPageWhileTheDatabaseIsAway(t *testing.T) {
	e, db, clock, proxy := serverBehindDBProxy(t)
	for _, slug := range []string{"say-no-with-grace", "never-read"} {
		p := &catalog.Program{Slug: slug, Title: "Say no", Status: catalog.ProgramPublished, PriceCents: 9700, Currency: "EUR"}
		ok(t, db.Create(p).Error)
		ok(t, db.Create(&catalog.Lesson{ProgramID: p.ID, Position: 1, Title: "One", Body: "b", BodyHTML: "<p>b</p>", Published: true}).Error)
	}
	get := func(path string) *httptest.ResponseRecorder {
		return serve(e, httptest.NewRequest(http.MethodGet, path, nil))
	}
	first := get("/v1/programs/say-no-with-grace")
	if first.Code != http.StatusOK || first.Header().Get("Age") != "" {
		t.Fatalf("page with the database up: %d, Age %q: %s", first.Code, first.Header().Get("Age"), first.Body)
	}

	proxy.cut()
	clock.Advance(90 * time.Second)
	tests := []struct {
		name, path string
		status     int
		age        string
		code       string
	}{
		{"the page built before", "/v1/programs/say-no-with-grace", http.StatusOK, "90", ""},
		{"a page never built", "/v1/programs/never-read", http.StatusServiceUnavailable, "", "service_unavailable"},
		{"an unknown page", "/v1/programs/no-such-program", http.StatusServiceUnavailable, "", "service_unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := get(tt.path)
			if rec.Code != tt.status || rec.Header().Get("Age") != tt.age {
				t.Fatalf("status %d, Age %q; want %d, Age %q: %s", rec.Code, rec.Header().Get("Age"), tt.status, tt.age, rec.Body)
			}
			if tt.code != "" {
				if p := (&apitest.Response{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}).Problem(t); p.Code != tt.code {
					t.Fatalf("code %q, want %q", p.Code, tt.code)
				}
				return
			}
			if rec.Body.String() != first.Body.String() {
				t.Fatalf("stale page differs:\n%s\nwant\n%s", rec.Body, first.Body)
			}
		})
	}
}

// The public list is the catalogue's front door: while the database is away
// each page this server answered before is answered again, byte for byte,
// with an Age header, and free_access_open still follows the clock; a page
// it never answered (another cursor or limit) is a 503. Once Postgres is
// back the list is read fresh again, without Age.
func TestPublicProgramListServesItsLastGoodAnswerWhileTheDatabaseIsAway(t *testing.T) {
	e, db, clock, proxy := serverBehindDBProxy(t)
	// The free window closes two minutes in: a stale list must say so.
	closes := modelstest.Start.Add(2 * time.Minute)
	for i, slug := range []string{"say-no-with-grace", "boundaries", "recovery"} {
		p := &catalog.Program{Slug: slug, Title: "Say no", Status: catalog.ProgramPublished, Currency: "EUR",
			FreeAccessUntil: &closes, CreatedAt: modelstest.Start.Add(time.Duration(i) * time.Second)}
		ok(t, db.Create(p).Error)
	}
	get := func(path string) *httptest.ResponseRecorder {
		return serve(e, httptest.NewRequest(http.MethodGet, path, nil))
	}
	first := get("/v1/programs?limit=2")
	if first.Code != http.StatusOK || first.Header().Get("Age") != "" || !strings.Contains(first.Body.String(), `"free_access_open":true`) {
		t.Fatalf("list with the database up: %d, Age %q: %s", first.Code, first.Header().Get("Age"), first.Body)
	}
	var page struct {
		NextCursor string `json:"next_cursor"`
	}
	ok(t, json.Unmarshal(first.Body.Bytes(), &page))
	next := "/v1/programs?limit=2&cursor=" + url.QueryEscape(page.NextCursor)
	second := get(next)
	if second.Code != http.StatusOK || page.NextCursor == "" {
		t.Fatalf("second page: %d: %s", second.Code, second.Body)
	}

	proxy.cut()
	clock.Advance(90 * time.Second)
	tests := []struct {
		name, path string
		status     int
		age        string
		want       string
	}{
		{"the first page", "/v1/programs?limit=2", http.StatusOK, "90", first.Body.String()},
		{"the next page", next, http.StatusOK, "90", second.Body.String()},
		{"a page size never asked for", "/v1/programs", http.StatusServiceUnavailable, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := get(tt.path)
			if rec.Code != tt.status || rec.Header().Get("Age") != tt.age {
				t.Fatalf("status %d, Age %q; want %d, Age %q: %s", rec.Code, rec.Header().Get("Age"), tt.status, tt.age, rec.Body)
			}
			if tt.status != http.StatusOK {
				if p := (&apitest.Response{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}).Problem(t); p.Code != "service_unavailable" || rec.Header().Get("Retry-After") == "" {
					t.Fatalf("code %q, Retry-After %q", p.Code, rec.Header().Get("Retry-After"))
				}
				return
			}
			if rec.Body.String() != tt.want {
				t.Fatalf("stale list differs:\n%s\nwant\n%s", rec.Body, tt.want)
			}
		})
	}

	// Past the window's end the stale list says it is closed.
	clock.Advance(time.Minute)
	rec := get("/v1/programs?limit=2")
	if rec.Code != http.StatusOK || rec.Header().Get("Age") != "150" || strings.Contains(rec.Body.String(), `"free_access_open":true`) {
		t.Fatalf("stale list after the window closed: %d, Age %q: %s", rec.Code, rec.Header().Get("Age"), rec.Body)
	}
}

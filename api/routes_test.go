package api_test

import (
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"

	"github.com/grace-coaching/grace/api"
	"github.com/grace-coaching/grace/api/apitest"
)

// specOperations lists "METHOD /path" for every operation in api/openapi.yaml.
func specOperations(t *testing.T) []string {
	t.Helper()
	doc, err := libopenapi.NewDocument(api.OpenAPISpec())
	if err != nil {
		t.Fatal(err)
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	for path, item := range model.Model.Paths.PathItems.FromOldest() {
		for method := range item.GetOperations().FromOldest() {
			ops = append(ops, strings.ToUpper(method)+" "+path)
		}
	}
	sort.Strings(ops)
	return ops
}

var echoParam = regexp.MustCompile(`:([a-z_]+)`)

// The contract and the route table must describe the same API: a route the
// spec lacks is invisible to the client teams, and a spec operation with no
// route is a promise we do not keep.
func TestRoutesAndOpenAPIDescribeTheSameAPI(t *testing.T) {
	env := apitest.NewEnv(t)
	var routes []string
	for _, r := range env.Echo.Routes() {
		if r.Method == "echo_route_not_found" || strings.HasSuffix(r.Path, "/*") {
			continue
		}
		routes = append(routes, r.Method+" "+echoParam.ReplaceAllString(r.Path, "{$1}"))
	}
	sort.Strings(routes)
	spec := specOperations(t)
	inSpec := map[string]bool{}
	for _, op := range spec {
		inSpec[op] = true
	}
	inRoutes := map[string]bool{}
	for _, r := range routes {
		inRoutes[r] = true
		if !inSpec[r] {
			t.Errorf("route %s is not in api/openapi.yaml", r)
		}
	}
	for _, op := range spec {
		if !inRoutes[op] {
			t.Errorf("api/openapi.yaml describes %s but no route serves it", op)
		}
	}
}

func TestOpsEndpoints(t *testing.T) {
	env := apitest.NewEnv(t)
	env.Do(t, "GET", "/healthz", nil).Expect(t, 200)
	// No readiness probe is wired in the test server, so it must say not ready
	// rather than pretend.
	env.Do(t, "GET", "/readyz", nil).ExpectProblem(t, 503, "not_ready")

	res := env.Do(t, "GET", "/openapi.yaml", nil).Expect(t, 200)
	if !strings.HasPrefix(string(res.Body), "openapi: 3.1") {
		t.Fatalf("/openapi.yaml does not serve the spec: %.60s", res.Body)
	}
	res = env.Do(t, "GET", "/docs", nil).Expect(t, 200)
	if !strings.Contains(string(res.Body), "/openapi.yaml") {
		t.Fatal("/docs does not render the spec")
	}
}

// Requests outside the contract still get problem+json, never an HTML page
// or an empty body; they bypass env.Do because the spec rightly lacks them.
func TestUnknownRoutesAnswerProblems(t *testing.T) {
	env := apitest.NewEnv(t)
	tests := []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/v1/nope", 404, "route_not_found"},
		{"DELETE", "/v1/programs", 405, "method_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			env.Echo.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
			res := &apitest.Response{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
			p := res.ExpectProblem(t, tt.status, tt.code)
			if p.RequestID == "" || p.RequestID != rec.Header().Get("X-Request-Id") {
				t.Errorf("problem request_id %q does not match the X-Request-Id header %q", p.RequestID, rec.Header().Get("X-Request-Id"))
			}
		})
	}
}

// A well-formed body with a value in the wrong format is the client's value
// to fix (422), distinct from a body that is not JSON at all (400).
func TestBindErrorsSeparateSyntaxFromValues(t *testing.T) {
	env := apitest.NewEnv(t)
	_, token := env.Coach(t, "bind@example.com", "coach")
	tests := []struct {
		name   string
		body   string
		status int
		code   string
	}{
		{"not json", `{"slug":`, 400, "malformed_json"},
		{"two objects", `{} {}`, 400, "malformed_json"},
		{"unknown field", `{"slug":"a","title":"A","colour":"red"}`, 400, "unknown_field"},
		{"wrong type", `{"slug":"a","title":"A","price_cents":"ten"}`, 422, "validation_failed"},
		{"bad date", `{"slug":"a","title":"A","free_access_until":"next week"}`, 422, "validation_failed"},
		{"not an object", `[1,2]`, 400, "malformed_json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env.Do(t, "POST", "/v1/admin/programs", tt.body, apitest.Token(token)).ExpectProblem(t, tt.status, tt.code)
			if n := env.Count(t, "programs"); n != 0 {
				t.Fatalf("%d programs written by a refused request", n)
			}
		})
	}
}

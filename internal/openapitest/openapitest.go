// Package openapitest checks HTTP exchanges against an OpenAPI document: the
// API tests check Grace's answers against api/openapi.yaml, and the fake
// Resend in emails/emailstest checks the requests it receives against
// Resend's description. It sits at the top of the tree, not in api/apitest,
// because emails/ needs it too and may not import api/.
package openapitest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	verrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/helpers"
	"github.com/pb33f/libopenapi-validator/router"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
)

// Checker validates recorded HTTP exchanges against an OpenAPI document.
// It is safe for concurrent use.
type Checker struct {
	// The validator's caches are concurrency-safe, but its request handling
	// swaps bodies and context state in and out; serialising is cheap next to
	// an HTTP round trip and leaves nothing to reason about.
	mu        sync.Mutex
	router    router.Router
	validator validator.Validator
}

// New parses an OpenAPI 3.x document and prepares it for checking.
// The document's servers are ignored: requests are matched on their path
// alone, so an exchange with a test server on 127.0.0.1 matches a spec whose
// server is https://api.example.com (or https://api.example.com/v2).
func New(spec []byte) (*Checker, error) {
	doc, err := libopenapi.NewDocument(spec)
	if err != nil {
		return nil, fmt.Errorf("openapitest: parse OpenAPI document: %w", err)
	}
	built, err := doc.BuildV3Model()
	if err != nil {
		return nil, fmt.Errorf("openapitest: build OpenAPI model: %w", err)
	}
	model := &built.Model
	dropServers(model)
	return &Checker{
		router: router.NewRouter(model, router.WithPathOnlyMatching()),
		// Without format assertions a "uuid" or "date-time" field would
		// accept any string.
		validator: validator.NewValidatorFromV3Model(model, config.WithFormatAssertions()),
	}, nil
}

// Path-only matching still strips a server's base path, so a spec served
// under /v2 would not match a test server's /emails. Dropping the servers
// makes the request path the only thing matched.
func dropServers(model *v3.Document) {
	model.Servers = nil
	if model.Paths == nil || model.Paths.PathItems == nil {
		return
	}
	for pair := model.Paths.PathItems.First(); pair != nil; pair = pair.Next() {
		item := pair.Value()
		item.Servers = nil
		for op := item.GetOperations().First(); op != nil; op = op.Next() {
			op.Value().Servers = nil
		}
	}
}

// Check validates one exchange. req supplies the method, URL and headers (its
// Body is ignored: the bytes sent are reqBody). The request (path, query,
// headers, security and body) is checked only when checkRequest is true; pass
// false when the test deliberately sends something the spec forbids — a
// malformed or invalid body, a bad query parameter, a missing token — to see
// how the server refuses it. The operation must exist either way.
//
// The response must have a status the operation documents explicitly (a
// `default` response stands in only for 5xx), a body exactly when the
// documented response has content, a documented Content-Type, the documented
// headers, and a body that matches the schema.
func (c *Checker) Check(req *http.Request, reqBody []byte, status int, respHeader http.Header, respBody []byte, checkRequest bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()

	route, err := c.findRoute(req)
	if err != nil {
		return err
	}
	label := req.Method + " " + req.URL.Path
	var problems []string
	if checkRequest {
		problems = append(problems, c.requestProblems(req, reqBody, route)...)
	}

	op := route.Operation
	documented, explicit := documentedResponse(op, status)
	switch {
	case documented == nil:
		problems = append(problems, fmt.Sprintf("response status %d is not documented (documented: %s)", status, documentedStatuses(op)))
	case !explicit && status < 500:
		problems = append(problems, fmt.Sprintf("response status %d is not documented; `default` only covers unexpected 5xx errors (documented: %s)", status, documentedStatuses(op)))
	default:
		hasContent := documented.Content != nil && documented.Content.Len() > 0
		if hasContent && len(respBody) == 0 {
			problems = append(problems, fmt.Sprintf("response %d has no body but the spec documents one", status))
		}
		if !hasContent && len(respBody) > 0 {
			problems = append(problems, fmt.Sprintf("response %d has a body but the spec documents none: %.200s", status, respBody))
		}
	}

	if respHeader == nil {
		respHeader = http.Header{}
	}
	resp := &http.Response{
		StatusCode: status,
		Header:     respHeader,
		Body:       http.NoBody,
	}
	if len(respBody) > 0 {
		resp.Body = io.NopCloser(bytes.NewReader(respBody))
	}
	resp.Request = cloneRequest(req, reqBody)
	if ok, errs := c.validator.GetResponseBodyValidator().ValidateResponseBodyWithPathItem(resp.Request, resp, route.PathItem, route.Path); !ok {
		for _, e := range errs {
			// Already reported above, in terms of this package's stricter rule.
			if e.ValidationSubType == helpers.ResponseBodyResponseCode || (e.ValidationType == "response" && e.ValidationSubType == "object") {
				continue
			}
			problems = append(problems, "response: "+Describe(e))
		}
	}

	if len(problems) > 0 {
		return fmt.Errorf("%s (spec %s) -> %d violates the OpenAPI spec:\n  - %s", label, route.Path, status, strings.Join(problems, "\n  - "))
	}
	return nil
}

// CheckRequestOnly validates an outgoing request (path, query, headers,
// security and body) against the spec, for clients of third-party APIs whose
// responses are faked by the test.
func (c *Checker) CheckRequestOnly(req *http.Request, body []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()

	route, err := c.findRoute(req)
	if err != nil {
		return err
	}
	if problems := c.requestProblems(req, body, route); len(problems) > 0 {
		return fmt.Errorf("%s %s (spec %s) violates the OpenAPI spec:\n  - %s", req.Method, req.URL.Path, route.Path, strings.Join(problems, "\n  - "))
	}
	return nil
}

func (c *Checker) findRoute(req *http.Request) (*router.Route, error) {
	route, err := c.router.FindRoute(req)
	switch {
	case errors.Is(err, router.ErrMethodNotAllowed):
		return nil, fmt.Errorf("%s %s: the spec has path %s but no %s operation on it", req.Method, req.URL.Path, route.Path, req.Method)
	case err != nil || route == nil || route.Operation == nil:
		return nil, fmt.Errorf("%s %s: no such path in the spec", req.Method, req.URL.Path)
	}
	// Path-only matching forgives a trailing slash; the servers under test
	// do not, so neither does the contract.
	if strings.HasSuffix(route.Path, "/") != strings.HasSuffix(req.URL.Path, "/") {
		return nil, fmt.Errorf("%s %s: no such path in the spec (trailing slash; the spec has %s)", req.Method, req.URL.Path, route.Path)
	}
	return route, nil
}

func (c *Checker) requestProblems(req *http.Request, body []byte, route *router.Route) []string {
	ok, errs := c.validator.ValidateHttpRequestSyncWithPathItem(cloneRequest(req, body), route.PathItem, route.Path)
	if ok {
		return nil
	}
	problems := make([]string, 0, len(errs))
	for _, e := range errs {
		problems = append(problems, "request: "+Describe(e))
	}
	return problems
}

// documentedResponse finds the response the spec gives for status, and
// whether it was listed by code (or code range) rather than as `default`.
func documentedResponse(op *v3.Operation, status int) (*v3.Response, bool) {
	if op.Responses == nil {
		return nil, false
	}
	if op.Responses.Codes != nil {
		code := strconv.Itoa(status)
		for _, key := range []string{code, code[:1] + "XX", code[:1] + "xx"} {
			if r, ok := op.Responses.Codes.Get(key); ok && r != nil {
				return r, true
			}
		}
	}
	if op.Responses.Default != nil {
		return op.Responses.Default, false
	}
	return nil, false
}

func documentedStatuses(op *v3.Operation) string {
	var codes []string
	if op.Responses != nil && op.Responses.Codes != nil {
		for pair := op.Responses.Codes.First(); pair != nil; pair = pair.Next() {
			codes = append(codes, pair.Key())
		}
	}
	if op.Responses != nil && op.Responses.Default != nil {
		codes = append(codes, "default")
	}
	return strings.Join(codes, ", ")
}

// The validator reads and replaces bodies and attaches routing state to the
// request's context, so each validation gets its own copy.
func cloneRequest(req *http.Request, body []byte) *http.Request {
	r := req.Clone(req.Context())
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	if len(body) == 0 {
		r.Body = http.NoBody
	}
	return r
}

// Describe renders a validation error without the rendered schema and
// document the library attaches, which drown the actual reason.
func Describe(e *verrors.ValidationError) string {
	var b strings.Builder
	b.WriteString(e.Message)
	if e.Reason != "" && e.Reason != e.Message {
		b.WriteString(": ")
		b.WriteString(e.Reason)
	}
	for _, f := range e.SchemaValidationErrors {
		b.WriteString("\n      ")
		if f.FieldPath != "" {
			b.WriteString(f.FieldPath)
			b.WriteString(": ")
		} else if f.KeywordLocation != "" {
			b.WriteString(f.KeywordLocation)
			b.WriteString(": ")
		}
		b.WriteString(f.Reason)
	}
	return b.String()
}

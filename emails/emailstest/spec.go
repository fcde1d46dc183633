package emailstest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	verrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/router"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
)

// The Resend OpenAPI description lives beside the repository, never in it:
// ../shared/specs/resend.openapi.yaml relative to the directory holding
// go.mod.
const specRelPath = "../shared/specs/resend.openapi.yaml"

// specChecker validates requests against Resend's OpenAPI description.
type specChecker struct {
	// The validator swaps request bodies and context state in and out;
	// serialising is cheap next to an HTTP round trip.
	mu        sync.Mutex
	router    router.Router
	validator validator.Validator
}

var (
	specOnce    sync.Once
	specShared  *specChecker
	specMissing string // why there is no checker, when the file is absent
	specErr     error
)

// loadSpec parses the description once per test binary. A missing file is
// not an error (the reason is returned for the test log); an unreadable or
// unparsable one is.
func loadSpec() (*specChecker, string, error) {
	specOnce.Do(func() {
		path, err := specPath()
		if err != nil {
			specErr = err
			return
		}
		raw, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			specMissing = fmt.Sprintf("Resend OpenAPI description not found at %s; requests to the fake Resend are not checked against it", path)
			return
		}
		if err != nil {
			specErr = fmt.Errorf("emailstest: read %s: %w", path, err)
			return
		}
		specShared, specErr = newSpecChecker(raw)
	})
	return specShared, specMissing, specErr
}

func specPath() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("emailstest: working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, filepath.FromSlash(specRelPath)), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("emailstest: no go.mod above the working directory")
		}
		dir = parent
	}
}

func newSpecChecker(spec []byte) (*specChecker, error) {
	doc, err := libopenapi.NewDocument(spec)
	if err != nil {
		return nil, fmt.Errorf("emailstest: parse Resend OpenAPI: %w", err)
	}
	built, err := doc.BuildV3Model()
	if err != nil {
		return nil, fmt.Errorf("emailstest: build Resend OpenAPI model: %w", err)
	}
	model := &built.Model
	dropServers(model)
	return &specChecker{
		router:    router.NewRouter(model, router.WithPathOnlyMatching()),
		validator: validator.NewValidatorFromV3Model(model, config.WithFormatAssertions()),
	}, nil
}

// The spec's server is https://api.resend.com; the fake listens on
// 127.0.0.1. Without servers, requests are matched on their path alone.
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

// check returns every way req (with body) departs from the description.
func (c *specChecker) check(req *http.Request, body []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()

	route, err := c.router.FindRoute(req)
	if err != nil || route == nil || route.Operation == nil {
		return fmt.Errorf("%s %s: no such operation in Resend's OpenAPI description", req.Method, req.URL.Path)
	}
	r := req.Clone(req.Context())
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	ok, errs := c.validator.ValidateHttpRequestSyncWithPathItem(r, route.PathItem, route.Path)
	if ok {
		return nil
	}
	problems := make([]string, 0, len(errs))
	for _, e := range errs {
		problems = append(problems, describe(e))
	}
	return fmt.Errorf("%s %s violates Resend's OpenAPI description:\n  - %s", req.Method, req.URL.Path, strings.Join(problems, "\n  - "))
}

// describe drops the rendered schema the library attaches to each error.
func describe(e *verrors.ValidationError) string {
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
		}
		b.WriteString(f.Reason)
	}
	return b.String()
}

package emailstest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/grace-coaching/grace/internal/openapitest"
)

// The Resend OpenAPI description lives beside the repository, never in it:
// ../shared/specs/resend.openapi.yaml relative to the directory holding
// go.mod.
const specRelPath = "../shared/specs/resend.openapi.yaml"

var (
	specOnce    sync.Once
	specShared  *openapitest.Checker
	specMissing string // why there is no checker, when the file is absent
	specErr     error
)

// loadSpec parses the description once per test binary. A missing file is
// not an error (the reason is returned for the test log); an unreadable or
// unparsable one is.
func loadSpec() (*openapitest.Checker, string, error) {
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
		specShared, specErr = openapitest.New(raw)
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

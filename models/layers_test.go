package models_test

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/grace-coaching/grace"

// rooms are the domain packages from the bottom up: each may import only
// the rooms below it, so an arrow that runs back up fails here (the Go
// compiler would only catch a full cycle).
var rooms = []string{
	module + "/models",
	module + "/models/catalog",
	module + "/models/people",
	module + "/models/journal",
	module + "/models/enroll",
	module + "/models/drip",
	module + "/models/privacy",
	module + "/models/domain",
}

// goList runs `go list` over the whole module and returns, for each
// package, the list printed by field (Imports or Deps, the transitive
// closure) of its production code.
func goList(t *testing.T, field string) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join ."+field+" \" \"}}", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	pkgs := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		pkgs[f[0]] = f[1:]
	}
	if len(pkgs) < len(rooms) {
		t.Fatalf("go list saw %d packages", len(pkgs))
	}
	return pkgs
}

func rank(pkg string) int {
	for i, r := range rooms {
		if pkg == r {
			return i
		}
	}
	return -1
}

func under(pkg, dir string) bool {
	return pkg == module+"/"+dir || strings.HasPrefix(pkg, module+"/"+dir+"/")
}

func TestDomainArrowsRunOneWay(t *testing.T) {
	for pkg, deps := range goList(t, "Deps") {
		r := rank(pkg)
		for _, d := range deps {
			if r >= 0 {
				if dr := rank(d); dr > r || (under(d, "models") && dr < 0) {
					t.Errorf("%s depends on %s, which is above it (or outside the rooms)", pkg, d)
				}
			}
			if under(pkg, "models") && (under(d, "api") || under(d, "emails")) {
				t.Errorf("%s depends on %s: models/ never imports api/ or emails/", pkg, d)
			}
			if under(pkg, "emails") && under(d, "api") {
				t.Errorf("%s depends on %s: emails/ never imports api/", pkg, d)
			}
		}
	}
}

// Each SDK has one adapter package, so its types cannot leak into the
// domain; Echo stays in the HTTP layer (the bench's bare baseline server
// is the one other user).
func TestSDKsHaveOneImporter(t *testing.T) {
	owners := map[string]func(pkg string) bool{
		"github.com/stripe/stripe-go/v76": func(p string) bool { return under(p, "api/stripe") }, // the adapter and its test kit
		"github.com/resend/resend-go/v2":  func(p string) bool { return p == module+"/emails" },
		"github.com/labstack/echo/v4":     func(p string) bool { return under(p, "api") || under(p, "cmd") || under(p, "bench") },
	}
	for pkg, imports := range goList(t, "Imports") {
		for _, imp := range imports {
			for sdk, allowed := range owners {
				if (imp == sdk || strings.HasPrefix(imp, sdk+"/")) && !allowed(pkg) {
					t.Errorf("%s imports %s", pkg, imp)
				}
			}
		}
	}
}

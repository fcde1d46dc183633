package apitest

import (
	"os"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"

	"github.com/grace-coaching/grace/internal/openapitest"
)

func TestGraceSpecIsAValidDocument(t *testing.T) {
	spec, err := os.ReadFile("../openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := libopenapi.NewDocument(spec)
	if err != nil {
		t.Fatal(err)
	}
	if v := doc.GetVersion(); v != "3.1.0" {
		t.Errorf("openapi version %q, want 3.1.0", v)
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		t.Fatalf("building the model: %v", err)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Error(openapitest.Describe(e))
		}
	}

	// Every operation is documented well enough to be checked and read.
	ids := map[string]string{}
	for p := model.Model.Paths.PathItems.First(); p != nil; p = p.Next() {
		for o := p.Value().GetOperations().First(); o != nil; o = o.Next() {
			op, where := o.Value(), strings.ToUpper(o.Key())+" "+p.Key()
			if op.OperationId == "" || len(op.Tags) != 1 || op.Summary == "" {
				t.Errorf("%s: needs an operationId, one tag and a summary", where)
			}
			if prev, dup := ids[op.OperationId]; dup {
				t.Errorf("%s: operationId %q already used by %s", where, op.OperationId, prev)
			}
			ids[op.OperationId] = where
			if op.Responses == nil || op.Responses.Default == nil {
				t.Errorf("%s: no default (5xx) response", where)
			}
		}
	}
	if len(ids) != 101 { // 77 + checkout link (2) + discreet, pause, crisis (4) + reflections (5) + opt-in and sign-out (4) + access logs (2) + data rights (7)
		t.Errorf("%d operations, want 101", len(ids))
	}
}

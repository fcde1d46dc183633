// Package apitest holds helpers shared by the HTTP tests of several packages.
package apitest

import "github.com/grace-coaching/grace/internal/openapitest"

// SpecChecker validates recorded HTTP exchanges against an OpenAPI document.
// It is openapitest's checker under the name the API tests already use: the
// fake Resend in emails/ checks with the same one, and emails/ may not
// import api/.
type SpecChecker = openapitest.Checker

// NewSpecChecker parses an OpenAPI 3.x document; see openapitest.New.
func NewSpecChecker(spec []byte) (*SpecChecker, error) { return openapitest.New(spec) }

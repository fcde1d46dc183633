package apitest

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// The public forms (checkout, waitlist, free access, sign-in links, password
// resets) answer at once and leave their per-address work to the task
// worker; these helpers do what the worker and her inbox would.

// RunTasks runs every due task, as the task worker would after the answer,
// and returns how many completed.
func (e *Env) RunTasks(t testing.TB) int {
	t.Helper()
	n, err := e.Svc.Kernel.RunTasksOnce(context.Background())
	if err != nil {
		t.Fatalf("run tasks: %v", err)
	}
	return n
}

// EmailData is the data of the newest outbox email of template to the
// address, or nil if there is none.
func (e *Env) EmailData(t testing.TB, template, to string) map[string]any {
	t.Helper()
	var rows []struct {
		Data map[string]any `gorm:"serializer:json"`
	}
	err := e.DB.Raw(`SELECT data FROM outbox WHERE template = ? AND to_email = ? ORDER BY created_at DESC, id DESC LIMIT 1`,
		template, to).Scan(&rows).Error
	if err != nil {
		t.Fatalf("read outbox: %v", err)
	}
	if len(rows) == 0 {
		return nil
	}
	return rows[0].Data
}

// CheckoutToken fills in the checkout form of cohortID for the address in
// body (answered 202), runs the worker, and returns the token of the
// checkout link emailed to her.
func (e *Env) CheckoutToken(t testing.TB, cohortID uuid.UUID, body map[string]any, opts ...Option) string {
	t.Helper()
	e.Do(t, "POST", "/v1/cohorts/"+cohortID.String()+"/checkout", body, opts...).Expect(t, 202)
	email, _ := body["email"].(string)
	email = strings.ToLower(strings.TrimSpace(email))
	var tokens []string
	err := e.DB.Raw(`SELECT data->>'token' FROM outbox WHERE template = 'checkout_link' AND to_email = ? AND data->>'cohort_id' = ?
		ORDER BY created_at DESC LIMIT 1`, email, cohortID.String()).Scan(&tokens).Error
	if err != nil {
		t.Fatalf("read outbox: %v", err)
	}
	if len(tokens) == 0 || tokens[0] == "" {
		t.Fatalf("no checkout link for cohort %s was emailed to %s", cohortID, email)
	}
	return tokens[0]
}

// Checkout is the whole booking: the form, the email, and her click on its
// link (POST /v1/checkout-links/{token}), whose answer it returns.
func (e *Env) Checkout(t testing.TB, cohortID uuid.UUID, body map[string]any, opts ...Option) *Response {
	t.Helper()
	token := e.CheckoutToken(t, cohortID, body, opts...)
	return e.Do(t, "POST", "/v1/checkout-links/"+token, nil, opts...)
}

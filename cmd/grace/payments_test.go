package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/grace-coaching/grace/api/apitest"
	"github.com/grace-coaching/grace/api/stripe/stripetest"
)

// TestPaymentsWiring boots the server with each Stripe configuration and
// checks what the webhook endpoint and the boot log say.
func TestPaymentsWiring(t *testing.T) {
	const secret = "whsec_wiring_test"
	mock := stripetest.StartMock(t)
	tests := []struct {
		name           string
		env            map[string]string
		log            string
		signedStatus   int // a correctly signed event
		unsignedStatus int
	}{
		{"no key: dev mode", map[string]string{}, "DEV MODE, STRIPE_SECRET_KEY is not set", 503, 503},
		{"key without webhook secret", map[string]string{"STRIPE_SECRET_KEY": "sk_test_123", "STRIPE_API_URL": mock}, "STRIPE_WEBHOOK_SECRET is not set", 503, 503},
		{"fully configured", map[string]string{"STRIPE_SECRET_KEY": "sk_test_123", "STRIPE_API_URL": mock, "STRIPE_WEBHOOK_SECRET": secret}, "Stripe checkout enabled", 200, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := bootEnv(t, EnvDev, "", "")
			for k, v := range tt.env {
				env[k] = v
			}
			cfg, err := loadConfig(envOf(env))
			if err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			a, err := openApp(context.Background(), cfg, newLogger(&lockedWriter{w: &logs}, cfg.LogLevel), true)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = a.Close() })
			if err := a.startHTTP(); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(logs.String(), tt.log) {
				t.Errorf("boot log lacks %q:\n%s", tt.log, logs.String())
			}
			if strings.Contains(logs.String(), "sk_test_123") || strings.Contains(logs.String(), secret) {
				t.Errorf("boot log leaks a Stripe secret:\n%s", logs.String())
			}

			// An event type the domain ignores: accepted once verified.
			payload := stripetest.GenericEvent("evt_wiring", "customer.created", map[string]any{"id": "cus_1", "object": "customer"})
			url := "http://" + a.Addr() + "/v1/webhooks/stripe"
			if got := postWebhook(t, url, payload, stripetest.SignTestPayload(payload, secret, time.Time{})); got != tt.signedStatus {
				t.Errorf("signed event: status %d, want %d", got, tt.signedStatus)
			}
			if got := postWebhook(t, url, payload, stripetest.SignTestPayload(payload, "whsec_forged", time.Time{})); got != tt.unsignedStatus {
				t.Errorf("forged event: status %d, want %d", got, tt.unsignedStatus)
			}
		})
	}
}

func postWebhook(t *testing.T, url string, payload []byte, sig string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(payload))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", sig)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	apitest.Record(t, http.MethodPost, req.URL.RequestURI(), payload, res.StatusCode, res.Header, raw)
	return res.StatusCode
}

package emails_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/grace-coaching/grace/emails"
)

func TestDevSenderLogsTheLoginLink(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	rendered, err := newRenderer(t).Render("login_link", "Ana", map[string]any{"token": "tok-dev", "code": "654321", "expires_minutes": 10})
	if err != nil {
		t.Fatal(err)
	}

	id, err := emails.DevSender{Log: log}.Send(context.Background(), emails.Message{
		ID: "row-1", From: "Grace <hello@grace.example>", To: "ana@example.com",
		Subject: rendered.Subject, HTML: rendered.HTML, Text: rendered.Text,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(id, "dev-") || len(id) != len("dev-")+36 {
		t.Fatalf("provider id %q, want dev-<uuid>", id)
	}

	var entry map[string]any
	if err := json.Unmarshal(buf.Bytes(), &entry); err != nil {
		t.Fatalf("want one JSON log line, got %q: %v", buf.String(), err)
	}
	if entry["level"] != "INFO" || entry["to"] != "ana@example.com" || entry["subject"] != rendered.Subject ||
		entry["outbox_id"] != "row-1" || entry["provider_id"] != id {
		t.Errorf("log entry %v", entry)
	}
	text, _ := entry["text"].(string)
	if !strings.Contains(text, "https://app.grace.example/login?token=tok-dev") || !strings.Contains(text, "654321") {
		t.Errorf("the logged body lacks the link or the code: %q", text)
	}
}

package emails_test

import (
	"testing"
)

// A coach's test send arrives rendered by emails/drip: it goes out exactly
// as rendered, its subject marked as a test and kept to one line.
func TestRenderDripTestPassesContentThrough(t *testing.T) {
	r := newRenderer(t)
	html := "<!DOCTYPE html><html><body><p>Dear Maya &amp; friends</p></body></html>"
	out, err := r.Render("drip_test", "", map[string]any{
		"subject": "Welcome,\r\nMaya", "html": html, "text": "Dear Maya & friends\n", "step_id": "s-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	if out.Subject != "[Test] Welcome, Maya" || out.HTML != html || out.Text != "Dear Maya & friends\n" {
		t.Errorf("rendered %+v", out)
	}
	for _, data := range []map[string]any{
		{"subject": "s", "html": "h"},
		{"subject": "s", "html": "h", "text": 3},
	} {
		if _, err := r.Render("drip_test", "", data); err == nil {
			t.Errorf("rendered incomplete data %v", data)
		}
	}
}

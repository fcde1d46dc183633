package enroll_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/google/uuid"

	"github.com/grace-coaching/grace/models/enroll"
	"github.com/grace-coaching/grace/models/modelstest"
)

// storedEvent is a stripe_events row as the tests read it back.
type storedEvent struct {
	ID             string
	Payload        []byte
	PayloadRaw     []byte
	RejectedReason *string
	AppliedAt      *string
}

func (w *payWorld) storedEvents(t testing.TB) []storedEvent {
	t.Helper()
	var rows []storedEvent
	modelstest.MustDo(t, w.db.Raw(`SELECT id, payload::text AS payload, payload_raw, rejected_reason, applied_at::text AS applied_at
		FROM stripe_events ORDER BY received_at, id`).Scan(&rows).Error)
	return rows
}

// Text PostgreSQL refuses, anywhere in a signed event, is stored (a
// sanitised copy beside the signed bytes) and acknowledged, never an error
// that makes the provider redeliver it forever. Where it sits in a field
// the domain reads, the event is kept as rejected and changes nothing;
// elsewhere the event still applies.
func TestPaymentEventWithUnstorableTextIsKept(t *testing.T) {
	// Each bad text as the payload carries it, and as the provider's parser
	// (encoding/json) hands it over in a field: a lone surrogate decodes to
	// U+FFFD, valid text, so only the payload needs cleaning.
	type bad struct{ name, json, text string }
	bads := []bad{
		{"NUL escape", `\u0000`, "\x00"},
		{"lone surrogate", `\ud800`, "\uFFFD"},
		{"invalid UTF-8", "\xff\xfe", "\xff\xfe"},
	}
	for _, b := range bads {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			tests := []struct {
				name  string
				event func(id uuid.UUID) enroll.PaymentEvent
				// field is the one named when the decoded text is unusable.
				field string
			}{
				{name: "in a field nobody reads", event: func(id uuid.UUID) enroll.PaymentEvent {
					ev := completed("evt_paid", 0, id, "paid", 9700)
					ev.Payload = []byte(`{"id":"evt_paid","data":{"object":{"customer_details":{"name":"A` + b.json + `"}}}}`)
					return ev
				}},
				{name: "in the event id", field: "id", event: func(id uuid.UUID) enroll.PaymentEvent {
					ev := completed("evt_"+b.text, 0, id, "paid", 9700)
					ev.Payload = []byte(`{"id":"evt_` + b.json + `"}`)
					return ev
				}},
				{name: "in the payment intent", field: "session.payment_intent", event: func(id uuid.UUID) enroll.PaymentEvent {
					ev := completed("evt_paid", 0, id, "paid", 9700)
					ev.Session.PaymentIntentID = "pi_" + b.text
					ev.Payload = []byte(`{"id":"evt_paid","data":{"object":{"payment_intent":"pi_` + b.json + `"}}}`)
					return ev
				}},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					w := newPayWorld(t, 5)
					e := w.hold(t, uuid.New(), "amira@example.test", testSession)
					ev := tc.event(e.ID)
					reason := ""
					if tc.field != "" && b.text != "\uFFFD" {
						reason = enroll.RejectUnstorableText + ": " + tc.field
					}
					applied := reason == ""
					for range 2 { // a redelivery finds the row it left
						modelstest.MustDo(t, w.svc.Enroll.ApplyPaymentEvent(ctx, ev))
					}
					rows := w.storedEvents(t)
					if len(rows) != 1 {
						t.Fatalf("%d events stored, want 1", len(rows))
					}
					row := rows[0]
					if !bytes.Equal(row.PayloadRaw, ev.Payload) {
						t.Errorf("payload_raw = %q, want the signed bytes %q", row.PayloadRaw, ev.Payload)
					}
					if !json.Valid(row.Payload) {
						t.Errorf("payload %q is not readable JSON", row.Payload)
					}
					if got := ""; row.RejectedReason != nil {
						got = *row.RejectedReason
						if got != reason {
							t.Errorf("rejected_reason = %q, want %q", got, reason)
						}
					} else if reason != "" {
						t.Errorf("rejected_reason is NULL, want %q", reason)
					}
					st := w.state(t, e.ID).Enrollment.Status
					if want := map[bool]enroll.EnrollmentStatus{true: enroll.EnrollmentActive, false: enroll.EnrollmentPending}[applied]; st != want {
						t.Errorf("status = %s, want %s", st, want)
					}
					if (row.AppliedAt != nil) != applied {
						t.Errorf("applied_at = %v, want applied %v", row.AppliedAt, applied)
					}
				})
			}
		})
	}
}

// A clean payload is stored as it came, with no second copy.
func TestPaymentEventCleanPayloadKeepsNoRawCopy(t *testing.T) {
	w := newPayWorld(t, 5)
	e := w.hold(t, uuid.New(), "amira@example.test", testSession)
	ev := completed("evt_paid", 0, e.ID, "paid", 9700)
	ev.Payload = []byte(`{"id":"evt_paid","note":"caf\u00e9 \\u0000 \ud83d\ude00"}`)
	modelstest.MustDo(t, w.svc.Enroll.ApplyPaymentEvent(context.Background(), ev))
	rows := w.storedEvents(t)
	if len(rows) != 1 || rows[0].PayloadRaw != nil || rows[0].RejectedReason != nil {
		t.Fatalf("rows = %+v, want one with no raw copy and no rejection", rows)
	}
	var doc map[string]any
	modelstest.MustDo(t, json.Unmarshal(rows[0].Payload, &doc))
	if doc["note"] != "café \\u0000 😀" {
		t.Errorf("note = %q, want it unchanged", doc["note"])
	}
}

package drip_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/drip"
	"github.com/grace-coaching/grace/models/modelstest"
	"github.com/grace-coaching/grace/models/people"
)

func TestSuppressionsListAndDelete(t *testing.T) {
	w := newInbound(t)
	ctx := context.Background()
	admin := modelstest.NewCoach(t, w.db, "admin@example.com", people.RoleAdmin)
	for i := range 5 {
		w.clock.Advance(time.Minute)
		ev := emailEvent(fmt.Sprintf("msg_%d", i), drip.EmailEventComplained, "", fmt.Sprintf("p%d@example.com", i))
		noErr(t, w.svc.Drip.ApplyEmailEvent(ctx, ev))
	}
	var got []string
	pp := models.PageParams{Limit: 2}
	for {
		page, err := w.svc.Drip.ListSuppressions(ctx, admin, pp)
		noErr(t, err)
		for _, s := range page.Items {
			got = append(got, s.Email)
		}
		if page.NextCursor == nil {
			break
		}
		pp.Cursor = *page.NextCursor
	}
	want := []string{"p4@example.com", "p3@example.com", "p2@example.com", "p1@example.com", "p0@example.com"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("pages = %v, want newest first %v", got, want)
	}
	if _, err := w.svc.Drip.ListSuppressions(ctx, admin, models.PageParams{Cursor: "garbage"}); !models.IsCode(err, "invalid_cursor") {
		t.Errorf("bad cursor = %v", err)
	}
	// The list holds every coach's participants: a coach does not read it.
	if _, err := w.svc.Drip.ListSuppressions(ctx, w.lead, models.PageParams{}); !models.IsCode(err, "forbidden") {
		t.Errorf("a coach lists suppressions: %v", err)
	}

	if err := w.svc.Drip.DeleteSuppression(ctx, w.lead, "p1@example.com"); !models.IsCode(err, "forbidden") {
		t.Errorf("a coach deleting = %v, want forbidden", err)
	}
	noErr(t, w.svc.Drip.DeleteSuppression(ctx, admin, " P1@Example.com"))
	if suppression(t, w.db, "p1@example.com") != nil {
		t.Error("still suppressed")
	}
	if err := w.svc.Drip.DeleteSuppression(ctx, admin, "p1@example.com"); !models.IsCode(err, "not_found") {
		t.Errorf("deleting again = %v, want not_found", err)
	}
}

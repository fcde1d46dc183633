package catalog_test

import (
	"context"
	"testing"
	"time"

	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/domain"
	"github.com/grace-coaching/grace/models/modelstest"
	"github.com/grace-coaching/grace/models/people"
)

// TestCrisisResourcesReachOtherProcesses: an edit shows at once in the
// process that made it, and in another one (its own cache) once its copy
// is older than a minute, refreshed in the background without a reader
// waiting for the database.
func TestCrisisResourcesReachOtherProcesses(t *testing.T) {
	here, clock, db := modelstest.NewService(t)
	there := domain.New(domain.Deps{DB: db, Clock: clock, Limits: modelstest.Limits()})
	ctx := context.Background()
	admin := modelstest.NewCoach(t, db, "admin@example.com", people.RoleAdmin)

	if got := there.Catalog.CrisisResources(ctx); got != nil {
		t.Fatalf("crisis resources before any were written: %+v", got)
	}
	first, err := here.Catalog.PutCrisisResources(ctx, admin.ID, catalog.CrisisInput{Body: "First"})
	if err != nil {
		t.Fatal(err)
	}
	if got := here.Catalog.CrisisResources(ctx); got == nil || got.Body != "First" {
		t.Fatalf("the editing process serves %+v", got)
	}
	clock.Advance(2 * time.Minute)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := there.Catalog.CrisisResources(ctx)
		if got != nil && got.Body == "First" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the other process still serves %+v", got)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// A stale version is refused and changes nothing.
	if _, err := here.Catalog.PutCrisisResources(ctx, admin.ID, catalog.CrisisInput{Body: "Second", IfUpdatedAt: &first.UpdatedAt}); err != nil {
		t.Fatal(err)
	}
	_, err = here.Catalog.PutCrisisResources(ctx, admin.ID, catalog.CrisisInput{Body: "Lost", IfUpdatedAt: &first.UpdatedAt})
	modelstest.WantCode(t, err, "crisis_resources_changed")
	if got, _ := here.Catalog.GetCrisisResources(ctx); got.Body != "Second" {
		t.Fatalf("stored %q after a refused edit", got.Body)
	}
}

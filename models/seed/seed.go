package seed

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
	"github.com/grace-coaching/grace/models/catalog"
	"github.com/grace-coaching/grace/models/domain"
	"github.com/grace-coaching/grace/models/people"
)

// AdminEmail is the admin coach the seed creates when there is none.
const AdminEmail = "admin@grace.localhost"

// freeWindow is how long the seeded free-access window stays open.
const freeWindow = 30 * 24 * time.Hour

// Run loads the Say No With Grace workshop, its welcome email series, the
// cohort onboarding emails and live session reminders, the crisis
// resources and, when the database has no admin, an admin coach whose
// generated password is printed once. Running it again creates nothing twice: it only fills in
// what is missing, and never overwrites what the coach has since edited.
func Run(ctx context.Context, svc *domain.Services, out io.Writer) error {
	program, created, err := ensureProgram(ctx, svc)
	if err != nil {
		return err
	}
	added, err := ensureLessons(ctx, svc, program.ID)
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(out, "seeded program %q (%s): published, free access open until %s, %d lessons\n",
			program.Title, program.Slug, program.FreeAccessUntil.Format(time.RFC3339), added)
	} else {
		fmt.Fprintf(out, "program %q already present; added %d missing lessons\n", program.Slug, added)
	}
	if err := ensureSequences(ctx, svc, program.ID, out); err != nil {
		return err
	}
	if err := ensureCrisisResources(ctx, svc, out); err != nil {
		return err
	}
	return ensureAdmin(ctx, svc, out)
}

// CrisisResourcesFile is the seeded crisis resources text: neutral,
// international wording, for the coach to adapt to where her participants
// live.
const CrisisResourcesFile = "content/crisis-resources.md"

// ensureCrisisResources writes the crisis resources unless some are there
// already (the coach's edit stays hers).
func ensureCrisisResources(ctx context.Context, svc *domain.Services, out io.Writer) error {
	body, err := Content.ReadFile(CrisisResourcesFile)
	if err != nil {
		return err
	}
	created, err := svc.Catalog.SeedCrisisResources(ctx, string(body))
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintln(out, "seeded the crisis resources")
	}
	return nil
}

func ensureProgram(ctx context.Context, svc *domain.Services) (*catalog.Program, bool, error) {
	var p catalog.Program
	err := svc.Kernel.DB.WithContext(ctx).Where("slug = ?", ProgramSlug).Take(&p).Error
	if err == nil {
		return &p, false, nil
	}
	if !errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, false, err
	}
	desc, err := Content.ReadFile(DescriptionFile)
	if err != nil {
		return nil, false, err
	}
	until := svc.Kernel.Now().Add(freeWindow)
	created, err := svc.Catalog.CreateProgram(ctx, catalog.ProgramInput{
		Slug: ProgramSlug, Title: ProgramTitle, Summary: ProgramSummary, Description: string(desc),
		Status: catalog.ProgramPublished, FreeAccessUntil: &until, PriceCents: PriceCents, Currency: Currency,
	})
	if models.IsCode(err, "slug_taken") { // another seed won the race
		return ensureProgram(ctx, svc)
	}
	return created, err == nil, err
}

func ensureLessons(ctx context.Context, svc *domain.Services, programID uuid.UUID) (int, error) {
	var titles []string
	if err := svc.Kernel.DB.WithContext(ctx).Model(&catalog.Lesson{}).Where("program_id = ?", programID).Pluck("title", &titles).Error; err != nil {
		return 0, err
	}
	have := make(map[string]bool, len(titles))
	for _, t := range titles {
		have[t] = true
	}
	added := 0
	for _, l := range Lessons {
		if have[l.Title] {
			continue
		}
		body, err := Content.ReadFile(l.File)
		if err != nil {
			return added, err
		}
		media, dur := l.MediaURL, l.DurationSeconds
		_, err = svc.Catalog.CreateLesson(ctx, programID, catalog.LessonInput{
			Title: l.Title, Body: string(body), MediaURL: &media, DurationSeconds: &dur,
			FreePreview: l.FreePreview, UnlockOffsetDays: l.UnlockOffsetDays, Published: true,
		})
		if err != nil {
			return added, fmt.Errorf("seed lesson %q: %w", l.Title, err)
		}
		added++
	}
	return added, nil
}

func ensureAdmin(ctx context.Context, svc *domain.Services, out io.Writer) error {
	var admins int64
	if err := svc.Kernel.DB.WithContext(ctx).Model(&people.Coach{}).Where("role = ? AND active", people.RoleAdmin).Count(&admins).Error; err != nil {
		return err
	}
	if admins > 0 {
		return nil
	}
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	password := base64.RawURLEncoding.EncodeToString(b)
	if _, err := svc.People.CreateCoach(ctx, people.CreateCoachInput{Email: AdminEmail, Name: "Admin", Role: people.RoleAdmin, Password: password}); err != nil {
		return fmt.Errorf("seed admin: %w", err)
	}
	fmt.Fprintf(out, "created admin coach %s with password %s\nThis password is shown once; change it with a password reset.\n", AdminEmail, password)
	return nil
}

// Package catalog is what the coach publishes: programs, their lessons and
// the cached public program page.
package catalog

import (
	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/grace-coaching/grace/models"
)

// Service runs the catalogue's rules. Handlers call exactly one of its
// methods.
type Service struct {
	*models.Kernel
	pages  *answerCache[*PublishedProgram]
	lists  *answerCache[models.Page[ListedProgram]]
	crisis *crisisCache
	drip   LessonHooks
}

// LessonHooks hear of lesson changes inside the transaction that makes
// them, so what a lesson's publication schedules or cancels commits with
// it. The drip engine implements them.
type LessonHooks interface {
	OnLessonSaved(tx *gorm.DB, prev, cur *Lesson) error
	OnLessonDeleting(tx *gorm.DB, id uuid.UUID) error
}

// New builds the catalogue on the kernel; hooks hear of lesson changes.
func New(k *models.Kernel, hooks LessonHooks) *Service {
	return &Service{Kernel: k, pages: newAnswerCache[*PublishedProgram](),
		lists: newAnswerCache[models.Page[ListedProgram]](), crisis: &crisisCache{}, drip: hooks}
}

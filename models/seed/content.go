// Package seed holds the demo content that `grace seed` loads: the Say No With Grace workshop.
package seed

import "embed"

//go:embed content/*.md
var Content embed.FS

// LessonSpec describes one seeded lesson; Body is read from File in Content.
type LessonSpec struct {
	File             string
	Title            string
	FreePreview      bool
	UnlockOffsetDays int
	DurationSeconds  int // length of the matching podcast episode
	MediaURL         string
}

// Program metadata
const (
	ProgramSlug     = "say-no-with-grace"
	ProgramTitle    = "Say No With Grace"
	ProgramSummary  = "A seven-lesson workshop for women leaving a manipulative relationship: learn why distance matters, set kind and clear boundaries, spot hoovering and rebuild your life. Coaching and education, not psychotherapy."
	PriceCents      = 9700 // normally paid; free while it's available
	Currency        = "EUR"
	DescriptionFile = "content/program.md"
)

const mediaBase = "https://media.example.com/say-no-with-grace/"

// Lessons lists the workshop lessons in order. Lesson 1 is a free preview;
// the rest unlock on a drip schedule counted from enrollment.
var Lessons = []LessonSpec{
	{
		File:             "content/01-why-no-contact.md",
		Title:            "Why No Contact Is Necessary",
		FreePreview:      true,
		UnlockOffsetDays: 0,
		DurationSeconds:  1260,
		MediaURL:         mediaBase + "01-why-no-contact.mp3",
	},
	{
		File:             "content/02-setting-boundaries.md",
		Title:            "Setting Boundaries and Keeping Them",
		UnlockOffsetDays: 0,
		DurationSeconds:  1680,
		MediaURL:         mediaBase + "02-setting-boundaries.mp3",
	},
	{
		File:             "content/03-recognising-hoovering.md",
		Title:            "Recognising Hoovering",
		UnlockOffsetDays: 1,
		DurationSeconds:  1500,
		MediaURL:         mediaBase + "03-recognising-hoovering.mp3",
	},
	{
		File:             "content/04-removing-triggers.md",
		Title:            "Removing Triggers",
		UnlockOffsetDays: 2,
		DurationSeconds:  1140,
		MediaURL:         mediaBase + "04-removing-triggers.mp3",
	},
	{
		File:             "content/05-self-healing.md",
		Title:            "Self-Healing: Coming Home to Yourself",
		UnlockOffsetDays: 3,
		DurationSeconds:  1920,
		MediaURL:         mediaBase + "05-self-healing.mp3",
	},
	{
		File:             "content/06-professional-support.md",
		Title:            "Seeking Professional Support",
		UnlockOffsetDays: 5,
		DurationSeconds:  1380,
		MediaURL:         mediaBase + "06-professional-support.mp3",
	},
	{
		File:             "content/07-when-no-contact-isnt-possible.md",
		Title:            "When No Contact Isn't Possible: Co-Parenting and Caring for a Parent",
		UnlockOffsetDays: 7,
		DurationSeconds:  2280,
		MediaURL:         mediaBase + "07-when-no-contact-isnt-possible.mp3",
	},
}

package seed

import (
	"io/fs"
	"strings"
	"testing"
)

func TestLessonFilesExist(t *testing.T) {
	if len(Lessons) < 7 {
		t.Fatalf("want at least 7 lessons, got %d", len(Lessons))
	}
	titles := map[string]bool{}
	for i, l := range Lessons {
		t.Run(l.File, func(t *testing.T) {
			b, err := fs.ReadFile(Content, l.File)
			if err != nil {
				t.Fatalf("read %s: %v", l.File, err)
			}
			body := strings.TrimSpace(string(b))
			if body == "" {
				t.Fatalf("%s is empty", l.File)
			}
			if strings.HasPrefix(body, "# ") {
				t.Errorf("%s starts with an H1; the title is a separate field", l.File)
			}
			if strings.TrimSpace(l.Title) == "" {
				t.Errorf("lesson %d has no title", i+1)
			}
			if titles[l.Title] {
				t.Errorf("duplicate title %q", l.Title)
			}
			titles[l.Title] = true
			if l.DurationSeconds < 900 || l.DurationSeconds > 2400 {
				t.Errorf("duration %d out of range 900..2400", l.DurationSeconds)
			}
			if !strings.HasPrefix(l.MediaURL, "https://") {
				t.Errorf("media URL %q is not https", l.MediaURL)
			}
			if i > 0 && l.UnlockOffsetDays < Lessons[i-1].UnlockOffsetDays {
				t.Errorf("unlock offset %d is before previous lesson's %d", l.UnlockOffsetDays, Lessons[i-1].UnlockOffsetDays)
			}
		})
	}
	if !Lessons[0].FreePreview {
		t.Error("lesson 1 should be a free preview")
	}
}

func TestLessonsCoverTopics(t *testing.T) {
	var all strings.Builder
	for _, l := range Lessons {
		b, err := fs.ReadFile(Content, l.File)
		if err != nil {
			t.Fatalf("read %s: %v", l.File, err)
		}
		all.WriteString(strings.ToLower(string(b)))
		all.WriteString("\n")
	}
	text := all.String()
	tests := []struct {
		topic   string
		keyword string
	}{
		{"why no contact", "no contact"},
		{"boundaries", "boundar"},
		{"hoovering", "hoover"},
		{"triggers", "trigger"},
		{"self-healing", "heal"},
		{"professional support", "therap"},
		{"co-parenting", "co-parent"},
		{"elderly parent", "elderly"},
	}
	for _, tc := range tests {
		t.Run(tc.topic, func(t *testing.T) {
			if !strings.Contains(text, tc.keyword) {
				t.Errorf("no lesson mentions %q", tc.keyword)
			}
		})
	}
}

func TestProgramDescription(t *testing.T) {
	b, err := fs.ReadFile(Content, DescriptionFile)
	if err != nil {
		t.Fatalf("read %s: %v", DescriptionFile, err)
	}
	desc := strings.ToLower(string(b))
	if !strings.Contains(desc, "not psychotherapy") && !strings.Contains(desc, "not a substitute") {
		t.Error("program description lacks the disclaimer (\"not psychotherapy\" or \"not a substitute\")")
	}
	if strings.TrimSpace(ProgramSummary) == "" {
		t.Error("ProgramSummary is empty")
	}
}

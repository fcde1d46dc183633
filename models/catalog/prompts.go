package catalog

import (
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/grace-coaching/grace/models"
)

// Reflection prompt limits, the count the same as the schema's check.
const (
	MaxReflectionPrompts = 10
	MaxPromptLength      = 2000
)

// Prompt is one reflection prompt: the coach's Markdown and the sanitised
// HTML rendered from it when the lesson was written.
type Prompt struct {
	Markdown string `json:"markdown"`
	HTML     string `json:"html"`
}

// Prompts are a lesson's reflection prompts in the coach's order, stored as
// one jsonb column of the lesson row so the portal's lesson read, one query,
// carries them.
type Prompts []Prompt

// Value stores the prompts as a JSON array, never null.
func (p Prompts) Value() (driver.Value, error) {
	if p == nil {
		return "[]", nil
	}
	b, err := json.Marshal([]Prompt(p))
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// Scan reads the jsonb column, as text or bytes.
func (p *Prompts) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case nil:
		*p = Prompts{}
		return nil
	case []byte:
		b = v
	case string:
		b = []byte(v)
	default:
		return fmt.Errorf("reflection prompts: cannot scan %T", src)
	}
	out := Prompts{}
	if err := json.Unmarshal(b, &out); err != nil {
		return fmt.Errorf("reflection prompts: %w", err)
	}
	*p = out
	return nil
}

// Markdown is the prompts' sources, as the coach wrote them.
func (p Prompts) Markdown() []string {
	out := make([]string, len(p))
	for i, q := range p {
		out[i] = q.Markdown
	}
	return out
}

// checkPrompts validates prompt sources as a coach sends them.
func checkPrompts(c *models.Checker, prompts []string) {
	if len(prompts) > MaxReflectionPrompts {
		c.Add("reflection_prompts", fmt.Sprintf("must hold at most %d prompts", MaxReflectionPrompts))
		return
	}
	for i, q := range prompts {
		c.Text("reflection_prompts["+strconv.Itoa(i)+"]", q, 1, MaxPromptLength)
	}
}

// renderPrompts renders each source to sanitised HTML, on write as lesson
// bodies are.
func renderPrompts(prompts []string) Prompts {
	out := make(Prompts, len(prompts))
	for i, q := range prompts {
		out[i] = Prompt{Markdown: q, HTML: models.RenderMarkdown(q)}
	}
	return out
}

package drip

// DripVars are the values of a step's placeholders for one recipient. Empty
// strings render as nothing (a lesson_title in a cohort email, say).
type Vars struct {
	FirstName       string
	ProgramTitle    string
	CohortName      string
	PortalURL       string
	LessonTitle     string
	SessionStartsAt string // already in her local time, with the zone named
	UnsubscribeURL  string
}

// StepContent is what the coach wrote.
type StepContent struct {
	Subject string
	Body    string // Markdown with {{placeholders}}
}

// RenderedEmail is one recipient's email, exactly as handed to the provider.
// Headers carries List-Unsubscribe and List-Unsubscribe-Post on marketing
// email.
type RenderedEmail struct {
	Subject string            `json:"subject"`
	HTML    string            `json:"html"`
	Text    string            `json:"text"`
	Headers map[string]string `json:"headers,omitempty"`
	// Discreet: she was in discreet mode when the email was rendered, so
	// it goes from the neutral sender. Frozen with the rest: a retry is
	// the same email.
	Discreet bool `json:"discreet,omitempty"`
}

// RenderRequest is one step for one recipient.
type RenderRequest struct {
	Step      StepContent
	Vars      Vars
	Marketing bool
	// UnsubscribeMailto is the mailto: form of List-Unsubscribe for her
	// (marketing only); Vars.UnsubscribeURL is the https form.
	UnsubscribeMailto string
	// Discreet renders the neutral subject and preview (her discreet mode,
	// read when the batch is formed).
	Discreet bool
}

// DripRenderer renders a step for one recipient. emails/drip implements
// it; the domain uses it for previews, test sends and batch formation.
type Renderer interface {
	RenderStep(req RenderRequest) (RenderedEmail, error)
}

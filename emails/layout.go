package emails

import (
	htmltemplate "html/template"
	texttemplate "text/template"
)

// Layout returns fresh copies of the shared email layout, HTML and text,
// for renderers outside this package (the drip emails) so every email
// Grace sends looks the same. The caller defines the slots the layout
// calls: "content" and "reason", and optionally "preheader" and "notice"
// (the footer line, which defaults to "not a newsletter"). The layout
// reads .Product and .Subject from the data it is executed with.
func Layout() (*htmltemplate.Template, *texttemplate.Template, error) {
	layoutHTML, err := readTemplate("layout.html")
	if err != nil {
		return nil, nil, err
	}
	layoutText, err := readTemplate("layout.txt")
	if err != nil {
		return nil, nil, err
	}
	h, err := htmltemplate.New("layout.html").Funcs(funcs).Option("missingkey=error").Parse(layoutHTML)
	if err != nil {
		return nil, nil, err
	}
	t, err := texttemplate.New("layout.txt").Funcs(funcs).Option("missingkey=error").Parse(layoutText)
	if err != nil {
		return nil, nil, err
	}
	return h, t, nil
}

// TidyText removes the trailing spaces and blank-line runs that optional
// template sections leave in a text part.
func TidyText(s string) string { return tidyText(s) }

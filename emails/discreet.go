package emails

import (
	"errors"
	"fmt"
	htmltemplate "html/template"
	"net/mail"
	"strings"
	"unicode"
)

// Discreet is what an email to a woman in discreet mode shows before it is
// opened: who it is from, its subject and its preview. Someone who reads
// her inbox over her shoulder, or sees a notification on her phone, learns
// nothing about the practice, the program or its topic. Once opened, the
// email is the same as anyone's.
//
// The texts are configuration, read in cmd/grace run() (DISCREET_SENDER_NAME,
// DISCREET_SUBJECT, DISCREET_PREVIEW, DISCREET_EMAIL_FROM): they are the
// operator's promise to every discreet woman at once, chosen when the
// neutral sending domain is set up, not something to change per email.
type Discreet struct {
	// SenderName is the display name of the From header ("Notes").
	SenderName string
	// Address is the neutral sending address (DISCREET_EMAIL_FROM), on a
	// domain that does not name the practice; empty sends from the regular
	// address under SenderName.
	Address string
	// Subject is every discreet email's subject ("Your update").
	Subject string
	// Preview is the hidden preview text (preheader); empty shows none.
	Preview string
}

// Defaults for the neutral texts.
const (
	DefaultDiscreetSenderName = "Notes"
	DefaultDiscreetSubject    = "Your update"
)

// previewPadding follows the preview text so a mail client fills its
// preview line with nothing instead of the first words of the body (the
// practice's name, her program). Zero-width non-joiners and non-breaking
// spaces are what clients show as blank.
var previewPadding = strings.Repeat("&#847;&zwnj;&nbsp;", 90)

// WithDefaults fills the empty texts with the defaults.
func (d Discreet) WithDefaults() Discreet {
	d.SenderName = strings.TrimSpace(d.SenderName)
	d.Subject = strings.TrimSpace(d.Subject)
	d.Preview = strings.TrimSpace(d.Preview)
	d.Address = strings.TrimSpace(d.Address)
	if d.SenderName == "" {
		d.SenderName = DefaultDiscreetSenderName
	}
	if d.Subject == "" {
		d.Subject = DefaultDiscreetSubject
	}
	return d
}

// Validate refuses texts that cannot go into a header line, and an address
// that is not one.
func (d Discreet) Validate() error {
	d = d.WithDefaults()
	for name, v := range map[string]string{"sender name": d.SenderName, "subject": d.Subject, "preview": d.Preview} {
		if strings.ContainsFunc(v, unicode.IsControl) || len(v) > 200 {
			return fmt.Errorf("emails: discreet %s %q must be one line of at most 200 bytes", name, v)
		}
	}
	if d.Address != "" {
		a, err := mail.ParseAddress(d.Address)
		if err != nil {
			return fmt.Errorf("emails: DISCREET_EMAIL_FROM %q is not an email address: %w", d.Address, err)
		}
		if a.Name != "" {
			return errors.New("emails: DISCREET_EMAIL_FROM is an address alone; the name is DISCREET_SENDER_NAME")
		}
	}
	return nil
}

// From is the From header for a discreet email: the neutral name at the
// neutral address, or at the regular one's address when none is set.
func (d Discreet) From(regular string) (string, error) {
	d = d.WithDefaults()
	addr := d.Address
	if addr == "" {
		a, err := mail.ParseAddress(regular)
		if err != nil {
			return "", fmt.Errorf("emails: From %q is not an email address: %w", regular, err)
		}
		addr = a.Address
	}
	return (&mail.Address{Name: d.SenderName, Address: addr}).String(), nil
}

// PreheaderHTML is the hidden preview of a discreet email: the neutral text
// (escaped) and the padding.
func (d Discreet) PreheaderHTML() htmltemplate.HTML {
	return htmltemplate.HTML(htmltemplate.HTMLEscapeString(d.WithDefaults().Preview) + previewPadding)
}

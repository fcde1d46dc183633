// Package drip is the email engine: sequences and their steps, scheduling
// written in the transaction of the change that fires it, batched delivery,
// unsubscribes, suppressions and the provider's events.
package drip

import (
	"strings"

	"github.com/grace-coaching/grace/models"
)

// Service runs the drip rules. Handlers and the drip worker call its
// methods; catalog, people and enroll call its hooks through the small
// interfaces they declare.
type Service struct {
	*models.Kernel
	// renderer renders steps (previews, test sends, batches); nil in code
	// paths that never render.
	renderer Renderer
	// baseURL is the portal's public URL, for links in emails.
	baseURL string
	// apiBaseURL is this API's public URL, for one-click unsubscribe links.
	apiBaseURL string
	// unsubscribeMailbox receives mailto: unsubscribes ("" leaves the
	// mailto form out of List-Unsubscribe).
	unsubscribeMailbox string
}

// Deps are what the drip engine needs beside the kernel.
type Deps struct {
	// Renderer renders steps; emails/drip provides it.
	Renderer Renderer
	// AppBaseURL is the portal's public URL.
	AppBaseURL string
	// APIBaseURL is this API's public URL ("" means AppBaseURL), for the
	// one-click unsubscribe link in List-Unsubscribe.
	APIBaseURL string
	// UnsubscribeMailbox is the address of the mailto: List-Unsubscribe
	// form, e.g. "unsubscribe@example.com"; "" leaves it out.
	UnsubscribeMailbox string
}

func New(k *models.Kernel, d Deps) *Service {
	if d.APIBaseURL == "" {
		d.APIBaseURL = d.AppBaseURL
	}
	return &Service{Kernel: k, renderer: d.Renderer, baseURL: d.AppBaseURL,
		apiBaseURL: strings.TrimRight(d.APIBaseURL, "/"), unsubscribeMailbox: d.UnsubscribeMailbox}
}

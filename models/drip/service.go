// Package drip is the email engine: sequences and their steps, scheduling
// written in the transaction of the change that fires it, batched delivery,
// unsubscribes, suppressions and the provider's events.
package drip

import (
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
	// unsubscribeURL is her one-click unsubscribe link; the API layer,
	// which owns the route, builds it.
	unsubscribeURL func(token string) string
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
	// UnsubscribeURL is the https link of List-Unsubscribe and of the
	// {{unsubscribe_url}} placeholder for a participant's token
	// (api.UnsubscribeURL builds it); nil leaves the link empty.
	UnsubscribeURL func(token string) string
	// UnsubscribeMailbox is the address of the mailto: List-Unsubscribe
	// form, e.g. "unsubscribe@example.com"; "" leaves it out.
	UnsubscribeMailbox string
}

func New(k *models.Kernel, d Deps) *Service {
	return &Service{Kernel: k, renderer: d.Renderer, baseURL: d.AppBaseURL,
		unsubscribeURL: d.UnsubscribeURL, unsubscribeMailbox: d.UnsubscribeMailbox}
}

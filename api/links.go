package api

import "strings"

// The API's own routes that the domain puts into what it sends (emails),
// built here, where the routes are, from names the domain asks for.

// UnsubscribeURL is the one-click unsubscribe link (RFC 8058) for a
// participant's token on this API's public base URL: the route
// POST|GET /v1/unsubscribe/:token.
func UnsubscribeURL(apiBaseURL string) func(token string) string {
	base := strings.TrimRight(apiBaseURL, "/")
	return func(token string) string { return base + "/v1/unsubscribe/" + token }
}

// calendarFeedPath is where a participant's calendar app fetches her feed.
const calendarFeedPath = "/v1/portal/calendar.ics"

// ConsentConfirmURL is the link in a marketing opt-in confirmation email:
// the route GET|POST /v1/consents/confirm/:token.
func ConsentConfirmURL(apiBaseURL string) func(token string) string {
	base := strings.TrimRight(apiBaseURL, "/")
	return func(token string) string { return base + "/v1/consents/confirm/" + token }
}

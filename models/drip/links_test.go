package drip_test

// unsubscribeAt stands in for api.UnsubscribeURL, which models may not
// import: the one-click link the API serves, on the API's base URL.
func unsubscribeAt(apiBase string) func(token string) string {
	return func(token string) string { return apiBase + "/v1/unsubscribe/" + token }
}

package apitest

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestRecordNormalise(t *testing.T) {
	f := &recordFile{names: map[string]string{}, counts: map[string]int{}}
	recorder.start = time.Now()
	id1, id2 := "6de9d2d6-bdb6-4135-9b07-0332ef61a3a4", "35496906-3bea-4b44-8dcd-b6b9b183825e"
	token := "RW9OiddGzPadmIZvhDd83Uh69C1DGvQ5Lst5_h8DXfQ"
	cursor := base64.RawURLEncoding.EncodeToString([]byte(`{"t":"2026-03-02T09:00:01Z","i":"` + id2 + `"}`))
	now := time.Now().UTC().Format(time.RFC3339Nano)
	in := `{"id":"` + id1 + `","other":"` + strings.ToUpper(id2) + `","token":"` + token + `","bad":"` + token + `x",` +
		`"stripe":"cs_test_` + strings.ReplaceAll(id1, "-", "") + `","next_cursor":"` + cursor + `",` +
		`"fake":"2026-03-02T09:00:00Z","now":"` + now + `","nil":"00000000-0000-0000-0000-000000000000",` +
		`"unsubscribe":"0042a577c7cf4bd68c6cb3e9d2bdef44bd0154e83fdf41ee8f73ce5100a4c57a","code":"012345","slug":"a_long_snake_case_identifier_of_43_chars_xx"}`
	// Within one exchange the hex forms are numbered before the base64url
	// ones: the order is fixed, if not quite that of appearance.
	want := `{"id":"<uuid-1>","other":"<uuid-2>","token":"<token-2>","bad":"<token-2>x",` +
		`"stripe":"cs_test_<uuid-1>","next_cursor":"<cursor {"t":"2026-03-02T09:00:01Z","i":"<uuid-2>"}>",` +
		`"fake":"2026-03-02T09:00:00Z","now":"<time>","nil":"00000000-0000-0000-0000-000000000000",` +
		`"unsubscribe":"<token-1>","code":"<code-1>","slug":"a_long_snake_case_identifier_of_43_chars_xx"}`
	if got := f.normalise(in, true); got != want {
		t.Errorf("normalise:\n got %s\nwant %s", got, want)
	}
	// Unnumbered (a race's answers): known values keep their number, new
	// ones are not remembered.
	if got := f.normalise(id2+" 11111111-2222-4333-8444-555555555555", false); got != "<uuid-2> <uuid-new>" {
		t.Errorf("unnumbered: %s", got)
	}
	if f.counts["uuid"] != 2 {
		t.Errorf("an unnumbered value was numbered: %v", f.counts)
	}
}

func TestRecordRequestIDsAndHeaders(t *testing.T) {
	f := &recordFile{names: map[string]string{}, counts: map[string]int{}, seq: 3}
	h := http.Header{"X-Request-Id": {"AbCdEfGhIjKlMnOpQrStUvWxYz012345"}, "Date": {"Tue, 01 Dec 2026 20:56:37 GMT"}, "Content-Type": {"application/json"}}
	var out bytes.Buffer
	f.writeExchange(&out, recordedExchange{method: "GET", target: "/x", status: 404, header: h,
		body: []byte(`{"request_id":"AbCdEfGhIjKlMnOpQrStUvWxYz012345"}`)})
	want := "=== #3 GET /x\n--- 404\nContent-Type: application/json\n\n" +
		`{"request_id":"<request-id-#3>"}` + "\n\\ no newline at end of body\n\n"
	if out.String() != want {
		t.Errorf("exchange:\n%q\nwant\n%q", out.String(), want)
	}
}

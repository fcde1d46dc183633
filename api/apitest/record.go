package apitest

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
)

// Recording HTTP exchanges. With GRACE_HTTP_RECORD=dir every exchange a test
// makes through Env.Do (or hands to Record) is written, normalised, to
// dir/<test name, "/" as "__">.txt, so two runs of the suite — before and
// after a refactor — can be compared with diff -r: any difference is a
// changed answer. Without the variable nothing is recorded and nothing
// else changes.
//
// Each exchange is the method and path with query, the request body, the
// status, the response headers (sorted) and the response body as sent.
// Normalised, because some of every answer differs from run to run:
//   - UUIDs, with dashes or without (the tests' Stripe ids are
//     cs_test_<uuid>), become <uuid-N>, numbered by first appearance in the
//     file (within one exchange, the dashed ones first), so "the same id as
//     before" survives and ids that differ between runs do not. The nil
//     UUID stays as it is. A subtest named after a path has "uuid" for the
//     ids in its file name.
//   - Pagination cursors (base64url JSON) are written decoded, as
//     <cursor {...}>, so the id inside is numbered like the others.
//   - Opaque tokens become <token-N>, numbered the same way (within one
//     exchange, the hex ones first): 32 random bytes in base64url
//     (session, sign-in link, reset, invite and calendar tokens) and 64 hex
//     digits (unsubscribe tokens). 6-digit sign-in codes sent as "code"
//     become <code-N>, multipart boundaries <boundary-N>.
//   - The request id (X-Request-Id) is dropped from the headers and becomes
//     <request-id-#K> in bodies, K the exchange that was given it (a
//     replayed idempotent answer names the original request).
//   - Timestamps within an hour of the wall clock (RFC 3339 and Unix
//     seconds) become <time> and <unix-time>: rows stamped by the database
//     or by time.Now, events signed now. Those of the tests' fake clock are
//     months away and are kept. For a server on the system clock (Record)
//     every later timestamp is replaced, and Content-Length left out.
//   - Date and X-Request-Id are left out of the headers.
//   - A request body over 64 KiB (the tests of the 1 MiB limit) is
//     written as its length and SHA-256.
//
// Exchanges a test makes from goroutines it started (races on purpose) come
// in no fixed order. They are written as one block at the next exchange
// from the test's own goroutine (or at its end): the requests sorted, then
// the answers sorted, each normalised without numbering anything new
// (<uuid-new>, <token-new>...), since which request won is the race's to
// decide. A race whose outcome shows in an answer (which of two requests
// was refused, and how) still differs between runs.

// Ids in a fixed order. Lists sorted by time break ties by id, and the
// fake clock makes ties common (fixtures created at the same instant), so
// with random ids the order of a page would differ from run to run. While
// recording, the ids of a test's database count up (db000000-...-0001,
// ...-0002) and so do those made with uuid.New in the test binary
// (00000001-..., below every database id), a counter shared by the tests
// running in parallel: each test's ids then sort in the order it made them,
// the same on every run. Both are valid version 4 UUIDs.

func init() {
	if recordDir != "" {
		uuid.SetRand(&countingIDs{})
	}
}

// countingIDs is the reader uuid.New draws its 16 "random" bytes from.
type countingIDs struct{ n atomic.Uint64 }

func (c *countingIDs) Read(p []byte) (int, error) {
	if len(p) != 16 {
		return rand.Read(p)
	}
	// The count leads (order) and ends (tests take a prefix or a suffix of
	// an id for a unique name): 00000001-0000-4000-8000-000000000001.
	n := c.n.Add(1)
	clear(p)
	binary.BigEndian.PutUint32(p[0:4], uint32(n))
	binary.BigEndian.PutUint64(p[8:], n&(1<<48-1))
	return 16, nil
}

// countIDsInDB makes every gen_random_uuid() column default of the test's
// database count up instead.
func countIDsInDB(t testing.TB, db *gorm.DB) {
	t.Helper()
	err := db.Exec(`CREATE SEQUENCE grace_record_ids;
DO $$
DECLARE c record;
BEGIN
	FOR c IN SELECT table_schema, table_name, column_name FROM information_schema.columns
		WHERE column_default = 'gen_random_uuid()' AND table_schema NOT IN ('pg_catalog', 'information_schema')
	LOOP
		EXECUTE format('ALTER TABLE %I.%I ALTER COLUMN %I SET DEFAULT '
			'(''db000000-0000-4000-8000-'' || lpad(to_hex(nextval(''grace_record_ids''::regclass)), 12, ''0''))::uuid',
			c.table_schema, c.table_name, c.column_name);
	END LOOP;
END $$`).Error
	if err != nil {
		t.Fatalf("%s: ids in a fixed order: %v", RecordEnv, err)
	}
}

// RecordEnv names the variable that turns recording on.
const RecordEnv = "GRACE_HTTP_RECORD"

var recordDir = os.Getenv(RecordEnv)

// volatileHeaders are left out of recordings: they differ on every run.
var volatileHeaders = map[string]bool{
	"Date":         true,
	"X-Request-Id": true,
}

var recorder struct {
	mu    sync.Mutex
	start time.Time
	files map[string]*recordFile // by test name
	paths map[string]string      // file name -> test name
}

// recordFile is one test's recording.
type recordFile struct {
	mu        sync.Mutex
	path      string
	wallClock bool               // the server ran on the system clock, not a fake one
	seq       int                // exchanges written
	names     map[string]string  // raw value -> placeholder
	counts    map[string]int     // placeholder kind -> last number
	pending   []recordedExchange // from the test's goroutines, not yet written
	err       error
}

type recordedExchange struct {
	method, target string
	reqBody        []byte
	status         int
	header         http.Header
	body           []byte
}

// Record appends one exchange with a server on the system clock (a test of
// its own HTTP client, as cmd/grace has) to the test's recording when
// GRACE_HTTP_RECORD is set, and does nothing otherwise. target is the
// request's path and query. Every timestamp from an hour before the run on
// is taken for the wall clock's and recorded as <time>.
func Record(t testing.TB, method, target string, reqBody []byte, status int, header http.Header, body []byte) {
	record(t, true, method, target, reqBody, status, header, body)
}

// record is Record; Env.Do calls it with wallClock false: the API runs on a
// fake clock, and only timestamps within an hour of the wall clock (stamped
// by the database or time.Now) are replaced.
func record(t testing.TB, wallClock bool, method, target string, reqBody []byte, status int, header http.Header, body []byte) {
	if recordDir == "" {
		return
	}
	t.Helper()
	f := recordFileFor(t, wallClock)
	x := recordedExchange{method: method, target: target, reqBody: bytes.Clone(reqBody), status: status, header: header.Clone(), body: bytes.Clone(body)}
	onTestGoroutine := onTestGoroutine()
	f.mu.Lock()
	defer f.mu.Unlock()
	if !onTestGoroutine {
		f.pending = append(f.pending, x)
		return
	}
	var out bytes.Buffer
	f.flushPending(&out)
	f.seq++
	f.writeExchange(&out, x)
	f.append(t, out.Bytes())
}

func recordFileFor(t testing.TB, wallClock bool) *recordFile {
	recorder.mu.Lock()
	defer recorder.mu.Unlock()
	name := t.Name()
	if f := recorder.files[name]; f != nil {
		return f
	}
	if recorder.files == nil {
		recorder.files = map[string]*recordFile{}
		recorder.paths = map[string]string{}
		recorder.start = time.Now()
	}
	// Subtests named after a path may hold an id: the file name must not.
	file := strings.ReplaceAll(uuidRE.ReplaceAllString(name, "uuid"), "/", "__") + ".txt"
	f := &recordFile{
		path:      filepath.Join(recordDir, file),
		wallClock: wallClock,
		names:     map[string]string{},
		counts:    map[string]int{},
	}
	recorder.files[name] = f
	if other, ok := recorder.paths[file]; ok {
		f.err = fmt.Errorf("tests %q and %q would share the recording %s", other, name, file)
		t.Errorf("%s: %v", RecordEnv, f.err)
		return f
	}
	recorder.paths[file] = name
	// A fresh file for each run of the test binary: re-recording into the
	// same directory replaces, it does not add.
	if err := os.MkdirAll(recordDir, 0o755); err != nil {
		f.err = err
	} else if err := os.WriteFile(f.path, nil, 0o644); err != nil {
		f.err = err
	}
	if f.err != nil {
		t.Errorf("%s: %v", RecordEnv, f.err)
	}
	t.Cleanup(func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		var out bytes.Buffer
		f.flushPending(&out)
		f.append(t, out.Bytes())
	})
	return f
}

// onTestGoroutine reports whether the caller runs on a test's own goroutine
// (testing.tRunner is on its stack) rather than on one the test started.
func onTestGoroutine() bool {
	pcs := make([]uintptr, 64)
	for {
		n := runtime.Callers(2, pcs)
		if n < len(pcs) {
			pcs = pcs[:n]
			break
		}
		pcs = make([]uintptr, 2*len(pcs))
	}
	frames := runtime.CallersFrames(pcs)
	for {
		fr, more := frames.Next()
		if fr.Function == "testing.tRunner" {
			return true
		}
		if !more {
			return false
		}
	}
}

func (f *recordFile) append(t testing.TB, b []byte) {
	if len(b) == 0 || f.err != nil {
		return
	}
	w, err := os.OpenFile(f.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err == nil {
		_, err = w.Write(b)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		f.err = err
		t.Errorf("%s: %v", RecordEnv, err)
	}
}

func (f *recordFile) writeExchange(out *bytes.Buffer, x recordedExchange) {
	if id := x.header.Get("X-Request-Id"); id != "" {
		f.names[id] = "<request-id-#" + strconv.Itoa(f.seq) + ">"
	}
	fmt.Fprintf(out, "=== #%d %s %s\n", f.seq, x.method, f.normalise(x.target, true))
	out.WriteString(requestText(f.normalise(string(x.reqBody), true)))
	out.WriteString("--- " + f.normalise(responseText(x, f.wallClock), true))
	out.WriteString("\n")
}

// flushPending writes the exchanges of the test's goroutines since the last
// exchange of its own, requests and answers each sorted.
func (f *recordFile) flushPending(out *bytes.Buffer) {
	if len(f.pending) == 0 {
		return
	}
	xs := f.pending
	f.pending = nil
	for _, x := range xs {
		if id := x.header.Get("X-Request-Id"); id != "" {
			f.names[id] = "<request-id>"
		}
	}
	var reqs, ress []string
	for _, x := range xs {
		var b bytes.Buffer
		fmt.Fprintf(&b, ">>> %s %s\n", x.method, f.normalise(x.target, false))
		b.WriteString(requestText(f.normalise(string(x.reqBody), false)))
		reqs = append(reqs, b.String())
		ress = append(ress, "<<< "+f.normalise(responseText(x, f.wallClock), false))
	}
	slices.Sort(reqs)
	slices.Sort(ress)
	fmt.Fprintf(out, "=== #%d-#%d concurrent: %d exchanges from the test's goroutines; requests and answers each sorted\n",
		f.seq+1, f.seq+len(xs), len(xs))
	f.seq += len(xs)
	out.WriteString(strings.Join(reqs, ""))
	out.WriteString(strings.Join(ress, ""))
	out.WriteString("\n")
}

func responseText(x recordedExchange, wallClock bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d\n", x.status)
	keys := make([]string, 0, len(x.header))
	for k := range x.header {
		// Content-Length measures a body with the system clock's times in
		// it (their fractions of a second vary in length); the body itself
		// is recorded.
		ck := http.CanonicalHeaderKey(k)
		if !volatileHeaders[ck] && !(wallClock && ck == "Content-Length") {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range x.header[k] {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	b.WriteString("\n")
	var body bytes.Buffer
	writeBody(&body, string(x.body))
	b.Write(body.Bytes())
	return b.String()
}

// requestText is a request body as recorded: ended with a newline (most are
// JSON without one; what the test sent is not what is being compared), and
// one too large to read as a digest.
func requestText(body string) string {
	switch {
	case body == "":
		return ""
	case len(body) > maxRecordedRequest:
		return fmt.Sprintf("<request body of %d bytes, sha256 %x>\n", len(body), sha256.Sum256([]byte(body)))
	case !strings.HasSuffix(body, "\n"):
		return body + "\n"
	}
	return body
}

// maxRecordedRequest is the largest request body written out in full; the
// larger ones are the tests of the 1 MiB limit.
const maxRecordedRequest = 64 << 10

// writeBody writes a body and ends it with a newline, saying so when the
// body itself had none.
func writeBody(out *bytes.Buffer, body string) {
	if body == "" {
		return
	}
	out.WriteString(body)
	if !strings.HasSuffix(body, "\n") {
		out.WriteString("\n\\ no newline at end of body\n")
	}
}

var (
	uuidRE = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`)
	// Runs of base64url characters: pagination cursors (JSON) and opaque
	// tokens (32 random bytes, 43 characters).
	base64urlRunRE = regexp.MustCompile(`[A-Za-z0-9_-]+`)
	// Runs of letters and digits: echo's request ids are 32 of them.
	alnumRunRE = regexp.MustCompile(`[A-Za-z0-9]+`)
	// Runs of hex digits: a UUID without dashes (Stripe ids the tests make
	// from enrollment ids) or two of them (unsubscribe tokens).
	hexRunRE = regexp.MustCompile(`[0-9a-fA-F]+`)
	codeRE   = regexp.MustCompile(`"code"\s*:\s*"\d{6}"`)
	timeRE   = regexp.MustCompile(`\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})`)
	numberRE = regexp.MustCompile(`[0-9.]+`)
)

const nilUUID = "00000000-0000-0000-0000-000000000000"

// normalise replaces what differs between runs. With number set, values
// seen for the first time get the next placeholder of their kind; without,
// they become <kind-new> and nothing is remembered.
func (f *recordFile) normalise(s string, number bool) string {
	if s == "" {
		return s
	}
	// Request ids are known exactly, from the answers' headers.
	s = alnumRunRE.ReplaceAllStringFunc(s, func(m string) string {
		if p, ok := f.names[m]; ok && len(m) == 32 {
			return p
		}
		return m
	})
	// Pagination cursors are base64url JSON holding an id and a position:
	// written decoded, so the id inside is numbered like any other.
	s = base64urlRunRE.ReplaceAllStringFunc(s, func(m string) string {
		if !strings.HasPrefix(m, "eyJ") {
			return m
		}
		raw, err := base64.RawURLEncoding.DecodeString(m)
		if err != nil || !json.Valid(raw) {
			return m
		}
		return "<cursor " + string(raw) + ">"
	})
	s = uuidRE.ReplaceAllStringFunc(s, func(m string) string {
		if m == nilUUID {
			return m
		}
		return f.placeholder("uuid", strings.ToLower(m), number)
	})
	s = hexRunRE.ReplaceAllStringFunc(s, func(m string) string {
		switch {
		case len(m) == 32 && m[12] == '4' && strings.ContainsRune("89abAB", rune(m[16])):
			return f.placeholder("uuid", strings.ToLower(m[:8]+"-"+m[8:12]+"-"+m[12:16]+"-"+m[16:20]+"-"+m[20:]), number)
		case len(m) == 64:
			return f.placeholder("token", m, number)
		case len(m) == 60: // mime/multipart's random boundary
			return f.placeholder("boundary", m, number)
		}
		return m
	})
	s = base64urlRunRE.ReplaceAllStringFunc(s, func(m string) string {
		switch {
		case len(m) == 43 && mixedCase(m):
			return f.placeholder("token", m, number)
		case len(m) > 43:
			// A token with something added (a test of a mangled link).
			if p, ok := f.names["token\x00"+m[:43]]; ok {
				return p + m[43:]
			}
		}
		return m // not a token; a long identifier is all lower case
	})
	s = codeRE.ReplaceAllStringFunc(s, func(m string) string {
		i := strings.LastIndexByte(m[:len(m)-1], '"')
		return m[:i+1] + f.placeholder("code", m[i+1:len(m)-1], number) + `"`
	})
	lo, hi := recorder.start.Add(-time.Hour), time.Now().Add(time.Hour)
	if f.wallClock {
		hi = time.Unix(1<<31, 0) // later ones are the system clock's plus some days
	}
	s = timeRE.ReplaceAllStringFunc(s, func(m string) string {
		if t, err := time.Parse(time.RFC3339Nano, m); err == nil && t.After(lo) && t.Before(hi) {
			return "<time>"
		}
		return m
	})
	s = numberRE.ReplaceAllStringFunc(s, func(m string) string {
		if len(m) != 10 || strings.Contains(m, ".") {
			return m
		}
		n, _ := strconv.ParseInt(m, 10, 64)
		if t := time.Unix(n, 0); t.After(lo) && t.Before(hi) {
			return "<unix-time>"
		}
		return m
	})
	return s
}

func (f *recordFile) placeholder(kind, raw string, number bool) string {
	key := kind + "\x00" + raw
	if p, ok := f.names[key]; ok {
		return p
	}
	if !number {
		return "<" + kind + "-new>"
	}
	f.counts[kind]++
	p := "<" + kind + "-" + strconv.Itoa(f.counts[kind]) + ">"
	f.names[key] = p
	return p
}

func mixedCase(s string) bool {
	return strings.ContainsAny(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") && strings.ContainsAny(s, "abcdefghijklmnopqrstuvwxyz")
}

package reqstate

import (
	"bytes"
	"context"
	"errors"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/stormcellar/stormcellar/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestEnsureOnce(t *testing.T) {
	t.Parallel()
	type key struct{}
	req := httptest.NewRequest("GET", "/", nil)
	req = req.WithContext(context.WithValue(req.Context(), key{}, "kept"))
	st, w, r := Ensure(httptest.NewRecorder(), req)
	st2, w2, r2 := Ensure(w, r)
	if st != st2 || w != w2 || r != r2 {
		t.Fatal("second Ensure made new state")
	}
	if From(r.Context()) != st || r.Context().Value(key{}) != "kept" {
		t.Fatal("context lost the state or the parent's values")
	}
	if From(context.WithValue(r.Context(), key{}, "x")) != st {
		t.Fatal("state not found through a derived context")
	}
	if From(context.Background()) != nil {
		t.Fatal("state found in a bare context")
	}
}

func TestWriterTracksCommit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		do        func(w http.ResponseWriter)
		committed bool
		status    int
	}{
		{"nothing", func(http.ResponseWriter) {}, false, 0},
		{"header map only", func(w http.ResponseWriter) { w.Header().Set("X", "1") }, false, 0},
		{"100 continue", func(w http.ResponseWriter) { w.WriteHeader(100) }, false, 0},
		{"103 early hints", func(w http.ResponseWriter) { w.WriteHeader(103) }, false, 0},
		{"101 switching", func(w http.ResponseWriter) { w.WriteHeader(101) }, true, 101},
		{"status", func(w http.ResponseWriter) { w.WriteHeader(204) }, true, 204},
		{"write", func(w http.ResponseWriter) { _, _ = w.Write([]byte("x")) }, true, 200},
		{"empty write", func(w http.ResponseWriter) { _, _ = w.Write(nil) }, true, 200},
		{"flush", func(w http.ResponseWriter) { w.(http.Flusher).Flush() }, true, 200},
		{"first status wins", func(w http.ResponseWriter) { w.WriteHeader(201); w.WriteHeader(500) }, true, 201},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st, w, _ := Ensure(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
			tc.do(w)
			if st.Writer().Committed() != tc.committed || st.Writer().Status() != tc.status {
				t.Errorf("committed %v status %d, want %v %d", st.Writer().Committed(), st.Writer().Status(), tc.committed, tc.status)
			}
		})
	}
}

func TestNewID(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 1000 {
		id := NewID()
		if len(id) != 16 || strings.Trim(id, "0123456789abcdef") != "" || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
	}
}

type deadlineWriter struct {
	*httptest.ResponseRecorder
	got time.Time
	err error
}

func (d *deadlineWriter) SetWriteDeadline(t time.Time) error { d.got = t; return d.err }

// TestWriterRecordsWriteDeadline checks what Writer.WriteDeadline reports:
// nothing until a deadline is set through it, then the deadline set (the
// zero time for none), and nothing again after a set that failed.
func TestWriterRecordsWriteDeadline(t *testing.T) {
	dw := &deadlineWriter{ResponseRecorder: httptest.NewRecorder()}
	st, _, _ := Ensure(dw, httptest.NewRequest(http.MethodGet, "/", nil))
	w := st.Writer()
	if _, ok := w.WriteDeadline(); ok {
		t.Fatal("a deadline is reported before any was set")
	}
	at := time.Unix(1700000000, 123)
	if err := http.NewResponseController(w).SetWriteDeadline(at); err != nil || !dw.got.Equal(at) {
		t.Fatalf("set: %v, connection got %v", err, dw.got)
	}
	if got, ok := w.WriteDeadline(); !ok || !got.Equal(at) {
		t.Errorf("after a set: %v, %v; want %v", got, ok, at)
	}
	if err := w.SetWriteDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	if got, ok := w.WriteDeadline(); !ok || !got.IsZero() {
		t.Errorf("after clearing: %v, %v; want the zero time", got, ok)
	}
	if err := w.SetWriteDeadline(time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	if got, ok := w.WriteDeadline(); !ok || got.After(time.Unix(0, 1)) {
		t.Errorf("after the epoch: %v, %v; want a deadline at the epoch", got, ok)
	}
	dw.err = errors.New("not supported")
	if err := w.SetWriteDeadline(at); err == nil {
		t.Fatal("the writer's error was lost")
	}
	if _, ok := w.WriteDeadline(); ok {
		t.Error("a deadline is reported after a set that failed")
	}
}

// TestCSPHeaderNeverChangesAValueGiven checks that a second CSP value in
// one request does not write into the first, which may already be in a
// header map.
func TestCSPHeaderNeverChangesAValueGiven(t *testing.T) {
	st, _, _ := Ensure(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	first := st.CSPHeader("script-src 'nonce-a'")
	second := st.CSPHeader("default-src *")
	if first[0] != "script-src 'nonce-a'" || second[0] != "default-src *" {
		t.Fatalf("first %q, second %q", first, second)
	}
	if cap(first) != 1 || cap(second) != 1 {
		t.Errorf("capacities %d and %d, want 1", cap(first), cap(second))
	}
}

// TestPeer checks the peer the state parses when it is created, and that
// a RemoteAddr rewritten afterwards (as chi's RealIP rewrites it from a
// header the client chose) does not change it.
func TestPeer(t *testing.T) {
	tests := []struct{ remote, want string }{
		{"127.0.0.1:40000", "127.0.0.1"},
		{"[::ffff:10.0.0.1]:1", "10.0.0.1"},
		{"[fe80::1%eth0]:80", "fe80::1"},
		{"10.0.0.1", "10.0.0.1"},
		{"2001:db8::1", "2001:db8::1"},
		{"@", ""},
		{"", ""},
	}
	for _, tc := range tests {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = tc.remote
		st, _, r2 := Ensure(httptest.NewRecorder(), r)
		got, ok := st.Peer()
		if ok != (tc.want != "") || (ok && got.String() != tc.want) {
			t.Errorf("RemoteAddr %q: Peer = %s, %v; want %q", tc.remote, got, ok, tc.want)
		}
		r2.RemoteAddr = "10.6.6.6:1"
		if again, againOK := st.Peer(); again != got || againOK != ok {
			t.Errorf("RemoteAddr %q rewritten to 10.6.6.6:1: Peer = %s, %v; want %s, %v", tc.remote, again, againOK, got, ok)
		}
	}
}

var stateSink *State

// TestStateSize checks the bytes one state allocation takes (its size
// class): every request pays them once.
func TestStateSize(t *testing.T) {
	const want = 480
	if got := testutil.AllocBytes(func() { stateSink = new(State) }); got > want {
		t.Errorf("a state allocation takes %d bytes, want at most %d", got, want)
	}
}

// TestKeepForm checks that a form parsed into a copy goes back to the
// request it was copied from, and that a form the original cannot take
// (it has another) has its files removed at once.
func TestKeepForm(t *testing.T) {
	dir := t.TempDir()

	orig := httptest.NewRequest(http.MethodPost, "/", nil)
	cp := orig.WithContext(orig.Context())
	KeepForm(orig, cp)
	if orig.MultipartForm != nil {
		t.Fatal("a copy without a form gave one back")
	}

	parsed := parsedForm(t, dir)
	cp.MultipartForm = parsed
	KeepForm(orig, cp)
	if orig.MultipartForm != parsed {
		t.Fatal("the copy's form was not handed back")
	}
	KeepForm(orig, orig) // the same request: nothing to do
	if orig.MultipartForm != parsed || countFiles(t, dir) != 1 {
		t.Fatal("KeepForm(r, r) changed something")
	}

	other := orig.WithContext(orig.Context())
	other.MultipartForm = parsedForm(t, dir)
	if countFiles(t, dir) != 2 {
		t.Fatal("setup: want two files")
	}
	KeepForm(orig, other)
	if orig.MultipartForm != parsed || countFiles(t, dir) != 1 {
		t.Fatalf("a second form: orig's replaced %v, %d files left, want orig's kept and 1 file", orig.MultipartForm != parsed, countFiles(t, dir))
	}
}

// parsedForm parses a multipart body with one file part larger than the
// in-memory share, so that it leaves one temporary file in dir (TMPDIR).
func parsedForm(t *testing.T, dir string) *multipart.Form {
	t.Helper()
	t.Setenv("TMPDIR", dir)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", "f.bin")
	_, _ = fw.Write(bytes.Repeat([]byte("x"), 4096))
	_ = mw.Close()
	r := httptest.NewRequest(http.MethodPost, "/", &body)
	r.Header.Set("Content-Type", mw.FormDataContentType())
	if err := r.ParseMultipartForm(16); err != nil {
		t.Fatal(err)
	}
	return r.MultipartForm
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

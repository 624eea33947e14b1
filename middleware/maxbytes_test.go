package middleware

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/stormcellar/stormcellar/httperr"
)

// bodyResult is what a test handler saw.
type bodyResult struct {
	n       int64
	data    []byte
	err     error
	gated   bool   // the writer was MaxBytes' gate
	wrapped bool   // the body was MaxBytes' reader
	enc     string // Content-Encoding left on the request
	cl      int64
}

// bodyHandler reads the body (unless mode says not to) and answers as
// mode says.
func bodyHandler(mode string, res *bodyResult) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, res.gated = w.(*gatedWriter)
		_, res.wrapped = r.Body.(*limitedBody)
		res.enc, res.cl = r.Header.Get("Content-Encoding"), r.ContentLength
		if mode != "noread" && mode != "silent" && mode != "form" {
			res.data, res.err = io.ReadAll(r.Body)
			res.n = int64(len(res.data))
		}
		switch {
		case mode == "silent":
		case mode == "httperr" && res.err != nil:
			httperr.Write(w, r, res.err)
		case mode == "500" && res.err != nil:
			http.Error(w, "read failed", http.StatusInternalServerError)
		case mode == "403":
			http.Error(w, "no", http.StatusForbidden)
		case mode == "form":
			if err := r.ParseMultipartForm(1 << 10); err != nil {
				httperr.Write(w, r, err)
				return
			}
			_, _ = io.WriteString(w, "ok")
		default: // "ignore", "noread": a 200 whatever happened
			_, _ = io.WriteString(w, "ok")
		}
	})
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

func deflated(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zlib.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

// multipartBody returns a body with n small fields and its content type.
func multipartBody(t testing.TB, n int, boundary string) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if boundary != "" {
		if err := mw.SetBoundary(boundary); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		_ = mw.WriteField(fmt.Sprintf("f%d", i), "v")
	}
	_ = mw.Close()
	return buf.Bytes(), mw.FormDataContentType()
}

func TestMaxBytes(t *testing.T) {
	t.Parallel()
	kib := func(n int) []byte { return bytes.Repeat([]byte("x"), n<<10) }
	bomb := gzipped(t, make([]byte, 1_000_000))
	parts101, ct101 := multipartBody(t, 101, "")
	parts100, ct100 := multipartBody(t, 100, "")
	parts6, ct6 := multipartBody(t, 6, "")
	parts5, ct5 := multipartBody(t, 5, "")
	emptyMembers := bytes.Repeat(gzipped(t, nil), 2000) // ~40 KB that decompresses to nothing

	tests := []struct {
		name    string
		outer   MaxBytesOptions
		inner   *MaxBytesOptions
		method  string
		body    []byte
		chunked bool
		header  map[string]string
		mode    string

		status    int
		n         int64 // bytes the handler got; -1: don't check
		gated     bool  // MaxBytes had to watch this request
		errIs     error
		wantData  []byte
		wantCause error // for 4xx refusals with an HTTPError cause
	}{
		{name: "no body", method: "GET", mode: "ignore", status: 200, n: 0},
		{name: "length within limit is not watched", outer: MaxBytesOptions{Limit: 1 << 10}, body: kib(1), mode: "ignore", status: 200, n: 1 << 10},
		{name: "length over, handler passes the error to httperr", outer: MaxBytesOptions{Limit: 1 << 10}, body: kib(2), mode: "httperr", status: 413, n: 0, gated: true},
		{name: "length over, handler ignores the error", outer: MaxBytesOptions{Limit: 1 << 10}, body: kib(2), mode: "ignore", status: 413, n: 0, gated: true},
		{name: "length over, handler never reads", outer: MaxBytesOptions{Limit: 1 << 10}, body: kib(2), mode: "noread", status: 413, n: 0, gated: true},
		{name: "length over, handler writes nothing", outer: MaxBytesOptions{Limit: 1 << 10}, body: kib(2), mode: "silent", status: 413, n: 0, gated: true},
		{name: "length over, handler answers 500", outer: MaxBytesOptions{Limit: 1 << 10}, body: kib(2), mode: "500", status: 413, n: 0, gated: true},
		{name: "length over, handler's own 403 stands", outer: MaxBytesOptions{Limit: 1 << 10}, body: kib(2), mode: "403", status: 403, n: -1, gated: true},
		{name: "default limit is 1 MiB", body: make([]byte, DefaultBodyLimit+1), mode: "ignore", status: 413, n: 0, gated: true},
		{name: "default limit, exactly 1 MiB", body: make([]byte, DefaultBodyLimit), mode: "ignore", status: 200, n: DefaultBodyLimit},
		{name: "chunked within", outer: MaxBytesOptions{Limit: 1 << 10}, body: kib(1)[:500], chunked: true, mode: "ignore", status: 200, n: 500, gated: true},
		{name: "chunked exactly the limit", outer: MaxBytesOptions{Limit: 1 << 10}, body: kib(1), chunked: true, mode: "ignore", status: 200, n: 1 << 10, gated: true},
		{name: "chunked one byte over", outer: MaxBytesOptions{Limit: 1 << 10}, body: kib(1)[:0:0], chunked: true, mode: "ignore", status: 413, n: 1 << 10, gated: true,
			errIs: &http.MaxBytesError{}},
		{name: "chunked over, handler passes the error", outer: MaxBytesOptions{Limit: 1 << 10}, body: kib(8), chunked: true, mode: "httperr", status: 413, n: 1 << 10, gated: true},
		{name: "inner raises the limit", outer: MaxBytesOptions{Limit: 1 << 10}, inner: &MaxBytesOptions{Limit: 4 << 10}, body: kib(2), mode: "ignore", status: 200, n: 2 << 10, gated: true},
		{name: "inner raises the limit, chunked", outer: MaxBytesOptions{Limit: 1 << 10}, inner: &MaxBytesOptions{Limit: 4 << 10}, body: kib(2), chunked: true, mode: "ignore", status: 200, n: 2 << 10, gated: true},
		{name: "inner raise still bounded", outer: MaxBytesOptions{Limit: 1 << 10}, inner: &MaxBytesOptions{Limit: 4 << 10}, body: kib(5), chunked: true, mode: "ignore", status: 413, n: 4 << 10, gated: true},
		{name: "inner lowers the limit", outer: MaxBytesOptions{Limit: 4 << 10}, inner: &MaxBytesOptions{Limit: 1 << 10}, body: kib(2), mode: "ignore", status: 413, n: 0, gated: true},
		{name: "inner lowers the limit, chunked", outer: MaxBytesOptions{Limit: 4 << 10}, inner: &MaxBytesOptions{Limit: 1 << 10}, body: kib(2), chunked: true, mode: "ignore", status: 413, n: 1 << 10, gated: true},
		{name: "multipart at the part limit", body: parts100, header: map[string]string{"Content-Type": ct100}, mode: "form", status: 200, n: -1, gated: true},
		{name: "multipart over the default part limit", body: parts101, header: map[string]string{"Content-Type": ct101}, mode: "form", status: 413, n: -1, gated: true, wantCause: ErrTooManyParts},
		{name: "multipart over the part limit, handler ignores", outer: MaxBytesOptions{MaxParts: 5}, body: parts6, header: map[string]string{"Content-Type": ct6}, mode: "ignore", status: 413, n: -1, gated: true},
		{name: "multipart within a custom part limit", outer: MaxBytesOptions{MaxParts: 5}, body: parts5, header: map[string]string{"Content-Type": ct5}, mode: "form", status: 200, n: -1, gated: true},
		{name: "multipart boundary over 70 bytes", body: []byte("x"), header: map[string]string{"Content-Type": "multipart/form-data; boundary=" + strings.Repeat("b", 71)}, mode: "httperr", status: 400, n: 0, gated: true},
		{name: "multipart without boundary is left to the parser", body: []byte("x"), header: map[string]string{"Content-Type": "multipart/form-data"}, mode: "form", status: 500, n: -1, gated: true},
		{name: "gzip decompressed", outer: MaxBytesOptions{Decompress: true}, body: gzipped(t, []byte("hello")), header: map[string]string{"Content-Encoding": "gzip"}, mode: "ignore", status: 200, n: 5, gated: true, wantData: []byte("hello")},
		{name: "x-gzip decompressed", outer: MaxBytesOptions{Decompress: true}, body: gzipped(t, []byte("hello")), header: map[string]string{"Content-Encoding": "x-gzip"}, mode: "ignore", status: 200, n: 5, gated: true, wantData: []byte("hello")},
		{name: "deflate decompressed", outer: MaxBytesOptions{Decompress: true}, body: deflated(t, []byte("hello")), header: map[string]string{"Content-Encoding": "deflate"}, mode: "ignore", status: 200, n: 5, gated: true, wantData: []byte("hello")},
		{name: "gzip bomb cut after decompression", outer: MaxBytesOptions{Limit: 10_000, Decompress: true}, body: bomb, header: map[string]string{"Content-Encoding": "gzip"}, mode: "ignore", status: 413, n: 10_000, gated: true},
		{name: "gzip bomb, chunked", outer: MaxBytesOptions{Limit: 10_000, Decompress: true}, body: bomb, chunked: true, header: map[string]string{"Content-Encoding": "gzip"}, mode: "httperr", status: 413, n: 10_000, gated: true},
		{name: "empty gzip members cut on compressed size", outer: MaxBytesOptions{Limit: 10_000, Decompress: true}, body: emptyMembers, chunked: true, header: map[string]string{"Content-Encoding": "gzip"}, mode: "httperr", status: 413, n: 0, gated: true},
		{name: "gzip passed on compressed without Decompress", body: gzipped(t, []byte("hello")), header: map[string]string{"Content-Encoding": "gzip"}, mode: "ignore", status: 200, n: -1, wantData: gzipped(t, []byte("hello"))},
		{name: "corrupt gzip is a 400", outer: MaxBytesOptions{Decompress: true}, body: []byte("\x1f\x8bnot gzip at all"), header: map[string]string{"Content-Encoding": "gzip"}, mode: "httperr", status: 400, n: 0, gated: true},
		{name: "empty gzip body", outer: MaxBytesOptions{Decompress: true}, body: []byte{}, chunked: true, header: map[string]string{"Content-Encoding": "gzip"}, mode: "httperr", status: 200, n: 0, gated: true},
		{name: "brotli refused", outer: MaxBytesOptions{Decompress: true}, body: []byte("x"), header: map[string]string{"Content-Encoding": "br"}, mode: "ignore", status: 415, n: 0, gated: true},
		{name: "two layers refused", outer: MaxBytesOptions{Decompress: true}, body: []byte("x"), header: map[string]string{"Content-Encoding": "gzip, gzip"}, mode: "ignore", status: 415, n: 0, gated: true},
		{name: "identity accepted", outer: MaxBytesOptions{Decompress: true}, body: []byte("plain"), header: map[string]string{"Content-Encoding": "identity"}, mode: "ignore", status: 200, n: 5, gated: true, wantData: []byte("plain")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body := tc.body
			if tc.name == "chunked one byte over" {
				body = kib(2)[:1<<10+1]
			}
			var rd io.Reader = bytes.NewReader(body)
			if tc.chunked {
				rd = hideLength{rd}
			}
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			req := httptest.NewRequest(method, "/upload", rd)
			if method == http.MethodGet {
				req = httptest.NewRequest(method, "/upload", nil)
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			var res bodyResult
			var h http.Handler = bodyHandler(tc.mode, &res)
			if tc.inner != nil {
				h = MaxBytes(*tc.inner)(h)
			}
			h = MaxBytes(tc.outer)(h)
			var ev httperr.Event
			h = httperr.Install(httperr.Options{Logger: discardLogger(), Observer: func(e httperr.Event) { ev = e }})(h)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)

			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d; body %q; handler err %v", rec.Code, tc.status, rec.Body.String(), res.err)
			}
			if tc.n >= 0 && res.n != tc.n {
				t.Errorf("handler got %d bytes, want %d", res.n, tc.n)
			}
			if tc.gated != res.gated || tc.gated != res.wrapped {
				t.Errorf("gated %v wrapped %v, want %v", res.gated, res.wrapped, tc.gated)
			}
			if tc.errIs != nil {
				var mbe *http.MaxBytesError
				if !errors.As(res.err, &mbe) {
					t.Errorf("handler error %v, want *http.MaxBytesError", res.err)
				}
			}
			if tc.wantData != nil && !bytes.Equal(res.data, tc.wantData) {
				t.Errorf("handler got %q, want %q", res.data, tc.wantData)
			}
			if tc.wantCause != nil && !errors.Is(ev.Err, tc.wantCause) {
				t.Errorf("logged cause %v, want %v", ev.Err, tc.wantCause)
			}
			if tc.status == 413 && rec.Header().Get("Connection") != "close" {
				t.Errorf("413 without Connection: close")
			}
			if tc.status == 200 && strings.Contains(tc.name, "decompressed") && (res.enc != "" || res.cl != -1) {
				t.Errorf("decompressed body still says Content-Encoding %q, length %d", res.enc, res.cl)
			}
		})
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestMaxBytesAbortsCommittedResponse: when the limit is crossed after the
// handler started its response, the connection is aborted so the client
// sees a truncated response, not a complete-looking one.
func TestMaxBytesAbortsCommittedResponse(t *testing.T) {
	t.Parallel()
	ts := startServer(t, MaxBytes(MaxBytesOptions{Limit: 64 << 10})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).EnableFullDuplex()
		_, _ = io.WriteString(w, "processing…\n")
		_ = http.NewResponseController(w).Flush()
		_, _ = io.Copy(io.Discard, r.Body) // error ignored
		_, _ = io.WriteString(w, "all stored\n")
	})))
	req, _ := http.NewRequest(http.MethodPost, ts.URL, hideLength{&patternReader{left: 1 << 20}})
	// The client either fails while still sending (the server reset the
	// connection) or gets the start of the response and then a truncation;
	// it must never get a complete response.
	resp, err := client(t).Do(req)
	if err == nil {
		b, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if rerr == nil {
			t.Fatalf("response read cleanly (%q); want it aborted", b)
		}
		if strings.Contains(string(b), "all stored") {
			t.Errorf("client got the handler's success line: %q", b)
		}
	}
	ts.waitEvents(t, 1)
	recs := ts.log.records(t)
	if len(recs) != 1 || recs[0]["committed"] != true || recs[0]["status"] != float64(413) {
		t.Errorf("log records %v, want one 413 record with committed=true", recs)
	}
}

// TestMaxBytesGzipBombTornadoCase replays the probe of Tornado 6.2 in
// ../shared/reference/tornado.md: about 1 KB of gzip that decompresses to
// 1,000,000 bytes, against a 10,000-byte limit. Tornado 6.2 handed the
// handler all 1,000,000 bytes with a 200; MaxBytes hands it 10,000 and
// answers 413.
func TestMaxBytesGzipBombTornadoCase(t *testing.T) {
	t.Parallel()
	bomb := gzipped(t, make([]byte, 1_000_000))
	if len(bomb) > 1100 {
		t.Fatalf("bomb is %d bytes, want about 1 KB", len(bomb))
	}
	got := make(chan int64, 1)
	ts := startServer(t, MaxBytes(MaxBytesOptions{Limit: 10_000, Decompress: true})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		got <- n
		_, _ = io.WriteString(w, "ok")
	})))
	req, _ := http.NewRequest(http.MethodPost, ts.URL, bytes.NewReader(bomb))
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d, want 413", resp.StatusCode)
	}
	if n := <-got; n != 10_000 {
		t.Errorf("handler got %d decompressed bytes, want 10000", n)
	}
	// A legitimate compressed upload on the same server still works.
	req, _ = http.NewRequest(http.MethodPost, ts.URL, bytes.NewReader(gzipped(t, bytes.Repeat([]byte("ok "), 3000))))
	req.Header.Set("Content-Encoding", "gzip")
	resp, err = client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || <-got != 9000 {
		t.Errorf("legitimate gzip upload: status %d", resp.StatusCode)
	}
}

// TestMaxBytesRemovesMultipartTempFiles: a form parsed by a handler behind
// a chi router spills its file to a temporary file. net/http never removes
// it, because the form lives in the router's copy of the request
// (golang/go#74455); a route-level MaxBytes does.
func TestMaxBytesRemovesMultipartTempFiles(t *testing.T) {
	t.Parallel()
	tempFile := make(chan string, 1)
	upload := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseMultipartForm(1 << 10); err != nil { // 1 KiB in memory, the rest on disk
			httperr.Write(w, r, err)
			return
		}
		f, _, err := r.FormFile("file")
		if err != nil {
			httperr.Write(w, r, err)
			return
		}
		name := ""
		if osf, ok := f.(*os.File); ok {
			name = osf.Name()
		}
		_ = f.Close()
		tempFile <- name
		_, _ = io.WriteString(w, "ok")
	})
	r := chi.NewRouter()
	r.With(MaxBytes(MaxBytesOptions{Limit: 8 << 20})).Post("/guarded", upload)
	r.Post("/bare", upload)
	ts := startServer(t, r)

	send := func(path string) string {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		fw, _ := mw.CreateFormFile("file", "big.bin")
		_, _ = fw.Write(bytes.Repeat([]byte("z"), 256<<10))
		_ = mw.Close()
		req, _ := http.NewRequest(http.MethodPost, ts.URL+path, &buf)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		resp, err := client(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d", path, resp.StatusCode)
		}
		name := <-tempFile
		if name == "" {
			t.Fatalf("%s: the file part stayed in memory; the test needs it on disk", path)
		}
		return name
	}

	if name := send("/guarded"); fileExists(name) {
		_ = os.Remove(name)
		t.Errorf("temporary file %s left behind behind MaxBytes", name)
	}
	// The anchor: without MaxBytes the file stays (then we clean it up).
	name := send("/bare")
	if !fileExists(name) {
		t.Logf("net/http removed %s itself: golang/go#74455 may be fixed", name)
	}
	_ = os.Remove(name)
}

func fileExists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}

// TestMaxBytesWriterKeepsFeatures: behind the gate, flushing, deadlines,
// ReadFrom and hijacking still work.
func TestMaxBytesWriterKeepsFeatures(t *testing.T) {
	t.Parallel()
	ts := startServer(t, MaxBytes(MaxBytesOptions{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(*gatedWriter); !ok {
			t.Error("the chunked request is not gated")
		}
		_, _ = io.Copy(io.Discard, r.Body)
		rc := http.NewResponseController(w)
		if err := rc.SetWriteDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Errorf("SetWriteDeadline: %v", err)
		}
		if r.URL.Path == "/hijack" {
			c, brw, err := rc.Hijack()
			if err != nil {
				t.Errorf("Hijack: %v", err)
				return
			}
			_, _ = brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
			_ = brw.Flush()
			_ = c.Close()
			return
		}
		_, _ = w.(io.ReaderFrom).ReadFrom(strings.NewReader("read-from "))
		if err := rc.Flush(); err != nil {
			t.Errorf("Flush: %v", err)
		}
		_, _ = io.WriteString(w, "done")
	})))
	for path, want := range map[string]string{"/": "read-from done", "/hijack": "hijacked"} {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+path, hideLength{strings.NewReader("small body")})
		resp, err := client(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != want {
			t.Errorf("%s: got %q, want %q", path, b, want)
		}
	}
}

// TestMaxBytesRefusedHijack: a request over the limit cannot be upgraded;
// the client gets the 413 instead.
func TestMaxBytesRefusedHijack(t *testing.T) {
	t.Parallel()
	var hijackErr error
	h := httperr.Install(httperr.Options{Logger: discardLogger()})(MaxBytes(MaxBytesOptions{Limit: 10})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _, hijackErr = http.NewResponseController(w).Hijack()
	})))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", strings.NewReader("more than ten bytes")))
	var mbe *http.MaxBytesError
	if rec.Code != 413 || !errors.As(hijackErr, &mbe) {
		t.Errorf("status %d, hijack error %v; want 413 and a MaxBytesError", rec.Code, hijackErr)
	}
}

// A MaxBytes below another that lowers the limit after a middleware in
// between has read part of a decompressed body: the compressed bytes
// already read can be past the new limit. The next read must fail with
// 413, not panic on a negative slice bound.
func TestMaxBytesLowerLimitAfterCompressedRead(t *testing.T) {
	t.Parallel()
	// Sixteen bytes, then empty gzip members: the decompressor's read-ahead
	// takes kilobytes of compressed input that decompress to nothing.
	body := gzipped(t, []byte("0123456789abcdef"))
	empty := gzipped(t, nil)
	for range 1000 {
		body = append(body, empty...)
	}
	peek := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var b [16]byte
			if _, err := io.ReadFull(r.Body, b[:]); err != nil {
				t.Errorf("peek: %v", err)
			}
			next.ServeHTTP(w, r)
		})
	}
	var res bodyResult
	h := httperr.Install(httperr.Options{Logger: discardLogger()})(
		MaxBytes(MaxBytesOptions{Limit: 1 << 20, Decompress: true})(
			peek(MaxBytes(MaxBytesOptions{Limit: 1024})(bodyHandler("httperr", &res)))))
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	req.ContentLength = -1
	req.Header.Set("Content-Encoding", "gzip")
	rec := httptest.NewRecorder()
	func() {
		defer func() {
			if v := recover(); v != nil {
				t.Fatalf("panicked: %v", v)
			}
		}()
		h.ServeHTTP(rec, req)
	}()
	var mbe *http.MaxBytesError
	if rec.Code != http.StatusRequestEntityTooLarge || !errors.As(res.err, &mbe) {
		t.Fatalf("got %d, read error %v; want 413 and a MaxBytesError", rec.Code, res.err)
	}
}

// BenchmarkMaxBytesContentType: requests whose Content-Type MaxBytes must
// look at. A declared length within the limit that is not multipart is
// passed on untouched whatever its type; a multipart body is watched.
func BenchmarkMaxBytesContentType(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 512)
	readAll := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var buf [1024]byte
		for {
			if _, err := r.Body.Read(buf[:]); err != nil {
				break
			}
		}
		bare(w, r)
	})
	for _, c := range []struct{ name, ct string }{
		{"json", "application/json"},
		{"form_urlencoded", "application/x-www-form-urlencoded"},
		{"text_charset", "text/plain; charset=utf-8"},
		{"multipart", "multipart/form-data; boundary=0123456789abcdef"},
	} {
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		req.Header.Set("Content-Type", c.ct)
		b.Run(c.name, func(b *testing.B) {
			runBench(b, req, body, []benchCase{
				{"MaxBytes_standalone", MaxBytes(MaxBytesOptions{})(readAll)},
				{"state+MaxBytes", withState(MaxBytes(MaxBytesOptions{})(readAll))},
			})
		})
	}
}

// partsBody returns a multipart body of n fields f0…, with values v0…,
// delimited by boundary, closed by the closing delimiter if closed.
func partsBody(n int, boundary string, closed bool) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "--%s\r\nContent-Disposition: form-data; name=\"f%d\"\r\n\r\nv%d\r\n", boundary, i, i)
	}
	if closed {
		fmt.Fprintf(&b, "--%s--\r\n", boundary)
	}
	return b.Bytes()
}

// partsSeen is what a multipart handler got.
type partsSeen struct {
	fields []string // name=value, in order
	err    error    // the error that ended the handler's parse, if any
}

// multipartHandler parses the body as mode says and sends what it got to
// seen. "stream" reads the parts with r.MultipartReader, then the rest of
// the body, and answers 200 whatever error ends it (a careless handler);
// "form" calls ParseMultipartForm and passes its error to httperr.
func multipartHandler(mode string, seen chan<- partsSeen) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var got partsSeen
		defer func() { seen <- got }()
		if mode == "form" {
			if got.err = r.ParseMultipartForm(1 << 20); got.err != nil {
				httperr.Write(w, r, got.err)
				return
			}
			for i := range len(r.MultipartForm.Value) {
				name := fmt.Sprintf("f%d", i)
				got.fields = append(got.fields, name+"="+r.FormValue(name))
			}
			_, _ = io.WriteString(w, "ok")
			return
		}
		mr, err := r.MultipartReader()
		if err != nil {
			got.err = err
			httperr.Write(w, r, err)
			return
		}
		for {
			p, err := mr.NextPart()
			if err != nil {
				if err != io.EOF {
					got.err = err
				}
				break
			}
			v, err := io.ReadAll(p)
			got.fields = append(got.fields, p.FormName()+"="+string(v))
			if err != nil {
				got.err = err
				break
			}
		}
		if _, err := io.Copy(io.Discard, r.Body); got.err == nil {
			got.err = err
		}
		_, _ = io.WriteString(w, "ok")
	})
}

// partNames returns the field names of name=value pairs.
func partNames(fields []string) []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i], _, _ = strings.Cut(f, "=")
	}
	return out
}

// TestMaxBytesMultipartContentTypeForms: net/http reads Content-Type with
// mime.ParseMediaType, which lowercases and trims with Unicode rules, so a
// value led by a non-breaking space or spelled with a dotted capital I is
// multipart to the handler. MaxBytes must count its parts and check its
// boundary as it does for the plain spelling, on a real server, with a
// declared length and chunked: the attacker gets a 413 and the handler
// never more than MaxParts parts; a legitimate upload gets a 200 with all
// its parts.
func TestMaxBytesMultipartContentTypeForms(t *testing.T) {
	t.Parallel()
	const boundary = "Bnd0123456789"
	seen := make(chan partsSeen, 1)
	mux := http.NewServeMux()
	mux.Handle("/stream", multipartHandler("stream", seen))
	mux.Handle("/form", multipartHandler("form", seen))
	ts := startServer(t, MaxBytes(MaxBytesOptions{})(mux))
	c := client(t)

	forms := []struct{ name, ct string }{
		{"plain", "multipart/form-data; boundary=%s"},
		{"NBSP", "\u00a0multipart/form-data; boundary=%s"},
		{"dotted capital I", "MULTİPART/form-data; boundary=%s"},
		{"NEL and ideographic space", "\u0085\u3000Multipart/Form-Data; boundary=%s"},
	}
	legit := partsBody(3, boundary, true)
	attack := partsBody(3*DefaultMaxParts, boundary, true)
	longB := strings.Repeat("b", maxBoundary+1)
	for _, form := range forms {
		ct := fmt.Sprintf(form.ct, boundary)
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "multipart/form-data" {
			t.Fatalf("%q: mime.ParseMediaType gives %q, %v; the case tests nothing", ct, mt, err)
		}
		for _, chunked := range []bool{false, true} {
			for _, mode := range []string{"stream", "form"} {
				send := func(body []byte, ct string) (int, partsSeen) {
					t.Helper()
					var rd io.Reader = bytes.NewReader(body)
					if chunked {
						rd = hideLength{rd}
					}
					req, _ := http.NewRequest(http.MethodPost, ts.URL+"/"+mode, rd)
					req.Header.Set("Content-Type", ct)
					resp, err := c.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					return resp.StatusCode, <-seen
				}
				name := fmt.Sprintf("%s/chunked=%v/%s", form.name, chunked, mode)
				t.Run(name+"/too many parts", func(t *testing.T) {
					status, got := send(attack, ct)
					if status != http.StatusRequestEntityTooLarge {
						t.Errorf("status %d, want 413", status)
					}
					if len(got.fields) > DefaultMaxParts {
						t.Errorf("handler got %d parts, more than MaxParts %d", len(got.fields), DefaultMaxParts)
					}
					if !errors.Is(got.err, ErrTooManyParts) {
						t.Errorf("handler's parse ended with %v, want ErrTooManyParts", got.err)
					}
				})
				t.Run(name+"/boundary over 70 bytes", func(t *testing.T) {
					status, got := send(partsBody(3, longB, true), fmt.Sprintf(form.ct, longB))
					if status != http.StatusBadRequest || len(got.fields) != 0 || !errors.Is(got.err, ErrBoundary) {
						t.Errorf("status %d, handler got %q, %v; want 400, no part, ErrBoundary", status, got.fields, got.err)
					}
				})
				t.Run(name+"/legitimate", func(t *testing.T) {
					status, got := send(legit, ct)
					want := []string{"f0=v0", "f1=v1", "f2=v2"}
					if status != http.StatusOK || got.err != nil || !slices.Equal(got.fields, want) {
						t.Errorf("status %d, handler got %q, %v; want 200 and %q", status, got.fields, got.err, want)
					}
				})
			}
		}
	}
}

// TestMaxBytesMaxPartsExact: MaxParts is the most parts a streaming reader
// can get. With MaxParts 2, a body of 2 parts and its closing delimiter
// passes; the delimiter that would open a third part is refused before the
// reader sees that part, and so is any delimiter after the closing one,
// with the body read whole or one byte at a time, with a declared length
// or without.
func TestMaxBytesMaxPartsExact(t *testing.T) {
	t.Parallel()
	const b = "xyzzy"
	two := []string{"f0=v0", "f1=v1"}
	tests := []struct {
		name   string
		body   []byte
		status int
		fields []string
	}{
		{"2 parts, closed", partsBody(2, b, true), 200, two},
		{"2 parts, closed without CRLF", bytes.TrimSuffix(partsBody(2, b, true), []byte("\r\n")), 200, two},
		{"2 parts, closed, with an epilogue", append(partsBody(2, b, true), "epilogue\r\n"...), 200, two},
		{"1 part, closed", partsBody(1, b, true), 200, two[:1]},
		{"3 parts, not closed", partsBody(3, b, false), 413, two},
		{"3 parts, closed", partsBody(3, b, true), 413, two},
		{"30 parts, closed", partsBody(30, b, true), 413, two},
		{"delimiter 3 then the end", append(partsBody(2, b, false), "--"+b...), 413, two},
		{"delimiter 3, one dash, then the end", append(partsBody(2, b, false), "--"+b+"-"...), 413, two},
		{"delimiter 3, one dash, then a line", append(partsBody(2, b, false), "--"+b+"-\r\n\r\nv2\r\n--"+b+"--\r\n"...), 413, two},
		{"closing delimiter, then another delimiter", append(partsBody(2, b, true), "--"+b+"\r\nContent-Disposition: form-data; name=\"f2\"\r\n\r\nv2\r\n"...), 413, two},
	}
	for _, tc := range tests {
		for _, oneByte := range []bool{false, true} {
			for _, declared := range []bool{true, false} {
				t.Run(fmt.Sprintf("%s/oneByteReads=%v/declared=%v", tc.name, oneByte, declared), func(t *testing.T) {
					t.Parallel()
					var rd io.Reader = bytes.NewReader(tc.body)
					if oneByte {
						rd = iotest.OneByteReader(rd)
					}
					req := httptest.NewRequest(http.MethodPost, "/", rd)
					req.ContentLength = -1
					if declared {
						req.ContentLength = int64(len(tc.body))
					}
					req.Header.Set("Content-Type", "multipart/form-data; boundary="+b)
					seen := make(chan partsSeen, 1)
					h := httperr.Install(httperr.Options{Logger: discardLogger()})(MaxBytes(MaxBytesOptions{MaxParts: 2})(multipartHandler("stream", seen)))
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, req)
					got := <-seen
					if rec.Code != tc.status {
						t.Errorf("status %d, want %d", rec.Code, tc.status)
					}
					// A refused body can leave the last part's value with
					// the bytes the parser took for data ("--xyzzy-…"):
					// only its name is compared.
					if tc.status == 200 && !slices.Equal(got.fields, tc.fields) ||
						!slices.Equal(partNames(got.fields), partNames(tc.fields)) {
						t.Errorf("handler got parts %q, want %q", got.fields, tc.fields)
					}
					if tc.status == 413 && !errors.Is(got.err, ErrTooManyParts) {
						t.Errorf("handler's parse ended with %v, want ErrTooManyParts", got.err)
					}
					if tc.status == 200 && got.err != nil {
						t.Errorf("handler's parse failed: %v", got.err)
					}
				})
			}
		}
	}
}

// TestMaxBytesMultipartHTTP2LeadingSpace: HTTP/2 passes a header value on
// as sent, leading spaces and tabs included (HTTP/1's reader trims them),
// and mime.ParseMediaType trims them, so " multipart/form-data" is
// multipart to the handler. MaxBytes counts its parts too: too many is a
// 413, a legitimate upload a 200 with its parts.
func TestMaxBytesMultipartHTTP2LeadingSpace(t *testing.T) {
	t.Parallel()
	const boundary = "Bnd0123456789"
	seen := make(chan partsSeen, 1)
	protos := make(chan string, 1)
	h := MaxBytes(MaxBytesOptions{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		protos <- r.Proto
		multipartHandler("stream", seen).ServeHTTP(w, r)
	}))
	srv := httptest.NewUnstartedServer(httperr.Install(httperr.Options{Logger: discardLogger()})(h))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	for _, ct := range []string{" multipart/form-data; boundary=" + boundary, "\tMultipart/Form-Data; boundary=" + boundary} {
		for _, tc := range []struct {
			name   string
			body   []byte
			status int
		}{
			{"too many parts", partsBody(3*DefaultMaxParts, boundary, true), http.StatusRequestEntityTooLarge},
			{"legitimate", partsBody(3, boundary, true), http.StatusOK},
		} {
			t.Run(fmt.Sprintf("%q/%s", ct, tc.name), func(t *testing.T) {
				req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(tc.body))
				req.Header.Set("Content-Type", ct)
				resp, err := srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				proto, got := <-protos, <-seen
				if proto != "HTTP/2.0" {
					t.Fatalf("request went over %s, want HTTP/2.0", proto)
				}
				if resp.StatusCode != tc.status {
					t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
				}
				if tc.status == http.StatusOK {
					if want := []string{"f0=v0", "f1=v1", "f2=v2"}; got.err != nil || !slices.Equal(got.fields, want) {
						t.Errorf("handler got %q, %v; want %q", got.fields, got.err, want)
					}
				} else if len(got.fields) > DefaultMaxParts || !errors.Is(got.err, ErrTooManyParts) {
					t.Errorf("handler got %d parts, %v; want at most %d and ErrTooManyParts", len(got.fields), got.err, DefaultMaxParts)
				}
			})
		}
	}
}

// TestMaxBytesPartsCountedInTheReadOverTheLimit: the read that crosses
// the body limit is still counted for parts, so a streaming handler never
// gets more than MaxParts parts from the bytes buffered before the limit
// error, whether the raw body (chunked) or the decompressed one crosses it.
func TestMaxBytesPartsCountedInTheReadOverTheLimit(t *testing.T) {
	t.Parallel()
	const limit = 20000
	var b strings.Builder
	b.WriteString("--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n")
	b.WriteString("--B\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\n")
	for b.Len() < limit-1500 {
		b.WriteByte('y')
	}
	for i := range 100 { // tiny parts, all just before the limit
		fmt.Fprintf(&b, "\r\n--B\r\n\r\nz%d", i)
	}
	for b.Len() < limit+5000 {
		b.WriteByte('q')
	}
	body := b.String()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(body))
	_ = zw.Close()
	for _, tc := range []struct {
		name string
		req  func() *http.Request
		opts MaxBytesOptions
	}{
		{"chunked", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
			r.ContentLength = -1
			return r
		}, MaxBytesOptions{Limit: limit, MaxParts: 2}},
		{"gzip", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(gz.Bytes()))
			r.Header.Set("Content-Encoding", "gzip")
			return r
		}, MaxBytesOptions{Limit: limit, MaxParts: 2, Decompress: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			parts := 0
			h := MaxBytes(tc.opts)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mr, err := r.MultipartReader()
				if err != nil {
					return
				}
				for {
					p, err := mr.NextPart()
					if err != nil {
						return
					}
					parts++
					_, _ = io.Copy(io.Discard, p)
				}
			}))
			r := tc.req()
			r.Header.Set("Content-Type", "multipart/form-data; boundary=B")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != http.StatusRequestEntityTooLarge || parts > 2 {
				t.Errorf("%d, the streaming handler got %d parts; want 413 and at most MaxParts (2)", rec.Code, parts)
			}
		})
	}
}

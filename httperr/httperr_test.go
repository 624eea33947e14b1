package httperr_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	chimw "github.com/go-chi/chi/v5/middleware"
	"go.uber.org/goleak"

	"github.com/stormcellar/stormcellar/httperr"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// logSink collects JSON log records.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *logSink) records(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(s.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("bad log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func newLogger() (*slog.Logger, *logSink) {
	s := &logSink{}
	return slog.New(slog.NewJSONHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug})), s
}

// serve runs h behind Install with a fresh logger and returns the recorder
// and the log records.
func serve(t *testing.T, opts httperr.Options, h http.Handler, req *http.Request) (*httptest.ResponseRecorder, []map[string]any) {
	t.Helper()
	logger, sink := newLogger()
	if opts.Logger == nil {
		opts.Logger = logger
	}
	rec := httptest.NewRecorder()
	httperr.Install(opts)(h).ServeHTTP(rec, req)
	return rec, sink.records(t)
}

func failWith(err error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { httperr.Write(w, r, err) })
}

func TestNegotiate(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("application/x-junk;q=0.5, ", 400) + "application/json"
	tests := []struct {
		name   string
		accept string
		want   httperr.Format
	}{
		{"empty", "", httperr.FormatText},
		{"any", "*/*", httperr.FormatText},
		{"browser", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", httperr.FormatHTML},
		{"json", "application/json", httperr.FormatJSON},
		{"problem json", "application/problem+json", httperr.FormatJSON},
		{"json with any", "application/json, */*;q=0.1", httperr.FormatJSON},
		{"plain", "text/plain", httperr.FormatText},
		{"text wildcard", "text/*", httperr.FormatText},
		{"html lower q", "text/html;q=0.2, application/json;q=0.9", httperr.FormatJSON},
		{"html refused", "text/html;q=0, */*", httperr.FormatText},
		{"case", "TEXT/HTML", httperr.FormatHTML},
		{"spaces", "  application/json ; q=1.0 ", httperr.FormatJSON},
		{"nothing acceptable", "image/png", httperr.FormatText},
		{"all zero", "*/*;q=0", httperr.FormatText},
		{"bad q ignored", "text/html;q=2, application/json", httperr.FormatJSON},
		{"bad q text", "text/html;q=abc", httperr.FormatText},
		{"garbage", "\x00\xff;;;,,,//", httperr.FormatText},
		{"ten kilobytes, json past the limit", long, httperr.FormatText},
		{"equal exact: text first", "application/json, text/plain", httperr.FormatText},
		{"exact beats wildcard at equal q", "*/*, text/html", httperr.FormatHTML},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := httperr.Negotiate(tc.accept); got != tc.want {
				t.Errorf("Negotiate(%.40q) = %v, want %v", tc.accept, got, tc.want)
			}
		})
	}
}

func TestWriteFormats(t *testing.T) {
	t.Parallel()
	tests := []struct {
		accept   string
		wantCT   string
		wantBody []string
	}{
		{"text/html", "text/html; charset=utf-8", []string{"<title>404: Not Found</title>", "Request ID: <code>"}},
		{"application/json", "application/json; charset=utf-8", []string{`{"error":{"status":404,"message":"Not Found","request_id":"`}},
		{"", "text/plain; charset=utf-8", []string{"404 Not Found\nrequest_id: "}},
	}
	for _, tc := range tests {
		t.Run(tc.wantCT, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest("GET", "/x", nil)
			req.Header.Set("Accept", tc.accept)
			rec, _ := serve(t, httperr.Options{}, failWith(httperr.NotFound(nil)), req)
			if rec.Code != 404 {
				t.Fatalf("status %d", rec.Code)
			}
			h := rec.Header()
			for k, v := range map[string]string{
				"Content-Type": tc.wantCT, "X-Content-Type-Options": "nosniff",
				"Cache-Control": "no-store", "Vary": "Accept",
			} {
				if h.Get(k) != v {
					t.Errorf("%s = %q, want %q", k, h.Get(k), v)
				}
			}
			if h.Get("Content-Length") != fmt.Sprint(rec.Body.Len()) {
				t.Errorf("Content-Length %q for %d bytes", h.Get("Content-Length"), rec.Body.Len())
			}
			for _, want := range tc.wantBody {
				if !strings.Contains(rec.Body.String(), want) {
					t.Errorf("body %q lacks %q", rec.Body.String(), want)
				}
			}
			if strings.Contains(tc.wantCT, "json") && !json.Valid(rec.Body.Bytes()) {
				t.Errorf("invalid JSON %q", rec.Body.String())
			}
		})
	}
}

// The cause is for the log only: a secret in it must never reach the client.
func TestCauseNeverInBody(t *testing.T) {
	t.Parallel()
	const secret = "postgres://admin:hunter2@db/prod"
	cause := fmt.Errorf("query failed: dial %s: *net.OpError", secret)
	for _, accept := range []string{"text/html", "application/json", "text/plain"} {
		for name, err := range map[string]error{
			"plain":      cause,
			"http error": httperr.Internal(cause),
			"wrapped":    fmt.Errorf("load: %w", httperr.New(502, httperr.KindInternal, cause)),
		} {
			t.Run(accept+"/"+name, func(t *testing.T) {
				t.Parallel()
				req := httptest.NewRequest("GET", "/orders?token=abc123", nil)
				req.Header.Set("Accept", accept)
				rec, logs := serve(t, httperr.Options{}, failWith(err), req)
				body := rec.Body.String()
				for _, leak := range []string{"hunter2", "postgres", "net.OpError", "query failed"} {
					if strings.Contains(body, leak) {
						t.Errorf("body leaks %q: %s", leak, body)
					}
				}
				if len(logs) != 1 {
					t.Fatalf("%d log records, want 1", len(logs))
				}
				rec0 := logs[0]
				if !strings.Contains(fmt.Sprint(rec0["err"]), "hunter2") {
					t.Errorf("log lacks the cause: %v", rec0)
				}
				if rec0["level"] != "ERROR" || rec0["path"] != "/orders" {
					t.Errorf("log record %v", rec0)
				}
				if strings.Contains(fmt.Sprint(rec0), "abc123") {
					t.Errorf("log holds the query string: %v", rec0)
				}
				if id, _ := rec0["request_id"].(string); id == "" || !strings.Contains(body, id) {
					t.Errorf("request id %q not in body %q", id, body)
				}
			})
		}
	}
}

func TestMessageEscaped(t *testing.T) {
	t.Parallel()
	msg := "<script>alert(1)</script>\r\nSet-Cookie: x=1 & \"quoted\" 'single' \u2028"
	for _, accept := range []string{"text/html", "application/json", "text/plain"} {
		t.Run(accept, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest("POST", "/", nil)
			req.Header.Set("Accept", accept)
			rec, _ := serve(t, httperr.Options{}, failWith(httperr.BadRequest(msg, nil)), req)
			body := rec.Body.String()
			if rec.Code != 400 {
				t.Fatalf("status %d", rec.Code)
			}
			if strings.ContainsAny(strings.TrimSuffix(body, "\n"), "\r\u2028") {
				t.Errorf("control character kept: %q", body)
			}
			if strings.Contains(body, "\nSet-Cookie") {
				t.Errorf("line injection: %q", body)
			}
			switch accept {
			case "text/html":
				if strings.Contains(body, "<script") || !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
					t.Errorf("HTML not escaped: %s", body)
				}
			case "application/json":
				if strings.Contains(body, "<") || !json.Valid(rec.Body.Bytes()) {
					t.Errorf("JSON not escaped: %s", body)
				}
				var v struct{ Error struct{ Message string } }
				_ = json.Unmarshal(rec.Body.Bytes(), &v)
				if !strings.HasPrefix(v.Error.Message, "<script>alert(1)</script>") {
					t.Errorf("JSON message round trip: %q", v.Error.Message)
				}
			}
		})
	}
}

// strictWriter fails the test on a second WriteHeader, as a real server
// would log "superfluous response.WriteHeader".
type strictWriter struct {
	t      *testing.T
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *strictWriter) Header() http.Header { return w.header }
func (w *strictWriter) WriteHeader(code int) {
	if w.status != 0 {
		w.t.Errorf("superfluous WriteHeader(%d) after %d", code, w.status)
		return
	}
	w.status = code
}
func (w *strictWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(200)
	}
	return w.body.Write(p)
}

func TestCommittedResponseGetsNothingMore(t *testing.T) {
	t.Parallel()
	logger, sink := newLogger()
	var events []httperr.Event
	h := httperr.Install(httperr.Options{Logger: logger, Observer: func(e httperr.Event) { events = append(events, e) }})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "partial")
			httperr.Write(w, r, errors.New("disk failed mid-stream"))
		}))
	sw := &strictWriter{t: t, header: http.Header{}}
	h.ServeHTTP(sw, httptest.NewRequest("GET", "/", nil))
	if sw.status != 200 || sw.body.String() != "partial" {
		t.Errorf("got %d %q, want the handler's 200 \"partial\" untouched", sw.status, sw.body.String())
	}
	logs := sink.records(t)
	if len(logs) != 1 || logs[0]["committed"] != true || !strings.Contains(logs[0]["msg"].(string), "already committed") {
		t.Errorf("log %v", logs)
	}
	if len(events) != 1 || !events[0].Committed || events[0].Status != 500 {
		t.Errorf("events %+v", events)
	}
}

// A handler that fails after streaming part of a response must not leave
// the client with a body that looks complete.
func TestHandlerFuncAbortsCommittedResponse(t *testing.T) {
	t.Parallel()
	logger, _ := newLogger()
	srv := httptest.NewServer(httperr.Install(httperr.Options{Logger: logger})(httperr.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) error {
			_, _ = io.WriteString(w, "first chunk,")
			http.NewResponseController(w).Flush()
			return errors.New("upstream died")
		})))
	defer srv.Close()
	srv.Config.ErrorLog = slog.NewLogLogger(logger.Handler(), slog.LevelError)

	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Fatalf("body %q read cleanly; want a truncated response", body)
	}
	if string(body) != "first chunk," {
		t.Errorf("body %q", body)
	}
}

func TestHandlerFuncWritesError(t *testing.T) {
	t.Parallel()
	h := httperr.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		return fmt.Errorf("lookup: %w", httperr.NotFound(errors.New("no row")))
	})
	ok := httperr.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		_, err := io.WriteString(w, "fine")
		return err
	})
	rec, logs := serve(t, httperr.Options{}, h, httptest.NewRequest("GET", "/item/9", nil))
	if rec.Code != 404 || len(logs) != 1 || logs[0]["level"] != "WARN" || logs[0]["kind"] != "not_found" {
		t.Errorf("got %d, logs %v", rec.Code, logs)
	}
	if !strings.Contains(fmt.Sprint(logs[0]["err"]), "lookup: ") {
		t.Errorf("the logged cause should be the whole chain: %v", logs[0]["err"])
	}
	rec, logs = serve(t, httperr.Options{}, ok, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 200 || rec.Body.String() != "fine" || len(logs) != 0 {
		t.Errorf("success path: %d %q %v", rec.Code, rec.Body.String(), logs)
	}
}

func TestObserverSeesEachRejection(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	seen := map[httperr.Kind]int{}
	obs := func(e httperr.Event) {
		mu.Lock()
		defer mu.Unlock()
		seen[e.Kind]++
		if e.RequestID == "" || e.Request == nil {
			t.Errorf("event without request id or request: %+v", e)
		}
	}
	errs := []error{
		httperr.NotFound(nil),
		httperr.TooManyRequests(time.Second, nil),
		httperr.Forbidden(httperr.KindOrigin, errors.New("evil.example")),
		&http.MaxBytesError{Limit: 10},
		errors.New("boom"),
		nil,
	}
	for _, err := range errs {
		serve(t, httperr.Options{Observer: obs}, failWith(err), httptest.NewRequest("GET", "/", nil))
	}
	want := map[httperr.Kind]int{httperr.KindNotFound: 1, httperr.KindRateLimit: 1, httperr.KindOrigin: 1,
		httperr.KindBodyTooLarge: 1, httperr.KindInternal: 2}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("observer saw %v, want %v", seen, want)
	}
}

func TestObserverPanicIsContained(t *testing.T) {
	t.Parallel()
	rec, logs := serve(t, httperr.Options{Observer: func(httperr.Event) { panic("metrics bug") }},
		failWith(httperr.NotFound(nil)), httptest.NewRequest("GET", "/", nil))
	if rec.Code != 404 || len(logs) != 2 || logs[1]["msg"] != "httperr observer panicked" {
		t.Errorf("got %d, logs %v", rec.Code, logs)
	}
}

func TestCustomRendererUsedByEveryPath(t *testing.T) {
	t.Parallel()
	renderer := httperr.RendererFunc(func(dst *bytes.Buffer, r *http.Request, p httperr.Problem) (string, error) {
		fmt.Fprintf(dst, "custom %d %s %s", p.Status, p.Kind, p.RequestID)
		return "text/x-custom; charset=utf-8", nil
	})
	paths := map[string]http.Handler{
		"Write":         failWith(errors.New("x")),
		"WriteStatus":   http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { httperr.WriteStatus(w, r, 405) }),
		"HandlerFunc":   httperr.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return httperr.NotFound(nil) }),
		"MaxBytesError": failWith(&http.MaxBytesError{Limit: 1}),
		"Deadline":      failWith(context.DeadlineExceeded),
		"nil":           failWith(nil),
	}
	for name, h := range paths {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rec, _ := serve(t, httperr.Options{Renderer: renderer}, h, httptest.NewRequest("GET", "/", nil))
			if !strings.HasPrefix(rec.Body.String(), "custom ") || rec.Header().Get("Content-Type") != "text/x-custom; charset=utf-8" {
				t.Errorf("%s: got %q (%s)", name, rec.Body.String(), rec.Header().Get("Content-Type"))
			}
		})
	}
}

func TestFailingRendererFallsBack(t *testing.T) {
	t.Parallel()
	for name, r := range map[string]httperr.Renderer{
		"error": httperr.RendererFunc(func(dst *bytes.Buffer, _ *http.Request, _ httperr.Problem) (string, error) {
			dst.WriteString("half a pa")
			return "", errors.New("template broke")
		}),
		"panic": httperr.RendererFunc(func(*bytes.Buffer, *http.Request, httperr.Problem) (string, error) {
			panic("renderer bug")
		}),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rec, logs := serve(t, httperr.Options{Renderer: r}, failWith(httperr.NotFound(nil)), httptest.NewRequest("GET", "/", nil))
			if rec.Code != 404 || !strings.HasPrefix(rec.Body.String(), "404 Not Found\n") {
				t.Errorf("got %d %q", rec.Code, rec.Body.String())
			}
			if len(logs) != 1 || logs[0]["render_err"] == nil {
				t.Errorf("want one record with render_err: %v", logs)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantLog    string
	}{
		{"nil error", nil, 500, "nil error"},
		{"status 42", &httperr.HTTPError{Status: 42}, 500, "status outside 400-599 (42)"},
		{"status 200", httperr.New(200, "", nil), 500, "status outside 400-599 (200)"},
		{"status 302", &httperr.HTTPError{Status: 302, Header: http.Header{"Location": {"//evil.example"}}}, 500, "(302)"},
		{"status 700", &httperr.HTTPError{Status: 700}, 500, "(700)"},
		{"zero HTTPError", &httperr.HTTPError{}, 500, ""},
		{"status 499 text", &httperr.HTTPError{Status: 499}, 499, ""},
		{"unknown 4xx", &httperr.HTTPError{Status: 460}, 460, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec, logs := serve(t, httperr.Options{}, failWith(tc.err), httptest.NewRequest("GET", "/", nil))
			if rec.Code != tc.wantStatus {
				t.Errorf("status %d, want %d", rec.Code, tc.wantStatus)
			}
			if rec.Header().Get("Location") != "" {
				t.Errorf("Location leaked: %q", rec.Header().Get("Location"))
			}
			if len(logs) != 1 || !strings.Contains(fmt.Sprint(logs[0]["err"]), tc.wantLog) {
				t.Errorf("logs %v, want err containing %q", logs, tc.wantLog)
			}
		})
	}
}

func TestMessageIsCut(t *testing.T) {
	t.Parallel()
	msg := strings.Repeat("é", 1000) // 2000 bytes
	rec, _ := serve(t, httperr.Options{}, failWith(httperr.BadRequest(msg, nil)), httptest.NewRequest("GET", "/", nil))
	body := rec.Body.String()
	if n := strings.Count(body, "é"); n != 256 {
		t.Errorf("kept %d runes of the message, want 256 (512 bytes)", n)
	}
	if !strings.HasPrefix(body, "400 Bad Request: éé") {
		t.Errorf("body %q", body[:40])
	}
}

func TestHeaders(t *testing.T) {
	t.Parallel()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Set-Cookie", "session=half-done")
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Disposition", "attachment; filename=report.csv")
		w.Header().Set("Content-Security-Policy", "default-src 'self'")
		w.Header().Set("Vary", "Origin")
		httperr.Write(w, r, &httperr.HTTPError{Status: 429, Header: http.Header{
			"Retry-After":            {"7"},
			"content-type":           {"text/html"},
			"X-Content-Type-Options": {"off"},
			"Set-Cookie":             {"evil=1"},
		}})
	})
	rec, _ := serve(t, httperr.Options{}, h, httptest.NewRequest("GET", "/", nil))
	got := rec.Header()
	for k, want := range map[string]string{
		"Set-Cookie": "", "Content-Encoding": "", "Content-Disposition": "",
		"Content-Security-Policy": "default-src 'self'", "Retry-After": "7",
		"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff",
	} {
		if got.Get(k) != want {
			t.Errorf("%s = %q, want %q", k, got.Get(k), want)
		}
	}
	if fmt.Sprint(got["Vary"]) != "[Origin Accept]" {
		t.Errorf("Vary %v", got["Vary"])
	}
}

func TestHead(t *testing.T) {
	t.Parallel()
	rec, _ := serve(t, httperr.Options{}, failWith(httperr.NotFound(nil)), httptest.NewRequest("HEAD", "/", nil))
	if rec.Code != 404 || rec.Body.Len() != 0 || rec.Header().Get("Content-Length") == "0" {
		t.Errorf("HEAD: %d, %d body bytes, Content-Length %q", rec.Code, rec.Body.Len(), rec.Header().Get("Content-Length"))
	}
}

func TestContextErrors(t *testing.T) {
	t.Parallel()
	expired, cancel := context.WithDeadline(context.Background(), time.Unix(1, 0))
	defer cancel()
	gone, cancelGone := context.WithCancel(context.Background())
	cancelGone()
	tests := []struct {
		name   string
		ctx    context.Context
		err    error
		status int
		kind   string
		level  string
	}{
		{"own deadline", expired, context.DeadlineExceeded, 503, "timeout", "ERROR"},
		{"upstream deadline", context.Background(), fmt.Errorf("quote: %w", context.DeadlineExceeded), 504, "timeout", "ERROR"},
		{"client gone", gone, context.Canceled, 499, "canceled", "INFO"},
		{"canceled but client here", context.Background(), context.Canceled, 500, "internal", "ERROR"},
		{"body too large", context.Background(), fmt.Errorf("read: %w", &http.MaxBytesError{Limit: 5}), 413, "body_too_large", "WARN"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest("GET", "/", nil).WithContext(tc.ctx)
			rec, logs := serve(t, httperr.Options{}, failWith(tc.err), req)
			if rec.Code != tc.status || len(logs) != 1 || logs[0]["kind"] != tc.kind || logs[0]["level"] != tc.level {
				t.Errorf("got %d %v", rec.Code, logs)
			}
		})
	}
}

func TestInsecureExposeCause(t *testing.T) {
	t.Parallel()
	cause := errors.New("open /srv/app/config.yaml: <permission denied>")
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Accept", "text/html")
	rec, _ := serve(t, httperr.Options{}, failWith(cause), req)
	if strings.Contains(rec.Body.String(), "config.yaml") {
		t.Fatalf("cause shown by default: %s", rec.Body.String())
	}
	rec, _ = serve(t, httperr.Options{InsecureExposeCause: true}, failWith(cause), req)
	if !strings.Contains(rec.Body.String(), "config.yaml: &lt;permission denied&gt;") {
		t.Errorf("cause not shown (escaped) in insecure mode: %s", rec.Body.String())
	}
}

// Without Install, Write still answers safely; it cannot know about commits.
func TestWriteWithoutInstall(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	httperr.Write(rec, httptest.NewRequest("GET", "/", nil), httperr.NotFound(nil))
	if rec.Code != 404 || !strings.Contains(rec.Body.String(), "request_id: ") {
		t.Errorf("got %d %q", rec.Code, rec.Body.String())
	}
}

func TestRequestIDStable(t *testing.T) {
	t.Parallel()
	var id1, id2 string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if httperr.RequestID(r.Context()) != "" {
			t.Error("request id before any error")
		}
		httperr.Write(httptest.NewRecorder(), r, errors.New("first"))
		id1 = httperr.RequestID(r.Context())
		httperr.Write(w, r, errors.New("second"))
		id2 = httperr.RequestID(r.Context())
	})
	rec, logs := serve(t, httperr.Options{}, h, httptest.NewRequest("GET", "/", nil))
	if id1 == "" || id1 != id2 || len(logs) != 2 || logs[0]["request_id"] != id1 || !strings.Contains(rec.Body.String(), id1) {
		t.Errorf("ids %q %q, logs %v", id1, id2, logs)
	}
}

// The tracking writer must keep the server's optional interfaces working.
func TestInstallKeepsWriterFeatures(t *testing.T) {
	t.Parallel()
	logger, sink := newLogger()
	srv := httptest.NewServer(httperr.Install(httperr.Options{Logger: logger})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/flush":
			_, _ = io.WriteString(w, "a")
			if err := http.NewResponseController(w).Flush(); err != nil {
				t.Error(err)
			}
			if err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
				t.Error(err)
			}
		case "/readfrom":
			if _, err := w.(io.ReaderFrom).ReadFrom(strings.NewReader("copied")); err != nil {
				t.Error(err)
			}
		case "/hijack":
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			_, _ = brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
			_ = brw.Flush()
			// An error written after a hijack goes nowhere.
			httperr.Write(w, r, errors.New("after hijack"))
		}
	})))
	defer srv.Close()
	for path, want := range map[string]string{"/flush": "a", "/readfrom": "copied", "/hijack": "hijacked"} {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		conn.Close()
		if string(body) != want {
			t.Errorf("%s: body %q, want %q", path, body, want)
		}
	}
	srv.Close()
	logs := sink.records(t)
	if len(logs) != 1 || logs[0]["hijacked"] != true {
		t.Errorf("want one record saying the connection was hijacked: %v", logs)
	}
}

func TestTypedNilHTTPError(t *testing.T) {
	t.Parallel()
	var he *httperr.HTTPError
	if he.Error() != "httperr: <nil>" {
		t.Errorf("Error() on nil = %q", he.Error())
	}
	rec, logs := serve(t, httperr.Options{}, httperr.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		return he // a typed nil in a non-nil error
	}), httptest.NewRequest("GET", "/", nil))
	if rec.Code != 500 || len(logs) != 1 {
		t.Errorf("got %d, logs %v", rec.Code, logs)
	}
}

// An error value with headers may be a package-level variable used by
// concurrent requests: writing it must not share its slices with the
// responses (run with -race).
func TestSharedHTTPErrorHeaders(t *testing.T) {
	t.Parallel()
	shared := &httperr.HTTPError{Status: 429, Header: http.Header{"Vary": {"Origin"}, "Retry-After": {"3"}}}
	h := httperr.Install(httperr.Options{Logger: slog.New(slog.DiscardHandler)})(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			httperr.Write(w, r, shared)
			w.Header().Add("Retry-After", "junk")
		}))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
			}
		})
	}
	wg.Wait()
	if fmt.Sprint(shared.Header["Vary"], shared.Header["Retry-After"]) != "[Origin] [3]" {
		t.Errorf("the shared error was modified: %v", shared.Header)
	}
}

// Behind a trusted proxy the log names the client, not the proxy.
func TestLogNamesResolvedClient(t *testing.T) {
	t.Parallel()
	req := httptest.NewRequest("GET", "/", nil)
	req.RemoteAddr = "10.0.0.5:4000"
	req.Header.Set("X-Forwarded-For", "198.51.100.7")
	rec, logs := serve(t, httperr.Options{}, chimw.ClientIPFromXFF("10.0.0.0/8")(failWith(httperr.NotFound(nil))), req)
	if rec.Code != 404 || len(logs) != 1 || logs[0]["remote"] != "198.51.100.7" {
		t.Errorf("logs %v", logs)
	}
}

// noFlushWriter cannot flush.
type noFlushWriter struct{ *strictWriter }

// A Flush that the writer cannot do sends nothing, so an error page can
// still be written.
func TestUnsupportedFlushDoesNotCommit(t *testing.T) {
	t.Parallel()
	sw := &strictWriter{t: t, header: http.Header{}}
	logger, _ := newLogger()
	h := httperr.Install(httperr.Options{Logger: logger})(httperr.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		if err := http.NewResponseController(w).Flush(); !errors.Is(err, http.ErrNotSupported) {
			t.Errorf("Flush = %v", err)
		}
		return httperr.NotFound(nil)
	}))
	h.ServeHTTP(noFlushWriter{sw}, httptest.NewRequest("GET", "/", nil))
	if sw.status != 404 {
		t.Errorf("status %d, want the 404 page", sw.status)
	}
}

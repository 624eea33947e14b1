package middleware

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	chimw "github.com/go-chi/chi/v5/middleware"

	"github.com/stormcellar/stormcellar/httperr"
)

// secretPanic is a panic value that must never reach a client.
const secretPanic = "db password hunter2 at /srv/app/internal/store.go:42"

// leaks reports what of a panic a response body must not show.
func leaks(body string) []string {
	var found []string
	for _, s := range []string{"hunter2", ".go:", "goroutine ", "panic", "runtime/debug", "/srv/app"} {
		if strings.Contains(body, s) {
			found = append(found, s)
		}
	}
	return found
}

func TestRecover(t *testing.T) {
	t.Parallel()
	errSentinel := errors.New("sentinel")
	tests := []struct {
		name    string
		handler http.HandlerFunc
		accept  string
		status  int
		ctype   string
		cause   error // errors.Is on the logged cause, when set
	}{
		{name: "string value", handler: func(http.ResponseWriter, *http.Request) { panic(secretPanic) },
			status: 500, ctype: "text/plain; charset=utf-8"},
		{name: "error value", handler: func(http.ResponseWriter, *http.Request) { panic(fmt.Errorf("wrapped: %w", errSentinel)) },
			status: 500, cause: errSentinel},
		{name: "nil value", handler: func(http.ResponseWriter, *http.Request) { panic(nil) }, status: 500},
		{name: "runtime error", handler: func(_ http.ResponseWriter, r *http.Request) {
			var ids []int
			_ = ids[len(r.URL.Path)] // index out of range
		}, status: 500},
		{name: "httperr value keeps the 500", handler: func(http.ResponseWriter, *http.Request) { panic(httperr.NotFound(nil)) }, status: 500},
		{name: "JSON client", handler: func(http.ResponseWriter, *http.Request) { panic(secretPanic) },
			accept: "application/json", status: 500, ctype: "application/json; charset=utf-8"},
		{name: "HTML client", handler: func(http.ResponseWriter, *http.Request) { panic(secretPanic) },
			accept: "text/html", status: 500, ctype: "text/html; charset=utf-8"},
		{name: "headers set before the panic are dropped if they describe a body",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Length", "12345")
				w.Header().Set("Set-Cookie", "session=half-made")
				panic(secretPanic)
			}, status: 500},
		{name: "no panic", handler: func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "fine") }, status: 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var events []httperr.Event
			sink, logger := newLogSink()
			h := httperr.Install(httperr.Options{Logger: logger, Observer: func(e httperr.Event) { events = append(events, e) }})(Recover(tc.handler))
			req := httptest.NewRequest(http.MethodGet, "/boom", nil)
			if tc.accept != "" {
				req.Header.Set("Accept", tc.accept)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d", rec.Code, tc.status)
			}
			if tc.status != 500 {
				if len(events) != 0 {
					t.Errorf("events %v for a request that did not panic", events)
				}
				return
			}
			if l := leaks(rec.Body.String()); l != nil {
				t.Errorf("body leaks %v: %q", l, rec.Body.String())
			}
			if tc.ctype != "" && rec.Header().Get("Content-Type") != tc.ctype {
				t.Errorf("Content-Type %q, want %q", rec.Header().Get("Content-Type"), tc.ctype)
			}
			if rec.Header().Get("Set-Cookie") != "" || rec.Header().Get("Content-Length") == "12345" {
				t.Errorf("half-made headers survived: %v", rec.Header())
			}
			if len(events) != 1 || events[0].Kind != httperr.KindPanic || events[0].Status != 500 {
				t.Fatalf("events %+v, want one panic event", events)
			}
			var pe *PanicError
			if !errors.As(events[0].Err, &pe) || !strings.Contains(string(pe.Stack), "recover_test.go") {
				t.Errorf("cause %v is not a PanicError with the stack", events[0].Err)
			}
			if tc.cause != nil && !errors.Is(events[0].Err, tc.cause) {
				t.Errorf("cause %v does not wrap %v", events[0].Err, tc.cause)
			}
			recs := sink.records(t)
			if len(recs) != 1 {
				t.Fatalf("%d log records, want 1", len(recs))
			}
			if recs[0]["level"] != "ERROR" || recs[0]["kind"] != "panic" || recs[0]["request_id"] == "" ||
				!strings.Contains(fmt.Sprint(recs[0]["err"]), "goroutine ") {
				t.Errorf("log record %v lacks level, kind, request id or stack", recs[0])
			}
			if !strings.Contains(rec.Body.String(), fmt.Sprint(recs[0]["request_id"])) {
				t.Errorf("page does not quote the logged request id")
			}
		})
	}
}

// TestRecoverInsecureExposeCause: the stack is on the page only when the
// development setting is on.
func TestRecoverInsecureExposeCause(t *testing.T) {
	t.Parallel()
	for _, insecure := range []bool{false, true} {
		h := httperr.Install(httperr.Options{Logger: discardLogger(), InsecureExposeCause: insecure})(
			Recover(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(secretPanic) })))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		shows := strings.Contains(rec.Body.String(), "hunter2") && strings.Contains(rec.Body.String(), "goroutine ")
		if shows != insecure {
			t.Errorf("InsecureExposeCause=%v: page shows panic and stack = %v", insecure, shows)
		}
	}
}

// TestRecoverConcurrentPanics: 1,000 concurrent requests to a panicking
// handler through a real server all get a safe 500, each logged once with
// its stack; net/http logs nothing of its own, and the server keeps
// serving.
func TestRecoverConcurrentPanics(t *testing.T) {
	t.Parallel()
	const n = 1000
	mux := http.NewServeMux()
	mux.HandleFunc("/boom", func(http.ResponseWriter, *http.Request) { panic(secretPanic) })
	mux.HandleFunc("/ok", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	ts := startServer(t, Recover(mux))
	c := client(t)

	var wg sync.WaitGroup
	errs := make(chan string, n)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			resp, err := c.Get(ts.URL + "/boom")
			if err != nil {
				errs <- err.Error()
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case err != nil:
				errs <- "body: " + err.Error()
			case resp.StatusCode != 500:
				errs <- fmt.Sprintf("status %d", resp.StatusCode)
			case leaks(string(b)) != nil:
				errs <- fmt.Sprintf("leak %v in %q", leaks(string(b)), b)
			case resp.Header.Get("X-Content-Type-Options") != "nosniff":
				errs <- "no nosniff"
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	resp, err := c.Get(ts.URL + "/ok")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "ok" {
		t.Errorf("after the panics: %d %q", resp.StatusCode, b)
	}
	if recs := ts.log.records(t); len(recs) != n {
		t.Errorf("%d log records, want %d", len(recs), n)
	}
	if s := ts.errLog.String(); s != "" {
		t.Errorf("net/http logged: %.200s", s)
	}
}

// TestRecoverAfterFirstByte: a panic once the response is on the wire
// aborts the connection. chi's Recoverer, on the same handler, finishes
// the response cleanly and the client takes the truncated body for a
// complete one.
func TestRecoverAfterFirstByte(t *testing.T) {
	t.Parallel()
	partial := func(flush bool) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/csv")
			_, _ = io.WriteString(w, "id,amount\n1,100\n")
			if flush {
				_ = http.NewResponseController(w).Flush()
			}
			panic(secretPanic)
		}
	}
	for _, flush := range []bool{true, false} {
		t.Run(fmt.Sprintf("flushed=%v", flush), func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, Recover(partial(flush)))
			resp, err := client(t).Get(ts.URL)
			if err == nil {
				b, rerr := io.ReadAll(resp.Body)
				resp.Body.Close()
				if rerr == nil {
					t.Fatalf("client read a clean response: %d %q", resp.StatusCode, b)
				}
				if leaks(string(b)) != nil {
					t.Errorf("leak in %q", b)
				}
			}
			ts.waitEvents(t, 1)
			recs := ts.log.records(t)
			if flush && (len(recs) != 1 || recs[0]["committed"] != true) {
				t.Errorf("records %v, want one with committed=true", recs)
			}
			if s := ts.errLog.String(); s != "" {
				t.Errorf("net/http logged: %.200s", s)
			}
		})
	}
	t.Run("chi Recoverer", func(t *testing.T) {
		t.Parallel()
		ts := startServer(t, chiRecoverer(partial(true)))
		resp, err := client(t).Get(ts.URL)
		if err != nil {
			t.Fatal(err)
		}
		b, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if rerr != nil || resp.StatusCode != 200 {
			t.Fatalf("chi: %v %d; the anchor's behaviour changed, update this test", rerr, resp.StatusCode)
		}
		t.Logf("chi Recoverer: client got 200 and a clean but truncated body %q", b)
	})
}

// chiRecoverer is chi's Recoverer with a no-op chi LogEntry in the
// context, so that it logs the panic there instead of printing its stack
// to the test's stderr.
func chiRecoverer(next http.Handler) http.Handler {
	rec := chimw.Recoverer(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.ServeHTTP(w, chimw.WithLogEntry(r, quietEntry{}))
	})
}

type quietEntry struct{}

func (quietEntry) Write(int, int, http.Header, time.Duration, any) {}
func (quietEntry) Panic(any, []byte)                               {}

// TestRecoverAbortHandlerPassesQuietly: panic(http.ErrAbortHandler) aborts
// the response with no log record from Recover or net/http.
func TestRecoverAbortHandlerPassesQuietly(t *testing.T) {
	t.Parallel()
	ts := startServer(t, Recover(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "partial")
		_ = http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	})))
	resp, err := client(t).Get(ts.URL)
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Error("the response was not aborted")
	}
	if recs := ts.log.records(t); len(recs) != 0 {
		t.Errorf("records %v, want none", recs)
	}
	if s := ts.errLog.String(); s != "" {
		t.Errorf("net/http logged %q", s)
	}
}

// TestRecoverHijacked: after a hijack nothing is written to the
// connection, whatever its Connection header said. chi's Recoverer skips
// its 500 only for the exact header "Connection: Upgrade", and otherwise
// writes to the hijacked connection (net/http refuses and logs it).
func TestRecoverHijacked(t *testing.T) {
	t.Parallel()
	hijacker := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		defer c.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\nhello")
		_ = brw.Flush()
		panic(secretPanic)
	})
	raw := func(t *testing.T, addr string) string {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: x\r\n\r\n")
		b, _ := io.ReadAll(c)
		return string(b)
	}

	// The handler closes the connection before its panic reaches Recover:
	// wait for httperr's observer before reading the log.
	logged := make(chan httperr.Event, 1)
	ts := startServer(t, Recover(hijacker), httperr.Options{Observer: func(e httperr.Event) { logged <- e }})
	got := raw(t, ts.Listener.Addr().String())
	if !strings.HasSuffix(got, "\r\n\r\nhello") || strings.Contains(got, "500") {
		t.Errorf("client read %q, want exactly the handler's bytes", got)
	}
	select {
	case ev := <-logged:
		if !ev.Committed || ev.Kind != httperr.KindPanic {
			t.Errorf("event %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no error event for the panic")
	}
	recs := ts.log.records(t)
	if len(recs) != 1 || recs[0]["hijacked"] != true || !strings.Contains(fmt.Sprint(recs[0]["err"]), "goroutine ") {
		t.Errorf("records %v, want one with hijacked=true and the stack", recs)
	}
	if s := ts.errLog.String(); s != "" {
		t.Errorf("net/http logged %q", s)
	}

	t.Run("chi Recoverer", func(t *testing.T) {
		t.Parallel()
		cts := startServer(t, chiRecoverer(hijacker))
		_ = raw(t, cts.Listener.Addr().String())
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(cts.errLog.String(), "hijacked") && time.Now().Before(deadline) {
			runtime.Gosched()
			time.Sleep(5 * time.Millisecond)
		}
		if !strings.Contains(cts.errLog.String(), "WriteHeader on hijacked connection") {
			t.Fatalf("chi: net/http logged %q; the anchor's behaviour changed, update this test", cts.errLog.String())
		}
	})
}

// TestRecoverKeepsWriterFeatures: Recover's writer keeps Unwrap, flushing,
// deadlines, ReadFrom and hijacking working.
func TestRecoverKeepsWriterFeatures(t *testing.T) {
	t.Parallel()
	f, err := os.CreateTemp(t.TempDir(), "sendfile")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("from a file")
	_ = f.Close()
	ts := startServer(t, Recover(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if err := rc.SetWriteDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Errorf("SetWriteDeadline: %v", err)
		}
		if err := rc.EnableFullDuplex(); err != nil {
			t.Errorf("EnableFullDuplex: %v", err)
		}
		src, _ := os.Open(f.Name())
		defer src.Close()
		if _, err := w.(io.ReaderFrom).ReadFrom(src); err != nil {
			t.Errorf("ReadFrom: %v", err)
		}
		if err := rc.Flush(); err != nil {
			t.Errorf("Flush: %v", err)
		}
	})))
	resp, err := client(t).Get(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "from a file" {
		t.Errorf("got %q", b)
	}
}

// TestRecoverServerSurvivesRawGarbage: panics triggered by hostile input
// on raw connections leave the server answering.
func TestRecoverServerSurvivesRawGarbage(t *testing.T) {
	t.Parallel()
	ts := startServer(t, Recover(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("n") != "" {
			panic(r.URL.Query().Get("n"))
		}
		_, _ = io.WriteString(w, "ok")
	})))
	for i := range 20 {
		c, err := net.Dial("tcp", ts.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET /?n=%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 500 {
			t.Fatalf("request %d: %v", i, err)
		}
		c.Close()
	}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, ts.URL, nil)
	resp, err := client(t).Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("server stopped answering: %v", err)
	}
	resp.Body.Close()
}

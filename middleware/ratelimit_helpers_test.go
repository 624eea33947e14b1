package middleware

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stormcellar/stormcellar/httperr"
)

// limEvents records the httperr events of a test server.
type limEvents struct {
	mu     sync.Mutex
	events []httperr.Event
}

func (e *limEvents) observe(ev httperr.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ev.Request = nil
	e.events = append(e.events, ev)
}

// kinds counts the events by kind.
func (e *limEvents) kinds() map[httperr.Kind]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[httperr.Kind]int{}
	for _, ev := range e.events {
		out[ev.Kind]++
	}
	return out
}

// limInstall is httperr.Install with a silent logger and an observer
// recording into ev (if not nil).
func limInstall(ev *limEvents) func(http.Handler) http.Handler {
	o := httperr.Options{Logger: slog.New(slog.DiscardHandler)}
	if ev != nil {
		o.Observer = ev.observe
	}
	return httperr.Install(o)
}

// limStart serves h on a real loopback listener behind httperr.Install,
// closed with the test.
func limStart(t *testing.T, h http.Handler, ev *limEvents) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(limInstall(ev)(h))
	srv.Config.ReadHeaderTimeout = 10 * time.Second
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// limClient returns a client with its own transport, closed with the test.
func limClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// limResult is what a client got.
type limResult struct {
	status int
	header http.Header
	err    error
}

// limGet sends GET url with the given headers (pairs of name, value).
func limGet(c *http.Client, url string, hdr ...string) limResult {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		return limResult{err: err}
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return limResult{err: err}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return limResult{status: resp.StatusCode, header: resp.Header}
}

// limStatuses counts results by status; transport errors count as -1.
func limStatuses(rs []limResult) map[int]int {
	out := map[int]int{}
	for _, r := range rs {
		if r.err != nil {
			out[-1]++
			continue
		}
		out[r.status]++
	}
	return out
}

// limOK is the handler behind the limiters in tests.
var limOK = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = io.WriteString(w, "ok")
})

// limRecord serves one request to h on a recorder, from addr.
func limRecord(h http.Handler, addr string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = addr
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// limRecordRequest returns a request from addr.
func limRecordRequest(addr string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = addr
	return r
}

// limLogSink collects log output.
type limLogSink struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *limLogSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *limLogSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// count returns how many lines contain sub.
func (s *limLogSink) count(sub string) int {
	n := 0
	for line := range strings.SplitSeq(s.String(), "\n") {
		if strings.Contains(line, sub) {
			n++
		}
	}
	return n
}

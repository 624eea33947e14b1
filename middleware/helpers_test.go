package middleware

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stormcellar/stormcellar/httperr"
)

// logSink collects the JSON records of a slog logger.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// records returns the decoded records.
func (s *logSink) records(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(s.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %v: %q", err, line)
		}
		out = append(out, m)
	}
	return out
}

func newLogSink() (*logSink, *slog.Logger) {
	s := &logSink{}
	return s, slog.New(slog.NewJSONHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testServer is a real loopback server whose net/http error log and
// httperr log are captured.
type testServer struct {
	*httptest.Server
	errLog *logSink // net/http's own ErrorLog ("http: panic serving…")
	log    *logSink // httperr records
	read   atomic.Int64
	events atomic.Int64 // httperr observer calls, made after each record
}

// waitEvents waits (at most 10 s) until httperr has logged n errors: a
// client can see a connection end before the handler that logs about it
// has returned.
func (ts *testServer) waitEvents(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for ts.events.Load() < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := ts.events.Load(); got < n {
		t.Fatalf("%d error events, want %d", got, n)
	}
}

// startServer serves h behind httperr.Install with a captured logger.
func startServer(t *testing.T, h http.Handler, opts ...httperr.Options) *testServer {
	t.Helper()
	ts := &testServer{errLog: &logSink{}}
	var logger *slog.Logger
	ts.log, logger = newLogSink()
	o := httperr.Options{}
	if len(opts) > 0 {
		o = opts[0]
	}
	o.Logger = logger
	user := o.Observer
	o.Observer = func(e httperr.Event) {
		if user != nil {
			user(e)
		}
		ts.events.Add(1)
	}
	ts.Server = httptest.NewUnstartedServer(httperr.Install(o)(h))
	ts.Config.ErrorLog = log.New(ts.errLog, "", 0)
	ts.Config.ReadHeaderTimeout = 10 * time.Second
	ts.Listener = &countingListener{Listener: ts.Listener, n: &ts.read}
	ts.Start()
	t.Cleanup(ts.Close)
	return ts
}

// countingListener counts the bytes the server reads from its
// connections, to show how much of an attack body was taken in.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: l.n}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// patternReader produces n bytes without holding them in memory, and
// counts how many were taken.
type patternReader struct {
	left  int64
	taken atomic.Int64
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	p.left -= int64(len(b))
	p.taken.Add(int64(len(b)))
	return len(b), nil
}

// hideLength hides a reader's type so that net/http sends it chunked.
type hideLength struct{ io.Reader }

// client returns a client with its own transport, closed with the test.
func client(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// smallBufferClient is a client whose sockets have a 32 KiB send buffer,
// so that bytes it has produced are close to bytes that left it.
func smallBufferClient(t *testing.T) *http.Client {
	t.Helper()
	d := &net.Dialer{}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetWriteBuffer(32 << 10)
			}
			return c, err
		},
		WriteBufferSize: 4 << 10,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

package timeouts_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stormcellar/stormcellar/httperr"
	"github.com/stormcellar/stormcellar/timeouts"
)

// bodyReader is a handler that reads the whole request body and reports,
// once, what its read returned and when.
type bodyReader struct {
	start time.Time
	done  chan bodyRead
}

type bodyRead struct {
	err   error
	after time.Duration
}

func newBodyReader() *bodyReader { return &bodyReader{start: time.Now(), done: make(chan bodyRead, 1)} }

func (b *bodyReader) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, err := io.Copy(io.Discard, r.Body)
	b.done <- bodyRead{err, time.Since(b.start)}
	if err == nil {
		_, _ = io.WriteString(w, "read")
	}
}

func (b *bodyReader) wait(t *testing.T, within time.Duration) bodyRead {
	t.Helper()
	select {
	case got := <-b.done:
		return got
	case <-time.After(within):
		t.Fatalf("the handler was still reading the body %v after it started", within)
		return bodyRead{}
	}
}

// drip sends the headers of a request with a 1 MiB body, then the body at
// rate bytes a second in chunks, until the server closes or 15 s pass.
func drip(c net.Conn, path string, rate int) {
	_, _ = fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", path, 1<<20)
	chunk := strings.Repeat("z", rate/5)
	for range 75 {
		if _, err := io.WriteString(c, chunk); err != nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestDeadlineCutsBodyReads: a client that sends its body just fast enough
// for the server's minimum rate (or sends nothing after its headers, on a
// server without one) gets its 503 at the route deadline, and the handler
// blocked on the body returns then too, with an error that says the
// deadline ended the read, instead of holding its goroutine and the
// connection as long as the client keeps dripping. The server closes the
// connection.
func TestDeadlineCutsBodyReads(t *testing.T) {
	t.Parallel()
	const timeout = time.Second
	t.Run("NewServer, body above the minimum rate", func(t *testing.T) {
		t.Parallel()
		b := newBodyReader()
		_, addr, _ := startServer(t, timeouts.Deadline(timeouts.DeadlineOptions{Timeout: timeout})(b), timeouts.ServerOptions{})
		c, err := dialFrom("127.0.7.1", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		got := dripUntil503(t, c, b, timeout) // 5 KB/s, above the default 1 KiB/s
		if got.after < timeout {
			t.Errorf("the read ended after %v, before the deadline", got.after)
		}
		if !closedWithin(c, 5*time.Second) {
			t.Error("the server kept the connection open")
		}
	})
	t.Run("http.Server, no body after the headers", func(t *testing.T) {
		t.Parallel()
		b := newBodyReader()
		srv := httptest.NewServer(httperr.Install(httperr.Options{Logger: quietLogger})(
			timeouts.Deadline(timeouts.DeadlineOptions{Timeout: timeout})(b)))
		defer srv.Close()
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		b.start = time.Now()
		_, _ = io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
		status, err := readStatus(c, 5*time.Second)
		if !strings.HasPrefix(status, "HTTP/1.1 503") {
			t.Fatalf("got %q (%v), want 503", status, err)
		}
		if got := b.wait(t, 3*timeout); got.err == nil || got.after < timeout {
			t.Errorf("the handler's read returned %v after %v", got.err, got.after)
		}
		if !closedWithin(c, 5*time.Second) {
			t.Error("the server kept the connection open")
		}
	})
	rate := timeouts.BodyRate(timeouts.BodyRateOptions{MinRate: 1000, Window: 500 * time.Millisecond})
	for _, tc := range []struct {
		name string
		wrap func(logger *slog.Logger, h http.Handler) http.Handler
		logs int // records of the 503 in logger
	}{
		{"BodyRate inside the Deadline", func(logger *slog.Logger, h http.Handler) http.Handler {
			return httperr.Install(httperr.Options{Logger: logger})(timeouts.Deadline(timeouts.DeadlineOptions{Timeout: timeout})(rate(h)))
		}, 1},
		{"BodyRate inside nested Deadlines, the outer one earlier", func(logger *slog.Logger, h http.Handler) http.Handler {
			return httperr.Install(httperr.Options{Logger: logger})(timeouts.Deadline(timeouts.DeadlineOptions{Timeout: timeout})(
				timeouts.Deadline(timeouts.DeadlineOptions{Timeout: 30 * time.Second})(rate(h))))
		}, 1},
		{"request state made inside the Deadline", func(logger *slog.Logger, h http.Handler) http.Handler {
			// The 503 is logged by the Deadline, outside this Install's
			// state (to slog.Default); the state's own layers must not
			// log a second one for the read the deadline ended.
			return timeouts.Deadline(timeouts.DeadlineOptions{Timeout: timeout})(httperr.Install(httperr.Options{Logger: logger})(rate(h)))
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs syncBuffer
			b := newBodyReader()
			srv := httptest.NewServer(tc.wrap(slog.New(slog.NewTextHandler(&logs, nil)), b))
			defer srv.Close()
			c, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			dripUntil503(t, c, b, timeout) // 5 KB/s, above BodyRate's 1000 B/s
			srv.Close()
			if n := strings.Count(logs.String(), "status=503"); n != tc.logs {
				t.Errorf("%d records of a 503 in the stack's log, want %d:\n%s", n, tc.logs, logs.String())
			}
			if strings.Contains(logs.String(), "status=408") {
				t.Errorf("a 408 logged for a read the deadline ended:\n%s", logs.String())
			}
		})
	}
}

// TestBodyRateSubRequestKeepsItsOwn: a request made in process from
// another's context (a batch endpoint dispatching its parts), served into
// another writer, neither adopts nor cuts the outer request's body-rate
// reader: its Deadline passing leaves the outer request's body readable.
func TestBodyRateSubRequestKeepsItsOwn(t *testing.T) {
	t.Parallel()
	inner := timeouts.Deadline(timeouts.DeadlineOptions{Timeout: 50 * time.Millisecond})(
		timeouts.BodyRate(timeouts.BodyRateOptions{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		})))
	// A quota of 10 bytes a window: every read of the outer body moves the
	// read deadline, and would find the reader cut.
	outer := timeouts.BodyRate(timeouts.BodyRateOptions{MinRate: 1, Window: 10 * time.Second})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		head := make([]byte, 4)
		if _, err := io.ReadFull(r.Body, head); err != nil {
			http.Error(w, "first read: "+err.Error(), http.StatusTeapot)
			return
		}
		sub := httptest.NewRequestWithContext(r.Context(), http.MethodPost, "/part", strings.NewReader("part"))
		rec := httptest.NewRecorder()
		inner.ServeHTTP(rec, sub)
		if rec.Code != http.StatusServiceUnavailable {
			http.Error(w, fmt.Sprintf("setup: the part got %d", rec.Code), http.StatusTeapot)
			return
		}
		rest, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "rest: "+err.Error(), http.StatusTeapot)
			return
		}
		_, _ = fmt.Fprintf(w, "%s %d", head, len(rest))
	}))
	srv := httptest.NewServer(httperr.Install(httperr.Options{Logger: quietLogger})(outer))
	defer srv.Close()
	resp, err := srv.Client().Post(srv.URL, "text/plain", strings.NewReader("head"+strings.Repeat("x", 256<<10)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != fmt.Sprintf("head %d", 256<<10) {
		t.Fatalf("outer request: %d %q", resp.StatusCode, body)
	}
}

// dripUntil503 drips a body at 5 KB/s on c, checks that the client gets
// its 503 and that b's read ended with the route deadline's error (not
// the minimum rate's) within three timeouts, and returns that read.
func dripUntil503(t *testing.T, c net.Conn, b *bodyReader, timeout time.Duration) bodyRead {
	t.Helper()
	b.start = time.Now()
	go drip(c, "/upload", 5000)
	status, err := readStatus(c, 5*time.Second)
	if !strings.HasPrefix(status, "HTTP/1.1 503") {
		t.Fatalf("got %q (%v), want 503", status, err)
	}
	got := b.wait(t, 3*timeout)
	if !errors.Is(got.err, timeouts.ErrTimeout) || errors.Is(got.err, timeouts.ErrBodyTooSlow) {
		t.Errorf("the handler's read returned %v, want the route deadline's error", got.err)
	}
	return got
}

// closedWithin reports whether the peer closes c (after whatever it had
// sent) within d.
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return err == nil || !(errors.As(err, &ne) && ne.Timeout())
}

// TestBodyRateExpectContinue: the client of an Expect: 100-continue request
// sends its body only when the handler first reads it, so the first window
// of the minimum rate starts there. A handler that works for longer than a
// window before it reads gets the body; a client that never sends it after
// the 100 is still cut with 408.
func TestBodyRateExpectContinue(t *testing.T) {
	t.Parallel()
	const window = 500 * time.Millisecond
	h := httperr.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		time.Sleep(3 * window / 2) // work before reading
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			return err
		}
		_, err = fmt.Fprint(w, n)
		return err
	})
	_, addr, _ := startServer(t, h, timeouts.ServerOptions{MinBodyRate: 1024, BodyRateWindow: window})
	for _, tc := range []struct {
		name, want string
		send       bool
	}{
		{"body sent after the 100", "HTTP/1.1 200", true},
		{"no body after the 100", "HTTP/1.1 408", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := dialFrom("127.0.7.2", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, _ = io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 102400\r\n\r\n")
			br := bufio.NewReader(c)
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			line, err := br.ReadString('\n')
			if !strings.HasPrefix(line, "HTTP/1.1 100") {
				t.Fatalf("got %q (%v), want 100 Continue", line, err)
			}
			for line != "\r\n" && err == nil {
				line, err = br.ReadString('\n')
			}
			if tc.send {
				_, _ = c.Write(make([]byte, 102400))
			}
			status, err := br.ReadString('\n')
			if !strings.HasPrefix(status, tc.want) {
				t.Fatalf("got %q (%v), want %s", status, err, tc.want)
			}
		})
	}
}

// TestDeadlineHTTP2KeepsTheConnection: on HTTP/2 a 503 at a route deadline
// ends its stream only; the client's other requests go on over the same
// connection (Connection: close there would end them all with a GOAWAY).
func TestDeadlineHTTP2KeepsTheConnection(t *testing.T) {
	t.Parallel()
	var conns atomic.Int32
	mux := http.NewServeMux()
	mux.Handle("/slow", timeouts.Deadline(timeouts.DeadlineOptions{Timeout: 100 * time.Millisecond})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })))
	mux.HandleFunc("/fast", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.Proto) })
	srv := httptest.NewUnstartedServer(httperr.Install(httperr.Options{Logger: quietLogger})(mux))
	srv.EnableHTTP2 = true
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	defer srv.Close()
	client := srv.Client()
	client.Transport.(*http.Transport).TLSClientConfig.MinVersion = tls.VersionTLS12
	get := func(path string) (int, string) {
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, proto := get("/fast"); code != 200 || proto != "HTTP/2.0" {
		t.Fatalf("setup: %d %q", code, proto)
	}
	for range 3 {
		if code, _ := get("/slow"); code != http.StatusServiceUnavailable {
			t.Fatalf("/slow: %d, want 503", code)
		}
		if code, _ := get("/fast"); code != 200 {
			t.Fatalf("/fast: %d", code)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 7 requests, want 1", n)
	}
}

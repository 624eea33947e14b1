package timeouts_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	chimw "github.com/go-chi/chi/v5/middleware"

	"github.com/stormcellar/stormcellar/httperr"
	"github.com/stormcellar/stormcellar/middleware"
	"github.com/stormcellar/stormcellar/timeouts"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// net/http's own error log ends up in slog.
func TestServerErrorLogGoesToSlog(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.WriteHeader(500) // net/http logs the superfluous call
	})
	_, addr, _ := startServer(t, h, timeouts.ServerOptions{Logger: logger})
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()
	for range 50 {
		if strings.Contains(logs.String(), "superfluous") {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if out := logs.String(); !strings.Contains(out, "superfluous") || !strings.Contains(out, "component=net/http") {
		t.Fatalf("log: %q", out)
	}
}

// A route can ask for a slower body rate than the server's.
func TestBodyRatePerRoute(t *testing.T) {
	t.Parallel()
	read := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			// A status of its own shows the read failed (the route did
			// not answer with httperr).
			http.Error(w, "read failed", http.StatusTeapot)
			return
		}
		_, _ = w.Write(b)
	})
	mux := http.NewServeMux()
	mux.Handle("/strict", read)
	mux.Handle("/lenient", timeouts.BodyRate(timeouts.BodyRateOptions{MinRate: 1, Window: 3 * time.Second})(read))
	_, addr, _ := startServer(t, mux, timeouts.ServerOptions{MinBodyRate: 1024, BodyRateWindow: 500 * time.Millisecond})

	for _, tc := range []struct {
		path, want string
	}{
		{"/strict", "HTTP/1.1 418"},
		{"/lenient", "HTTP/1.1 200"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			t.Parallel()
			c, err := dialFrom("127.0.6.2", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, _ = io.WriteString(c, "POST "+tc.path+" HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n")
			for range 3 { // one byte every 700ms: under 1024 B/s, over 1 B/s
				time.Sleep(700 * time.Millisecond)
				_, _ = c.Write([]byte{'z'})
			}
			if status, err := readStatus(c, 3*time.Second); !strings.HasPrefix(status, tc.want) {
				t.Fatalf("got %q (%v), want %s", status, err, tc.want)
			}
		})
	}
}

// A route's stricter body rate holds with another body wrapper
// (MaxBytes's, for a chunked body) between it and the server's: the route's setting replaces
// the server's on the one reader that reads the connection, so a client
// fast enough for the server but too slow for the route is cut with 408,
// while on a route without its own rate the same client gets its 200.
func TestBodyRatePerRouteBehindAnotherWrapper(t *testing.T) {
	t.Parallel()
	read := httperr.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			return err
		}
		_, err = fmt.Fprint(w, n)
		return err
	})
	limit := middleware.MaxBytes(middleware.MaxBytesOptions{})
	mux := http.NewServeMux()
	mux.Handle("/strict", limit(timeouts.BodyRate(timeouts.BodyRateOptions{MinRate: 100_000, Window: 500 * time.Millisecond})(read)))
	mux.Handle("/server-rate", limit(read))
	_, addr, _ := startServer(t, mux, timeouts.ServerOptions{MinBodyRate: 1024, BodyRateWindow: 500 * time.Millisecond})

	const chunks, chunk, every = 16, 1000, 250 * time.Millisecond // 4 KB/s for 4 s
	for _, tc := range []struct {
		path, want string
		within     time.Duration
	}{
		{"/strict", "HTTP/1.1 408", 3 * time.Second},
		{"/server-rate", "HTTP/1.1 200", 10 * time.Second},
	} {
		t.Run(tc.path, func(t *testing.T) {
			t.Parallel()
			c, err := dialFrom("127.0.6.4", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			// Chunked, so that MaxBytes wraps the body to count it.
			_, _ = fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", tc.path)
			go func() {
				for range chunks {
					if _, err := fmt.Fprintf(c, "%x\r\n%s\r\n", chunk, strings.Repeat("z", chunk)); err != nil {
						return
					}
					time.Sleep(every)
				}
				_, _ = io.WriteString(c, "0\r\n\r\n")
			}()
			status, err := readStatus(c, 10*time.Second)
			if !strings.HasPrefix(status, tc.want) {
				t.Fatalf("got %q (%v), want %s", status, err, tc.want)
			}
			if took := time.Since(start); took > tc.within {
				t.Fatalf("%s after %v, want it within %v", status, took, tc.within)
			}
		})
	}
}

// A handler that swallows the body error and writes nothing still gets
// its client a 408.
func TestBodyRateAnswers408WhenHandlerSwallowsTheError(t *testing.T) {
	t.Parallel()
	swallow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.ReadAll(r.Body) })
	_, addr, _ := startServer(t, swallow, timeouts.ServerOptions{MinBodyRate: 1024, BodyRateWindow: 300 * time.Millisecond})
	c, err := dialFrom("127.0.6.3", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
	if status, err := readStatus(c, 3*time.Second); !strings.HasPrefix(status, "HTTP/1.1 408") {
		t.Fatalf("got %q (%v)", status, err)
	}
}

// With TLS the server speaks HTTP/2 with its stream limit.
func TestServerTLSHTTP2(t *testing.T) {
	t.Parallel()
	certSrc := httptest.NewUnstartedServer(http.NotFoundHandler())
	certSrc.StartTLS()
	certs := certSrc.TLS.Certificates
	roots := certSrc.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	certSrc.Close()

	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.Proto) })
	s, err := timeouts.NewServer(h, timeouts.ServerOptions{TLSConfig: &tls.Config{Certificates: certs}, Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	if s.HTTPServer().TLSConfig.MinVersion != tls.VersionTLS12 || s.HTTPServer().HTTP2.MaxConcurrentStreams != 100 {
		t.Fatalf("TLS/HTTP2 settings: %+v %+v", s.HTTPServer().TLSConfig, s.HTTPServer().HTTP2)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	tr.CloseIdleConnections()
	cancel()
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if string(body) != "HTTP/2.0" {
		t.Fatalf("served over %q, want HTTP/2.0", body)
	}
}

// TestConnPeerBeatsRewrittenRemoteAddr: on a Server, the per-client
// decisions of stormcellar's layers use the connection's own address, even
// when a middleware in front of them (chi's RealIP) rewrote RemoteAddr
// from a header the client chose: rotating X-Real-IP buys no fresh
// rate-limit budget, while another client keeps its own.
func TestConnPeerBeatsRewrittenRemoteAddr(t *testing.T) {
	t.Parallel()
	limit, err := middleware.NewRateLimit(middleware.RateLimitOptions{Limit: 2, Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	var seen atomic.Value
	//lint:ignore SA1019 RealIP's spoofable rewrite is the attack this test runs
	h := chimw.RealIP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.RemoteAddr)
		httperr.Install(httperr.Options{Logger: quietLogger})(limit.Handler(http.HandlerFunc(
			func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))).ServeHTTP(w, r)
	}))
	s, err := timeouts.NewServer(h, timeouts.ServerOptions{Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	defer func() { stop(); <-served }()
	get := func(src, realIP string) int {
		t.Helper()
		c, err := dialFrom(src, ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Real-IP: %s\r\nConnection: close\r\n\r\n", realIP)
		status, err := readStatus(c, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		code, _ := strconv.Atoi(strings.Fields(status)[1])
		return code
	}
	var codes []int
	for i := range 5 {
		codes = append(codes, get("127.0.8.1", fmt.Sprintf("203.0.113.%d", i+1)))
		if got := seen.Load(); got != fmt.Sprintf("203.0.113.%d", i+1) {
			t.Fatalf("setup: RealIP left RemoteAddr %v", got)
		}
	}
	if want := []int{200, 200, 429, 429, 429}; !slices.Equal(codes, want) {
		t.Errorf("rotating X-Real-IP from one connection address: %v, want %v", codes, want)
	}
	if code := get("127.0.8.2", "203.0.113.1"); code != 200 {
		t.Errorf("another client: %d, want 200", code)
	}
}

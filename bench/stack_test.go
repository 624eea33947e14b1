package bench_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stormcellar/stormcellar/bench/internal/stack"
	"github.com/stormcellar/stormcellar/timeouts"
)

// startFull serves the full stack as bench/servers/full does: on a
// timeouts.NewServer, on a loopback listener.
func startFull(t *testing.T) string {
	t.Helper()
	h, err := stack.Full(stack.FullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := timeouts.NewServer(h, timeouts.ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("full server: %v", err)
		}
	})
	return "http://" + ln.Addr().String() + "/"
}

func startHTTPTest(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL + "/"
}

// TestServersAnswerHello checks, over real loopback connections, what
// bench/run checks before it measures: each stack answers the request wrk
// sends with 200 hello, and the full stack adds its headers to it.
func TestServersAnswerHello(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		start    func(*testing.T) string
		headers  []string // present on the response
		https    bool     // send X-Forwarded-Proto: https
		status   int
		location string
	}{
		{name: "bare", start: func(t *testing.T) string { return startHTTPTest(t, stack.Bare()) }, https: true, status: 200},
		{name: "chi-only", start: func(t *testing.T) string { return startHTTPTest(t, stack.ChiOnly()) }, https: true, status: 200},
		{
			name: "full", start: startFull, https: true, status: 200,
			headers: []string{"Content-Security-Policy", "X-Request-Id", "Strict-Transport-Security",
				"X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy", "Cross-Origin-Opener-Policy"},
		},
		{name: "full over plain HTTP is redirected", start: startFull, status: 308, location: "https://127.0.0.1/"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			// A transport of its own: httptest.Server.Close closes the idle
			// connections of http.DefaultTransport, which would break the
			// other cases' requests.
			tr := &http.Transport{}
			t.Cleanup(tr.CloseIdleConnections)
			client := &http.Client{
				Transport:     tr,
				Timeout:       10 * time.Second,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			}
			req, err := http.NewRequest(http.MethodGet, c.start(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			if c.https {
				req.Header.Set("X-Forwarded-Proto", "https")
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, c.status)
			}
			if c.status == 200 && string(body) != stack.Body {
				t.Errorf("body %q, want %q", body, stack.Body)
			}
			if got := resp.Header.Get("Location"); got != c.location {
				t.Errorf("Location %q, want %q", got, c.location)
			}
			for _, h := range c.headers {
				if resp.Header.Get(h) == "" {
					t.Errorf("no %s header", h)
				}
			}
			if csp := resp.Header.Get("Content-Security-Policy"); c.headers != nil && !strings.Contains(csp, "'nonce-") {
				t.Errorf("CSP %q has no nonce", csp)
			}
		})
	}
}

// TestHarnessFreshRequest checks that the benchmarks measure what they
// claim: every stack answers 200 hello through the reused writer, and no
// iteration leaves anything in the request the next one starts from.
func TestHarnessFreshRequest(t *testing.T) {
	t.Parallel()
	for _, c := range chainCases(t) {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			tmpl := benchRequest()
			want := tmpl.Header.Clone()
			ctx, body := tmpl.Context(), tmpl.Body
			w, r := newBenchWriter(), new(http.Request)
			for range 3 {
				serveOnce(c.h, w, r, tmpl)
				checkServed(t, c.name, w)
			}
			if len(tmpl.Header) != len(want) || tmpl.Header.Get("X-Forwarded-Proto") != "https" {
				t.Errorf("template headers changed: %v", tmpl.Header)
			}
			if tmpl.Context() != ctx || tmpl.Body != body {
				t.Error("template context or body changed")
			}
		})
	}
}

func TestCheckLoopback(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		addr string
		ok   bool
	}{
		{"IPv4 loopback", "127.0.0.1:8080", true},
		{"other IPv4 loopback", "127.0.0.2:8080", true},
		{"IPv6 loopback", "[::1]:8080", true},
		{"every interface", ":8080", false},
		{"unspecified IPv4", "0.0.0.0:8080", false},
		{"unspecified IPv6", "[::]:8080", false},
		{"private address", "10.0.0.1:8080", false},
		{"host name", "localhost:8080", false},
		{"no port", "127.0.0.1", false},
		{"empty", "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := stack.CheckLoopback(c.addr)
			if (err == nil) != c.ok {
				t.Errorf("CheckLoopback(%q) = %v, want ok=%t", c.addr, err, c.ok)
			}
		})
	}
}

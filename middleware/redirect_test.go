package middleware

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	chimw "github.com/go-chi/chi/v5/middleware"
)

// rawRequest sends raw bytes on a new connection and reads the response.
func rawRequest(t *testing.T, addr, raw string) *http.Response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the response to %q: %v", raw, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// TestHTTPSRedirectNoOpenRedirect sends hostile hosts and paths on raw
// connections through a real server: every answer is a 308 to https on a
// listed host, whatever Host, X-Forwarded-Host, absolute-form target or
// path the client chose.
func TestHTTPSRedirectNoOpenRedirect(t *testing.T) {
	t.Parallel()
	allowed := []string{"example.com", "www.example.com"}
	m, err := NewHTTPSRedirect(HTTPSRedirectOptions{Hosts: []string{"Example.COM.", "www.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, m.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		t.Error("a plain-HTTP request reached the handler")
	})))
	addr := ts.Listener.Addr().String()
	tests := []struct {
		name, raw, want string
	}{
		{"listed host", "GET /a/b?c=1&d=%20 HTTP/1.1\r\nHost: example.com\r\n\r\n", "https://example.com/a/b?c=1&d=%20"},
		{"listed host, other case and port", "GET / HTTP/1.1\r\nHost: WWW.Example.COM:8080\r\n\r\n", "https://www.example.com/"},
		{"listed host with trailing dot", "GET /x HTTP/1.1\r\nHost: www.example.com.\r\n\r\n", "https://www.example.com/x"},
		{"hostile host", "GET /login HTTP/1.1\r\nHost: evil.example\r\n\r\n", "https://example.com/login"},
		{"suffix trick", "GET / HTTP/1.1\r\nHost: example.com.evil.example\r\n\r\n", "https://example.com/"},
		{"prefix trick", "GET / HTTP/1.1\r\nHost: evilexample.com\r\n\r\n", "https://example.com/"},
		{"X-Forwarded-Host", "GET /p HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-Host: evil.example\r\n\r\n", "https://example.com/p"},
		{"X-Forwarded-Host with hostile Host", "GET /p HTTP/1.1\r\nHost: evil.example\r\nX-Forwarded-Host: evil.example\r\nForwarded: host=evil.example\r\n\r\n", "https://example.com/p"},
		{"absolute-form target", "GET http://evil.example/x HTTP/1.1\r\nHost: example.com\r\n\r\n", "https://example.com/x"},
		{"scheme-relative path", "GET //evil.example/x HTTP/1.1\r\nHost: example.com\r\n\r\n", "https://example.com//evil.example/x"},
		{"backslash path", "GET /\\evil.example HTTP/1.1\r\nHost: example.com\r\n\r\n", "https://example.com/%5Cevil.example"},
		{"encoded slashes", "GET /%2F%2Fevil.example HTTP/1.1\r\nHost: example.com\r\n\r\n", "https://example.com/%2F%2Fevil.example"},
		{"userinfo in Host", "GET / HTTP/1.1\r\nHost: example.com@evil.example\r\n\r\n", "https://example.com/"},
		{"HTTP/1.0 without Host", "GET /old HTTP/1.0\r\n\r\n", "https://example.com/old"},
		{"IP literal Host", "GET / HTTP/1.1\r\nHost: 203.0.113.7\r\n\r\n", "https://example.com/"},
		{"POST keeps its path", "POST /form HTTP/1.1\r\nHost: www.example.com\r\nContent-Length: 3\r\n\r\na=1", "https://www.example.com/form"},
		{"spoofed proto and XFF from an untrusted peer", "GET /s HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-Proto: https\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n", "https://example.com/s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp := rawRequest(t, addr, tc.raw)
			if resp.StatusCode == http.StatusBadRequest && tc.name == "userinfo in Host" {
				return // net/http refused the Host itself; also fine
			}
			if resp.StatusCode != http.StatusPermanentRedirect {
				t.Fatalf("status %d, want 308", resp.StatusCode)
			}
			loc := resp.Header.Get("Location")
			if loc != tc.want {
				t.Errorf("Location %q, want %q", loc, tc.want)
			}
			u, err := url.Parse(loc)
			if err != nil || u.Scheme != "https" || u.User != nil || !slices.Contains(allowed, u.Host) {
				t.Errorf("Location %q leaves the allowed hosts", loc)
			}
		})
	}
}

// TestHTTPSRedirectTrustedProxy: X-Forwarded-Proto is believed only from a
// trusted peer, never because of an X-Forwarded-For claiming one, even
// when chi's ClientIPFromXFF resolver (trusting the loopback proxy) is
// installed and resolves the client to the claimed address.
func TestHTTPSRedirectTrustedProxy(t *testing.T) {
	t.Parallel()
	serve := func(trusted string) string {
		m, err := NewHTTPSRedirect(HTTPSRedirectOptions{Hosts: []string{"example.com"}, TrustedProxies: []netip.Prefix{netip.MustParsePrefix(trusted)}})
		if err != nil {
			t.Fatal(err)
		}
		h := chimw.ClientIPFromXFF("127.0.0.0/8")(m.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "served")
		})))
		ts := startServer(t, h)
		resp := rawRequest(t, ts.Listener.Addr().String(),
			"GET / HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-Proto: https\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n")
		return fmt.Sprint(resp.StatusCode)
	}
	if got := serve("127.0.0.1/32"); got != "200" {
		t.Errorf("from the trusted proxy: %s, want 200", got)
	}
	if got := serve("10.0.0.0/8"); got != "308" {
		t.Errorf("from an untrusted peer whose XFF claims a trusted address: %s, want 308", got)
	}
}

func TestHTTPSRedirectPortAndTLS(t *testing.T) {
	t.Parallel()
	m, err := NewHTTPSRedirect(HTTPSRedirectOptions{Hosts: []string{"[2001:db8::1]", "127.0.0.1"}, Port: 8443})
	if err != nil {
		t.Fatal(err)
	}
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	for host, want := range map[string]string{
		"[2001:db8::1]:80": "https://[2001:db8::1]:8443/p",
		"[2001:DB8::1]":    "https://[2001:db8::1]:8443/p",
		"127.0.0.1":        "https://127.0.0.1:8443/p",
		"[::1]":            "https://[2001:db8::1]:8443/p",
		"127.0.0.1 *":      "https://127.0.0.1:8443/", // OPTIONS * (net/http answers it before any handler)
	} {
		req := httptest.NewRequest(http.MethodGet, "/p", nil)
		if h, ok := strings.CutSuffix(host, " *"); ok {
			req = httptest.NewRequest(http.MethodOptions, "*", nil)
			host = h
		}
		req.Host = host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if got := rec.Header().Get("Location"); rec.Code != 308 || got != want {
			t.Errorf("Host %q: %d %q, want 308 %q", host, rec.Code, got, want)
		}
	}
	ts := httptest.NewTLSServer(h)
	defer ts.Close()
	c := ts.Client()
	resp, err := c.Get(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Errorf("over TLS: %d, want the handler's 204", resp.StatusCode)
	}
	c.CloseIdleConnections()
}

func TestNewHTTPSRedirectErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts HTTPSRedirectOptions
		want error
	}{
		{"no hosts", HTTPSRedirectOptions{}, ErrRedirectHost},
		{"URL", HTTPSRedirectOptions{Hosts: []string{"https://example.com"}}, ErrRedirectHost},
		{"port in host", HTTPSRedirectOptions{Hosts: []string{"example.com:443"}}, ErrRedirectHost},
		{"wildcard", HTTPSRedirectOptions{Hosts: []string{"*.example.com"}}, ErrRedirectHost},
		{"space", HTTPSRedirectOptions{Hosts: []string{"exa mple.com"}}, ErrRedirectHost},
		{"leading hyphen", HTTPSRedirectOptions{Hosts: []string{"-a.example"}}, ErrRedirectHost},
		{"trailing hyphen", HTTPSRedirectOptions{Hosts: []string{"a-.example"}}, ErrRedirectHost},
		{"empty label", HTTPSRedirectOptions{Hosts: []string{"a..example"}}, ErrRedirectHost},
		{"empty", HTTPSRedirectOptions{Hosts: []string{""}}, ErrRedirectHost},
		{"userinfo", HTTPSRedirectOptions{Hosts: []string{"u@example.com"}}, ErrRedirectHost},
		{"non-ASCII", HTTPSRedirectOptions{Hosts: []string{"exämple.com"}}, ErrRedirectHost},
		{"label too long", HTTPSRedirectOptions{Hosts: []string{strings.Repeat("a", 64) + ".example"}}, ErrRedirectHost},
		{"zoned IPv6", HTTPSRedirectOptions{Hosts: []string{"fe80::1%eth0"}}, ErrRedirectHost},
		{"port out of range", HTTPSRedirectOptions{Hosts: []string{"example.com"}, Port: 70000}, ErrRedirectHost},
		{"negative port", HTTPSRedirectOptions{Hosts: []string{"example.com"}, Port: -1}, ErrRedirectHost},
		{"bad prefix", HTTPSRedirectOptions{Hosts: []string{"example.com"}, TrustedProxies: []netip.Prefix{{}}}, ErrTrustedProxy},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if m, err := NewHTTPSRedirect(tc.opts); !errors.Is(err, tc.want) || m != nil {
				t.Errorf("got %v, %v; want %v", m, err, tc.want)
			}
		})
	}
}

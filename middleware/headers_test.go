package middleware

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/stormcellar/stormcellar/httperr"
)

func mustHeaders(t testing.TB, opts SecureHeadersOptions) *SecureHeaders {
	t.Helper()
	m, err := NewSecureHeaders(opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var nonceRE = regexp.MustCompile(`'nonce-([A-Za-z0-9_-]{22})'`)

func TestSecureHeaders(t *testing.T) {
	t.Parallel()
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	tests := []struct {
		name   string
		opts   SecureHeadersOptions
		tls    bool
		remote string
		xfp    []string
		want   map[string]string // "" means absent
		nonce  bool
	}{
		{name: "defaults over plain HTTP", want: map[string]string{
			"X-Content-Type-Options":     "nosniff",
			"X-Frame-Options":            "DENY",
			"Referrer-Policy":            "no-referrer",
			"Cross-Origin-Opener-Policy": "same-origin",
			"Strict-Transport-Security":  "",
		}, nonce: true},
		{name: "defaults over TLS", tls: true, want: map[string]string{
			"Strict-Transport-Security": "max-age=63072000; includeSubDomains",
		}, nonce: true},
		{name: "preload", tls: true, opts: SecureHeadersOptions{HSTSPreload: true}, want: map[string]string{
			"Strict-Transport-Security": "max-age=63072000; includeSubDomains; preload",
		}, nonce: true},
		{name: "custom max-age, no subdomains", tls: true, opts: SecureHeadersOptions{HSTSMaxAge: 90 * 24 * time.Hour, InsecureHSTSNoSubdomains: true}, want: map[string]string{
			"Strict-Transport-Security": "max-age=7776000",
		}, nonce: true},
		{name: "HSTS off", tls: true, opts: SecureHeadersOptions{InsecureNoHSTS: true}, want: map[string]string{
			"Strict-Transport-Security": "",
		}, nonce: true},
		{name: "trusted proxy says https", remote: "127.0.0.1:5000", xfp: []string{"https"}, opts: SecureHeadersOptions{TrustedProxies: loopback}, want: map[string]string{
			"Strict-Transport-Security": "max-age=63072000; includeSubDomains",
		}, nonce: true},
		{name: "trusted proxy appended https", remote: "127.0.0.1:5000", xfp: []string{"http, https"}, opts: SecureHeadersOptions{TrustedProxies: loopback}, want: map[string]string{
			"Strict-Transport-Security": "max-age=63072000; includeSubDomains",
		}, nonce: true},
		{name: "trusted proxy says http", remote: "127.0.0.1:5000", xfp: []string{"https, http"}, opts: SecureHeadersOptions{TrustedProxies: loopback}, want: map[string]string{
			"Strict-Transport-Security": "",
		}, nonce: true},
		{name: "untrusted peer says https", remote: "203.0.113.9:5000", xfp: []string{"https"}, opts: SecureHeadersOptions{TrustedProxies: loopback}, want: map[string]string{
			"Strict-Transport-Security": "",
		}, nonce: true},
		{name: "no trusted proxies configured", remote: "127.0.0.1:5000", xfp: []string{"https"}, want: map[string]string{
			"Strict-Transport-Security": "",
		}, nonce: true},
		{name: "same-origin framing", opts: SecureHeadersOptions{AllowSameOriginFraming: true}, want: map[string]string{
			"X-Frame-Options": "SAMEORIGIN",
		}, nonce: true},
		{name: "static policy gets frame-ancestors", opts: SecureHeadersOptions{ContentSecurityPolicy: "default-src 'self';"}, want: map[string]string{
			"Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
		}},
		{name: "static policy keeps its own frame-ancestors", opts: SecureHeadersOptions{ContentSecurityPolicy: "default-src 'none'; frame-ancestors https://a.example"}, want: map[string]string{
			"Content-Security-Policy": "default-src 'none'; frame-ancestors https://a.example",
		}},
		{name: "report only", opts: SecureHeadersOptions{InsecureCSPReportOnly: true}, want: map[string]string{
			"Content-Security-Policy": "",
		}, nonce: true},
		{name: "no CSP", opts: SecureHeadersOptions{InsecureNoCSP: true}, want: map[string]string{
			"Content-Security-Policy": "", "X-Frame-Options": "DENY",
		}},
		{name: "custom referrer and COOP", opts: SecureHeadersOptions{ReferrerPolicy: "no-referrer, strict-origin-when-cross-origin", CrossOriginOpenerPolicy: "same-origin-allow-popups"}, want: map[string]string{
			"Referrer-Policy": "no-referrer, strict-origin-when-cross-origin", "Cross-Origin-Opener-Policy": "same-origin-allow-popups",
		}, nonce: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var seen string
			h := mustHeaders(t, tc.opts).Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen = CSPNonce(r.Context())
			}))
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			if tc.tls {
				req.TLS = &tls.ConnectionState{}
			}
			if tc.remote != "" {
				req.RemoteAddr = tc.remote
			}
			if tc.xfp != nil {
				req.Header["X-Forwarded-Proto"] = tc.xfp
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			for k, v := range tc.want {
				if got := rec.Header().Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			key := "Content-Security-Policy"
			if tc.opts.InsecureCSPReportOnly {
				key += "-Report-Only"
			}
			csp := rec.Header().Get(key)
			if tc.nonce {
				m := nonceRE.FindAllStringSubmatch(csp, -1)
				if len(m) != 2 || m[0][1] != seen || m[1][1] != seen {
					t.Fatalf("policy %q: want two 'nonce-…' equal to CSPNonce %q", csp, seen)
				}
				if !strings.Contains(csp, "frame-ancestors 'none'") && !strings.Contains(csp, "frame-ancestors 'self'") {
					t.Errorf("policy %q has no frame-ancestors", csp)
				}
			} else if seen != "" {
				t.Errorf("CSPNonce %q without a nonce policy", seen)
			}
		})
	}
}

// TestSecureHeadersNonceFresh: every response gets its own nonce, and the
// shared header values are not changed by a handler appending to them.
func TestSecureHeadersNonceFresh(t *testing.T) {
	t.Parallel()
	m := mustHeaders(t, SecureHeadersOptions{})
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("X-Frame-Options", "SAMEORIGIN") // a confused handler
	}))
	seen := map[string]bool{}
	for range 1000 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		n := nonceRE.FindStringSubmatch(rec.Header().Get("Content-Security-Policy"))
		if n == nil || seen[n[1]] {
			t.Fatalf("nonce missing or repeated: %v", n)
		}
		seen[n[1]] = true
	}
	rec := httptest.NewRecorder()
	mustHeaders(t, SecureHeadersOptions{}).Handler(http.NotFoundHandler()).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if got := rec.Header().Values("X-Frame-Options"); len(got) != 1 || got[0] != "DENY" {
		t.Errorf("shared value changed by an append: %q", got)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if got := rec.Header().Values("X-Frame-Options"); len(got) != 2 || got[0] != "DENY" {
		t.Errorf("X-Frame-Options %q", got)
	}
}

func TestNewSecureHeadersErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts SecureHeadersOptions
		want error
	}{
		{"control character", SecureHeadersOptions{ContentSecurityPolicy: "default-src 'self'\r\nSet-Cookie: x=1"}, ErrHeaderValue},
		{"non-ASCII", SecureHeadersOptions{ContentSecurityPolicy: "default-src 'sélf'"}, ErrHeaderValue},
		{"fixed nonce", SecureHeadersOptions{ContentSecurityPolicy: "script-src 'nonce-abc123'"}, ErrHeaderValue},
		{"fixed nonce, upper case", SecureHeadersOptions{ContentSecurityPolicy: "script-src 'NONCE-abc123'"}, ErrHeaderValue},
		{"stray brace", SecureHeadersOptions{ContentSecurityPolicy: "script-src 'nonce-{nonce}' {x}"}, ErrHeaderValue},
		{"empty after trim", SecureHeadersOptions{ContentSecurityPolicy: " ; "}, ErrHeaderValue},
		{"unknown referrer", SecureHeadersOptions{ReferrerPolicy: "always"}, ErrHeaderValue},
		{"unknown COOP", SecureHeadersOptions{CrossOriginOpenerPolicy: "none"}, ErrHeaderValue},
		{"preload without subdomains", SecureHeadersOptions{HSTSPreload: true, InsecureHSTSNoSubdomains: true}, ErrHeaderValue},
		{"preload too short", SecureHeadersOptions{HSTSPreload: true, HSTSMaxAge: 30 * 24 * time.Hour}, ErrHeaderValue},
		{"zero prefix", SecureHeadersOptions{TrustedProxies: []netip.Prefix{{}}}, ErrTrustedProxy},
		{"mapped prefix too wide", SecureHeadersOptions{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("::ffff:0.0.0.0/90")}}, ErrTrustedProxy},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := NewSecureHeaders(tc.opts)
			if !errors.Is(err, tc.want) || m != nil {
				t.Errorf("got %v, %v; want %v", m, err, tc.want)
			}
		})
	}
}

// TestTrustedProxyMappedPrefix: an IPv4-mapped prefix matches the IPv4
// peer it names.
func TestTrustedProxyMappedPrefix(t *testing.T) {
	t.Parallel()
	m := mustHeaders(t, SecureHeadersOptions{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/104")}})
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.RemoteAddr = "10.1.2.3:443"
	req.Header.Set("X-Forwarded-Proto", "https")
	rec := httptest.NewRecorder()
	m.Handler(http.NotFoundHandler()).ServeHTTP(rec, req)
	if rec.Header().Get("Strict-Transport-Security") == "" {
		t.Error("mapped prefix did not match its IPv4 peer")
	}
}

// TestSecurityHeadersOnEveryResponse: through a real server and the
// recommended stack, the headers are on a page, a 404, a 413, a panic's
// 500 and a redirect.
func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	t.Parallel()
	ids, _ := NewRequestID(RequestIDOptions{})
	headers := mustHeaders(t, SecureHeadersOptions{})
	r := chi.NewRouter()
	r.Use(ids.Handler, headers.Handler, Recover, MaxURLLength(MaxURLLengthOptions{Limit: 256}), MaxBytes(MaxBytesOptions{Limit: 1 << 10}))
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { httperr.WriteStatus(w, r, http.StatusNotFound) })
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		httperr.WriteStatus(w, r, http.StatusMethodNotAllowed)
	})
	r.Get("/page", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<script nonce="%s">ok()</script>`, CSPNonce(r.Context()))
	})
	r.Get("/panic", func(http.ResponseWriter, *http.Request) { panic(secretPanic) })
	r.Post("/upload", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "stored")
	})
	r.Get("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/page", http.StatusFound) })
	ts := startServer(t, r)
	c := client(t)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	cases := []struct {
		name, method, path string
		body               io.Reader
		status             int
	}{
		{"page", "GET", "/page", nil, 200},
		{"404", "GET", "/missing", nil, 404},
		{"405", "DELETE", "/page", nil, 405},
		{"413", "POST", "/upload", strings.NewReader(strings.Repeat("x", 4<<10)), 413},
		{"413 chunked", "POST", "/upload", hideLength{strings.NewReader(strings.Repeat("x", 4<<10))}, 413},
		{"414", "GET", "/page?q=" + strings.Repeat("a", 300), nil, 414},
		{"panic 500", "GET", "/panic", nil, 500},
		{"redirect", "GET", "/moved", nil, 302},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(tc.method, ts.URL+tc.path, tc.body)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
		for _, k := range []string{"Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy", "Cross-Origin-Opener-Policy", "X-Request-Id"} {
			if resp.Header.Get(k) == "" {
				t.Errorf("%s: no %s", tc.name, k)
			}
		}
		if tc.status >= 400 && !strings.Contains(string(b), resp.Header.Get("X-Request-Id")) {
			t.Errorf("%s: error page %q does not quote X-Request-Id %q", tc.name, b, resp.Header.Get("X-Request-Id"))
		}
		if tc.name == "page" {
			n := nonceRE.FindStringSubmatch(resp.Header.Get("Content-Security-Policy"))
			if n == nil || !strings.Contains(string(b), `nonce="`+n[1]+`"`) {
				t.Errorf("page nonce does not match the header: %q vs %q", b, resp.Header.Get("Content-Security-Policy"))
			}
		}
	}
}

// TestCSPNonceWithoutMiddleware is empty, not a panic.
func TestCSPNonceWithoutMiddleware(t *testing.T) {
	t.Parallel()
	if n := CSPNonce(httptest.NewRequest(http.MethodGet, "/", nil).Context()); n != "" {
		t.Errorf("nonce %q", n)
	}
	h := httperr.Install(httperr.Options{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n := CSPNonce(r.Context()); n != "" {
			t.Errorf("nonce %q", n)
		}
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
}

// TestSecureHeadersNested checks two SecureHeaders on one route (a global
// enforced policy, a route's report-only trial): each header keeps its own
// policy, and both carry the one nonce that pages get.
func TestSecureHeadersNested(t *testing.T) {
	t.Parallel()
	const strict = "script-src 'nonce-{nonce}'; object-src 'none'"
	const trial = "default-src *; script-src * 'unsafe-inline' 'nonce-{nonce}'"
	enforced, err := NewSecureHeaders(SecureHeadersOptions{ContentSecurityPolicy: strict})
	if err != nil {
		t.Fatal(err)
	}
	reportOnly, err := NewSecureHeaders(SecureHeadersOptions{ContentSecurityPolicy: trial, InsecureCSPReportOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var nonce string
	h := enforced.Handler(reportOnly.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nonce = CSPNonce(r.Context())
		_, _ = w.Write([]byte("ok"))
	})))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if len(nonce) != 22 {
		t.Fatalf("nonce %q", nonce)
	}
	withNonce := func(p string) string {
		return strings.ReplaceAll(p, "{nonce}", nonce) + "; frame-ancestors 'none'"
	}
	if got, want := rec.Header().Get("Content-Security-Policy"), withNonce(strict); got != want {
		t.Errorf("enforced policy\n got %q\nwant %q", got, want)
	}
	if got, want := rec.Header().Get("Content-Security-Policy-Report-Only"), withNonce(trial); got != want {
		t.Errorf("report-only policy\n got %q\nwant %q", got, want)
	}
}

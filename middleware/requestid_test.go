package middleware

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	chimw "github.com/go-chi/chi/v5/middleware"

	"github.com/stormcellar/stormcellar/httperr"
)

var generatedID = regexp.MustCompile(`^[0-9a-f]{16}$`)

func mustRequestID(t testing.TB, opts RequestIDOptions) *RequestID {
	t.Helper()
	m, err := NewRequestID(opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	proxy := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}
	tests := []struct {
		name    string
		trusted []netip.Prefix
		remote  string
		inbound []string
		want    string // "" means a generated id
	}{
		{name: "no inbound id", trusted: proxy, remote: "10.1.1.1:1"},
		{name: "untrusted peer", trusted: proxy, remote: "203.0.113.5:1", inbound: []string{"attacker-chosen-id"}},
		{name: "no trusted proxies", remote: "10.1.1.1:1", inbound: []string{"proxy-id-123"}},
		{name: "trusted proxy", trusted: proxy, remote: "10.1.1.1:1", inbound: []string{"proxy-id-123"}, want: "proxy-id-123"},
		{name: "trusted IPv6 proxy", trusted: proxy, remote: "[2001:db8::7]:1", inbound: []string{"550e8400-e29b-41d4-a716-446655440000"}, want: "550e8400-e29b-41d4-a716-446655440000"},
		{name: "trusted IPv4-mapped peer", trusted: proxy, remote: "[::ffff:10.2.2.2]:1", inbound: []string{"proxy-id-123"}, want: "proxy-id-123"},
		{name: "too short", trusted: proxy, remote: "10.1.1.1:1", inbound: []string{"abc"}},
		{name: "too long", trusted: proxy, remote: "10.1.1.1:1", inbound: []string{strings.Repeat("a", 65)}},
		{name: "longest accepted", trusted: proxy, remote: "10.1.1.1:1", inbound: []string{strings.Repeat("a", 64)}, want: strings.Repeat("a", 64)},
		{name: "space", trusted: proxy, remote: "10.1.1.1:1", inbound: []string{"id with space"}},
		{name: "log forging", trusted: proxy, remote: "10.1.1.1:1", inbound: []string{`x" level=ERROR msg="forged`}},
		{name: "markup", trusted: proxy, remote: "10.1.1.1:1", inbound: []string{"<script>alert(1)</script>"}},
		{name: "non-ASCII", trusted: proxy, remote: "10.1.1.1:1", inbound: []string{"idé-12345678"}},
		{name: "two headers", trusted: proxy, remote: "10.1.1.1:1", inbound: []string{"proxy-id-123", "proxy-id-456"}},
		{name: "unparseable peer", trusted: proxy, remote: "garbage", inbound: []string{"proxy-id-123"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var ctxID, hdrID string
			h := mustRequestID(t, RequestIDOptions{TrustedProxies: tc.trusted}).Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ctxID = httperr.RequestID(r.Context())
				hdrID = r.Header.Get(RequestIDHeader)
				httperr.WriteStatus(w, r, http.StatusTeapot)
			}))
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.RemoteAddr = tc.remote
			if tc.inbound != nil {
				req.Header[RequestIDHeader] = tc.inbound
			}
			rec := httptest.NewRecorder()
			httperr.Install(httperr.Options{Logger: discardLogger()})(h).ServeHTTP(rec, req)
			got := rec.Header().Get(RequestIDHeader)
			if tc.want != "" && got != tc.want {
				t.Errorf("id %q, want %q", got, tc.want)
			}
			if tc.want == "" && !generatedID.MatchString(got) {
				t.Errorf("id %q, want a generated one", got)
			}
			if ctxID != got {
				t.Errorf("context id %q, header %q", ctxID, got)
			}
			if tc.inbound != nil && hdrID != got {
				t.Errorf("request header still says %q, want %q", hdrID, got)
			}
			if !strings.Contains(rec.Body.String(), got) {
				t.Errorf("error page %q does not quote %q", rec.Body.String(), got)
			}
		})
	}
}

// TestRequestIDSpoofedXFF: through a real server with chi's
// ClientIPFromXFF trusting the loopback proxy, a client whose
// X-Forwarded-For claims a trusted address cannot choose its id: trust
// comes from the TCP peer only.
func TestRequestIDSpoofedXFF(t *testing.T) {
	t.Parallel()
	m := mustRequestID(t, RequestIDOptions{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	h := chimw.ClientIPFromXFF("127.0.0.0/8")(m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, chimw.GetClientIP(r.Context()))
	})))
	ts := startServer(t, h)
	req, _ := http.NewRequest(http.MethodGet, ts.URL, nil)
	req.Header.Set("X-Forwarded-For", "10.9.9.9")
	req.Header.Set(RequestIDHeader, "attacker-chosen-id")
	resp, err := client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "10.9.9.9" {
		t.Fatalf("setup: chi resolved %q", b)
	}
	if got := resp.Header.Get(RequestIDHeader); !generatedID.MatchString(got) {
		t.Errorf("id %q: the spoofed XFF made the inbound id trusted", got)
	}
}

// TestChiRequestIDAnchor: chi's RequestID takes any client's X-Request-Id
// as it is; ours does not.
func TestChiRequestIDAnchor(t *testing.T) {
	t.Parallel()
	forged := `"><img src=x onerror=alert(1)>` + strings.Repeat("A", 4000)
	var chiID string
	chimw.RequestID(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		chiID = chimw.GetReqID(r.Context())
	})).ServeHTTP(httptest.NewRecorder(), func() *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("X-Request-Id", forged)
		return r
	}())
	if chiID != forged {
		t.Fatalf("chi RequestID: got %.20q; the anchor's behaviour changed, update this test", chiID)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("X-Request-Id", forged)
	mustRequestID(t, RequestIDOptions{}).Handler(http.NotFoundHandler()).ServeHTTP(rec, req)
	if got := rec.Header().Get(RequestIDHeader); !generatedID.MatchString(got) {
		t.Errorf("ours took %.20q", got)
	}
}

func TestRequestIDNested(t *testing.T) {
	t.Parallel()
	outer, inner := mustRequestID(t, RequestIDOptions{}), mustRequestID(t, RequestIDOptions{})
	var seen string
	rec := httptest.NewRecorder()
	outer.Handler(inner.Handler(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		seen = httperr.RequestID(r.Context())
	}))).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if got := rec.Header().Values(RequestIDHeader); len(got) != 1 || got[0] != seen {
		t.Errorf("header %q, context %q", got, seen)
	}
}

func TestRequestIDUnique(t *testing.T) {
	t.Parallel()
	h := mustRequestID(t, RequestIDOptions{}).Handler(http.NotFoundHandler())
	seen := make(map[string]bool, 10000)
	for range 10000 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		id := rec.Header().Get(RequestIDHeader)
		if seen[id] || !generatedID.MatchString(id) {
			t.Fatalf("id %q repeated or malformed", id)
		}
		seen[id] = true
	}
}

func TestNewRequestIDErrors(t *testing.T) {
	t.Parallel()
	if m, err := NewRequestID(RequestIDOptions{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), {}}}); !errors.Is(err, ErrTrustedProxy) || m != nil {
		t.Errorf("got %v, %v", m, err)
	}
}

// TestRemoteAddrRewriterCannotForgeTrust puts chi's RealIP, which rewrites
// RemoteAddr from True-Client-IP, X-Real-IP or X-Forwarded-For whoever
// sent them, inside the stack. The trust checks and per-client limits
// below it keep using the connection's address, parsed when the request
// state was created: a client on 127.0.0.1 claiming to be the trusted
// proxy 10.6.6.x gets no chosen request id, no HTTPS treatment for plain
// HTTP and no fresh rate-limit budget per claimed address, while another
// client keeps its own budget.
func TestRemoteAddrRewriterCannotForgeTrust(t *testing.T) {
	t.Parallel()
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	ids := mustRequestID(t, RequestIDOptions{TrustedProxies: trusted})
	headers, err := NewSecureHeaders(SecureHeadersOptions{TrustedProxies: trusted})
	if err != nil {
		t.Fatal(err)
	}
	limit, err := NewRateLimit(RateLimitOptions{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	toHTTPS, err := NewHTTPSRedirect(HTTPSRedirectOptions{Hosts: []string{"127.0.0.1"}, TrustedProxies: trusted})
	if err != nil {
		t.Fatal(err)
	}
	var rewritten atomic.Value // the RemoteAddr RealIP left, for the setup check
	seen := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rewritten.Store(r.RemoteAddr)
			next.ServeHTTP(w, r)
		})
	}
	//lint:ignore SA1019 RealIP's spoofable rewrite is the attack this test runs
	h := Chain(chimw.RealIP, seen, ids.Handler, headers.Handler, limit.Handler, toHTTPS.Handler)(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "served") }))
	ts := startServer(t, h)
	noRedirect := func(c *http.Client) *http.Client {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		return c
	}
	attacker := noRedirect(client(t))
	for i := range 5 {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/account", nil)
		req.Header.Set("True-Client-IP", fmt.Sprintf("10.6.6.%d", i+1))
		req.Header.Set("X-Forwarded-Proto", "https")
		req.Header.Set(RequestIDHeader, "attacker-chosen-id")
		resp, err := attacker.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := rewritten.Load(); got != fmt.Sprintf("10.6.6.%d", i+1) {
			t.Fatalf("setup: RealIP left RemoteAddr %v", got)
		}
		want := http.StatusPermanentRedirect // plain HTTP from an untrusted peer
		if i >= 2 {
			want = http.StatusTooManyRequests // one budget: the connection's address
		}
		if resp.StatusCode != want || strings.Contains(string(body), "served") {
			t.Errorf("request %d: %d %q, want %d", i, resp.StatusCode, body, want)
		}
		if id := resp.Header.Get(RequestIDHeader); !generatedID.MatchString(id) {
			t.Errorf("request %d: request id %q taken from the client", i, id)
		}
		if hsts := resp.Header.Get("Strict-Transport-Security"); hsts != "" {
			t.Errorf("request %d: HSTS %q sent on plain HTTP", i, hsts)
		}
	}

	other := noRedirect(&http.Client{Transport: &http.Transport{
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext,
	}, Timeout: 30 * time.Second})
	resp, err := other.Get(ts.URL + "/account")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != "https://127.0.0.1/account" {
		t.Errorf("another client: %d to %q, want 308 to https://127.0.0.1/account", resp.StatusCode, resp.Header.Get("Location"))
	}
}

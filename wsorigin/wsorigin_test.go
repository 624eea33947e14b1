package wsorigin_test

import (
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stormcellar/stormcellar/wsorigin"
)

// Policies used by the origin table.
var policies = map[string]wsorigin.Options{
	// Zero options: same origin, derived from the request.
	"same": {},
	// A public origin plus an allowlist.
	"list": {
		PublicOrigin: "https://example.com",
		Allowed: []string{
			"https://app.example.com",
			"http://localhost:3000",
			"https://*.example.com",
			"https://Bücher.example",
			"http://[::1]:8080",
		},
	},
	// A wildcard whose parent is not itself allowed.
	"wild": {PublicOrigin: "https://service.test", Allowed: []string{"https://*.example.org"}},
	// Behind a proxy: the backend sees Host backend:8080 over plain HTTP.
	"proxy": {PublicOrigin: "https://chat.example.com"},
	// Only browsers may connect.
	"require": {RequireOrigin: true},
}

type originCase struct {
	name    string
	policy  string
	host    string // request Host; default example.com
	tls     bool   // request came over TLS
	origins []string
	header  http.Header // extra headers
	want    error       // nil: allowed
}

var originCases = []originCase{
	// Same origin, derived from an https request for example.com.
	{name: "same origin", policy: "same", tls: true, origins: []string{"https://example.com"}},
	{name: "upper-case scheme and host", policy: "same", tls: true, origins: []string{"HTTPS://EXAMPLE.COM"}},
	{name: "trailing dot", policy: "same", tls: true, origins: []string{"https://example.com."}},
	{name: "explicit default port", policy: "same", tls: true, origins: []string{"https://example.com:443"}},
	{name: "Host with trailing dot and port", policy: "same", tls: true, host: "Example.COM.:443", origins: []string{"https://example.com"}},
	{name: "scheme downgrade http twin", policy: "same", tls: true, origins: []string{"http://example.com"}, want: wsorigin.ErrNotAllowed},
	{name: "http twin with port 443", policy: "same", tls: true, origins: []string{"http://example.com:443"}, want: wsorigin.ErrNotAllowed},
	{name: "plain http same origin", policy: "same", origins: []string{"http://example.com"}},
	{name: "https origin on plain http server", policy: "same", origins: []string{"https://example.com"}, want: wsorigin.ErrNotAllowed},
	{name: "other port", policy: "same", tls: true, origins: []string{"https://example.com:8443"}, want: wsorigin.ErrNotAllowed},
	{name: "suffix attack example.com.evil.com", policy: "same", tls: true, origins: []string{"https://example.com.evil.com"}, want: wsorigin.ErrNotAllowed},
	{name: "prefix attack evilexample.com", policy: "same", tls: true, origins: []string{"https://evilexample.com"}, want: wsorigin.ErrNotAllowed},
	{name: "user info example.com@evil.com", policy: "same", tls: true, origins: []string{"https://example.com@evil.com"}, want: wsorigin.ErrMalformed},
	{name: "null", policy: "same", tls: true, origins: []string{"null"}, want: wsorigin.ErrNull},
	{name: "NULL upper case", policy: "same", tls: true, origins: []string{"NULL"}, want: wsorigin.ErrNull},
	{name: "trailing slash", policy: "same", tls: true, origins: []string{"https://example.com/"}, want: wsorigin.ErrMalformed},
	{name: "path", policy: "same", tls: true, origins: []string{"https://example.com/evil"}, want: wsorigin.ErrMalformed},
	{name: "query", policy: "same", tls: true, origins: []string{"https://example.com?x=1"}, want: wsorigin.ErrMalformed},
	{name: "fragment", policy: "same", tls: true, origins: []string{"https://example.com#x"}, want: wsorigin.ErrMalformed},
	{name: "two Origin headers", policy: "same", tls: true, origins: []string{"https://example.com", "https://example.com"}, want: wsorigin.ErrMultiple},
	{name: "two Origin headers, second evil", policy: "same", tls: true, origins: []string{"https://example.com", "https://evil.com"}, want: wsorigin.ErrMultiple},
	{name: "10 KB origin", policy: "same", tls: true, origins: []string{"https://" + strings.Repeat("a.", 5000) + "example.com"}, want: wsorigin.ErrTooLong},
	{name: "missing Origin, non-browser client", policy: "same", tls: true},
	{name: "empty Origin, non-browser client", policy: "same", tls: true, origins: []string{""}},
	{name: "missing Origin with browser fetch metadata", policy: "same", tls: true, header: http.Header{"Sec-Fetch-Mode": {"websocket"}}, want: wsorigin.ErrMissing},
	{name: "missing Origin, RequireOrigin", policy: "require", want: wsorigin.ErrMissing},
	{name: "RequireOrigin, same origin", policy: "require", origins: []string{"http://example.com"}},
	{name: "unicode Origin header", policy: "same", tls: true, host: "xn--exmple-cua.com", origins: []string{"https://exämple.com"}, want: wsorigin.ErrMalformed},
	{name: "leading space", policy: "same", tls: true, origins: []string{" https://example.com"}, want: wsorigin.ErrMalformed},
	{name: "ws scheme", policy: "same", tls: true, origins: []string{"wss://example.com"}, want: wsorigin.ErrNotAllowed},
	{name: "port zero", policy: "same", tls: true, origins: []string{"https://example.com:0"}, want: wsorigin.ErrMalformed},
	{name: "port too large", policy: "same", tls: true, origins: []string{"https://example.com:65536"}, want: wsorigin.ErrMalformed},
	{name: "empty port", policy: "same", tls: true, origins: []string{"https://example.com:"}, want: wsorigin.ErrMalformed},
	{name: "short IPv4 form", policy: "same", host: "127.0.0.1", origins: []string{"http://127.1"}, want: wsorigin.ErrMalformed},
	{name: "hex IPv4 form", policy: "same", host: "127.0.0.1", origins: []string{"http://0x7f.0.0.1"}, want: wsorigin.ErrMalformed},
	{name: "IPv4 same origin", policy: "same", host: "127.0.0.1:8080", origins: []string{"http://127.0.0.1:8080"}},
	{name: "percent-encoded host", policy: "same", tls: true, origins: []string{"https://exa%6dple.com"}, want: wsorigin.ErrMalformed},
	{name: "no scheme", policy: "same", tls: true, origins: []string{"example.com"}, want: wsorigin.ErrMalformed},
	{name: "pre-RFC Sec-WebSocket-Origin, evil", policy: "same", tls: true, header: http.Header{"Sec-Websocket-Origin": {"https://evil.com"}}, want: wsorigin.ErrNotAllowed},
	{name: "DNS rebinding without PublicOrigin", policy: "same", host: "rebind.evil.com", origins: []string{"http://rebind.evil.com"}},

	// Allowlist and public origin.
	{name: "public origin", policy: "list", origins: []string{"https://example.com"}},
	{name: "exact allowlist entry", policy: "list", origins: []string{"https://app.example.com"}},
	{name: "allowlist http twin", policy: "list", origins: []string{"http://app.example.com"}, want: wsorigin.ErrNotAllowed},
	{name: "wildcard one label", policy: "list", origins: []string{"https://a.example.com"}},
	{name: "wildcard two labels", policy: "list", origins: []string{"https://a.b.example.com"}},
	{name: "wildcard other port", policy: "list", origins: []string{"https://a.example.com:8443"}, want: wsorigin.ErrNotAllowed},
	{name: "wildcard http twin", policy: "list", origins: []string{"http://a.example.com"}, want: wsorigin.ErrNotAllowed},
	{name: "list: example.com.evil.com", policy: "list", origins: []string{"https://example.com.evil.com"}, want: wsorigin.ErrNotAllowed},
	{name: "list: evilexample.com", policy: "list", origins: []string{"https://evilexample.com"}, want: wsorigin.ErrNotAllowed},
	{name: "list: example.com@evil.com", policy: "list", origins: []string{"https://example.com@evil.com"}, want: wsorigin.ErrMalformed},
	{name: "localhost with port", policy: "list", origins: []string{"http://localhost:3000"}},
	{name: "LOCALHOST upper case", policy: "list", origins: []string{"http://LOCALHOST:3000"}},
	{name: "localhost other port", policy: "list", origins: []string{"http://localhost:3001"}, want: wsorigin.ErrNotAllowed},
	{name: "localhost https", policy: "list", origins: []string{"https://localhost:3000"}, want: wsorigin.ErrNotAllowed},
	{name: "punycode matches unicode entry", policy: "list", origins: []string{"https://xn--bcher-kva.example"}},
	{name: "upper-case punycode", policy: "list", origins: []string{"https://XN--BCHER-KVA.example"}},
	{name: "unicode header for unicode entry", policy: "list", origins: []string{"https://bücher.example"}, want: wsorigin.ErrMalformed},
	{name: "IPv6 literal", policy: "list", origins: []string{"http://[::1]:8080"}},
	{name: "IPv6 literal, long form", policy: "list", origins: []string{"http://[0:0:0:0:0:0:0:1]:8080"}},
	{name: "IPv6 without brackets", policy: "list", origins: []string{"http://::1:8080"}, want: wsorigin.ErrMalformed},
	{name: "empty label", policy: "list", origins: []string{"https://a..example.com"}, want: wsorigin.ErrMalformed},
	{name: "leading dot", policy: "list", origins: []string{"https://.example.com"}, want: wsorigin.ErrMalformed},
	{name: "hyphen label", policy: "list", origins: []string{"https://-a.example.com"}, want: wsorigin.ErrMalformed},
	{name: "two trailing dots", policy: "list", origins: []string{"https://a.example.com.."}, want: wsorigin.ErrMalformed},
	{name: "list: null", policy: "list", origins: []string{"null"}, want: wsorigin.ErrNull},
	{name: "wildcard vs bare parent", policy: "wild", origins: []string{"https://example.org"}, want: wsorigin.ErrNotAllowed},
	{name: "wildcard subdomain", policy: "wild", origins: []string{"https://a.example.org"}},
	{name: "wildcard subdomain with trailing dot", policy: "wild", origins: []string{"https://a.example.org."}},
	{name: "wildcard label glued", policy: "wild", origins: []string{"https://aexample.org"}, want: wsorigin.ErrNotAllowed},

	// Behind a proxy.
	{name: "proxy: public origin", policy: "proxy", host: "backend:8080", origins: []string{"https://chat.example.com"}},
	{name: "proxy: backend Host not used", policy: "proxy", host: "backend:8080", origins: []string{"http://backend:8080"}, want: wsorigin.ErrNotAllowed},
	{name: "proxy: DNS rebinding refused", policy: "proxy", host: "rebind.evil.com", origins: []string{"http://rebind.evil.com"}, want: wsorigin.ErrNotAllowed},
	{name: "proxy: forwarded headers ignored", policy: "proxy", host: "backend:8080",
		header:  http.Header{"X-Forwarded-Host": {"evil.com"}, "X-Forwarded-Proto": {"https"}, "Forwarded": {"host=evil.com;proto=https"}},
		origins: []string{"https://evil.com"}, want: wsorigin.ErrNotAllowed},
}

func newRequest(c originCase) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://example.com/ws", nil)
	r.Host = "example.com"
	if c.host != "" {
		r.Host = c.host
	}
	if c.tls {
		r.TLS = &tls.ConnectionState{}
	} else {
		r.TLS = nil
	}
	if c.origins != nil {
		r.Header["Origin"] = c.origins
	}
	for k, v := range c.header {
		r.Header[k] = v
	}
	return r
}

func TestCheckTable(t *testing.T) {
	t.Parallel()
	if len(originCases) < 40 {
		t.Fatalf("table has %d cases, want at least 40", len(originCases))
	}
	built := map[string]*wsorigin.Policy{}
	for name, opts := range policies {
		p, err := wsorigin.New(opts)
		if err != nil {
			t.Fatalf("policy %s: %v", name, err)
		}
		built[name] = p
	}
	for _, c := range originCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := built[c.policy].Check(newRequest(c))
			switch {
			case c.want == nil && err != nil:
				t.Fatalf("Check(%q) = %v, want allowed", c.origins, err)
			case c.want != nil && !errors.Is(err, c.want):
				t.Fatalf("Check(%q) = %v, want %v", c.origins, err, c.want)
			}
			if err != nil && len(err.Error()) > 300 {
				t.Errorf("error text is %d bytes; the refused value must be truncated", len(err.Error()))
			}
		})
	}
}

func TestNewRefusesBadPatterns(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, pattern, reason string
	}{
		{"bare star", "*", "bare *"},
		{"star scheme", "*://*", "bare *"},
		{"scheme star", "https://*", "bare *"},
		{"no scheme", "example.com", "no scheme"},
		{"path", "https://example.com/app", "has a path"},
		{"trailing slash", "https://example.com/", "has a path"},
		{"query", "https://example.com?x", "query"},
		{"user info", "https://user@example.com", "user info"},
		{"fragment", "https://example.com#top", "fragment"},
		{"null", "null", "opaque origin null"},
		{"glued wildcard", "https://*example.com", "whole leftmost label"},
		{"inner wildcard", "https://a.*.example.com", "whole leftmost label"},
		{"double wildcard", "https://*.*.example.com", "whole leftmost label"},
		{"wildcard over TLD", "https://*.com", "public suffix"},
		{"wildcard over public suffix", "https://*.github.io", "public suffix"},
		{"wildcard over two-label suffix", "https://*.co.uk", "public suffix"},
		{"wildcard over IP", "https://*.127.0.0.1", "IP address"},
		{"wildcard custom scheme", "chrome-extension://*.abc.example.com", "only for http and https"},
		{"question mark", "https://exampl?.com", "query"},
		{"bracket class", "https://[a-z].example.com", "IPv6"},
		{"empty", "", "empty entry"},
		{"spaces", " https://example.com", "space"},
		{"bad port", "https://example.com:99999", "invalid port"},
		{"bad IDN", "https://xn--a.example", "punycode"},
		{"too long", "https://" + strings.Repeat("a", 600) + ".com", "longer than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := wsorigin.New(wsorigin.Options{Allowed: []string{"https://ok.example.com", c.pattern}})
			var pe *wsorigin.PatternError
			if !errors.As(err, &pe) || !errors.Is(err, wsorigin.ErrBadPattern) {
				t.Fatalf("New(%q) = %v, want a *PatternError", c.pattern, err)
			}
			if !strings.Contains(err.Error(), c.reason) || !strings.Contains(err.Error(), "Allowed[1]") {
				t.Fatalf("error %q does not name the entry and say %q", err, c.reason)
			}
		})
	}
}

func TestNewReportsEveryBadEntry(t *testing.T) {
	t.Parallel()
	_, err := wsorigin.New(wsorigin.Options{
		PublicOrigin: "https://*.example.com",
		Allowed:      []string{"*", "https://ok.example.com", "example.com"},
	})
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"PublicOrigin", "Allowed[0]", "Allowed[2]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "Allowed[1]") {
		t.Errorf("error %q blames a good entry", err)
	}
}

func TestParseList(t *testing.T) {
	t.Parallel()
	got, err := wsorigin.ParseList("$WS_ORIGINS", " https://App.Example.com:443,\nhttp://localhost:3000  https://*.Example.org. ,,https://bücher.example")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"https://app.example.com", "http://localhost:3000", "https://*.example.org", "https://xn--bcher-kva.example"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("ParseList = %q, want %q", got, want)
	}
	_, err = wsorigin.ParseList("$WS_ORIGINS", "https://ok.example.com, example.com, https://x.com/path,*")
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{`$WS_ORIGINS entry 2 "example.com"`, `$WS_ORIGINS entry 3 "https://x.com/path"`, `$WS_ORIGINS entry 4 "*"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 3 {
		t.Errorf("got %d error lines, want one per bad entry (3): %q", n, err)
	}
}

func TestFromEnv(t *testing.T) {
	t.Setenv("STORMCELLAR_TEST_WS_ORIGINS", "https://a.example.com https://b.example.com")
	got, err := wsorigin.FromEnv("STORMCELLAR_TEST_WS_ORIGINS")
	if err != nil || len(got) != 2 {
		t.Fatalf("FromEnv = %q, %v", got, err)
	}
	p, err := wsorigin.New(wsorigin.Options{Allowed: got})
	if err != nil {
		t.Fatal(err)
	}
	o, _ := wsorigin.ParseOrigin("https://b.example.com")
	if !p.AllowsOrigin(o) {
		t.Fatal("entry from the environment not allowed")
	}
	t.Setenv("STORMCELLAR_TEST_WS_ORIGINS", "https://a.example.com/")
	if _, err := wsorigin.FromEnv("STORMCELLAR_TEST_WS_ORIGINS"); err == nil ||
		!strings.Contains(err.Error(), "$STORMCELLAR_TEST_WS_ORIGINS entry 1") {
		t.Fatalf("FromEnv error = %v, want one naming the variable and entry", err)
	}
	t.Setenv("STORMCELLAR_TEST_WS_ORIGINS", "")
	if got, err := wsorigin.FromEnv("STORMCELLAR_TEST_WS_ORIGINS"); err != nil || len(got) != 0 {
		t.Fatalf("empty variable: %q, %v; want an empty list", got, err)
	}
}

func TestOriginStringRoundTrip(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"HTTPS://Example.COM.:443": "https://example.com",
		"http://example.com:8080":  "http://example.com:8080",
		"http://[0::1]:80":         "http://[::1]",
		"app://localhost":          "app://localhost",
		"https://127.0.0.1:8443":   "https://127.0.0.1:8443",
	} {
		o, err := wsorigin.ParseOrigin(in)
		if err != nil {
			t.Fatalf("ParseOrigin(%q): %v", in, err)
		}
		if o.String() != want {
			t.Errorf("ParseOrigin(%q).String() = %q, want %q", in, o, want)
		}
	}
}

func TestHandlerChecksOnlyUpgradesByDefault(t *testing.T) {
	t.Parallel()
	strict, _ := wsorigin.New(wsorigin.Options{})
	unsafe, _ := wsorigin.New(wsorigin.Options{CheckUnsafeMethods: true})
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	cases := []struct {
		name    string
		p       *wsorigin.Policy
		method  string
		upgrade string
		origin  string
		want    int
	}{
		{"upgrade cross-origin", strict, "GET", "websocket", "https://evil.com", 403},
		{"upgrade token list", strict, "GET", "foo, WebSocket", "https://evil.com", 403},
		{"upgrade same origin", strict, "GET", "websocket", "http://example.com", 204},
		{"plain GET cross-origin", strict, "GET", "", "https://evil.com", 204},
		{"POST cross-origin, default", strict, "POST", "", "https://evil.com", 204},
		{"POST cross-origin, CheckUnsafeMethods", unsafe, "POST", "", "https://evil.com", 403},
		{"DELETE null, CheckUnsafeMethods", unsafe, "DELETE", "", "null", 403},
		{"POST same origin, CheckUnsafeMethods", unsafe, "POST", "", "http://example.com", 204},
		{"GET cross-origin, CheckUnsafeMethods", unsafe, "GET", "", "https://evil.com", 204},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(c.method, "http://example.com/", nil)
			r.Header.Set("Origin", c.origin)
			if c.upgrade != "" {
				r.Header.Set("Upgrade", c.upgrade)
				r.Header.Set("Connection", "Upgrade")
			}
			rec := httptest.NewRecorder()
			c.p.Handler(ok).ServeHTTP(rec, r)
			if rec.Code != c.want {
				t.Fatalf("status %d, want %d", rec.Code, c.want)
			}
			if c.want == 403 && strings.Contains(rec.Body.String(), "evil") {
				t.Fatalf("403 body echoes the origin: %q", rec.Body)
			}
		})
	}
}

func TestZeroPolicyIsSameOrigin(t *testing.T) {
	t.Parallel()
	var p wsorigin.Policy
	for origin, ok := range map[string]bool{"http://example.com": true, "https://example.com": false,
		"http://example.com.evil.com": false, "null": false} {
		r := httptest.NewRequest("GET", "http://example.com/ws", nil)
		r.Header.Set("Origin", origin)
		if got := p.Check(r) == nil; got != ok {
			t.Errorf("zero Policy: %q allowed=%v, want %v", origin, got, ok)
		}
	}
}

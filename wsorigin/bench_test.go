package wsorigin_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/stormcellar/stormcellar/wsorigin"
)

// coderRule is the decision coder/websocket documents for
// AcceptOptions.OriginPatterns (url.Parse, Host compared case-insensitively,
// then path.Match of each lower-cased pattern against the host, or against
// scheme://host when the pattern has a scheme). Baseline only.
func coderRule(r *http.Request, patterns []string) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if strings.EqualFold(r.Host, u.Host) {
		return true
	}
	for _, p := range patterns {
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(target)); ok {
			return true
		}
	}
	return false
}

var benchOrigins = []struct{ name, origin string }{
	{"same", "https://example.com"},
	{"exact", "https://app.example.com"},
	{"wildcard", "https://a.b.example.com"},
	{"refused", "https://example.com.evil.com"},
	{"upper", "HTTPS://APP.EXAMPLE.COM"},
	{"10KB", "https://" + strings.Repeat("a.", 5000) + "example.com"},
}

func benchRequest(origin string) *http.Request {
	r := httptest.NewRequest("GET", "http://example.com/ws", nil)
	r.Host = "example.com"
	r.Header.Set("Origin", origin)
	return r
}

// BenchmarkCheck compares the origin decision alone: wsorigin's Check,
// coder/websocket's rule and Tornado's rule, on the same requests.
func BenchmarkCheck(b *testing.B) {
	p, err := wsorigin.New(wsorigin.Options{PublicOrigin: "https://example.com",
		Allowed: []string{"https://app.example.com", "https://*.example.com", "http://localhost:3000"}})
	if err != nil {
		b.Fatal(err)
	}
	patterns := []string{"https://app.example.com", "https://*.example.com", "http://localhost:3000"}
	for _, o := range benchOrigins {
		r := benchRequest(o.origin)
		b.Run("wsorigin/"+o.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = p.Check(r)
			}
		})
		b.Run("coder-rule/"+o.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = coderRule(r, patterns)
			}
		})
		b.Run("tornado-rule/"+o.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = tornadoAllows(r)
			}
		})
	}
}

// BenchmarkAccept runs the real coder/websocket Accept up to the hijack
// (a recorder cannot hijack, so an allowed origin ends in 501): bare
// coder/websocket with patterns against Policy.Accept.
func BenchmarkAccept(b *testing.B) {
	p, _ := wsorigin.New(wsorigin.Options{PublicOrigin: "https://example.com",
		Allowed: []string{"https://app.example.com", "https://*.example.com"}})
	opts := &websocket.AcceptOptions{OriginPatterns: []string{"https://app.example.com", "https://*.example.com"}}
	for _, o := range benchOrigins[:4] {
		r := benchRequest(o.origin)
		r.Header.Set("Connection", "Upgrade")
		r.Header.Set("Upgrade", "websocket")
		r.Header.Set("Sec-WebSocket-Version", "13")
		r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		b.Run("coder/"+o.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = websocket.Accept(httptest.NewRecorder(), r, opts)
			}
		})
		if o.name == "refused" {
			continue // Policy.Accept logs a record per refusal; not an origin cost
		}
		b.Run("wsorigin/"+o.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = p.Accept(httptest.NewRecorder(), r, nil)
			}
		})
	}
}

package wsorigin_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stormcellar/stormcellar/wsorigin"
)

func originSeeds() []string {
	var s []string
	for _, c := range originCases {
		s = append(s, c.origins...)
	}
	return s
}

// FuzzParseOrigin: ParseOrigin never panics, and what it accepts is
// normalised and survives a round trip through String.
func FuzzParseOrigin(f *testing.F) {
	for _, s := range originSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := wsorigin.ParseOrigin(s)
		if err != nil {
			return
		}
		if len(s) > wsorigin.MaxOriginLen {
			t.Fatalf("accepted %d bytes", len(s))
		}
		if o.Host == "" || strings.HasSuffix(o.Host, ".") || o.Host != strings.ToLower(o.Host) || o.Scheme != strings.ToLower(o.Scheme) {
			t.Fatalf("ParseOrigin(%q) = %+v: not normalised", s, o)
		}
		if strings.ContainsAny(o.Host, "/@?#*\\% ") {
			t.Fatalf("ParseOrigin(%q) host %q has a forbidden character", s, o.Host)
		}
		again, err := wsorigin.ParseOrigin(o.String())
		if err != nil || again != o {
			t.Fatalf("round trip %q -> %q -> %+v, %v", s, o.String(), again, err)
		}
	})
}

// FuzzCheck builds a policy from a fuzzed allowlist entry and checks a
// fuzzed Origin against it: it never panics, a bad entry is an error from
// New, and a match always has the same scheme and port as the entry (and
// the same host, or a host under the wildcard's domain).
func FuzzCheck(f *testing.F) {
	patterns := []string{"https://example.com", "https://*.example.com", "http://localhost:3000",
		"https://*.example.org:8443", "http://[::1]:8080", "https://bücher.example", "*", "https://*.com"}
	origins := originSeeds()
	for i, o := range origins {
		f.Add(patterns[i%len(patterns)], o)
	}
	f.Fuzz(func(t *testing.T, pattern, origin string) {
		list, err := wsorigin.ParseList("fuzz", pattern)
		if err != nil || len(list) != 1 || strings.ContainsAny(pattern, ", \t\r\n") {
			if _, err2 := wsorigin.New(wsorigin.Options{Allowed: []string{pattern}}); err2 == nil && err != nil {
				t.Fatalf("New accepted %q that ParseList refused: %v", pattern, err)
			}
			return
		}
		p, err := wsorigin.New(wsorigin.Options{Allowed: []string{pattern}})
		if err != nil {
			t.Fatalf("ParseList accepted %q, New refused: %v", pattern, err)
		}
		r := httptest.NewRequest("GET", "http://fuzz.invalid/", nil)
		r.Header["Origin"] = []string{origin}
		if p.Check(r) != nil {
			return
		}
		if origin == "" {
			return // missing Origin from a non-browser client
		}
		o, err := wsorigin.ParseOrigin(origin)
		if err != nil {
			t.Fatalf("Check allowed %q that ParseOrigin refuses: %v", origin, err)
		}
		if o.String() == "http://fuzz.invalid" {
			return // same origin
		}
		entry := list[0]
		wild := strings.Contains(entry, "://*.")
		e, err := wsorigin.ParseOrigin(strings.Replace(entry, "://*.", "://", 1))
		if err != nil {
			t.Fatalf("normalised entry %q does not parse: %v", entry, err)
		}
		if o.Scheme != e.Scheme || o.Port != e.Port {
			t.Fatalf("entry %q allowed %q with another scheme or port", pattern, origin)
		}
		if wild && !strings.HasSuffix(o.Host, "."+e.Host) || !wild && o.Host != e.Host {
			t.Fatalf("entry %q allowed host %q", pattern, o.Host)
		}
	})
}

package timeouts

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
)

// Severity ranks a [Finding].
type Severity int

// Severities, from least to most serious.
const (
	// Low: worth knowing, rarely exploitable alone.
	Low Severity = iota + 1
	// Medium: weakens a defence; fix before production.
	Medium
	// High: exploitable as it stands (denial of service, information
	// disclosure).
	High
)

func (s Severity) String() string {
	switch s {
	case Low:
		return "low"
	case Medium:
		return "medium"
	case High:
		return "high"
	}
	return fmt.Sprintf("severity(%d)", int(s))
}

// Finding is one insecure setting found by [CheckServer].
type Finding struct {
	Severity Severity
	// Setting names the http.Server field (or route) concerned.
	Setting string
	// Problem says what an attacker can do and what to set instead.
	Problem string
}

func (f Finding) String() string {
	return f.Severity.String() + ": " + f.Setting + ": " + f.Problem
}

// Findings is the result of [CheckServer].
type Findings []Finding

// Err returns an error listing the findings of severity min or above, or
// nil if there are none: the gate for refusing to start in production.
func (fs Findings) Err(min Severity) error {
	var errs []error
	for _, f := range fs {
		if f.Severity >= min {
			errs = append(errs, errors.New(f.String()))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("timeouts: insecure server configuration: %w", errors.Join(errs...))
}

// Thresholds CheckServer applies.
const (
	maxSafeHeaderTimeout = time.Minute
	maxSafeIdleTimeout   = 10 * time.Minute
	maxSafeStreams       = 1000
)

// debugPaths are the routes of net/http/pprof and expvar.
var debugPaths = [...]string{"/debug/pprof/", "/debug/pprof/profile", "/debug/pprof/cmdline", "/debug/vars"}

// CheckServer inspects srv's configuration and reports what leaves it open
// to attack, most serious first in each group: zero or very long
// timeouts (slowloris, slow reads, idle floods), header limits above 64
// KiB, weak TLS, and net/http/pprof or expvar reachable on a handler that
// is served on a non-loopback address. A Server from [NewServer] passes
// (its per-request write deadline stands in for http.Server.WriteTimeout).
//
// Debug routes are found when the handler is an [http.ServeMux] (nil
// meaning http.DefaultServeMux, where importing net/http/pprof registers
// them) or a chi router, possibly wrapped by NewServer; other handlers
// cannot be looked into and are not reported on. CheckServer reads srv
// only; it never sends a request through the handler.
func CheckServer(srv *http.Server) Findings {
	if srv == nil {
		return Findings{{High, "Server", "nil *http.Server"}}
	}
	var fs Findings
	add := func(s Severity, setting, format string, args ...any) {
		fs = append(fs, Finding{s, setting, fmt.Sprintf(format, args...)})
	}
	handler := srv.Handler
	ours := false
	if sh, ok := handler.(*serverHandler); ok {
		ours = true
		handler = sh.next
	}

	headerTimeout := srv.ReadHeaderTimeout
	if headerTimeout <= 0 {
		headerTimeout = srv.ReadTimeout
	}
	switch {
	case headerTimeout <= 0:
		add(High, "ReadHeaderTimeout", "zero (and ReadTimeout zero): a client sending headers a byte at a time (slowloris) holds its connection forever; set 10s")
	case headerTimeout > maxSafeHeaderTimeout:
		add(Medium, "ReadHeaderTimeout", "%v: slowloris connections are held that long each; use at most %v", headerTimeout, maxSafeHeaderTimeout)
	}
	idle := srv.IdleTimeout
	if idle <= 0 {
		idle = srv.ReadTimeout
	}
	switch {
	case idle <= 0:
		add(Medium, "IdleTimeout", "zero (and ReadTimeout zero): idle keep-alive connections are never closed; set 120s")
	case idle > maxSafeIdleTimeout:
		add(Low, "IdleTimeout", "%v: idle connections are kept that long; use at most %v", idle, maxSafeIdleTimeout)
	}
	if srv.WriteTimeout <= 0 && !ours {
		add(Medium, "WriteTimeout", "zero: a client that stops reading its response holds the handler forever; set it, or set per-route write deadlines (timeouts.Deadline, timeouts.NewServer)")
	}
	switch {
	case srv.MaxHeaderBytes <= 0:
		add(Medium, "MaxHeaderBytes", "zero means net/http's 1 MiB per request; set 64 KiB")
	case srv.MaxHeaderBytes > DefaultMaxHeaderBytes:
		add(Medium, "MaxHeaderBytes", "%d bytes: every connection may make the server buffer that much; use at most %d", srv.MaxHeaderBytes, DefaultMaxHeaderBytes)
	}
	if h2 := srv.HTTP2; h2 != nil && h2.MaxConcurrentStreams > maxSafeStreams {
		add(Medium, "HTTP2.MaxConcurrentStreams", "%d: one HTTP/2 connection may run that many handlers; use at most %d", h2.MaxConcurrentStreams, maxSafeStreams)
	}
	if c := srv.TLSConfig; c != nil {
		if c.MinVersion != 0 && c.MinVersion < tls.VersionTLS12 {
			add(High, "TLSConfig.MinVersion", "%s is accepted; require TLS 1.2 or later", tls.VersionName(c.MinVersion))
		}
		for _, id := range c.CipherSuites {
			for _, bad := range tls.InsecureCipherSuites() {
				if id == bad.ID {
					add(High, "TLSConfig.CipherSuites", "insecure cipher suite %s enabled", bad.Name)
				}
			}
		}
	}
	if srv.ErrorLog == nil {
		add(Low, "ErrorLog", "nil: net/http's errors (panics, TLS failures) go to the standard logger, outside the structured log")
	}
	public := !loopbackAddr(srv.Addr)
	for _, p := range exposedDebugRoutes(handler) {
		if public {
			add(High, "Handler", "%s is reachable (net/http/pprof or expvar): it discloses memory, command line and profiles and lets anyone load the CPU; serve it on a separate loopback-only server", p)
		} else {
			add(Low, "Handler", "%s is reachable; acceptable only because Addr %q is loopback", p, srv.Addr)
		}
	}
	if srv.TLSConfig == nil && public && srv.Addr != "" {
		add(Low, "TLSConfig", "nil on %q: plain HTTP, fine only behind a proxy that terminates TLS and redirects HTTP", srv.Addr)
	}
	return fs
}

// loopbackAddr reports whether a listen address binds only a loopback
// interface ("127.0.0.1:6060", "[::1]:80", "localhost:8080"). An empty
// host binds every interface.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// exposedDebugRoutes lists the debug paths the handler routes to a
// handler of their own (not a catch-all).
func exposedDebugRoutes(h http.Handler) []string {
	if h == nil {
		h = http.DefaultServeMux
	}
	var out []string
	for _, p := range debugPaths {
		if routesDebug(h, p) {
			out = append(out, p)
		}
	}
	return out
}

func routesDebug(h http.Handler, path string) bool {
	switch m := h.(type) {
	case *http.ServeMux:
		req := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: path}, Host: "", Header: http.Header{}}
		_, pattern := m.Handler(req)
		return isDebugPattern(pattern)
	case chi.Routes:
		return isDebugPattern(m.Find(chi.NewRouteContext(), http.MethodGet, path))
	}
	return false
}

// isDebugPattern reports whether a route pattern is specific to the debug
// tree rather than a catch-all that happens to match it ("/", "/*",
// "GET /{path...}").
func isDebugPattern(pattern string) bool {
	if _, p, ok := strings.Cut(pattern, " "); ok {
		pattern = p // "GET /debug/pprof/" → path part
	}
	if i := strings.IndexByte(pattern, '/'); i > 0 {
		pattern = pattern[i:] // host-qualified ServeMux pattern
	}
	return strings.HasPrefix(pattern, "/debug/")
}

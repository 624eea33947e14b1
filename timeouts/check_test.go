package timeouts_test

import (
	"crypto/tls"
	"errors"
	_ "expvar" // registers /debug/vars on http.DefaultServeMux, as in real programs
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof/ on http.DefaultServeMux
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	chimw "github.com/go-chi/chi/v5/middleware"

	"github.com/stormcellar/stormcellar/timeouts"
)

func hasFinding(fs timeouts.Findings, sev timeouts.Severity, setting, text string) bool {
	for _, f := range fs {
		if f.Severity == sev && f.Setting == setting && strings.Contains(f.Problem, text) {
			return true
		}
	}
	return false
}

func TestCheckServer(t *testing.T) {
	t.Parallel()
	safe := func() *http.Server {
		return &http.Server{
			Addr: ":8080", Handler: http.NewServeMux(),
			ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute, WriteTimeout: time.Minute,
			MaxHeaderBytes: 64 << 10, ErrorLog: nil,
			TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12},
		}
	}
	chiWithProfiler := chi.NewRouter()
	chiWithProfiler.Mount("/debug", chimw.Profiler())
	chiWithProfiler.Get("/", func(http.ResponseWriter, *http.Request) {})
	chiCatchAll := chi.NewRouter()
	chiCatchAll.Get("/*", func(http.ResponseWriter, *http.Request) {})
	muxCatchAll := http.NewServeMux()
	muxCatchAll.HandleFunc("GET /{path...}", func(http.ResponseWriter, *http.Request) {})
	muxWithVars := http.NewServeMux()
	muxWithVars.Handle("/debug/vars", http.DefaultServeMux)

	type want struct {
		sev     timeouts.Severity
		setting string
		text    string
	}
	cases := []struct {
		name   string
		mutate func(*http.Server)
		want   []want
		clean  bool // no finding above Low
	}{
		{"hardened server", func(*http.Server) {}, nil, true},
		{"zero timeouts (Go's default server)", func(s *http.Server) { *s = http.Server{} }, []want{
			{timeouts.High, "ReadHeaderTimeout", "slowloris"},
			{timeouts.Medium, "IdleTimeout", "never closed"},
			{timeouts.Medium, "WriteTimeout", "stops reading"},
			{timeouts.Medium, "MaxHeaderBytes", "1 MiB"},
			{timeouts.High, "Handler", "/debug/pprof/"},
			{timeouts.High, "Handler", "/debug/vars"},
		}, false},
		{"ReadTimeout stands in for header and idle timeouts", func(s *http.Server) {
			s.ReadHeaderTimeout, s.IdleTimeout, s.ReadTimeout = 0, 0, 5*time.Second
		}, nil, true},
		{"very long header timeout", func(s *http.Server) { s.ReadHeaderTimeout = time.Hour }, []want{
			{timeouts.Medium, "ReadHeaderTimeout", "1h0m0s"},
		}, false},
		{"oversized header limit", func(s *http.Server) { s.MaxHeaderBytes = 1 << 20 }, []want{
			{timeouts.Medium, "MaxHeaderBytes", "1048576"},
		}, false},
		{"TLS 1.0 and a weak suite", func(s *http.Server) {
			s.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS10, CipherSuites: []uint16{tls.TLS_RSA_WITH_RC4_128_SHA}}
		}, []want{
			{timeouts.High, "TLSConfig.MinVersion", "TLS 1.0"},
			{timeouts.High, "TLSConfig.CipherSuites", "RC4"},
		}, false},
		{"too many HTTP/2 streams", func(s *http.Server) { s.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: 100000} }, []want{
			{timeouts.Medium, "HTTP2.MaxConcurrentStreams", "100000"},
		}, false},
		{"pprof on chi router", func(s *http.Server) { s.Handler = chiWithProfiler }, []want{
			{timeouts.High, "Handler", "/debug/pprof/"},
		}, false},
		{"expvar on a ServeMux", func(s *http.Server) { s.Handler = muxWithVars }, []want{
			{timeouts.High, "Handler", "/debug/vars"},
		}, false},
		{"pprof on loopback only is low", func(s *http.Server) { s.Handler = nil; s.Addr = "127.0.0.1:6060" }, []want{
			{timeouts.Low, "Handler", "/debug/pprof/"},
		}, true},
		{"catch-all routes are not debug routes", func(s *http.Server) { s.Handler = chiCatchAll }, nil, true},
		{"catch-all ServeMux pattern", func(s *http.Server) { s.Handler = muxCatchAll }, nil, true},
		{"plain HTTP on a public address", func(s *http.Server) { s.TLSConfig = nil }, []want{
			{timeouts.Low, "TLSConfig", "plain HTTP"},
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := safe()
			tc.mutate(srv)
			fs := timeouts.CheckServer(srv)
			for _, w := range tc.want {
				if !hasFinding(fs, w.sev, w.setting, w.text) {
					t.Errorf("missing %v %s %q in %v", w.sev, w.setting, w.text, fs)
				}
			}
			if err := fs.Err(timeouts.Medium); (err == nil) != tc.clean {
				t.Errorf("Err(Medium) = %v, want clean %v", err, tc.clean)
			}
		})
	}
}

func TestCheckServerPassesNewServer(t *testing.T) {
	t.Parallel()
	s, err := timeouts.NewServer(http.NewServeMux(), timeouts.ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if fs := timeouts.CheckServer(s.HTTPServer()); len(fs) != 0 {
		t.Fatalf("NewServer's server has findings: %v", fs)
	}
	// The debug routes are found through NewServer's wrapper too.
	s, err = timeouts.NewServer(http.DefaultServeMux, timeouts.ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.HTTPServer().Addr = ":443"
	fs := timeouts.CheckServer(s.HTTPServer())
	if err := fs.Err(timeouts.High); err == nil || !strings.Contains(err.Error(), "/debug/pprof/") {
		t.Fatalf("Err(High) = %v", err)
	}
	if fs := timeouts.CheckServer(nil); fs.Err(timeouts.High) == nil {
		t.Fatal("nil server passed")
	}
}

func TestNewServerOptions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		opts timeouts.ServerOptions
		err  string
	}{
		{"zero value", timeouts.ServerOptions{}, ""},
		{"negative header timeout", timeouts.ServerOptions{ReadHeaderTimeout: -1}, "ReadHeaderTimeout"},
		{"negative idle", timeouts.ServerOptions{IdleTimeout: -time.Second}, "IdleTimeout"},
		{"negative conns", timeouts.ServerOptions{MaxConns: -1}, "MaxConns"},
		{"negative per client", timeouts.ServerOptions{MaxConnsPerClient: -5}, "MaxConnsPerClient"},
		{"negative header bytes", timeouts.ServerOptions{MaxHeaderBytes: -1}, "MaxHeaderBytes"},
		{"TLS 1.1", timeouts.ServerOptions{TLSConfig: &tls.Config{MinVersion: tls.VersionTLS11, Certificates: []tls.Certificate{{}}}}, "TLS 1.2"},
		{"TLS without certificate", timeouts.ServerOptions{TLSConfig: &tls.Config{}}, "certificate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := timeouts.NewServer(http.NotFoundHandler(), tc.opts)
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				hs := s.HTTPServer()
				if hs.ReadHeaderTimeout != 10*time.Second || hs.IdleTimeout != 120*time.Second ||
					hs.MaxHeaderBytes != 64<<10 || hs.ErrorLog == nil || hs.HTTP2.MaxConcurrentStreams != 100 {
					t.Fatalf("defaults not applied: %+v", hs)
				}
				return
			}
			if !errors.Is(err, timeouts.ErrInvalidOptions) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want one naming %s", err, tc.err)
			}
		})
	}
	if _, err := timeouts.NewServer(nil, timeouts.ServerOptions{}); !errors.Is(err, timeouts.ErrInvalidOptions) {
		t.Fatalf("nil handler: %v", err)
	}
}

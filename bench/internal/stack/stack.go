// Package stack builds the three handlers that bench/run and the
// in-process benchmarks compare: the bare hello handler, the full
// recommended stormcellar stack around it, and the nearest stack made of
// chi's middleware only. The servers in bench/servers and the benchmarks
// share this code, so both measure the same chain.
package stack

import (
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"runtime/pprof"
	"time"

	"github.com/go-chi/chi/v5"
	chimw "github.com/go-chi/chi/v5/middleware"

	"github.com/stormcellar/stormcellar/httperr"
	"github.com/stormcellar/stormcellar/middleware"
	"github.com/stormcellar/stormcellar/timeouts"
)

// Body is what every server answers to GET /.
const Body = "hello\n"

var (
	body      = []byte(Body)
	textPlain = []string{"text/plain; charset=utf-8"}
)

// Hello is the handler every stack ends in: it writes Body as plain text.
func Hello(w http.ResponseWriter, _ *http.Request) {
	w.Header()["Content-Type"] = textPlain
	_, _ = w.Write(body)
}

// Bare is the hello handler with nothing in front of it.
func Bare() http.Handler { return http.HandlerFunc(Hello) }

// FullResponseHeaders returns the headers the full stack sends with the
// hello response (security headers, request id, Content-Type), taken from
// one request served in process through FullLayers: the same names and
// value lengths as on the wire, with one fixed nonce and request id.
func FullResponseHeaders() (http.Header, error) {
	layers, err := FullLayers(FullOptions{})
	if err != nil {
		return nil, err
	}
	r := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/", nil)
	r.RemoteAddr = "127.0.0.1:40000"
	r.Header.Set("X-Forwarded-Proto", "https")
	w := httptest.NewRecorder()
	Wrap(layers, Bare()).ServeHTTP(w, r)
	if w.Code != http.StatusOK || w.Body.String() != Body {
		return nil, fmt.Errorf("full stack answered %d %q, want 200 %q", w.Code, w.Body.String(), Body)
	}
	return w.Result().Header, nil
}

// BareWithHeaders is the hello handler sending h (from
// FullResponseHeaders) as fixed values: what the full stack's response
// bytes alone cost, without any of its work.
func BareWithHeaders(h http.Header) http.Handler {
	h = h.Clone()
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		dst := w.Header()
		for k, v := range h {
			dst[k] = v
		}
		_, _ = w.Write(body)
	})
}

// Loopback is the proxy tier of the benchmark: the load generator on the
// same host, which says the request came over HTTPS (X-Forwarded-Proto),
// as a TLS-terminating proxy would.
var Loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// Layer is one middleware of a stack, named for the per-layer benchmarks.
type Layer struct {
	Name string
	MW   func(http.Handler) http.Handler
}

// FullOptions configure FullLayers.
type FullOptions struct {
	// Logger receives httperr's records. If nil, slog.Default().
	Logger *slog.Logger
	// Hosts are the host names HTTPSRedirect accepts. If empty,
	// 127.0.0.1 and localhost.
	Hosts []string
}

// FullLayers returns the recommended stack in the order of the
// middleware package's documentation ("Recommended order"), outermost
// first, configured as a service behind a TLS-terminating proxy on
// loopback. Only the two limits a benchmark would trip are raised: the
// rate limit (to 2^31-1 a minute) and the per-client concurrency cap
// (every load-generator connection comes from 127.0.0.1).
func FullLayers(opts FullOptions) ([]Layer, error) {
	hosts := opts.Hosts
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1", "localhost"}
	}
	ids, err := middleware.NewRequestID(middleware.RequestIDOptions{TrustedProxies: Loopback})
	if err != nil {
		return nil, err
	}
	headers, err := middleware.NewSecureHeaders(middleware.SecureHeadersOptions{TrustedProxies: Loopback})
	if err != nil {
		return nil, err
	}
	toHTTPS, err := middleware.NewHTTPSRedirect(middleware.HTTPSRedirectOptions{Hosts: hosts, TrustedProxies: Loopback})
	if err != nil {
		return nil, err
	}
	limit, err := middleware.NewRateLimit(middleware.RateLimitOptions{Limit: math.MaxInt32, Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	conc, err := middleware.NewConcurrencyLimit(middleware.ConcurrencyLimitOptions{PerClient: 1024})
	if err != nil {
		return nil, err
	}
	shed, err := middleware.NewLoadShed(middleware.LoadShedOptions{Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	return []Layer{
		{"Install", httperr.Install(httperr.Options{Logger: opts.Logger})},
		{"ClientIPFromXFF", chimw.ClientIPFromXFF(prefixStrings(Loopback)...)},
		{"RequestID", ids.Handler},
		{"SecureHeaders", headers.Handler},
		{"Recover", middleware.Recover},
		{"HTTPSRedirect", toHTTPS.Handler},
		{"MaxURLLength", middleware.MaxURLLength(middleware.MaxURLLengthOptions{})},
		{"RateLimit", limit.Handler},
		{"LoadShed", shed.Handler},
		{"ConcurrencyLimit", conc.Handler},
		{"MaxBytes", middleware.MaxBytes(middleware.MaxBytesOptions{})},
		{"Deadline", timeouts.Deadline(timeouts.DeadlineOptions{})},
	}, nil
}

// ChiOnlyLayers returns the nearest stack built from chi's middleware
// alone, with the same limits as the full stack's defaults: the client
// address from X-Forwarded-For of loopback proxies, panic recovery, a
// 1 MiB body limit, a 30 s handler timeout and at most 1024 requests in
// flight.
func ChiOnlyLayers() []Layer {
	return []Layer{
		{"ClientIPFromXFF", chimw.ClientIPFromXFF(prefixStrings(Loopback)...)},
		{"Recoverer", chimw.Recoverer},
		{"RequestSize", chimw.RequestSize(middleware.DefaultBodyLimit)},
		{"Timeout", chimw.Timeout(timeouts.DefaultDeadline)},
		{"Throttle", chimw.Throttle(1024)},
	}
}

// Router is the chi router both stacks end in: GET / answers Hello.
func Router() http.Handler {
	r := chi.NewRouter()
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { httperr.WriteStatus(w, r, http.StatusNotFound) })
	r.Get("/", Hello)
	return r
}

// Wrap applies layers around h, the first outermost.
func Wrap(layers []Layer, h http.Handler) http.Handler {
	mws := make([]func(http.Handler) http.Handler, len(layers))
	for i, l := range layers {
		mws[i] = l.MW
	}
	return middleware.Chain(mws...)(h)
}

// Full returns the full recommended stack around Router.
func Full(opts FullOptions) (http.Handler, error) {
	layers, err := FullLayers(opts)
	if err != nil {
		return nil, err
	}
	return Wrap(layers, Router()), nil
}

// ChiOnly returns the chi-only stack around Router.
func ChiOnly() http.Handler { return Wrap(ChiOnlyLayers(), Router()) }

// ChiOnlyServer returns the http.Server of the chi-only stack: net/http's
// own timeouts and header limit at the values timeouts.NewServer uses.
func ChiOnlyServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: timeouts.DefaultReadHeaderTimeout,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

// CheckLoopback returns an error unless addr is host:port with a loopback
// IP address for host: the benchmark servers turn every limit that load
// would trip off, so they must not be reachable from the network.
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("address %q: the host must be a loopback IP address such as 127.0.0.1", addr)
	}
	return nil
}

func prefixStrings(ps []netip.Prefix) []string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return s
}

// StartCPUProfile writes a CPU profile to path until the returned stop is
// called; with an empty path it does nothing.
func StartCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}

package bench_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/stormcellar/stormcellar/bench/internal/stack"
	"github.com/stormcellar/stormcellar/timeouts"
)

// The benchmarks serve the request wrk sends in bench/run (GET / from
// 127.0.0.1 with X-Forwarded-Proto: https) through each stack into a
// reused in-memory writer. Every iteration starts from a fresh copy of
// the same request value, as net/http hands each handler its own, without
// allocating it: what a case allocates is the stack's own.
//
//	go test -run '^$' -bench . -benchmem -count 10 ./bench/ | tee new.txt
//	go run golang.org/x/perf/cmd/benchstat@latest new.txt
//	go run golang.org/x/perf/cmd/benchstat@latest old.txt new.txt  # before/after a change
//
// The full chain's cost per request is the difference between
// Chain/full_chain and Chain/bare.

// benchRequest is the request wrk sends.
func benchRequest() *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8082/", nil)
	r.RemoteAddr = "127.0.0.1:40000"
	r.Header.Set("X-Forwarded-Proto", "https")
	return r
}

type benchWriter struct {
	h      http.Header
	status int
	n      int
}

// newBenchWriter returns a writer whose header map is created as
// net/http creates each response's (make(http.Header), no size hint), so
// that the stack's header writes hit the same kind of map: a small map of
// up to 8 entries, which clear keeps.
func newBenchWriter() *benchWriter { return &benchWriter{h: make(http.Header)} }

func (w *benchWriter) Header() http.Header { return w.h }

func (w *benchWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *benchWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.n += len(p)
	return len(p), nil
}

// SetWriteDeadline, SetReadDeadline and Flush succeed, as they do on
// net/http's own writer: a writer without them would make every
// ResponseController call build an error.
func (w *benchWriter) SetWriteDeadline(time.Time) error { return nil }
func (w *benchWriter) SetReadDeadline(time.Time) error  { return nil }
func (w *benchWriter) Flush()                           { w.WriteHeader(http.StatusOK) }

func (w *benchWriter) reset() {
	clear(w.h)
	w.status, w.n = 0, 0
}

// serveOnce serves a fresh copy of tmpl through h into w, reusing r.
func serveOnce(h http.Handler, w *benchWriter, r, tmpl *http.Request) {
	*r = *tmpl
	w.reset()
	h.ServeHTTP(w, r)
}

func checkServed(tb testing.TB, name string, w *benchWriter) {
	tb.Helper()
	if w.status != http.StatusOK || w.n != len(stack.Body) {
		tb.Fatalf("%s: status %d, %d bytes; want 200 and %d bytes", name, w.status, w.n, len(stack.Body))
	}
}

type benchCase struct {
	name string
	h    http.Handler
}

func mustFullChain(tb testing.TB, h http.Handler) http.Handler {
	tb.Helper()
	layers, err := stack.FullLayers(stack.FullOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return stack.Wrap(layers, h)
}

// serverHandler returns the handler timeouts.NewServer puts in front of
// h: it sets the write deadline of every request.
func serverHandler(tb testing.TB, h http.Handler) http.Handler {
	tb.Helper()
	srv, err := timeouts.NewServer(h, timeouts.ServerOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return srv.HTTPServer().Handler
}

func chainCases(tb testing.TB) []benchCase {
	return []benchCase{
		{"bare", stack.Bare()},
		{"full_chain", mustFullChain(tb, stack.Bare())},
		{"chi_only_chain", stack.Wrap(stack.ChiOnlyLayers(), stack.Bare())},
		{"router", stack.Router()},
		{"full_server_handler", serverHandler(tb, mustFullChain(tb, stack.Router()))},
		{"chi_only_server_handler", stack.ChiOnly()},
	}
}

// BenchmarkChain compares the bare hello handler, the full recommended
// chain and the chi-only chain around it, and the same handlers as the
// servers of bench/run run them: behind chi's router and, for the full
// stack, behind timeouts.NewServer's per-request handler.
func BenchmarkChain(b *testing.B) {
	tmpl := benchRequest()
	for _, c := range chainCases(b) {
		b.Run(c.name, func(b *testing.B) {
			w, r := newBenchWriter(), new(http.Request)
			b.ReportAllocs()
			for b.Loop() {
				serveOnce(c.h, w, r, tmpl)
			}
			checkServed(b, c.name, w)
		})
	}
}

// layerCases returns the bare handler and the full chain's layers added
// around it one at a time, outermost first, named "N_+Layer".
func layerCases(b *testing.B) []benchCase {
	layers, err := stack.FullLayers(stack.FullOptions{})
	if err != nil {
		b.Fatal(err)
	}
	cases := []benchCase{{"0_bare", stack.Bare()}}
	for n := 1; n <= len(layers); n++ {
		cases = append(cases, benchCase{strconv.Itoa(n) + "_+" + layers[n-1].Name, stack.Wrap(layers[:n], stack.Bare())})
	}
	return cases
}

// BenchmarkChainLayers adds the full chain's layers one at a time,
// outermost first, so that each layer's cost is the difference to the
// line before it.
func BenchmarkChainLayers(b *testing.B) {
	tmpl := benchRequest()
	for _, c := range layerCases(b) {
		b.Run(c.name, func(b *testing.B) {
			w, r := newBenchWriter(), new(http.Request)
			b.ReportAllocs()
			for b.Loop() {
				serveOnce(c.h, w, r, tmpl)
			}
			checkServed(b, c.name, w)
		})
	}
}

// BenchmarkChainLayersParallel is BenchmarkChainLayers from every P at
// once, every request from the same client (as from wrk): a layer that
// serialises requests shows as ns/op that stops falling with more Ps.
func BenchmarkChainLayersParallel(b *testing.B) {
	tmpl := benchRequest()
	for _, c := range layerCases(b) {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				w, r := newBenchWriter(), new(http.Request)
				for pb.Next() {
					serveOnce(c.h, w, r, tmpl)
				}
			})
		})
	}
}

// BenchmarkChainParallel runs the chains from every P at once: the
// shared state (rate-limit shards, concurrency counters) must not
// serialise requests.
func BenchmarkChainParallel(b *testing.B) {
	tmpl := benchRequest()
	for _, c := range chainCases(b)[:3] {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				w, r := newBenchWriter(), new(http.Request)
				served := false
				for pb.Next() {
					serveOnce(c.h, w, r, tmpl)
					served = true
				}
				if served && w.status != http.StatusOK {
					b.Errorf("%s: status %d", c.name, w.status)
				}
			})
		})
	}
}

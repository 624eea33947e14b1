package middleware

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	chimw "github.com/go-chi/chi/v5/middleware"
	"github.com/go-chi/httprate"

	"github.com/stormcellar/stormcellar/httperr"
)

// limBenchWriter is a ResponseWriter that allocates nothing, so that the
// benchmarks measure the middleware and not the recorder.
type limBenchWriter struct {
	h      http.Header
	status int
}

func (w *limBenchWriter) Header() http.Header         { return w.h }
func (w *limBenchWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *limBenchWriter) WriteHeader(code int)        { w.status = code }

// limBare is the bare handler every limiter benchmark wraps.
var limBare = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.WriteHeader(http.StatusNoContent)
})

// limServe runs h b.N times on one request (from one client), or on
// requests from clients rotating over addrs.
func limServe(b *testing.B, h http.Handler, addrs []string) {
	b.Helper()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "192.0.2.1:1234"
	w := &limBenchWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if addrs != nil {
			r.RemoteAddr = addrs[i%len(addrs)]
		}
		h.ServeHTTP(w, r)
	}
	if w.status != http.StatusNoContent {
		b.Fatalf("status %d, want 204", w.status)
	}
}

// limServeParallel is limServe from GOMAXPROCS goroutines, each its own
// client.
func limServeParallel(b *testing.B, h http.Handler) {
	b.Helper()
	b.ReportAllocs()
	var next uint32
	b.RunParallel(func(pb *testing.PB) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		w := &limBenchWriter{h: http.Header{}}
		n := atomic.AddUint32(&next, 1)
		r.RemoteAddr = netip.AddrFrom4([4]byte{198, 51, 100, byte(n)}).String() + ":1234"
		ran := false
		for pb.Next() {
			h.ServeHTTP(w, r)
			ran = true
		}
		if ran && w.status != http.StatusNoContent {
			b.Errorf("status %d, want 204", w.status)
		}
	})
}

func limAddrs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).String() + ":" + strconv.Itoa(1024+i%1000)
	}
	return out
}

// httprateByClientIP is httprate used directly the way its documentation
// recommends: keyed by chi's resolved client IP, IPv6 grouped by /64.
func httprateByClientIP(limit int, window time.Duration) func(http.Handler) http.Handler {
	lim := httprate.LimitBy(limit, window, func(r *http.Request) (string, error) {
		return httprate.CanonicalizeIP(chimw.GetClientIP(r.Context())), nil
	})
	return func(next http.Handler) http.Handler { return chimw.ClientIPFromRemoteAddr(lim(next)) }
}

func BenchmarkRateLimit(b *testing.B) {
	const big = 1 << 30 // never reached: every request is let through
	mk := func(b *testing.B, o RateLimitOptions) http.Handler {
		rl, err := NewRateLimit(o)
		if err != nil {
			b.Fatal(err)
		}
		return rl.Handler(limBare)
	}
	many := limAddrs(1 << 16)
	b.Run("bare", func(b *testing.B) { limServe(b, limBare, nil) })
	b.Run("stormcellar", func(b *testing.B) {
		limServe(b, mk(b, RateLimitOptions{Limit: big, Window: time.Hour}), nil)
	})
	b.Run("stormcellar-65536-clients", func(b *testing.B) {
		limServe(b, mk(b, RateLimitOptions{Limit: big, Window: time.Hour}), many)
	})
	b.Run("stormcellar-key-perroute", func(b *testing.B) {
		limServe(b, mk(b, RateLimitOptions{Limit: big, Window: time.Hour, PerRoute: true,
			Key: func(r *http.Request) string { return "user-42" }}), nil)
	})
	b.Run("stormcellar-headers-on-success", func(b *testing.B) {
		limServe(b, mk(b, RateLimitOptions{Limit: big, Window: time.Hour, HeadersOnSuccess: true}), nil)
	})
	b.Run("stormcellar-httprate-local-store", func(b *testing.B) {
		limServe(b, mk(b, RateLimitOptions{Limit: big, Window: time.Hour, Scope: "bench",
			Store: httprate.NewLocalLimitCounter(time.Hour)}), nil)
	})
	b.Run("httprate", func(b *testing.B) {
		limServe(b, httprateByClientIP(big, time.Hour)(limBare), nil)
	})
	b.Run("httprate-65536-clients", func(b *testing.B) {
		limServe(b, httprateByClientIP(big, time.Hour)(limBare), many)
	})
	b.Run("parallel/stormcellar", func(b *testing.B) {
		limServeParallel(b, mk(b, RateLimitOptions{Limit: big, Window: time.Hour}))
	})
	b.Run("parallel/httprate", func(b *testing.B) {
		limServeParallel(b, httprateByClientIP(big, time.Hour)(limBare))
	})
}

// BenchmarkRateLimitRejected measures the cost of a 429 (counted, then
// written through httperr with its headers).
func BenchmarkRateLimitRejected(b *testing.B) {
	rl, err := NewRateLimit(RateLimitOptions{Limit: 1, Window: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	h := httperr.Install(httperr.Options{Logger: slog.New(slog.DiscardHandler)})(rl.Handler(limBare))
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	h.ServeHTTP(httptest.NewRecorder(), r)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w := &limBenchWriter{h: http.Header{}}
		h.ServeHTTP(w, r)
		if w.status != http.StatusTooManyRequests {
			b.Fatalf("status %d", w.status)
		}
	}
}

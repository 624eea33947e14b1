package middleware

import (
	"net/http"
	"testing"
	"time"

	chimw "github.com/go-chi/chi/v5/middleware"
)

// limDeadlineWriter is limBenchWriter with the write deadline of a real
// server's writer, so that HoldTimeout's cost is measured as served.
type limDeadlineWriter struct{ limBenchWriter }

func (w *limDeadlineWriter) SetWriteDeadline(time.Time) error { return nil }

func BenchmarkConcurrencyLimit(b *testing.B) {
	mk := func(b *testing.B, o ConcurrencyLimitOptions) http.Handler {
		c, err := NewConcurrencyLimit(o)
		if err != nil {
			b.Fatal(err)
		}
		return c.Handler(limBare)
	}
	b.Run("bare", func(b *testing.B) { limServe(b, limBare, nil) })
	b.Run("stormcellar", func(b *testing.B) {
		limServe(b, mk(b, ConcurrencyLimitOptions{}), nil)
	})
	b.Run("stormcellar-deadline-writer", func(b *testing.B) {
		h := mk(b, ConcurrencyLimitOptions{})
		r := limRecordRequest("192.0.2.1:1")
		w := &limDeadlineWriter{limBenchWriter{h: http.Header{}}}
		b.ReportAllocs()
		for b.Loop() {
			h.ServeHTTP(w, r)
		}
		if w.status != http.StatusNoContent {
			b.Fatalf("status %d", w.status)
		}
	})
	b.Run("stormcellar-global-only", func(b *testing.B) {
		limServe(b, mk(b, ConcurrencyLimitOptions{PerClient: -1, HoldTimeout: -1}), nil)
	})
	b.Run("stormcellar-per-client-only", func(b *testing.B) {
		limServe(b, mk(b, ConcurrencyLimitOptions{Max: -1, HoldTimeout: -1}), nil)
	})
	b.Run("chi-Throttle", func(b *testing.B) {
		limServe(b, chimw.Throttle(1024)(limBare), nil)
	})
	b.Run("parallel/stormcellar", func(b *testing.B) {
		limServeParallel(b, mk(b, ConcurrencyLimitOptions{}))
	})
	b.Run("parallel/chi-Throttle", func(b *testing.B) {
		limServeParallel(b, chimw.Throttle(1024)(limBare))
	})
}

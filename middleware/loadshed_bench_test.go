package middleware

import (
	"net/http"
	"testing"
)

func BenchmarkLoadShed(b *testing.B) {
	mk := func(b *testing.B, o LoadShedOptions) http.Handler {
		l, err := NewLoadShed(o)
		if err != nil {
			b.Fatal(err)
		}
		return l.Handler(limBare)
	}
	b.Run("bare", func(b *testing.B) { limServe(b, limBare, nil) })
	b.Run("stormcellar", func(b *testing.B) {
		limServe(b, mk(b, LoadShedOptions{}), nil)
	})
	b.Run("stormcellar-in-flight-only", func(b *testing.B) {
		limServe(b, mk(b, LoadShedOptions{MaxLatency: -1}), nil)
	})
	// Every request measures: the cost of reading runtime/metrics.
	b.Run("stormcellar-measure-every-1ms", func(b *testing.B) {
		limServe(b, mk(b, LoadShedOptions{Interval: 1e6}), nil)
	})
	b.Run("parallel/stormcellar", func(b *testing.B) {
		limServeParallel(b, mk(b, LoadShedOptions{}))
	})
}

package timeouts_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	chimw "github.com/go-chi/chi/v5/middleware"

	"github.com/stormcellar/stormcellar/httperr"

	"github.com/stormcellar/stormcellar/timeouts"
)

// benchWriter is a reusable ResponseWriter, so that the benchmarks measure
// the middleware and not a recorder.
type benchWriter struct {
	h    http.Header
	code int
	n    int
}

func (w *benchWriter) Header() http.Header { return w.h }
func (w *benchWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}
func (w *benchWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = 200
	}
	w.n += len(p)
	return len(p), nil
}

// SetWriteDeadline and SetReadDeadline succeed, as on net/http's own
// writer (where they set the connection's deadline).
func (w *benchWriter) SetWriteDeadline(time.Time) error { return nil }
func (w *benchWriter) SetReadDeadline(time.Time) error  { return nil }
func (w *benchWriter) Flush()                           {}

func (w *benchWriter) reset() { clear(w.h); w.code, w.n = 0, 0 }

var okBody = []byte("ok")

// bare is the handler every middleware wraps: one header, a small body.
var bare = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(okBody)
})

// BenchmarkDeadline compares Deadline with the anchors on a bare handler:
// http.TimeoutHandler (goroutine + buffered response) and chi's Timeout
// (context only, no response at the deadline).
func BenchmarkDeadline(b *testing.B) {
	handlers := []struct {
		name string
		h    http.Handler
	}{
		{"bare", bare},
		{"timeouts.Deadline", timeouts.Deadline(timeouts.DeadlineOptions{Timeout: 5 * time.Second})(bare)},
		{"timeouts.Deadline/Stream", timeouts.Deadline(timeouts.DeadlineOptions{Timeout: 5 * time.Second, Stream: true})(bare)},
		{"http.TimeoutHandler", http.TimeoutHandler(bare, 5*time.Second, "timeout")},
		{"chi.Timeout", chimw.Timeout(5 * time.Second)(bare)},
	}
	// The same, inside httperr.Install, as every stormcellar stack runs:
	// the per-request state then exists before the timeout middleware.
	install := httperr.Install(httperr.Options{})
	for _, hc := range handlers[:] {
		handlers = append(handlers, struct {
			name string
			h    http.Handler
		}{"in-stack/" + hc.name, install(hc.h)})
	}
	for _, hc := range handlers {
		b.Run(hc.name, func(b *testing.B) {
			w := &benchWriter{h: make(http.Header)}
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			b.ReportAllocs()
			cpu0, ok := processCPU()
			for b.Loop() {
				w.reset()
				hc.h.ServeHTTP(w, r)
			}
			if cpu1, _ := processCPU(); ok {
				// CPU time per request, GC and timer goroutines included:
				// steadier than ns/op when the machine is shared.
				b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
			}
			if w.code != 200 || w.n != 2 {
				b.Fatalf("got %d, %d bytes", w.code, w.n)
			}
		})
	}
}

// BenchmarkWaitFor compares WaitFor with a direct call and with the naive
// goroutine-and-select that leaks when the deadline wins.
func BenchmarkWaitFor(b *testing.B) {
	fn := func(ctx context.Context) (int, error) { return 1, nil }
	b.Run("direct call", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if v, _ := fn(context.Background()); v != 1 {
				b.Fatal(v)
			}
		}
	})
	b.Run("timeouts.WaitFor", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if v, err := timeouts.WaitFor(context.Background(), time.Second, fn); v != 1 || err != nil {
				b.Fatal(v, err)
			}
		}
	})
	b.Run("naive goroutine+select", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			ch := make(chan int) // unbuffered: the goroutine leaks on timeout
			go func() { v, _ := fn(ctx); ch <- v }()
			select {
			case v := <-ch:
				if v != 1 {
					b.Fatal(v)
				}
			case <-ctx.Done():
			}
			cancel()
		}
	})
}

// BenchmarkBodyRate measures reading a 64 KiB body through the
// minimum-rate reader against reading it directly.
func BenchmarkBodyRate(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 64<<10)
	read := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n, err := io.Copy(io.Discard, r.Body); err != nil || n != int64(len(body)) {
			panic("short body")
		}
	})
	for _, hc := range []struct {
		name string
		h    http.Handler
	}{
		{"bare", read},
		{"timeouts.BodyRate", timeouts.BodyRate(timeouts.BodyRateOptions{})(read)},
	} {
		b.Run(hc.name, func(b *testing.B) {
			w := &benchWriter{h: make(http.Header)}
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
				hc.h.ServeHTTP(w, r)
			}
		})
	}
}

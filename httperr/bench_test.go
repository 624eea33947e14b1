package httperr

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError + 1}))

// nopWriter is a ResponseWriter that keeps no body, so the benchmarks
// measure Write and not a recorder.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) WriteHeader(int)             {}
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkWrite measures an error response per format, with the log
// handler disabled so that only httperr's own work is counted, side by side
// with http.Error, which writes a bare text/plain line and no log.
func BenchmarkWrite(b *testing.B) {
	err := NotFound(errors.New("no such row"))
	for _, accept := range []string{"text/plain", "application/json", "text/html"} {
		b.Run(accept, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/item/1", nil)
			req.Header.Set("Accept", accept)
			w := &nopWriter{h: http.Header{}}
			h := Install(Options{Logger: discard})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				Write(w, r, err)
			}))
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				h.ServeHTTP(w, req)
			}
		})
	}
	b.Run("http.Error baseline", func(b *testing.B) {
		req := httptest.NewRequest("GET", "/item/1", nil)
		w := &nopWriter{h: http.Header{}}
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "Not Found", http.StatusNotFound)
		})
		b.ReportAllocs()
		for b.Loop() {
			clear(w.h)
			h.ServeHTTP(w, req)
		}
	})
}

func BenchmarkNegotiate(b *testing.B) {
	accept := "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
	b.ReportAllocs()
	for b.Loop() {
		Negotiate(accept)
	}
}

package safetmpl_test

import (
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/stormcellar/stormcellar/safetmpl"
)

//go:embed testdata/bench
var benchFiles embed.FS

type benchItem struct {
	ID, Ref, Name, Price string
	Stock                int
	Low                  bool
}

type benchPage struct {
	Title, User, RequestID, Intro, Query string
	Items                                []benchItem
}

func benchData() benchPage {
	p := benchPage{Title: "Winter catalogue", User: "ada@example.com", RequestID: "5f2c0e9a1b7d3c44",
		Intro: "Everything you need for cold days, & more <here>.", Query: `boots "size 42"`}
	for i := range 20 {
		p.Items = append(p.Items, benchItem{ID: strconv.Itoa(1000 + i), Ref: "home&top",
			Name: "Wool socks no. " + strconv.Itoa(i), Price: "12.50 EUR", Stock: i * 3, Low: i%4 == 0})
	}
	return p
}

// benchWriter is a ResponseWriter that costs nothing, so the benchmarks
// measure the templates and not the recorder.
type benchWriter struct {
	h http.Header
	n int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) WriteHeader(int)             {}
func (w *benchWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

func benchFS(b *testing.B) fs.FS {
	sub, err := fs.Sub(benchFiles, "testdata/bench")
	if err != nil {
		b.Fatal(err)
	}
	return sub
}

// BenchmarkRender compares a page rendered by plain html/template straight
// into the ResponseWriter (the usual handler, which can send half a page)
// with the same page rendered by safetmpl (buffered, checked, headers set).
func BenchmarkRender(b *testing.B) {
	data := benchData()
	r := httptest.NewRequest(http.MethodGet, "/", nil)

	b.Run("html-template", func(b *testing.B) {
		plain := template.Must(template.ParseFS(benchFS(b), "layout.html"))
		plain = template.Must(plain.ParseFS(benchFS(b), "page.html"))
		w := &benchWriter{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			clear(w.h)
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			if err := plain.ExecuteTemplate(w, "page.html", data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("safetmpl", func(b *testing.B) {
		set, err := safetmpl.New(safetmpl.Options{FS: benchFS(b), Shared: []string{"layout.html"}})
		if err != nil {
			b.Fatal(err)
		}
		w := &benchWriter{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			clear(w.h)
			set.Render(w, r, "page.html", data)
		}
		if w.n == 0 {
			b.Fatal("nothing written")
		}
	})
}

// BenchmarkRenderParallel is BenchmarkRender with every core rendering.
func BenchmarkRenderParallel(b *testing.B) {
	data := benchData()
	b.Run("html-template", func(b *testing.B) {
		plain := template.Must(template.ParseFS(benchFS(b), "layout.html"))
		plain = template.Must(plain.ParseFS(benchFS(b), "page.html"))
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			w := &benchWriter{h: http.Header{}}
			for pb.Next() {
				clear(w.h)
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				if err := plain.ExecuteTemplate(w, "page.html", data); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("safetmpl", func(b *testing.B) {
		set, err := safetmpl.New(safetmpl.Options{FS: benchFS(b), Shared: []string{"layout.html"}})
		if err != nil {
			b.Fatal(err)
		}
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			w := &benchWriter{h: http.Header{}}
			for pb.Next() {
				clear(w.h)
				set.Render(w, r, "page.html", data)
			}
		})
	})
}

// BenchmarkNew is the one-time cost of loading the set, which
// InsecureDevReload pays on every request, against html/template's
// parse (which escapes later, on first execution).
func BenchmarkNew(b *testing.B) {
	b.Run("html-template", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			plain := template.Must(template.ParseFS(benchFS(b), "layout.html"))
			template.Must(plain.ParseFS(benchFS(b), "page.html"))
		}
	})
	b.Run("safetmpl", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := safetmpl.New(safetmpl.Options{FS: benchFS(b), Shared: []string{"layout.html"}}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

package middleware_test

import (
	"crypto/tls"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"

	"github.com/go-chi/chi/v5"
	chimw "github.com/go-chi/chi/v5/middleware"

	"github.com/stormcellar/stormcellar/httperr"
	"github.com/stormcellar/stormcellar/middleware"
)

// The recommended order of the whole stack, outermost first. Each layer
// covers everything below it, so:
//
//  1. httperr.Install: the error page, logger and observer of every
//     rejection below, and the per-request state they share.
//  2. chi's ClientIPFromXFF (or ClientIPFromHeader): the client address
//     for rate limits and logs below, from your proxies only.
//  3. RequestID: an id on every response and log record below.
//  4. SecureHeaders: the browser headers on every response below,
//     rejections and panics included.
//  5. Recover: a panic anywhere below is a 500 that has those headers.
//  6. HTTPSRedirect: plain HTTP goes no further.
//  7. MaxURLLength, then per-client rate limits and concurrency limits
//     (cheap refusals before any work).
//  8. MaxBytes: the default body limit; routes raise or lower it.
//  9. The router, with route-level MaxBytes, cross-origin/XSRF checks and
//     deadlines.
func Example_chain() {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} // your load balancers
	ids, err := middleware.NewRequestID(middleware.RequestIDOptions{TrustedProxies: proxies})
	if err != nil {
		panic(err)
	}
	headers, err := middleware.NewSecureHeaders(middleware.SecureHeadersOptions{TrustedProxies: proxies})
	if err != nil {
		panic(err)
	}
	toHTTPS, err := middleware.NewHTTPSRedirect(middleware.HTTPSRedirectOptions{
		Hosts: []string{"shop.example", "www.shop.example"}, TrustedProxies: proxies,
	})
	if err != nil {
		panic(err)
	}

	r := chi.NewRouter()
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { httperr.WriteStatus(w, r, http.StatusNotFound) })
	r.Get("/", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "welcome") })
	r.Get("/bug", func(http.ResponseWriter, *http.Request) { panic("nil map in cart.go:42") })
	r.Post("/comment", func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			httperr.Write(w, r, err) // a *http.MaxBytesError: 413
			return
		}
		_, _ = io.WriteString(w, "saved")
	})

	stack := middleware.Chain(
		httperr.Install(httperr.Options{Logger: slog.New(slog.DiscardHandler)}),
		chimw.ClientIPFromXFF("10.0.0.0/8"),
		ids.Handler,
		headers.Handler,
		middleware.Recover,
		toHTTPS.Handler,
		middleware.MaxURLLength(middleware.MaxURLLengthOptions{}),
		middleware.MaxBytes(middleware.MaxBytesOptions{Limit: 1 << 10}),
	)
	handler := stack(r)

	do := func(method, url, body string, https bool) {
		req := httptest.NewRequest(method, url, strings.NewReader(body))
		if https {
			req.TLS = &tls.ConnectionState{}
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		h := rec.Header()
		fmt.Printf("%s %s: %d location=%q hsts=%t csp=%t id=%t\n", method, url, rec.Code,
			h.Get("Location"), h.Get("Strict-Transport-Security") != "",
			h.Get("Content-Security-Policy") != "", h.Get("X-Request-Id") != "")
	}
	do("GET", "http://evil.example/", "", false)
	do("GET", "https://shop.example/", "", true)
	do("GET", "https://shop.example/bug", "", true)
	do("GET", "https://shop.example/nope", "", true)
	do("POST", "https://shop.example/comment", strings.Repeat("spam ", 1000), true)
	// Output:
	// GET http://evil.example/: 308 location="https://shop.example/" hsts=false csp=true id=true
	// GET https://shop.example/: 200 location="" hsts=true csp=true id=true
	// GET https://shop.example/bug: 500 location="" hsts=true csp=true id=true
	// GET https://shop.example/nope: 404 location="" hsts=true csp=true id=true
	// POST https://shop.example/comment: 413 location="" hsts=true csp=true id=true
}

func ExampleRecover() {
	h := httperr.Install(httperr.Options{Logger: slog.New(slog.DiscardHandler)})(
		middleware.Recover(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
			panic("secret: /srv/app/db.go:17 password=hunter2")
		})))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	fmt.Println(rec.Code)
	fmt.Println(strings.SplitN(rec.Body.String(), "\n", 2)[0])
	fmt.Println("leaks:", strings.Contains(rec.Body.String(), "hunter2"))
	// Output:
	// 500
	// 500 Internal Server Error
	// leaks: false
}

// A default limit for every route, raised for one of them.
func ExampleMaxBytes() {
	r := chi.NewRouter()
	r.Use(middleware.MaxBytes(middleware.MaxBytesOptions{Limit: 16}))
	store := func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			httperr.Write(w, r, err)
			return
		}
		fmt.Fprintf(w, "stored %d bytes", len(b))
	}
	r.Post("/comment", store)
	r.With(middleware.MaxBytes(middleware.MaxBytesOptions{Limit: 1 << 20, Decompress: true})).Post("/upload", store)
	h := httperr.Install(httperr.Options{Logger: slog.New(slog.DiscardHandler)})(r)

	for _, path := range []string{"/comment", "/upload"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, strings.NewReader(strings.Repeat("x", 100))))
		fmt.Println(path, rec.Code, rec.Header().Get("Connection"), strings.SplitN(rec.Body.String(), "\n", 2)[0])
	}
	// Output:
	// /comment 413 close 413 Request Entity Too Large
	// /upload 200  stored 100 bytes
}

// A template reads the response's nonce with CSPNonce.
func ExampleCSPNonce() {
	headers, err := middleware.NewSecureHeaders(middleware.SecureHeadersOptions{})
	if err != nil {
		panic(err)
	}
	page := template.Must(template.New("page").Parse(`<script nonce="{{.}}">start()</script>`))
	h := headers.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = page.Execute(w, middleware.CSPNonce(r.Context()))
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	csp := rec.Header().Get("Content-Security-Policy")
	start := strings.Index(rec.Body.String(), `nonce="`) + len(`nonce="`)
	nonce := rec.Body.String()[start : start+22]
	fmt.Println(strings.Contains(csp, "script-src 'nonce-"+nonce+"' 'strict-dynamic'"))
	fmt.Println(rec.Header().Get("X-Frame-Options"), rec.Header().Get("X-Content-Type-Options"))
	// Output:
	// true
	// DENY nosniff
}

func ExampleNewHTTPSRedirect() {
	m, err := middleware.NewHTTPSRedirect(middleware.HTTPSRedirectOptions{Hosts: []string{"shop.example"}})
	if err != nil {
		panic(err)
	}
	h := m.Handler(http.NotFoundHandler())
	for _, host := range []string{"shop.example", "evil.example"} {
		req := httptest.NewRequest(http.MethodGet, "/cart?id=7", nil)
		req.Host = host
		req.Header.Set("X-Forwarded-Host", "evil.example")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		fmt.Println(host, rec.Code, rec.Header().Get("Location"))
	}
	// Output:
	// shop.example 308 https://shop.example/cart?id=7
	// evil.example 308 https://shop.example/cart?id=7
}

func ExampleNewRequestID() {
	m, err := middleware.NewRequestID(middleware.RequestIDOptions{
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
	})
	if err != nil {
		panic(err)
	}
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, httperr.RequestID(r.Context()))
	}))
	for _, peer := range []string{"10.0.0.5:4000", "203.0.113.9:4000"} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.RemoteAddr = peer
		req.Header.Set("X-Request-Id", "lb-4bf92f3577b34da6")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		id := rec.Body.String()
		fmt.Println(peer, id == "lb-4bf92f3577b34da6", len(id), rec.Header().Get("X-Request-Id") == id)
	}
	// Output:
	// 10.0.0.5:4000 true 19 true
	// 203.0.113.9:4000 false 16 true
}

func ExampleMaxURLLength() {
	h := httperr.Install(httperr.Options{Logger: slog.New(slog.DiscardHandler)})(
		middleware.MaxURLLength(middleware.MaxURLLengthOptions{Limit: 32})(http.NotFoundHandler()))
	for _, target := range []string{"/search?q=go", "/search?q=" + strings.Repeat("a", 40)} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
		fmt.Println(len(target), rec.Code)
	}
	// Output:
	// 12 404
	// 50 414
}

func ExampleChain() {
	say := func(s string) func(http.Handler) http.Handler {
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Println(s)
				next.ServeHTTP(w, r)
			})
		}
	}
	h := middleware.Chain(say("first"), say("second"))(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		fmt.Println("handler")
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	// Output:
	// first
	// second
	// handler
}

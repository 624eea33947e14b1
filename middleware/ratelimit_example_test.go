package middleware_test

import (
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	chimw "github.com/go-chi/chi/v5/middleware"
	"github.com/go-chi/httprate"

	"github.com/stormcellar/stormcellar/httperr"
	"github.com/stormcellar/stormcellar/middleware"
)

var exHello = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = io.WriteString(w, "hello")
})

// exQuiet is httperr.Install with a logger that drops records, so that the
// examples' output is only what they print.
var exQuiet = httperr.Install(httperr.Options{Logger: slog.New(slog.DiscardHandler)})

// serve sends a GET from the given client address through h.
func exServe(h http.Handler, remoteAddr string, header ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = remoteAddr
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// Two requests a minute per client address; the third is answered 429
// with Retry-After and the RateLimit headers.
func ExampleNewRateLimit() {
	rl, err := middleware.NewRateLimit(middleware.RateLimitOptions{Limit: 2, Window: time.Minute})
	if err != nil {
		log.Fatal(err)
	}
	h := exQuiet(rl.Handler(exHello))
	for range 3 {
		w := exServe(h, "192.0.2.1:50000")
		fmt.Println(w.Code, w.Header().Get("Ratelimit-Limit"), w.Header().Get("Ratelimit-Remaining"),
			w.Header().Get("Retry-After") != "")
	}
	// Another client is counted apart.
	fmt.Println(exServe(h, "192.0.2.2:50000").Code)
	// Output:
	// 200   false
	// 200   false
	// 429 2 0 true
	// 200
}

// Behind a reverse proxy, chi's resolver decides which address is the
// client's; RateLimit never reads X-Forwarded-For itself. A client that
// writes its own X-Forwarded-For cannot change its identity: the proxy
// appends the address it saw, and only that entry is trusted.
func ExampleNewRateLimit_behindProxy() {
	rl, err := middleware.NewRateLimit(middleware.RateLimitOptions{Limit: 1})
	if err != nil {
		log.Fatal(err)
	}
	h := exQuiet(chimw.ClientIPFromXFF("10.0.0.0/8")(rl.Handler(exHello)))
	const proxy = "10.0.0.5:40000"
	fmt.Println(exServe(h, proxy, "X-Forwarded-For", "203.0.113.9").Code)
	fmt.Println(exServe(h, proxy, "X-Forwarded-For", "198.51.100.1, 203.0.113.9").Code) // forged entry ignored
	fmt.Println(exServe(h, proxy, "X-Forwarded-For", "203.0.113.10").Code)
	// A client reaching the server directly is its TCP peer, whatever it sends.
	fmt.Println(exServe(h, "192.0.2.1:50000", "X-Forwarded-For", "203.0.113.11").Code)
	fmt.Println(exServe(h, "192.0.2.1:50000", "X-Forwarded-For", "203.0.113.12").Code)
	// Output:
	// 200
	// 429
	// 200
	// 200
	// 429
}

// Replicas share their counts through an httprate.LimitCounter, such as
// github.com/go-chi/httprate-redis's. httprate's in-memory counter stands
// in for it here. Scope keeps this limiter's counters apart from other
// users of the store.
func ExampleRateLimitOptions_store() {
	store := httprate.NewLocalLimitCounter(time.Minute) // e.g. httprateredis.NewRedisLimitCounter(cfg)
	replica := func() http.Handler {
		rl, err := middleware.NewRateLimit(middleware.RateLimitOptions{
			Limit: 2, Window: time.Minute, Store: store, Scope: "api",
		})
		if err != nil {
			log.Fatal(err)
		}
		return exQuiet(rl.Handler(exHello))
	}
	a, b := replica(), replica()
	fmt.Println(exServe(a, "192.0.2.1:50000").Code, exServe(b, "192.0.2.1:50000").Code, exServe(a, "192.0.2.1:50000").Code)
	// Output:
	// 200 200 429
}

// Check limits something finer than a route: here, password attempts per
// account, whatever address they come from.
func ExampleRateLimit_Check() {
	attempts, err := middleware.NewRateLimit(middleware.RateLimitOptions{
		Limit: 3, Window: 15 * time.Minute,
		Key: func(r *http.Request) string { return r.FormValue("user") },
	})
	if err != nil {
		log.Fatal(err)
	}
	login := exQuiet(httperr.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		if err := attempts.Check(r); err != nil {
			return err // 429 with Retry-After
		}
		_, _ = io.WriteString(w, "password checked")
		return nil
	}))
	for i := range 4 {
		r := httptest.NewRequest(http.MethodPost, "/login?user=bob", nil)
		r.RemoteAddr = fmt.Sprintf("198.51.100.%d:50000", i+1)
		w := httptest.NewRecorder()
		login.ServeHTTP(w, r)
		fmt.Println(w.Code)
	}
	// Output:
	// 200
	// 200
	// 200
	// 429
}

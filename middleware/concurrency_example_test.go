package middleware_test

import (
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/stormcellar/stormcellar/middleware"
)

// One request at a time, none waiting: while one is running, the next is
// shed with 503 and Retry-After; once it is done, requests are served
// again.
func ExampleNewConcurrencyLimit() {
	cl, err := middleware.NewConcurrencyLimit(middleware.ConcurrencyLimitOptions{
		Max: 1, Queue: -1, RetryAfter: 2 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	entered, finish := make(chan struct{}), make(chan struct{})
	h := exQuiet(cl.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-finish
		}
	})))
	done := make(chan int)
	go func() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/slow", nil))
		done <- w.Code
	}()
	<-entered
	w := exServe(h, "192.0.2.1:50000")
	fmt.Println(w.Code, w.Header().Get("Retry-After"), cl.Running())
	close(finish)
	fmt.Println(<-done)
	fmt.Println(exServe(h, "192.0.2.1:50000").Code)
	// Output:
	// 503 2 1
	// 200
	// 200
}

// The overload defences in the recommended order: load shedding first (it
// costs least and protects everything behind it), then the client's
// identity, its rate limit, and the concurrency caps nearest the handlers.
func Example_overloadProtection() {
	shed, err := middleware.NewLoadShed(middleware.LoadShedOptions{})
	if err != nil {
		log.Fatal(err)
	}
	rate, err := middleware.NewRateLimit(middleware.RateLimitOptions{Limit: 600, Window: time.Minute})
	if err != nil {
		log.Fatal(err)
	}
	conc, err := middleware.NewConcurrencyLimit(middleware.ConcurrencyLimitOptions{Max: 256, PerClient: 16})
	if err != nil {
		log.Fatal(err)
	}
	h := exQuiet(shed.Handler(rate.Handler(conc.Handler(exHello))))
	// Behind a proxy, put chimw.ClientIPFromXFF("10.0.0.0/8") before rate.
	fmt.Println(exServe(h, "192.0.2.1:50000").Body.String())
	// Output:
	// hello
}

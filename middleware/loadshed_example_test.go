package middleware_test

import (
	"fmt"
	"log"
	"time"

	"github.com/stormcellar/stormcellar/middleware"
)

// LoadShed watches the Go scheduler's latency (runtime/metrics
// /sched/latencies:seconds): when goroutines wait too long for a CPU it
// sheds new requests with 503 and Retry-After. Latency and InFlight feed
// metrics.
func ExampleNewLoadShed() {
	shed, err := middleware.NewLoadShed(middleware.LoadShedOptions{
		MaxLatency: 50 * time.Millisecond, // p99 over each 100 ms
	})
	if err != nil {
		log.Fatal(err)
	}
	h := exQuiet(shed.Handler(exHello))
	fmt.Println(exServe(h, "192.0.2.1:50000").Code)
	fmt.Println(shed.InFlight(), shed.Overloaded(), shed.Latency() >= 0)
	// Output:
	// 200
	// 0 false true
}

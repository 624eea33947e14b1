package middleware

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-chi/httprate"
)

// Memory bounds of the in-memory rate-limit store, documented on
// RateLimitOptions.MaxKeys and checked by TestRateLimitMemoryMillionClients.
// Measured with go1.26 on linux/amd64
// (go test -run TestRateLimitMemoryMillionClients -v ./middleware/):
// a million clients at the default MaxKeys keep 36.0 MiB (37.8 bytes a
// client), given back two windows later; with MaxKeys 65536, 2.3 MiB;
// httprate's in-memory counter keeps 36.0 MiB and has no cap.
const (
	limMemClients     = 1_000_000
	limMemBytesPerKey = 48       // bound per tracked client
	limMemCapped      = 65536    // MaxKeys of the capped run
	limMemCappedBound = 4 << 20  // heap growth bound of the capped run
	limMemDefaultCap  = 48 << 20 // heap growth bound at the default MaxKeys
)

// limMemAddr returns the i-th distinct client address: IPv4 addresses and
// IPv6 /64s alternately.
func limMemAddr(i int) string {
	if i%2 == 0 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 17), byte(i >> 9), byte(i >> 1)})
		return a.String() + ":4000"
	}
	return "[2001:db8:" + strconv.FormatUint(uint64(i>>17), 16) + ":" +
		strconv.FormatUint(uint64(i>>1)&0xffff, 16) + "::1]:4000"
}

// limHeap returns the live heap after a full collection.
func limHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// limFlood sends one request from each of n distinct clients through h,
// reusing one request and one writer.
func limFlood(t *testing.T, h http.Handler, n int, addr func(int) string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	w := &limBenchWriter{h: http.Header{}}
	for i := range n {
		r.RemoteAddr = addr(i)
		w.status = 0
		h.ServeHTTP(w, r)
	}
}

// TestRateLimitMemoryMillionClients sends one request from each of a
// million distinct clients (half IPv4, half distinct IPv6 /64s) and
// measures the live heap the limiter keeps: under a bound per client at
// the default MaxKeys, under a fixed bound when MaxKeys is smaller than the
// crowd, and given back once two windows have passed. httprate's
// in-memory counter, which has no cap, is measured alongside.
func TestRateLimitMemoryMillionClients(t *testing.T) {
	if testing.Short() {
		t.Skip("sends a million requests; skipped with -short")
	}
	n := limMemClients
	// The capped run and the anchor show the same shape with fewer
	// clients; under the race detector (10x slower) they use a quarter.
	small := n
	if limRaceEnabled {
		small /= 4
	}
	synctest.Test(t, func(t *testing.T) {
		base := limHeap()
		rl, err := NewRateLimit(RateLimitOptions{Limit: 100, Window: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		limFlood(t, rl.Handler(limOK), n, limMemAddr)
		grown := limHeap() - base
		tracked := rl.mem.len()
		t.Logf("default MaxKeys (%d): %d clients -> %d tracked, heap +%.1f MiB (%.1f bytes/client)",
			defaultRateMaxKeys, n, tracked, float64(grown)/(1<<20), float64(grown)/float64(tracked))
		if tracked < n*99/100 {
			t.Errorf("tracked %d of %d clients under the default cap", tracked, n)
		}
		if grown > uint64(tracked)*limMemBytesPerKey {
			t.Errorf("heap grew %d bytes for %d clients: over %d bytes/client", grown, tracked, limMemBytesPerKey)
		}
		if grown > limMemDefaultCap {
			t.Errorf("heap grew %d bytes, over the documented %d", grown, limMemDefaultCap)
		}

		// Two windows later, new traffic (touching every shard) frees it.
		time.Sleep(2 * time.Minute)
		limFlood(t, rl.Handler(limOK), 4096, func(i int) string { return limMemAddr(n + i) })
		after := limHeap() - base
		t.Logf("two windows later, after 4096 new clients: heap +%.1f MiB", float64(after)/(1<<20))
		if after > grown/8 {
			t.Errorf("heap still +%d bytes two windows later (was +%d)", after, grown)
		}
		runtime.KeepAlive(rl)
	})

	synctest.Test(t, func(t *testing.T) {
		base := limHeap()
		// A limit no overflow count reaches: this run measures memory.
		rl, err := NewRateLimit(RateLimitOptions{Limit: 1 << 30, Window: time.Minute, MaxKeys: limMemCapped})
		if err != nil {
			t.Fatal(err)
		}
		limFlood(t, rl.Handler(limOK), small, limMemAddr)
		grown := limHeap() - base
		t.Logf("MaxKeys %d: %d clients -> %d tracked, heap +%.1f MiB", limMemCapped, small, rl.mem.len(),
			float64(grown)/(1<<20))
		if rl.mem.len() > rl.mem.perShard*rlShards {
			t.Errorf("tracked %d over the cap %d", rl.mem.len(), rl.mem.perShard*rlShards)
		}
		if grown > limMemCappedBound {
			t.Errorf("heap grew %d bytes with MaxKeys %d, over %d", grown, limMemCapped, limMemCappedBound)
		}
		runtime.KeepAlive(rl)
	})

	// The anchor: httprate's in-memory counter has no cap.
	base := limHeap()
	c := httprate.NewLocalLimitCounter(time.Minute)
	now := time.Now().UTC().Truncate(time.Minute)
	for i := range small {
		_ = c.IncrementBy(limMemAddr(i), now, 1)
	}
	grown := limHeap() - base
	t.Logf("httprate local counter: %d clients -> heap +%.1f MiB, no cap", small, float64(grown)/(1<<20))
	runtime.KeepAlive(c)
}

package middleware

import (
	"fmt"
	"net/http"
	"testing"
	"testing/synctest"
	"time"
)

// TestRateLimitMaxKeysIsExact pins the bound RateLimitOptions.MaxKeys
// documents: the in-memory store never tracks more than MaxKeys clients,
// whatever MaxKeys is (not a multiple of the shard count rounded up), and
// it does fill up to MaxKeys.
func TestRateLimitMaxKeysIsExact(t *testing.T) {
	t.Parallel()
	for _, maxKeys := range []int{1, 2, 10, 63, 64, 65, 100, 130, 1000, 1 << 14} {
		t.Run(fmt.Sprint(maxKeys), func(t *testing.T) {
			t.Parallel()
			s := newRLMemStore(maxKeys)
			// Every shard is offered more clients than the whole store may
			// hold, all active in the same window (nothing to evict).
			for shard := range uint64(rlShards) {
				for j := range uint64(maxKeys/rlShards + 3) {
					s.add(shard<<(64-rlShardBits)|(j+1), 7)
				}
			}
			if n := s.len(); n != maxKeys {
				t.Errorf("MaxKeys %d: store tracks %d clients, want exactly %d", maxKeys, n, maxKeys)
			}
		})
	}

	// The same through RateLimit: a flood of 5000 addresses against
	// MaxKeys 10 leaves 10 clients tracked; the rest share overflow counts
	// and are limited together.
	synctest.Test(t, func(t *testing.T) {
		const limit = 5
		rl, err := NewRateLimit(RateLimitOptions{Limit: limit, Window: time.Minute, MaxKeys: 10})
		if err != nil {
			t.Fatal(err)
		}
		h := limInstall(nil)(rl.Handler(limOK))
		admitted := 0
		const flood = 5000
		for i := range flood {
			if limRecord(h, fmt.Sprintf("10.0.%d.%d:1", byte(i>>8), byte(i))).Code == http.StatusOK {
				admitted++
			}
		}
		if n := rl.mem.len(); n != 10 {
			t.Errorf("MaxKeys 10: store tracks %d clients, want 10", n)
		}
		// Tracked clients are admitted up to limit each, and each shard's
		// overflow count up to limit.
		if most := 10*limit + rlShards*limit; admitted > most {
			t.Errorf("%d of %d flood requests admitted, want at most %d", admitted, flood, most)
		}
	})
}

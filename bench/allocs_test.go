//go:build !race

package bench_test

import (
	"net/http"
	"testing"
)

// TestChainAllocations pins the allocations of each in-process case, so
// that a change adding one to the hot path fails here and not only in a
// benchmark nobody reads. Lower counts pass (lower the budget with them).
// The full chain's budget is 5 allocations per request, CSP nonce
// included.
func TestChainAllocations(t *testing.T) {
	budget := map[string]float64{
		"bare":                    0,
		"full_chain":              5,
		"chi_only_chain":          7,
		"router":                  2,
		"full_server_handler":     7,
		"chi_only_server_handler": 9,
	}
	tmpl := benchRequest()
	for _, c := range chainCases(t) {
		w, r := newBenchWriter(), new(http.Request)
		got := testing.AllocsPerRun(200, func() { serveOnce(c.h, w, r, tmpl) })
		want, ok := budget[c.name]
		if !ok {
			t.Errorf("%s: no allocation budget", c.name)
			continue
		}
		if got > want {
			t.Errorf("%s: %.0f allocations per request, budget %.0f", c.name, got, want)
		}
	}
}

// Package testutil holds helpers shared by stormcellar's tests.
package testutil

import (
	"math"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"
)

// RequireEnv is the environment variable that turns a missing external
// tool into a test failure instead of a skip. .ci/run sets it after
// installing the tools with apt-get.
const RequireEnv = "STORMCELLAR_REQUIRE_TOOLS"

// Tool returns the path of the executable name (looked up in PATH, or used
// as is when it contains a slash). When it is missing the test is skipped
// with a message naming the Debian package that provides it, or fails if
// STORMCELLAR_REQUIRE_TOOLS=1.
func Tool(t testing.TB, name, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := name + " not found (install the Debian package " + debianPackage + "): " + err.Error()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatal(msg)
	}
	t.Skip("skipped: " + msg)
	return ""
}

// AllocBytes returns the bytes one call of alloc takes from the heap, its
// allocation size class and any allocation header included, as measured
// by runtime.MemStats: the least of three measurements of 1000 calls, in
// case something else allocated meanwhile. alloc must keep what it
// allocates reachable (store it in a package variable), or the compiler
// may put it on the stack.
func AllocBytes(alloc func()) uint64 {
	const n = 1000
	var least uint64 = math.MaxUint64
	for range 3 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range n {
			alloc()
		}
		runtime.ReadMemStats(&after)
		least = min(least, (after.TotalAlloc-before.TotalAlloc)/n)
	}
	return least
}

// Within runs fn and fails the test if it has not returned after ten
// seconds: what is named what is still blocked (a mutex left locked by a
// panic, say).
func Within(t testing.TB, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s is still blocked after 10s", what)
	}
}

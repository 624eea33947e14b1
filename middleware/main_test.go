package middleware

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: every
// server, client and handler goroutine a test starts must be gone when it
// ends.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

//go:build unix

package timeouts_test

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time the test process has used (user +
// system, every thread), which, unlike wall time, other processes on a
// shared machine do not inflate.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}

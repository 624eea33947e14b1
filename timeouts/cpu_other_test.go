//go:build !unix

package timeouts_test

import "time"

func processCPU() (time.Duration, bool) { return 0, false }

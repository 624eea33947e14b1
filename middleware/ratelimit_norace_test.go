//go:build !race

package middleware

// limRaceEnabled is true when the tests run under the race detector.
const limRaceEnabled = false

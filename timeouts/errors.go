package timeouts

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrTimeout is matched (with [errors.Is]) by every error this package
// returns because a deadline passed: [WaitFor] giving up, and writes by a
// handler after its [Deadline]. Those errors also match
// [context.DeadlineExceeded], so [github.com/stormcellar/stormcellar/httperr.Write]
// answers them 504 when the request's own deadline had not passed yet and
// 503 when it had.
var ErrTimeout = errors.New("timeouts: deadline exceeded")

// ErrBodyTooSlow is the cause of the 408 sent when a request body arrives
// more slowly than the minimum rate (see [BodyRateOptions]).
var ErrBodyTooSlow = errors.New("timeouts: request body arrived too slowly")

// ErrShuttingDown is returned by [Registry.Track] once the registry has
// begun to drain: the caller must refuse the connection.
var ErrShuttingDown = errors.New("timeouts: server is shutting down")

// ErrResponseTooLarge is returned while reading a response body, from a
// client made by [NewClient], past ClientOptions.MaxResponseBytes, and by
// the request itself when the declared Content-Length is already over it.
var ErrResponseTooLarge = errors.New("timeouts: upstream response body too large")

// ErrRedirect is wrapped by the error a client made by [NewClient] returns
// when it refuses to follow a redirect.
var ErrRedirect = errors.New("timeouts: redirect refused")

// ErrInvalidOptions is wrapped by every error a constructor returns for a
// configuration that cannot work; the message names the field.
var ErrInvalidOptions = errors.New("timeouts: invalid options")

// timeoutError is the error for a deadline this package enforced. It
// matches ErrTimeout and context.DeadlineExceeded, and reports Timeout()
// like a net.Error.
type timeoutError struct {
	op    string
	after time.Duration
	err   error // what the timed-out operation returned, if anything
}

func (e *timeoutError) Error() string {
	s := "timeouts: " + e.op
	if e.after > 0 {
		s += " gave up after " + e.after.String()
	} else {
		s += ": deadline exceeded"
	}
	if e.err != nil && !errors.Is(e.err, context.DeadlineExceeded) {
		s += " (" + e.err.Error() + ")"
	}
	return s
}

func (e *timeoutError) Is(target error) bool {
	return target == ErrTimeout || target == context.DeadlineExceeded
}

func (e *timeoutError) Unwrap() error { return e.err }

// Timeout reports true, as [net.Error] does for timeouts.
func (e *timeoutError) Timeout() bool { return true }

// PanicError is what [WaitFor] returns when its function panicked: the
// panic is recovered on the function's goroutine (where it would otherwise
// kill the process) and handed to the caller as an error.
type PanicError struct {
	// Value is the value passed to panic.
	Value any
	// Stack is the stack of the goroutine that panicked, for logs. Never
	// send it to a client.
	Stack []byte
}

// Error describes the panic value without the stack.
func (e *PanicError) Error() string {
	return fmt.Sprintf("timeouts: function panicked: %v", e.Value)
}

// Unwrap returns the panic value when it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidOptions}, args...)...)
}

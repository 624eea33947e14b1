package timeouts

import (
	"context"
	"errors"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// WaitFor runs fn with a context that is cancelled after d and waits for
// it: the Go counterpart of Python's asyncio.wait_for(aw, timeout).
//
//   - If fn returns first, WaitFor returns what it returned.
//   - When d passes first, fn's context is cancelled and WaitFor returns
//     at once with the zero T and an error that matches both [ErrTimeout]
//     and [context.DeadlineExceeded] ([httperr.Write] answers it 504 when
//     the request's own deadline has not passed). fn keeps running until
//     it notices its context; its goroutine then ends without blocking
//     (its result is dropped), so nothing leaks when fn honours ctx. An
//     fn that ignores its context is the one leak WaitFor cannot prevent.
//   - When ctx ends first (the caller's own deadline or cancellation),
//     WaitFor returns ctx's error the same way.
//   - If fn returns an error matching context.DeadlineExceeded because d
//     passed, it is reported as the timeout error above (wrapping fn's).
//   - A panic in fn is recovered on fn's goroutine and returned as a
//     [*PanicError] (value and stack); it never crashes the process. A
//     panic after WaitFor gave up is logged with slog.Default() at Error
//     level instead, since no caller is left to receive it.
//   - d ≤ 0, or a ctx already done, returns the error without calling fn.
//
// Unlike Tornado's gen.with_timeout, whose numeric timeout is an absolute
// time (gen.with_timeout(5, f) gives up at once), d is always a duration,
// and unlike it, the operation is cancelled rather than left running.
func WaitFor[T any](ctx context.Context, d time.Duration, fn func(context.Context) (T, error)) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	if d <= 0 {
		return zero, &timeoutError{op: "WaitFor", after: d}
	}
	cctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()

	type result struct {
		v   T
		err error
	}
	const (
		running = iota
		finished
		abandoned
	)
	var state atomic.Int32
	ch := make(chan result, 1)
	go func() {
		var res result
		panicked := true
		defer func() {
			if panicked {
				p := &PanicError{Value: recover(), Stack: debug.Stack()}
				res = result{err: p}
			}
			if state.CompareAndSwap(running, finished) {
				ch <- res // buffered: never blocks
				return
			}
			if panicked {
				slog.Default().LogAttrs(context.Background(), slog.LevelError,
					"timeouts: WaitFor function panicked after its deadline",
					slog.Any("panic", res.err.(*PanicError).Value),
					slog.String("stack", string(res.err.(*PanicError).Stack)))
			}
		}()
		res.v, res.err = fn(cctx)
		panicked = false
	}()

	select {
	case res := <-ch:
		if res.err != nil && ctx.Err() == nil && cctx.Err() != nil &&
			errors.Is(res.err, context.DeadlineExceeded) {
			return res.v, &timeoutError{op: "WaitFor", after: d, err: res.err}
		}
		return res.v, res.err
	case <-cctx.Done():
	}
	if !state.CompareAndSwap(running, abandoned) {
		// fn finished just as the deadline passed: its result is ready.
		res := <-ch
		if res.err == nil {
			return res.v, nil
		}
		if ctx.Err() == nil && errors.Is(res.err, context.DeadlineExceeded) {
			return res.v, &timeoutError{op: "WaitFor", after: d, err: res.err}
		}
		return res.v, res.err
	}
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	return zero, &timeoutError{op: "WaitFor", after: d}
}

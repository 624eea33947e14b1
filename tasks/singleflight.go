package tasks

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
)

// Singleflight suppresses duplicate calls: while a call for a key is in
// flight, further callers for that key wait for its result instead of
// starting their own. Unlike [golang.org/x/sync/singleflight]:
//
//   - A panic in the function never crashes the process. x/sync re-panics
//     in every waiter and, when DoChan waiters exist, in a new goroutine
//     that nothing can recover. Here every caller gets a [*PanicError] and
//     the stack is logged once.
//   - Each caller waits only as long as its own context allows, and gets
//     ctx.Err() when it gives up; the others keep waiting. When the last
//     caller gives up, the shared call's context is cancelled and the key
//     is forgotten, so no work runs for nobody and the next caller starts
//     afresh.
//   - The shared call's context carries none of the callers' values, so
//     the function cannot act with the identity (user, tenant, request id)
//     of whichever caller came first and hand the result to the others.
//     The key must include everything the result depends on.
//
// The zero value is ready to use. It is safe for concurrent use by
// multiple goroutines and must not be copied after first use.
type Singleflight[K comparable, V any] struct {
	// Logger receives a record with the stack when the function panics.
	// If nil, slog.Default() is used. Set it before first use.
	Logger *slog.Logger

	mu    sync.Mutex
	calls map[K]*flight[V]
}

type flight[V any] struct {
	done    chan struct{}
	val     V
	err     error
	waiters int // callers still waiting
	dups    int // callers that joined after the first
	cancel  context.CancelFunc
}

// Do calls fn once for key at a time and returns its result to every
// caller that asked for key meanwhile. shared reports whether the result
// was given to more than one caller.
//
// fn runs on its own goroutine with a context that is not derived from
// ctx: it has no values and no deadline, and is cancelled when every
// caller waiting for it has given up. Give fn its own deadline if it can
// hang. If ctx is done before the result is ready, Do returns ctx.Err()
// at once.
func (g *Singleflight[K, V]) Do(ctx context.Context, key K, fn func(ctx context.Context) (V, error)) (v V, shared bool, err error) {
	if err := ctx.Err(); err != nil {
		return v, false, err
	}
	g.mu.Lock()
	if g.calls == nil {
		g.calls = make(map[K]*flight[V])
	}
	c, ok := g.calls[key]
	if ok {
		c.dups++
	} else {
		fctx, cancel := context.WithCancel(context.Background())
		c = &flight[V]{done: make(chan struct{}), cancel: cancel}
		g.calls[key] = c
		go g.run(fctx, key, c, fn)
	}
	c.waiters++
	g.mu.Unlock()

	select {
	case <-c.done:
		g.mu.Lock()
		shared = c.dups > 0
		g.mu.Unlock()
		return c.val, shared, c.err
	case <-ctx.Done():
		g.mu.Lock()
		c.waiters--
		if c.waiters == 0 {
			select {
			case <-c.done:
			default:
				// Nobody wants the result any more.
				c.cancel()
				if g.calls[key] == c {
					delete(g.calls, key)
				}
			}
		}
		g.mu.Unlock()
		return v, false, ctx.Err()
	}
}

func (g *Singleflight[K, V]) run(ctx context.Context, key K, c *flight[V], fn func(context.Context) (V, error)) {
	returned := false
	defer func() {
		if !returned && c.err == nil {
			c.err = ErrGoexit
		}
		g.mu.Lock()
		if g.calls[key] == c {
			delete(g.calls, key)
		}
		g.mu.Unlock()
		close(c.done)
		c.cancel()
	}()
	defer func() {
		if returned {
			return
		}
		if p := recover(); p != nil {
			pe := newPanicError(p)
			c.err = pe
			l := g.Logger
			if l == nil {
				l = slog.Default()
			}
			// The key is not logged: it may carry user data.
			l.LogAttrs(context.Background(), slog.LevelError, "singleflight call panicked",
				slog.String("panic", fmt.Sprint(p)), slog.String("stack", string(pe.Stack)))
		}
	}()
	c.val, c.err = fn(ctx)
	returned = true
}

// Forget makes the next Do for key start a new call even if one is in
// flight; callers already waiting still get the old call's result.
func (g *Singleflight[K, V]) Forget(key K) {
	g.mu.Lock()
	delete(g.calls, key)
	g.mu.Unlock()
}

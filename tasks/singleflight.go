package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// ErrInvalidKey is returned by [Singleflight.Do], without calling the
// function, for a key that is not equal to itself: a NaN float or complex
// number, or a struct, array or interface value that holds one. A Go map
// can never find such a key again, so its calls could be neither shared
// nor forgotten. Such a key usually comes from input
// ([strconv.ParseFloat] accepts "NaN"): answer it with a 400.
var ErrInvalidKey = errors.New("tasks: singleflight key is not equal to itself (NaN)")

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
// The key may be of any comparable type, not only a string; one that is
// not equal to itself (it holds a NaN) is refused with [ErrInvalidKey].
//
// The zero value is ready to use. It is safe for concurrent use by
// multiple goroutines and must not be copied after first use.
type Singleflight[K comparable, V any] struct {
	// Logger receives a record with the stack when the function panics.
	// If nil, slog.Default() is used. Set it before first use. If the
	// handler panics, that record is given up on: it is lost, and the
	// callers still get the [*PanicError].
	Logger *slog.Logger

	mu    sync.Mutex
	calls map[K]*flight[V]
}

// invalidKey reports whether key is not equal to itself, so that a map
// lookup could never find it again: a NaN, or a struct, array or interface
// value holding one. It is checked before the Singleflight's mutex is
// taken, so that an interface key whose dynamic type cannot be compared
// panics (with the same kind of runtime error a map index would raise)
// without leaving the mutex locked.
func invalidKey[K comparable](key K) bool {
	return key != key
}

// flight is one call in flight. done is closed under Singleflight.mu, once
// val, err and shared are set; waiters is guarded by Singleflight.mu.
type flight[V any] struct {
	done    chan struct{}
	val     V
	err     error
	shared  bool // more than one caller was waiting when the result came
	waiters int  // callers waiting, or given the result
	cancel  context.CancelFunc
}

// Do calls fn once for key at a time and returns its result to every
// caller that asked for key meanwhile. shared reports whether the result
// was given to more than one caller; a caller that gave up before the
// result was ready did not get it, and is not counted.
//
// fn runs on its own goroutine with a context that is not derived from
// ctx: it has no values and no deadline, and is cancelled when every
// caller waiting for it has given up. Give fn its own deadline if it can
// hang. If ctx is done before the result is ready, Do returns ctx.Err()
// at once; if both are ready, it returns the result.
//
// Do returns [ErrInvalidKey], whatever ctx, without calling fn, if key is
// not equal to itself (it holds a NaN). A key of interface type whose
// dynamic value cannot be compared (a slice in an any) panics with a
// runtime error, as indexing a Go map with it would; the panic comes
// before the Singleflight is locked, so it keeps working.
func (g *Singleflight[K, V]) Do(ctx context.Context, key K, fn func(ctx context.Context) (V, error)) (v V, shared bool, err error) {
	if invalidKey(key) {
		return v, false, ErrInvalidKey
	}
	if err := ctx.Err(); err != nil {
		return v, false, err
	}
	g.mu.Lock()
	if g.calls == nil {
		g.calls = make(map[K]*flight[V])
	}
	c, ok := g.calls[key]
	if !ok {
		fctx, cancel := context.WithCancel(context.Background())
		c = &flight[V]{done: make(chan struct{}), cancel: cancel}
		g.calls[key] = c
		go g.run(fctx, key, c, fn)
	}
	c.waiters++
	g.mu.Unlock()

	select {
	case <-c.done:
		return c.val, c.shared, c.err
	case <-ctx.Done():
		g.mu.Lock()
		select {
		case <-c.done:
			// The result came too, and this caller was counted among those
			// given it: take it.
			g.mu.Unlock()
			return c.val, c.shared, c.err
		default:
		}
		c.waiters--
		if c.waiters == 0 {
			// Nobody wants the result any more.
			c.cancel()
			if g.calls[key] == c {
				delete(g.calls, key)
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
		// Every caller still waiting now gets the result: a caller whose
		// context ends from here on finds done closed under the same lock.
		c.shared = c.waiters > 1
		close(c.done)
		g.mu.Unlock()
		c.cancel()
	}()
	defer func() {
		if returned {
			return
		}
		if p := recover(); p != nil {
			pe := newPanicError(p)
			c.err = pe
			// The key is not logged: it may carry user data. A handler that
			// panics loses the record, or this goroutine would end the process.
			logRecord(context.Background(), g.Logger, slog.LevelError, "singleflight call panicked", []slog.Attr{
				slog.String("panic", fmt.Sprint(p)), slog.String("stack", string(pe.Stack)),
			})
		}
	}()
	c.val, c.err = fn(ctx)
	returned = true
}

// Forget makes the next Do for key start a new call even if one is in
// flight; callers already waiting still get the old call's result. For a
// key that is not equal to itself it does nothing: Do never starts a call
// for one. A key whose dynamic value cannot be compared panics as in Do.
func (g *Singleflight[K, V]) Forget(key K) {
	if invalidKey(key) {
		return
	}
	g.mu.Lock()
	delete(g.calls, key)
	g.mu.Unlock()
}

package timeouts

import (
	"context"
	"slices"
	"time"
)

// The guard of a Deadline is also the handler's context: a deadline
// context that needs no timer of its own (the guard's timer ends it) and
// no allocation, and whose Err is context.DeadlineExceeded at the route
// deadline, as with context.WithDeadline. It follows the parent's
// cancellation, and implements AfterFunc so that contexts derived from it
// (context.WithTimeout, WithCancel…) are cancelled without a goroutine
// each, with its own error.

var _ context.Context = (*guard)(nil)

// Deadline implements [context.Context]: the route deadline, or an earlier
// one of the parent. A Stream route, and a handler that hijacked the
// connection, have only their parent's.
func (g *guard) Deadline() (time.Time, bool) {
	if g.stream || g.hijacked.Load() {
		return g.parent.Deadline()
	}
	return g.dl, true
}

// Value implements [context.Context]. It hides the parent's internal
// cancellation context (see cancelCtxKey), so that the context package
// treats the guard as the context it is and context.Cause reports its own
// error.
func (g *guard) Value(key any) any {
	if g.d.cancelKey != nil && key == g.d.cancelKey {
		return nil
	}
	if key == (deadlineKey{}) {
		return g
	}
	return g.parent.Value(key)
}

// Done implements [context.Context].
func (g *guard) Done() <-chan struct{} {
	g.ctxMu.Lock()
	defer g.ctxMu.Unlock()
	g.watchParentLocked()
	if g.done == nil {
		g.done = make(chan struct{})
		if g.err != nil {
			close(g.done)
		}
	}
	return g.done
}

// Err implements [context.Context].
func (g *guard) Err() error {
	g.ctxMu.Lock()
	err := g.err
	g.ctxMu.Unlock()
	if err != nil {
		return err
	}
	if perr := g.parent.Err(); perr != nil {
		g.cancelCtx(perr) // keep Done and Err consistent
		g.ctxMu.Lock()
		defer g.ctxMu.Unlock()
		return g.err
	}
	return nil
}

type afterFunc struct{ fn func() }

// AfterFunc arranges for f to run in its own goroutine once the context is
// done, as context.AfterFunc does; the context package uses it for
// contexts derived from this one. stop reports whether it prevented f
// from running.
func (g *guard) AfterFunc(f func()) (stop func() bool) {
	g.ctxMu.Lock()
	if g.err != nil {
		g.ctxMu.Unlock()
		go f()
		return func() bool { return false }
	}
	g.watchParentLocked()
	e := &afterFunc{fn: f}
	g.afterFuncs = append(g.afterFuncs, e)
	g.ctxMu.Unlock()
	return func() bool {
		g.ctxMu.Lock()
		defer g.ctxMu.Unlock()
		i := slices.Index(g.afterFuncs, e)
		if i < 0 {
			return false
		}
		g.afterFuncs = slices.Delete(g.afterFuncs, i, i+1)
		return true
	}
}

// watchParentLocked makes the parent's cancellation end this context,
// from the first time anyone waits on it (ctxMu held).
func (g *guard) watchParentLocked() {
	if g.watching || g.err != nil {
		return
	}
	g.watching = true
	if g.parent.Done() != nil {
		parent := g.parent
		g.stopParent = context.AfterFunc(parent, func() { g.cancelCtx(parent.Err()) })
	}
}

// cancelCtx ends the context with err (the first call wins).
func (g *guard) cancelCtx(err error) {
	g.ctxMu.Lock()
	if g.err != nil {
		g.ctxMu.Unlock()
		return
	}
	g.err = err
	if g.done != nil {
		close(g.done)
	}
	funcs := g.afterFuncs
	g.afterFuncs = nil
	stop := g.stopParent
	g.stopParent = nil
	g.ctxMu.Unlock()
	if stop != nil {
		stop()
	}
	for _, e := range funcs {
		go e.fn()
	}
}

// cancelCtxKey returns the key under which the context package looks up a
// context's internal cancellation state (context.Cause asks for it through
// Value), or nil if it cannot be observed. A guard hides the parent's
// value for that key: without this, context.Cause on the handler's
// context would report the request's cause (nil while the client is
// connected) instead of the route deadline.
func cancelCtxKey() any {
	p := &keyProbe{Context: context.Background()}
	_ = context.Cause(p)
	return p.key
}

type keyProbe struct {
	context.Context
	key any
}

// Err reports the probe ended: context.Cause asks a context for its
// cancellation state only once its Err is not nil (so since Go 1.26).
func (p *keyProbe) Err() error { return context.Canceled }

func (p *keyProbe) Value(key any) any {
	if p.key == nil {
		p.key = key
	}
	return nil
}

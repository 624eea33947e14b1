package timeouts

import (
	"context"
	"fmt"
	"sync"
)

// Tracker is what a package that takes connections over from the HTTP
// server (WebSocket accept, CONNECT tunnels, raw protocols) needs in order
// to take part in a graceful shutdown. [*Registry] implements it.
type Tracker interface {
	// Track registers one connection; see [Registry.Track].
	Track(drain func(ctx context.Context)) (done func(), err error)
}

// Registry tracks connections that have left the HTTP server's hands, so
// that a graceful shutdown can ask each one to close and wait for it.
// [net/http.Server.Shutdown] neither closes nor waits for hijacked
// connections; [Server.Shutdown] drains its Registry alongside it.
//
// The protocol, for the owner of a hijacked connection:
//
//  1. Right after taking the connection over, call Track with a drain
//     function. If it returns [ErrShuttingDown], refuse the connection
//     (a WebSocket closes at once with 1001 Going Away).
//  2. When the connection ends, for any reason, call the returned done
//     function. It is idempotent and safe from any goroutine.
//  3. On shutdown, drain is called once, on a goroutine of its own, with a
//     context that ends at the shutdown deadline. It must ask the peer to
//     go away (a WebSocket sends close 1001 and waits for the close
//     handshake) and, if ctx ends first, close the connection outright;
//     it must return promptly once ctx is done.
//
// The zero Registry is ready to use. A Registry is safe for concurrent use
// by multiple goroutines.
type Registry struct {
	mu       sync.Mutex
	draining bool
	next     uint64
	conns    map[uint64]*entry
	changed  chan struct{} // closed and replaced whenever conns shrinks
}

type entry struct {
	drain func(context.Context)
	once  sync.Once
}

var _ Tracker = (*Registry)(nil)

// Track registers one connection with its drain function (see the
// protocol in [Registry]) and returns the function to call when the
// connection has ended. After [Registry.Drain] has begun it registers
// nothing and returns [ErrShuttingDown]. A nil drain is an error: every
// tracked connection must be closable.
func (g *Registry) Track(drain func(ctx context.Context)) (done func(), err error) {
	if drain == nil {
		return nil, invalid("Registry.Track: nil drain function")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.draining {
		return nil, ErrShuttingDown
	}
	if g.conns == nil {
		g.conns = make(map[uint64]*entry)
	}
	g.next++
	id := g.next
	g.conns[id] = &entry{drain: drain}
	return func() { g.remove(id) }, nil
}

// Shutdowner is anything that can close a set of connections gracefully,
// such as a WebSocket guard or hub: Shutdown asks every connection to go
// away and returns when they have, or cuts them and returns ctx's error
// once ctx is done.
type Shutdowner interface {
	Shutdown(ctx context.Context) error
}

// TrackShutdowner registers s as one tracked entry: on [Registry.Drain],
// s.Shutdown is called with the drain's context, and the entry ends when
// it returns. Use it for a component that already tracks its own
// connections; use [Registry.Track] for single connections. After Drain
// has begun it returns [ErrShuttingDown].
func (g *Registry) TrackShutdowner(s Shutdowner) error {
	if s == nil {
		return invalid("Registry.TrackShutdowner: nil Shutdowner")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.draining {
		return ErrShuttingDown
	}
	if g.conns == nil {
		g.conns = make(map[uint64]*entry)
	}
	g.next++
	id := g.next
	g.conns[id] = &entry{drain: func(ctx context.Context) {
		defer g.remove(id)
		_ = s.Shutdown(ctx)
	}}
	return nil
}

func (g *Registry) remove(id uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.conns[id]; !ok {
		return
	}
	delete(g.conns, id)
	if g.changed != nil {
		close(g.changed)
		g.changed = nil
	}
}

// Len reports how many connections are tracked now.
func (g *Registry) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.conns)
}

// Draining reports whether [Registry.Drain] has begun; from then on
// [Registry.Track] refuses new connections.
func (g *Registry) Draining() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.draining
}

// Drain stops new registrations, calls the drain function of every
// tracked connection (each once, concurrently, with ctx), and waits until
// every connection has called its done function or ctx is done. It
// returns nil when every connection ended, otherwise an error wrapping
// ctx's error that says how many were left. It may be called again (a
// later call waits again and calls only drain functions not yet called).
func (g *Registry) Drain(ctx context.Context) error {
	g.mu.Lock()
	g.draining = true
	var wg sync.WaitGroup
	for _, e := range g.conns {
		e.once.Do(func() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e.drain(ctx)
			}()
		})
	}
	g.mu.Unlock()

	// Wait for the drain goroutines, bounded by ctx, so none outlives
	// Drain when the drain functions keep their contract.
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	defer func() {
		select {
		case <-finished:
		case <-ctx.Done():
		}
	}()

	for {
		g.mu.Lock()
		left := len(g.conns)
		if left == 0 {
			g.mu.Unlock()
			return nil
		}
		if g.changed == nil {
			g.changed = make(chan struct{})
		}
		changed := g.changed
		g.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("timeouts: %d hijacked connection(s) still open at the shutdown deadline: %w",
				left, ctx.Err())
		}
	}
}

type registryKey struct{}

// WithRegistry returns a copy of ctx that carries g, for
// [RegistryFrom]. [Server] puts its Registry in every request's context
// this way.
func WithRegistry(ctx context.Context, g *Registry) context.Context {
	return context.WithValue(ctx, registryKey{}, g)
}

// RegistryFrom returns the Registry carried by ctx, or nil. A package that
// hijacks connections calls RegistryFrom(r.Context()) to find the
// registry of the [Server] serving the request.
func RegistryFrom(ctx context.Context) *Registry {
	g, _ := ctx.Value(registryKey{}).(*Registry)
	return g
}

package wsguard

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/stormcellar/stormcellar/httperr"
	"github.com/stormcellar/stormcellar/internal/clientip"
	"github.com/stormcellar/stormcellar/wsorigin"
	"golang.org/x/time/rate"
)

// Defaults for the zero [Options].
const (
	DefaultMaxConns          = 10000
	DefaultMaxConnsPerClient = 16
	DefaultMaxMessageBytes   = 32 << 10
	DefaultMessageRate       = 20 // messages per second
	DefaultPingInterval      = 25 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultWriteTimeout      = 10 * time.Second
)

// Retry-After values sent with refusals at the connection caps.
const (
	retryGlobal    = 5 * time.Second
	retryPerClient = 10 * time.Second
)

// Errors. Refusals and closures wrap one of them; use [errors.Is].
var (
	// ErrOverloaded: the guard holds MaxConns connections (503).
	ErrOverloaded = errors.New("wsguard: connection limit reached")
	// ErrClientLimit: this client holds MaxConnsPerClient connections (429).
	ErrClientLimit = errors.New("wsguard: per-client connection limit reached")
	// ErrShuttingDown: Shutdown or Close was called (503 before the
	// upgrade, close 1001 after).
	ErrShuttingDown = errors.New("wsguard: shutting down")
	// ErrHandshake: the request is not a valid WebSocket handshake.
	ErrHandshake = errors.New("wsguard: invalid WebSocket handshake")
	// ErrRateLimited: the peer sent messages faster than MessageRate
	// (closed with 1008).
	ErrRateLimited = errors.New("wsguard: message rate exceeded")
	// ErrIdle: nothing was received from the peer for IdleTimeout
	// (closed with 1001).
	ErrIdle = errors.New("wsguard: idle timeout")
	// ErrWriteTimeout: a write did not complete within WriteTimeout; the
	// connection was cut.
	ErrWriteTimeout = errors.New("wsguard: write timeout")
	// ErrBadMessage: a message failed strict JSON decoding (closed with
	// 1007, or 1003 for a binary message).
	ErrBadMessage = errors.New("wsguard: invalid message")
	// ErrInvalid: a decoded message's Validate method refused it (closed
	// with 1008).
	ErrInvalid = errors.New("wsguard: message refused by Validate")
	// ErrSlowConsumer: a [Hub] member's queue was full (closed with 1013).
	ErrSlowConsumer = errors.New("wsguard: slow consumer dropped")
)

// Options configures a [Guard]. The zero value is the safe setting: every
// limit is on, with the default named on each field. Negative values are
// refused by [New]: no limit can be switched off.
type Options struct {
	// Origin is the origin policy every handshake must pass (403 through
	// httperr otherwise). If nil, same-origin only: wsorigin.New with zero
	// options.
	Origin *wsorigin.Policy

	// MaxConns caps the live connections of this guard, handshakes in
	// progress included. Beyond it a handshake gets 503 with Retry-After
	// before any upgrade. If zero, 10000.
	MaxConns int

	// MaxConnsPerClient caps the live connections of one client, as
	// identified by clientip.Group(clientip.Addr(r)): the trusted-proxy
	// resolver's address if the application installed one (chi's
	// middleware.ClientIPFrom*), else the TCP peer; IPv6 by /64. Beyond
	// it a handshake gets 429 with Retry-After before any upgrade. If
	// zero, 16.
	MaxConnsPerClient int

	// MaxMessageBytes is the largest message a peer may send; a larger
	// one is refused while it is read, and the connection is closed with
	// 1009 (message too big). If zero, 32 KiB (coder/websocket's default).
	MaxMessageBytes int64

	// MessageRate is the sustained number of messages and control frames
	// per second a peer may send on one connection (data messages, pings
	// and pongs; a fragmented message counts once, its continuation frames
	// are not counted); MessageBurst more may arrive at once. Over it the
	// connection is closed with 1008 (policy violation). If zero, 20 per
	// second.
	MessageRate float64
	// MessageBurst: if zero, twice MessageRate (at least 1).
	MessageBurst int

	// PingInterval is how often the server pings a connection to learn
	// whether the peer is alive. If zero, 25 s (under the 30–60 s idle
	// cut-offs of common proxies and load balancers).
	PingInterval time.Duration
	// IdleTimeout closes a connection, with 1001, when nothing at all
	// (message, ping or pong) has been received from the peer for this
	// long. A live peer answers every ping, so only a dead or
	// unresponsive one, or a handler that stopped reading, is cut. Must
	// be longer than PingInterval. If zero, 60 s.
	IdleTimeout time.Duration

	// WriteTimeout bounds every write (a slow reader cannot hold a
	// goroutine or its buffers longer) and the close handshake, after
	// which the TCP connection is closed regardless. If zero, 10 s.
	WriteTimeout time.Duration

	// Subprotocols lists the subprotocols to negotiate (see
	// websocket.AcceptOptions).
	Subprotocols []string

	// Logger receives one record per connection closed for a policy
	// reason (rate, size, invalid message, idle, write timeout, slow
	// consumer), with keys client, code, reason. Refusals before the
	// upgrade are logged by httperr. If nil, slog.Default().
	Logger *slog.Logger
}

// Guard accepts WebSocket connections under its limits and tracks them so
// that [Guard.Shutdown] can close every one with 1001. It is safe for
// concurrent use by multiple goroutines.
type Guard struct {
	policy      *wsorigin.Policy
	maxConns    int
	maxPer      int
	readLimit   int64
	rate        rate.Limit
	burst       int
	ping        time.Duration
	idle        time.Duration
	write       time.Duration
	subprotos   []string
	logger      *slog.Logger
	epoch       time.Time
	mu          sync.Mutex
	conns       map[*Conn]struct{}
	perClient   map[netip.Prefix]int
	pending     int
	closing     bool
	drained     chan struct{}
	drainedOnce sync.Once
}

// New validates opts and returns a guard.
func New(opts Options) (*Guard, error) {
	var errs []error
	neg := func(name string, bad bool) {
		if bad {
			errs = append(errs, fmt.Errorf("wsguard: %s must not be negative", name))
		}
	}
	neg("MaxConns", opts.MaxConns < 0)
	neg("MaxConnsPerClient", opts.MaxConnsPerClient < 0)
	neg("MaxMessageBytes", opts.MaxMessageBytes < 0)
	neg("MessageRate", opts.MessageRate < 0)
	neg("MessageBurst", opts.MessageBurst < 0)
	neg("PingInterval", opts.PingInterval < 0)
	neg("IdleTimeout", opts.IdleTimeout < 0)
	neg("WriteTimeout", opts.WriteTimeout < 0)
	if math.IsInf(opts.MessageRate, 0) || math.IsNaN(opts.MessageRate) {
		// rate.Inf would switch the limit off.
		errs = append(errs, errors.New("wsguard: MessageRate must be finite"))
	}
	g := &Guard{
		policy:    opts.Origin,
		maxConns:  or(opts.MaxConns, DefaultMaxConns),
		maxPer:    or(opts.MaxConnsPerClient, DefaultMaxConnsPerClient),
		readLimit: or(opts.MaxMessageBytes, DefaultMaxMessageBytes),
		rate:      rate.Limit(or(opts.MessageRate, DefaultMessageRate)),
		ping:      or(opts.PingInterval, DefaultPingInterval),
		idle:      or(opts.IdleTimeout, DefaultIdleTimeout),
		write:     or(opts.WriteTimeout, DefaultWriteTimeout),
		subprotos: opts.Subprotocols,
		logger:    opts.Logger,
		epoch:     time.Now(),
		conns:     make(map[*Conn]struct{}),
		perClient: make(map[netip.Prefix]int),
		drained:   make(chan struct{}),
	}
	g.burst = opts.MessageBurst
	if g.burst == 0 {
		g.burst = max(1, int(2*float64(g.rate)))
	}
	if g.idle <= g.ping {
		errs = append(errs, fmt.Errorf("wsguard: IdleTimeout (%v) must be longer than PingInterval (%v)", g.idle, g.ping))
	}
	if g.policy == nil {
		p, err := wsorigin.New(wsorigin.Options{})
		if err != nil {
			errs = append(errs, err)
		}
		g.policy = p
	}
	if g.logger == nil {
		g.logger = slog.Default()
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return g, nil
}

func or[T int | int64 | float64 | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// Len returns the number of live connections, handshakes in progress
// included.
func (g *Guard) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.conns) + g.pending
}

// Accept checks the handshake, the origin policy and the connection caps,
// in that order, and upgrades the connection. Every refusal is answered
// before the upgrade through httperr: 400/405/426 for a malformed
// handshake (kinds bad_request, method, client_error), 403 for the origin
// (kind origin), 429 with Retry-After at the per-client cap (kind
// rate_limit), 503 with Retry-After at the global cap or during shutdown
// (kind overload). The error is returned too; the handler should just
// return.
//
// The returned connection has its message size limit, rate limit, idle
// timeout and heartbeat running. The handler must keep calling
// [Conn.Read] (or [Conn.ReadJSON], or [Conn.CloseRead] once) so that
// pongs and close frames are processed, and should defer [Conn.CloseNow].
// As with coder/websocket, do not use r.Context() after Accept; use
// [Conn.Context].
func (g *Guard) Accept(w http.ResponseWriter, r *http.Request) (*Conn, error) {
	if he := checkHandshake(r); he != nil {
		httperr.Write(w, r, he)
		return nil, he
	}
	wsOpts, err := g.policy.AcceptOptions(r, &websocket.AcceptOptions{Subprotocols: g.subprotos})
	if err != nil {
		he := httperr.Forbidden(httperr.KindOrigin, err)
		httperr.Write(w, r, he)
		return nil, he
	}
	if findHijacker(w) == nil {
		he := httperr.Internal(errors.New("wsguard: the ResponseWriter cannot hijack (HTTP/2, or a wrapper without Unwrap)"))
		httperr.Write(w, r, he)
		return nil, he
	}

	client := clientip.Addr(r)
	group := clientip.Group(client)
	if he := g.reserve(group); he != nil {
		httperr.Write(w, r, he)
		return nil, he
	}

	c := &Conn{g: g, client: client, group: group, done: make(chan struct{}),
		lim: rate.NewLimiter(g.rate, g.burst)}
	c.ctx, c.cancel = context.WithCancelCause(context.Background())
	c.touch()
	wsOpts.OnPingReceived = c.onPing
	wsOpts.OnPongReceived = c.onPong
	hw := &hijackWriter{ResponseWriter: w}
	ws, err := websocket.Accept(hw, r, wsOpts)
	if err != nil {
		g.unreserve(group)
		return nil, err
	}
	ws.SetReadLimit(g.readLimit)
	c.ws, c.raw = ws, hw.conn
	c.sub = ws.Subprotocol()
	// Assigned before it can fire: the first Reset happens after this.
	c.beat = time.AfterFunc(time.Duration(math.MaxInt64), c.heartbeat)

	g.mu.Lock()
	g.pending--
	g.conns[c] = struct{}{}
	closing := g.closing
	g.mu.Unlock()
	if closing {
		c.shut(websocket.StatusGoingAway, reasonShutdown, ErrShuttingDown)
		return nil, ErrShuttingDown
	}
	c.beat.Reset(g.ping)
	return c, nil
}

// reserve takes a connection slot for group, or returns the refusal.
func (g *Guard) reserve(group netip.Prefix) *httperr.HTTPError {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.closing:
		return httperr.Unavailable(httperr.KindOverload, retryGlobal, ErrShuttingDown)
	case len(g.conns)+g.pending >= g.maxConns:
		return httperr.Unavailable(httperr.KindOverload, retryGlobal,
			fmt.Errorf("%w (%d)", ErrOverloaded, g.maxConns))
	case g.perClient[group] >= g.maxPer:
		return httperr.TooManyRequests(retryPerClient,
			fmt.Errorf("%w (%d for %v)", ErrClientLimit, g.maxPer, group))
	}
	g.pending++
	g.perClient[group]++
	return nil
}

func (g *Guard) unreserve(group netip.Prefix) {
	g.mu.Lock()
	g.pending--
	g.dropClient(group)
	g.checkDrained()
	g.mu.Unlock()
}

// dropClient and checkDrained need g.mu held.
func (g *Guard) dropClient(group netip.Prefix) {
	if g.perClient[group]--; g.perClient[group] <= 0 {
		delete(g.perClient, group)
	}
}

func (g *Guard) checkDrained() {
	if g.closing && len(g.conns) == 0 && g.pending == 0 {
		g.drainedOnce.Do(func() { close(g.drained) })
	}
}

func (g *Guard) remove(c *Conn) {
	g.mu.Lock()
	if _, ok := g.conns[c]; ok {
		delete(g.conns, c)
		g.dropClient(c.group)
	}
	g.checkDrained()
	g.mu.Unlock()
}

const reasonShutdown = "server shutting down"

// Shutdown stops accepting connections (new handshakes get 503) and closes
// every live connection with 1001 (going away), each with a close
// handshake bounded by WriteTimeout. It returns when every connection is
// closed, or when ctx is done, after cutting the remaining TCP connections
// at once; it then returns ctx's error. It is safe to call more than once.
//
// To drain WebSockets when an [http.Server] shuts down (Server.Shutdown
// does not wait for hijacked connections), register it:
//
//	srv.RegisterOnShutdown(func() { _ = guard.Close() })
//
// On a timeouts.Server, whose shutdown closes the hijacked connections
// still open once requests and its Registry are done, register it in the
// Registry instead, so that the drain comes first:
//
//	srv.Registry().TrackShutdowner(guard)
func (g *Guard) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	g.closing = true
	conns := make([]*Conn, 0, len(g.conns))
	for c := range g.conns {
		conns = append(conns, c)
	}
	g.checkDrained()
	g.mu.Unlock()

	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() { c.shut(websocket.StatusGoingAway, reasonShutdown, ErrShuttingDown) })
	}
	closed := make(chan struct{})
	go func() { wg.Wait(); close(closed) }()
	select {
	case <-closed:
		<-g.drained // handshakes in flight close themselves, bounded the same way
		return nil
	case <-ctx.Done():
		g.mu.Lock()
		for c := range g.conns {
			c.cut()
		}
		g.mu.Unlock()
		<-closed
		return ctx.Err()
	}
}

// Close is [Guard.Shutdown] with a deadline of WriteTimeout plus a second:
// every connection gets 1001 and any peer that does not complete the close
// handshake in time is cut. Its signature fits
// http.Server.RegisterOnShutdown through a one-line closure.
func (g *Guard) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), g.write+time.Second)
	defer cancel()
	return g.Shutdown(ctx)
}

// checkHandshake applies RFC 6455's handshake rules (the same ones
// coder/websocket applies) so that a malformed handshake is answered
// through httperr rather than by coder/websocket's plain-text errors.
func checkHandshake(r *http.Request) *httperr.HTTPError {
	upgradeHeaders := http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}}
	switch {
	case !r.ProtoAtLeast(1, 1) || r.ProtoMajor > 1:
		return &httperr.HTTPError{Status: http.StatusUpgradeRequired, Kind: httperr.KindBadRequest,
			Message: "WebSocket needs HTTP/1.1", Header: upgradeHeaders,
			Err: fmt.Errorf("%w: protocol %q", ErrHandshake, r.Proto)}
	case !hasToken(r.Header, "Connection", "upgrade"), !hasToken(r.Header, "Upgrade", "websocket"):
		return &httperr.HTTPError{Status: http.StatusUpgradeRequired, Kind: httperr.KindBadRequest,
			Message: "WebSocket upgrade required", Header: upgradeHeaders,
			Err: fmt.Errorf("%w: Connection/Upgrade headers", ErrHandshake)}
	case r.Method != http.MethodGet:
		return &httperr.HTTPError{Status: http.StatusMethodNotAllowed, Kind: httperr.KindMethod,
			Header: http.Header{"Allow": {http.MethodGet}},
			Err:    fmt.Errorf("%w: method %q", ErrHandshake, r.Method)}
	case r.Header.Get("Sec-WebSocket-Version") != "13":
		return &httperr.HTTPError{Status: http.StatusBadRequest, Kind: httperr.KindBadRequest,
			Message: "Unsupported WebSocket version", Header: http.Header{"Sec-WebSocket-Version": {"13"}},
			Err: fmt.Errorf("%w: version %q", ErrHandshake, truncate(r.Header.Get("Sec-WebSocket-Version")))}
	}
	keys := r.Header["Sec-Websocket-Key"]
	if len(keys) != 1 {
		return httperr.BadRequest("Invalid Sec-WebSocket-Key", fmt.Errorf("%w: %d Sec-WebSocket-Key headers", ErrHandshake, len(keys)))
	}
	if k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(keys[0])); err != nil || len(k) != 16 {
		return httperr.BadRequest("Invalid Sec-WebSocket-Key", fmt.Errorf("%w: key %q", ErrHandshake, truncate(keys[0])))
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func hasToken(h http.Header, key, token string) bool {
	for _, v := range h[key] {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// hijackWriter lets the guard keep the hijacked net.Conn, so that it can
// bound the close handshake and cut a connection that will not close.
type hijackWriter struct {
	http.ResponseWriter
	conn net.Conn
}

func (h *hijackWriter) Unwrap() http.ResponseWriter { return h.ResponseWriter }

func (h *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj := findHijacker(h.ResponseWriter)
	if hj == nil {
		return nil, nil, http.ErrNotSupported
	}
	c, brw, err := hj.Hijack()
	h.conn = c
	return c, brw, err
}

// findHijacker follows Unwrap as http.ResponseController does.
func findHijacker(w http.ResponseWriter) http.Hijacker {
	for {
		switch t := w.(type) {
		case http.Hijacker:
			return t
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return nil
		}
	}
}

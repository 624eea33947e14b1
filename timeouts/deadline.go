package timeouts

import (
	"bufio"
	"context"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stormcellar/stormcellar/httperr"
	"github.com/stormcellar/stormcellar/internal/reqstate"
)

// Defaults of [DeadlineOptions].
const (
	DefaultDeadline             = 30 * time.Second
	DefaultDeadlineWriteTimeout = 10 * time.Second
)

// DeadlineOptions configure [Deadline]. The zero value is the safe
// setting; negative durations are treated as zero.
type DeadlineOptions struct {
	// Timeout is the time the handler has. When it passes, the request's
	// context is done, reads of the request body fail, and, if nothing was
	// written yet, the client gets 503 (KindTimeout; Connection: close on
	// HTTP/1) at once, through httperr. If the handler had started its
	// response, the connection's write deadline, set to the same instant,
	// cuts it, and the response is aborted so that the client sees it
	// truncated. For a Stream route it is the time
	// to the first byte instead. Default 30 s.
	Timeout time.Duration

	// Stream declares a streaming route (server-sent events, long
	// downloads, chunked APIs). Timeout then bounds only the time to the
	// start of the response; after that the context is not cancelled and
	// the response may last as long as it keeps being written: each write
	// or flush must finish within WriteTimeout. Default false.
	Stream bool

	// WriteTimeout is the write deadline of each write of a Stream route,
	// the least time any route's response gets to be flushed once the
	// handler has returned, and the time the 503 gets to be written.
	// Default 10 s.
	WriteTimeout time.Duration
}

// Deadline returns per-route deadline middleware: the answer to a stuck
// handler or a slow upstream that [http.TimeoutHandler] and chi's Timeout
// each answer only in part.
//
//   - The handler runs on the request's own goroutine (no goroutine is
//     started, panics reach the recoverer as usual, nothing is buffered:
//     flushing and streaming work).
//   - At the deadline, if nothing was written, the 503 is written at once
//     through httperr and flushed, even when the handler ignores its
//     context; the handler's later writes, flushes and hijacks return an
//     error matching [ErrTimeout] and never touch the connection. All of
//     it is safe under the race detector: the handler writes headers into
//     its own map until it commits, and the commit is decided under a
//     lock shared with the timer.
//   - If the handler had committed, its context is done and the write
//     deadline ends the response; when it returns, the response is
//     aborted (panic [http.ErrAbortHandler]) instead of being completed.
//   - A 504 comes from the handler itself: an upstream call that timed out
//     on its own deadline (a client from [NewClient], [WaitFor] with a
//     shorter limit) is answered 504 by [httperr.Write].
//   - A WebSocket (or any other) upgrade leaves the deadline's care when
//     the handler hijacks the connection: the timer then does nothing, the
//     connection's deadlines are cleared by net/http, and the context
//     reports no route deadline. Until then the request is timed like any
//     other, so Upgrade headers on a route that does not hijack change
//     nothing. Stream routes keep only the deadline to their first byte.
//
// It costs no goroutine and no timer per request: a Deadline's requests
// join a queue in the order they started (their deadlines come in that
// order), split into a few shards with a timer each, and a request whose
// deadline comes from outside (an enclosing Deadline's, a context's) takes
// a pooled timer. The
// connection's write deadline is set when the response is committed,
// unless an earlier one was set in this request (ConcurrencyLimit's hold)
// through the writer stormcellar's first layer installs.
//
// Used alone, with no stormcellar layer outside it, Deadline creates no
// per-request state: layers inside that need one create it below.
//
// The connection stays busy until the handler returns (the client already
// has its 503 and was told to close); a handler that never returns still
// leaks its goroutine, as with any Go timeout. Put Deadline inside the
// request-id middleware: it fixes the request id before it starts the
// timer, since the 503 is logged from the timer's goroutine.
func Deadline(opts DeadlineOptions) func(http.Handler) http.Handler {
	d := deadlineHandler{timeout: opts.Timeout, writeTimeout: opts.WriteTimeout, stream: opts.Stream,
		cancelKey: cancelCtxKey()}
	if d.timeout <= 0 {
		d.timeout = DefaultDeadline
	}
	if d.writeTimeout <= 0 {
		d.writeTimeout = DefaultDeadlineWriteTimeout
	}
	d.queue = newDeadlineQueue(d.timeout)
	return func(next http.Handler) http.Handler {
		h := d
		h.next = next
		return &h
	}
}

type deadlineHandler struct {
	next         http.Handler
	queue        *deadlineQueue // shared by every handler of one Deadline
	cancelKey    any            // see cancelCtxKey
	timeout      time.Duration
	writeTimeout time.Duration
	stream       bool
}

func (d *deadlineHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Upgrade requests are not exempted here: the headers are the client's
	// to choose, so an exemption on them would let any client lift the
	// deadline of any route. A real upgrade is released by Hijack.
	// The shared state is used if there is one (outer stormcellar
	// layers), not created: Deadline alone has no use for it, and layers
	// inside that need it create it below the guard.
	st := reqstate.From(r.Context())
	if st != nil {
		if st.Writer().Committed() {
			d.next.ServeHTTP(w, r)
			return
		}
		_ = st.RequestID() // fixed now: the timer goroutine only reads it
	}

	g := &guard{
		st:     st,
		w:      w,
		d:      d,
		stream: d.stream,
		orig:   r,
		path:   r.URL.Path,
		accept: r.Header["Accept"],
		parent: r.Context(),
	}
	pdl, hasPDL := g.parent.Deadline()
	if hasPDL || !d.queue.push(g) {
		g.startTimerAlone(pdl, hasPDL)
	}
	// The write deadline is set when the response is committed (see
	// commit), not here: only writes need it, and an earlier one set
	// outside (ConcurrencyLimit's hold) is then kept without a change.

	// The handler's request is a copy carrying the guard as its context,
	// kept in the guard: WithContext is inlined, so its own copy stays on
	// the stack.
	g.req = *r.WithContext(g)

	normal := false
	defer g.finish(&normal)
	d.next.ServeHTTP(g, &g.req)
	normal = true
}

// A timerCell is a reusable timer whose function expires the guard it is
// lent to. Requests that finish before their deadline (nearly all) stop
// the timer and return the cell to timerCells, so a Deadline costs no
// timer allocation per request.
type timerCell struct {
	t *time.Timer
	g atomic.Pointer[guard]
}

var timerCells = sync.Pool{New: func() any {
	c := new(timerCell)
	c.t = time.AfterFunc(time.Hour, c.fire)
	c.t.Stop()
	return c
}}

func (c *timerCell) fire() {
	if g := c.g.Load(); g != nil {
		g.expire()
	}
}

// startTimerAlone sets the deadline of a request that the queue does not
// time (pdl is the deadline outside, if hasPDL) and gives it a timer of
// its own.
func (g *guard) startTimerAlone(pdl time.Time, hasPDL bool) {
	delay := g.d.timeout
	now := time.Now()
	g.dl = now.Add(delay)
	if hasPDL && !pdl.After(g.dl) {
		// An earlier deadline outside wins. When it is an enclosing
		// Deadline's, that one answers and this one only follows its
		// context; otherwise this one answers at that time.
		// An outside deadline already past is answered at once: a
		// negative delay would mean "leave it to the enclosing Deadline".
		g.dl, delay = pdl, max(pdl.Sub(now), 0)
		if outer, _ := g.parent.Value(deadlineKey{}).(*guard); outer != nil && !outer.stream && outer.dl.Equal(pdl) {
			return
		}
		g.outerCut, g.outerLeft = true, delay
	}
	g.startTimer(delay, now)
}

// startTimer arranges for g.expire to run after delay; now is the time
// the delay counts from.
func (g *guard) startTimer(delay time.Duration, now time.Time) {
	if now == now.Round(0) {
		// No monotonic clock reading: the request runs in a
		// testing/synctest bubble, whose timers follow the bubble's fake
		// clock and must not be used outside it. It gets a timer of its
		// own, which never goes back to the pool.
		g.timer = time.AfterFunc(delay, g.expire)
		return
	}
	c := timerCells.Get().(*timerCell)
	c.g.Store(g)
	c.t.Reset(delay)
	g.cell = c
}

// stopTimer stops the timer; a pooled one that had not fired goes back to
// the pool (one that fired, or is firing, is left to the collector).
func (g *guard) stopTimer() {
	if g.timer == nil && g.cell == nil {
		// Queued (or timed by an enclosing Deadline, which the queue's
		// lock soon shows).
		g.d.queue.remove(g)
		return
	}
	if c := g.cell; c != nil {
		g.cell = nil
		if c.t.Stop() {
			c.g.Store(nil)
			timerCells.Put(c)
		}
		return
	}
	if g.timer != nil {
		g.timer.Stop()
	}
}

// deadlineKey finds the innermost enclosing Deadline's guard.
type deadlineKey struct{}

const (
	stateRunning uint8 = iota
	stateHijacked
	stateDone
)

// errLateWrite is returned by the guard's write methods after the
// deadline.
var errLateWrite error = &timeoutError{op: "response write after the route deadline"}

// errLateRead is returned by the request body's reads after the deadline.
var errLateRead error = &timeoutError{op: "request body read after the route deadline"}

// rc is the response controller of the wrapped writer.
func (g *guard) rc() *http.ResponseController { return http.NewResponseController(g.w) }

// guard is the writer the handler sees under Deadline. Fields marked
// (handler) are only touched by the handler's goroutine; fields marked
// (mu) by whoever holds mu; timedOut is atomic.
type guard struct {
	st    *reqstate.State
	w     http.ResponseWriter
	d     *deadlineHandler
	timer *time.Timer // in a synctest bubble
	cell  *timerCell  // with an earlier deadline outside
	// Links of the Deadline's queue (see deadlineQueue), under its lock.
	qprev, qnext *guard
	parent       context.Context // the request's context before Deadline

	req http.Request // the handler's request (handler)

	// What the 503 needs of the request: the request as Deadline received
	// it (the handler gets a copy, so its fields do not change) and the
	// path and Accept header, captured because the copy shares the URL
	// and the header map.
	orig   *http.Request
	path   string
	accept []string

	h http.Header // (handler) private headers until commit

	// outerLeft is the time an earlier deadline set outside the route
	// left the handler, when this guard answers it (outerCut).
	outerLeft time.Duration

	// The handler's context (see context.go), under ctxMu.
	dl         time.Time
	err        error
	done       chan struct{}
	stopParent func() bool
	afterFuncs []*afterFunc

	mu       sync.Mutex
	ctxMu    sync.Mutex
	timedOut atomic.Bool
	hijacked atomic.Bool // set with state = stateHijacked, read by Deadline

	// The small fields last, together, so that the guard fits a smaller
	// allocation size class (see TestGuardSize).
	state          uint8 // (mu)
	stream         bool
	committed      bool  // written under mu (by the handler, or an inner Deadline's timer); the status was sent
	wrote          bool  // (mu) the timer wrote the 503
	watching       bool  // (ctxMu)
	queued         bool  // (the queue shard's lock) in the Deadline's queue
	parentCanceled bool  // (mu) the timer found the parent canceled: the client went away
	outerCut       bool  // (handler, before the timer starts) the deadline is an earlier one from outside
	qshard         uint8 // (handler) the queue shard

	// ownWriteDeadline is set when the handler (or an inner Deadline)
	// set the write deadline itself.
	ownWriteDeadline atomic.Bool
}

// expire runs on the timer's goroutine at the deadline.
func (g *guard) expire() {
	if g.expireWriter() {
		// After the 503 (if any) is out, so that a handler answering its
		// own context error finds the response committed.
		err := context.DeadlineExceeded
		if g.parentCanceled {
			err = context.Canceled
		}
		g.cancelCtx(err)
	}
}

// expireWriter settles the response at the deadline and reports whether
// the context must end.
func (g *guard) expireWriter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state != stateRunning {
		return false
	}
	if err := g.parent.Err(); err == context.Canceled {
		g.parentCanceled = true
		return true // the client went away: nobody to answer
	}
	if g.committed {
		if g.stream {
			return false // a started stream keeps its context
		}
		g.timedOut.Store(true) // the write deadline cuts what is in flight
		g.cutReads()
		return true
	}
	g.timedOut.Store(true)
	g.cutReads()
	// The handler's private copy shares these values' arrays and may be
	// appending to them; the 503's writers (outer wrappers adding a Vary,
	// say) must copy instead.
	clipHeader(g.w.Header())
	_ = g.rc().SetWriteDeadline(time.Now().Add(g.d.writeTimeout))
	e := &httperr.HTTPError{
		Status: http.StatusServiceUnavailable,
		Kind:   httperr.KindTimeout,
		Err:    g.timeoutError(),
	}
	if g.orig.ProtoMajor < 2 {
		// The handler still holds the connection. On HTTP/2 the 503 ends
		// only its stream: Connection: close would end every stream of
		// the connection (GOAWAY).
		e.Header = http.Header{"Connection": {"close"}}
	}
	httperr.Write(g.w, g.errorRequest(), e)
	_ = g.rc().Flush()
	g.wrote = true
	if outer, _ := g.parent.Value(deadlineKey{}).(*guard); outer != nil {
		outer.markWritten() // the enclosing Deadline's response is complete too
	}
	return true
}

// cutReads ends the reads of the request body at once (timedOut set): a
// handler blocked on a slow body returns at the deadline too, instead of
// holding its goroutine and the connection after its client was answered.
// A body-rate reader outside (BodyRate's, the Server's) is marked first,
// so that it does not move the read deadline forward again; one inside
// sees timedOut.
func (g *guard) cutReads() {
	if rr, _ := g.parent.Value(rateKey{}).(*rateReader); rr != nil && rr.serves(g.w) {
		rr.cut.Store(true)
	}
	_ = g.rc().SetReadDeadline(pastDeadline)
}

// timeoutError is the error the 503 is logged with: the route's Timeout,
// or the time an earlier deadline from outside left the handler.
func (g *guard) timeoutError() error {
	if g.outerCut {
		return &timeoutError{op: "handler (under an earlier deadline set outside the route)", after: g.outerLeft}
	}
	return &timeoutError{op: "handler", after: g.d.timeout}
}

// markWritten records that an inner Deadline completed this response with
// its 503, so that this one does not abort it when its own deadline
// passes.
func (g *guard) markWritten() {
	g.mu.Lock()
	ok := g.committed
	if ok {
		g.wrote = true
	}
	g.mu.Unlock()
	if outer, _ := g.parent.Value(deadlineKey{}).(*guard); ok && outer != nil {
		outer.markWritten()
	}
}

// errorRequest is the request the 503 is written for: the captured
// method, path, remote address and Accept header, and the route's
// context. The handler's own *http.Request is not read from the timer's
// goroutine, since the handler may be changing it.
func (g *guard) errorRequest() *http.Request {
	h := make(http.Header, 1)
	if g.accept != nil {
		h["Accept"] = g.accept
	}
	r := &http.Request{
		Method: g.orig.Method, URL: &url.URL{Path: g.path}, Host: g.orig.Host,
		RemoteAddr: g.orig.RemoteAddr, Proto: g.orig.Proto, Header: h,
	}
	return r.WithContext(g)
}

// finish runs on the handler's goroutine when it returns or panics.
func (g *guard) finish(normal *bool) {
	// A form the handler parsed goes back to the request Deadline got, for
	// the layer that passed it (MaxBytes, net/http) to remove its files.
	reqstate.KeepForm(g.orig, &g.req)
	g.stopTimer()
	g.mu.Lock()
	hijacked := g.state == stateHijacked
	g.state = stateDone
	wrote := g.wrote
	g.mu.Unlock()
	g.cancelCtx(context.Canceled)
	if !*normal {
		if wrote {
			// The 503 went out complete; a handler that then aborts
			// (httperr.HandlerFunc does, finding the response committed)
			// changes nothing. Any other panic goes on.
			if v := recover(); v != nil && v != http.ErrAbortHandler {
				panic(v)
			}
		} else if !hijacked && !g.timedOut.Load() {
			// The panic goes on to a recoverer, whose error page gets a
			// write deadline too: this request set none if it wrote
			// nothing (net/http clears the connection's after each
			// request).
			g.finalWriteDeadline()
		}
		return
	}
	if hijacked {
		return
	}
	timedOut := g.timedOut.Load()
	if timedOut && !wrote {
		// The response was cut at the deadline: abort it rather than let
		// net/http finish it as if it were complete.
		panic(http.ErrAbortHandler)
	}
	if timedOut {
		return
	}
	if !g.committed && g.h != nil {
		// Headers set without a write go out with net/http's implicit
		// 200.
		g.syncHeader()
	}
	g.finalWriteDeadline()
}

// syncHeader replaces the real headers with the handler's own (mu held,
// or the timer stopped).
func (g *guard) syncHeader() {
	if g.h == nil {
		return
	}
	real := g.w.Header()
	// Most entries are still the ones copied from real (the outer layers'
	// headers): looking them up is cheaper than storing them again.
	for k, v := range g.h {
		if rv, ok := real[k]; !ok || !sameValues(rv, v) {
			real[k] = v
		}
	}
	if len(real) != len(g.h) {
		// Every key of the handler's is in real now, so real has more
		// only if the handler deleted some: drop those.
		for k := range real {
			if _, ok := g.h[k]; !ok {
				delete(real, k)
			}
		}
	}
}

// sameValues reports whether a and b are the same slice (same array,
// same length): an entry the handler left as it was copied.
func sameValues(a, b []string) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// commit sends the status (200 unless WriteHeader chose one) if the
// deadline has not passed, and reports whether it did.
func (g *guard) commit(code int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state != stateRunning || g.timedOut.Load() {
		return false
	}
	g.syncHeader()
	g.h = nil
	g.w.WriteHeader(code)
	g.committed = true
	if !g.stream && !g.ownWriteDeadline.Load() {
		// After WriteHeader, which may pass through an enclosing
		// Deadline's commit: the innermost, earliest deadline is set
		// last. Nothing has reached the connection yet.
		g.tightenWriteDeadline(g.dl)
	}
	return true
}

// SetWriteDeadline sets the connection's write deadline, as
// [http.ResponseController] does; a deadline the handler chose is not
// replaced by the route's when the response is committed.
func (g *guard) SetWriteDeadline(t time.Time) error {
	g.ownWriteDeadline.Store(true)
	return g.rc().SetWriteDeadline(t)
}

// tightenWriteDeadline makes the connection's write deadline t at the
// latest. A deadline set in this request through the request state's
// writer (ConcurrencyLimit's hold, an enclosing Deadline's) that is
// already as early is kept: changing a connection's deadline is not free.
func (g *guard) tightenWriteDeadline(t time.Time) {
	if g.st == nil {
		_ = g.rc().SetWriteDeadline(t)
		return
	}
	if cur, ok := g.st.Writer().WriteDeadline(); ok && !cur.IsZero() && !cur.After(t) {
		return
	}
	_ = g.rc().SetWriteDeadline(t)
}

// writeDeadline returns the connection's write deadline as far as it is
// known: recorded by the shared state's writer, or, without one, set by
// this guard's commit.
func (g *guard) writeDeadline() (time.Time, bool) {
	if g.st != nil {
		return g.st.Writer().WriteDeadline()
	}
	if g.committed && !g.stream && !g.ownWriteDeadline.Load() {
		return g.dl, true
	}
	return time.Time{}, false
}

// finalWriteDeadline gives what net/http writes after the handler returns
// (the rest of the buffered response) at least WriteTimeout, whether the
// route deadline has passed or not (a Stream route's may have).
func (g *guard) finalWriteDeadline() {
	now := time.Now()
	if cur, ok := g.writeDeadline(); ok && !cur.IsZero() && cur.Sub(now) >= g.d.writeTimeout {
		return
	}
	_ = g.rc().SetWriteDeadline(now.Add(g.d.writeTimeout))
}

// Header implements [http.ResponseWriter]. Until the response is
// committed the handler gets a private copy of the headers, so that the
// 503 written at the deadline never races with it; afterwards it gets the
// server's map (so trailers work).
func (g *guard) Header() http.Header {
	if g.h != nil {
		return g.h
	}
	if g.committed {
		return g.w.Header()
	}
	g.mu.Lock()
	if g.state == stateRunning && !g.timedOut.Load() {
		g.h = privateHeader(g.w.Header())
	}
	g.mu.Unlock()
	if g.h == nil {
		g.h = make(http.Header) // past the deadline: a throwaway map
	}
	return g.h
}

// privateHeader returns a copy of h for the handler. maps.Clone copies a
// small map's table as it is, without hashing each key again. The value
// slices are shared: the values themselves are read-only, as everywhere in
// net/http, and an Add on the copy that finds spare capacity writes past
// the end of the real map's slice, where nobody reads. The timer cuts the
// capacity of the real map's values before it writes the 503 (see
// clipHeader), so that an Add on its side copies instead of writing into
// the array the handler may be appending to.
func privateHeader(h http.Header) http.Header {
	if p := maps.Clone(h); p != nil {
		return p
	}
	return make(http.Header)
}

// clipHeader cuts the capacity of every value in h to its length, so that
// an Add to h copies the value instead of writing into an array another
// map may share.
func clipHeader(h http.Header) {
	for k, v := range h {
		if cap(v) != len(v) {
			h[k] = v[:len(v):len(v)]
		}
	}
}

// WriteHeader implements [http.ResponseWriter]. After the deadline it does
// nothing.
func (g *guard) WriteHeader(code int) {
	if g.committed {
		if !g.timedOut.Load() {
			g.w.WriteHeader(code) // superfluous: net/http logs it
		}
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		// Informational responses (103 Early Hints) go out now, with the
		// headers set so far, and do not commit.
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.state == stateRunning && !g.timedOut.Load() {
			g.syncHeader()
			if !g.ownWriteDeadline.Load() {
				g.tightenWriteDeadline(g.dl) // net/http writes it at once
			}
			g.w.WriteHeader(code)
		}
		return
	}
	g.commit(code)
}

// ready reports whether a write may go to the connection, committing the
// response first if needed.
func (g *guard) ready() bool {
	if !g.committed {
		if !g.commit(http.StatusOK) {
			return false
		}
	} else if g.timedOut.Load() {
		return false
	}
	if g.stream {
		_ = g.rc().SetWriteDeadline(time.Now().Add(g.d.writeTimeout))
	}
	return true
}

// Write implements [http.ResponseWriter]. After the deadline it returns an
// error matching [ErrTimeout] and writes nothing.
func (g *guard) Write(p []byte) (int, error) {
	if !g.ready() {
		return 0, errLateWrite
	}
	return g.w.Write(p)
}

// WriteString implements [io.StringWriter].
func (g *guard) WriteString(s string) (int, error) {
	if !g.ready() {
		return 0, errLateWrite
	}
	return io.WriteString(g.w, s)
}

// ReadFrom implements [io.ReaderFrom], keeping net/http's sendfile path.
func (g *guard) ReadFrom(src io.Reader) (int64, error) {
	if !g.ready() {
		return 0, errLateWrite
	}
	if rf, ok := g.w.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(writerOnly{g.w}, src)
}

type writerOnly struct{ io.Writer }

// Flush implements [http.Flusher].
func (g *guard) Flush() { _ = g.FlushError() }

// FlushError flushes, as [http.ResponseController] expects; after the
// deadline it returns an error matching [ErrTimeout].
func (g *guard) FlushError() error {
	if !g.ready() {
		return errLateWrite
	}
	return g.rc().Flush()
}

// Hijack implements [http.Hijacker]. A hijacked connection leaves the
// deadline's care (net/http clears its deadlines); after the deadline
// Hijack fails.
func (g *guard) Hijack() (c net.Conn, brw *bufio.ReadWriter, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state != stateRunning || g.timedOut.Load() {
		return nil, nil, errLateWrite
	}
	c, brw, err = g.rc().Hijack()
	if err == nil {
		g.state = stateHijacked
		g.hijacked.Store(true)
	}
	return c, brw, err
}

// Unwrap returns the wrapped writer, for [http.ResponseController]
// (deadlines, full duplex).
func (g *guard) Unwrap() http.ResponseWriter { return g.w }

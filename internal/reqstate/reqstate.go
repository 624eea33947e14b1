// Package reqstate holds the per-request state that stormcellar's packages
// share: the request id, the error-page configuration installed by
// httperr.Install, and a response writer that records whether the response
// has been committed or hijacked.
//
// The state is created once per request by whichever stormcellar middleware
// runs first ([Ensure]); every later one reuses it, so the cost (one
// allocation: the state, which is also the request's context and holds the
// request copy that carries it) is paid once however many packages are
// stacked.
package reqstate

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"
	"unsafe"
)

// State is the per-request state. It is created by [Ensure] and found again
// with [From].
//
// A State is a [context.Context]: it wraps the request's context and adds
// itself as a value, which saves the allocation of a separate value
// context.
type State struct {
	context.Context

	// ID is the request id, set by the request-id middleware or lazily by
	// the first error written. Only the goroutine serving the request
	// reads and writes it.
	ID string
	// Errors is the httperr configuration for this request, or nil for
	// its defaults.
	Errors *Errors
	// Nonce is the CSP nonce of this response, set by
	// middleware.SecureHeaders and read by safetmpl; "" when none.
	Nonce string
	// XSRFToken, set by the XSRF middleware of package cookiesecret,
	// returns a freshly masked token for a form or header; nil when the
	// middleware is not installed on this route.
	XSRFToken func() string

	w Writer

	// req is the copy of the request that carries the state as its
	// context, stored here to save an allocation.
	req http.Request

	// cspHdr holds the Content-Security-Policy header value of this
	// response (see CSPHeader).
	cspHdr [1]string

	// Storage for a generated id and the one-element header value that
	// carries it, so that generating one allocates nothing.
	idHdr [1]string
	idHex [16]byte

	// The TCP peer, parsed once from the request's RemoteAddr when the
	// state is created (see Peer); hasPeer is false when it did not
	// parse. Never changed afterwards.
	peer    [16]byte
	hasPeer bool
}

// Errors holds httperr's configuration (an unexported type of package
// httperr), created once per httperr.Install: the state keeps a pointer to
// it, smaller than an interface.
type Errors struct{ Config any }

type ctxKey struct{}

// Value implements [context.Context].
func (s *State) Value(key any) any {
	if key == (ctxKey{}) {
		return s
	}
	return s.Context.Value(key)
}

// From returns the state stored in ctx, or nil.
func From(ctx context.Context) *State {
	if st, ok := ctx.(*State); ok {
		return st
	}
	st, _ := ctx.Value(ctxKey{}).(*State)
	return st
}

// Ensure returns the request's state, creating it when the request has
// none. When it creates the state it also wraps w in the state's tracking
// [Writer] and returns the writer and request to pass on; otherwise it
// returns w and r unchanged.
func Ensure(w http.ResponseWriter, r *http.Request) (*State, http.ResponseWriter, *http.Request) {
	if st := From(r.Context()); st != nil {
		return st, w, r
	}
	st := &State{Context: r.Context()}
	st.w.rw = w
	if a, ok := ConnPeer(r.Context()); ok {
		st.peer, st.hasPeer = a.As16(), true
	} else if a, ok := ParsePeer(r.RemoteAddr); ok {
		st.peer, st.hasPeer = a.As16(), true
	}
	// WithContext is inlined, so its copy stays on the stack and is
	// copied into the state: one allocation for both.
	st.req = *r.WithContext(st)
	return st, &st.w, &st.req
}

// KeepForm hands a multipart form parsed into cp, a copy of orig made by
// a layer that passed cp on (Ensure's, a Deadline's), back to orig, for
// the layer outside (net/http, MaxBytes) to remove its temporary files
// when the request ends: they only look at the request value they passed
// on. A form of cp's that orig cannot take (orig has another one) is
// removed now. Call it, deferred, after the handler that got cp returns;
// a layer whose Ensure returned the request it was given has nothing to
// hand back.
func KeepForm(orig, cp *http.Request) {
	if cp != orig && cp.MultipartForm != nil { // inlined: nearly every request stops here
		keepForm(orig, cp)
	}
}

// keepForm is KeepForm's rare case, kept out of line so that KeepForm
// inlines.
//
//go:noinline
func keepForm(orig, cp *http.Request) {
	if cp.MultipartForm == orig.MultipartForm {
		return
	}
	if orig.MultipartForm == nil {
		orig.MultipartForm = cp.MultipartForm
		return
	}
	_ = cp.MultipartForm.RemoveAll()
}

// Peer returns the TCP peer address: the connection's, if the server
// recorded it ([WithConnPeer]), else the one [ParsePeer] parsed from the
// request's RemoteAddr when the state was created; false when it did not
// parse. A layer that rewrites RemoteAddr afterwards (chi's RealIP,
// gorilla's ProxyHeaders, from headers the client chose) changes nothing
// here: trust decisions and per-client limits stay on the connection's
// address. Several layers look at the peer of every request; this parses
// it once. It may be called from any goroutine.
func (s *State) Peer() (netip.Addr, bool) {
	if !s.hasPeer {
		return netip.Addr{}, false
	}
	return netip.AddrFrom16(s.peer).Unmap(), true
}

type connPeerKey struct{}

// WithConnPeer returns ctx carrying the address of a connection's peer,
// taken from the connection itself (http.Server.ConnContext): the state
// then takes its peer from there, not from RemoteAddr, which a middleware
// running before the first stormcellar layer may have rewritten from
// request headers.
func WithConnPeer(ctx context.Context, a netip.Addr) context.Context {
	return context.WithValue(ctx, connPeerKey{}, a)
}

// ConnPeer returns the peer address WithConnPeer stored in ctx.
func ConnPeer(ctx context.Context) (netip.Addr, bool) {
	a, ok := ctx.Value(connPeerKey{}).(netip.Addr)
	return a, ok && a.IsValid()
}

// ParsePeer parses a RemoteAddr: host:port, or an address alone. The
// address is unmapped (an IPv4-mapped IPv6 address becomes IPv4) and has
// no zone; false when remoteAddr holds no IP address.
func ParsePeer(remoteAddr string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(remoteAddr); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

// CSPHeader returns a header value holding policy. The first one of a
// request is stored in the state, so that setting it allocates nothing;
// it has capacity 1, so an append by anyone else copies it. A later one
// (a second SecureHeaders on the route) gets a slice of its own: the
// first may already be in a header map, or in the copy a Deadline's timer
// reads, and must never change.
func (s *State) CSPHeader(policy string) []string {
	if s.cspHdr[0] != "" {
		return []string{policy}
	}
	s.cspHdr[0] = policy
	return s.cspHdr[:1:1]
}

// Writer returns the tracking writer created with the state.
func (s *State) Writer() *Writer { return &s.w }

// RequestID returns the request id, generating and storing one if none is
// set yet.
func (s *State) RequestID() string {
	if s.ID == "" {
		s.GenerateID()
	}
	return s.ID
}

// GenerateID sets ID to a new id (see [NewID]) and returns a header value
// holding it. The id and the value live in the state, so this allocates
// nothing; the value has capacity 1, so an append by anyone else copies it.
func (s *State) GenerateID() []string {
	fillID(&s.idHex)
	// The bytes are never written again, so viewing them as a string is
	// sound; it saves the copy (and the allocation) of string(s.idHex[:]).
	s.ID = unsafe.String(&s.idHex[0], len(s.idHex))
	s.idHdr[0] = s.ID
	return s.idHdr[:1:1]
}

// NewID returns a new random request id of 16 lowercase hex digits.
//
// Request ids label log records; they are not secrets and do not need a
// cryptographic generator. math/rand/v2's top-level generator is seeded
// from the operating system and costs a few nanoseconds.
func NewID() string {
	var b [16]byte
	fillID(&b)
	return string(b[:])
}

func fillID(b *[16]byte) {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], rand.Uint64())
	hex.Encode(b[:], v[:])
}

const (
	flagCommitted = 1 << iota
	flagHijacked
)

// Writer wraps the server's [http.ResponseWriter] and records whether the
// status line has been sent and whether the connection was hijacked. Its
// state may be read from any goroutine.
//
// It implements [http.Flusher], [http.Hijacker], [io.ReaderFrom] and
// [io.StringWriter] by forwarding to the wrapped writer (through
// [http.ResponseController], which follows Unwrap chains), and Unwrap so
// that [http.ResponseController] reaches deadlines and full duplex.
type Writer struct {
	rw     http.ResponseWriter
	flags  atomic.Uint32
	status atomic.Int32
	// wdl is the write deadline last set through this writer, as Unix
	// nanoseconds; 0 when none was (or setting it failed), noDeadline for
	// the zero time.
	wdl atomic.Int64
}

const noDeadline = math.MaxInt64

// SetWriteDeadline sets the connection's write deadline, as
// [http.ResponseController] does, and records it for [Writer.WriteDeadline].
func (w *Writer) SetWriteDeadline(t time.Time) error {
	err := http.NewResponseController(w.rw).SetWriteDeadline(t)
	switch v := t.UnixNano(); {
	case err != nil:
		w.wdl.Store(0)
	case t.IsZero():
		w.wdl.Store(noDeadline)
	case v == 0:
		// 0 means "none recorded": the Unix epoch (an "abort now"
		// idiom) is recorded a nanosecond later, as much in the past.
		w.wdl.Store(1)
	case v == noDeadline:
		w.wdl.Store(noDeadline - 1) // the year 2262
	default:
		w.wdl.Store(v)
	}
	return err
}

// WriteDeadline returns the write deadline last set through w in this
// request (the zero time for none), and false if none was set through it:
// the connection may then still have one from before this request, or
// from an outer handler.
func (w *Writer) WriteDeadline() (time.Time, bool) {
	switch v := w.wdl.Load(); v {
	case 0:
		return time.Time{}, false
	case noDeadline:
		return time.Time{}, true
	default:
		return time.Unix(0, v), true
	}
}

// Committed reports whether the status line has been sent (or the
// connection hijacked): after that, a different status cannot be sent.
func (w *Writer) Committed() bool { return w.flags.Load() != 0 }

// Hijacked reports whether the connection was taken over by the handler.
func (w *Writer) Hijacked() bool { return w.flags.Load()&flagHijacked != 0 }

// Status returns the status sent, or 0 if none was.
func (w *Writer) Status() int { return int(w.status.Load()) }

// commit records that the status line went out, and reports whether this
// call was the one that committed the response.
func (w *Writer) commit(code int) bool {
	if w.flags.Load()&flagCommitted == 0 {
		w.status.CompareAndSwap(0, int32(code))
		return w.flags.Or(flagCommitted)&flagCommitted == 0
	}
	return false
}

// Header implements [http.ResponseWriter].
func (w *Writer) Header() http.Header { return w.rw.Header() }

// WriteHeader implements [http.ResponseWriter]. Informational statuses
// (1xx other than 101) do not commit the response.
func (w *Writer) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		w.commit(code)
	}
	w.rw.WriteHeader(code)
}

// Write implements [http.ResponseWriter].
func (w *Writer) Write(p []byte) (int, error) {
	w.commit(http.StatusOK)
	return w.rw.Write(p)
}

// WriteString implements [io.StringWriter].
func (w *Writer) WriteString(s string) (int, error) {
	w.commit(http.StatusOK)
	return io.WriteString(w.rw, s)
}

// ReadFrom implements [io.ReaderFrom], so that the server's sendfile path
// is kept.
func (w *Writer) ReadFrom(src io.Reader) (int64, error) {
	w.commit(http.StatusOK)
	return io.Copy(w.rw, src)
}

// Flush implements [http.Flusher]; it does nothing if the wrapped writer
// cannot flush.
func (w *Writer) Flush() { _ = w.FlushError() }

// FlushError flushes and reports the error, as [http.ResponseController]
// expects.
//
// A writer that cannot flush sends nothing, so the response stays
// uncommitted.
func (w *Writer) FlushError() error {
	first := w.commit(http.StatusOK)
	err := http.NewResponseController(w.rw).Flush()
	if first && errors.Is(err, http.ErrNotSupported) {
		w.flags.And(^uint32(flagCommitted))
		w.status.Store(0)
	}
	return err
}

// Hijack implements [http.Hijacker].
func (w *Writer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.rw).Hijack()
	if err == nil {
		w.flags.Or(flagHijacked | flagCommitted)
	}
	return c, brw, err
}

// Unwrap returns the wrapped writer, for [http.ResponseController].
func (w *Writer) Unwrap() http.ResponseWriter { return w.rw }

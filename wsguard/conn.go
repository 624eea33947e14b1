package wsguard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"
)

// Conn is a WebSocket connection accepted by a [Guard]. Its methods may
// be called concurrently, except that only one goroutine may read at a
// time (as with coder/websocket).
type Conn struct {
	g      *Guard
	ws     *websocket.Conn
	raw    net.Conn
	sub    string
	client netip.Addr
	group  netip.Prefix
	lim    *rate.Limiter
	beat   *time.Timer
	last   atomic.Int64 // g.now() of the last frame received
	ctx    context.Context
	cancel context.CancelCauseFunc

	wmu       sync.Mutex // serialises Write, see there
	closing   atomic.Bool
	pingFlood atomic.Bool // a ping or pong flood is being closed
	cause     atomic.Pointer[error]
	released  atomic.Bool
	done      chan struct{}
}

func (g *Guard) now() int64 { return int64(time.Since(g.epoch)) }

func (c *Conn) touch() { c.last.Store(c.g.now()) }

// Context returns a context that is canceled once the connection is
// finished; context.Cause then tells why (a [websocket.CloseError] for the
// close code the guard sent, an error wrapping one of this package's
// sentinels, or the transport error).
func (c *Conn) Context() context.Context { return c.ctx }

// Client returns the client address the connection was counted under
// (see Options.MaxConnsPerClient); the zero Addr means unknown.
func (c *Conn) Client() netip.Addr { return c.client }

// Subprotocol returns the negotiated subprotocol.
func (c *Conn) Subprotocol() string { return c.sub }

func (c *Conn) onPing(context.Context, []byte) bool {
	c.touch()
	if c.closing.Load() {
		return false
	}
	if !c.lim.Allow() {
		c.controlFlood()
		return false
	}
	return true
}

// onPong counts pongs against the rate as well: RFC 6455 allows unsolicited
// pongs, so without this a peer could stream them (each costs the reader a
// timer) without limit while keeping the connection alive.
func (c *Conn) onPong(context.Context, []byte) {
	c.touch()
	if !c.closing.Load() && !c.lim.Allow() {
		c.controlFlood()
	}
}

// controlFlood closes the connection with 1008, once, from another
// goroutine: the control-frame callbacks run inside the reader, which the
// close handshake needs.
func (c *Conn) controlFlood() {
	if c.pingFlood.CompareAndSwap(false, true) {
		go c.violate(websocket.StatusPolicyViolation, "message rate exceeded", ErrRateLimited)
	}
}

// Read reads one message of at most Options.MaxMessageBytes. A message
// over the size limit closes the connection with 1009 and returns an error
// wrapping [websocket.ErrMessageTooBig]; a message over the rate limit
// closes it with 1008 and returns [ErrRateLimited]. Any error means the
// connection is finished.
func (c *Conn) Read(ctx context.Context) (websocket.MessageType, []byte, error) {
	typ, p, err := c.ws.Read(ctx)
	if err != nil {
		return 0, nil, c.readFailed(err)
	}
	c.touch()
	if !c.lim.Allow() {
		return 0, nil, c.violate(websocket.StatusPolicyViolation, "message rate exceeded", ErrRateLimited)
	}
	return typ, p, nil
}

// Validator is implemented by message types that check their own content
// after decoding; see [Conn.ReadJSON].
type Validator interface {
	Validate() error
}

// ReadJSON reads one message and decodes it strictly into v with
// [DecodeJSON]: a text message holding exactly one JSON value, no unknown
// fields, no trailing data, then v's Validate method if it has one. On bad
// input it closes the connection and returns an error: a binary message
// gets 1003 (unsupported data) and [ErrBadMessage], malformed JSON 1007
// (invalid payload) and [ErrBadMessage], a refusal by Validate 1008
// (policy violation) and [ErrInvalid]. The close reason never quotes the
// message.
func (c *Conn) ReadJSON(ctx context.Context, v any) error {
	typ, p, err := c.Read(ctx)
	if err != nil {
		return err
	}
	if typ != websocket.MessageText {
		return c.violate(websocket.StatusUnsupportedData, "JSON messages must be text", ErrBadMessage)
	}
	if err := DecodeJSON(p, v); err != nil {
		if errors.Is(err, ErrInvalid) {
			return c.violate(websocket.StatusPolicyViolation, "invalid message", err)
		}
		return c.violate(websocket.StatusInvalidFramePayloadData, "malformed JSON message", err)
	}
	return nil
}

// DecodeJSON decodes data into v strictly: valid UTF-8, exactly one JSON
// value that is not null, no fields v does not declare, nothing but
// white space after it; then, if v (or what it points to) implements
// [Validator], its Validate method. Errors wrap [ErrBadMessage] or, for
// Validate, [ErrInvalid]. Matching of field names is case-insensitive, as
// everywhere in encoding/json; a message can therefore not smuggle a
// second spelling of a field past Validate, because both land in the same
// field. Size is bounded by the caller (Options.MaxMessageBytes for
// [Conn.ReadJSON]).
func DecodeJSON(data []byte, v any) error {
	if !utf8.Valid(data) {
		return fmt.Errorf("%w: invalid UTF-8", ErrBadMessage)
	}
	if t := bytes.TrimSpace(data); len(t) == 0 || string(t) == "null" {
		return fmt.Errorf("%w: empty or null message", ErrBadMessage)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: data after the JSON value", ErrBadMessage)
	}
	if val, ok := v.(Validator); ok {
		if err := val.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	return nil
}

// Write writes one message, bounded by Options.WriteTimeout (or ctx, if it
// ends sooner). A write that times out cuts the connection and returns
// [ErrWriteTimeout]: a peer that does not read cannot hold the writer.
func (c *Conn) Write(ctx context.Context, typ websocket.MessageType, p []byte) error {
	// The bound is a deadline on the TCP connection rather than a context
	// timeout: the same guarantee without a timer and a context per
	// message. coder/websocket sets no deadlines of its own; writes are
	// serialised so that one write's deadline is never cleared under
	// another's.
	c.wmu.Lock()
	_ = c.raw.SetWriteDeadline(time.Now().Add(c.g.write))
	err := c.ws.Write(ctx, typ, p)
	_ = c.raw.SetWriteDeadline(time.Time{})
	c.wmu.Unlock()
	if err != nil {
		return c.writeFailed(ctx, err)
	}
	return nil
}

// WriteJSON encodes v with encoding/json (which escapes <, > and & so the
// text stays inert if a client ever places it in HTML) and writes it as a
// text message with [Conn.Write].
func (c *Conn) WriteJSON(ctx context.Context, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("wsguard: encode message: %w", err)
	}
	return c.Write(ctx, websocket.MessageText, b)
}

// CloseRead starts reading in the background for a connection that only
// writes (see websocket.Conn.CloseRead): pongs and close frames are still
// processed, so the heartbeat works, and a data message from the peer
// closes the connection with 1008. The returned context is canceled when
// the connection closes.
func (c *Conn) CloseRead(ctx context.Context) context.Context {
	rctx := c.ws.CloseRead(ctx)
	context.AfterFunc(rctx, func() { c.end(net.ErrClosed) })
	return rctx
}

// Close closes the connection with a close handshake, bounded by
// Options.WriteTimeout, after which the TCP connection is closed anyway.
func (c *Conn) Close(code websocket.StatusCode, reason string) error {
	return c.shut(code, reason, nil)
}

// CloseNow closes the connection without a close handshake.
func (c *Conn) CloseNow() error {
	c.end(net.ErrClosed)
	return nil
}

// heartbeat runs on the guard's timer: it cuts an idle connection or pings
// it and schedules the next beat.
func (c *Conn) heartbeat() {
	if c.closing.Load() {
		return
	}
	idle := time.Duration(c.g.now() - c.last.Load())
	if idle >= c.g.idle {
		c.violate(websocket.StatusGoingAway, "idle timeout", ErrIdle)
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.g.idle-idle)
	err := c.ws.Ping(ctx)
	cancel()
	switch {
	case c.closing.Load():
		return
	case err != nil && errors.Is(err, context.DeadlineExceeded):
		c.violate(websocket.StatusGoingAway, "idle timeout", ErrIdle)
		return
	case err != nil:
		c.end(err)
		return
	}
	c.beat.Reset(c.g.ping)
}

// violate logs a policy closure, closes with code and returns the error
// for the caller.
func (c *Conn) violate(code websocket.StatusCode, reason string, err error) error {
	if c.closing.Load() {
		return c.finishedErr()
	}
	level := slog.LevelWarn
	if errors.Is(err, ErrIdle) {
		level = slog.LevelInfo
	}
	c.g.logger.LogAttrs(context.Background(), level, "websocket closed",
		slog.String("client", c.client.String()), slog.Int("code", int(code)),
		slog.String("reason", reason), slog.Any("err", err))
	grace := c.g.write
	if errors.Is(err, ErrIdle) {
		// The peer has shown it does not answer: send the close frame
		// but do not wait long for a reply that will not come.
		grace = min(grace, idleCloseGrace)
	}
	c.shutWithin(grace, code, reason, err)
	return c.finishedErr()
}

// idleCloseGrace is how long an idle connection's close frame has before
// the TCP connection is closed.
const idleCloseGrace = time.Second

// shut closes with a handshake bounded by WriteTimeout, once; a second
// caller waits for the first to finish.
func (c *Conn) shut(code websocket.StatusCode, reason string, cause error) error {
	return c.shutWithin(c.g.write, code, reason, cause)
}

func (c *Conn) shutWithin(grace time.Duration, code websocket.StatusCode, reason string, cause error) error {
	if !c.closing.CompareAndSwap(false, true) {
		<-c.done
		return nil
	}
	if cause == nil {
		cause = websocket.CloseError{Code: code, Reason: reason}
	} else {
		cause = fmt.Errorf("%w (%w)", cause, websocket.CloseError{Code: code, Reason: reason})
	}
	c.cause.Store(&cause)
	force := time.AfterFunc(grace, c.cut)
	err := c.ws.Close(code, reason)
	force.Stop()
	c.release()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// end finishes the connection without a handshake.
func (c *Conn) end(cause error) {
	if !c.closing.CompareAndSwap(false, true) {
		<-c.done
		return
	}
	c.cause.Store(&cause)
	c.ws.CloseNow()
	c.release()
}

// cut closes the TCP connection under coder/websocket, unblocking any
// close handshake, read or write in progress.
func (c *Conn) cut() {
	if c.raw != nil {
		c.raw.Close()
	}
}

func (c *Conn) release() {
	if !c.released.CompareAndSwap(false, true) {
		return
	}
	if c.beat != nil {
		c.beat.Stop()
	}
	c.g.remove(c)
	c.cancel(*c.cause.Load())
	close(c.done)
}

// finishedErr waits for the connection to be released and returns why it
// ended.
func (c *Conn) finishedErr() error {
	<-c.done
	return fmt.Errorf("wsguard: connection closed: %w", context.Cause(c.ctx))
}

func (c *Conn) readFailed(err error) error {
	switch {
	case c.closing.Load():
		return c.finishedErr()
	case errors.Is(err, websocket.ErrMessageTooBig):
		// coder/websocket has sent 1009; the handshake drains the rest.
		return c.violate(websocket.StatusMessageTooBig, "message too big", err)
	}
	c.end(err)
	return err
}

func (c *Conn) writeFailed(ctx context.Context, err error) error {
	switch {
	case c.closing.Load():
		return c.finishedErr()
	case ctx.Err() == nil && errors.Is(err, os.ErrDeadlineExceeded):
		// Our deadline, not the caller's: the peer is not reading. The
		// frame is cut in half, so no close frame can follow: log and cut.
		c.g.logger.LogAttrs(context.Background(), slog.LevelWarn, "websocket closed",
			slog.String("client", c.client.String()), slog.Int("code", int(websocket.StatusPolicyViolation)),
			slog.String("reason", "write timeout"), slog.Any("err", ErrWriteTimeout))
		c.end(fmt.Errorf("%w (%w)", ErrWriteTimeout, websocket.CloseError{Code: websocket.StatusPolicyViolation, Reason: "write timeout"}))
		return c.finishedErr()
	}
	c.end(err)
	return err
}

package timeouts

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/stormcellar/stormcellar/httperr"
	"github.com/stormcellar/stormcellar/internal/reqstate"
)

// BodyRateOptions configure [BodyRate]. The zero value is the safe
// setting.
type BodyRateOptions struct {
	// MinRate is the slowest a request body may arrive, in bytes per
	// second, measured over each Window: in every Window from the first
	// one, MinRate×Window bytes (or the rest of the body, if less) must
	// arrive, or the read fails. Default 1024 bytes/s.
	MinRate int
	// Window is the span the rate is measured over; it is also how long
	// the first bytes may take. Default 10 s.
	Window time.Duration
}

// rateConfig is a validated BodyRateOptions.
type rateConfig struct {
	rate   int
	window time.Duration
}

// BodyRate returns middleware that enforces a minimum arrival rate on the
// request body, against slow POST: a client that sends its body a byte at
// a time cannot hold a handler (or, for a handler that never reads the
// body, net/http's discard of it) for longer than about one Window.
//
// The limit is a read deadline on the connection, moved forward through
// [http.ResponseController] as each window's quota arrives; no goroutine
// or timer is added. When it passes, the read returns an error matching
// [ErrBodyTooSlow] that [httperr.Write] answers 408 with Connection:
// close; if the handler swallowed the error and wrote nothing, BodyRate
// writes that 408 itself when the handler returns.
//
// A [Server] applies it to every request already; use BodyRate on a route
// to set a different rate there (the innermost setting wins, stricter or
// more lenient, even with other body wrappers such as MaxBytes's in
// between: there is one reader of the connection per request). Requests
// without a body pass untouched. Once the body has been read to its end
// the read deadline is cleared, so a handler may take its time afterwards.
// Negative values are treated as the defaults.
func BodyRate(opts BodyRateOptions) func(http.Handler) http.Handler {
	cfg := rateConfig{rate: opts.MinRate, window: opts.Window}
	if cfg.rate <= 0 {
		cfg.rate = DefaultMinBodyRate
	}
	if cfg.window <= 0 {
		cfg.window = DefaultBodyRateWindow
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !hasBody(r) {
				next.ServeHTTP(w, r)
				return
			}
			serveRate(next, w, r, cfg)
		})
	}
}

func hasBody(r *http.Request) bool {
	return r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody
}

func serveRate(next http.Handler, w http.ResponseWriter, r *http.Request, cfg rateConfig) {
	rr, ok := r.Body.(*rateReader)
	if !ok {
		// Another wrapper (MaxBytes's, say) may sit between the body and
		// an outer BodyRate's reader: the context finds that reader, if
		// it reads this request's body (not that of a request whose
		// context this one was made from, served into another writer).
		rr, _ = r.Context().Value(rateKey{}).(*rateReader)
		if rr != nil && !rr.serves(w) {
			rr = nil
		}
	}
	if rr != nil {
		// An outer BodyRate (or the Server) already reads the body from
		// the connection: this route's setting replaces its own. A second
		// reader would not do: both would move the one read deadline of
		// the connection, and the more lenient one would win.
		rr.configure(cfg, time.Now())
		next.ServeHTTP(w, r)
		return
	}
	orig := r
	st, w, r := reqstate.Ensure(w, r)
	rr = &rateReader{Context: r.Context(), body: r.Body, deadline: http.NewResponseController(w),
		root: st.Writer(), h1: r.ProtoMajor < 2, waiting: expectsContinue(r)}
	rr.route, _ = r.Context().Value(deadlineKey{}).(*guard)
	rr.configure(cfg, time.Now())
	r = r.WithContext(rr)
	r.Body = rr
	defer reqstate.KeepForm(orig, r)
	next.ServeHTTP(w, r)
	if rr.err != nil && rr.err != errLateRead && !st.Writer().Committed() {
		// (After errLateRead a Deadline answered, into a writer this
		// state may not see.)
		httperr.Write(w, r, rr.err)
	}
}

// serves reports whether w writes the response of the request rr reads
// the body of: rr's state's writer is under w's wrappers.
func (rr *rateReader) serves(w http.ResponseWriter) bool {
	for w != nil {
		if w == http.ResponseWriter(rr.root) {
			return true
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return false
		}
		w = u.Unwrap()
	}
	return false
}

// AfterFunc implements the context package's hook, so that contexts made
// from the request's context under a BodyRate start no goroutine each:
// the parent's own AfterFunc (a Deadline's) when it has one.
func (rr *rateReader) AfterFunc(f func()) (stop func() bool) {
	if a, ok := rr.Context.(interface{ AfterFunc(func()) func() bool }); ok {
		return a.AfterFunc(f)
	}
	return context.AfterFunc(rr.Context, f)
}

// deadliner is the part of http.ResponseController (or a net.Conn) the
// reader needs.
type deadliner interface {
	SetReadDeadline(time.Time) error
}

// rateReader enforces the minimum rate with read deadlines. Like any
// request body it is read by one goroutine at a time. It is also the
// context of the request it reads for (its parent's, with a value that
// finds it: see serveRate).
type rateReader struct {
	context.Context

	body     io.ReadCloser
	deadline deadliner
	now      func() time.Time // time.Now; replaced in tests

	window time.Duration
	quota  int64     // bytes each window must bring
	got    int64     // bytes of the current window so far
	end    time.Time // the current window's end: the read deadline
	done   bool      // EOF seen, deadline cleared
	err    error     // the error returned once the rate was missed

	// waiting is set for a request with Expect: 100-continue: its client
	// sends no body before the first Read (net/http answers 100 then), so
	// the first window starts there, not when the handler starts.
	waiting bool
	h1      bool // HTTP/1: the 408 closes the connection (on HTTP/2 it ends only the stream)

	// A Deadline whose deadline passed ends the reads: cut, when the
	// reader is outside it (set by its timer), or route.timedOut, when
	// the reader is inside it. Either way the reader stops moving the
	// read deadline forward.
	cut   atomic.Bool
	route *guard // the innermost Deadline outside the reader, if any

	root *reqstate.Writer // the state's writer of the request it reads for
}

func (rr *rateReader) clock() time.Time {
	if rr.now != nil {
		return rr.now()
	}
	return time.Now()
}

// configure starts a fresh first window under cfg.
func (rr *rateReader) configure(cfg rateConfig, now time.Time) {
	rr.quota = windowQuota(cfg.rate, cfg.window)
	rr.got = 0
	rr.end = now.Add(cfg.window)
	rr.window = cfg.window
	if !rr.done && rr.err == nil && !rr.waiting {
		rr.setDeadline(rr.end)
	}
}

// pastDeadline is a read deadline that has passed: reads fail at once.
var pastDeadline = time.Unix(1, 0)

// stopped reports whether a Deadline ended the reads (see guard.cutReads):
// one outside the reader marked it, or one of those it runs under (the
// innermost and every one around it: with nested Deadlines, the one whose
// deadline comes first times the request) timed out.
func (rr *rateReader) stopped() bool {
	if rr.cut.Load() {
		return true
	}
	for g := rr.route; g != nil; g, _ = g.parent.Value(deadlineKey{}).(*guard) {
		if g.timedOut.Load() {
			return true
		}
	}
	return false
}

// setDeadline sets the connection's read deadline to t, unless a Deadline
// ended the reads. The check comes after the set: a Deadline marks the
// reader before it sets its own past deadline, so whichever runs last, the
// past deadline stays.
func (rr *rateReader) setDeadline(t time.Time) {
	_ = rr.deadline.SetReadDeadline(t)
	if rr.stopped() {
		_ = rr.deadline.SetReadDeadline(pastDeadline)
	}
}

// windowQuota is rate×window in bytes, at least 1.
func windowQuota(rate int, window time.Duration) int64 {
	q := int64(float64(rate) * window.Seconds())
	if q < 1 {
		q = 1
	}
	return q
}

func (rr *rateReader) Read(p []byte) (int, error) {
	if rr.err != nil {
		return 0, rr.err
	}
	if rr.waiting {
		rr.waiting = false
		rr.end = rr.clock().Add(rr.window)
		rr.setDeadline(rr.end)
	}
	n, err := rr.body.Read(p)
	if n > 0 && !rr.done {
		rr.got += int64(n)
		if rr.got >= rr.quota {
			// This window's quota is in: the next window ends one
			// Window after this one, however early the quota came.
			rr.got = 0
			now := rr.clock()
			if rr.end.Before(now) {
				rr.end = now
			}
			rr.end = rr.end.Add(rr.window)
			rr.setDeadline(rr.end)
		}
	}
	switch {
	case err == nil:
	case err == io.EOF:
		if !rr.done {
			rr.done = true
			rr.setDeadline(time.Time{})
		}
	case isTimeout(err):
		if rr.stopped() {
			// The route's deadline ended the read, not the client's rate:
			// the client had its 503 (or its response was cut).
			rr.err = errLateRead
			return n, rr.err
		}
		e := &httperr.HTTPError{
			Status: http.StatusRequestTimeout,
			Kind:   httperr.KindTimeout,
			Err:    ErrBodyTooSlow,
		}
		if rr.h1 {
			e.Header = http.Header{"Connection": {"close"}}
		}
		rr.err = e
		return n, rr.err
	}
	return n, err
}

func (rr *rateReader) Close() error { return rr.body.Close() }

// expectsContinue reports whether r's client waits for 100 Continue before
// it sends the body (net/http sends it at the first read of the body, on
// HTTP/1.1 and HTTP/2): an Expect header listing the 100-continue token.
func expectsContinue(r *http.Request) bool {
	if r.ProtoMajor < 1 || (r.ProtoMajor == 1 && r.ProtoMinor < 1) {
		return false
	}
	for _, v := range r.Header["Expect"] {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.Trim(tok, " \t"), "100-continue") {
				return true
			}
		}
	}
	return false
}

// rateKey is the context key under which a rateReader finds itself.
type rateKey struct{}

// Value implements [context.Context].
func (rr *rateReader) Value(key any) any {
	if key == (rateKey{}) {
		return rr
	}
	return rr.Context.Value(key)
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

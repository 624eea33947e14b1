package middleware

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math"
	"math/bits"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/go-chi/httprate"

	"github.com/stormcellar/stormcellar/httperr"
	"github.com/stormcellar/stormcellar/internal/clientip"
)

// ErrRateLimited is the logged cause of a 429 sent by [RateLimit].
var ErrRateLimited = errors.New("middleware: rate limit exceeded")

// ErrRateLimitStore wraps the error of a [RateLimitOptions.Store]: the
// logged cause of the 503 sent when the store fails (fail-closed), or of the
// warning logged when [RateLimitOptions.InsecureFailOpen] lets the request
// through.
var ErrRateLimitStore = errors.New("middleware: rate limit store failed")

// ErrLimitOptions is wrapped by the errors of [NewRateLimit],
// [NewConcurrencyLimit] and [NewLoadShed] for an invalid option.
var ErrLimitOptions = errors.New("middleware: invalid limiter option")

// Defaults of [RateLimitOptions].
const (
	defaultRateLimit        = 100
	defaultRateWindow       = time.Minute
	defaultRateMaxKeys      = 1 << 20
	maxRateLimit            = math.MaxInt32
	rateStoreRetryAfter     = time.Second
	rateFailOpenLogInterval = 10 * time.Second
)

// RateLimitOptions configure [NewRateLimit]. The zero value is valid: 100
// requests a minute for each client address (IPv4 address or IPv6 /64),
// counted in a bounded in-memory store, shared by every route the limiter
// guards, failing closed.
type RateLimitOptions struct {
	// Limit is how many requests one client may make in any Window (a
	// sliding window: the previous window's count weighs in proportion to
	// how much of it still overlaps). If zero, 100. Negative, or over
	// 2^31-1, is an error.
	Limit int
	// Window is the length of the window. If zero, one minute. Less than
	// one second is an error: Retry-After has one-second resolution.
	Window time.Duration

	// Key, if set, returns the identity to count a request under instead
	// of its client address: a user id or an API key, after
	// authentication. An empty string falls back to the client address.
	// Keys and addresses never share a counter. Key must not trust
	// request headers the client controls: it decides who is limited.
	// Keys are hashed before they reach a Store.
	Key func(r *http.Request) string
	// PerRoute counts each route separately: requests are counted under
	// their route pattern ([net/http.Request.Pattern], set by
	// [net/http.ServeMux] and chi once a route matched) as well as their
	// client. The patterns come from the routing table, so a client
	// cannot mint new counters by varying the path. If false (the
	// default), one count per client covers every route the limiter
	// guards. Before routing, Pattern is empty and PerRoute changes
	// nothing: install the limiter on the routes (or sub-router) to use it.
	PerRoute bool

	// Store holds the counters. Set it to share counts between replicas,
	// for example with github.com/go-chi/httprate-redis. It is called
	// with IncrementBy and then Get for every request (increment, then
	// check), so no concurrent burst, on this replica or another, is
	// admitted past Limit. It must enforce its own timeouts: a store call
	// that blocks, blocks the request. If nil, a sharded in-memory store
	// holding at most MaxKeys clients is used.
	Store httprate.LimitCounter
	// Scope is put in front of every key sent to Store, so that several
	// limiters (or applications) sharing one store keep separate counts.
	// Required when Store is set; ignored otherwise. NewRateLimit calls
	// the store's Config with Limit and Window, and an httprate
	// LimitCounter holds one window: limiters that share a store must use
	// the same Window, and must not be built concurrently.
	Scope string
	// MaxKeys caps how many clients the in-memory store tracks at once
	// (clients seen in the current or the previous window). When it is
	// full, a new client takes the slot of a client idle in the current
	// window; if none is found, new clients share one overflow count per
	// shard, with the same Limit, until the window turns (they are
	// limited together rather than not at all). Each tracked client costs
	// about 38 bytes of heap (measured: 36 MiB for a million clients), so
	// the store never holds more than 48 bytes times MaxKeys, plus about
	// 24 KiB for its shards whatever MaxKeys; the memory is given back as
	// windows turn over. If zero, 1<<20 (at most 48 MiB).
	// Negative is an error; ignored when Store is set.
	MaxKeys int

	// InsecureFailOpen lets requests through when Store fails, logging a
	// warning at most every 10 seconds. By default (false) a store failure
	// is answered 503 with Retry-After: 1 (fail closed): an attacker who
	// can make the store fail must not thereby lift the limit.
	InsecureFailOpen bool
	// HeadersOnSuccess adds RateLimit-Limit, RateLimit-Remaining,
	// RateLimit-Reset and RateLimit-Policy to responses that were let
	// through (three allocations a request). 429 responses always carry
	// them and Retry-After.
	HeadersOnSuccess bool
	// Logger receives the fail-open warnings. If nil, slog.Default().
	// Rejections are logged by httperr.
	Logger *slog.Logger
}

// RateLimit limits how many requests each client may make in a sliding
// window. Create it with [NewRateLimit]; it is safe for concurrent use.
//
// The client is the address chi's trusted-proxy resolver found
// (middleware.ClientIPFromXFF and the like, if the application installed
// one) or else the TCP peer, grouped by /64 for IPv6; or the identity
// returned by Key. Request headers are never read. Requests whose address
// is unknown (a resolver that failed closed) share one count.
//
// The count is the sliding-window approximation of go-chi/httprate: this
// window's requests plus the previous window's, weighted by how much of it
// still overlaps the last Window. Every request is counted before it is
// checked, rejected ones included, so concurrent requests cannot slip
// past the limit together and a client that ignores Retry-After stays
// limited. Retry-After is the exact time at which one more request would
// be admitted if the client stops sending meanwhile.
type RateLimit struct {
	limit    uint64
	window   time.Duration
	key      func(*http.Request) string
	perRoute bool
	failOpen bool
	headers  bool
	logger   *slog.Logger

	mem   *rlMemStore           // the default store, or nil
	store httprate.LimitCounter // an external store, or nil
	scope string

	limitStr  string // RateLimit-Limit
	policyStr string // RateLimit-Policy

	failures    atomic.Int64 // store failures since the last fail-open log
	lastFailLog atomic.Int64 // unix nanoseconds
}

// NewRateLimit returns a rate limiter configured by opts, or an error naming
// the first invalid option.
func NewRateLimit(opts RateLimitOptions) (*RateLimit, error) {
	if opts.Limit < 0 || opts.Limit > maxRateLimit {
		return nil, fmt.Errorf("%w: RateLimitOptions.Limit %d out of range [0, %d]", ErrLimitOptions, opts.Limit, maxRateLimit)
	}
	if opts.Window < 0 || (opts.Window > 0 && opts.Window < time.Second) {
		return nil, fmt.Errorf("%w: RateLimitOptions.Window %v: must be zero (one minute) or at least 1s", ErrLimitOptions, opts.Window)
	}
	if opts.MaxKeys < 0 {
		return nil, fmt.Errorf("%w: RateLimitOptions.MaxKeys %d is negative", ErrLimitOptions, opts.MaxKeys)
	}
	if opts.Store != nil && opts.Scope == "" {
		return nil, fmt.Errorf("%w: RateLimitOptions.Scope is required with a Store, so that limiters sharing it keep separate counts", ErrLimitOptions)
	}
	rl := &RateLimit{
		limit:    uint64(opts.Limit),
		window:   opts.Window,
		key:      opts.Key,
		perRoute: opts.PerRoute,
		failOpen: opts.InsecureFailOpen,
		headers:  opts.HeadersOnSuccess,
		logger:   opts.Logger,
		store:    opts.Store,
		scope:    opts.Scope,
	}
	if rl.limit == 0 {
		rl.limit = defaultRateLimit
	}
	if rl.window == 0 {
		rl.window = defaultRateWindow
	}
	if rl.logger == nil {
		rl.logger = slog.Default()
	}
	if rl.store == nil {
		maxKeys := opts.MaxKeys
		if maxKeys == 0 {
			maxKeys = defaultRateMaxKeys
		}
		rl.mem = newRLMemStore(maxKeys)
	} else {
		rl.store.Config(int(rl.limit), rl.window)
	}
	rl.limitStr = strconv.FormatUint(rl.limit, 10)
	rl.policyStr = rl.limitStr + ";w=" + strconv.FormatInt(int64(rl.window/time.Second), 10)
	return rl, nil
}

// Handler returns middleware that counts every request and answers 429
// Too Many Requests, through httperr, to a client over its limit. The 429
// carries Retry-After (when a request will next be admitted, if the client
// stops sending meanwhile) and the RateLimit-Limit, -Remaining, -Reset and
// -Policy headers.
func (rl *RateLimit) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := rl.decide(r)
		if !d.allowed {
			httperr.Write(w, r, rl.errorFor(&d))
			return
		}
		if rl.headers && d.err == nil {
			rl.setHeaders(w.Header(), &d)
		}
		next.ServeHTTP(w, r)
	})
}

// Check counts r against its client's limit and returns nil if it may
// proceed, or an [*httperr.HTTPError] to pass to [httperr.Write]: a 429
// wrapping [ErrRateLimited], or a 503 wrapping [ErrRateLimitStore]. Use it
// inside a handler to limit something finer than a route, such as login
// attempts per account name and client (with Key reading both). Every
// call counts, and nothing is given back: keyed on the account name
// alone, it lets anyone lock the account's owner out by spending its
// budget with wrong passwords (examples/hardened counts only failed
// logins, per account and client, with a larger budget per account).
func (rl *RateLimit) Check(r *http.Request) error {
	d := rl.decide(r)
	if d.allowed {
		return nil
	}
	return rl.errorFor(&d)
}

// rlDecision is the outcome of counting one request.
type rlDecision struct {
	allowed   bool
	remaining uint64
	reset     time.Duration // until the current window ends
	retry     time.Duration // until a new request would be admitted
	err       error         // store failure
}

func (rl *RateLimit) errorFor(d *rlDecision) error {
	if d.err != nil {
		return httperr.Unavailable(httperr.KindInternal, rateStoreRetryAfter,
			fmt.Errorf("%w: %w", ErrRateLimitStore, d.err))
	}
	he := httperr.TooManyRequests(d.retry, ErrRateLimited)
	d.reset = d.retry
	rl.setHeaders(he.Header, d)
	return he
}

// setHeaders sets the RateLimit fields of draft-ietf-httpapi-ratelimit-headers
// (the -06 form that clients and proxies read today). The four values
// share one allocation; each is its own full slice, so that appending to
// one cannot overwrite another.
func (rl *RateLimit) setHeaders(h http.Header, d *rlDecision) {
	v := [...]string{rl.limitStr, rl.policyStr, strconv.FormatUint(d.remaining, 10),
		strconv.FormatInt(rlCeilSeconds(d.reset), 10)}
	vals := v[:]
	h["Ratelimit-Limit"] = vals[0:1:1]
	h["Ratelimit-Policy"] = vals[1:2:2]
	h["Ratelimit-Remaining"] = vals[2:3:3]
	h["Ratelimit-Reset"] = vals[3:4:4]
}

func rlCeilSeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}

// decide counts r and decides whether it may proceed.
func (rl *RateLimit) decide(r *http.Request) rlDecision {
	now := time.Now().UnixNano()
	w := int64(rl.window)
	win := now / w
	start := win * w
	elapsed := now - start

	var curr, prev uint64
	if rl.mem != nil {
		c, p := rl.mem.add(rl.memHash(r), win)
		curr, prev = uint64(c), uint64(p)
	} else {
		var err error
		curr, prev, err = rl.storeAdd(r, start)
		if err != nil {
			if rl.failOpen {
				rl.logFailOpen(err)
				return rlDecision{allowed: true, err: err}
			}
			return rlDecision{err: err}
		}
	}
	return rlEvaluate(curr, prev, rl.limit, uint64(w), uint64(elapsed))
}

// rlEvaluate applies the sliding-window rule to counts that already
// include the request being decided: it is admitted when
// curr + prev*(w-elapsed)/w <= limit, computed exactly in integers.
// A rejected request's retry time is the earliest instant at which one
// more request would be admitted if no other arrives: later in this
// window, as the previous window's weight decays, or in the next one.
func rlEvaluate(curr, prev, limit, w, elapsed uint64) rlDecision {
	d := rlDecision{reset: time.Duration(w - elapsed)}
	// weighted = prev*(w-elapsed), in units of 1/w requests.
	wh, wl := bits.Mul64(prev, w-elapsed)
	if curr <= limit {
		// room = (limit-curr)*w
		rh, rl := bits.Mul64(limit-curr, w)
		if wh < rh || (wh == rh && wl <= rl) {
			d.allowed = true
			// remaining = floor(((limit-curr)*w - weighted) / w)
			lo, borrow := bits.Sub64(rl, wl, 0)
			hi, _ := bits.Sub64(rh, wh, borrow)
			d.remaining, _ = bits.Div64(hi, lo, w)
			return d
		}
	}

	// Later in this window: need prev*(w-t) <= (limit-curr-1)*w, that is
	// w-t <= floor((limit-curr-1)*w/prev).
	if curr+1 <= limit && prev > 0 {
		h, l := bits.Mul64(limit-curr-1, w)
		var t uint64
		if h < prev {
			q, _ := bits.Div64(h, l, prev)
			if q < w {
				t = w - q
			}
		}
		if t < w {
			d.retry = time.Duration(max(t, elapsed) - elapsed)
			return d
		}
	}
	// Next window, where this window's count becomes the previous one:
	// need curr*(w-t) <= (limit-1)*w.
	var t uint64
	if curr > limit-1 {
		h, l := bits.Mul64(limit-1, w)
		q, _ := bits.Div64(h, l, curr)
		t = w - q
	}
	d.retry = time.Duration(w - elapsed + t)
	return d
}

// memHash returns the in-memory store's key for r: a keyed hash of the
// route (with PerRoute) and the identity.
func (rl *RateLimit) memHash(r *http.Request) uint64 {
	var h maphash.Hash
	h.SetSeed(rl.mem.seed)
	if rl.perRoute {
		h.WriteString(r.Pattern)
		h.WriteByte(0)
	}
	if rl.key != nil {
		if k := rl.key(r); k != "" {
			h.WriteByte('k')
			h.WriteString(k)
			return h.Sum64()
		}
	}
	p := clientip.Group(clientip.Addr(r))
	if !p.IsValid() {
		h.WriteByte('u')
		return h.Sum64()
	}
	a := p.Addr().As16()
	h.WriteByte('a')
	h.Write(a[:])
	h.WriteByte(byte(p.Bits()))
	return h.Sum64()
}

// storeKey returns the key sent to an external store for r.
func (rl *RateLimit) storeKey(r *http.Request) string {
	route := ""
	if rl.perRoute {
		route = r.Pattern
	}
	var id string
	if rl.key != nil {
		if k := rl.key(r); k != "" {
			sum := sha256.Sum256([]byte(k))
			id = "k:" + hex.EncodeToString(sum[:16])
		}
	}
	if id == "" {
		p := clientip.Group(clientip.Addr(r))
		if p.IsValid() {
			id = "a:" + p.String()
		} else {
			id = "u:"
		}
	}
	return rl.scope + "\x1f" + route + "\x1f" + id
}

// storeAdd increments, then reads, r's counters in the external store.
func (rl *RateLimit) storeAdd(r *http.Request, start int64) (curr, prev uint64, err error) {
	key := rl.storeKey(r)
	cur := time.Unix(0, start).UTC()
	if err := rl.store.IncrementBy(key, cur, 1); err != nil {
		return 0, 0, err
	}
	c, p, err := rl.store.Get(key, cur, cur.Add(-rl.window))
	if err != nil {
		return 0, 0, err
	}
	// This request was counted: a store that says otherwise (a
	// replica's clock in another window) still counts it.
	return uint64(max(c, 1)), uint64(max(p, 0)), nil
}

func (rl *RateLimit) logFailOpen(err error) {
	n := rl.failures.Add(1)
	now := time.Now().UnixNano()
	last := rl.lastFailLog.Load()
	if now-last < int64(rateFailOpenLogInterval) || !rl.lastFailLog.CompareAndSwap(last, now) {
		return
	}
	rl.failures.Add(-n)
	rl.logger.LogAttrs(context.Background(), slog.LevelWarn,
		"rate limit store failed; requests let through (InsecureFailOpen)",
		slog.String("err", err.Error()), slog.Int64("failures", n))
}

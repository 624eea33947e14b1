package middleware

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stormcellar/stormcellar/httperr"
	"github.com/stormcellar/stormcellar/internal/clientip"
)

// ErrOverloaded is the logged cause of a 503 sent because too much work is
// in flight: all of [ConcurrencyLimit]'s slots taken and its wait queue
// full, or [LoadShed]'s in-flight threshold passed.
var ErrOverloaded = errors.New("middleware: too many requests in flight")

// ErrClientOverloaded is the logged cause of a 503 sent by
// [ConcurrencyLimit] because one client has too many requests in flight.
var ErrClientOverloaded = errors.New("middleware: too many requests in flight from one client")

// ErrQueueTimeout is the logged cause of a 503 sent by [ConcurrencyLimit]
// when a request waited its QueueTimeout without getting a slot.
var ErrQueueTimeout = errors.New("middleware: timed out waiting for a request slot")

// Defaults of [ConcurrencyLimitOptions].
const (
	defaultConcMax          = 1024
	defaultConcPerClient    = 32
	defaultConcQueueTimeout = time.Second
	defaultConcRetryAfter   = time.Second
	defaultConcHoldTimeout  = 30 * time.Second
	concShards              = 16
	concShrinkAbove         = 1024
)

// ConcurrencyLimitOptions configure [NewConcurrencyLimit]. The zero value is
// valid: at most 1024 requests in flight, 32 from any one client address,
// 256 more waiting at most one second for a slot, and 30 seconds for a
// request holding a slot to finish writing its response.
type ConcurrencyLimitOptions struct {
	// Max caps the requests running at once through the limiter. If zero,
	// 1024. Negative disables the global cap (PerClient must then be on).
	Max int
	// PerClient caps the requests one client has in flight or waiting. If
	// zero, 32. Negative disables the per-client cap. A client over it is
	// answered at once, without waiting.
	PerClient int
	// Key, if set, returns the identity that PerClient counts under
	// instead of the client address (IPv4 address or IPv6 /64): a user id
	// or API key, after authentication. "" falls back to the address.
	Key func(r *http.Request) string

	// Queue is how many requests may wait for a slot when all Max are
	// taken. If zero, Max/4. Negative means none wait: a request that
	// finds no free slot is answered 503 at once.
	Queue int
	// QueueTimeout is the longest a request waits for a slot before it is
	// answered 503. If zero, one second. Negative is an error. A request
	// whose client goes away stops waiting at once.
	QueueTimeout time.Duration
	// RetryAfter is the Retry-After sent with the 503. If zero, one
	// second. Negative is an error.
	RetryAfter time.Duration

	// HoldTimeout bounds how long a request may keep its slot by being
	// slow to take its response: when it gets a slot, the response's
	// write deadline is set this far ahead (as
	// [net/http.ResponseController.SetWriteDeadline] does), so a client that reads slowly or
	// not at all makes the handler's writes fail and frees the slot. A
	// handler that is still writing after HoldTimeout is cut off too:
	// keep streaming routes out of the limiter or disable this. If zero,
	// 30 seconds; negative disables it. It is not applied when the
	// server's own WriteTimeout is shorter, nor to CONNECT requests. A
	// handler that hijacks the connection (a WebSocket) leaves it:
	// net/http clears the connection's deadlines on Hijack.
	HoldTimeout time.Duration
}

// ConcurrencyLimit caps the requests in flight, globally and per client,
// and sheds the excess with 503 Service Unavailable and Retry-After. Create
// it with [NewConcurrencyLimit]; it is safe for concurrent use.
//
// The client is identified as by [RateLimit]: chi's trusted-proxy resolver
// or the TCP peer, IPv6 grouped by /64, or Key; requests whose address is
// unknown share one count. The per-client table holds only clients with
// requests in the limiter, so its size is bounded by the requests in
// flight, not by how many clients were ever seen.
type ConcurrencyLimit struct {
	perClient    int32
	queue        int64
	queueTimeout time.Duration
	retryAfter   time.Duration
	hold         time.Duration
	key          func(*http.Request) string

	sem     *concSem // nil without a global cap
	waiting atomic.Int64
	running atomic.Int64

	seed   maphash.Seed
	shards [concShards]concShard
}

// concShard holds the in-flight counts of the clients whose key hash falls
// in it. Clients are keyed by a 64-bit hash with a per-process random seed,
// so the table holds no address or API key, and clients cannot pick keys
// that collide with someone else's.
type concShard struct {
	mu   sync.Mutex
	m    map[uint64]int32
	peak int
	_    [64]byte
}

// NewConcurrencyLimit returns a concurrency limiter configured by opts, or
// an error naming the first invalid option.
func NewConcurrencyLimit(opts ConcurrencyLimitOptions) (*ConcurrencyLimit, error) {
	if opts.Max < 0 && opts.PerClient < 0 {
		return nil, fmt.Errorf("%w: ConcurrencyLimitOptions: Max and PerClient both disabled", ErrLimitOptions)
	}
	if opts.QueueTimeout < 0 {
		return nil, fmt.Errorf("%w: ConcurrencyLimitOptions.QueueTimeout %v is negative", ErrLimitOptions, opts.QueueTimeout)
	}
	if opts.RetryAfter < 0 {
		return nil, fmt.Errorf("%w: ConcurrencyLimitOptions.RetryAfter %v is negative", ErrLimitOptions, opts.RetryAfter)
	}
	if opts.PerClient > 1<<30 {
		return nil, fmt.Errorf("%w: ConcurrencyLimitOptions.PerClient %d is too large", ErrLimitOptions, opts.PerClient)
	}
	c := &ConcurrencyLimit{
		queueTimeout: opts.QueueTimeout,
		retryAfter:   opts.RetryAfter,
		hold:         opts.HoldTimeout,
		key:          opts.Key,
		seed:         maphash.MakeSeed(),
	}
	if c.queueTimeout == 0 {
		c.queueTimeout = defaultConcQueueTimeout
	}
	if c.retryAfter == 0 {
		c.retryAfter = defaultConcRetryAfter
	}
	if c.hold == 0 {
		c.hold = defaultConcHoldTimeout
	}
	switch {
	case opts.PerClient == 0:
		c.perClient = defaultConcPerClient
	case opts.PerClient > 0:
		c.perClient = int32(opts.PerClient)
	}
	if opts.Max >= 0 {
		n := opts.Max
		if n == 0 {
			n = defaultConcMax
		}
		c.sem = &concSem{size: n}
		switch {
		case opts.Queue == 0:
			c.queue = int64(n / 4)
		case opts.Queue > 0:
			c.queue = int64(opts.Queue)
		}
	}
	return c, nil
}

// Handler returns middleware that runs next only while the request holds a
// slot: taken just before next is called, released as soon as it returns
// (or panics). A request over a cap is answered 503 Service Unavailable
// with Retry-After through httperr, with kind overload; one whose client
// went away while it waited is recorded as a canceled request.
func (c *ConcurrencyLimit) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, counted, err := c.acquire(r)
		if err != nil {
			httperr.Write(w, r, err)
			return
		}
		c.running.Add(1)
		defer c.release(h, counted)
		if c.hold > 0 {
			c.setHold(w, r)
		}
		next.ServeHTTP(w, r)
	})
}

// acquire takes a per-client count and a global slot for r. It returns the
// client's key hash, and whether the per-client count was taken (and must
// be released).
func (c *ConcurrencyLimit) acquire(r *http.Request) (h uint64, counted bool, err error) {
	if c.perClient > 0 {
		h = c.clientHash(r)
		if !c.addClient(h) {
			return h, false, httperr.Unavailable(httperr.KindOverload, c.retryAfter, ErrClientOverloaded)
		}
		counted = true
	}
	if c.sem == nil || c.sem.tryAcquire() {
		return h, counted, nil
	}
	if err = c.wait(r); err != nil {
		if counted {
			c.removeClient(h)
		}
		return h, false, err
	}
	return h, counted, nil
}

// wait queues r for a global slot.
func (c *ConcurrencyLimit) wait(r *http.Request) error {
	defer c.waiting.Add(-1)
	if c.waiting.Add(1) > c.queue {
		return httperr.Unavailable(httperr.KindOverload, c.retryAfter, ErrOverloaded)
	}
	err := c.sem.acquire(r.Context(), c.queueTimeout)
	if err == nil {
		return nil
	}
	if err == errConcTimeout {
		return httperr.Unavailable(httperr.KindOverload, c.retryAfter, ErrQueueTimeout)
	}
	return err // the client went away: httperr records a 499
}

func (c *ConcurrencyLimit) release(h uint64, counted bool) {
	c.running.Add(-1)
	if c.sem != nil {
		c.sem.release()
	}
	if counted {
		c.removeClient(h)
	}
}

// clientHash returns the keyed hash of r's client identity: its Key
// value, or its address group. Keys and addresses never collide by
// construction (a different first byte is hashed).
func (c *ConcurrencyLimit) clientHash(r *http.Request) uint64 {
	var h maphash.Hash
	h.SetSeed(c.seed)
	if c.key != nil {
		if s := c.key(r); s != "" {
			h.WriteByte('k')
			h.WriteString(s)
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

func (c *ConcurrencyLimit) shard(h uint64) *concShard {
	return &c.shards[h>>60] // concShards == 16
}

// addClient counts one more request for h, unless it is at its cap.
func (c *ConcurrencyLimit) addClient(h uint64) bool {
	sh := c.shard(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	n := sh.m[h]
	if n >= c.perClient {
		return false
	}
	if sh.m == nil {
		sh.m = make(map[uint64]int32)
	}
	sh.m[h] = n + 1
	sh.peak = max(sh.peak, len(sh.m))
	return true
}

// removeClient counts one request less for h. Entries are deleted at zero,
// so the table holds only clients with requests in flight; a table that
// grew large is dropped once empty, to give its memory back.
func (c *ConcurrencyLimit) removeClient(h uint64) {
	sh := c.shard(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if n := sh.m[h] - 1; n > 0 {
		sh.m[h] = n
		return
	}
	delete(sh.m, h)
	if len(sh.m) == 0 && sh.peak > concShrinkAbove {
		sh.m, sh.peak = nil, 0
	}
}

// setHold sets the response's write deadline HoldTimeout ahead, unless the
// server's WriteTimeout is shorter or the handler will own the connection.
func (c *ConcurrencyLimit) setHold(w http.ResponseWriter, r *http.Request) {
	// Upgrade requests get the deadline too: their headers are the
	// client's to choose, and a real upgrade hijacks the connection, which
	// clears its deadlines.
	if r.Method == http.MethodConnect {
		return
	}
	if srv, ok := r.Context().Value(http.ServerContextKey).(*http.Server); ok &&
		srv.WriteTimeout > 0 && srv.WriteTimeout <= c.hold {
		return
	}
	concSetWriteDeadline(w, time.Now().Add(c.hold))
}

// concSetWriteDeadline is [net/http.ResponseController.SetWriteDeadline]
// without the allocation of its error for writers that cannot set
// deadlines (a recorder): for those only the server's timeouts bound a
// slow reader. Like ResponseController, it follows Unwrap.
func concSetWriteDeadline(w http.ResponseWriter, t time.Time) {
	for {
		switch x := w.(type) {
		case interface{ SetWriteDeadline(time.Time) error }:
			_ = x.SetWriteDeadline(t)
			return
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return
		}
	}
}

// Running returns the number of requests holding a slot, for metrics.
func (c *ConcurrencyLimit) Running() int { return int(c.running.Load()) }

// Waiting returns the number of requests waiting for a slot, for metrics.
func (c *ConcurrencyLimit) Waiting() int { return int(c.waiting.Load()) }

// concSem is a FIFO counting semaphore: a request that finds a free slot
// and nobody waiting takes it without allocating; otherwise it queues and
// slots are handed over in arrival order, so late arrivals cannot barge
// ahead of waiters.
type concSem struct {
	mu      sync.Mutex
	size    int
	cur     int
	waiters []chan struct{}
}

var errConcTimeout = errors.New("middleware: slot wait timed out")

func (s *concSem) tryAcquire() bool {
	s.mu.Lock()
	ok := s.cur < s.size && len(s.waiters) == 0
	if ok {
		s.cur++
	}
	s.mu.Unlock()
	return ok
}

// acquire waits for a slot until ctx is done (returning its error) or
// timeout passes (returning errConcTimeout).
func (s *concSem) acquire(ctx context.Context, timeout time.Duration) error {
	s.mu.Lock()
	if s.cur < s.size && len(s.waiters) == 0 {
		s.cur++
		s.mu.Unlock()
		return nil
	}
	ready := make(chan struct{})
	s.waiters = append(s.waiters, ready)
	s.mu.Unlock()

	t := time.NewTimer(timeout)
	defer t.Stop()
	var err error
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-t.C:
		err = errConcTimeout
	}
	s.mu.Lock()
	select {
	case <-ready:
		// The slot was handed over as we gave up: pass it on.
		s.mu.Unlock()
		s.release()
		return err
	default:
	}
	if i := slices.Index(s.waiters, ready); i >= 0 {
		s.waiters = slices.Delete(s.waiters, i, i+1)
	}
	s.mu.Unlock()
	return err
}

// release frees a slot, handing it to the longest waiter if there is one.
func (s *concSem) release() {
	s.mu.Lock()
	if len(s.waiters) > 0 {
		w := s.waiters[0]
		n := copy(s.waiters, s.waiters[1:])
		s.waiters[n] = nil
		s.waiters = s.waiters[:n]
		close(w)
	} else {
		s.cur--
	}
	s.mu.Unlock()
}

package middleware

import (
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	chimw "github.com/go-chi/chi/v5/middleware"
	"github.com/go-chi/httprate"

	"github.com/stormcellar/stormcellar/httperr"
)

func TestNewRateLimitOptions(t *testing.T) {
	t.Parallel()
	store := httprate.NewLocalLimitCounter(time.Minute)
	tests := []struct {
		name    string
		opts    RateLimitOptions
		wantErr bool
	}{
		{name: "zero value", opts: RateLimitOptions{}},
		{name: "explicit", opts: RateLimitOptions{Limit: 5, Window: 10 * time.Second, MaxKeys: 10}},
		{name: "store with scope", opts: RateLimitOptions{Store: store, Scope: "api"}},
		{name: "negative limit", opts: RateLimitOptions{Limit: -1}, wantErr: true},
		{name: "limit too large", opts: RateLimitOptions{Limit: 1 << 31}, wantErr: true},
		{name: "negative window", opts: RateLimitOptions{Window: -time.Second}, wantErr: true},
		{name: "sub-second window", opts: RateLimitOptions{Window: 500 * time.Millisecond}, wantErr: true},
		{name: "negative max keys", opts: RateLimitOptions{MaxKeys: -1}, wantErr: true},
		{name: "store without scope", opts: RateLimitOptions{Store: store}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rl, err := NewRateLimit(tt.opts)
			if tt.wantErr {
				if !errors.Is(err, ErrLimitOptions) {
					t.Fatalf("err = %v, want ErrLimitOptions", err)
				}
				return
			}
			if err != nil || rl == nil {
				t.Fatalf("NewRateLimit: %v", err)
			}
		})
	}

	rl, _ := NewRateLimit(RateLimitOptions{})
	if rl.limit != 100 || rl.window != time.Minute || rl.mem == nil || rl.mem.perShard*rlShards < 1<<20 {
		t.Errorf("defaults: limit %d window %v perShard %d", rl.limit, rl.window, rl.mem.perShard)
	}
}

// TestRateLimitEvaluate checks the sliding-window rule and the retry time
// on counts that include the request being decided.
func TestRateLimitEvaluate(t *testing.T) {
	t.Parallel()
	const s = uint64(time.Second)
	tests := []struct {
		name                    string
		curr, prev, limit, w, e uint64
		allowed                 bool
		remaining               uint64
		retry                   time.Duration
	}{
		{name: "first request", curr: 1, limit: 3, w: 10 * s, allowed: true, remaining: 2},
		{name: "at limit", curr: 3, limit: 3, w: 10 * s, allowed: true, remaining: 0},
		{name: "over, no history: wait for the next window's decay", curr: 4, limit: 3, w: 10 * s,
			retry: 15 * time.Second},
		{name: "previous window weighs in", curr: 3, prev: 10, limit: 10, w: 10 * s, e: 2 * s,
			retry: 2 * time.Second},
		{name: "previous window decayed enough", curr: 4, prev: 10, limit: 10, w: 10 * s, e: 4 * s,
			allowed: true, remaining: 0},
		{name: "limit one", curr: 2, limit: 1, w: 60 * s, e: 30 * s, retry: 90 * time.Second},
		{name: "flood: blocked until two windows pass", curr: 1000, prev: 1000, limit: 10, w: 10 * s, e: 5 * s,
			retry: 5*time.Second + 9910*time.Millisecond},
		{name: "huge counts do not overflow", curr: 1 << 32, prev: 1 << 32, limit: 1 << 31, w: 1 << 50, e: 1,
			retry: time.Duration(1<<50 - 1 + 1<<49 + 1<<18)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := rlEvaluate(tt.curr, tt.prev, tt.limit, tt.w, tt.e)
			if d.allowed != tt.allowed {
				t.Fatalf("allowed = %v, want %v", d.allowed, tt.allowed)
			}
			if d.allowed && d.remaining != tt.remaining {
				t.Errorf("remaining = %d, want %d", d.remaining, tt.remaining)
			}
			if !d.allowed && d.retry != tt.retry {
				t.Errorf("retry = %v, want %v", d.retry, tt.retry)
			}
		})
	}
}

// TestRateLimitRetryAfter checks, on fake time, that Retry-After is exact:
// a client that waits what it was told is admitted, one that comes back a
// second earlier is not.
func TestRateLimitRetryAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		limit  int
		window time.Duration
		// before the flood: requests sent at the start of the first
		// window, then how long to wait.
		warmup int
		wait   time.Duration
		want   string // Retry-After of the first 429
	}{
		{name: "fresh client", limit: 3, window: 10 * time.Second, want: "15"},
		{name: "previous window decays within this one", limit: 10, window: 10 * time.Second,
			warmup: 10, wait: 12 * time.Second, want: "2"},
		{name: "mid-window flood", limit: 5, window: time.Minute, wait: 20 * time.Second, want: "60"},
		{name: "limit one", limit: 1, window: time.Minute, wait: 30 * time.Second, want: "90"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// scenario floods a fresh limiter and returns the first 429.
			scenario := func(t *testing.T) (http.Handler, *limRecorder) {
				rl, err := NewRateLimit(RateLimitOptions{Limit: tt.limit, Window: tt.window})
				if err != nil {
					t.Fatal(err)
				}
				h := limInstall(nil)(rl.Handler(limOK))
				for range tt.warmup {
					if w := limRecord(h, "192.0.2.7:1000"); w.Code != http.StatusOK {
						t.Fatalf("warm-up got %d", w.Code)
					}
				}
				time.Sleep(tt.wait)
				for i := 0; i < 2*tt.limit+2; i++ {
					if w := limRecord(h, "192.0.2.7:1000"); w.Code == http.StatusTooManyRequests {
						return h, &limRecorder{w.Header()}
					}
				}
				t.Fatal("never limited")
				return nil, nil
			}
			var after int
			synctest.Test(t, func(t *testing.T) {
				_, got := scenario(t)
				h := got.h
				if h.Get("Retry-After") != tt.want {
					t.Errorf("Retry-After = %q, want %q", h.Get("Retry-After"), tt.want)
				}
				if h.Get("Ratelimit-Reset") != h.Get("Retry-After") || h.Get("Ratelimit-Remaining") != "0" ||
					h.Get("Ratelimit-Limit") != strconv.Itoa(tt.limit) ||
					h.Get("Ratelimit-Policy") != fmt.Sprintf("%d;w=%d", tt.limit, int(tt.window/time.Second)) {
					t.Errorf("RateLimit headers: %v", h)
				}
				after, _ = strconv.Atoi(h.Get("Retry-After"))
			})
			synctest.Test(t, func(t *testing.T) {
				h, _ := scenario(t)
				time.Sleep(time.Duration(after) * time.Second)
				if w := limRecord(h, "192.0.2.7:1000"); w.Code != http.StatusOK {
					t.Errorf("after waiting Retry-After: %d, want 200", w.Code)
				}
			})
			synctest.Test(t, func(t *testing.T) {
				h, _ := scenario(t)
				time.Sleep(time.Duration(after-1) * time.Second)
				if w := limRecord(h, "192.0.2.7:1000"); w.Code != http.StatusTooManyRequests {
					t.Errorf("one second before Retry-After: %d, want 429", w.Code)
				}
			})
		})
	}
}

type limRecorder struct{ h http.Header }

// TestRateLimitSpoofedForwardedFor is the spoofing attack against a real
// listener: a client that rotates X-Forwarded-For (and its cousins) on
// every request is still one client, unless a trusted proxy vouches for
// the header; and behind a trusted proxy, entries the client prepends are
// ignored. httprate's header-trusting key (the anchor) is shown evaded.
func TestRateLimitSpoofedForwardedFor(t *testing.T) {
	t.Parallel()
	const limit = 5
	spoofed := func(i int) []string {
		ip := fmt.Sprintf("198.51.100.%d", i%250+1)
		return []string{"X-Forwarded-For", ip, "X-Real-Ip", ip, "True-Client-Ip", ip,
			"Forwarded", "for=" + ip}
	}
	tests := []struct {
		name     string
		resolver func(http.Handler) http.Handler
		hdr      func(i int) []string
		wantOK   int
	}{
		{name: "no resolver: TCP peer", hdr: spoofed, wantOK: limit},
		{name: "untrusted peer: header ignored", resolver: chimw.ClientIPFromXFF("10.0.0.0/8"),
			hdr: spoofed, wantOK: limit},
		{name: "trusted proxy: prepended entries ignored", resolver: chimw.ClientIPFromXFF("127.0.0.1/32"),
			hdr: func(i int) []string {
				return []string{"X-Forwarded-For", fmt.Sprintf("198.51.100.%d, 203.0.113.9", i%250+1)}
			}, wantOK: limit},
		{name: "trusted proxy: IPv6 rotation inside one /64", resolver: chimw.ClientIPFromXFF("127.0.0.1/32"),
			hdr: func(i int) []string {
				return []string{"X-Forwarded-For", fmt.Sprintf("2001:db8:1:2:%x::1", i+1)}
			}, wantOK: limit},
		{name: "trusted proxy: distinct clients are distinct", resolver: chimw.ClientIPFromXFF("127.0.0.1/32"),
			hdr: func(i int) []string {
				return []string{"X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i+1)}
			}, wantOK: 4 * limit},
		{name: "trusted proxy: IPv4 clients behind NAT64 are distinct", resolver: chimw.ClientIPFromXFF("127.0.0.1/32"),
			hdr: func(i int) []string {
				return []string{"X-Forwarded-For", fmt.Sprintf("64:ff9b::cb00:71%02x", i+1)}
			}, wantOK: 4 * limit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rl, err := NewRateLimit(RateLimitOptions{Limit: limit})
			if err != nil {
				t.Fatal(err)
			}
			var h http.Handler = rl.Handler(limOK)
			if tt.resolver != nil {
				h = tt.resolver(h)
			}
			srv := limStart(t, h, nil)
			c := limClient(t)
			var rs []limResult
			for i := range 4 * limit {
				rs = append(rs, limGet(c, srv.URL, tt.hdr(i)...))
			}
			got := limStatuses(rs)
			if got[http.StatusOK] != tt.wantOK || got[http.StatusOK]+got[http.StatusTooManyRequests] != 4*limit {
				t.Errorf("statuses %v, want %d OK and the rest 429", got, tt.wantOK)
			}
		})
	}

	t.Run("anchor: httprate keyed by headers is evaded", func(t *testing.T) {
		t.Parallel()
		//lint:ignore SA1019 the deprecated, header-trusting anchor is shown evaded on purpose
		srv := limStart(t, httprate.LimitByRealIP(limit, time.Minute)(limOK), nil)
		c := limClient(t)
		var rs []limResult
		for i := range 4 * limit {
			rs = append(rs, limGet(c, srv.URL, spoofed(i)...))
		}
		if got := limStatuses(rs); got[http.StatusOK] != 4*limit {
			t.Errorf("httprate.LimitByRealIP: %v; the anchor is no longer spoofable", got)
		}
	})
}

// TestRateLimitFloodIsolated floods from one client, concurrently, while a
// second client and a second user behind the same address keep working.
func TestRateLimitFloodIsolated(t *testing.T) {
	t.Parallel()
	const limit = 20
	rl, err := NewRateLimit(RateLimitOptions{Limit: limit, Key: func(r *http.Request) string {
		return r.Header.Get("X-Test-User") // stands for an authenticated user id
	}})
	if err != nil {
		t.Fatal(err)
	}
	ev := &limEvents{}
	srv := limStart(t, chimw.ClientIPFromXFF("127.0.0.1/32")(rl.Handler(limOK)), ev)
	c := limClient(t)

	const flood = 200
	var mu sync.Mutex
	var attacker, victims []limResult
	var wg sync.WaitGroup
	var next atomic.Int32
	for range 8 {
		wg.Go(func() {
			for next.Add(1) <= flood {
				r := limGet(c, srv.URL, "X-Forwarded-For", "203.0.113.66")
				mu.Lock()
				attacker = append(attacker, r)
				mu.Unlock()
			}
		})
	}
	wg.Go(func() {
		for i := range limit {
			a := limGet(c, srv.URL, "X-Forwarded-For", "203.0.113.10")
			u := limGet(c, srv.URL, "X-Forwarded-For", "203.0.113.66", "X-Test-User", "alice"+strconv.Itoa(i%2))
			mu.Lock()
			victims = append(victims, a, u)
			mu.Unlock()
		}
	})
	wg.Wait()

	if got := limStatuses(attacker); got[http.StatusOK] != limit || got[http.StatusTooManyRequests] != flood-limit {
		t.Errorf("attacker: %v, want exactly %d OK and %d 429", got, limit, flood-limit)
	}
	if got := limStatuses(victims); got[http.StatusOK] != len(victims) {
		t.Errorf("other client and users during the flood: %v, want all OK", got)
	}
	if k := ev.kinds(); k[httperr.KindRateLimit] != flood-limit {
		t.Errorf("httperr events %v, want %d rate_limit", k, flood-limit)
	}
}

// TestRateLimitBurstAcrossReplicas shows increment-then-check against the
// anchor's check-then-increment when two replicas share a store: the store
// is made to interleave the replicas' reads (a barrier), the worst case a
// network store can produce. httprate admits both requests of each round
// past a limit of one; RateLimit never admits more than the limit.
func TestRateLimitBurstAcrossReplicas(t *testing.T) {
	t.Parallel()
	const rounds = 20
	run := func(t *testing.T, mk func(store httprate.LimitCounter) (a, b http.Handler)) int {
		store := &limBarrierStore{LimitCounter: httprate.NewLocalLimitCounter(time.Hour), n: 2}
		a, b := mk(store)
		admitted := 0
		for i := range rounds {
			// One fresh client per round, hitting both replicas at once.
			addr := fmt.Sprintf("192.0.2.%d:1000", i+1)
			var wa, wb int
			var wg sync.WaitGroup
			wg.Go(func() { wa = limRecord(a, addr).Code })
			wg.Go(func() { wb = limRecord(b, addr).Code })
			wg.Wait()
			for _, code := range []int{wa, wb} {
				if code == http.StatusOK {
					admitted++
				}
			}
		}
		return admitted
	}

	ours := run(t, func(store httprate.LimitCounter) (http.Handler, http.Handler) {
		mk := func() http.Handler {
			rl, err := NewRateLimit(RateLimitOptions{Limit: 1, Window: time.Hour, Store: store, Scope: "api"})
			if err != nil {
				t.Fatal(err)
			}
			return limInstall(nil)(rl.Handler(limOK))
		}
		return mk(), mk()
	})
	if ours > rounds {
		t.Errorf("RateLimit admitted %d requests over %d rounds with limit 1", ours, rounds)
	}
	anchor := run(t, func(store httprate.LimitCounter) (http.Handler, http.Handler) {
		key := func(r *http.Request) (string, error) { return r.RemoteAddr, nil }
		return httprate.LimitBy(1, time.Hour, key, httprate.WithLimitCounter(store))(limOK),
			httprate.LimitBy(1, time.Hour, key, httprate.WithLimitCounter(store))(limOK)
	})
	if anchor <= rounds {
		t.Errorf("httprate admitted %d over %d rounds; expected the check-then-increment race", anchor, rounds)
	}
	t.Logf("admitted with limit 1 over %d rounds of 2 concurrent requests: RateLimit %d, httprate %d", rounds, ours, anchor)
}

// limBarrierStore holds the answer of each Get until n callers have read
// (or a short timeout passed), so that every caller reads before any of
// them takes its next step.
type limBarrierStore struct {
	httprate.LimitCounter
	n       int
	mu      sync.Mutex
	waiting int
	release chan struct{}
}

func (s *limBarrierStore) Get(key string, curr, prev time.Time) (int, int, error) {
	c, p, err := s.LimitCounter.Get(key, curr, prev)
	s.mu.Lock()
	if s.release == nil {
		s.release = make(chan struct{})
	}
	ch := s.release
	s.waiting++
	if s.waiting == s.n {
		close(ch)
		s.waiting, s.release = 0, nil
	}
	s.mu.Unlock()
	select {
	case <-ch:
	case <-time.After(2 * time.Second):
	}
	return c, p, err
}

// limFailStore fails every call.
type limFailStore struct{ httprate.LimitCounter }

var errLimStoreDown = errors.New("store down")

func (limFailStore) IncrementBy(string, time.Time, int) error { return errLimStoreDown }

func TestRateLimitStoreFailure(t *testing.T) {
	t.Parallel()
	// One store per subtest: NewRateLimit configures the store it is
	// given, so parallel subtests must not share one.
	newStore := func() limFailStore { return limFailStore{httprate.NewLocalLimitCounter(time.Minute)} }

	t.Run("fail closed by default", func(t *testing.T) {
		t.Parallel()
		rl, err := NewRateLimit(RateLimitOptions{Store: newStore(), Scope: "s"})
		if err != nil {
			t.Fatal(err)
		}
		ev := &limEvents{}
		srv := limStart(t, rl.Handler(limOK), ev)
		r := limGet(limClient(t), srv.URL)
		if r.err != nil || r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "1" {
			t.Fatalf("got %d %v (Retry-After %q), want 503 with Retry-After 1", r.status, r.err, r.header.Get("Retry-After"))
		}
		ev.mu.Lock()
		defer ev.mu.Unlock()
		if len(ev.events) != 1 || !errors.Is(ev.events[0].Err, ErrRateLimitStore) || !errors.Is(ev.events[0].Err, errLimStoreDown) {
			t.Errorf("events %+v, want one wrapping ErrRateLimitStore and the store's error", ev.events)
		}
		if err := rl.Check(limRecordRequest("192.0.2.1:1")); !errors.Is(err, ErrRateLimitStore) {
			t.Errorf("Check = %v", err)
		}
	})

	t.Run("InsecureFailOpen lets through and warns once", func(t *testing.T) {
		t.Parallel()
		sink := &limLogSink{}
		rl, err := NewRateLimit(RateLimitOptions{Store: newStore(), Scope: "s", InsecureFailOpen: true,
			Logger: slog.New(slog.NewTextHandler(sink, nil))})
		if err != nil {
			t.Fatal(err)
		}
		srv := limStart(t, rl.Handler(limOK), nil)
		c := limClient(t)
		for range 5 {
			if r := limGet(c, srv.URL); r.status != http.StatusOK {
				t.Fatalf("got %d %v, want 200", r.status, r.err)
			}
		}
		if n := sink.count("rate limit store failed"); n != 1 {
			t.Errorf("%d warnings logged, want 1 (at most one per 10s): %s", n, sink.String())
		}
	})
}

// TestRateLimitMaxKeysOverflow fills a small store with an address-rotation
// flood: clients tracked before keep their own counts, the flood's
// addresses share overflow counts (limited together, not admitted without
// limit), and once the window turns, idle clients make room again.
func TestRateLimitMaxKeysOverflow(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const limit = 10
		rl, err := NewRateLimit(RateLimitOptions{Limit: limit, Window: time.Minute, MaxKeys: 256})
		if err != nil {
			t.Fatal(err)
		}
		h := limInstall(nil)(rl.Handler(limOK))
		if w := limRecord(h, "192.0.2.1:1"); w.Code != http.StatusOK {
			t.Fatalf("tracked client: %d", w.Code)
		}
		okFlood := 0
		const flood = 20_000
		for i := range flood {
			addr := fmt.Sprintf("10.%d.%d.%d:1", byte(i>>16), byte(i>>8), byte(i))
			if limRecord(h, addr).Code == http.StatusOK {
				okFlood++
			}
		}
		if n := rl.mem.len(); n > rl.mem.perShard*rlShards {
			t.Errorf("store tracks %d clients, cap %d", n, rl.mem.perShard*rlShards)
		}
		// Each client admitted once, overflow buckets admit at most limit
		// per shard: far fewer than the flood.
		if max := rl.mem.perShard*rlShards + limit*rlShards; okFlood > max {
			t.Errorf("%d of %d flood requests admitted, want at most %d", okFlood, flood, max)
		}
		for i := 1; i < limit; i++ {
			if w := limRecord(h, "192.0.2.1:1"); w.Code != http.StatusOK {
				t.Fatalf("tracked client's request %d during the flood: %d", i+1, w.Code)
			}
		}
		if w := limRecord(h, "192.0.2.1:1"); w.Code != http.StatusTooManyRequests {
			t.Fatalf("tracked client over its limit: %d", w.Code)
		}
		t.Logf("flood of %d addresses: %d admitted, store holds %d clients (cap %d)",
			flood, okFlood, rl.mem.len(), rl.mem.perShard*rlShards)

		// Next window: the flood's overflow counts weigh in, but clients
		// idle in this window are evicted to make room for new ones.
		time.Sleep(time.Minute)
		admitted := 0
		for i := range 200 {
			if limRecord(h, fmt.Sprintf("172.16.0.%d:1", i)).Code == http.StatusOK {
				admitted++
			}
		}
		if admitted < 150 {
			t.Errorf("window after the flood: %d of 200 new clients admitted, want most", admitted)
		}
		// Two windows later everything has expired.
		time.Sleep(2 * time.Minute)
		for i := range 200 {
			if w := limRecord(h, fmt.Sprintf("172.17.0.%d:1", i)); w.Code != http.StatusOK {
				t.Fatalf("new client %d two windows after the flood: %d", i, w.Code)
			}
		}
	})
}

// TestRateLimitPerRoute counts routes separately only when asked, and only
// by their pattern: varying the path under one pattern mints no counters.
func TestRateLimitPerRoute(t *testing.T) {
	t.Parallel()
	for _, perRoute := range []bool{false, true} {
		t.Run("PerRoute="+strconv.FormatBool(perRoute), func(t *testing.T) {
			t.Parallel()
			rl, err := NewRateLimit(RateLimitOptions{Limit: 3, PerRoute: perRoute})
			if err != nil {
				t.Fatal(err)
			}
			mux := http.NewServeMux()
			mux.Handle("GET /item/{id}", rl.Handler(limOK))
			mux.Handle("GET /cart", rl.Handler(limOK))
			srv := limStart(t, mux, nil)
			c := limClient(t)
			var items, cart []limResult
			for i := range 6 {
				items = append(items, limGet(c, srv.URL+"/item/"+strconv.Itoa(i)))
			}
			for range 3 {
				cart = append(cart, limGet(c, srv.URL+"/cart"))
			}
			if got := limStatuses(items); got[http.StatusOK] != 3 {
				t.Errorf("/item/{id} with varying ids: %v, want 3 OK", got)
			}
			wantCart := 0
			if perRoute {
				wantCart = 3
			}
			if got := limStatuses(cart); got[http.StatusOK] != wantCart {
				t.Errorf("/cart: %v, want %d OK", got, wantCart)
			}
		})
	}
}

// TestRateLimitCheck limits login attempts per account name from inside a
// handler, whatever address they come from.
func TestRateLimitCheck(t *testing.T) {
	t.Parallel()
	rl, err := NewRateLimit(RateLimitOptions{Limit: 3, Window: 15 * time.Minute,
		Key: func(r *http.Request) string { return "login:" + r.FormValue("user") }})
	if err != nil {
		t.Fatal(err)
	}
	login := httperr.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		if err := rl.Check(r); err != nil {
			return err
		}
		_, _ = w.Write([]byte("checked password"))
		return nil
	})
	srv := limStart(t, login, nil)
	c := limClient(t)
	var bob []limResult
	for range 5 {
		bob = append(bob, limGet(c, srv.URL+"/?user=bob"))
	}
	if got := limStatuses(bob); got[http.StatusOK] != 3 || got[http.StatusTooManyRequests] != 2 {
		t.Errorf("attempts on bob: %v", got)
	}
	if r := limGet(c, srv.URL+"/?user=carol"); r.status != http.StatusOK {
		t.Errorf("carol: %d", r.status)
	}
	if r := limGet(c, srv.URL+"/?user=bob"); r.header.Get("Retry-After") == "" {
		t.Errorf("429 without Retry-After: %v", r.header)
	}
}

// TestRateLimitHTTPRateStore uses httprate's own in-memory counter as the
// Store (the interface httprate-redis implements): windows line up and the
// limit holds.
func TestRateLimitHTTPRateStore(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		rl, err := NewRateLimit(RateLimitOptions{Limit: 4, Window: 10 * time.Second, Scope: "api",
			Store: httprate.NewLocalLimitCounter(10 * time.Second), HeadersOnSuccess: true})
		if err != nil {
			t.Fatal(err)
		}
		h := limInstall(nil)(rl.Handler(limOK))
		var codes []int
		for range 6 {
			w := limRecord(h, "[2001:db8::1]:1")
			codes = append(codes, w.Code)
			if w.Code == http.StatusOK && w.Header().Get("Ratelimit-Remaining") == "" {
				t.Errorf("HeadersOnSuccess: no RateLimit-Remaining")
			}
		}
		if fmt.Sprint(codes) != "[200 200 200 200 429 429]" {
			t.Errorf("codes %v", codes)
		}
		time.Sleep(30 * time.Second)
		if w := limRecord(h, "[2001:db8::2]:1"); w.Code != http.StatusOK {
			t.Errorf("after two windows: %d", w.Code)
		}
	})
}

// FuzzRateLimitEvaluate checks the sliding-window arithmetic against a
// reference computed with rationals: the decision is exact, and the retry
// time is exact: one more request then is admitted, one nanosecond earlier
// it is not.
func FuzzRateLimitEvaluate(f *testing.F) {
	f.Add(uint32(4), uint32(0), uint32(3), uint64(10e9), uint64(0))
	f.Add(uint32(3), uint32(10), uint32(10), uint64(10e9), uint64(2e9))
	f.Add(uint32(2), uint32(0), uint32(1), uint64(60e9), uint64(30e9))
	f.Add(uint32(1000), uint32(1000), uint32(10), uint64(10e9), uint64(5e9))
	f.Add(uint32(1), uint32(7), uint32(1), uint64(1e9), uint64(999_999_999))
	f.Fuzz(func(t *testing.T, curr, prev, limit uint32, w, e uint64) {
		// Map every input onto a valid state: counts include this
		// request, windows of 1 s to about 13 days.
		limit = max(limit, 1)
		curr = max(curr, 1)
		w = 1e9 + w%(1<<50)
		e %= w
		admits := func(c, p uint64, el uint64) bool { // c + p*(w-el)/w <= limit, in rationals
			lhs := newLimRat(0).addMul(c, w).addMul(p, w-el)
			return lhs.le(uint64(limit), w)
		}
		d := rlEvaluate(uint64(curr), uint64(prev), uint64(limit), w, e)
		if d.allowed != admits(uint64(curr), uint64(prev), e) {
			t.Fatalf("allowed = %v for curr %d prev %d limit %d w %d e %d", d.allowed, curr, prev, limit, w, e)
		}
		if d.allowed {
			return
		}
		if d.retry <= 0 {
			t.Fatalf("retry %v", d.retry)
		}
		// The state at now+retry, if nothing else arrives, with one more
		// request counted.
		at := e + uint64(d.retry)
		state := func(at uint64) (c, p, el uint64) {
			switch {
			case at < w:
				return uint64(curr) + 1, uint64(prev), at
			case at < 2*w:
				return 1, uint64(curr), at - w
			}
			return 1, 0, at % w
		}
		if c, p, el := state(at); !admits(c, p, el) {
			t.Fatalf("not admitted at retry time: curr %d prev %d limit %d w %d e %d retry %v", curr, prev, limit, w, e, d.retry)
		}
		if c, p, el := state(at - 1); at-1 > e && admits(c, p, el) {
			t.Fatalf("admitted 1ns before the retry time: curr %d prev %d limit %d w %d e %d retry %v", curr, prev, limit, w, e, d.retry)
		}
	})
}

// limRat is a 128-bit numerator over a common denominator, enough for the
// fuzz reference.
type limRat struct{ hi, lo uint64 }

func newLimRat(v uint64) limRat { return limRat{lo: v} }

func (r limRat) addMul(a, b uint64) limRat {
	h, l := bits.Mul64(a, b)
	lo, carry := bits.Add64(r.lo, l, 0)
	return limRat{hi: r.hi + h + carry, lo: lo}
}

// le reports whether r <= limit*w.
func (r limRat) le(limit, w uint64) bool {
	h, l := bits.Mul64(limit, w)
	return r.hi < h || (r.hi == h && r.lo <= l)
}

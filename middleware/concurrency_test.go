package middleware

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	chimw "github.com/go-chi/chi/v5/middleware"

	"github.com/stormcellar/stormcellar/httperr"
)

func TestNewConcurrencyLimitOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    ConcurrencyLimitOptions
		wantErr bool
	}{
		{name: "zero value", opts: ConcurrencyLimitOptions{}},
		{name: "global only", opts: ConcurrencyLimitOptions{Max: 10, PerClient: -1}},
		{name: "per client only", opts: ConcurrencyLimitOptions{Max: -1, PerClient: 2}},
		{name: "no queue", opts: ConcurrencyLimitOptions{Queue: -1, HoldTimeout: -1}},
		{name: "both caps disabled", opts: ConcurrencyLimitOptions{Max: -1, PerClient: -1}, wantErr: true},
		{name: "negative queue timeout", opts: ConcurrencyLimitOptions{QueueTimeout: -1}, wantErr: true},
		{name: "negative retry after", opts: ConcurrencyLimitOptions{RetryAfter: -1}, wantErr: true},
		{name: "per client too large", opts: ConcurrencyLimitOptions{PerClient: 1 << 31}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := NewConcurrencyLimit(tt.opts)
			if tt.wantErr {
				if !errors.Is(err, ErrLimitOptions) {
					t.Fatalf("err = %v, want ErrLimitOptions", err)
				}
				return
			}
			if err != nil || c == nil {
				t.Fatalf("NewConcurrencyLimit: %v", err)
			}
		})
	}
	c, _ := NewConcurrencyLimit(ConcurrencyLimitOptions{})
	if c.sem.size != 1024 || c.perClient != 32 || c.queue != 256 || c.queueTimeout != time.Second ||
		c.retryAfter != time.Second || c.hold != 30*time.Second {
		t.Errorf("defaults: %+v", c)
	}
}

// limGate is a handler that holds every request until released, and says
// when one has entered.
type limGate struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func newLimGate() *limGate {
	return &limGate{entered: make(chan struct{}, 64), release: make(chan struct{})}
}

func (g *limGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.entered <- struct{}{}
	select {
	case <-g.release:
	case <-r.Context().Done():
	}
	_, _ = w.Write([]byte("done"))
}

func (g *limGate) open() { g.once.Do(func() { close(g.release) }) }

// waitEntered waits for n requests to be inside the handler.
func (g *limGate) waitEntered(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-g.entered:
		case <-time.After(10 * time.Second):
			t.Fatal("requests did not reach the handler")
		}
	}
}

// TestConcurrencyLimitShedsAndRecovers fills the global cap on a real
// listener: the next request is shed with 503 and Retry-After (chi's
// Throttle, the anchor, answers 429 without Retry-After), and once the
// slots free up requests are served again.
func TestConcurrencyLimitShedsAndRecovers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		mw         func(t *testing.T) func(http.Handler) http.Handler
		wantStatus int
		wantRetry  string
	}{
		{name: "stormcellar", mw: func(t *testing.T) func(http.Handler) http.Handler {
			c, err := NewConcurrencyLimit(ConcurrencyLimitOptions{Max: 2, Queue: -1, RetryAfter: 3 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			return c.Handler
		}, wantStatus: http.StatusServiceUnavailable, wantRetry: "3"},
		{name: "anchor chi Throttle", mw: func(*testing.T) func(http.Handler) http.Handler {
			return chimw.Throttle(2)
		}, wantStatus: http.StatusTooManyRequests, wantRetry: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			gate := newLimGate()
			ev := &limEvents{}
			srv := limStart(t, tt.mw(t)(gate), ev)
			t.Cleanup(gate.open)
			c := limClient(t)

			held := make(chan limResult, 2)
			for range 2 {
				go func() { held <- limGet(c, srv.URL) }()
			}
			gate.waitEntered(t, 2)
			shed := limGet(c, srv.URL)
			if shed.err != nil || shed.status != tt.wantStatus || shed.header.Get("Retry-After") != tt.wantRetry {
				t.Errorf("over the cap: %d %v Retry-After %q, want %d %q", shed.status, shed.err,
					shed.header.Get("Retry-After"), tt.wantStatus, tt.wantRetry)
			}
			gate.open()
			for range 2 {
				if r := <-held; r.status != http.StatusOK {
					t.Errorf("held request: %d %v", r.status, r.err)
				}
			}
			for range 3 {
				if r := limGet(c, srv.URL); r.status != http.StatusOK {
					t.Errorf("after recovery: %d %v", r.status, r.err)
				}
			}
			if tt.name == "stormcellar" {
				if k := ev.kinds(); k[httperr.KindOverload] != 1 || len(k) != 1 {
					t.Errorf("httperr events %v, want one overload", k)
				}
			}
		})
	}
}

// TestConcurrencyLimitQueue checks the bounded wait queue on fake time:
// waiters are served in order as slots free up, a full queue sheds at
// once, and a waiter gives up after exactly QueueTimeout.
func TestConcurrencyLimitQueue(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c, err := NewConcurrencyLimit(ConcurrencyLimitOptions{Max: 1, Queue: 2, QueueTimeout: 5 * time.Second,
			PerClient: -1})
		if err != nil {
			t.Fatal(err)
		}
		var order []string
		var mu sync.Mutex
		release := make(chan struct{})
		h := limInstall(nil)(c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			order = append(order, r.URL.Path)
			mu.Unlock()
			if r.URL.Path == "/hold" {
				<-release
			}
		})))
		serve := func(path string) <-chan int {
			done := make(chan int, 1)
			go func() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
				done <- w.Code
			}()
			synctest.Wait()
			return done
		}
		holder := serve("/hold")
		first := serve("/first")
		second := serve("/second")
		if c.Running() != 1 || c.Waiting() != 2 {
			t.Fatalf("running %d waiting %d, want 1 and 2", c.Running(), c.Waiting())
		}
		if code := <-serve("/third"); code != http.StatusServiceUnavailable {
			t.Errorf("queue full: %d, want 503 at once", code)
		}
		time.Sleep(time.Second)
		close(release)
		for _, ch := range []<-chan int{holder, first, second} {
			if code := <-ch; code != http.StatusOK {
				t.Errorf("queued request: %d", code)
			}
		}
		if got := strings.Join(order, " "); got != "/hold /first /second" {
			t.Errorf("served in order %q", got)
		}

		// A waiter times out after exactly QueueTimeout.
		release = make(chan struct{})
		holder = serve("/hold")
		start := time.Now()
		waiter := serve("/late")
		if code := <-waiter; code != http.StatusServiceUnavailable {
			t.Errorf("waiter: %d, want 503", code)
		}
		if waited := time.Since(start); waited != 5*time.Second {
			t.Errorf("waited %v, want the QueueTimeout 5s", waited)
		}
		close(release)
		<-holder
		if c.Running() != 0 || c.Waiting() != 0 {
			t.Errorf("running %d waiting %d after all requests", c.Running(), c.Waiting())
		}
	})
}

// TestConcurrencyLimitPerClient lets one client (behind a trusted proxy)
// fill its own cap; it is shed at once while other clients, and other
// users behind the same address, are served.
func TestConcurrencyLimitPerClient(t *testing.T) {
	t.Parallel()
	c, err := NewConcurrencyLimit(ConcurrencyLimitOptions{PerClient: 2, Key: func(r *http.Request) string {
		return r.Header.Get("X-Test-User") // stands for an authenticated user id
	}})
	if err != nil {
		t.Fatal(err)
	}
	gate := newLimGate()
	ev := &limEvents{}
	srv := limStart(t, chimw.ClientIPFromXFF("127.0.0.1/32")(c.Handler(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/hold" {
				gate.ServeHTTP(w, r)
			}
		}))), ev)
	t.Cleanup(gate.open)
	cl := limClient(t)

	held := make(chan limResult, 2)
	for range 2 {
		go func() { held <- limGet(cl, srv.URL+"/hold", "X-Forwarded-For", "203.0.113.66") }()
	}
	gate.waitEntered(t, 2)
	if r := limGet(cl, srv.URL, "X-Forwarded-For", "203.0.113.66"); r.status != http.StatusServiceUnavailable ||
		r.header.Get("Retry-After") != "1" {
		t.Errorf("client over its cap: %d %v, want 503 with Retry-After", r.status, r.err)
	}
	// Spoofing the header the proxy appends to does not help.
	if r := limGet(cl, srv.URL, "X-Forwarded-For", "198.51.100.1, 203.0.113.66"); r.status != http.StatusServiceUnavailable {
		t.Errorf("client prepending a forged address: %d, want 503", r.status)
	}
	for _, hdr := range [][]string{
		{"X-Forwarded-For", "203.0.113.10"},
		{"X-Forwarded-For", "203.0.113.66", "X-Test-User", "alice"},
	} {
		if r := limGet(cl, srv.URL, hdr...); r.status != http.StatusOK {
			t.Errorf("%v while another client is at its cap: %d %v", hdr, r.status, r.err)
		}
	}
	gate.open()
	for range 2 {
		<-held
	}
	if r := limGet(cl, srv.URL, "X-Forwarded-For", "203.0.113.66"); r.status != http.StatusOK {
		t.Errorf("client after its requests finished: %d", r.status)
	}
	for i := range c.shards {
		if n := len(c.shards[i].m); n != 0 {
			t.Errorf("shard %d still tracks %d clients", i, n)
		}
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	for _, e := range ev.events {
		if !errors.Is(e.Err, ErrClientOverloaded) || e.Kind != httperr.KindOverload {
			t.Errorf("event %+v, want overload wrapping ErrClientOverloaded", e)
		}
	}
}

// TestConcurrencyLimitSlowReader is the slot-pinning attack on a real
// listener: a client asks for a large response and never reads it. With
// HoldTimeout, the handler's writes fail and the slot is freed, so a
// waiting legitimate request is served; with chi's Throttle (the anchor)
// the attacker keeps the slot and the legitimate request is refused.
func TestConcurrencyLimitSlowReader(t *testing.T) {
	t.Parallel()
	const big = 64 << 20
	tests := []struct {
		name       string
		mw         func(t *testing.T) func(http.Handler) http.Handler
		wantStatus int
	}{
		{name: "stormcellar", mw: func(t *testing.T) func(http.Handler) http.Handler {
			c, err := NewConcurrencyLimit(ConcurrencyLimitOptions{Max: 1, Queue: 4, QueueTimeout: 15 * time.Second,
				HoldTimeout: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			return c.Handler
		}, wantStatus: http.StatusOK},
		{name: "anchor chi Throttle", mw: func(*testing.T) func(http.Handler) http.Handler {
			return chimw.ThrottleBacklog(1, 4, 2*time.Second)
		}, wantStatus: http.StatusTooManyRequests},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			entered := make(chan struct{}, 1)
			var written atomic.Int64
			var writeErr atomic.Bool
			chunk := make([]byte, 32<<10)
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/big" {
					_, _ = w.Write([]byte("small"))
					return
				}
				entered <- struct{}{}
				for written.Load() < big {
					n, err := w.Write(chunk)
					written.Add(int64(n))
					if err != nil {
						writeErr.Store(true)
						return
					}
				}
			})
			srv := limStart(t, tt.mw(t)(h), nil)
			attacker, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = attacker.Close() }) // before srv.Close
			if _, err := attacker.Write([]byte("GET /big HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
				t.Fatal(err)
			}
			select {
			case <-entered:
			case <-time.After(10 * time.Second):
				t.Fatal("attack request never reached the handler")
			}

			start := time.Now()
			r := limGet(limClient(t), srv.URL+"/small")
			took := time.Since(start)
			if r.err != nil || r.status != tt.wantStatus {
				t.Fatalf("legitimate request while the slot is pinned: %d %v, want %d", r.status, r.err, tt.wantStatus)
			}
			t.Logf("legitimate request: %d after %v; attacker was sent %d MiB", r.status, took.Round(time.Millisecond),
				written.Load()>>20)
			if tt.wantStatus == http.StatusOK {
				if took > 5*time.Second {
					t.Errorf("legitimate request took %v; the slot should be freed after HoldTimeout", took)
				}
				if !writeErr.Load() || written.Load() >= big {
					t.Errorf("attacker's response was not cut off (%d bytes written)", written.Load())
				}
				// The attacker's connection was closed: reading what was
				// buffered ends before the full body.
				_ = attacker.SetReadDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReaderSize(attacker, 1<<20)
				var got int64
				for {
					n, err := br.Read(chunk)
					got += int64(n)
					if err != nil {
						break
					}
				}
				if got >= big {
					t.Errorf("attacker read the whole body (%d bytes)", got)
				}
			}
		})
	}
}

// TestConcurrencyLimitClientGoneWhileWaiting: a queued request whose
// client disconnects leaves the queue at once and is recorded as canceled;
// it does not take the slot that frees up later.
func TestConcurrencyLimitClientGoneWhileWaiting(t *testing.T) {
	t.Parallel()
	c, err := NewConcurrencyLimit(ConcurrencyLimitOptions{Max: 1, Queue: 1, QueueTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	gate := newLimGate()
	ev := &limEvents{}
	srv := limStart(t, c.Handler(gate), ev)
	t.Cleanup(gate.open)
	cl := limClient(t)
	held := make(chan limResult, 1)
	go func() { held <- limGet(cl, srv.URL) }()
	gate.waitEntered(t, 1)

	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		resp, err := cl.Do(req)
		if err == nil {
			_ = resp.Body.Close()
		}
		gone <- err
	}()
	limEventually(t, func() bool { return c.Waiting() == 1 })
	cancel()
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Errorf("client: %v", err)
	}
	limEventually(t, func() bool { return c.Waiting() == 0 })
	limEventually(t, func() bool { return ev.kinds()[httperr.KindCanceled] == 1 })
	gate.open()
	if r := <-held; r.status != http.StatusOK {
		t.Errorf("holder: %d", r.status)
	}
	if r := limGet(cl, srv.URL); r.status != http.StatusOK {
		t.Errorf("next request: %d", r.status)
	}
}

// limEventually polls cond for up to 10 s.
func limEventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestConcurrencyLimitPanicReleases: a handler that panics (here aborting
// the response) still gives its slot back.
func TestConcurrencyLimitPanicReleases(t *testing.T) {
	t.Parallel()
	c, err := NewConcurrencyLimit(ConcurrencyLimitOptions{Max: 1, PerClient: 1, Queue: -1})
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	srv := limStart(t, c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 3 {
			panic(http.ErrAbortHandler)
		}
	})), nil)
	cl := limClient(t)
	for range 3 {
		if r := limGet(cl, srv.URL); r.err == nil {
			t.Errorf("aborted request got %d", r.status)
		}
	}
	if r := limGet(cl, srv.URL); r.status != http.StatusOK {
		t.Errorf("after panics: %d %v", r.status, r.err)
	}
	if c.Running() != 0 {
		t.Errorf("running %d", c.Running())
	}
}

// limDeadlineRecorder records the write deadlines set on it.
type limDeadlineRecorder struct {
	*httptest.ResponseRecorder
	set []time.Time
}

func (w *limDeadlineRecorder) SetWriteDeadline(t time.Time) error {
	w.set = append(w.set, t)
	return nil
}

// limWrapped hides a writer behind Unwrap, as middleware wrappers do.
type limWrapped struct{ http.ResponseWriter }

func (w limWrapped) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func TestConcurrencyLimitHoldTimeout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		hold      time.Duration
		method    string
		header    http.Header
		serverWT  time.Duration
		wrap      bool
		wantSetIn time.Duration // 0: no deadline set
	}{
		{name: "default 30s", wantSetIn: 30 * time.Second},
		{name: "through Unwrap", wrap: true, wantSetIn: 30 * time.Second},
		{name: "configured", hold: time.Second, wantSetIn: time.Second},
		{name: "disabled", hold: -1},
		// Upgrade headers are the client's to choose: they must not lift
		// the hold (a real upgrade hijacks, and net/http then clears the
		// connection's deadlines).
		{name: "upgrade headers", header: http.Header{"Connection": {"keep-alive, Upgrade"}, "Upgrade": {"websocket"}}, wantSetIn: 30 * time.Second},
		{name: "CONNECT", method: http.MethodConnect},
		{name: "server WriteTimeout shorter", serverWT: 10 * time.Second},
		{name: "server WriteTimeout longer", serverWT: time.Minute, wantSetIn: 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				c, err := NewConcurrencyLimit(ConcurrencyLimitOptions{HoldTimeout: tt.hold})
				if err != nil {
					t.Fatal(err)
				}
				method := tt.method
				if method == "" {
					method = http.MethodGet
				}
				r := httptest.NewRequest(method, "/", nil)
				if tt.header != nil {
					r.Header = tt.header
				}
				if tt.serverWT > 0 {
					r = r.WithContext(context.WithValue(r.Context(), http.ServerContextKey,
						&http.Server{WriteTimeout: tt.serverWT}))
				}
				rec := &limDeadlineRecorder{ResponseRecorder: httptest.NewRecorder()}
				var w http.ResponseWriter = rec
				if tt.wrap {
					w = limWrapped{rec}
				}
				c.Handler(limOK).ServeHTTP(w, r)
				switch {
				case tt.wantSetIn == 0 && len(rec.set) != 0:
					t.Errorf("deadline set: %v", rec.set)
				case tt.wantSetIn != 0 && (len(rec.set) != 1 || time.Until(rec.set[0]) != tt.wantSetIn):
					t.Errorf("deadlines %v, want one %v ahead", rec.set, tt.wantSetIn)
				}
			})
		})
	}
}

// The hold deadline is set on every request, Upgrade headers or not; a
// real WebSocket, which hijacks the connection, is not cut by it because
// net/http clears the connection's deadlines on Hijack.
func TestConcurrencyLimitHoldSparesHijackedWebSocket(t *testing.T) {
	t.Parallel()
	const hold = 200 * time.Millisecond
	c, err := NewConcurrencyLimit(ConcurrencyLimitOptions{HoldTimeout: hold})
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		for {
			typ, msg, err := ws.Read(r.Context())
			if err != nil {
				return
			}
			if err := ws.Write(r.Context(), typ, msg); err != nil {
				return
			}
		}
	})))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	time.Sleep(2 * hold)
	if err := ws.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := ws.Read(ctx); err != nil || string(msg) != "hi" {
		t.Fatalf("echo after HoldTimeout: %q %v", msg, err)
	}
	_ = ws.Close(websocket.StatusNormalClosure, "")
}

package keyedmutex_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stormcellar/stormcellar/httperr"
	"github.com/stormcellar/stormcellar/keyedmutex"
)

// eventLoop reproduces how an asynchronous server interleaves requests: a
// request that awaits (here, a payment) resumes only when every other
// request that can run has run up to its own await, blocked on a lock, or
// finished. This makes the seed's race deterministic: without a lock, every
// buyer checks the stock before any of them pays and decrements it.
type eventLoop struct {
	mu       sync.Mutex
	cond     sync.Cond
	expected int // requests that must arrive before any proceeds
	arrived  int
	running  int // in handler code, not awaiting and not blocked on a lock
	awaiting int
	batch    int // incremented each time the awaiting requests resume
	broken   bool
}

func newEventLoop(expected int) *eventLoop {
	l := &eventLoop{expected: expected}
	l.cond.L = &l.mu
	// A safety net so that a bug cannot hang the test run.
	time.AfterFunc(30*time.Second, func() {
		l.mu.Lock()
		l.broken = true
		l.cond.Broadcast()
		l.mu.Unlock()
	})
	return l
}

// enter waits until every expected request has arrived.
func (l *eventLoop) enter() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.arrived++
	l.running++
	l.cond.Broadcast()
	for l.arrived < l.expected && !l.broken {
		l.cond.Wait()
	}
}

func (l *eventLoop) blocking()      { l.add(-1) }
func (l *eventLoop) unblocked()     { l.add(+1) }
func (l *eventLoop) leave()         { l.add(-1) }
func (l *eventLoop) add(n int)      { l.mu.Lock(); l.running += n; l.maybeResume(); l.mu.Unlock() }
func (l *eventLoop) isBroken() bool { l.mu.Lock(); defer l.mu.Unlock(); return l.broken }

// await is an await point: it returns when no other request can run.
func (l *eventLoop) await() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.running--
	l.awaiting++
	b := l.batch
	l.maybeResume()
	for l.batch == b && !l.broken {
		l.cond.Wait()
	}
}

func (l *eventLoop) maybeResume() {
	if l.running == 0 && l.awaiting > 0 {
		l.running += l.awaiting
		l.awaiting = 0
		l.batch++
		l.cond.Broadcast()
	}
}

// shop is the seed's e-commerce example: check the stock, await the
// payment, decrement the stock.
type shop struct {
	locks *keyedmutex.Map[string] // nil: no lock
	loop  *eventLoop

	mu    sync.Mutex // makes each read and write atomic; not the check-then-act
	stock map[string]int
}

func (s *shop) get(sku string) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.stock[sku]
	return n, ok
}

func (s *shop) set(sku string, n int) {
	s.mu.Lock()
	s.stock[sku] = n
	s.mu.Unlock()
}

var errSoldOut = errors.New("sold out")

func (s *shop) buy(w http.ResponseWriter, r *http.Request) error {
	sku := r.PathValue("sku")
	s.loop.enter()
	defer s.loop.leave()
	if s.locks != nil {
		s.loop.blocking()
		g, err := s.locks.Lock(r.Context(), sku)
		s.loop.unblocked()
		if errors.Is(err, keyedmutex.ErrTooManyKeys) {
			return httperr.Unavailable(httperr.KindOverload, time.Second, err)
		}
		if err != nil {
			return err
		}
		defer g.Unlock()
	}
	n, ok := s.get(sku)
	if !ok {
		return httperr.NotFound(nil)
	}
	if n <= 0 {
		return &httperr.HTTPError{Status: http.StatusConflict, Message: "Sold out", Err: errSoldOut}
	}
	s.loop.await() // the payment provider answers
	s.set(sku, n-1)
	w.Header().Set("Content-Type", "application/json")
	_, err := fmt.Fprintf(w, `{"bought":%q,"left":%d}`, sku, n-1)
	return err
}

func newShopServer(t *testing.T, s *shop) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("POST /buy/{sku}", httperr.HandlerFunc(s.buy))
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})
	quiet := slog.New(slog.DiscardHandler)
	srv := httptest.NewServer(httperr.Install(httperr.Options{Logger: quiet})(mux))
	t.Cleanup(srv.Close)
	return srv
}

func newClient(t *testing.T, conns int) *http.Client {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: conns}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}
}

type result struct {
	status int
	body   string
}

// buyAll sends n concurrent purchases of sku and returns the answers.
func buyAll(t *testing.T, client *http.Client, url, sku string, n int) []result {
	t.Helper()
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, url+"/buy/"+sku, nil)
			req.Header.Set("Accept", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			results[i] = result{resp.StatusCode, string(b)}
		}()
	}
	wg.Wait()
	return results
}

// TestShopOversellsWithoutLock shows the attack working: concurrent
// purchases of the last items through a real server sell more than the
// stock when nothing serialises the check and the update.
func TestShopOversellsWithoutLock(t *testing.T) {
	t.Parallel()
	const buyers, stock = 50, 10
	s := &shop{loop: newEventLoop(buyers), stock: map[string]int{"sku-1": stock}}
	srv := newShopServer(t, s)
	results := buyAll(t, newClient(t, buyers), srv.URL, "sku-1", buyers)
	if s.loop.isBroken() {
		t.Fatal("the event loop timed out")
	}
	sold := 0
	for _, r := range results {
		if r.status == http.StatusOK {
			sold++
		}
	}
	if sold <= stock {
		t.Fatalf("sold %d of %d without a lock: the attack should oversell", sold, stock)
	}
	left, _ := s.get("sku-1")
	t.Logf("without the keyed lock: %d buyers paid for a stock of %d; stock left %d", sold, stock, left)
}

// TestShopKeyedLockSellsExactlyTheStock is the same attack with the keyed
// lock: exactly the stock is sold, every other buyer gets a clean 409 with
// a JSON body and a request id, no 5xx, and the lock map is empty
// afterwards.
func TestShopKeyedLockSellsExactlyTheStock(t *testing.T) {
	t.Parallel()
	const buyers, stock = 50, 10
	locks := new(keyedmutex.Map[string])
	s := &shop{locks: locks, loop: newEventLoop(buyers), stock: map[string]int{"sku-1": stock}}
	srv := newShopServer(t, s)
	results := buyAll(t, newClient(t, buyers), srv.URL, "sku-1", buyers)
	if s.loop.isBroken() {
		t.Fatal("the event loop timed out")
	}
	sold, refused := 0, 0
	for _, r := range results {
		switch r.status {
		case http.StatusOK:
			sold++
		case http.StatusConflict:
			refused++
			var body struct {
				Error struct {
					Status    int    `json:"status"`
					Message   string `json:"message"`
					RequestID string `json:"request_id"`
				} `json:"error"`
			}
			err := json.Unmarshal([]byte(r.body), &body)
			if e := body.Error; err != nil || e.Status != 409 || e.Message != "Sold out" || e.RequestID == "" {
				t.Errorf("refusal body %q: want a JSON Sold out with a request id (%v)", r.body, err)
			}
		default:
			t.Errorf("unexpected answer %d %q", r.status, r.body)
		}
	}
	if sold != stock || refused != buyers-stock {
		t.Fatalf("sold %d, refused %d; want %d and %d", sold, refused, stock, buyers-stock)
	}
	if left, _ := s.get("sku-1"); left != 0 {
		t.Fatalf("stock left %d, want 0", left)
	}
	if n := locks.Len(); n != 0 {
		t.Fatalf("lock map holds %d keys after the attack", n)
	}
}

// TestShopAttackerKeysShedWith503: an attacker who makes the server hold
// locks on many distinct SKUs at once (slow payments) cannot grow the lock
// map past MaxKeys: the next new SKU is answered 503 with Retry-After at
// once, SKUs already locked are still served in turn, other routes keep
// answering, and the map drains when the payments finish.
func TestShopAttackerKeysShedWith503(t *testing.T) {
	t.Parallel()
	const maxKeys = 8
	locks := &keyedmutex.Map[string]{MaxKeys: maxKeys}
	payments := make(chan struct{})
	var holding sync.WaitGroup
	holding.Add(maxKeys)
	waitingBuyer := make(chan struct{})
	mux := http.NewServeMux()
	mux.Handle("POST /buy/{sku}", httperr.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		if r.URL.Query().Get("queued") == "1" {
			close(waitingBuyer) // about to wait for a key that is held
		}
		g, err := locks.Lock(r.Context(), r.PathValue("sku"))
		if errors.Is(err, keyedmutex.ErrTooManyKeys) {
			return httperr.Unavailable(httperr.KindOverload, 2*time.Second, err)
		}
		if err != nil {
			return err
		}
		defer g.Unlock()
		if r.URL.Query().Get("slow") == "1" {
			holding.Done()
			<-payments // a payment that takes its time
		}
		_, err = io.WriteString(w, "bought")
		return err
	}))
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	srv := httptest.NewServer(httperr.Install(httperr.Options{Logger: slog.New(slog.DiscardHandler)})(mux))
	defer srv.Close()
	finishPayments := sync.OnceFunc(func() { close(payments) })
	defer finishPayments() // before srv.Close, even if the test fails
	client := newClient(t, 2*maxKeys)

	post := func(path string) (int, http.Header) {
		resp, err := client.Post(srv.URL+path, "text/plain", nil)
		if err != nil {
			t.Error(err)
			return 0, nil
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header
	}
	var slow sync.WaitGroup
	for i := range maxKeys {
		slow.Add(1)
		go func() {
			defer slow.Done()
			if code, _ := post("/buy/attacker-" + strconv.Itoa(i) + "?slow=1"); code != http.StatusOK {
				t.Errorf("slow purchase %d: %d", i, code)
			}
		}()
	}
	holding.Wait() // the map is full

	start := time.Now()
	code, h := post("/buy/attacker-new")
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") != "2" {
		t.Fatalf("new key past the cap: %d Retry-After=%q, want 503 and 2", code, h.Get("Retry-After"))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("refusal took %v: it should not wait", d)
	}
	if n := locks.Len(); n != maxKeys {
		t.Fatalf("Len = %d, want the cap %d", n, maxKeys)
	}
	resp, err := client.Get(srv.URL + "/health")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("health during the attack: %v %v", resp, err)
	}
	resp.Body.Close()

	// A buyer of an SKU already locked waits its turn instead of failing.
	queued := make(chan int, 1)
	go func() { c, _ := post("/buy/attacker-0?queued=1"); queued <- c }()
	<-waitingBuyer
	finishPayments()
	slow.Wait()
	if c := <-queued; c != http.StatusOK {
		t.Fatalf("buyer of a locked SKU: %d, want 200 after the payment", c)
	}
	if n := locks.Len(); n != 0 {
		t.Fatalf("Len = %d after the payments finished", n)
	}
	if c, _ := post("/buy/legit"); c != http.StatusOK {
		t.Fatalf("legitimate purchase after the attack: %d", c)
	}
}

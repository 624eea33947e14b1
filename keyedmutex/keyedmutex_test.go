package keyedmutex_test

import (
	"context"
	"errors"
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/stormcellar/stormcellar/internal/testutil"
	"github.com/stormcellar/stormcellar/keyedmutex"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// mustLock locks key or fails the test.
func mustLock[K comparable](t testing.TB, m *keyedmutex.Map[K], key K) keyedmutex.Guard[K] {
	t.Helper()
	g, err := m.Lock(context.Background(), key)
	if err != nil {
		t.Fatalf("Lock(%v): %v", key, err)
	}
	return g
}

// TestLastItemsUnderPerSKULocks is the seed's attack at scale: 10,000
// goroutines try to buy from a stock of 100 (and from two other SKUs at the
// same time). Exactly the stock is sold, the stock never goes below zero,
// and the map is empty afterwards. The stock is a plain int, so the race
// detector also checks that the lock orders every access.
func TestLastItemsUnderPerSKULocks(t *testing.T) {
	t.Parallel()
	const buyers = 10_000
	skus := []string{"last-items", "other-1", "other-2"}
	// One record per SKU; the map itself is only read.
	type item struct {
		stock, lowest int // guarded by the SKU's key, not by a mutex of their own
		sold          atomic.Int64
	}
	items := make(map[string]*item)
	for _, s := range skus {
		items[s] = &item{stock: 100, lowest: 100}
	}
	var locks keyedmutex.Map[string]
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range buyers {
		sku := skus[i%len(skus)]
		if i%2 == 0 {
			sku = "last-items" // half the buyers fight over one SKU
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			g, err := locks.Lock(context.Background(), sku)
			if err != nil {
				t.Error(err)
				return
			}
			defer g.Unlock()
			it := items[sku]
			n := it.stock
			if n <= 0 {
				return // sold out: a clean refusal
			}
			runtime.Gosched() // the await between check and update
			it.stock = n - 1
			it.lowest = min(it.lowest, n-1)
			it.sold.Add(1)
		}()
	}
	close(start)
	wg.Wait()
	for _, s := range skus {
		it := items[s]
		if got := it.sold.Load(); got != 100 {
			t.Errorf("%s: sold %d, want exactly 100", s, got)
		}
		if it.stock != 0 || it.lowest < 0 {
			t.Errorf("%s: stock %d, lowest %d; want 0 and never below 0", s, it.stock, it.lowest)
		}
	}
	if n := locks.Len(); n != 0 {
		t.Errorf("Len = %d after all unlocks, want 0", n)
	}
}

// TestWithoutLockOversells is the control for the test above: the same
// check-then-update without the keyed lock sells more than the stock. The
// stock is an atomic, so this is a logic race that the race detector does
// not see, which is why the lock is needed. Every buyer reads the stock
// before any of them updates it, as they would across an await.
func TestWithoutLockOversells(t *testing.T) {
	t.Parallel()
	const buyers, initial = 200, 100
	var stock atomic.Int64
	stock.Store(initial)
	var sold atomic.Int64
	var checked sync.WaitGroup
	checked.Add(buyers)
	var wg sync.WaitGroup
	for range buyers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := stock.Load()
			checked.Done()
			checked.Wait() // every request passed the check: the await point
			if n <= 0 {
				return
			}
			stock.Store(n - 1)
			sold.Add(1)
		}()
	}
	wg.Wait()
	if sold.Load() <= initial {
		t.Fatalf("sold %d of %d without a lock; the control should oversell", sold.Load(), initial)
	}
	t.Logf("without a lock: sold %d of a stock of %d", sold.Load(), initial)
}

// TestCancelledWaiterLeavesNoTrace: a Lock whose context ends before it
// gets the key returns the context's error, holds nothing, and leaves the
// map as if it had never been called.
func TestCancelledWaiterLeavesNoTrace(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		held    bool // another goroutine holds the key
		ctx     func() (context.Context, context.CancelFunc)
		wantErr error
		wait    time.Duration // how long Lock should wait before failing
	}{
		{"done before the call, key free", false, func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, context.Canceled, 0},
		{"done before the call, key held", true, func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, context.Canceled, 0},
		{"cancelled while waiting", true, func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(time.Second, cancel)
			return ctx, cancel
		}, context.Canceled, time.Second},
		{"deadline while waiting", true, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), time.Second)
		}, context.DeadlineExceeded, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				var m keyedmutex.Map[string]
				var holder keyedmutex.Guard[string]
				if tt.held {
					holder = mustLock(t, &m, "k")
				}
				before := m.Len()
				ctx, cancel := tt.ctx()
				defer cancel()
				start := time.Now()
				g, err := m.Lock(ctx, "k")
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Lock: err = %v, want %v", err, tt.wantErr)
				}
				if g != (keyedmutex.Guard[string]{}) {
					t.Fatal("failed Lock returned a non-zero Guard")
				}
				if d := time.Since(start); d != tt.wait {
					t.Fatalf("Lock gave up after %v, want %v", d, tt.wait)
				}
				if got := m.Len(); got != before {
					t.Fatalf("Len = %d after the failed Lock, want %d", got, before)
				}
				if tt.held {
					// The holder still holds; nobody else got the key.
					if _, err := m.TryLock("k"); !errors.Is(err, keyedmutex.ErrLocked) {
						t.Fatalf("TryLock while held: %v", err)
					}
					holder.Unlock()
				}
				if got := m.Len(); got != 0 {
					t.Fatalf("Len = %d after the holder left, want 0", got)
				}
				g = mustLock(t, &m, "k") // the key is free again at once
				g.Unlock()
			})
		})
	}
}

// TestCancelledWaiterKeepsQueueOrder: cancelling a waiter in the middle of
// the queue lets the others through in arrival order.
func TestCancelledWaiterKeepsQueueOrder(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var m keyedmutex.Map[string]
		holder := mustLock(t, &m, "k")
		order := make(chan string, 3)
		cancels := map[string]context.CancelFunc{}
		for _, name := range []string{"a", "b", "c"} {
			ctx, cancel := context.WithCancel(context.Background())
			cancels[name] = cancel
			go func() {
				defer cancel()
				g, err := m.Lock(ctx, "k")
				if err != nil {
					order <- name + ":" + err.Error()
					return
				}
				order <- name
				g.Unlock()
			}()
			synctest.Wait() // queued before the next one arrives
		}
		cancels["b"]()
		if got := <-order; got != "b:context canceled" {
			t.Fatalf("first result %q, want b cancelled", got)
		}
		holder.Unlock()
		if a, c := <-order, <-order; a != "a" || c != "c" {
			t.Fatalf("order %s, %s; want a, c", a, c)
		}
		if n := m.Len(); n != 0 {
			t.Fatalf("Len = %d", n)
		}
	})
}

// TestNotReentrant: locking a key twice from one goroutine waits for
// itself until the context gives up; it does not succeed and does not
// corrupt the first hold.
func TestNotReentrant(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var m keyedmutex.Map[string]
		g := mustLock(t, &m, "k")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		if _, err := m.Lock(ctx, "k"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("second Lock of a held key: %v, want DeadlineExceeded", err)
		}
		if d := time.Since(start); d != 5*time.Second {
			t.Fatalf("waited %v, want the 5s deadline", d)
		}
		g.Unlock()
		if n := m.Len(); n != 0 {
			t.Fatalf("Len = %d", n)
		}
	})
}

// TestTryLock covers every outcome of TryLock, including the key cap.
func TestTryLock(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		maxKeys int
		held    []string // keys held before the call
		key     string
		wantErr error
	}{
		{"free key", 0, nil, "a", nil},
		{"held key", 0, []string{"a"}, "a", keyedmutex.ErrLocked},
		{"other key held", 0, []string{"b"}, "a", nil},
		{"cap reached, new key", 2, []string{"a", "b"}, "c", keyedmutex.ErrTooManyKeys},
		{"cap reached, held key", 2, []string{"a", "b"}, "a", keyedmutex.ErrLocked},
		{"below cap", 3, []string{"a", "b"}, "c", nil},
		{"no cap", -1, []string{"a", "b", "c"}, "d", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := &keyedmutex.Map[string]{MaxKeys: tt.maxKeys}
			var guards []keyedmutex.Guard[string]
			for _, k := range tt.held {
				guards = append(guards, mustLock(t, m, k))
			}
			g, err := m.TryLock(tt.key)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("TryLock(%q) = %v, want %v", tt.key, err, tt.wantErr)
			}
			if err == nil {
				guards = append(guards, g)
			}
			wantLen := len(tt.held)
			if err == nil {
				wantLen = len(guards)
			}
			if n := m.Len(); n != wantLen {
				t.Fatalf("Len = %d, want %d", n, wantLen)
			}
			for _, g := range guards {
				g.Unlock()
			}
			if n := m.Len(); n != 0 {
				t.Fatalf("Len = %d after unlocking everything", n)
			}
		})
	}
}

// TestMaxKeysBoundsAttackerKeys: keys chosen by a client cannot grow the
// map past its cap. Lock of a new key fails at once with ErrTooManyKeys
// (no waiting), keys already present can still be waited for, and new keys
// work again as soon as the map drains.
func TestMaxKeysBoundsAttackerKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		maxKeys int
		cap     int // -1: none
	}{
		{"explicit cap", 100, 100},
		{"zero value uses DefaultMaxKeys", 0, keyedmutex.DefaultMaxKeys},
		{"negative disables the cap", -1, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				m := &keyedmutex.Map[int]{MaxKeys: tt.maxKeys}
				n := tt.cap
				if n < 0 {
					n = keyedmutex.DefaultMaxKeys + 10
				}
				guards := make([]keyedmutex.Guard[int], 0, n)
				for i := range n {
					guards = append(guards, mustLock(t, m, i))
				}
				ctx := context.Background()
				g, err := m.Lock(ctx, n) // one more distinct key
				if tt.cap < 0 {
					if err != nil {
						t.Fatalf("no cap: Lock of key %d: %v", n, err)
					}
					g.Unlock()
				} else if !errors.Is(err, keyedmutex.ErrTooManyKeys) {
					t.Fatalf("Lock past the cap: err = %v, want ErrTooManyKeys", err)
				}
				if got := m.Len(); got != n {
					t.Fatalf("Len = %d, want %d", got, n)
				}
				// A key already present is still waited for, not refused.
				waited := make(chan error, 1)
				go func() {
					g, err := m.Lock(ctx, 0)
					if err == nil {
						g.Unlock()
					}
					waited <- err
				}()
				synctest.Wait()
				for _, g := range guards {
					g.Unlock()
				}
				if err := <-waited; err != nil {
					t.Fatalf("waiting for a present key at the cap: %v", err)
				}
				if got := m.Len(); got != 0 {
					t.Fatalf("Len = %d after draining", got)
				}
				g = mustLock(t, m, n) // new keys work again
				g.Unlock()
			})
		})
	}
}

// TestUnlockMisusePanics: every misuse of a Guard panics with a
// "keyedmutex:" message that recover can catch, and leaves the rightful
// holder holding.
func TestUnlockMisusePanics(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// misuse returns the Guard of the rightful holder (or a zero Guard
		// if nobody should hold "k") and the Guard to misuse.
		misuse func(m *keyedmutex.Map[string]) (holder, bad keyedmutex.Guard[string])
		want   string
	}{
		{"double unlock", func(m *keyedmutex.Map[string]) (_, _ keyedmutex.Guard[string]) {
			g, _ := m.TryLock("k")
			g.Unlock()
			return keyedmutex.Guard[string]{}, g
		}, "double unlock"},
		{"unlock through a copy", func(m *keyedmutex.Map[string]) (_, _ keyedmutex.Guard[string]) {
			g, _ := m.TryLock("k")
			c := g
			g.Unlock()
			return keyedmutex.Guard[string]{}, c
		}, "double unlock"},
		{"stale guard after another goroutine locked the key", func(m *keyedmutex.Map[string]) (_, _ keyedmutex.Guard[string]) {
			old, _ := m.TryLock("k")
			old.Unlock()
			now, _ := m.TryLock("k")
			return now, old
		}, "double unlock"},
		{"stale guard after its entry was reused for another key", func(m *keyedmutex.Map[string]) (_, _ keyedmutex.Guard[string]) {
			old, _ := m.TryLock("x")
			old.Unlock()
			now, _ := m.TryLock("k") // reuses x's freed entry
			return now, old
		}, "double unlock"},
		{"zero guard", func(m *keyedmutex.Map[string]) (_, _ keyedmutex.Guard[string]) {
			_, err := m.Lock(canceledContext(), "k")
			if err == nil {
				panic("Lock with a done context succeeded")
			}
			return keyedmutex.Guard[string]{}, keyedmutex.Guard[string]{}
		}, "zero Guard"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var m keyedmutex.Map[string]
			holder, bad := tt.misuse(&m)
			msg := func() (msg string) {
				defer func() {
					v := recover()
					msg, _ = v.(string)
				}()
				bad.Unlock()
				return ""
			}()
			if !strings.HasPrefix(msg, "keyedmutex: ") || !strings.Contains(msg, tt.want) {
				t.Fatalf("panic message %q, want a keyedmutex: message about %q", msg, tt.want)
			}
			if holder != (keyedmutex.Guard[string]{}) {
				if _, err := m.TryLock("k"); !errors.Is(err, keyedmutex.ErrLocked) {
					t.Fatalf("the rightful holder lost the key: TryLock = %v", err)
				}
				holder.Unlock()
			}
			if n := m.Len(); n != 0 {
				t.Fatalf("Len = %d", n)
			}
		})
	}
}

func canceledContext() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// TestDo: Do runs fn under the key, returns its error, unlocks even when fn
// panics, and does not call fn when Lock fails.
func TestDo(t *testing.T) {
	t.Parallel()
	errFn := errors.New("fn failed")
	tests := []struct {
		name      string
		ctx       context.Context
		fn        func() error
		wantErr   error
		wantPanic bool
		wantCall  bool
	}{
		{"success", context.Background(), func() error { return nil }, nil, false, true},
		{"fn error passes through", context.Background(), func() error { return errFn }, errFn, false, true},
		{"fn panics, key still unlocked", context.Background(), func() error { panic("boom") }, nil, true, true},
		{"context done, fn not called", canceledContext(), func() error { return nil }, context.Canceled, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var m keyedmutex.Map[string]
			called := false
			var err error
			panicked := func() (p bool) {
				defer func() { p = recover() != nil }()
				err = m.Do(tt.ctx, "k", func() error {
					called = true
					if _, err := m.TryLock("k"); !errors.Is(err, keyedmutex.ErrLocked) {
						t.Errorf("key not held inside Do: %v", err)
					}
					return tt.fn()
				})
				return false
			}()
			if panicked != tt.wantPanic || called != tt.wantCall || !errors.Is(err, tt.wantErr) {
				t.Fatalf("panicked=%v called=%v err=%v; want %v %v %v",
					panicked, called, err, tt.wantPanic, tt.wantCall, tt.wantErr)
			}
			if n := m.Len(); n != 0 {
				t.Fatalf("Len = %d after Do", n)
			}
		})
	}
}

// TestMillionKeysChurnLeavesNothing: 1,000,000 distinct keys locked and
// unlocked from several goroutines leave an empty map (the leak of an
// append-only map[string]*sync.Mutex is the control).
func TestMillionKeysChurnLeavesNothing(t *testing.T) {
	t.Parallel()
	const keys, workers = 1_000_000, 4
	var m keyedmutex.Map[int]
	var naive sync.Map // the append-only pattern: one mutex per key ever seen
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := w; k < keys; k += workers {
				g, err := m.TryLock(k)
				if err != nil {
					t.Error(err)
					return
				}
				g.Unlock()
				if k%100 == 0 { // the control, sampled to keep the test fast
					v, _ := naive.LoadOrStore(k, new(guardedCount))
					c := v.(*guardedCount)
					c.mu.Lock()
					c.n++
					c.mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if n := m.Len(); n != 0 {
		t.Fatalf("Len = %d after churning %d keys, want 0", n, keys)
	}
	leaked := 0
	naive.Range(func(any, any) bool { leaked++; return true })
	if leaked != keys/100 {
		t.Fatalf("control kept %d mutexes, want %d", leaked, keys/100)
	}
	t.Logf("keyedmutex kept 0 entries; the append-only map kept %d of %d sampled keys", leaked, keys/100)
}

type guardedCount struct {
	mu sync.Mutex
	n  int
}

// TestHammer mixes Lock, TryLock, Do and cancellations on a few keys from
// many goroutines. Each key's counter is a plain int: the race detector
// proves the mutual exclusion, and the counts prove nothing was lost.
func TestHammer(t *testing.T) {
	t.Parallel()
	const goroutines, rounds, nkeys = 32, 300, 8
	var m keyedmutex.Map[string]
	counts := make([]int, nkeys)
	var done atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				k := (g + i) % nkeys
				key := "key-" + strconv.Itoa(k)
				switch i % 4 {
				case 0:
					guard := mustLock(t, &m, key)
					counts[k]++
					guard.Unlock()
					done.Add(1)
				case 1:
					if guard, err := m.TryLock(key); err == nil {
						counts[k]++
						guard.Unlock()
						done.Add(1)
					} else if !errors.Is(err, keyedmutex.ErrLocked) {
						t.Error(err)
					}
				case 2:
					if err := m.Do(context.Background(), key, func() error {
						counts[k]++
						runtime.Gosched()
						return nil
					}); err != nil {
						t.Error(err)
					}
					done.Add(1)
				case 3:
					ctx, cancel := context.WithCancel(context.Background())
					go cancel()
					if guard, err := m.Lock(ctx, key); err == nil {
						counts[k]++
						guard.Unlock()
						done.Add(1)
					} else if !errors.Is(err, context.Canceled) {
						t.Error(err)
					}
					cancel()
				}
			}
		}()
	}
	wg.Wait()
	total := 0
	for _, c := range counts {
		total += c
	}
	if int64(total) != done.Load() {
		t.Fatalf("counted %d increments, %d recorded: an update was lost", total, done.Load())
	}
	if n := m.Len(); n != 0 {
		t.Fatalf("Len = %d after the hammer", n)
	}
}

// TestMapSharedAcrossSynctestBubbles: a Map that outlives a
// testing/synctest bubble (a package-level Map used by handlers under
// test) keeps working in the next bubble, contention included. Reusing a
// channel made in the first bubble would be a fatal error in the second.
func TestMapSharedAcrossSynctestBubbles(t *testing.T) {
	t.Parallel()
	var shared keyedmutex.Map[string]
	for i := range 3 {
		synctest.Test(t, func(t *testing.T) {
			g := mustLock(t, &shared, "k")
			got := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				w, err := shared.Lock(ctx, "k") // waits: needs a waiter
				if err == nil {
					w.Unlock()
				}
				got <- err
			}()
			synctest.Wait()
			g.Unlock()
			if err := <-got; err != nil {
				t.Fatalf("bubble %d: %v", i, err)
			}
		})
	}
	if n := shared.Len(); n != 0 {
		t.Fatalf("Len = %d", n)
	}
}

// nanKey is a struct key whose float field can hold a NaN.
type nanKey struct {
	SKU   string
	Price float64
}

// TestKeysNotEqualToThemselvesAreRefused: a key that is not equal to itself
// (a NaN, or a struct, array or interface key holding one) can never be
// found again in a Go map. Every method refuses it with ErrInvalidKey, so
// it gets neither a lock without mutual exclusion nor an entry that is
// never freed; the legitimate keys keep the whole cap.
func TestKeysNotEqualToThemselvesAreRefused(t *testing.T) {
	t.Parallel()
	nan := math.NaN()
	t.Run("float64 NaN", func(t *testing.T) {
		t.Parallel()
		checkInvalidKeyRefused(t, nan, [2]float64{1, 2})
	})
	t.Run("float32 NaN", func(t *testing.T) {
		t.Parallel()
		checkInvalidKeyRefused(t, float32(nan), [2]float32{1, 2})
	})
	t.Run("complex128 with a NaN part", func(t *testing.T) {
		t.Parallel()
		checkInvalidKeyRefused(t, complex(1, nan), [2]complex128{1, 2i})
	})
	t.Run("struct with a NaN field", func(t *testing.T) {
		t.Parallel()
		checkInvalidKeyRefused(t, nanKey{"sku-1", nan}, [2]nanKey{{"sku-1", 1}, {"sku-2", 1}})
	})
	t.Run("array with a NaN element", func(t *testing.T) {
		t.Parallel()
		checkInvalidKeyRefused(t, [2]float64{1, nan}, [2][2]float64{{1, 2}, {2, 1}})
	})
	t.Run("NaN in an any", func(t *testing.T) {
		t.Parallel()
		checkInvalidKeyRefused[any](t, nan, [2]any{"sku-1", 1.5})
	})
	t.Run("struct with a NaN field in an any", func(t *testing.T) {
		t.Parallel()
		checkInvalidKeyRefused[any](t, nanKey{"sku-1", nan}, [2]any{nanKey{"sku-1", 1}, 0.0})
	})
}

// checkInvalidKeyRefused drives a Map capped at two keys with bad, a key
// not equal to itself, through every method, then checks that two good
// keys still lock, exclude and free as usual.
func checkInvalidKeyRefused[K comparable](t *testing.T, bad K, good [2]K) {
	t.Helper()
	m := &keyedmutex.Map[K]{MaxKeys: 2}
	zero := keyedmutex.Guard[K]{}
	// Rounds beyond the cap: a key that slipped through would leave one
	// entry per round and fill the map.
	for round := range 4 {
		g, err := m.Lock(context.Background(), bad)
		if !errors.Is(err, keyedmutex.ErrInvalidKey) || g != zero {
			t.Fatalf("round %d: Lock(%v) = %v, want ErrInvalidKey and a zero Guard", round, bad, err)
		}
		g, err = m.Lock(canceledContext(), bad)
		if !errors.Is(err, keyedmutex.ErrInvalidKey) || g != zero {
			t.Fatalf("round %d: Lock(%v) with a done context = %v, want ErrInvalidKey", round, bad, err)
		}
		g, err = m.TryLock(bad)
		if !errors.Is(err, keyedmutex.ErrInvalidKey) || g != zero {
			t.Fatalf("round %d: TryLock(%v) = %v, want ErrInvalidKey and a zero Guard", round, bad, err)
		}
		called := false
		err = m.Do(context.Background(), bad, func() error { called = true; return nil })
		if !errors.Is(err, keyedmutex.ErrInvalidKey) || called {
			t.Fatalf("round %d: Do(%v) = %v, called=%v; want ErrInvalidKey and fn not called", round, bad, err, called)
		}
		if n := m.Len(); n != 0 {
			t.Fatalf("round %d: Len = %d after refused calls, want 0", round, n)
		}
	}
	// The legitimate keys have the whole cap, and are still exclusive.
	g0 := mustLock(t, m, good[0])
	g1, err := m.TryLock(good[1])
	if err != nil {
		t.Fatalf("TryLock(%v) after refused keys: %v", good[1], err)
	}
	if _, err := m.TryLock(good[0]); !errors.Is(err, keyedmutex.ErrLocked) {
		t.Fatalf("TryLock(%v) while held: %v, want ErrLocked", good[0], err)
	}
	if n := m.Len(); n != 2 {
		t.Fatalf("Len = %d with two keys held, want 2", n)
	}
	g0.Unlock()
	g1.Unlock()
	if n := m.Len(); n != 0 {
		t.Fatalf("Len = %d after unlocking, want 0", n)
	}
}

// TestUncomparableKeyPanicsAndLeavesTheMapUsable: an interface key whose
// dynamic value cannot be compared (a slice in an any) panics with a
// runtime error, as indexing a Go map with it does. The panic happens
// before the Map takes its mutex, so a recovered panic leaves the Map
// working for every other key.
func TestUncomparableKeyPanicsAndLeavesTheMapUsable(t *testing.T) {
	t.Parallel()
	bad := []string{"sku-1"}
	tests := []struct {
		name string
		call func(m *keyedmutex.Map[any])
	}{
		{"Lock", func(m *keyedmutex.Map[any]) { _, _ = m.Lock(context.Background(), bad) }},
		{"TryLock", func(m *keyedmutex.Map[any]) { _, _ = m.TryLock(bad) }},
		{"Do", func(m *keyedmutex.Map[any]) { _ = m.Do(context.Background(), bad, func() error { return nil }) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var m keyedmutex.Map[any]
			var got any
			testutil.Within(t, "the call with an uncomparable key", func() {
				defer func() { got = recover() }()
				tt.call(&m)
			})
			if _, ok := got.(runtime.Error); !ok {
				t.Fatalf("%s with a slice key: recovered %v, want a runtime.Error panic", tt.name, got)
			}
			testutil.Within(t, "TryLock of another key after the panic", func() {
				g, err := m.TryLock("sku-2")
				if err != nil {
					t.Errorf("TryLock after the panic: %v", err)
					return
				}
				g.Unlock()
			})
			if n := m.Len(); n != 0 {
				t.Fatalf("Len = %d", n)
			}
		})
	}
}

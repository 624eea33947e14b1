package keyedmutex

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
)

// check verifies the Map's invariants; it is called after every test that
// drives the Map hard.
func (m *Map[K]) check() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, e := range m.entries {
		if e.key != k {
			return fmt.Errorf("entry under %v has key %v", k, e.key)
		}
		queued := 0
		for w := e.head; w != nil; w = w.next {
			if !w.queued {
				return fmt.Errorf("key %v: waiter in queue not marked queued", k)
			}
			queued++
		}
		if queued > e.waiting {
			return fmt.Errorf("key %v: %d queued but waiting=%d", k, queued, e.waiting)
		}
		if !e.locked && e.waiting == 0 {
			return fmt.Errorf("key %v: unused entry not freed", k)
		}
	}
	n := 0
	for e := m.freeEntries; e != nil; e = e.next {
		var zero K
		if e.key != zero {
			return fmt.Errorf("free entry keeps key %v", e.key)
		}
		n++
	}
	if n != m.nFreeEntry || n > maxFreeEntries {
		return fmt.Errorf("free entries: counted %d, recorded %d, max %d", n, m.nFreeEntry, maxFreeEntries)
	}
	n = 0
	for w := m.freeWaiters; w != nil; w = w.next {
		if w.ch != nil || w.granted || w.queued {
			return errors.New("free waiter not reset")
		}
		n++
	}
	if n != m.nFreeWaiter || n > maxFreeWaiters {
		return fmt.Errorf("free waiters: counted %d, recorded %d, max %d", n, m.nFreeWaiter, maxFreeWaiters)
	}
	return nil
}

// TestPassedOverWaiterIsHandedTheLock forces the race that barging allows:
// a waiter is woken, a newcomer takes the key before the waiter runs, and
// the waiter must then be handed the key at the next release, ahead of a
// later waiter and of any newcomer.
func TestPassedOverWaiterIsHandedTheLock(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var m Map[string]
		ctx := context.Background()
		first, err := m.Lock(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan string, 2)
		go func() {
			g, err := m.Lock(ctx, "k")
			if err != nil {
				t.Error(err)
				return
			}
			got <- "passed-over"
			g.Unlock()
		}()
		synctest.Wait() // the waiter is queued

		// Release and let a newcomer take the key before the waiter runs.
		m.mu.Lock()
		m.unlockLocked(first.e)
		barger, err := m.tryLockLocked("k")
		m.mu.Unlock()
		if err != nil {
			t.Fatalf("newcomer: %v", err)
		}
		synctest.Wait() // the waiter woke, lost, and is queued at the front

		go func() {
			g, err := m.Lock(ctx, "k")
			if err != nil {
				t.Error(err)
				return
			}
			got <- "later"
			g.Unlock()
		}()
		synctest.Wait()

		barger.Unlock()
		if _, err := m.TryLock("k"); !errors.Is(err, ErrLocked) {
			t.Fatalf("newcomer after release: err = %v, want ErrLocked (key handed over)", err)
		}
		if a, b := <-got, <-got; a != "passed-over" || b != "later" {
			t.Fatalf("order = %s, %s; want passed-over, later", a, b)
		}
		if err := m.check(); err != nil {
			t.Fatal(err)
		}
		if n := m.Len(); n != 0 {
			t.Fatalf("Len = %d after all unlocks", n)
		}
	})
}

// TestBurstGivesMemoryBack: after a burst of distinct keys the Go map's
// buckets are dropped and the free lists stay bounded.
func TestBurstGivesMemoryBack(t *testing.T) {
	t.Parallel()
	var m Map[int]
	guards := make([]Guard[int], 0, 5000)
	for i := range 5000 {
		g, err := m.TryLock(i)
		if err != nil {
			t.Fatal(err)
		}
		guards = append(guards, g)
	}
	for _, g := range guards {
		g.Unlock()
	}
	if m.entries != nil {
		t.Errorf("map of %d-key burst kept after it emptied", 5000)
	}
	if m.nFreeEntry > maxFreeEntries {
		t.Errorf("free list holds %d entries, max %d", m.nFreeEntry, maxFreeEntries)
	}
	if err := m.check(); err != nil {
		t.Fatal(err)
	}
	// A small working set keeps its map: no churn of map allocations.
	g, _ := m.TryLock(1)
	g.Unlock()
	g, _ = m.TryLock(2)
	if m.entries == nil {
		t.Fatal("map dropped for a small working set")
	}
	g.Unlock()
}

// TestInvariantsUnderCancellation races cancellations against grants,
// hand-overs and wake-ups on a few keys, then checks the internal state.
func TestInvariantsUnderCancellation(t *testing.T) {
	t.Parallel()
	var m Map[int]
	var wg sync.WaitGroup
	inside := make([]int, 3)
	var insideMu sync.Mutex
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 400 {
				key := r.IntN(len(inside))
				ctx, cancel := context.WithCancel(context.Background())
				if r.IntN(3) == 0 {
					cancel() // sometimes before, sometimes during the wait
				} else if r.IntN(2) == 0 {
					go cancel()
				}
				guard, err := m.Lock(ctx, key)
				cancel()
				if err != nil {
					if !errors.Is(err, context.Canceled) {
						t.Errorf("Lock: %v", err)
					}
					continue
				}
				insideMu.Lock()
				inside[key]++
				if inside[key] != 1 {
					t.Errorf("key %d held by %d goroutines", key, inside[key])
				}
				insideMu.Unlock()
				if r.IntN(4) == 0 {
					runtime.Gosched() // let waiters queue up
				}
				insideMu.Lock()
				inside[key]--
				insideMu.Unlock()
				guard.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := m.check(); err != nil {
		t.Fatal(err)
	}
	if n := m.Len(); n != 0 {
		t.Fatalf("Len = %d after every goroutine finished", n)
	}
}

package keyedmutex

import (
	"context"
	"errors"
	"sync"
)

// DefaultMaxKeys is the cap on distinct keys that a [Map] whose MaxKeys is
// zero applies.
const DefaultMaxKeys = 1 << 16

// Errors returned by [Map].
var (
	// ErrTooManyKeys is returned by Lock, TryLock and Do when the key is not
	// held or awaited yet and the map already holds MaxKeys distinct keys.
	// Answer it with a 503 (the service is busy), not a 500.
	ErrTooManyKeys = errors.New("keyedmutex: too many distinct keys locked at once")
	// ErrLocked is returned by TryLock when the key is held by someone else.
	ErrLocked = errors.New("keyedmutex: key is locked")
	// ErrInvalidKey is returned by Lock, TryLock and Do, before anything
	// else is done, for a key that is not equal to itself: a NaN float or
	// complex number, or a struct, array or interface value that holds
	// one. A Go map can never find such a key again, so it could be
	// neither excluded nor freed. Such a key usually comes from input
	// ([strconv.ParseFloat] accepts "NaN"): answer it with a 400.
	ErrInvalidKey = errors.New("keyedmutex: key is not equal to itself (NaN)")
)

// Bounds of the free lists that let a busy Map lock and unlock without
// allocating, and the size from which an emptied map is dropped so that a
// burst of distinct keys does not pin its memory.
const (
	maxFreeEntries = 128
	maxFreeWaiters = 128
	shrinkPeak     = 1024
)

// Map is a set of mutexes, one per key, created when a key is first locked
// and freed as soon as nobody holds or waits for it. Locking key "a" never
// waits for a holder of key "b".
//
// The zero value is ready to use, with a cap of [DefaultMaxKeys] distinct
// keys. A Map must not be copied after first use. It is safe for concurrent
// use by multiple goroutines.
//
// The mutexes are not reentrant: a goroutine that locks a key it already
// holds waits for itself, until its context is done (see the package
// documentation).
//
// A key must be equal to itself: one that holds a NaN is refused with
// [ErrInvalidKey]. A key of interface type whose dynamic value cannot be
// compared (a slice in an any) panics with a runtime error, as indexing a
// Go map with it would; the Map is left usable.
type Map[K comparable] struct {
	// MaxKeys caps the number of distinct keys held or awaited at once.
	// Locking a key that is not yet held or awaited when the cap is reached
	// fails at once with ErrTooManyKeys; keys already present can still be
	// waited for. Zero means DefaultMaxKeys (65,536); a negative value
	// means no cap, which is safe only when keys do not come from clients.
	// Set it before first use; it must not change afterwards.
	MaxKeys int

	mu      sync.Mutex
	entries map[K]*entry[K]
	peak    int // largest len(entries) since entries was made

	freeEntries *entry[K]
	nFreeEntry  int
	freeWaiters *waiter
	nFreeWaiter int
}

// entry is the state of one key. All fields are guarded by Map.mu.
type entry[K comparable] struct {
	key    K
	locked bool
	// gen changes at every unlock; a Guard remembers the value it was
	// issued with, so that a second Unlock through it, or an Unlock
	// through a Guard of an earlier holder, is detected even after the
	// entry has been reused for another key.
	gen uint64
	// waiting counts waiters that still refer to the entry: queued, or
	// woken and not yet resumed. The entry is freed when it is unlocked
	// and waiting is zero.
	waiting    int
	head, tail *waiter // FIFO of queued waiters
	// handoff makes the next Unlock hand the lock to the first waiter
	// instead of letting a newcomer take it: set when a woken waiter lost
	// the race to a newcomer, so that no waiter loses twice in a row.
	handoff bool
	next    *entry[K] // free list
}

// waiter is one goroutine blocked in Lock. Its fields are guarded by
// Map.mu; ch carries one token when the waiter was dequeued.
type waiter struct {
	ch         chan struct{}
	prev, next *waiter
	queued     bool
	// granted is set when the lock was handed over to the waiter; if it is
	// false when the waiter is woken, it must compete for the lock.
	granted bool
}

// Guard is the proof of holding one key of a [Map], returned by
// [Map.Lock] and [Map.TryLock]. Call its Unlock method exactly once.
//
// Guard is a small value rather than an unlock function (a closure, which
// would be allocated on every Lock) so that locking and unlocking a free
// key allocates nothing, and so that every acquisition is told apart: a
// second Unlock through the same Guard, or through a copy of it, panics
// even if the key has been locked again by someone else since.
type Guard[K comparable] struct {
	m   *Map[K]
	e   *entry[K]
	gen uint64
}

// Unlock releases the key. It panics with a message starting with
// "keyedmutex:" if the Guard is the zero value (its Lock failed) or if it
// was already unlocked; the panic is an ordinary one, which a deferred
// recover can catch.
func (g Guard[K]) Unlock() {
	if g.e == nil {
		panic("keyedmutex: Unlock of a zero Guard (did Lock return an error?)")
	}
	m := g.m
	m.mu.Lock()
	if !g.e.locked || g.e.gen != g.gen {
		m.mu.Unlock()
		panic("keyedmutex: Unlock of a key that is not locked by this Guard (double unlock)")
	}
	m.unlockLocked(g.e)
	m.mu.Unlock()
}

// Lock locks key, waiting while another goroutine holds it.
//
// If ctx is done before the lock is acquired, Lock returns ctx.Err() and
// the map is left as if Lock had not been called: nothing is held, and the
// key is freed if nobody else uses it. Like [semaphore.Weighted.Acquire], it
// fails if ctx is already done on entry, even when the key is free. It
// returns [ErrTooManyKeys] at once if the key is new and the map is full,
// and [ErrInvalidKey], whatever ctx, if key is not equal to itself (it
// holds a NaN).
//
// Waiters are served in arrival order, except that a goroutine arriving at
// the moment the key is released may take it first, as with
// [sync.Mutex]; a waiter passed over in that way is handed the lock at the
// next release. Locking a free key allocates nothing; a Lock that has to
// wait allocates one channel, which also keeps a Map usable across
// [testing/synctest] bubbles.
//
// [semaphore.Weighted.Acquire]: https://pkg.go.dev/golang.org/x/sync/semaphore#Weighted.Acquire
func (m *Map[K]) Lock(ctx context.Context, key K) (Guard[K], error) {
	if invalidKey(key) {
		return Guard[K]{}, ErrInvalidKey
	}
	done := ctx.Done()
	if done != nil {
		select {
		case <-done:
			return Guard[K]{}, ctx.Err()
		default:
		}
	}
	m.mu.Lock()
	e, err := m.entryLocked(key)
	if err != nil {
		m.mu.Unlock()
		return Guard[K]{}, err
	}
	if !e.locked {
		e.locked = true
		g := Guard[K]{m: m, e: e, gen: e.gen}
		m.mu.Unlock()
		return g, nil
	}
	w := m.newWaiterLocked()
	e.waiting++
	e.pushBack(w)
	m.mu.Unlock()
	return m.wait(ctx, done, e, w)
}

// wait blocks until w is granted the lock of e, wins it after a wake-up, or
// ctx is done.
func (m *Map[K]) wait(ctx context.Context, done <-chan struct{}, e *entry[K], w *waiter) (Guard[K], error) {
	for {
		select {
		case <-w.ch:
			m.mu.Lock()
			if w.granted || !e.locked {
				e.locked = true
				e.waiting--
				g := Guard[K]{m: m, e: e, gen: e.gen}
				m.freeWaiterLocked(w)
				m.mu.Unlock()
				return g, nil
			}
			// A newcomer took the lock between the wake-up and now: wait
			// again at the front, and have the next release hand over.
			e.pushFront(w)
			e.handoff = true
			m.mu.Unlock()
		case <-done:
			m.mu.Lock()
			if w.queued {
				e.remove(w)
			} else {
				// Dequeued and signalled, but not resumed: take the token
				// and give back what it stood for.
				<-w.ch
				if w.granted {
					e.waiting--
					m.freeWaiterLocked(w)
					m.unlockLocked(e)
					m.mu.Unlock()
					return Guard[K]{}, ctx.Err()
				}
				if !e.locked {
					m.wakeLocked(e)
				}
			}
			e.waiting--
			m.freeWaiterLocked(w)
			if !e.locked && e.waiting == 0 {
				m.freeEntryLocked(e)
			}
			m.mu.Unlock()
			return Guard[K]{}, ctx.Err()
		}
	}
}

// TryLock locks key if nobody holds it, without waiting. It returns
// [ErrLocked] if the key is held, [ErrTooManyKeys] if the key is new and
// the map is full, and [ErrInvalidKey] if key is not equal to itself (it
// holds a NaN). A refused key is not reported as [ErrLocked]: nobody holds
// it, and waiting or retrying would never help.
func (m *Map[K]) TryLock(key K) (Guard[K], error) {
	if invalidKey(key) {
		return Guard[K]{}, ErrInvalidKey
	}
	m.mu.Lock()
	g, err := m.tryLockLocked(key)
	m.mu.Unlock()
	return g, err
}

func (m *Map[K]) tryLockLocked(key K) (Guard[K], error) {
	e, err := m.entryLocked(key)
	if err != nil {
		return Guard[K]{}, err
	}
	if e.locked {
		return Guard[K]{}, ErrLocked
	}
	e.locked = true
	return Guard[K]{m: m, e: e, gen: e.gen}, nil
}

// Do locks key, calls fn and unlocks key, and returns fn's error, or the
// error of [Map.Lock] (including [ErrInvalidKey]) without calling fn. The
// key is unlocked even if fn panics; the panic then continues.
func (m *Map[K]) Do(ctx context.Context, key K, fn func() error) error {
	g, err := m.Lock(ctx, key)
	if err != nil {
		return err
	}
	defer g.Unlock()
	return fn()
}

// invalidKey reports whether key is not equal to itself, so that a map
// lookup could never find it again: a NaN, or a struct, array or interface
// value holding one. It is checked before the Map's mutex is taken, so that
// an interface key whose dynamic type cannot be compared panics (with the
// same kind of runtime error a map index would raise) without leaving the
// Map locked. The compiler removes the comparison for string and integer
// keys; for a float key it is one instruction, and for an interface key
// one call of the runtime's equality, less than the map lookup it guards.
func invalidKey[K comparable](key K) bool {
	return key != key
}

// Len returns the number of distinct keys that are held or awaited now.
func (m *Map[K]) Len() int {
	m.mu.Lock()
	n := len(m.entries)
	m.mu.Unlock()
	return n
}

// entryLocked returns the entry of key, making it if the cap allows.
func (m *Map[K]) entryLocked(key K) (*entry[K], error) {
	if e, ok := m.entries[key]; ok {
		return e, nil
	}
	limit := m.MaxKeys
	if limit == 0 {
		limit = DefaultMaxKeys
	}
	if limit > 0 && len(m.entries) >= limit {
		return nil, ErrTooManyKeys
	}
	if m.entries == nil {
		m.entries = make(map[K]*entry[K])
	}
	e := m.freeEntries
	if e != nil {
		m.freeEntries = e.next
		m.nFreeEntry--
		e.next = nil
	} else {
		e = new(entry[K])
	}
	e.key = key
	m.entries[key] = e
	if n := len(m.entries); n > m.peak {
		m.peak = n
	}
	return e, nil
}

// unlockLocked releases e, held, to the first waiter or to anyone.
func (m *Map[K]) unlockLocked(e *entry[K]) {
	e.gen++
	if w := e.popFront(); w != nil {
		if e.handoff {
			e.handoff = false
			w.granted = true // e stays locked, now for w
		} else {
			e.locked = false
		}
		w.ch <- struct{}{}
		return
	}
	e.locked = false
	e.handoff = false
	if e.waiting == 0 {
		m.freeEntryLocked(e)
	}
}

// wakeLocked wakes the first waiter of e, unlocked, to compete for it.
func (m *Map[K]) wakeLocked(e *entry[K]) {
	if w := e.popFront(); w != nil {
		w.ch <- struct{}{}
	}
}

func (m *Map[K]) freeEntryLocked(e *entry[K]) {
	delete(m.entries, e.key)
	if len(m.entries) == 0 && m.peak > shrinkPeak {
		// Go maps keep their buckets after deletes: drop the map so that
		// a burst of distinct keys gives its memory back.
		m.entries = nil
		m.peak = 0
	}
	var zero K
	e.key = zero // do not keep the key's memory alive
	e.handoff = false
	if m.nFreeEntry < maxFreeEntries {
		e.next = m.freeEntries
		m.freeEntries = e
		m.nFreeEntry++
	}
}

// newWaiterLocked returns a waiter with a new channel. The waiter structs
// are reused, their channels never are: a channel made inside a
// testing/synctest bubble must not be used from another, and a Map may
// outlive the bubble of the test that made a waiter.
func (m *Map[K]) newWaiterLocked() *waiter {
	w := m.freeWaiters
	if w == nil {
		w = new(waiter)
	} else {
		m.freeWaiters = w.next
		m.nFreeWaiter--
		w.next = nil
	}
	w.ch = make(chan struct{}, 1)
	return w
}

func (m *Map[K]) freeWaiterLocked(w *waiter) {
	w.ch = nil
	w.granted = false
	w.prev, w.next = nil, nil
	if m.nFreeWaiter < maxFreeWaiters {
		w.next = m.freeWaiters
		m.freeWaiters = w
		m.nFreeWaiter++
	}
}

func (e *entry[K]) pushBack(w *waiter) {
	w.queued = true
	w.prev, w.next = e.tail, nil
	if e.tail != nil {
		e.tail.next = w
	} else {
		e.head = w
	}
	e.tail = w
}

func (e *entry[K]) pushFront(w *waiter) {
	w.queued = true
	w.prev, w.next = nil, e.head
	if e.head != nil {
		e.head.prev = w
	} else {
		e.tail = w
	}
	e.head = w
}

func (e *entry[K]) popFront() *waiter {
	w := e.head
	if w != nil {
		e.remove(w)
	}
	return w
}

func (e *entry[K]) remove(w *waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		e.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		e.tail = w.prev
	}
	w.prev, w.next = nil, nil
	w.queued = false
}

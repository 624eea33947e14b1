// Package keyedmutex provides per-key mutual exclusion: a [Map] of mutexes,
// one per key, that are made when a key is first locked and freed as soon
// as nobody holds or waits for them.
//
// Use it where concurrent requests read, decide and write the same piece of
// process-local state, and where one global mutex would make unrelated
// requests wait for each other:
//
//	var stockLocks keyedmutex.Map[string] // zero value: ready, capped at 65,536 keys
//
//	func buy(ctx context.Context, sku string) error {
//		g, err := stockLocks.Lock(ctx, sku)
//		if err != nil {
//			return err // ctx done, or too many keys: answer 503
//		}
//		defer g.Unlock()
//		if stock[sku] == 0 {
//			return errSoldOut
//		}
//		if err := charge(ctx, sku); err != nil { // may wait: the key stays locked
//			return err
//		}
//		stock[sku]--
//		return nil
//	}
//
// [Map.Lock] waits until the key is free or its context is done, and a
// waiter whose context ends leaves no trace. [Map.TryLock] never waits.
// [Map.Do] locks, runs a function and unlocks, even if the function panics.
// Lock and TryLock return a [Guard] whose Unlock must be called once; a
// second Unlock panics with a message that starts with "keyedmutex:".
//
// # Threat model
//
// Answers "asynchronous reentrancy" and "race conditions leading to data
// corruption" in the seed threat documents: an attacker sends concurrent
// requests so that several of them check the same state before any of
// them updates it, and buys an item after it ran out of stock. In Go the
// risk is higher than in Tornado, because handlers run in parallel on
// every core, not only at await points; a check-then-act sequence over
// shared state is a race even without any I/O between the steps.
//
// Default behaviour:
//   - A key is held by one goroutine at a time. Waiting honours the
//     context (the request's, so a client that goes away stops waiting),
//     and a context that is already done fails at once.
//   - Attacker-chosen keys cannot grow memory without bound: an entry
//     exists only while its key is held or awaited, and at most MaxKeys
//     (default 65,536) distinct keys exist at once; beyond that Lock fails
//     at once with [ErrTooManyKeys], which a handler answers with 503.
//     Keys already present can still be waited for. A map emptied after a
//     burst of more than 1,024 keys is dropped, so its memory is returned.
//   - A key that is not equal to itself (a NaN float or complex number, or
//     a struct, array or interface key holding one) is refused by Lock,
//     TryLock and Do with [ErrInvalidKey] before anything else happens. A
//     Go map never finds such a key again: accepted, every Lock of it
//     would succeed at once, with no mutual exclusion, and leave an entry
//     that is never freed, until the cap refused every other key.
//     [strconv.ParseFloat] accepts "NaN", so a float key parsed from a
//     request can be one; it is an error, not a panic, because it is
//     request input. Answer it with 400.
//   - Misuse is loud: a double Unlock, or an Unlock through a stale Guard,
//     panics with a "keyedmutex:" message. Unlike a fatal error, the panic
//     can be recovered, and net/http's or middleware.Recover's recovery
//     turns it into a 500 for that one request. A key of interface type
//     whose dynamic value cannot be compared (a slice in an any) panics
//     with a runtime error, as indexing a Go map with it would; the panic
//     comes before the Map is locked, so the Map keeps working.
//   - Waiters are served in arrival order; a goroutine arriving exactly
//     when a key is released may take it first, but the waiter it passed
//     is then handed the key at the next release, so nobody waits forever
//     behind a stream of newcomers.
//
// Fail-open cases and limits, which are the caller's to handle:
//   - The mutexes are not reentrant, like [sync.Mutex] and Tornado's
//     locks.Lock: a goroutine that locks a key it already holds waits for
//     itself, until its context is done. A call chain that may lock the
//     same key twice must lock once at the top and pass the state down.
//     Locking two keys at once risks deadlock with another goroutine that
//     locks them in the other order; always lock several keys in one
//     sorted order.
//   - A process-local lock protects only state in this process, not state
//     shared by several replicas or processes (see below).
//   - With MaxKeys negative there is no cap: use it only for keys that no
//     client chooses.
//   - The key is held until Unlock: a holder that never unlocks (a missing
//     defer, a goroutine stuck in I/O without a deadline) blocks that key
//     until the process restarts. Give what runs under a lock a deadline.
//
// # Databases and replicas
//
// A service with several replicas (or several processes behind one port)
// keeps its stock in a database, and each replica's lock protects nothing
// from the others. There, make the check and the update one atomic
// statement, and treat "no row changed" as sold out:
//
//	UPDATE items SET stock = stock - $1 WHERE sku = $2 AND stock >= $1
//
// or use SELECT … FOR UPDATE inside a transaction, or a version column
// checked by the UPDATE (optimistic locking). Prefer the conditional update
// even with a single process whenever the state lives in a database: it
// holds across replicas, restarts and other writers, and costs no waiting.
// Keep keyedmutex for state that lives in memory, and to stop a slow
// operation (a payment, a cache fill) from being started twice at once for
// the same key within one process.
//
// # Compared with Tornado and other Go libraries
//
// Tornado's locks.Lock is one FIFO lock, not reentrant, not keyed, and
// usable from one event loop only; a timeout of 0 waits forever in 6.5.
// github.com/moby/locker frees unused locks too, but cannot be cancelled,
// has no TryLock and no cap on keys, allocates on every lock of a free key,
// and an Unlock of a key that is not locked is a fatal error that no
// recover can catch. A map[string]*sync.Mutex that is never cleaned up keeps
// one mutex for every key ever seen, which an attacker who chooses keys
// turns into unbounded memory. k8s.io/utils/keymutex hashes keys onto a
// fixed set of mutexes: bounded, but unrelated keys wait for each other
// and a goroutine that locks two colliding keys deadlocks itself.
//
// Locking and unlocking a free key allocates nothing once the Map is warm
// (github.com/moby/locker allocates on every lock of a free key). In the
// benchmarks of keyedmutex_bench_test.go, run with
//
//	go test -run '^$' -bench . -benchmem -cpu 2,4,8 ./keyedmutex/
//
// a Map was faster than github.com/moby/locker in every case, uncontended
// and contended on 1, 16 and 1,024 keys at GOMAXPROCS 2, 4 and 8: from
// 1.1 to 4.5 times, with 0 B/op against 16 B/op uncontended.
package keyedmutex

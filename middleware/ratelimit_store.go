package middleware

import (
	"hash/maphash"
	"math"
	"sync"
)

// rlShardBits is log2 of the number of shards of the in-memory store. 64
// shards keep lock contention low and bound the work of turning a window
// over to 1/64 of the tracked clients per request that triggers it.
const (
	rlShardBits   = 6
	rlShards      = 1 << rlShardBits
	rlEvictSample = 8
)

// rlMemStore is the default, in-memory counter store of [RateLimit]. It
// tracks at most maxKeys clients, exactly: maxKeys is split over the
// shards, the first maxKeys%rlShards of them holding one client more than
// the others (so with maxKeys below rlShards some shards hold none, and
// every client that falls in one shares its overflow count). Memory is
// released as windows turn over.
//
// Keys are 64-bit hashes of the identity, keyed with a per-process random
// seed: clients cannot choose identities that collide with someone else's
// counter, and the store holds no address or API key.
type rlMemStore struct {
	seed     maphash.Seed
	perShard int // clients every shard may hold
	extra    int // shards, from the first, that may hold one more
	shards   [rlShards]rlShard
}

// rlShard holds the counts of the clients whose hash falls in it. Each value
// packs the count of the current window (low 32 bits) and of the previous
// window (high 32 bits).
type rlShard struct {
	mu       sync.Mutex
	win      int64 // index of the current window
	m        map[uint64]uint64
	overflow uint64 // shared count of clients refused for lack of room
	_        [64]byte
}

func newRLMemStore(maxKeys int) *rlMemStore {
	return &rlMemStore{seed: maphash.MakeSeed(), perShard: maxKeys / rlShards, extra: maxKeys % rlShards}
}

// capacity returns how many clients shard i may hold.
func (s *rlMemStore) capacity(i int) int {
	if i < s.extra {
		return s.perShard + 1
	}
	return s.perShard
}

// add counts one request for key h in window win and returns the counts of
// the current and previous windows, this request included. It is the
// atomic increment-then-check: both happen under the shard's lock.
func (s *rlMemStore) add(h uint64, win int64) (curr, prev uint32) {
	i := int(h >> (64 - rlShardBits))
	sh := &s.shards[i]
	sh.mu.Lock()
	sh.roll(win)
	v, ok := sh.m[h]
	if !ok && len(sh.m) >= s.capacity(i) && !sh.evict() {
		sh.overflow = rlBump(sh.overflow)
		v = sh.overflow
		sh.mu.Unlock()
		return uint32(v), uint32(v >> 32)
	}
	v = rlBump(v)
	sh.m[h] = v
	sh.mu.Unlock()
	return uint32(v), uint32(v >> 32)
}

// rlBump adds one to the current count, saturating.
func rlBump(v uint64) uint64 {
	if uint32(v) == math.MaxUint32 {
		return v
	}
	return v + 1
}

// roll turns the shard over to window win: after one window, current
// counts become previous counts and clients idle for the whole window are
// dropped; after two or more, everything is dropped. The map is rebuilt
// rather than cleared, so its memory shrinks with it. A clock that went
// backwards keeps counting in the shard's current window.
func (sh *rlShard) roll(win int64) {
	if win <= sh.win && sh.m != nil {
		return
	}
	if win == sh.win+1 && len(sh.m) > 0 {
		n := 0
		for _, v := range sh.m {
			if uint32(v) != 0 {
				n++
			}
		}
		m := make(map[uint64]uint64, n)
		for k, v := range sh.m {
			if c := uint32(v); c != 0 {
				m[k] = uint64(c) << 32
			}
		}
		sh.m = m
		sh.overflow = uint64(uint32(sh.overflow)) << 32
	} else {
		sh.m = make(map[uint64]uint64)
		sh.overflow = 0
	}
	sh.win = win
}

// evict frees room for a new client: among a few entries sampled at random
// (map iteration starts at a random place), it removes the one that made
// no request in the current window and weighs least from the previous one.
// It reports false when every sampled client is active in this window.
func (sh *rlShard) evict() bool {
	var victim uint64
	best := uint32(math.MaxUint32)
	found := false
	i := 0
	for k, v := range sh.m {
		if uint32(v) == 0 && (!found || uint32(v>>32) < best) {
			victim, best, found = k, uint32(v>>32), true
		}
		if i++; i == rlEvictSample {
			break
		}
	}
	if found {
		delete(sh.m, victim)
	}
	return found
}

// len returns the number of tracked clients (for tests).
func (s *rlMemStore) len() int {
	n := 0
	for i := range s.shards {
		s.shards[i].mu.Lock()
		n += len(s.shards[i].m)
		s.shards[i].mu.Unlock()
	}
	return n
}

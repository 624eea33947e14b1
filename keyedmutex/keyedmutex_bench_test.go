package keyedmutex_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/moby/locker"

	"github.com/stormcellar/stormcellar/keyedmutex"
)

// The benchmarks run every implementation on the same work: lock a key,
// bump a counter, unlock. Run them at several GOMAXPROCS values with
//
//	go test -run '^$' -bench . -benchmem -cpu 2,4,8 ./keyedmutex/
//
// Baselines:
//   - singleMutex: one sync.Mutex for every key (what the keyed lock
//     replaces; unrelated keys contend).
//   - naiveMap: a map[string]*sync.Mutex that is never cleaned up, the
//     pattern that leaks one mutex per distinct key ever seen.
//   - mobyLocker: github.com/moby/locker, string keys, refcounted cleanup,
//     no context, no cap.

// impls holds one instance of each implementation under test.
type impls struct {
	keyed  keyedmutex.Map[string]
	moby   *locker.Locker
	single sync.Mutex
	naive  naiveMap
}

const (
	implKeyed = iota
	implMoby
	implSingle
	implNaive
)

var implNames = []string{"keyedmutex", "mobyLocker", "singleMutex", "naiveMap"}

// do locks key with implementation impl, increments *counter, and unlocks.
func (s *impls) do(b *testing.B, impl int, key string, counter *int) {
	switch impl {
	case implKeyed:
		g, err := s.keyed.Lock(context.Background(), key)
		if err != nil {
			b.Fatal(err)
		}
		*counter++
		g.Unlock()
	case implMoby:
		s.moby.Lock(key)
		*counter++
		if err := s.moby.Unlock(key); err != nil {
			b.Fatal(err)
		}
	case implSingle:
		s.single.Lock()
		*counter++
		s.single.Unlock()
	case implNaive:
		m := s.naive.get(key)
		m.Lock()
		*counter++
		m.Unlock()
	}
}

type naiveMap struct {
	mu sync.Mutex
	m  map[string]*sync.Mutex
}

func (n *naiveMap) get(key string) *sync.Mutex {
	n.mu.Lock()
	if n.m == nil {
		n.m = make(map[string]*sync.Mutex)
	}
	km, ok := n.m[key]
	if !ok {
		km = new(sync.Mutex)
		n.m[key] = km
	}
	n.mu.Unlock()
	return km
}

var benchKeys = func() []string {
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = "sku-" + strconv.Itoa(i)
	}
	return keys
}()

// BenchmarkUncontended locks and unlocks one key from one goroutine.
func BenchmarkUncontended(b *testing.B) {
	for impl, name := range implNames {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			s := &impls{moby: locker.New()}
			n := 0
			for b.Loop() {
				s.do(b, impl, "sku-1", &n)
			}
		})
	}
}

// BenchmarkContended has GOMAXPROCS goroutines lock keys drawn in turn from
// a set of 1, 16 or 1,024 keys.
func BenchmarkContended(b *testing.B) {
	for _, nkeys := range []int{1, 16, 1024} {
		for impl, name := range implNames {
			b.Run("keys="+strconv.Itoa(nkeys)+"/"+name, func(b *testing.B) {
				b.ReportAllocs()
				s := &impls{moby: locker.New()}
				counters := make([]int, nkeys)
				var seed atomic.Uint32
				b.RunParallel(func(pb *testing.PB) {
					i := int(seed.Add(7919))
					for pb.Next() {
						k := i % nkeys
						s.do(b, impl, benchKeys[k], &counters[k])
						i++
					}
				})
			})
		}
	}
}

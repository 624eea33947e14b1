package keyedmutex_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stormcellar/stormcellar/keyedmutex"
)

// FuzzOps drives a Map with a sequence of operations decoded from the
// input and checks it against a model after every step: who holds which
// key, what each call returns, when Unlock panics, and that Len always
// equals the number of held keys (nothing leaks, nothing vanishes).
func FuzzOps(f *testing.F) {
	// Seeds mirror the table tests: lock/unlock, held key, the cap, double
	// unlock, a done context, Do.
	f.Add(byte(0), []byte{0x00, 0x01})
	f.Add(byte(0), []byte{0x00, 0x00, 0x01, 0x01})
	f.Add(byte(2), []byte{0x00, 0x08, 0x10, 0x01, 0x10})
	f.Add(byte(1), []byte{0x02, 0x03, 0x01, 0x04})
	f.Add(byte(3), []byte{0x04, 0x0c, 0x00, 0x09, 0x01, 0x01})
	f.Fuzz(func(t *testing.T, capByte byte, ops []byte) {
		maxKeys := int(capByte%5) - 1 // -1 (no cap) … 3
		m := &keyedmutex.Map[uint8]{MaxKeys: maxKeys}
		held := map[uint8]keyedmutex.Guard[uint8]{}
		stale := map[uint8]keyedmutex.Guard[uint8]{}
		canceled, cancel := context.WithCancel(context.Background())
		cancel()
		capFull := func(key uint8) bool {
			_, ok := held[key]
			return maxKeys > 0 && !ok && len(held) >= maxKeys
		}
		for _, op := range ops {
			key := (op >> 3) % 4
			switch op % 5 {
			case 0: // TryLock
				g, err := m.TryLock(key)
				switch _, isHeld := held[key]; {
				case isHeld:
					if !errors.Is(err, keyedmutex.ErrLocked) {
						t.Fatalf("TryLock(%d) held: %v", key, err)
					}
				case capFull(key):
					if !errors.Is(err, keyedmutex.ErrTooManyKeys) {
						t.Fatalf("TryLock(%d) at cap: %v", key, err)
					}
				default:
					if err != nil {
						t.Fatalf("TryLock(%d) free: %v", key, err)
					}
					held[key] = g
				}
			case 1: // Unlock, or a misuse that must panic
				if g, ok := stale[key]; ok && op&0x80 != 0 {
					// An earlier holder's Guard: panics, whoever holds now.
					if !panics(g.Unlock) {
						t.Fatalf("stale Unlock of %d did not panic", key)
					}
				} else if g, ok := held[key]; ok {
					g.Unlock()
					delete(held, key)
					stale[key] = g
				} else if g, ok := stale[key]; ok {
					if !panics(g.Unlock) {
						t.Fatalf("stale Unlock of %d did not panic", key)
					}
				}
			case 2: // Lock with a done context
				if _, err := m.Lock(canceled, key); !errors.Is(err, context.Canceled) {
					t.Fatalf("Lock(%d) with a done context: %v", key, err)
				}
			case 3: // Lock of a free key
				if _, ok := held[key]; ok {
					continue // would wait for ourselves
				}
				g, err := m.Lock(context.Background(), key)
				if capFull(key) {
					if !errors.Is(err, keyedmutex.ErrTooManyKeys) {
						t.Fatalf("Lock(%d) at cap: %v", key, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("Lock(%d): %v", key, err)
				}
				held[key] = g
			case 4: // Do
				if _, ok := held[key]; ok {
					continue
				}
				ran := false
				err := m.Do(context.Background(), key, func() error {
					ran = true
					if _, err := m.TryLock(key); !errors.Is(err, keyedmutex.ErrLocked) {
						t.Fatalf("key %d not held inside Do: %v", key, err)
					}
					return nil
				})
				if capFull(key) != errors.Is(err, keyedmutex.ErrTooManyKeys) || ran == (err != nil) {
					t.Fatalf("Do(%d): ran=%v err=%v", key, ran, err)
				}
			}
			if got := m.Len(); got != len(held) {
				t.Fatalf("after op %#x: Len = %d, model holds %d", op, got, len(held))
			}
		}
		for _, g := range held {
			g.Unlock()
		}
		if got := m.Len(); got != 0 {
			t.Fatalf("Len = %d after unlocking everything", got)
		}
	})
}

func panics(fn func()) (p bool) {
	defer func() { p = recover() != nil }()
	fn()
	return false
}

package timeouts_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stormcellar/stormcellar/timeouts"
)

func TestRegistryDrain(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		closeIn   []time.Duration // how long each connection takes to close once asked
		deadline  time.Duration
		wantErr   bool
		wantAfter time.Duration
	}{
		{"empty registry drains at once", nil, time.Second, false, 0},
		{"connections that close promptly", []time.Duration{10 * time.Millisecond, 200 * time.Millisecond}, time.Second, false, 200 * time.Millisecond},
		{"a connection that outlives the deadline", []time.Duration{10 * time.Millisecond, 5 * time.Second}, time.Second, true, time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				var reg timeouts.Registry
				var drained atomic.Int32
				for _, d := range tc.closeIn {
					var done func()
					done, err := reg.Track(func(ctx context.Context) {
						drained.Add(1)
						select {
						case <-time.After(d):
						case <-ctx.Done(): // contract: close outright at the deadline
						}
						done()
					})
					if err != nil {
						t.Fatal(err)
					}
				}
				if reg.Len() != len(tc.closeIn) {
					t.Fatalf("Len = %d", reg.Len())
				}
				ctx, cancel := context.WithTimeout(context.Background(), tc.deadline)
				defer cancel()
				start := time.Now()
				err := reg.Drain(ctx)
				if (err != nil) != tc.wantErr || time.Since(start) != tc.wantAfter {
					t.Fatalf("Drain = %v after %v, want error %v after %v", err, time.Since(start), tc.wantErr, tc.wantAfter)
				}
				if tc.wantErr && !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("Drain error %v does not wrap the context's", err)
				}
				if int(drained.Load()) != len(tc.closeIn) || !reg.Draining() {
					t.Fatalf("drained %d of %d", drained.Load(), len(tc.closeIn))
				}
				if _, err := reg.Track(func(context.Context) {}); !errors.Is(err, timeouts.ErrShuttingDown) {
					t.Fatalf("Track after Drain = %v, want ErrShuttingDown", err)
				}
				synctest.Wait()
			})
		})
	}
}

func TestRegistryDoneIsIdempotentAndConcurrent(t *testing.T) {
	t.Parallel()
	var reg timeouts.Registry
	dones := make(chan func(), 64)
	for range 64 {
		go func() {
			done, err := reg.Track(func(context.Context) {})
			if err != nil {
				t.Error(err)
			}
			dones <- done
		}()
	}
	for range 64 {
		done := <-dones
		go func() { done(); done() }()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := reg.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if reg.Len() != 0 {
		t.Fatalf("Len = %d", reg.Len())
	}
	if _, err := reg.Track(nil); !errors.Is(err, timeouts.ErrInvalidOptions) {
		t.Fatalf("Track(nil) = %v", err)
	}
}

func TestRegistryFromContext(t *testing.T) {
	t.Parallel()
	reg := new(timeouts.Registry)
	if timeouts.RegistryFrom(context.Background()) != nil {
		t.Fatal("registry from an empty context")
	}
	if timeouts.RegistryFrom(timeouts.WithRegistry(context.Background(), reg)) != reg {
		t.Fatal("registry lost")
	}
}

// fakeHub stands for a WebSocket guard that tracks its own connections.
type fakeHub struct {
	closeIn time.Duration
	calls   atomic.Int32
}

func (h *fakeHub) Shutdown(ctx context.Context) error {
	h.calls.Add(1)
	select {
	case <-time.After(h.closeIn):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestRegistryTrackShutdowner(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var reg timeouts.Registry
		hub := &fakeHub{closeIn: 300 * time.Millisecond}
		if err := reg.TrackShutdowner(hub); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		if err := reg.Drain(ctx); err != nil || time.Since(start) != 300*time.Millisecond || hub.calls.Load() != 1 {
			t.Fatalf("Drain = %v after %v, %d Shutdown calls", err, time.Since(start), hub.calls.Load())
		}
		if err := reg.TrackShutdowner(hub); !errors.Is(err, timeouts.ErrShuttingDown) {
			t.Fatalf("after Drain: %v", err)
		}
		if err := reg.TrackShutdowner(nil); !errors.Is(err, timeouts.ErrInvalidOptions) {
			t.Fatalf("nil: %v", err)
		}
	})
}

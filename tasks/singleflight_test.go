package tasks_test

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stormcellar/stormcellar/internal/testutil"
	"github.com/stormcellar/stormcellar/tasks"
)

// TestSingleflightSharesOneCall: concurrent callers for one key share one
// call; another key gets its own.
func TestSingleflightSharesOneCall(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var g tasks.Singleflight[string, int]
		var calls atomic.Int64
		release := make(chan struct{})
		fn := func(context.Context) (int, error) {
			calls.Add(1)
			<-release
			return 42, nil
		}
		type res struct {
			v      int
			shared bool
			err    error
		}
		results := make(chan res, 10)
		for range 10 {
			go func() {
				v, shared, err := g.Do(context.Background(), "price:sku-1", fn)
				results <- res{v, shared, err}
			}()
		}
		synctest.Wait()
		other, _, _ := func() (int, bool, error) {
			return g.Do(context.Background(), "price:sku-2", func(context.Context) (int, error) { return 7, nil })
		}()
		close(release)
		for range 10 {
			r := <-results
			if r.v != 42 || !r.shared || r.err != nil {
				t.Fatalf("caller got %+v", r)
			}
		}
		if calls.Load() != 1 || other != 7 {
			t.Fatalf("fn called %d times for one key (other key: %d)", calls.Load(), other)
		}
	})
}

// TestSingleflightCallerContexts: each caller waits only as long as its own
// context allows; when the last one gives up, the call is cancelled and
// forgotten.
func TestSingleflightCallerContexts(t *testing.T) {
	t.Parallel()
	t.Run("one caller gives up, the others get the result", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			var g tasks.Singleflight[string, string]
			fn := slowFresh
			impatient, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			errc := make(chan error, 1)
			start := time.Now()
			go func() {
				_, _, err := g.Do(impatient, "k", fn)
				errc <- err
			}()
			synctest.Wait()
			v, _, err := g.Do(context.Background(), "k", fn)
			if err != nil || v != "fresh" || time.Since(start) != 10*time.Second {
				t.Fatalf("patient caller: %q %v after %v", v, err, time.Since(start))
			}
			if err := <-errc; !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("impatient caller: %v", err)
			}
		})
	})
	t.Run("everyone gives up, the call is cancelled and forgotten", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			var g tasks.Singleflight[string, string]
			cancelled := make(chan struct{})
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_, _, err := g.Do(ctx, "k", func(ctx context.Context) (string, error) {
				<-ctx.Done()
				close(cancelled)
				return "", ctx.Err()
			})
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Do: %v", err)
			}
			<-cancelled // the abandoned call was told to stop
			v, shared, err := g.Do(context.Background(), "k", func(context.Context) (string, error) { return "new call", nil })
			if v != "new call" || shared || err != nil {
				t.Fatalf("next caller joined the abandoned call: %q %v %v", v, shared, err)
			}
		})
	})
}

type userKey struct{}

// TestSingleflightDoesNotLeakCallerValues: the shared call cannot see the
// first caller's context values (identity) nor inherit its deadline.
func TestSingleflightDoesNotLeakCallerValues(t *testing.T) {
	t.Parallel()
	var g tasks.Singleflight[string, string]
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), userKey{}, "alice"), time.Hour)
	defer cancel()
	v, _, err := g.Do(ctx, "k", func(ctx context.Context) (string, error) {
		if u := ctx.Value(userKey{}); u != nil {
			return "saw user " + u.(string), nil
		}
		if _, ok := ctx.Deadline(); ok {
			return "inherited a deadline", nil
		}
		return "anonymous", nil
	})
	if err != nil || v != "anonymous" {
		t.Fatalf("shared call: %q %v", v, err)
	}
}

// TestSingleflightPanicAndGoexit: a panic is returned to every caller as a
// *PanicError and logged once with its stack (x/sync re-panics); a Goexit
// is an error; the key is usable afterwards.
func TestSingleflightPanicAndGoexit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		fn   func(context.Context) (int, error)
		want func(error) bool
		logs int
	}{
		{"panic", func(context.Context) (int, error) { panic("cache fill bug") },
			func(err error) bool {
				var pe *tasks.PanicError
				return errors.As(err, &pe) && pe.Value == "cache fill bug"
			}, 1},
		{"runtime.Goexit", func(context.Context) (int, error) { runtime.Goexit(); return 0, nil },
			func(err error) bool { return errors.Is(err, tasks.ErrGoexit) }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				logs := &logRecorder{}
				g := &tasks.Singleflight[string, int]{Logger: slog.New(logs)}
				release := make(chan struct{})
				var wg sync.WaitGroup
				errs := make(chan error, 5)
				for range 5 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						_, _, err := g.Do(context.Background(), "k", func(ctx context.Context) (int, error) {
							<-release
							return tt.fn(ctx)
						})
						errs <- err
					}()
				}
				synctest.Wait()
				close(release)
				wg.Wait()
				close(errs)
				for err := range errs {
					if !tt.want(err) {
						t.Fatalf("caller got %v", err)
					}
				}
				recs := logs.find("singleflight call panicked")
				if len(recs) != tt.logs || (tt.logs == 1 && !strings.Contains(recs[0].Attrs["stack"], "TestSingleflightPanicAndGoexit")) {
					t.Fatalf("logs:\n%s", logs)
				}
				v, _, err := g.Do(context.Background(), "k", func(context.Context) (int, error) { return 1, nil })
				if v != 1 || err != nil {
					t.Fatalf("key unusable after the failure: %v %v", v, err)
				}
			})
		})
	}
}

// TestSingleflightForget: after Forget, a new caller starts a new call
// while the old callers still get the old result.
func TestSingleflightForget(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var g tasks.Singleflight[string, string]
		release := make(chan struct{})
		old := make(chan string, 1)
		go func() {
			v, _, _ := g.Do(context.Background(), "k", func(context.Context) (string, error) { <-release; return "old", nil })
			old <- v
		}()
		synctest.Wait()
		g.Forget("k")
		v, _, _ := g.Do(context.Background(), "k", func(context.Context) (string, error) { return "new", nil })
		close(release)
		if v != "new" || <-old != "old" {
			t.Fatalf("after Forget: %q", v)
		}
	})
}

// nanKey is a struct key whose float field can hold a NaN.
type nanKey struct {
	Item  string
	Price float64
}

// TestSingleflightRefusesKeysNotEqualToThemselves: a key that is not equal
// to itself (a NaN, or a struct or interface key holding one) could never
// be found again in the map of calls in flight: each caller would start
// its own call, and every finished call would stay in the map for good.
// Do refuses it with ErrInvalidKey without calling fn; concurrent callers
// of a good key still share one call.
func TestSingleflightRefusesKeysNotEqualToThemselves(t *testing.T) {
	t.Parallel()
	nan := math.NaN()
	t.Run("float64 NaN", func(t *testing.T) {
		t.Parallel()
		checkSingleflightInvalidKey(t, nan, 1.5)
	})
	t.Run("NaN in an any", func(t *testing.T) {
		t.Parallel()
		checkSingleflightInvalidKey[any](t, nan, "price:sku-1")
	})
	t.Run("struct with a NaN field", func(t *testing.T) {
		t.Parallel()
		checkSingleflightInvalidKey(t, nanKey{"sku-1", nan}, nanKey{"sku-1", 9.5})
	})
}

func checkSingleflightInvalidKey[K comparable](t *testing.T, bad, good K) {
	synctest.Test(t, func(t *testing.T) {
		var g tasks.Singleflight[K, int]
		var badCalls, goodCalls atomic.Int64
		release := make(chan struct{})
		badFn := func(context.Context) (int, error) { badCalls.Add(1); <-release; return 1, nil }
		goodFn := func(context.Context) (int, error) { goodCalls.Add(1); <-release; return 42, nil }
		type res struct {
			good   bool
			v      int
			shared bool
			err    error
		}
		const callers = 50
		results := make(chan res, 2*callers)
		for range callers {
			go func() {
				v, shared, err := g.Do(context.Background(), bad, badFn)
				results <- res{false, v, shared, err}
			}()
			go func() {
				v, shared, err := g.Do(context.Background(), good, goodFn)
				results <- res{true, v, shared, err}
			}()
		}
		synctest.Wait()
		close(release)
		for range 2 * callers {
			r := <-results
			if r.good && (r.v != 42 || !r.shared || r.err != nil) {
				t.Fatalf("caller of the good key got %+v, want 42, shared", r)
			}
			if !r.good && (!errors.Is(r.err, tasks.ErrInvalidKey) || r.v != 0 || r.shared) {
				t.Fatalf("caller of the key %v got %+v, want ErrInvalidKey", bad, r)
			}
		}
		if badCalls.Load() != 0 || goodCalls.Load() != 1 {
			t.Fatalf("fn ran %d times for the refused key and %d times for the good one; want 0 and 1",
				badCalls.Load(), goodCalls.Load())
		}
		g.Forget(bad) // nothing is in flight for it: a no-op
		v, shared, err := g.Do(context.Background(), good, func(context.Context) (int, error) { return 7, nil })
		if v != 7 || shared || err != nil {
			t.Fatalf("next call of the good key: %d %v %v, want a fresh call", v, shared, err)
		}
	})
}

// TestSingleflightUncomparableKeyPanicsAndLeavesItUsable: an interface key
// whose dynamic value cannot be compared panics with a runtime error, as a
// map index would, before the Singleflight is locked, so other keys keep
// working after the panic is recovered.
func TestSingleflightUncomparableKeyPanicsAndLeavesItUsable(t *testing.T) {
	t.Parallel()
	fn := func(context.Context) (int, error) { return 1, nil }
	bad := []string{"sku-1"}
	tests := []struct {
		name string
		call func(g *tasks.Singleflight[any, int])
	}{
		{"Do", func(g *tasks.Singleflight[any, int]) { _, _, _ = g.Do(context.Background(), bad, fn) }},
		{"Forget", func(g *tasks.Singleflight[any, int]) { g.Forget(bad) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var g tasks.Singleflight[any, int]
			var got any
			testutil.Within(t, tt.name+" with a slice key", func() {
				got = panicValue(func() { tt.call(&g) })
			})
			if _, ok := got.(runtime.Error); !ok {
				t.Fatalf("%s with a slice key: recovered %v, want a runtime.Error panic", tt.name, got)
			}
			testutil.Within(t, "Do of another key after the panic", func() {
				if v, _, err := g.Do(context.Background(), "sku-2", fn); v != 1 || err != nil {
					t.Errorf("Do after the panic: %d %v", v, err)
				}
			})
		})
	}
}

// TestSingleflightSharedCountsOnlyCallersGivenTheResult: shared is true only
// if the result went to more than one caller. A caller that joined and
// gave up before the result was ready did not get it, and does not make
// the one who did see shared.
func TestSingleflightSharedCountsOnlyCallersGivenTheResult(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name               string
		patient, impatient int
		wantShared         bool
	}{
		{"alone", 1, 0, false},
		{"a caller joined and gave up", 1, 1, false},
		{"several joined and gave up", 1, 3, false},
		{"two got the result", 2, 0, true},
		{"two got it, one gave up", 2, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				var g tasks.Singleflight[string, string]
				fn := slowFresh
				type res struct {
					v      string
					shared bool
					err    error
				}
				patient := make(chan res, tt.patient)
				impatient := make(chan error, tt.impatient)
				for i := range tt.patient + tt.impatient {
					if i < tt.patient {
						go func() {
							v, shared, err := g.Do(context.Background(), "k", fn)
							patient <- res{v, shared, err}
						}()
					} else {
						go func() {
							ctx, cancel := context.WithTimeout(context.Background(), time.Second)
							defer cancel()
							_, shared, err := g.Do(ctx, "k", fn)
							if shared {
								err = errors.New("a caller that gave up was told shared")
							}
							impatient <- err
						}()
					}
					synctest.Wait() // the first caller starts the call
				}
				for range tt.impatient {
					if err := <-impatient; !errors.Is(err, context.DeadlineExceeded) {
						t.Fatalf("impatient caller: %v", err)
					}
				}
				for range tt.patient {
					if r := <-patient; r.v != "fresh" || r.err != nil || r.shared != tt.wantShared {
						t.Fatalf("caller given the result: %+v, want fresh with shared=%v", r, tt.wantShared)
					}
				}
			})
		})
	}
}

// slowFresh is a shared call that answers "fresh" after 10 s (of a
// synctest bubble's clock) unless its context ends first.
func slowFresh(ctx context.Context) (string, error) {
	select {
	case <-time.After(10 * time.Second):
		return "fresh", nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

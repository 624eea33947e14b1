package timeouts_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stormcellar/stormcellar/timeouts"
)

func TestWaitFor(t *testing.T) {
	t.Parallel()
	errBoom := errors.New("boom")
	cases := []struct {
		name    string
		d       time.Duration
		parent  func(ctx context.Context) (context.Context, context.CancelFunc)
		fn      func(ctx context.Context) (int, error)
		want    int
		wantErr []error // every one must match with errors.Is
		wantAt  time.Duration
		called  bool
	}{
		{
			name: "fast function returns its value",
			d:    time.Second,
			fn: func(ctx context.Context) (int, error) {
				time.Sleep(100 * time.Millisecond)
				return 42, nil
			},
			want: 42, wantAt: 100 * time.Millisecond, called: true,
		},
		{
			name:    "function error is returned as is",
			d:       time.Second,
			fn:      func(ctx context.Context) (int, error) { return 0, errBoom },
			wantErr: []error{errBoom}, called: true,
		},
		{
			name: "slow function honouring ctx is cancelled at d",
			d:    time.Second,
			fn: func(ctx context.Context) (int, error) {
				select {
				case <-time.After(time.Hour):
					return 1, nil
				case <-ctx.Done():
					return 0, ctx.Err()
				}
			},
			wantErr: []error{timeouts.ErrTimeout, context.DeadlineExceeded},
			wantAt:  time.Second, called: true,
		},
		{
			name: "slow function ignoring ctx: WaitFor still returns at d",
			d:    time.Second,
			fn: func(ctx context.Context) (int, error) {
				time.Sleep(5 * time.Second)
				return 1, nil
			},
			wantErr: []error{timeouts.ErrTimeout, context.DeadlineExceeded},
			wantAt:  time.Second, called: true,
		},
		{
			name: "caller's earlier deadline wins",
			d:    time.Hour,
			parent: func(ctx context.Context) (context.Context, context.CancelFunc) {
				return context.WithTimeout(ctx, 2*time.Second)
			},
			fn: func(ctx context.Context) (int, error) {
				<-ctx.Done()
				return 0, ctx.Err()
			},
			wantErr: []error{context.DeadlineExceeded},
			wantAt:  2 * time.Second, called: true,
		},
		{
			name: "caller cancellation is returned",
			d:    time.Hour,
			parent: func(ctx context.Context) (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(ctx)
				time.AfterFunc(300*time.Millisecond, cancel)
				return ctx, cancel
			},
			fn: func(ctx context.Context) (int, error) {
				<-ctx.Done()
				return 0, ctx.Err()
			},
			wantErr: []error{context.Canceled},
			wantAt:  300 * time.Millisecond, called: true,
		},
		{
			name:    "zero duration never calls fn",
			d:       0,
			fn:      func(ctx context.Context) (int, error) { return 1, nil },
			wantErr: []error{timeouts.ErrTimeout, context.DeadlineExceeded},
		},
		{
			name:    "panic becomes a PanicError",
			d:       time.Second,
			fn:      func(ctx context.Context) (int, error) { panic(errBoom) },
			wantErr: []error{errBoom},
			called:  true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				if tc.parent != nil {
					var cancel context.CancelFunc
					ctx, cancel = tc.parent(ctx)
					defer cancel()
				}
				called := false
				start := time.Now()
				got, err := timeouts.WaitFor(ctx, tc.d, func(ctx context.Context) (int, error) {
					called = true
					return tc.fn(ctx)
				})
				at := time.Since(start)
				for _, want := range tc.wantErr {
					if !errors.Is(err, want) {
						t.Fatalf("err = %v, want it to match %v", err, want)
					}
				}
				if len(tc.wantErr) == 0 && err != nil {
					t.Fatalf("err = %v", err)
				}
				if got != tc.want || at != tc.wantAt {
					t.Fatalf("got %d after %v, want %d after %v", got, at, tc.want, tc.wantAt)
				}
				// Let a function that ignores its context run out; one blocked
				// for ever (a leak) makes synctest.Test fail.
				time.Sleep(10 * time.Second)
				synctest.Wait()
				if called != tc.called {
					t.Fatalf("fn called = %v, want %v", called, tc.called)
				}
				// synctest.Test fails if fn's goroutine outlives the bubble.
			})
		})
	}
}

func TestWaitForPanicError(t *testing.T) {
	t.Parallel()
	_, err := timeouts.WaitFor(context.Background(), time.Second, func(context.Context) (struct{}, error) {
		panic("kaboom")
	})
	var pe *timeouts.PanicError
	if !errors.As(err, &pe) || pe.Value != "kaboom" || len(pe.Stack) == 0 {
		t.Fatalf("err = %#v", err)
	}
	if errors.Is(err, timeouts.ErrTimeout) {
		t.Fatal("a panic is not a timeout")
	}
}

// fn returning the deadline error itself (it saw ctx expire first) is still
// reported as WaitFor's timeout.
func TestWaitForOwnDeadlineErrorIsTimeout(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		_, err := timeouts.WaitFor(context.Background(), time.Second, func(ctx context.Context) (int, error) {
			<-ctx.Done()
			return 0, ctx.Err()
		})
		if !errors.Is(err, timeouts.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
		var te interface{ Timeout() bool }
		if !errors.As(err, &te) || !te.Timeout() {
			t.Fatalf("err %v does not report Timeout()", err)
		}
	})
}

// A panic after WaitFor gave up must not crash the process.
func TestWaitForLatePanicDoesNotCrash(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		_, err := timeouts.WaitFor(context.Background(), time.Second, func(ctx context.Context) (int, error) {
			time.Sleep(2 * time.Second)
			panic("after the deadline")
		})
		if !errors.Is(err, timeouts.ErrTimeout) {
			t.Fatalf("err = %v", err)
		}
		time.Sleep(3 * time.Second) // the panic happens, is recovered and logged
		synctest.Wait()
	})
}

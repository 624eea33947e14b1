package tasks_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stormcellar/stormcellar/httperr"
	"github.com/stormcellar/stormcellar/tasks"
)

// TestPoolDo covers every outcome of Pool.Do with a pool of one worker,
// on the fake clock.
func TestPoolDo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		opts      tasks.PoolOptions
		busy      int // jobs holding workers (and queue places) first
		ctx       func() (context.Context, context.CancelFunc)
		fn        func(context.Context) error
		want      error // errors.Is
		status    int   // httperr status for the error, 0 if none
		waited    time.Duration
		wantCall  bool
		wantPanic bool
	}{
		{name: "free worker", fn: func(context.Context) error { return nil }, wantCall: true},
		{name: "job error passes through", fn: func(context.Context) error { return errJob }, want: errJob, status: 500, wantCall: true},
		{name: "panic becomes an error", fn: func(context.Context) error { panic(errJob) }, want: errJob, status: 500, wantCall: true, wantPanic: true},
		{name: "queue wait times out", busy: 1, opts: tasks.PoolOptions{QueueTimeout: 2 * time.Second},
			want: tasks.ErrOverloaded, status: 503, waited: 2 * time.Second},
		{name: "queue full sheds at once", busy: 2, opts: tasks.PoolOptions{MaxQueue: 1},
			want: tasks.ErrOverloaded, status: 503},
		{name: "no queue", busy: 1, opts: tasks.PoolOptions{MaxQueue: -1},
			want: tasks.ErrOverloaded, status: 503},
		{name: "no waiting", busy: 1, opts: tasks.PoolOptions{QueueTimeout: -1},
			want: tasks.ErrOverloaded, status: 503},
		{name: "client leaves while queued", busy: 1, ctx: func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(300*time.Millisecond, cancel)
			return ctx, cancel
		}, want: context.Canceled, waited: 300 * time.Millisecond},
		{name: "context done before", ctx: func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, want: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				logs := &logRecorder{}
				opts := tt.opts
				opts.Size = 1
				opts.Logger = slog.New(logs)
				p := tasks.NewPool(opts)
				release := make(chan struct{})
				var wg sync.WaitGroup
				for range tt.busy {
					wg.Add(1)
					go func() {
						defer wg.Done()
						_ = p.Do(context.Background(), func(context.Context) error { <-release; return nil })
					}()
					synctest.Wait()
				}
				ctx, cancel := context.Background(), context.CancelFunc(func() {})
				if tt.ctx != nil {
					ctx, cancel = tt.ctx()
				}
				defer cancel()
				called := false
				fn := tt.fn
				if fn == nil {
					fn = func(context.Context) error { return nil }
				}
				start := time.Now()
				err := p.Do(ctx, func(ctx context.Context) error { called = true; return fn(ctx) })
				waited := time.Since(start)
				close(release)
				wg.Wait()
				if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
					t.Fatalf("Do: %v, want %v", err, tt.want)
				}
				if called != tt.wantCall || waited != tt.waited {
					t.Fatalf("called=%v after %v, want %v after %v", called, waited, tt.wantCall, tt.waited)
				}
				if tt.status != 0 {
					rec := httptest.NewRecorder()
					httperr.Write(rec, httptest.NewRequest("GET", "/", nil), err)
					if rec.Code != tt.status {
						t.Fatalf("httperr.Write: %d, want %d", rec.Code, tt.status)
					}
					if tt.status == 503 && rec.Header().Get("Retry-After") != "1" {
						t.Fatalf("shed without Retry-After: %v", rec.Header())
					}
				}
				var pe *tasks.PanicError
				if errors.As(err, &pe) != tt.wantPanic {
					t.Fatalf("panic error: %v", err)
				}
				if tt.wantPanic {
					recs := logs.find("pool job panicked")
					if len(recs) != 1 || !strings.Contains(recs[0].Attrs["stack"], "TestPoolDo") {
						t.Fatalf("panic not logged with its stack:\n%s", logs)
					}
				}
				// Whatever happened, every worker is free again.
				if running, waiting := p.Stats(); running != 0 || waiting != 0 {
					t.Fatalf("Stats after the test: %d running, %d waiting", running, waiting)
				}
				if err := p.Do(context.Background(), func(context.Context) error { return nil }); err != nil {
					t.Fatalf("pool unusable afterwards: %v", err)
				}
			})
		})
	}
}

// TestPoolDoAll: every job runs, at most Size at once; the first error
// cancels the others; a panic is an error.
func TestPoolDoAll(t *testing.T) {
	t.Parallel()
	t.Run("bounded", func(t *testing.T) {
		t.Parallel()
		p := tasks.NewPool(tasks.PoolOptions{Size: 3})
		var now, peak, done atomic.Int64
		jobs := make([]func(context.Context) error, 20)
		for i := range jobs {
			jobs[i] = func(context.Context) error {
				n := now.Add(1)
				for {
					old := peak.Load()
					if n <= old || peak.CompareAndSwap(old, n) {
						break
					}
				}
				sha256.Sum256(make([]byte, 4096)) // a little CPU work
				now.Add(-1)
				done.Add(1)
				return nil
			}
		}
		if err := p.DoAll(context.Background(), jobs...); err != nil {
			t.Fatal(err)
		}
		if done.Load() != 20 || peak.Load() > 3 {
			t.Fatalf("ran %d jobs, peak concurrency %d; want 20 and at most 3", done.Load(), peak.Load())
		}
	})
	t.Run("first error cancels the rest", func(t *testing.T) {
		t.Parallel()
		p := tasks.NewPool(tasks.PoolOptions{Size: 2, Logger: slog.New(slog.DiscardHandler)})
		var cancelled atomic.Int64
		secondStarted := make(chan struct{})
		err := p.DoAll(context.Background(),
			func(context.Context) error {
				<-secondStarted
				panic("bad input")
			},
			func(ctx context.Context) error {
				close(secondStarted)
				<-ctx.Done() // would wait forever without the cancellation
				cancelled.Add(1)
				return ctx.Err()
			},
		)
		var pe *tasks.PanicError
		if !errors.As(err, &pe) || pe.Value != "bad input" || cancelled.Load() != 1 {
			t.Fatalf("DoAll: %v (cancelled %d)", err, cancelled.Load())
		}
	})
}

// TestPoolShedsHeavyRouteLightRouteKeepsAnswering is the "blocking the
// loop" attack against a real server: a flood of requests to a heavy
// route. Only Size of them run and MaxQueue wait; the rest are shed at once
// with 503 and Retry-After, and the logged cause is ErrOverloaded; a light
// route answers throughout; the admitted and queued jobs complete once
// workers free up.
func TestPoolShedsHeavyRouteLightRouteKeepsAnswering(t *testing.T) {
	t.Parallel()
	const size, queue, flood = 2, 2, 20
	// Long enough that the queued requests are still queued when the flood
	// has been answered, however slow the machine.
	const queueTimeout = 20 * time.Second
	pool := tasks.NewPool(tasks.PoolOptions{Size: size, MaxQueue: queue, QueueTimeout: queueTimeout, RetryAfter: 3 * time.Second})
	gate := make(chan struct{})
	started := make(chan struct{}, size+queue+flood)
	var overloaded atomic.Int64
	mux := http.NewServeMux()
	mux.Handle("POST /thumbnail", httperr.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		err := pool.Do(r.Context(), func(ctx context.Context) error {
			started <- struct{}{}
			<-gate // CPU-heavy work that takes its time
			return nil
		})
		if err != nil {
			return err
		}
		_, err = io.WriteString(w, "done")
		return err
	}))
	mux.HandleFunc("GET /light", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	handler := httperr.Install(httperr.Options{
		Logger: slog.New(slog.DiscardHandler),
		Observer: func(ev httperr.Event) {
			if ev.Status == 503 && errors.Is(ev.Err, tasks.ErrOverloaded) {
				overloaded.Add(1)
			}
		},
	})(mux)
	srv := httptest.NewServer(handler)
	defer srv.Close()
	openGate := sync.OnceFunc(func() { close(gate) })
	defer openGate() // before srv.Close, even if the test fails
	client := srv.Client()

	type answer struct {
		code       int
		retryAfter string
		took       time.Duration
	}
	post := func() answer {
		start := time.Now()
		resp, err := client.Post(srv.URL+"/thumbnail", "image/png", strings.NewReader("x"))
		if err != nil {
			t.Error(err)
			return answer{}
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return answer{resp.StatusCode, resp.Header.Get("Retry-After"), time.Since(start)}
	}

	admitted := make(chan answer, size+queue)
	for range size {
		go func() { admitted <- post() }()
	}
	for range size {
		<-started // both workers busy
	}
	for range queue {
		go func() { admitted <- post() }()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, waiting := pool.Stats(); waiting == queue {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("queued requests never reached the pool")
		}
		time.Sleep(time.Millisecond)
	}

	answers := make(chan answer, flood)
	var wg sync.WaitGroup
	for range flood {
		wg.Add(1)
		go func() { defer wg.Done(); answers <- post() }()
	}
	// The light route answers while the heavy one is saturated.
	for range 5 {
		resp, err := client.Get(srv.URL + "/light")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("light route during the flood: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	wg.Wait()
	close(answers)
	for a := range answers {
		if a.code != http.StatusServiceUnavailable || a.retryAfter != "3" {
			t.Fatalf("flooding request: %d Retry-After=%q, want 503 and 3", a.code, a.retryAfter)
		}
		if a.took >= queueTimeout {
			t.Fatalf("a shed request took %v: it should not wait for the queue", a.took)
		}
	}
	if n := overloaded.Load(); n != flood {
		t.Fatalf("%d sheds observed with ErrOverloaded as the cause, want %d", n, flood)
	}
	if running, waiting := pool.Stats(); running != size || waiting != queue {
		t.Fatalf("during the flood: %d running, %d waiting; want %d and %d", running, waiting, size, queue)
	}
	openGate()
	for range size + queue {
		if a := <-admitted; a.code != http.StatusOK {
			t.Fatalf("admitted or queued job answered %d", a.code)
		}
	}
	if r, w := pool.Stats(); r != 0 || w != 0 {
		t.Fatalf("Stats after the flood: %d running, %d waiting", r, w)
	}
}

// TestPoolDoAllGoexit: a job that calls runtime.Goexit never finished its
// work. DoAll returns ErrGoexit, as the Supervisor reports such a task, and
// cancels the other jobs as it does for any failure.
func TestPoolDoAllGoexit(t *testing.T) {
	t.Parallel()
	t.Run("with a job that succeeds", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			p := tasks.NewPool(tasks.PoolOptions{Size: 2})
			var finished, ok atomic.Bool
			err := p.DoAll(context.Background(),
				func(context.Context) error { runtime.Goexit(); finished.Store(true); return nil },
				func(context.Context) error { ok.Store(true); return nil },
			)
			if !errors.Is(err, tasks.ErrGoexit) || finished.Load() {
				t.Fatalf("DoAll: %v (job finished: %v), want ErrGoexit", err, finished.Load())
			}
			if running, waiting := p.Stats(); running != 0 || waiting != 0 {
				t.Fatalf("Stats after DoAll: %d running, %d waiting", running, waiting)
			}
		})
	})
	t.Run("cancels the others", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			p := tasks.NewPool(tasks.PoolOptions{Size: 2})
			secondStarted := make(chan struct{})
			var cause error
			start := time.Now()
			err := p.DoAll(context.Background(),
				func(context.Context) error {
					<-secondStarted
					runtime.Goexit()
					return nil
				},
				func(ctx context.Context) error {
					close(secondStarted)
					select {
					case <-ctx.Done():
						cause = context.Cause(ctx)
						return ctx.Err()
					case <-time.After(time.Hour):
						return errors.New("never cancelled")
					}
				},
			)
			if !errors.Is(err, tasks.ErrGoexit) || !errors.Is(cause, tasks.ErrGoexit) || time.Since(start) != 0 {
				t.Fatalf("DoAll: %v after %v (other job's cancel cause: %v), want ErrGoexit at once", err, time.Since(start), cause)
			}
		})
	})
}

// TestPoolDoGoexit: Do runs the job on the caller's goroutine, so a
// runtime.Goexit in it ends the caller's goroutine, as calling the job
// directly would: Do never returns (in particular, not nil), and the
// worker is released.
func TestPoolDoGoexit(t *testing.T) {
	t.Parallel()
	p := tasks.NewPool(tasks.PoolOptions{Size: 1})
	var returned atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.Do(context.Background(), func(context.Context) error { runtime.Goexit(); return nil })
		returned.Store(true)
	}()
	<-done
	if returned.Load() {
		t.Fatal("Do returned after its job called runtime.Goexit")
	}
	if running, waiting := p.Stats(); running != 0 || waiting != 0 {
		t.Fatalf("Stats: %d running, %d waiting", running, waiting)
	}
	if err := p.Do(context.Background(), func(context.Context) error { return nil }); err != nil {
		t.Fatalf("pool unusable afterwards: %v", err)
	}
}

// TestPoolDoPanickingLogger: a job that panics, with a logger that panics
// too. Do still returns the job's *PanicError and lets no panic out; the
// record is lost.
func TestPoolDoPanickingLogger(t *testing.T) {
	t.Parallel()
	p := tasks.NewPool(tasks.PoolOptions{Size: 1, Logger: slog.New(panickingHandler{})})
	var err error
	if v := panicValue(func() {
		err = p.Do(context.Background(), func(context.Context) error { panic("bad input") })
	}); v != nil {
		t.Fatalf("Do let the logger's panic out: %v", v)
	}
	var pe *tasks.PanicError
	if !errors.As(err, &pe) || pe.Value != "bad input" {
		t.Fatalf("Do: %v, want the job's *PanicError", err)
	}
	if err := p.Do(context.Background(), func(context.Context) error { return nil }); err != nil {
		t.Fatalf("pool unusable afterwards: %v", err)
	}
}

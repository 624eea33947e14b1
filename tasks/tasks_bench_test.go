package tasks_test

import (
	"context"
	"runtime"
	"sync"
	"testing"

	"golang.org/x/sync/semaphore"
	"golang.org/x/sync/singleflight"

	"github.com/stormcellar/stormcellar/tasks"
)

// Run with
//
//	go test -run '^$' -bench . -benchmem ./tasks/
//
// Each benchmark puts this package's form next to the x/sync primitive or
// bare goroutine it is built on, doing the same work.

// BenchmarkPoolDo: acquiring a worker, running an empty job and releasing
// it, from GOMAXPROCS goroutines, against a bare semaphore.Weighted.
func BenchmarkPoolDo(b *testing.B) {
	job := func(context.Context) error { return nil }
	ctx := context.Background()
	b.Run("tasks.Pool", func(b *testing.B) {
		b.ReportAllocs()
		p := tasks.NewPool(tasks.PoolOptions{})
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := p.Do(ctx, job); err != nil {
					b.Error(err)
				}
			}
		})
	})
	b.Run("semaphore.Weighted", func(b *testing.B) {
		b.ReportAllocs()
		sem := semaphore.NewWeighted(int64(runtime.GOMAXPROCS(0)))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := sem.Acquire(ctx, 1); err != nil {
					b.Error(err)
				}
				_ = job(ctx)
				sem.Release(1)
			}
		})
	})
}

// BenchmarkSingleflight: one caller per call (no sharing), the common
// case on a cache miss path.
func BenchmarkSingleflight(b *testing.B) {
	ctx := context.Background()
	b.Run("tasks.Singleflight", func(b *testing.B) {
		b.ReportAllocs()
		var g tasks.Singleflight[string, int]
		fn := func(context.Context) (int, error) { return 1, nil }
		for b.Loop() {
			if _, _, err := g.Do(ctx, "key", fn); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("x/sync singleflight", func(b *testing.B) {
		b.ReportAllocs()
		var g singleflight.Group
		fn := func() (any, error) { return 1, nil }
		for b.Loop() {
			if _, err, _ := g.Do("key", fn); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGo: starting a supervised task and waiting for it, against a
// bare goroutine with a WaitGroup.
func BenchmarkGo(b *testing.B) {
	ctx := context.Background()
	b.Run("tasks.Supervisor", func(b *testing.B) {
		b.ReportAllocs()
		s := tasks.New(tasks.Options{MaxTasks: -1})
		for b.Loop() {
			if err := s.Go(ctx, "bench", func(context.Context) error { return nil }); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.Shutdown(ctx); err != nil {
			b.Fatal(err)
		}
	})
	b.Run("bare goroutine", func(b *testing.B) {
		b.ReportAllocs()
		var wg sync.WaitGroup
		for b.Loop() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = func(context.Context) error { return nil }(ctx)
			}()
		}
		wg.Wait()
	})
}

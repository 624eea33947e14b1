package tasks_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/stormcellar/stormcellar/httperr"
	"github.com/stormcellar/stormcellar/tasks"
)

// A panicking background task becomes an error: it is logged with its
// stack and reported to the observer, and the process goes on.
func ExampleSupervisor() {
	s := tasks.New(tasks.Options{
		Logger: slog.New(slog.DiscardHandler), // use your logger: the record has the stack
		Observer: func(ev tasks.Event) {
			fmt.Println(ev.Task, ev.Outcome, ev.Err)
		},
	})
	_ = s.Go(context.Background(), "reindex", func(ctx context.Context) error {
		rows := fetchRows()
		fmt.Println(rows[0]) // a bug: there may be no rows
		return nil
	})
	if err := s.Shutdown(context.Background()); err != nil {
		fmt.Println(err)
	}
	fmt.Println("still running")
	// Output:
	// reindex panic tasks: panic: runtime error: index out of range [0] with length 0
	// still running
}

func fetchRows() []string { return nil }

// Detach starts work from a handler that outlives the request: the task
// keeps the request's values but not its cancellation.
func ExampleSupervisor_Detach() {
	s := tasks.New(tasks.Options{Logger: slog.New(slog.DiscardHandler)})
	sent := make(chan string, 1)
	signup := func(w http.ResponseWriter, r *http.Request) {
		email := r.FormValue("email")
		s.Detach(r.Context(), "welcome-mail", func(ctx context.Context) error {
			sent <- "welcome mail to " + email // runs after the response
			return nil
		})
		w.WriteHeader(http.StatusAccepted)
	}
	rec := httptest.NewRecorder()
	signup(rec, httptest.NewRequest("POST", "/signup?email=a@example.com", nil))
	fmt.Println(rec.Code)
	_ = s.Shutdown(context.Background()) // at exit: drain background work
	fmt.Println(<-sent)
	// Output:
	// 202
	// welcome mail to a@example.com
}

// TryDetach starts work that outlives the request, like Detach, and
// returns its refusal, so that a client is never told "accepted" for work
// that was not started: the refusal is a 503 with Retry-After.
func ExampleSupervisor_TryDetach() {
	s := tasks.New(tasks.Options{MaxTasks: 1, Logger: slog.New(slog.DiscardHandler)})
	release := make(chan struct{})
	export := httperr.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		err := s.TryDetach(r.Context(), "export", func(ctx context.Context) error {
			<-release // a long export, still running after the response
			return nil
		})
		if err != nil {
			return err // the supervisor is full or shut down
		}
		w.WriteHeader(http.StatusAccepted)
		return nil
	})
	for range 2 { // the second request finds the one task slot taken
		rec := httptest.NewRecorder()
		export.ServeHTTP(rec, httptest.NewRequest("POST", "/export", nil))
		fmt.Println(rec.Code, "Retry-After:", rec.Header().Values("Retry-After"))
	}
	close(release)
	_ = s.Shutdown(context.Background())
	// Output:
	// 202 Retry-After: []
	// 503 Retry-After: [1]
}

// Every runs a task periodically, with jitter, and with backoff after
// failures; it stops at Shutdown or when its context ends.
func ExampleSupervisor_Every() {
	s := tasks.New(tasks.Options{Logger: slog.New(slog.DiscardHandler)})
	ctx, stop := context.WithCancel(context.Background())
	runs := 0
	err := s.Every(ctx, tasks.Periodic{
		Name:     "refresh-rates",
		Interval: 10 * time.Millisecond,
		Run: func(context.Context) error {
			runs++
			fmt.Println("run", runs)
			if runs == 3 {
				stop()
			}
			return nil
		},
	})
	if err != nil {
		fmt.Println(err)
	}
	<-ctx.Done()
	_ = s.Shutdown(context.Background()) // at exit; Shutdown also stops periodic tasks
	// Output:
	// run 1
	// run 2
	// run 3
}

// A bounded pool sheds heavy work with 503 and Retry-After instead of
// letting it pile up.
func ExamplePool() {
	pool := tasks.NewPool(tasks.PoolOptions{Size: 1, QueueTimeout: 50 * time.Millisecond})
	busy, release := make(chan struct{}), make(chan struct{})
	go func() {
		_ = pool.Do(context.Background(), func(context.Context) error { close(busy); <-release; return nil })
	}()
	<-busy

	resize := httperr.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		return pool.Do(r.Context(), func(ctx context.Context) error {
			_, err := w.Write([]byte("resized"))
			return err
		})
	})
	rec := httptest.NewRecorder()
	resize.ServeHTTP(rec, httptest.NewRequest("POST", "/resize", nil))
	fmt.Println(rec.Code, rec.Header().Get("Retry-After"))
	close(release)
	// Output:
	// 503 1
}

// Singleflight shares one call among concurrent callers, and a panic in it
// is an error, not a crash.
func ExampleSingleflight() {
	g := tasks.Singleflight[string, int]{Logger: slog.New(slog.DiscardHandler)}
	v, _, err := g.Do(context.Background(), "stock:sku-1", func(ctx context.Context) (int, error) {
		return 3, nil
	})
	fmt.Println(v, err)
	_, _, err = g.Do(context.Background(), "stock:sku-2", func(ctx context.Context) (int, error) {
		panic("bad row")
	})
	var pe *tasks.PanicError
	fmt.Println(errors.As(err, &pe), err)
	// Output:
	// 3 <nil>
	// true tasks: panic: bad row
}

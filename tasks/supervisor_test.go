package tasks_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stormcellar/stormcellar/httperr"
	"github.com/stormcellar/stormcellar/tasks"
)

var errJob = errors.New("job failed")

// panickingTask is a named function so that the test can find it in the
// logged stack.
func panickingTask(context.Context) error {
	panic(errJob)
}

// TestTaskOutcomes: every way a task can end is turned into an error (never
// a crash), logged once at the right level, and reported to the observer
// with a stable outcome.
func TestTaskOutcomes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		ctx      func() (context.Context, context.CancelFunc)
		fn       func(ctx context.Context) error
		outcome  tasks.Outcome
		isErr    error // errors.Is(event.Err, isErr)
		logMsg   string
		logLevel slog.Level
		duration time.Duration
	}{
		{"ok", nil, func(context.Context) error { return nil }, tasks.OutcomeOK, nil, "", 0, 0},
		{"error", nil, func(context.Context) error { return errJob }, tasks.OutcomeError, errJob, "task failed", slog.LevelError, 0},
		{"panic", nil, panickingTask, tasks.OutcomePanic, errJob, "task panicked", slog.LevelError, 0},
		{"panic(nil)", nil, func(context.Context) error { panic(nil) }, tasks.OutcomePanic, nil, "task panicked", slog.LevelError, 0},
		{"typed nil error", nil, func(context.Context) error {
			var e *nilDerefError // its Error method panics when the record is written
			return e
		}, tasks.OutcomePanic, nil, "task panicked", slog.LevelError, 0},
		{"runtime.Goexit", nil, func(context.Context) error { runtime.Goexit(); return nil }, tasks.OutcomeError, tasks.ErrGoexit, "task failed", slog.LevelError, 0},
		{"deadline", nil, func(ctx context.Context) error {
			<-ctx.Done()
			if context.Cause(ctx) != tasks.ErrTimeout {
				return errors.New("cause is not ErrTimeout")
			}
			return ctx.Err()
		}, tasks.OutcomeTimeout, context.DeadlineExceeded, "task timed out", slog.LevelError, 3 * time.Second},
		{"caller cancels", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(time.Second, cancel)
			return ctx, cancel
		}, func(ctx context.Context) error {
			<-ctx.Done()
			return ctx.Err()
		}, tasks.OutcomeCanceled, context.Canceled, "task cancelled", slog.LevelWarn, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				s, logs, events := newSupervisor(tasks.Options{Timeout: 3 * time.Second})
				ctx, cancel := context.Background(), context.CancelFunc(func() {})
				if tt.ctx != nil {
					ctx, cancel = tt.ctx()
				}
				defer cancel()
				if err := s.Go(ctx, "job-"+tt.name, tt.fn); err != nil {
					t.Fatalf("Go: %v", err)
				}
				if err := s.Shutdown(context.Background()); err != nil {
					t.Fatalf("Shutdown: %v", err)
				}
				evs := events.all()
				if len(evs) != 1 {
					t.Fatalf("%d events, want 1: %+v", len(evs), evs)
				}
				ev := evs[0]
				if ev.Task != "job-"+tt.name || ev.Outcome != tt.outcome || ev.Duration != tt.duration {
					t.Fatalf("event %+v, want outcome %s after %v", ev, tt.outcome, tt.duration)
				}
				if tt.outcome == tasks.OutcomeOK {
					if ev.Err != nil || len(logs.records()) != 0 {
						t.Fatalf("ok task: err %v, logs %s", ev.Err, logs)
					}
					return
				}
				if tt.isErr != nil && !errors.Is(ev.Err, tt.isErr) {
					t.Fatalf("event error %v, want %v", ev.Err, tt.isErr)
				}
				recs := logs.records()
				if len(recs) != 1 || recs[0].Msg != tt.logMsg || recs[0].Level != tt.logLevel {
					t.Fatalf("logs:\n%s want one %s %q", logs, tt.logLevel, tt.logMsg)
				}
				if recs[0].Attrs["task"] != "job-"+tt.name || recs[0].Attrs["outcome"] != string(tt.outcome) {
					t.Fatalf("record attrs %v", recs[0].Attrs)
				}
				if tt.outcome == tasks.OutcomePanic {
					var pe *tasks.PanicError
					if !errors.As(ev.Err, &pe) || len(pe.Stack) == 0 {
						t.Fatalf("panic error %#v has no stack", ev.Err)
					}
					if tt.name == "panic" && !strings.Contains(recs[0].Attrs["stack"], "tasks_test.panickingTask") {
						t.Fatalf("logged stack does not show the panicking function:\n%s", recs[0].Attrs["stack"])
					}
				}
			})
		})
	}
}

// TestRefusals: a task that cannot start is refused with an error that
// httperr answers as 503 with Retry-After, and the fire-and-forget form logs
// and reports the refusal instead.
func TestRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		setup  func(s *tasks.Supervisor, release <-chan struct{})
		ctx    context.Context
		want   error
		status int
	}{
		{"after shutdown", func(s *tasks.Supervisor, _ <-chan struct{}) {
			_ = s.Shutdown(context.Background())
		}, context.Background(), tasks.ErrClosed, 503},
		{"MaxTasks running", func(s *tasks.Supervisor, release <-chan struct{}) {
			for range 2 {
				_ = s.Go(context.Background(), "busy", func(context.Context) error { <-release; return nil })
			}
		}, context.Background(), tasks.ErrTooManyTasks, 503},
		{"context already done", func(*tasks.Supervisor, <-chan struct{}) {}, canceledContext(), context.Canceled, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, logs, events := newSupervisor(tasks.Options{MaxTasks: 2})
			release := make(chan struct{})
			tt.setup(s, release)
			var ranGo, ranDetached atomic.Bool
			err := s.Go(tt.ctx, "refused", func(context.Context) error { ranGo.Store(true); return nil })
			if !errors.Is(err, tt.want) {
				t.Fatalf("Go: err = %v, want %v", err, tt.want)
			}
			if tt.status != 0 {
				rec := httptest.NewRecorder()
				httperr.Write(rec, httptest.NewRequest("GET", "/", nil), err)
				if rec.Code != tt.status || rec.Header().Get("Retry-After") == "" {
					t.Fatalf("httperr.Write: %d Retry-After=%q", rec.Code, rec.Header().Get("Retry-After"))
				}
			}
			// The fire-and-forget form reports the same refusal.
			s.Detach(tt.ctx, "detached", func(context.Context) error { ranDetached.Store(true); return nil })
			close(release)
			if err := s.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			if ranGo.Load() {
				t.Fatal("a refused task ran")
			}
			if tt.name == "context already done" {
				// Detach drops the caller's cancellation, so it runs.
				if !ranDetached.Load() {
					t.Fatal("Detach with a done request context did not run")
				}
				return
			}
			if ranDetached.Load() {
				t.Fatal("a refused detached task ran")
			}
			refused := 0
			for _, ev := range events.all() {
				if ev.Outcome == tasks.OutcomeRefused {
					refused++
				}
			}
			if refused != 2 {
				t.Fatalf("%d refusals observed, want 2: %+v", refused, events.all())
			}
			if recs := logs.find("task refused"); len(recs) != 1 || recs[0].Attrs["task"] != "detached" {
				t.Fatalf("refusal log:\n%s", logs)
			}
		})
	}
}

func canceledContext() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

type ctxKey struct{}

// TestDetachOutlivesTheRequest: work started by a handler keeps running
// after the response is sent and the request's context is cancelled, keeps
// the request's values, and is drained by Shutdown.
func TestDetachOutlivesTheRequest(t *testing.T) {
	t.Parallel()
	s, logs, events := newSupervisor(tasks.Options{})
	responded := make(chan struct{})
	result := make(chan string, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /signup", func(w http.ResponseWriter, r *http.Request) {
		ctx := context.WithValue(r.Context(), ctxKey{}, "user-42")
		s.Detach(ctx, "welcome-mail", func(ctx context.Context) error {
			<-responded // still running after the response
			if err := ctx.Err(); err != nil {
				result <- "cancelled: " + err.Error()
				return err
			}
			result <- "sent to " + ctx.Value(ctxKey{}).(string)
			return nil
		})
		w.WriteHeader(http.StatusAccepted)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	resp, err := srv.Client().Post(srv.URL+"/signup", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d", resp.StatusCode)
	}
	close(responded)
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := <-result; got != "sent to user-42" {
		t.Fatalf("background task: %s", got)
	}
	if evs := events.all(); len(evs) != 1 || evs[0].Outcome != tasks.OutcomeOK {
		t.Fatalf("events %+v; logs:\n%s", evs, logs)
	}
}

// TestShutdownDrains: Shutdown waits for running tasks to finish on their
// own when they do so before its deadline.
func TestShutdownDrains(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s, _, events := newSupervisor(tasks.Options{})
		for i := range 3 {
			d := time.Duration(i+1) * time.Second
			if err := s.Go(context.Background(), "work-"+strconv.Itoa(i), func(ctx context.Context) error {
				select {
				case <-time.After(d):
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		if err := s.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if d := time.Since(start); d != 3*time.Second {
			t.Fatalf("Shutdown returned after %v, want 3s (the longest task)", d)
		}
		for _, ev := range events.all() {
			if ev.Outcome != tasks.OutcomeOK {
				t.Fatalf("event %+v: drained tasks must finish normally", ev)
			}
		}
		if err := s.Go(context.Background(), "late", func(context.Context) error { return nil }); !errors.Is(err, tasks.ErrClosed) {
			t.Fatalf("Go after Shutdown: %v", err)
		}
	})
}

// TestShutdownCancelsPastTheDrainDeadline: tasks still running when
// Shutdown's context ends are cancelled with cause ErrShutdown, and
// Shutdown reports the deadline.
func TestShutdownCancelsPastTheDrainDeadline(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s, logs, events := newSupervisor(tasks.Options{Timeout: -1})
		if err := s.Go(context.Background(), "consumer", func(ctx context.Context) error {
			<-ctx.Done()
			if context.Cause(ctx) != tasks.ErrShutdown {
				return errors.New("wrong cause")
			}
			return ctx.Err()
		}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		start := time.Now()
		err := s.Shutdown(ctx)
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, tasks.ErrStuck) {
			t.Fatalf("Shutdown: %v, want the drain deadline and no stuck task", err)
		}
		if d := time.Since(start); d != 2*time.Second {
			t.Fatalf("Shutdown returned after %v, want 2s", d)
		}
		evs := events.all()
		if len(evs) != 1 || evs[0].Outcome != tasks.OutcomeCanceled {
			t.Fatalf("events %+v", evs)
		}
		if recs := logs.find("task cancelled"); len(recs) != 1 || recs[0].Attrs["cause"] != tasks.ErrShutdown.Error() {
			t.Fatalf("logs:\n%s", logs)
		}
	})
}

// TestShutdownNamesStuckTasks: a task that ignores its context is named in
// Shutdown's error and in the log after the grace period, so the process
// can still exit.
func TestShutdownNamesStuckTasks(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s, logs, _ := newSupervisor(tasks.Options{Timeout: -1, CancelGrace: 3 * time.Second})
		release := make(chan struct{})
		if err := s.Go(context.Background(), "ignores-ctx", func(context.Context) error { <-release; return nil }); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		err := s.Shutdown(ctx)
		if !errors.Is(err, tasks.ErrStuck) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "ignores-ctx") {
			t.Fatalf("Shutdown: %v", err)
		}
		if d := time.Since(start); d != 4*time.Second {
			t.Fatalf("Shutdown returned after %v, want 1s deadline + 3s grace", d)
		}
		if recs := logs.find("tasks still running after shutdown"); len(recs) != 1 || recs[0].Attrs["tasks"] != "ignores-ctx" {
			t.Fatalf("logs:\n%s", logs)
		}
		close(release)
		if err := s.Shutdown(context.Background()); err != nil {
			t.Fatalf("second Shutdown after the task returned: %v", err)
		}
	})
}

// TestMaxTasksBoundsAFlood: a flood of requests that each start background
// work cannot start unbounded goroutines: past MaxTasks the handler answers
// 503 with Retry-After, and another route keeps answering.
func TestMaxTasksBoundsAFlood(t *testing.T) {
	t.Parallel()
	const maxTasks, flood = 8, 40
	s, _, _ := newSupervisor(tasks.Options{MaxTasks: maxTasks})
	release := make(chan struct{})
	var started atomic.Int64
	mux := http.NewServeMux()
	mux.Handle("POST /export", httperr.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		err := s.Go(context.WithoutCancel(r.Context()), "export", func(ctx context.Context) error {
			started.Add(1)
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		if err != nil {
			return err
		}
		w.WriteHeader(http.StatusAccepted)
		return nil
	}))
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	srv := httptest.NewServer(httperr.Install(httperr.Options{Logger: slog.New(slog.DiscardHandler)})(mux))
	defer srv.Close()
	finish := sync.OnceFunc(func() { close(release) })
	defer func() { finish(); _ = s.Shutdown(context.Background()) }()
	client := srv.Client()

	count := postFlood(t, client, srv.URL+"/export", flood)
	if count[http.StatusAccepted] != maxTasks || count[http.StatusServiceUnavailable] != flood-maxTasks {
		t.Fatalf("answers %v, want %d accepted and %d shed", count, maxTasks, flood-maxTasks)
	}
	resp, err := client.Get(srv.URL + "/health")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("health during the flood: %v %v", resp, err)
	}
	resp.Body.Close()
	finish()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := started.Load(); n != maxTasks {
		t.Fatalf("%d tasks ran, want %d", n, maxTasks)
	}
}

// TestObserverPanicIsContained: a panicking observer is logged and does not
// take the task or the process down.
func TestObserverPanicIsContained(t *testing.T) {
	t.Parallel()
	logs := &logRecorder{}
	s := tasks.New(tasks.Options{Logger: slog.New(logs), Observer: func(tasks.Event) { panic("observer bug") }})
	if err := s.Go(context.Background(), "t", func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if recs := logs.find("task observer panicked"); len(recs) != 1 || recs[0].Attrs["panic"] != "observer bug" {
		t.Fatalf("logs:\n%s", logs)
	}
}

// TestTryDetachRefusesAFlood: a handler that starts background work with
// TryDetach answers 503 with Retry-After once MaxTasks tasks run, so the
// client learns that its work was not started; the accepted tasks outlive
// their requests. Detach, the control, answers 202 to every request and
// drops the work it cannot start, with one log record each.
func TestTryDetachRefusesAFlood(t *testing.T) {
	t.Parallel()
	const maxTasks, flood = 4, 20
	tests := []struct {
		name       string
		start      func(s *tasks.Supervisor, ctx context.Context, fn func(context.Context) error) error
		accepted   int // 202 answers
		logged     int // "task refused" records
		refusedFor string
	}{
		{"TryDetach", func(s *tasks.Supervisor, ctx context.Context, fn func(context.Context) error) error {
			return s.TryDetach(ctx, "export", fn)
		}, maxTasks, 0, "503"},
		{"Detach", func(s *tasks.Supervisor, ctx context.Context, fn func(context.Context) error) error {
			s.Detach(ctx, "export", fn)
			return nil
		}, flood, flood - maxTasks, "nothing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, logs, events := newSupervisor(tasks.Options{MaxTasks: maxTasks})
			release := make(chan struct{})
			var started, cancelled atomic.Int64
			mux := http.NewServeMux()
			mux.Handle("POST /export", httperr.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				err := tt.start(s, r.Context(), func(ctx context.Context) error {
					started.Add(1)
					<-release // every response has been sent by then
					if ctx.Err() != nil {
						cancelled.Add(1)
					}
					return ctx.Err()
				})
				if err != nil {
					return err
				}
				w.WriteHeader(http.StatusAccepted)
				return nil
			}))
			srv := httptest.NewServer(httperr.Install(httperr.Options{Logger: slog.New(slog.DiscardHandler)})(mux))
			defer srv.Close()
			finish := sync.OnceFunc(func() { close(release) })
			defer func() { finish(); _ = s.Shutdown(context.Background()) }()
			client := srv.Client()

			count := postFlood(t, client, srv.URL+"/export", flood)
			if count[http.StatusAccepted] != tt.accepted || count[http.StatusServiceUnavailable] != flood-tt.accepted {
				t.Fatalf("answers %v, want %d accepted and the rest 503", count, tt.accepted)
			}
			finish()
			if err := s.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			if started.Load() != maxTasks || cancelled.Load() != 0 {
				t.Fatalf("%d tasks ran (%d cancelled with their request), want %d, none cancelled",
					started.Load(), cancelled.Load(), maxTasks)
			}
			refused := 0
			for _, ev := range events.all() {
				if ev.Outcome == tasks.OutcomeRefused && errors.Is(ev.Err, tasks.ErrTooManyTasks) {
					refused++
				}
			}
			if refused != flood-maxTasks {
				t.Fatalf("%d refusals observed, want %d", refused, flood-maxTasks)
			}
			if n := len(logs.find("task refused")); n != tt.logged {
				t.Fatalf("%d refusal records, want %d (a returned refusal is the caller's to log)", n, tt.logged)
			}
		})
	}
}

// TestPanickingLoggerIsGivenUp: a Supervisor whose logger panics still
// reports every task to the observer once, with its true outcome, and the
// logger's panic gets out neither on a task's goroutine nor on the
// caller's (a refusal of Detach is logged there).
func TestPanickingLoggerIsGivenUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("observer still called", func(t *testing.T) {
		t.Parallel()
		events := &eventRecorder{}
		s := tasks.New(tasks.Options{Logger: slog.New(panickingHandler{}), Observer: events.observe})
		if err := s.Go(ctx, "fails", func(context.Context) error { return errJob }); err != nil {
			t.Fatal(err)
		}
		if err := s.Go(ctx, "panics", panickingTask); err != nil {
			t.Fatal(err)
		}
		if err := s.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if v := panicValue(func() { s.Detach(ctx, "late", func(context.Context) error { return nil }) }); v != nil {
			t.Fatalf("Detach let the logger's panic out: %v", v)
		}
		got := map[string]tasks.Event{}
		for _, ev := range events.all() {
			got[ev.Task] = ev
		}
		var pe *tasks.PanicError
		switch {
		case len(events.all()) != 3:
			t.Fatalf("events %+v, want one for each of 3 tasks", events.all())
		case got["fails"].Outcome != tasks.OutcomeError || !errors.Is(got["fails"].Err, errJob):
			t.Fatalf("failed task reported as %+v", got["fails"])
		case got["panics"].Outcome != tasks.OutcomePanic || !errors.As(got["panics"].Err, &pe) || pe.Value != errJob:
			t.Fatalf("panicking task reported as %+v", got["panics"])
		case got["late"].Outcome != tasks.OutcomeRefused || !errors.Is(got["late"].Err, tasks.ErrClosed):
			t.Fatalf("refused task reported as %+v", got["late"])
		}
	})
	t.Run("observer panics too", func(t *testing.T) {
		t.Parallel()
		s := tasks.New(tasks.Options{
			Logger:   slog.New(panickingHandler{}),
			Observer: func(tasks.Event) { panic("observer bug") },
		})
		if err := s.Go(ctx, "t", func(context.Context) error { return nil }); err != nil {
			t.Fatal(err)
		}
		if err := s.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if v := panicValue(func() { s.Detach(ctx, "late", func(context.Context) error { return nil }) }); v != nil {
			t.Fatalf("Detach let a panic out: %v", v)
		}
	})
}

// postFlood sends n POSTs to url at once and counts the answers by status;
// every 503 must carry Retry-After.
func postFlood(t *testing.T, client *http.Client, url string, n int) map[int]int {
	t.Helper()
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Post(url, "text/plain", nil)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			_, _ = io.Copy(io.Discard, resp.Body)
			if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			codes <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	return count
}

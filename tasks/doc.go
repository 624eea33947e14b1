// Package tasks provides background work that cannot crash the process:
// supervised goroutines with deadlines, periodic tasks with jitter and
// backoff, a bounded pool that sheds heavy requests with 503, and a
// duplicate-call suppressor whose panics are errors.
//
// In Go a panic on any goroutine that nothing recovers ends the whole
// process, and with it every request in flight. net/http recovers panics
// only on the handler's own goroutine; a goroutine started by a handler,
// a goroutine of [golang.org/x/sync/errgroup] (whose panic propagation was
// added and then reverted in 2025) and the goroutine that [golang.org/x/sync/singleflight]
// starts to re-panic for DoChan callers are all fatal. This package is
// what to use instead of a bare go statement.
//
// # Use
//
// One [Supervisor] per process, shut down after the HTTP server:
//
//	sup := tasks.New(tasks.Options{Logger: logger, Observer: metrics.Task})
//	_ = sup.Every(ctx, tasks.Periodic{Name: "refresh-rates", Interval: time.Minute, Run: refreshRates})
//
//	mux.Handle("POST /signup", httperr.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
//		…
//		err := sup.TryDetach(r.Context(), "welcome-mail", func(ctx context.Context) error {
//			return mailer.Send(ctx, user.Email) // runs after the response
//		})
//		if err != nil {
//			return err // too busy or shutting down: 503 with Retry-After, no mail
//		}
//		w.WriteHeader(http.StatusAccepted)
//		return nil
//	}))
//
//	// at exit, after srv.Shutdown:
//	err := sup.Shutdown(drainCtx)
//
// A [Pool] per kind of heavy work, used from handlers:
//
//	thumbnails := tasks.NewPool(tasks.PoolOptions{Size: 2})
//	mux.Handle("POST /thumbnail", httperr.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
//		return thumbnails.Do(r.Context(), func(ctx context.Context) error {
//			return resize(ctx, w, r.Body)
//		}) // a shed job is a 503 with Retry-After
//	}))
//
// # Threat model
//
// Answers three seed threats. "Unhandled errors in background tasks" (a
// failure in work started with Tornado's spawn_callback is only logged,
// and in Go it kills the process): every task and job runs under recover,
// a panic becomes a [*PanicError] that is logged once with its stack and
// reported to the observer, and errors, deadlines and cancellations are
// logged with the task's name and, when the request that started the task
// has one, its request id. The logging cannot crash the process either: a
// record whose log handler panics is dropped. "Blocking the event loop" (a
// CPU-heavy or blocking request makes the server unresponsive): Go has no
// single event loop, but unbounded heavy work still takes every CPU and
// every connection; a [Pool] runs at most Size jobs at once, lets at most
// MaxQueue callers wait, each for at most QueueTimeout, and sheds the rest
// at once with a 503 and Retry-After through [httperr], so light routes
// keep answering.
// "Timeouts for background tasks" (seed 004): every task has a deadline by
// default, and is cancelled if it is still running past the drain
// deadline of Shutdown.
//
// Default behaviour:
//   - A task's deadline is one minute ([DefaultTimeout]); its context is
//     cancelled with cause [ErrTimeout] when it passes.
//   - At most 1,024 tasks run at once ([DefaultMaxTasks]): a flood of
//     requests that each start background work with [Supervisor.TryDetach]
//     (or [Supervisor.Go]) is refused with 503 and Retry-After, through
//     [httperr], instead of starting unbounded goroutines.
//   - [Supervisor.TryDetach] and [Supervisor.Detach] keep the request's
//     values (its request id) but not its cancellation, so the work is not
//     cut short when the handler returns, and still has a deadline.
//   - Shutdown refuses new tasks, stops periodic tasks, waits for running
//     ones, cancels them with cause [ErrShutdown] past its deadline, and
//     names those that still do not return.
//   - A pool has one worker per CPU and a queue twice that long, with one
//     second of waiting at most; a client that goes away stops waiting.
//   - [Singleflight] gives each caller its own context: callers that give
//     up leave, and the shared call is cancelled when nobody waits. The
//     shared call sees none of the callers' context values, so it cannot
//     act as the first caller and hand that result to the others. A key
//     that is not equal to itself (one that holds a NaN, which
//     [strconv.ParseFloat] makes from "NaN") is refused with
//     [ErrInvalidKey]: a Go map never finds it again, so accepted, it
//     would start a call for every caller and keep each one in the map
//     for good.
//
// Fail-open cases and limits:
//   - Go cannot stop a goroutine. A task or job that ignores its context
//     keeps running past its deadline and past Shutdown, which reports it
//     ([ErrStuck]) and returns so that the process can exit. Pass the
//     context to every blocking call.
//   - A panic is recovered only on the goroutine the package started (or
//     the caller's, for [Pool.Do]). A goroutine that a task starts itself
//     with a go statement is not supervised: start it with the Supervisor.
//   - [Supervisor.Detach] drops the work it cannot start (the supervisor
//     is full or shut down): it logs one Warn record "task refused" and
//     reports it to the observer, but the handler is not told and answers
//     as if the work had started. Use TryDetach wherever the client must
//     learn that its work was not started.
//   - A task that calls [runtime.Goexit] is reported as failed with
//     [ErrGoexit]; its periodic schedule, if any, ends. A [Pool.DoAll] job
//     or a [Singleflight] call that does so fails with ErrGoexit too. A job
//     of [Pool.Do] runs on the caller's goroutine, which a Goexit ends: Do
//     does not return, and releases its worker.
//   - A record whose log handler panics is dropped, while the callers
//     still get their results and errors and the observer its events.
//   - Options.Timeout and Options.MaxTasks can be turned off with negative
//     values; do that only for long-lived workers started at boot, never
//     for work started by requests.
//   - The Pool's CPU work still shares the machine with the server: its
//     Size bounds how much, it does not make the work cheaper.
//
// # Compared with Tornado and the Go anchors
//
// Tornado's spawn_callback logs a failure and forgets the task: no
// deadline, no drain at shutdown, no bound on how many run, and its
// run_in_executor pool has an unbounded queue, so overload turns into
// latency instead of a clear 503. [golang.org/x/sync/errgroup] and a
// bare go statement let one panic end the process, and
// [golang.org/x/sync/singleflight] cannot be cancelled per caller, lets a
// stuck call block every caller, and turns a panic under DoChan into an
// unrecoverable crash. crash_test.go re-runs the test binary to show each
// of these crashing, and this package's forms surviving the same panic.
package tasks

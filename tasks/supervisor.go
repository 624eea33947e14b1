package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/stormcellar/stormcellar/httperr"
)

// Defaults used when the corresponding [Options] field is zero.
const (
	DefaultTimeout     = time.Minute
	DefaultMaxTasks    = 1024
	DefaultCancelGrace = 5 * time.Second
)

// Errors of the [Supervisor].
var (
	// ErrClosed is the cause of the refusal of a task started after
	// Shutdown began.
	ErrClosed = errors.New("tasks: supervisor is shut down")
	// ErrTooManyTasks is the cause of the refusal of a task started while
	// Options.MaxTasks tasks are running.
	ErrTooManyTasks = errors.New("tasks: too many tasks running")
	// ErrShutdown is the cause (see [context.Cause]) of the cancellation of
	// a task that was still running when Shutdown's drain deadline passed.
	ErrShutdown = errors.New("tasks: cancelled by shutdown")
	// ErrTimeout is the cause (see [context.Cause]) of the cancellation of
	// a task that ran past its deadline.
	ErrTimeout = errors.New("tasks: task deadline exceeded")
	// ErrStuck is returned by Shutdown when tasks were still running after
	// they were cancelled and the grace period passed; they are named in
	// the error and in the log.
	ErrStuck = errors.New("tasks: tasks did not return after cancellation")
	// ErrGoexit is the error of a task, a [Pool.DoAll] job or a
	// [Singleflight] call that called [runtime.Goexit] (for example through
	// testing.T.FailNow) instead of returning: its work never finished.
	ErrGoexit = errors.New("tasks: task called runtime.Goexit")
)

// PanicError is the error of a task or a job that panicked. The panic is
// recovered in the goroutine where it happened, so it never crashes the
// process; the stack is logged once and kept here.
type PanicError struct {
	// Value is the value passed to panic.
	Value any
	// Stack is the stack of the panicking goroutine, from
	// [runtime/debug.Stack].
	Stack []byte
}

func newPanicError(v any) *PanicError {
	return &PanicError{Value: v, Stack: debug.Stack()}
}

// Error reports the panic value, without the stack.
func (e *PanicError) Error() string {
	return fmt.Sprintf("tasks: panic: %v", e.Value)
}

// Unwrap returns the panic value if it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// Outcome is how a task ended: a stable, low-cardinality label for metrics.
type Outcome string

// Outcomes reported in [Event].
const (
	OutcomeOK       Outcome = "ok"       // returned nil
	OutcomeError    Outcome = "error"    // returned an error (or called runtime.Goexit)
	OutcomePanic    Outcome = "panic"    // panicked; Err is a *PanicError
	OutcomeTimeout  Outcome = "timeout"  // failed after its deadline passed
	OutcomeCanceled Outcome = "canceled" // failed after its context was cancelled
	OutcomeRefused  Outcome = "refused"  // never started: closed, full, or context done
)

// Event describes one finished (or refused) task, for Options.Observer.
type Event struct {
	Task     string        // the name given when it was started
	Outcome  Outcome       // how it ended
	Err      error         // nil for OutcomeOK
	Duration time.Duration // how long it ran (zero if refused)
}

// Options configure a [Supervisor]. The zero value is the safe setting:
// every task has a one-minute deadline, at most 1,024 run at once, and
// failures are logged to slog.Default().
type Options struct {
	// Logger receives one record per failed task run (Error, with the
	// stack for a panic; Warn for a cancellation), one per task that
	// Detach refuses (Warn), whose refusal reaches nobody else, one per
	// panic of the Observer (Error), and one when Shutdown gives up on
	// tasks that do not return (Error). A refusal that Go, TryDetach or
	// Every returns is not logged here: the caller has the error, and
	// [httperr.Write] logs it with the 503, as it does for a [Pool]'s
	// sheds; logging it here too would double the records a flood
	// produces. Keys: task, outcome, err, duration, panic, stack, cause,
	// count, tasks, request_id. If nil, slog.Default() is used. If the
	// handler panics, that record is given up on: it is lost, the task and
	// the process go on, and the observer is still called.
	Logger *slog.Logger
	// Observer, if set, is called once for every task run that ends (each
	// run of a periodic task is one) and once for every task that Go,
	// Detach, TryDetach or Every refuses, after the log record if any,
	// from the task's goroutine (or the caller's, for a refusal), so it
	// may be called concurrently. An invalid [Periodic] is not a refused
	// task. Use it for metrics; it must not block. A panic in it is
	// recovered and logged.
	Observer func(Event)
	// Timeout is the deadline of each task, counted from its start; the
	// task's context is cancelled with cause [ErrTimeout] when it passes.
	// Zero means DefaultTimeout (one minute); negative means no deadline
	// other than the caller's context, for long-running workers.
	Timeout time.Duration
	// MaxTasks caps the number of tasks running at once (each periodic
	// task counts as one). Starting one more is refused with
	// [ErrTooManyTasks], so a flood of requests that each start background
	// work cannot start unbounded goroutines. Zero means DefaultMaxTasks
	// (1,024); negative means no cap.
	MaxTasks int
	// CancelGrace is how long Shutdown waits, after its drain deadline,
	// for the tasks it cancelled to return. Zero means DefaultCancelGrace
	// (5s).
	CancelGrace time.Duration
}

// Supervisor runs background tasks that cannot crash the process: every
// task gets a context and a deadline, a panic becomes a [*PanicError] with
// its stack logged, errors are logged and reported to the observer, and
// [Supervisor.Shutdown] waits for running tasks, cancelling them past its
// drain deadline. It is safe for concurrent use by multiple goroutines.
type Supervisor struct {
	logger      *slog.Logger
	observer    func(Event)
	timeout     time.Duration
	maxTasks    int
	cancelGrace time.Duration

	mu       sync.Mutex
	closed   bool
	running  map[*task]struct{}
	stopping chan struct{} // closed when Shutdown begins
	drained  chan struct{} // closed when closed and no task runs
}

type task struct {
	name   string
	cancel context.CancelCauseFunc
}

// New returns a Supervisor configured by opts.
func New(opts Options) *Supervisor {
	s := &Supervisor{
		logger:      opts.Logger,
		observer:    opts.Observer,
		timeout:     opts.Timeout,
		maxTasks:    opts.MaxTasks,
		cancelGrace: opts.CancelGrace,
		running:     make(map[*task]struct{}),
		stopping:    make(chan struct{}),
		drained:     make(chan struct{}),
	}
	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}
	if s.maxTasks == 0 {
		s.maxTasks = DefaultMaxTasks
	}
	if s.cancelGrace <= 0 {
		s.cancelGrace = DefaultCancelGrace
	}
	return s
}

// Go starts fn in a supervised goroutine and returns at once. fn's context
// is derived from ctx (its values, cancellation and deadline), is cancelled
// with cause [ErrTimeout] after Options.Timeout, and with cause
// [ErrShutdown] if Shutdown's drain deadline passes while fn runs.
//
// Go returns an error, and does not start fn, if ctx is already done or
// the supervisor is shut down or full. The last two are
// [*httperr.HTTPError] values (503, [httperr.KindOverload], Retry-After)
// that wrap [ErrClosed] or [ErrTooManyTasks], so a handler can return
// them as they are. A refusal is reported to the observer, and not logged
// here: the caller has the error.
//
// From a handler, use [Supervisor.TryDetach] (or [Supervisor.Detach]):
// the request's context is cancelled as soon as the handler returns.
func (s *Supervisor) Go(ctx context.Context, name string, fn func(ctx context.Context) error) error {
	return s.start(ctx, name, fn, false)
}

// Detach is the fire-and-forget form of [Supervisor.Go], for work started
// by a handler that must outlive the request (sending a mail, refreshing a
// cache). fn's context keeps ctx's values, such as the request id that
// the log records carry, but not its cancellation or deadline; it gets
// the supervisor's deadline instead. A refusal (the supervisor is shut
// down or full) drops fn: it is logged and reported to the observer, and
// nobody else learns of it. A handler that answers "accepted" must use
// [Supervisor.TryDetach] instead, and answer its error.
func (s *Supervisor) Detach(ctx context.Context, name string, fn func(ctx context.Context) error) {
	_ = s.start(context.WithoutCancel(ctx), name, fn, true)
}

// TryDetach is [Supervisor.Detach] that returns its refusal instead of
// dropping the work: fn's context keeps ctx's values but not its
// cancellation or deadline, and gets the supervisor's deadline. If ctx is
// done, TryDetach still starts fn, as Detach does. If the supervisor is
// shut down or full, it returns, without starting fn, the same
// [*httperr.HTTPError] as [Supervisor.Go] (503, Retry-After, wrapping
// [ErrClosed] or [ErrTooManyTasks]), so a handler can return it and the
// client learns that its work was not started. The refusal is reported to
// the observer; it is not logged here, since the caller has the error
// ([httperr.Write] logs it with the 503).
func (s *Supervisor) TryDetach(ctx context.Context, name string, fn func(ctx context.Context) error) error {
	return s.start(context.WithoutCancel(ctx), name, fn, false)
}

func (s *Supervisor) start(ctx context.Context, name string, fn func(context.Context) error, logRefusal bool) error {
	if err := ctx.Err(); err != nil {
		s.refused(ctx, name, err, logRefusal)
		return err
	}
	tctx, cancel := context.WithCancelCause(ctx)
	t := &task{name: name, cancel: cancel}
	if err := s.register(t); err != nil {
		cancel(nil)
		s.refused(ctx, name, err, logRefusal)
		return err
	}
	go func() {
		defer s.deregister(t)
		defer cancel(nil)
		runCtx := tctx
		if s.timeout > 0 {
			var stop context.CancelFunc
			runCtx, stop = context.WithTimeoutCause(tctx, s.timeout, ErrTimeout)
			defer stop()
		}
		s.runOnce(runCtx, name, fn)
	}()
	return nil
}

// register records a new running task, or refuses it.
func (s *Supervisor) register(t *task) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return unavailable(ErrClosed)
	}
	if s.maxTasks > 0 && len(s.running) >= s.maxTasks {
		return unavailable(ErrTooManyTasks)
	}
	s.running[t] = struct{}{}
	return nil
}

func (s *Supervisor) deregister(t *task) {
	s.mu.Lock()
	delete(s.running, t)
	if s.closed && len(s.running) == 0 {
		select {
		case <-s.drained:
		default:
			close(s.drained)
		}
	}
	s.mu.Unlock()
}

func unavailable(cause error) *httperr.HTTPError {
	return httperr.Unavailable(httperr.KindOverload, time.Second, cause)
}

// runOnce calls fn, turning a panic or a Goexit into an error, then logs
// and reports the outcome. It returns the outcome and fn's error.
func (s *Supervisor) runOnce(ctx context.Context, name string, fn func(context.Context) error) (outcome Outcome, err error) {
	start := time.Now()
	returned := false
	defer func() {
		if !returned {
			// Goexit: no return value, no panic (a panic was recovered
			// below and set returned). Report it, and let it go on.
			err = ErrGoexit
		}
		outcome, err = s.finish(ctx, name, err, time.Since(start))
	}()
	err = call(ctx, fn)
	returned = true
	return outcome, err // outcome is set by the deferred report
}

// finish classifies, logs and reports one run. It runs outside the
// recovery of call, so an error whose methods panic (a nil pointer of an
// error type returned as an error, an Unwrap that panics) is caught here
// and reported as a *PanicError instead of crashing the process.
func (s *Supervisor) finish(ctx context.Context, name string, err error, d time.Duration) (outcome Outcome, rerr error) {
	defer func() {
		if v := recover(); v != nil {
			pe := newPanicError(v)
			outcome, rerr = OutcomePanic, pe
			defer func() { _ = recover() }() // whatever else panics is given up on
			s.report(ctx, name, outcome, pe, d)
		}
	}()
	outcome = classify(ctx, err)
	s.report(ctx, name, outcome, err, d)
	return outcome, err
}

// call runs fn and recovers a panic into a *PanicError. A Goexit passes
// through (recover returns nil for it).
func call(ctx context.Context, fn func(context.Context) error) (err error) {
	normal := false
	defer func() {
		if normal {
			return
		}
		if v := recover(); v != nil {
			err = newPanicError(v)
		}
	}()
	err = fn(ctx)
	normal = true
	return err
}

// classify names how a run that returned err ended.
func classify(ctx context.Context, err error) Outcome {
	var pe *PanicError
	switch {
	case err == nil:
		return OutcomeOK
	case errors.As(err, &pe):
		return OutcomePanic
	case ctx.Err() == nil:
		return OutcomeError
	case errors.Is(context.Cause(ctx), ErrTimeout) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		return OutcomeTimeout
	default:
		return OutcomeCanceled
	}
}

// report logs and observes one finished run.
func (s *Supervisor) report(ctx context.Context, name string, outcome Outcome, err error, d time.Duration) {
	if outcome != OutcomeOK {
		level, msg := slog.LevelError, "task failed"
		attrs := make([]slog.Attr, 0, 7)
		attrs = append(attrs,
			slog.String("task", name),
			slog.String("outcome", string(outcome)),
			slog.String("err", err.Error()),
			slog.Duration("duration", d),
		)
		var pe *PanicError
		switch {
		case errors.As(err, &pe):
			msg = "task panicked"
			attrs = append(attrs, slog.String("panic", fmt.Sprint(pe.Value)), slog.String("stack", string(pe.Stack)))
		case outcome == OutcomeTimeout:
			msg = "task timed out"
		case outcome == OutcomeCanceled:
			level, msg = slog.LevelWarn, "task cancelled"
			if cause := context.Cause(ctx); cause != nil && cause != ctx.Err() {
				attrs = append(attrs, slog.String("cause", cause.Error()))
			}
		}
		s.log(ctx, level, msg, attrs)
	}
	s.observe(Event{Task: name, Outcome: outcome, Err: err, Duration: d})
}

func (s *Supervisor) refused(ctx context.Context, name string, err error, log bool) {
	if log {
		s.log(ctx, slog.LevelWarn, "task refused", []slog.Attr{
			slog.String("task", name),
			slog.String("outcome", string(OutcomeRefused)),
			slog.String("err", err.Error()),
		})
	}
	s.observe(Event{Task: name, Outcome: OutcomeRefused, Err: err})
}

func (s *Supervisor) log(ctx context.Context, level slog.Level, msg string, attrs []slog.Attr) {
	logRecord(ctx, s.logger, level, msg, attrs)
}

// logRecord writes one record to l (slog.Default() if nil), with the
// request id that ctx carries, if any. The package logs from goroutines it
// owns, where nothing could recover a panic and the process would end, and
// right after it recovered a panic on a caller's goroutine: so a record
// whose handler panics is given up on, and lost.
func logRecord(ctx context.Context, l *slog.Logger, level slog.Level, msg string, attrs []slog.Attr) {
	defer func() { _ = recover() }()
	if l == nil {
		l = slog.Default()
	}
	ctx = context.WithoutCancel(ctx)
	if !l.Enabled(ctx, level) {
		return
	}
	if id := httperr.RequestID(ctx); id != "" {
		attrs = append(attrs, slog.String("request_id", id))
	}
	l.LogAttrs(ctx, level, msg, attrs...)
}

func (s *Supervisor) observe(ev Event) {
	if s.observer == nil {
		return
	}
	defer func() {
		if v := recover(); v != nil {
			s.log(context.Background(), slog.LevelError, "task observer panicked", []slog.Attr{
				slog.String("task", ev.Task), slog.String("panic", fmt.Sprint(v)),
				slog.String("stack", string(debug.Stack())),
			})
		}
	}()
	s.observer(ev)
}

// Shutdown stops the supervisor: tasks started from now on are refused
// with [ErrClosed], periodic tasks start no new run, and Shutdown waits for
// the running tasks to return.
//
// If ctx is done first (the drain deadline), Shutdown cancels the context
// of every task still running with cause [ErrShutdown] and waits up to
// Options.CancelGrace more. It then returns an error wrapping ctx.Err(),
// and also [ErrStuck], naming them, if some tasks have still not returned;
// those goroutines are left running, since Go cannot stop them. It
// returns nil if every task returned before ctx was done. Calling it again
// waits again.
func (s *Supervisor) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.stopping)
		if len(s.running) == 0 {
			close(s.drained)
		}
	}
	s.mu.Unlock()

	select {
	case <-s.drained:
		return nil
	case <-ctx.Done():
	}

	s.mu.Lock()
	for t := range s.running {
		t.cancel(ErrShutdown)
	}
	s.mu.Unlock()

	grace := time.NewTimer(s.cancelGrace)
	defer grace.Stop()
	select {
	case <-s.drained:
		return fmt.Errorf("tasks: drain deadline passed, running tasks were cancelled: %w", ctx.Err())
	case <-grace.C:
	}
	s.mu.Lock()
	names := make([]string, 0, len(s.running))
	for t := range s.running {
		names = append(names, t.name)
	}
	s.mu.Unlock()
	slices.Sort(names)
	list := strings.Join(names, ", ")
	s.log(context.Background(), slog.LevelError, "tasks still running after shutdown", []slog.Attr{
		slog.Int("count", len(names)), slog.String("tasks", list),
	})
	return fmt.Errorf("%w: %s (%w)", ErrStuck, list, ctx.Err())
}

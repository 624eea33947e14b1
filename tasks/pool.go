package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/stormcellar/stormcellar/httperr"
)

// Defaults used when the corresponding [PoolOptions] field is zero.
const (
	DefaultQueueTimeout = time.Second
	DefaultRetryAfter   = time.Second
)

// ErrOverloaded is the cause of a job shed by a [Pool]: every worker was
// busy and either the queue was full or no worker became free within the
// queue timeout. Pool returns it inside an [*httperr.HTTPError] (503,
// [httperr.KindOverload], Retry-After), so errors.Is(err, ErrOverloaded)
// tells a shed job apart and [httperr.Write] answers 503.
var ErrOverloaded = errors.New("tasks: pool overloaded")

var (
	errQueueFull    = fmt.Errorf("%w: all workers busy and the queue is full", ErrOverloaded)
	errQueueTimeout = fmt.Errorf("%w: no worker became free within the queue timeout", ErrOverloaded)
)

// PoolOptions configure a [Pool]. The zero value is the safe setting: one
// worker per CPU, twice as many callers queued, one second of queueing at
// most.
type PoolOptions struct {
	// Size is the number of jobs that run at once. Zero or negative means
	// runtime.GOMAXPROCS(0) at construction.
	Size int
	// MaxQueue is the number of callers that may wait for a worker; one
	// more is shed at once. Zero means twice Size; negative means none may
	// wait (a job runs at once or is shed).
	MaxQueue int
	// QueueTimeout is how long a caller waits for a worker before it is
	// shed. Zero means DefaultQueueTimeout (1s); negative means no waiting.
	// The caller's context can end the wait sooner.
	QueueTimeout time.Duration
	// RetryAfter is the Retry-After sent with a shed job's 503. Zero means
	// DefaultRetryAfter (1s).
	RetryAfter time.Duration
	// Logger receives a record, with the stack, for every job that
	// panics. Sheds are not logged here: the handler's httperr.Write logs
	// the 503. If nil, slog.Default() is used. If the handler panics, that
	// record is given up on: it is lost, and the job's [*PanicError] is
	// still returned.
	Logger *slog.Logger
}

// Pool runs CPU-heavy or blocking jobs with bounded concurrency, so that a
// burst of heavy requests waits briefly for a worker and is then shed with
// 503, instead of piling up until every request is slow. Jobs run on the
// calling goroutine; a panic in a job is recovered into a [*PanicError].
// It is safe for concurrent use by multiple goroutines.
type Pool struct {
	sem          *semaphore.Weighted
	size         int
	maxQueue     int64
	queueTimeout time.Duration
	retryAfter   time.Duration
	logger       *slog.Logger

	waiting atomic.Int64
	running atomic.Int64
}

// NewPool returns a Pool configured by opts.
func NewPool(opts PoolOptions) *Pool {
	p := &Pool{
		size:         opts.Size,
		maxQueue:     int64(opts.MaxQueue),
		queueTimeout: opts.QueueTimeout,
		retryAfter:   opts.RetryAfter,
		logger:       opts.Logger,
	}
	if p.size <= 0 {
		p.size = runtime.GOMAXPROCS(0)
	}
	if p.maxQueue == 0 {
		p.maxQueue = 2 * int64(p.size)
	}
	if p.queueTimeout == 0 {
		p.queueTimeout = DefaultQueueTimeout
	}
	if p.retryAfter <= 0 {
		p.retryAfter = DefaultRetryAfter
	}
	p.sem = semaphore.NewWeighted(int64(p.size))
	return p
}

// Do runs fn on the calling goroutine once a worker is free, and returns
// its error.
//
// If no worker is free, Do waits in the queue for at most
// PoolOptions.QueueTimeout; if the queue is full or the wait times out it
// returns, without calling fn, an [*httperr.HTTPError] with status 503,
// [httperr.KindOverload] and a Retry-After header, wrapping
// [ErrOverloaded]. If ctx is done while waiting, Do returns ctx.Err()
// (which [httperr.Write] answers as a client that went away, or 503/504
// for a deadline).
//
// A panic in fn is recovered, logged with its stack, and returned as a
// [*PanicError]; the worker is released in every case. If fn calls
// [runtime.Goexit], Do does not return, since a Goexit cannot be stopped:
// the worker is released and the calling goroutine exits, as it would
// had it called fn itself.
func (p *Pool) Do(ctx context.Context, fn func(ctx context.Context) error) error {
	if err := p.acquire(ctx); err != nil {
		return err
	}
	p.running.Add(1)
	defer func() {
		p.running.Add(-1)
		p.sem.Release(1)
	}()
	err := call(ctx, fn)
	if pe, ok := err.(*PanicError); ok { // call returns it unwrapped
		p.logPanic(ctx, pe)
	}
	return err
}

func (p *Pool) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if p.sem.TryAcquire(1) {
		return nil
	}
	if p.queueTimeout < 0 || p.maxQueue < 0 {
		return p.shed(errQueueFull)
	}
	if p.waiting.Add(1) > p.maxQueue {
		p.waiting.Add(-1)
		return p.shed(errQueueFull)
	}
	defer p.waiting.Add(-1)
	qctx, cancel := context.WithTimeoutCause(ctx, p.queueTimeout, errQueueTimeout)
	defer cancel()
	if err := p.sem.Acquire(qctx, 1); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return cerr // the caller's own context ended the wait
		}
		return p.shed(errQueueTimeout)
	}
	return nil
}

func (p *Pool) shed(cause error) error {
	return httperr.Unavailable(httperr.KindOverload, p.retryAfter, cause)
}

func (p *Pool) logPanic(ctx context.Context, pe *PanicError) {
	logRecord(ctx, p.logger, slog.LevelError, "pool job panicked", []slog.Attr{
		slog.String("panic", fmt.Sprint(pe.Value)),
		slog.String("stack", string(pe.Stack)),
	})
}

// DoAll runs every fn on the pool, at most Size at once, and waits for
// them. The first error (a job's, a shed, or ctx's) cancels the context of
// the others, with that error as its cause, and DoAll returns it; a panic
// in a job is a [*PanicError] like in [Pool.Do], and a job that calls
// [runtime.Goexit] fails with [ErrGoexit], since its work never finished.
// It runs the jobs on the goroutines of an [errgroup.Group], which never
// panic here because Do recovers. It does not use the errgroup's error,
// which a Goexit would leave unset, so that a job that never finished is
// never taken for a success.
func (p *Pool) DoAll(ctx context.Context, fns ...func(ctx context.Context) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu    sync.Mutex
		first error
	)
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
			cancel(err)
		}
		mu.Unlock()
	}
	var g errgroup.Group
	g.SetLimit(p.size)
	for _, fn := range fns {
		g.Go(func() error {
			returned := false
			defer func() {
				if !returned {
					fail(ErrGoexit) // the goroutine goes on exiting
				}
			}()
			if err := p.Do(ctx, fn); err != nil {
				fail(err)
			}
			returned = true
			return nil
		})
	}
	_ = g.Wait()
	return first
}

// Stats reports how many jobs are running and how many callers are
// waiting for a worker, for metrics.
func (p *Pool) Stats() (running, waiting int) {
	return int(p.running.Load()), int(p.waiting.Load())
}

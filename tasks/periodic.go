package tasks

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Periodic describes a task that runs again and again, as [Supervisor.Every]
// schedules it.
type Periodic struct {
	// Name labels the task in logs and events.
	Name string
	// Interval is the wait between the end of one run and the start of the
	// next. Required: it must be positive.
	Interval time.Duration
	// Jitter adds a random wait in [0, Jitter) to every interval, so that
	// replicas started together do not run together. Zero means a tenth of
	// Interval; negative means none.
	Jitter time.Duration
	// MaxBackoff caps the wait after failures. After n failed runs in a
	// row the wait is Interval doubled n times, at most MaxBackoff (plus
	// jitter); one successful run resets it. Zero means 16 times Interval;
	// negative means no backoff (always Interval).
	MaxBackoff time.Duration
	// Timeout is the deadline of each run. Zero means the supervisor's
	// Options.Timeout; negative means none.
	Timeout time.Duration
	// Run is called for each run. A run that returns an error, panics or
	// passes its deadline is logged and reported like any task, and counts
	// as a failure for the backoff. Required.
	Run func(ctx context.Context) error
}

// Every starts p as a periodic task and returns at once. The first run
// starts after one interval (with jitter). Runs never overlap. The task
// stops when ctx is done or Shutdown begins; a run in progress then
// finishes (or is cancelled past Shutdown's drain deadline). Every returns
// an error, and starts nothing, if p is invalid, ctx is done, or the
// supervisor is shut down or full. The last three are refusals, reported
// to the observer as [OutcomeRefused] like those of [Supervisor.Go]; a
// refusal because the supervisor is shut down or full is an
// [*httperr.HTTPError] (503, Retry-After) that wraps [ErrClosed] or
// [ErrTooManyTasks].
func (s *Supervisor) Every(ctx context.Context, p Periodic) error {
	switch {
	case p.Interval <= 0:
		return errors.New("tasks: Periodic.Interval must be positive")
	case p.Run == nil:
		return errors.New("tasks: Periodic.Run is nil")
	}
	if p.Jitter == 0 {
		p.Jitter = p.Interval / 10
	}
	if p.MaxBackoff == 0 {
		p.MaxBackoff = maxDuration
		if p.Interval <= maxDuration/16 {
			p.MaxBackoff = 16 * p.Interval
		}
	}
	if p.Timeout == 0 {
		p.Timeout = s.timeout
	}
	if err := ctx.Err(); err != nil {
		s.refused(ctx, p.Name, err, false)
		return err
	}
	tctx, cancel := context.WithCancelCause(ctx)
	t := &task{name: p.Name, cancel: cancel}
	if err := s.register(t); err != nil {
		cancel(nil)
		s.refused(ctx, p.Name, err, false)
		return err
	}
	go func() {
		defer s.deregister(t)
		defer cancel(nil)
		s.loop(tctx, p)
	}()
	return nil
}

func (s *Supervisor) loop(ctx context.Context, p Periodic) {
	timer := time.NewTimer(p.delay(0))
	defer timer.Stop()
	failures := 0
	for {
		select {
		case <-timer.C:
		case <-ctx.Done():
			return
		case <-s.stopping:
			return
		}
		select { // both may have become ready with the timer
		case <-ctx.Done():
			return
		case <-s.stopping:
			return
		default:
		}
		runCtx, stop := ctx, context.CancelFunc(func() {})
		if p.Timeout > 0 {
			runCtx, stop = context.WithTimeoutCause(ctx, p.Timeout, ErrTimeout)
		}
		outcome, _ := s.runOnce(runCtx, p.Name, p.Run)
		stop()
		if outcome == OutcomeOK {
			failures = 0
		} else if failures < 62 {
			failures++
		}
		timer.Reset(p.delay(failures))
	}
}

// delay is the wait before the next run after the given number of
// consecutive failures.
func (p *Periodic) delay(failures int) time.Duration {
	d := p.Interval
	if limit := max(p.MaxBackoff, p.Interval); p.MaxBackoff > 0 {
		for i := 0; i < failures && d < limit; i++ {
			if d > limit/2 {
				d = limit
				break
			}
			d *= 2
		}
	}
	if p.Jitter > 0 {
		j := rand.N(p.Jitter)
		if d > maxDuration-j {
			return maxDuration
		}
		d += j
	}
	return d
}

const maxDuration = time.Duration(1<<63 - 1)

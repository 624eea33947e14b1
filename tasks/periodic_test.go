package tasks_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stormcellar/stormcellar/tasks"
)

// runTimes starts p (with Run wrapped to record when each run starts and to
// fail as fail says) and returns the gaps between the starts of the first
// n runs, measured on the fake clock.
func runGaps(t *testing.T, s *tasks.Supervisor, p tasks.Periodic, n int, fail func(run int) error) []time.Duration {
	t.Helper()
	starts := make(chan time.Time, n)
	run := 0
	p.Run = func(ctx context.Context) error {
		run++
		if run <= n {
			starts <- time.Now()
		}
		return fail(run)
	}
	begin := time.Now()
	if err := s.Every(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	gaps := make([]time.Duration, 0, n)
	prev := begin
	for range n {
		at := <-starts
		gaps = append(gaps, at.Sub(prev))
		prev = at
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	return gaps
}

// TestPeriodicJitterAndBackoff: waits are Interval plus jitter after a
// success, doubled after each failure in a row up to MaxBackoff, and back
// to Interval after a success; the jitter varies.
func TestPeriodicJitterAndBackoff(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s, logs, _ := newSupervisor(tasks.Options{})
		p := tasks.Periodic{Name: "refresh", Interval: 10 * time.Second, Jitter: time.Second, MaxBackoff: 40 * time.Second}
		// Runs 2–5 fail (run 3 by panicking), the others succeed.
		fail := func(run int) error {
			switch run {
			case 2, 4, 5:
				return errJob
			case 3:
				panic("refresh blew up")
			}
			return nil
		}
		gaps := runGaps(t, s, p, 8, fail)
		// The wait before run i+1 depends on the failures in a row after run i.
		want := []time.Duration{10, 10, 20, 40, 40, 40, 10, 10} // seconds, before jitter
		distinct := map[time.Duration]bool{}
		for i, g := range gaps {
			base := want[i] * time.Second
			if g < base || g >= base+time.Second {
				t.Errorf("wait before run %d: %v, want in [%v, %v)", i+1, g, base, base+time.Second)
			}
			distinct[g-base] = true
		}
		if len(distinct) < 2 {
			t.Errorf("jitter never varied: %v", gaps)
		}
		if recs := logs.find("task panicked"); len(recs) != 1 || !strings.Contains(recs[0].Attrs["stack"], "tasks_test.runGaps") {
			t.Fatalf("panicking run not logged with its stack:\n%s", logs)
		}
		if recs := logs.find("task failed"); len(recs) != 3 {
			t.Fatalf("want 3 failed runs logged:\n%s", logs)
		}
	})
}

// TestPeriodicDefaults: zero Jitter is a tenth of Interval, zero MaxBackoff
// is 16 intervals, negative values turn them off.
func TestPeriodicDefaults(t *testing.T) {
	t.Parallel()
	alwaysFail := func(int) error { return errJob }
	tests := []struct {
		name             string
		jitter, backoff  time.Duration
		fail             func(int) error
		wantMin, wantMax []time.Duration // per gap, inclusive min, exclusive max
	}{
		{"defaults, success", 0, 0, func(int) error { return nil },
			[]time.Duration{100, 100, 100}, []time.Duration{110, 110, 110}},
		{"defaults, failures cap at 16x", 0, 0, alwaysFail,
			[]time.Duration{100, 200, 400, 800, 1600, 1600}, []time.Duration{110, 210, 410, 810, 1610, 1610}},
		{"no jitter, no backoff", -1, -1, alwaysFail,
			[]time.Duration{100, 100, 100}, []time.Duration{101, 101, 101}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				s, _, _ := newSupervisor(tasks.Options{})
				p := tasks.Periodic{Name: "p", Interval: 100 * time.Second, Jitter: tt.jitter, MaxBackoff: tt.backoff}
				gaps := runGaps(t, s, p, len(tt.wantMin), tt.fail)
				for i, g := range gaps {
					lo, hi := tt.wantMin[i]*time.Second, tt.wantMax[i]*time.Second
					if tt.jitter < 0 {
						hi = lo + 1 // exact
					}
					if g < lo || g >= hi {
						t.Errorf("gap %d = %v, want in [%v, %v)", i, g, lo, hi)
					}
				}
			})
		})
	}
}

// TestPeriodicRunDeadline: a run that hangs is cancelled at its deadline,
// counts as a failure, and the schedule goes on.
func TestPeriodicRunDeadline(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s, _, events := newSupervisor(tasks.Options{})
		runs := make(chan time.Time, 3)
		n := 0
		err := s.Every(context.Background(), tasks.Periodic{
			Name: "sync", Interval: time.Minute, Jitter: -1, MaxBackoff: -1, Timeout: 5 * time.Second,
			Run: func(ctx context.Context) error {
				n++
				runs <- time.Now()
				if n == 1 {
					<-ctx.Done() // hangs until the deadline
					return ctx.Err()
				}
				return nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		first, second := <-runs, <-runs
		if d := second.Sub(first); d != 5*time.Second+time.Minute {
			t.Fatalf("second run %v after the first, want deadline 5s + interval 1m", d)
		}
		if err := s.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		evs := events.all()
		if len(evs) < 2 || evs[0].Outcome != tasks.OutcomeTimeout || evs[1].Outcome != tasks.OutcomeOK {
			t.Fatalf("events %+v", evs)
		}
	})
}

// TestPeriodicStops: a periodic task stops waiting at Shutdown (which
// returns at once), or when its context is done; a run in progress at
// Shutdown finishes, and no new run starts.
func TestPeriodicStops(t *testing.T) {
	t.Parallel()
	t.Run("shutdown while waiting", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			s, _, events := newSupervisor(tasks.Options{})
			if err := s.Every(context.Background(), tasks.Periodic{Name: "p", Interval: time.Hour, Run: func(context.Context) error { return nil }}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Minute)
			start := time.Now()
			if err := s.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d != 0 || len(events.all()) != 0 {
				t.Fatalf("Shutdown took %v with events %+v", d, events.all())
			}
		})
	})
	t.Run("shutdown during a run", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			s, _, events := newSupervisor(tasks.Options{})
			inRun := make(chan struct{})
			err := s.Every(context.Background(), tasks.Periodic{Name: "p", Interval: time.Second, Jitter: -1, Run: func(ctx context.Context) error {
				close(inRun) // a second run would panic here
				time.Sleep(30 * time.Second)
				return nil
			}})
			if err != nil {
				t.Fatal(err)
			}
			<-inRun
			start := time.Now()
			if err := s.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d != 30*time.Second {
				t.Fatalf("Shutdown took %v, want the 30s run to finish", d)
			}
			if evs := events.all(); len(evs) != 1 || evs[0].Outcome != tasks.OutcomeOK {
				t.Fatalf("events %+v", evs)
			}
		})
	})
	t.Run("context done", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			s, _, events := newSupervisor(tasks.Options{})
			ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
			defer cancel()
			if err := s.Every(ctx, tasks.Periodic{Name: "p", Interval: 10 * time.Second, Jitter: -1, Run: func(context.Context) error { return nil }}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Hour)
			if n := len(events.all()); n != 2 {
				t.Fatalf("%d runs before the context ended at 25s, want 2", n)
			}
			if err := s.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	})
}

// TestEveryRejectsBadConfig names the problem instead of starting a task
// that would spin or crash.
func TestEveryRejectsBadConfig(t *testing.T) {
	t.Parallel()
	run := func(context.Context) error { return nil }
	tests := []struct {
		name string
		p    tasks.Periodic
		want string
		is   error
	}{
		{"zero interval", tasks.Periodic{Run: run}, "Interval must be positive", nil},
		{"negative interval", tasks.Periodic{Interval: -time.Second, Run: run}, "Interval must be positive", nil},
		{"nil Run", tasks.Periodic{Interval: time.Second}, "Run is nil", nil},
		{"after shutdown", tasks.Periodic{Interval: time.Second, Run: run}, "", tasks.ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _, _ := newSupervisor(tasks.Options{})
			if tt.is != nil {
				_ = s.Shutdown(context.Background())
			}
			err := s.Every(context.Background(), tt.p)
			if err == nil || (tt.want != "" && !strings.Contains(err.Error(), tt.want)) || (tt.is != nil && !errors.Is(err, tt.is)) {
				t.Fatalf("Every: %v, want %q %v", err, tt.want, tt.is)
			}
			if err := s.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestEveryRefusalsAreObserved: a periodic task that cannot start is
// reported to the observer as refused, like any other task. The error is
// returned to the caller, so it is not logged here. An invalid Periodic is
// a configuration error, not a refused task.
func TestEveryRefusalsAreObserved(t *testing.T) {
	t.Parallel()
	run := func(context.Context) error { return nil }
	tests := []struct {
		name    string
		setup   func(s *tasks.Supervisor, release <-chan struct{})
		ctx     context.Context
		p       tasks.Periodic
		want    error
		refused bool
	}{
		{"after shutdown", func(s *tasks.Supervisor, _ <-chan struct{}) {
			_ = s.Shutdown(context.Background())
		}, context.Background(), tasks.Periodic{Name: "refresh", Interval: time.Second, Run: run}, tasks.ErrClosed, true},
		{"MaxTasks running", func(s *tasks.Supervisor, release <-chan struct{}) {
			_ = s.Go(context.Background(), "busy", func(context.Context) error { <-release; return nil })
		}, context.Background(), tasks.Periodic{Name: "refresh", Interval: time.Second, Run: run}, tasks.ErrTooManyTasks, true},
		{"context already done", func(*tasks.Supervisor, <-chan struct{}) {},
			canceledContext(), tasks.Periodic{Name: "refresh", Interval: time.Second, Run: run}, context.Canceled, true},
		{"invalid Periodic", func(*tasks.Supervisor, <-chan struct{}) {},
			context.Background(), tasks.Periodic{Name: "refresh", Run: run}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, logs, events := newSupervisor(tasks.Options{MaxTasks: 1})
			release := make(chan struct{})
			tt.setup(s, release)
			err := s.Every(tt.ctx, tt.p)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("Every: %v, want %v", err, tt.want)
			}
			close(release)
			if err := s.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			var mine []tasks.Event
			for _, ev := range events.all() {
				if ev.Task == "refresh" {
					mine = append(mine, ev)
				}
			}
			if !tt.refused {
				if len(mine) != 0 {
					t.Fatalf("events %+v for an invalid Periodic, want none", mine)
				}
				return
			}
			if len(mine) != 1 || mine[0].Outcome != tasks.OutcomeRefused || !errors.Is(mine[0].Err, tt.want) || mine[0].Duration != 0 {
				t.Fatalf("events %+v, want one refusal with %v", mine, tt.want)
			}
			if recs := logs.find("task refused"); len(recs) != 0 {
				t.Fatalf("a returned refusal was logged:\n%s", logs)
			}
		})
	}
}

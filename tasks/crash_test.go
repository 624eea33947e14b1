package tasks_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"

	"github.com/stormcellar/stormcellar/tasks"
)

// crashEnv names the scenario a re-executed test binary runs.
const crashEnv = "STORMCELLAR_TASKS_CRASH_SCENARIO"

// crashScenarios are run in a child process, because a panic on a
// goroutine that nothing recovers ends the whole process, test binary
// included. Each child logs to stderr and prints "survived" if it lives.
var crashScenarios = map[string]func(){
	// Controls: what an unsupervised panic does.
	"bare goroutine": func() {
		done := make(chan struct{})
		go func() {
			defer close(done)
			panic("boom in a background goroutine")
		}()
		<-done
	},
	"x/sync singleflight DoChan": func() {
		var g singleflight.Group
		ch := g.DoChan("key", func() (any, error) { panic("boom in a shared call") })
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
		}
	},
	"x/sync errgroup": func() {
		var g errgroup.Group
		g.Go(func() error { panic("boom in an errgroup goroutine") })
		_ = g.Wait()
	},
	// The same panics under this package.
	"tasks.Supervisor": func() {
		s := tasks.New(tasks.Options{Logger: slog.New(slog.NewJSONHandler(os.Stderr, nil))})
		s.Detach(context.Background(), "mailer", func(context.Context) error {
			panic("boom in a background goroutine")
		})
		if err := s.Shutdown(context.Background()); err != nil {
			fmt.Println("shutdown:", err)
		}
	},
	"tasks.Singleflight": func() {
		g := tasks.Singleflight[string, any]{Logger: slog.New(slog.NewJSONHandler(os.Stderr, nil))}
		_, _, err := g.Do(context.Background(), "key", func(context.Context) (any, error) {
			panic("boom in a shared call")
		})
		var pe *tasks.PanicError
		if !errors.As(err, &pe) {
			fmt.Println("unexpected error:", err)
		}
	},
	"tasks.Supervisor typed nil error": func() {
		s := tasks.New(tasks.Options{Logger: slog.New(slog.NewJSONHandler(os.Stderr, nil))})
		s.Detach(context.Background(), "mailer", func(context.Context) error {
			var e *nilDerefError // a typed nil: a non-nil error whose Error panics
			return e
		})
		if err := s.Shutdown(context.Background()); err != nil {
			fmt.Println("shutdown:", err)
		}
	},
	"tasks.Pool.DoAll": func() {
		p := tasks.NewPool(tasks.PoolOptions{Logger: slog.New(slog.NewJSONHandler(os.Stderr, nil))})
		err := p.DoAll(context.Background(), func(context.Context) error {
			panic("boom in an errgroup goroutine")
		})
		var pe *tasks.PanicError
		if !errors.As(err, &pe) {
			fmt.Println("unexpected error:", err)
		}
	},
}

// nilDerefError is an error type whose Error method reads its receiver, so
// a nil *nilDerefError returned as an error panics when it is printed.
type nilDerefError struct{ msg string }

func (e *nilDerefError) Error() string { return "boom: " + e.msg }

// TestPanicsDoNotKillTheProcess runs each scenario in a fresh copy of the
// test binary (as x/sync's singleflight tests do) and checks that the
// controls crash it while this package's forms survive, with the panic
// logged once with its stack.
func TestPanicsDoNotKillTheProcess(t *testing.T) {
	if name := os.Getenv(crashEnv); name != "" {
		crashScenarios[name]()
		fmt.Println("survived")
		return
	}
	t.Parallel()
	tests := []struct {
		scenario string
		survives bool
		logMsg   string // the record the survivor logs
	}{
		{"bare goroutine", false, ""},
		{"x/sync singleflight DoChan", false, ""},
		{"x/sync errgroup", false, ""},
		{"tasks.Supervisor", true, "task panicked"},
		{"tasks.Singleflight", true, "singleflight call panicked"},
		{"tasks.Supervisor typed nil error", true, "task panicked"},
		{"tasks.Pool.DoAll", true, "pool job panicked"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			t.Parallel()
			stdout, stderr, err := runScenario(t, "TestPanicsDoNotKillTheProcess", tt.scenario)
			out := stdout.String() + stderr.String()
			if !tt.survives {
				// (It may print "survived" first: deferred calls run before
				// the runtime ends the process.)
				if err == nil || !strings.Contains(out, "panic: boom") {
					t.Fatalf("control did not crash the process (err %v):\n%s", err, out)
				}
				return
			}
			if err != nil || !strings.Contains(stdout.String(), "survived") {
				t.Fatalf("process died (err %v):\n%s", err, out)
			}
			if strings.Count(stderr.String(), `"msg":"`+tt.logMsg+`"`) != 1 {
				t.Fatalf("want one %q record:\n%s", tt.logMsg, stderr.String())
			}
			if !strings.Contains(stderr.String(), `"stack":"goroutine `) || !strings.Contains(stderr.String(), "crash_test.go") {
				t.Fatalf("the record lacks the stack of the panic:\n%s", stderr.String())
			}
		})
	}
}

// runScenario runs the named test of a fresh copy of the test binary with
// crashEnv set to scenario, and returns what the child wrote and how it
// exited. A child still running after a minute fails the test.
func runScenario(t *testing.T, test, scenario string) (stdout, stderr *bytes.Buffer, err error) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Skipf("cannot find the test binary: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+scenario)
	stdout, stderr = new(bytes.Buffer), new(bytes.Buffer)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("child hung:\n%s%s", stdout, stderr)
	}
	return stdout, stderr, err
}

// loggerScenarios pair a panic in the work with a slog handler that
// panics too. The package recovers the first panic on a goroutine of its
// own and then logs it; a record whose handler panics there is dropped,
// or it would end the process. Each child prints what the caller got,
// then "survived".
var loggerScenarios = map[string]func(){
	"tasks.Singleflight": func() {
		g := tasks.Singleflight[string, any]{Logger: slog.New(panickingHandler{})}
		_, _, err := g.Do(context.Background(), "key", func(context.Context) (any, error) {
			panic("boom in a shared call")
		})
		printPanicError(err, "boom in a shared call")
	},
	"tasks.Pool.DoAll": func() {
		p := tasks.NewPool(tasks.PoolOptions{Logger: slog.New(panickingHandler{})})
		err := p.DoAll(context.Background(),
			func(context.Context) error { panic("boom in an errgroup goroutine") },
			func(context.Context) error { return nil },
		)
		printPanicError(err, "boom in an errgroup goroutine")
	},
	"tasks.Supervisor": func() {
		var observed []tasks.Outcome // the observer runs on the task's goroutine, once
		done := make(chan struct{})
		s := tasks.New(tasks.Options{
			Logger: slog.New(panickingHandler{}),
			Observer: func(ev tasks.Event) {
				observed = append(observed, ev.Outcome)
				close(done)
			},
		})
		s.Detach(context.Background(), "mailer", func(context.Context) error {
			panic("boom in a background goroutine")
		})
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			fmt.Println("the observer was never called")
		}
		if err := s.Shutdown(context.Background()); err != nil {
			fmt.Println("shutdown:", err)
		}
		fmt.Println("observed:", observed)
	},
}

func printPanicError(err error, want string) {
	var pe *tasks.PanicError
	fmt.Println("caller got the *PanicError:", errors.As(err, &pe) && pe.Value == want)
}

// TestPanickingLoggerDoesNotKillTheProcess: a panicking function and a
// logger that panics too, on the goroutines the package owns. The process
// survives and the caller still gets the *PanicError (the observer the
// event), though the record is lost.
func TestPanickingLoggerDoesNotKillTheProcess(t *testing.T) {
	if name := os.Getenv(crashEnv); name != "" {
		loggerScenarios[name]()
		fmt.Println("survived")
		return
	}
	t.Parallel()
	tests := []struct {
		scenario string
		want     string // what the child prints before "survived"
	}{
		{"tasks.Singleflight", "caller got the *PanicError: true"},
		{"tasks.Pool.DoAll", "caller got the *PanicError: true"},
		{"tasks.Supervisor", "observed: [panic]"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			t.Parallel()
			stdout, stderr, err := runScenario(t, "TestPanickingLoggerDoesNotKillTheProcess", tt.scenario)
			if err != nil || !strings.Contains(stdout.String(), tt.want+"\nsurvived\n") {
				t.Fatalf("process died or the caller got the wrong result (err %v), want %q:\n%s%s",
					err, tt.want, stdout, stderr)
			}
		})
	}
}

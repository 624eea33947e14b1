package timeouts_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stormcellar/stormcellar/httperr"
	"github.com/stormcellar/stormcellar/middleware"
	"github.com/stormcellar/stormcellar/timeouts"
)

// stampRecorder is an httptest.ResponseRecorder that also notes, in the
// bubble's fake time, when the status was sent.
type stampRecorder struct {
	*httptest.ResponseRecorder
	start time.Time
	at    time.Duration
}

func (s *stampRecorder) WriteHeader(code int) {
	if s.at == 0 {
		s.at = time.Since(s.start)
	}
	s.ResponseRecorder.WriteHeader(code)
}

func (s *stampRecorder) Write(p []byte) (int, error) {
	if s.at == 0 {
		s.at = time.Since(s.start)
	}
	return s.ResponseRecorder.Write(p)
}

// lateWrite records what a handler's writes returned after its deadline.
type lateWrite struct {
	mu  sync.Mutex
	err error
}

func (l *lateWrite) set(err error) { l.mu.Lock(); l.err = err; l.mu.Unlock() }
func (l *lateWrite) get() error    { l.mu.Lock(); defer l.mu.Unlock(); return l.err }

func TestDeadline(t *testing.T) {
	t.Parallel()
	type result struct {
		rec      *stampRecorder
		late     *lateWrite
		panicked any
	}
	cases := []struct {
		name    string
		opts    timeouts.DeadlineOptions
		header  http.Header
		handler func(late *lateWrite) http.Handler
		check   func(t *testing.T, res result)
	}{
		{
			name: "fast handler is untouched",
			opts: timeouts.DeadlineOptions{Timeout: time.Second},
			handler: func(*lateWrite) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					time.Sleep(10 * time.Millisecond)
					w.Header().Set("X-Handler", "1")
					_, _ = w.Write([]byte("ok"))
				})
			},
			check: func(t *testing.T, res result) {
				if res.rec.Code != 200 || res.rec.Body.String() != "ok" || res.rec.Header().Get("X-Handler") != "1" {
					t.Fatalf("got %d %q %v", res.rec.Code, res.rec.Body, res.rec.Header())
				}
			},
		},
		{
			name: "handler ignoring its context gets 503 at the deadline",
			opts: timeouts.DeadlineOptions{Timeout: time.Second},
			handler: func(late *lateWrite) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("X-Handler", "secret-detail")
					time.Sleep(5 * time.Second)
					_, err := w.Write([]byte("too late"))
					late.set(err)
				})
			},
			check: func(t *testing.T, res result) {
				if res.rec.Code != 503 || res.rec.at != time.Second {
					t.Fatalf("got %d at %v, want 503 at 1s", res.rec.Code, res.rec.at)
				}
				if strings.Contains(res.rec.Body.String(), "too late") || res.rec.Header().Get("X-Handler") != "" {
					t.Fatalf("handler output leaked into the 503: %q %v", res.rec.Body, res.rec.Header())
				}
				if res.rec.Header().Get("Connection") != "close" || res.rec.Header().Get("X-Outer") != "kept" {
					t.Fatalf("503 headers: %v", res.rec.Header())
				}
				err := res.late.get()
				if !errors.Is(err, timeouts.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("late write returned %v", err)
				}
			},
		},
		{
			name: "handler honouring its context through httperr gets one 503",
			opts: timeouts.DeadlineOptions{Timeout: time.Second},
			handler: func(*lateWrite) http.Handler {
				return httperr.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
					<-r.Context().Done()
					return r.Context().Err()
				})
			},
			check: func(t *testing.T, res result) {
				if res.rec.Code != 503 || res.rec.at != time.Second || res.panicked != nil {
					t.Fatalf("got %d at %v, panic %v", res.rec.Code, res.rec.at, res.panicked)
				}
			},
		},
		{
			name: "handler that began its response and stalls is aborted",
			opts: timeouts.DeadlineOptions{Timeout: time.Second},
			handler: func(late *lateWrite) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					_, _ = w.Write([]byte("partial"))
					w.(http.Flusher).Flush()
					time.Sleep(3 * time.Second)
					_, err := w.Write([]byte("more"))
					late.set(err)
				})
			},
			check: func(t *testing.T, res result) {
				if res.rec.Code != 200 || res.rec.Body.String() != "partial" {
					t.Fatalf("got %d %q", res.rec.Code, res.rec.Body)
				}
				if res.panicked != http.ErrAbortHandler {
					t.Fatalf("panic = %v, want http.ErrAbortHandler", res.panicked)
				}
				if !errors.Is(res.late.get(), timeouts.ErrTimeout) {
					t.Fatalf("late write returned %v", res.late.get())
				}
			},
		},
		{
			name: "stream route outlives the timeout once started",
			opts: timeouts.DeadlineOptions{Timeout: time.Second, Stream: true},
			handler: func(late *lateWrite) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					for i := range 10 {
						if _, err := w.Write([]byte{'0' + byte(i)}); err != nil {
							late.set(err)
							return
						}
						w.(http.Flusher).Flush()
						time.Sleep(500 * time.Millisecond)
					}
					late.set(r.Context().Err())
				})
			},
			check: func(t *testing.T, res result) {
				if res.rec.Code != 200 || res.rec.Body.String() != "0123456789" || res.late.get() != nil {
					t.Fatalf("got %d %q, err %v", res.rec.Code, res.rec.Body, res.late.get())
				}
			},
		},
		{
			name: "stream route that never starts gets 503",
			opts: timeouts.DeadlineOptions{Timeout: time.Second, Stream: true},
			handler: func(late *lateWrite) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					<-r.Context().Done()
					_, err := w.Write([]byte("x"))
					late.set(err)
				})
			},
			check: func(t *testing.T, res result) {
				if res.rec.Code != 503 || res.rec.at != time.Second || !errors.Is(res.late.get(), timeouts.ErrTimeout) {
					t.Fatalf("got %d at %v, late %v", res.rec.Code, res.rec.at, res.late.get())
				}
			},
		},
		{
			// Upgrade headers are the client's to send: on a route that
			// does not hijack they must not lift the deadline.
			name:   "upgrade headers without a hijack keep the deadline",
			opts:   timeouts.DeadlineOptions{Timeout: time.Second},
			header: http.Header{"Connection": {"keep-alive, Upgrade"}, "Upgrade": {"WebSocket"}},
			handler: func(late *lateWrite) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if _, ok := r.Context().Deadline(); !ok {
						late.set(errors.New("no deadline on the context"))
						return
					}
					time.Sleep(2 * time.Second)
					_, err := w.Write([]byte("late"))
					late.set(err)
				})
			},
			check: func(t *testing.T, res result) {
				if res.rec.Code != 503 || res.rec.at != time.Second || !errors.Is(res.late.get(), timeouts.ErrTimeout) {
					t.Fatalf("got %d at %v, late %v", res.rec.Code, res.rec.at, res.late.get())
				}
			},
		},
		{
			name: "headers set without a write go out with the implicit 200",
			opts: timeouts.DeadlineOptions{Timeout: time.Second},
			handler: func(*lateWrite) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("X-Handler", "1")
					w.Header().Del("X-Outer")
				})
			},
			check: func(t *testing.T, res result) {
				if res.rec.Header().Get("X-Handler") != "1" || res.rec.Header().Get("X-Outer") != "" {
					t.Fatalf("headers %v", res.rec.Header())
				}
			},
		},
		{
			name: "explicit status and context deadline",
			opts: timeouts.DeadlineOptions{Timeout: 2 * time.Second},
			handler: func(late *lateWrite) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					dl, ok := r.Context().Deadline()
					if !ok || time.Until(dl) != 2*time.Second {
						late.set(errors.New("wrong deadline"))
					}
					w.WriteHeader(http.StatusCreated)
					_, _ = w.(interface{ WriteString(string) (int, error) }).WriteString("made")
				})
			},
			check: func(t *testing.T, res result) {
				if res.rec.Code != 201 || res.rec.Body.String() != "made" || res.late.get() != nil {
					t.Fatalf("got %d %q %v", res.rec.Code, res.rec.Body, res.late.get())
				}
			},
		},
	}
	nested := func(outer, inner time.Duration) func(late *lateWrite) http.Handler {
		return func(late *lateWrite) http.Handler {
			return timeouts.Deadline(timeouts.DeadlineOptions{Timeout: outer})(
				timeouts.Deadline(timeouts.DeadlineOptions{Timeout: inner})(
					http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						time.Sleep(10 * time.Second) // ignores its context
						_, err := w.Write([]byte("too late"))
						late.set(err)
					})))
		}
	}
	nestedCheck := func(at time.Duration) func(t *testing.T, res result) {
		return func(t *testing.T, res result) {
			if res.rec.Code != 503 || res.rec.at != at || res.panicked != nil || !errors.Is(res.late.get(), timeouts.ErrTimeout) {
				t.Fatalf("got %d at %v, panic %v, late %v; want 503 at %v", res.rec.Code, res.rec.at, res.panicked, res.late.get(), at)
			}
		}
	}
	cases = append(cases,
		struct {
			name    string
			opts    timeouts.DeadlineOptions
			header  http.Header
			handler func(late *lateWrite) http.Handler
			check   func(t *testing.T, res result)
		}{name: "nested: the outer deadline is earlier", opts: timeouts.DeadlineOptions{Timeout: time.Hour}, handler: nested(time.Second, 5*time.Second), check: nestedCheck(time.Second)},
		struct {
			name    string
			opts    timeouts.DeadlineOptions
			header  http.Header
			handler func(late *lateWrite) http.Handler
			check   func(t *testing.T, res result)
		}{name: "nested: the inner deadline is earlier", opts: timeouts.DeadlineOptions{Timeout: time.Hour}, handler: nested(5*time.Second, time.Second), check: nestedCheck(time.Second)},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				late := new(lateWrite)
				h := httperr.Install(httperr.Options{Logger: quietLogger})(timeouts.Deadline(tc.opts)(tc.handler(late)))
				rec := &stampRecorder{ResponseRecorder: httptest.NewRecorder(), start: time.Now()}
				rec.Header().Set("X-Outer", "kept")
				req := httptest.NewRequest(http.MethodGet, "/slow", nil)
				for k, v := range tc.header {
					req.Header[k] = v
				}
				var res result
				func() {
					defer func() { res.panicked = recover() }()
					h.ServeHTTP(rec, req)
				}()
				res.rec, res.late = rec, late
				tc.check(t, res)
			})
		})
	}
}

// A late Write, WriteHeader, Flush and Hijack after the 503 all fail
// without touching the connection, while the timer goroutine may be
// writing: run under -race.
func TestDeadlineLateCallsRaceFree(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		errs := make(chan error, 4)
		h := httperr.Install(httperr.Options{Logger: quietLogger})(timeouts.Deadline(timeouts.DeadlineOptions{Timeout: 100 * time.Millisecond})(
			http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for range 20 { // keep touching the writer across the deadline
					w.Header().Set("X-Loop", "1")
					time.Sleep(10 * time.Millisecond)
				}
				_, err := w.Write([]byte("late"))
				errs <- err
				errs <- http.NewResponseController(w).Flush()
				_, _, err = http.NewResponseController(w).Hijack()
				errs <- err
				w.WriteHeader(http.StatusOK)
				errs <- nil
			})))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		for range 3 {
			if err := <-errs; !errors.Is(err, timeouts.ErrTimeout) {
				t.Fatalf("late call returned %v", err)
			}
		}
		if rec.Code != 503 || rec.Header().Get("X-Loop") != "" {
			t.Fatalf("got %d %v", rec.Code, rec.Header())
		}
	})
}

// The handler's context behaves as context.WithDeadline's would: derived
// contexts, Cause, AfterFunc and the parent's cancellation.
func TestDeadlineContext(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		cancelAt time.Duration // when the client goes away, if not 0
		check    func(t *testing.T, ctx context.Context) error
	}{
		{"derived context ends with DeadlineExceeded", 0, func(t *testing.T, ctx context.Context) error {
			child, cancel := context.WithTimeout(ctx, time.Hour)
			defer cancel()
			if dl, _ := child.Deadline(); time.Until(dl) != time.Second {
				return errors.New("child deadline not inherited")
			}
			<-child.Done()
			if child.Err() != context.DeadlineExceeded || context.Cause(child) != context.DeadlineExceeded {
				return errors.New("child: " + child.Err().Error())
			}
			return nil
		}},
		{"Cause and Err at the deadline", 0, func(t *testing.T, ctx context.Context) error {
			if ctx.Err() != nil {
				return errors.New("done early")
			}
			<-ctx.Done()
			if ctx.Err() != context.DeadlineExceeded || context.Cause(ctx) != context.DeadlineExceeded {
				return errors.New("got " + ctx.Err().Error())
			}
			return nil
		}},
		{"Cause and Err stay the deadline's when the client goes away after it", 1500 * time.Millisecond, func(t *testing.T, ctx context.Context) error {
			<-ctx.Done()
			time.Sleep(time.Second) // past the client's going away (the 503 said Connection: close)
			if ctx.Err() != context.DeadlineExceeded || context.Cause(ctx) != context.DeadlineExceeded {
				return fmt.Errorf("Err %v, Cause %v", ctx.Err(), context.Cause(ctx))
			}
			return nil
		}},
		{"AfterFunc runs at the deadline and stop works", 0, func(t *testing.T, ctx context.Context) error {
			ran := make(chan struct{})
			context.AfterFunc(ctx, func() { close(ran) })
			stop := context.AfterFunc(ctx, func() { panic("stopped func ran") })
			if !stop() {
				return errors.New("stop failed")
			}
			<-ran
			return nil
		}},
		{"client going away cancels", 300 * time.Millisecond, func(t *testing.T, ctx context.Context) error {
			child, cancel := context.WithCancel(ctx)
			defer cancel()
			<-child.Done()
			if time.Since(time.Unix(946684800, 0)) >= time.Second || ctx.Err() != context.Canceled {
				return errors.New("not cancelled by the parent")
			}
			return nil
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				errc := make(chan error, 1)
				h := httperr.Install(httperr.Options{Logger: quietLogger})(timeouts.Deadline(timeouts.DeadlineOptions{Timeout: time.Second})(
					http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { errc <- tc.check(t, r.Context()) })))
				parent, cancel := context.WithCancel(context.Background())
				defer cancel()
				if tc.cancelAt > 0 {
					time.AfterFunc(tc.cancelAt, cancel)
				}
				req := httptest.NewRequestWithContext(parent, http.MethodGet, "/", nil)
				h.ServeHTTP(httptest.NewRecorder(), req)
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
				synctest.Wait()
			})
		})
	}
}

// A deadline of the request's context that passed before Deadline ran
// (time spent in outer middleware under an outer context.WithTimeout) is
// answered at once with the 503, rather than left to nobody while the
// handler's writes hit a write deadline in the past.
func TestDeadlineParentDeadlineAlreadyPast(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		late := new(lateWrite)
		h := httperr.Install(httperr.Options{Logger: quietLogger})(timeouts.Deadline(timeouts.DeadlineOptions{Timeout: time.Hour})(
			http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				time.Sleep(time.Second) // ignores its context
				_, err := w.Write([]byte("late"))
				late.set(err)
			})))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		time.Sleep(2 * time.Second) // spent above Deadline
		rec := &stampRecorder{ResponseRecorder: httptest.NewRecorder(), start: time.Now()}
		h.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, "/slow", nil))
		if rec.Code != 503 || rec.at != 0 || !errors.Is(late.get(), timeouts.ErrTimeout) {
			t.Fatalf("got %d at %v, late %v; want 503 at once", rec.Code, rec.at, late.get())
		}
	})
}

// TestDeadlineTimersOnLoopback runs fast and stuck handlers side by side
// through one Deadline on a real server and the real clock, with the
// route's own deadline (timed by the Deadline's queue) and under an
// earlier deadline outside (a pooled timer each): every stuck request
// gets its 503, not before its deadline, and every fast one its own 200,
// whatever timer a request before it left behind.
func TestDeadlineTimersOnLoopback(t *testing.T) {
	t.Parallel()
	const timeout = 200 * time.Millisecond
	for _, tc := range []struct {
		name  string
		outer time.Duration // a context deadline outside, if not 0
	}{
		{"queue", 0},
		{"pooled timers", timeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			release := make(chan struct{})
			app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				id := r.URL.Query().Get("id")
				if r.URL.Query().Has("stuck") {
					<-release // ignores its context
				}
				w.Header().Set("X-Id", id)
				_, _ = w.Write([]byte(id))
			})
			var h http.Handler
			if tc.outer > 0 {
				inner := timeouts.Deadline(timeouts.DeadlineOptions{Timeout: time.Hour})(app)
				h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					ctx, cancel := context.WithTimeout(r.Context(), tc.outer)
					defer cancel()
					inner.ServeHTTP(w, r.WithContext(ctx))
				})
			} else {
				h = timeouts.Deadline(timeouts.DeadlineOptions{Timeout: timeout})(app)
			}
			srv := httptest.NewServer(h)
			defer srv.Close()
			defer close(release)
			client := srv.Client()
			client.Timeout = 10 * time.Second

			const n = 120
			type result struct {
				status  int
				id      string
				body    string
				elapsed time.Duration
				err     error
			}
			results := make([]result, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					url := srv.URL + "/?id=" + strconv.Itoa(i)
					if i%3 == 0 {
						url += "&stuck"
					}
					start := time.Now()
					resp, err := client.Get(url)
					if err != nil {
						results[i].err = err
						return
					}
					defer resp.Body.Close()
					b, err := io.ReadAll(resp.Body)
					results[i] = result{resp.StatusCode, resp.Header.Get("X-Id"), string(b), time.Since(start), err}
				}()
				if i%10 == 9 {
					time.Sleep(20 * time.Millisecond) // spread the requests over several deadlines
				}
			}
			wg.Wait()
			for i, res := range results {
				want := strconv.Itoa(i)
				switch {
				case res.err != nil:
					t.Errorf("request %d: %v", i, res.err)
				case i%3 == 0 && (res.status != http.StatusServiceUnavailable || res.id != ""):
					t.Errorf("stuck request %d: status %d, X-Id %q; want 503 with no X-Id", i, res.status, res.id)
				case i%3 == 0 && (res.elapsed < timeout || res.elapsed > 5*time.Second):
					t.Errorf("stuck request %d answered after %v; want its deadline, %v", i, res.elapsed, timeout)
				case i%3 != 0 && (res.status != http.StatusOK || res.id != want || res.body != want):
					t.Errorf("fast request %d: status %d, X-Id %q, body %q; want 200 and %q", i, res.status, res.id, res.body, want)
				}
			}
		})
	}
}

// deadlineRecorder records the write deadlines set on it, in the bubble's
// time since start.
type deadlineRecorder struct {
	*httptest.ResponseRecorder
	start time.Time
	mu    sync.Mutex
	set   []time.Duration // zero time recorded as -1
}

func (d *deadlineRecorder) SetWriteDeadline(t time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t.IsZero() {
		d.set = append(d.set, -1)
	} else {
		d.set = append(d.set, t.Sub(d.start))
	}
	return nil
}

// TestDeadlineWriteDeadlines checks the connection write deadlines a
// Deadline sets: the route deadline when the response is committed (not
// before), and at least WriteTimeout for what net/http flushes after the
// handler returns, also when a Stream route ran past its deadline; a
// deadline the handler sets itself before writing is not replaced.
func TestDeadlineWriteDeadlines(t *testing.T) {
	t.Parallel()
	opts := timeouts.DeadlineOptions{Timeout: 5 * time.Second, WriteTimeout: 2 * time.Second}
	for _, tc := range []struct {
		name    string
		stream  bool
		outer   time.Duration // a write deadline set before Deadline, through the request state
		handler http.HandlerFunc
		want    []time.Duration
	}{
		{"earlier deadline outside", false, 3 * time.Second, func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(time.Second)
			_, _ = w.Write([]byte("ok"))
		}, []time.Duration{3 * time.Second}},
		{"later deadline outside", false, 8 * time.Second, func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(time.Second)
			_, _ = w.Write([]byte("ok"))
		}, []time.Duration{8 * time.Second, 5 * time.Second}},
		{"stream past the deadline", true, 0, func(w http.ResponseWriter, r *http.Request) {
			for range 4 {
				_, _ = w.Write([]byte("tick"))
				time.Sleep(2 * time.Second)
			}
		}, []time.Duration{2 * time.Second, 4 * time.Second, 6 * time.Second, 8 * time.Second, 10 * time.Second}},
		{"writes", false, 0, func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(time.Second)
			_, _ = w.Write([]byte("ok"))
		}, []time.Duration{5 * time.Second}}, // 4 s left at the end: enough
		{"writes late", false, 0, func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(4 * time.Second)
			_, _ = w.Write([]byte("ok"))
		}, []time.Duration{5 * time.Second, 6 * time.Second}},
		{"writes nothing", false, 0, func(w http.ResponseWriter, r *http.Request) {}, []time.Duration{2 * time.Second}},
		{"own deadline", false, 0, func(w http.ResponseWriter, r *http.Request) {
			_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
			_, _ = w.Write([]byte("ok"))
		}, []time.Duration{-1, 2 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &deadlineRecorder{ResponseRecorder: httptest.NewRecorder(), start: time.Now()}
				o := opts
				o.Stream = tc.stream
				var h http.Handler = timeouts.Deadline(o)(tc.handler)
				if tc.outer > 0 {
					inner := h
					h = httperr.Install(httperr.Options{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(tc.outer))
						inner.ServeHTTP(w, r)
					}))
				}
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
				if rec.Code != http.StatusOK {
					t.Fatalf("status %d", rec.Code)
				}
				if !slices.Equal(rec.set, tc.want) {
					t.Errorf("write deadlines set %v, want %v", rec.set, tc.want)
				}
			})
		})
	}
}

// TestDeadlinePanicRefreshesWriteDeadline checks that a handler that
// panics before writing leaves a write deadline for the recoverer's error
// page (it set none itself).
func TestDeadlinePanicRefreshesWriteDeadline(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		rec := &deadlineRecorder{ResponseRecorder: httptest.NewRecorder(), start: time.Now()}
		h := timeouts.Deadline(timeouts.DeadlineOptions{Timeout: 5 * time.Second, WriteTimeout: 2 * time.Second})(
			http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
		func() {
			defer func() {
				if v := recover(); v != "boom" {
					t.Errorf("recovered %v, want the handler's panic", v)
				}
			}()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		}()
		if want := []time.Duration{2 * time.Second}; !slices.Equal(rec.set, want) {
			t.Errorf("write deadlines set %v, want %v", rec.set, want)
		}
	})
}

// TestDeadlineRouteSecureHeaders puts a route's own SecureHeaders inside
// Deadline, below the global one, and lets the handler hang: the 503
// carries the headers set before Deadline (the global policy), and
// nothing the route set on its private headers races with the timer that
// writes it (run with -race).
func TestDeadlineRouteSecureHeaders(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		global, err := middleware.NewSecureHeaders(middleware.SecureHeadersOptions{})
		if err != nil {
			t.Fatal(err)
		}
		route, err := middleware.NewSecureHeaders(middleware.SecureHeadersOptions{
			ContentSecurityPolicy: "default-src 'none'; script-src 'nonce-" + middleware.NoncePlaceholder + "'"})
		if err != nil {
			t.Fatal(err)
		}
		var nonce string
		app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			nonce = middleware.CSPNonce(r.Context())
			time.Sleep(time.Minute) // hangs past the deadline
			_, _ = w.Write([]byte("late"))
		})
		h := httperr.Install(httperr.Options{})(global.Handler(
			timeouts.Deadline(timeouts.DeadlineOptions{Timeout: time.Second})(route.Handler(app))))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		if rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503", rec.Code)
		}
		csp := rec.Header().Get("Content-Security-Policy")
		want := strings.ReplaceAll(middleware.DefaultCSP, middleware.NoncePlaceholder, nonce) + "; frame-ancestors 'none'"
		if csp != want {
			t.Errorf("503 policy\n got %q\nwant the global one %q", csp, want)
		}
	})
}

// varyWriter adds a Vary value when the status is written, as a
// compression middleware does.
type varyWriter struct{ http.ResponseWriter }

func (w varyWriter) WriteHeader(code int) {
	w.Header().Add("Vary", "Accept-Encoding")
	w.ResponseWriter.WriteHeader(code)
}

func (w varyWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// TestDeadlineHeaderAppendRace: a header value set outside with spare
// capacity, which the handler keeps appending to in its copy while the
// timer writes the 503 through an outer writer that appends to it too.
// The 503 carries the outer value, httperr's and the writer's, never the
// handler's,
// and (under -race) the two appends never touch the same array.
func TestDeadlineHeaderAppendRace(t *testing.T) {
	t.Parallel()
	outer := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			vary := make([]string, 1, 8)
			vary[0] = "Origin"
			w.Header()["Vary"] = vary
			next.ServeHTTP(varyWriter{w}, r)
		})
	}
	h := httperr.Install(httperr.Options{Logger: quietLogger})(outer(timeouts.Deadline(timeouts.DeadlineOptions{Timeout: 20 * time.Millisecond})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hd := w.Header()
			stop := time.Now().Add(2 * time.Second)
			for i := 0; i < 1_000_000 && r.Context().Err() == nil && time.Now().Before(stop); i++ {
				hd["Vary"] = hd["Vary"][:1] // the same array each time: the Add writes its second slot
				hd.Add("Vary", "X-Handler")
			}
		}))))
	for range 20 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		res := rec.Result()
		if got := res.Header["Vary"]; res.StatusCode != http.StatusServiceUnavailable || !slices.Equal(got, []string{"Origin", "Accept", "Accept-Encoding"}) {
			t.Fatalf("got %d with Vary %q; want 503 with the outer value, httperr's and the writer's", res.StatusCode, got)
		}
	}
}

// TestDeadlineLogNamesTheLimit checks the 503's log record: it gives the
// time the handler had, the route's Timeout or, when an earlier deadline
// from outside the route cut it, the time that deadline left.
func TestDeadlineLogNamesTheLimit(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		outer time.Duration // a deadline on the request's context, if not zero
		want  string
	}{
		{"route Timeout", 0, "timeouts: handler gave up after 1h0m0s"},
		{"earlier deadline outside", 2 * time.Second,
			"timeouts: handler (under an earlier deadline set outside the route) gave up after 2s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var logs strings.Builder
				logger := slog.New(slog.NewTextHandler(&logs, nil))
				h := httperr.Install(httperr.Options{Logger: logger})(timeouts.Deadline(timeouts.DeadlineOptions{Timeout: time.Hour})(
					http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						time.Sleep(2 * time.Hour) // ignores its context
					})))
				ctx := context.Background()
				if tc.outer > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tc.outer)
					defer cancel()
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, "/slow", nil))
				if rec.Code != http.StatusServiceUnavailable {
					t.Fatalf("got %d, want 503", rec.Code)
				}
				if n := strings.Count(logs.String(), "\n"); n != 1 || !strings.Contains(logs.String(), tc.want) {
					t.Fatalf("log (%d records):\n%s\nwant one record with %q", n, logs.String(), tc.want)
				}
			})
		})
	}
}

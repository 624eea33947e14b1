package middleware

import (
	"errors"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stormcellar/stormcellar/httperr"
)

func TestNewLoadShedOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    LoadShedOptions
		wantErr bool
	}{
		{name: "zero value", opts: LoadShedOptions{}},
		{name: "latency only", opts: LoadShedOptions{MaxInFlight: -1, MaxLatency: 20 * time.Millisecond}},
		{name: "in flight only", opts: LoadShedOptions{MaxLatency: -1, MaxInFlight: 100}},
		{name: "percentile one", opts: LoadShedOptions{Percentile: 1}},
		{name: "both disabled", opts: LoadShedOptions{MaxLatency: -1, MaxInFlight: -1}, wantErr: true},
		{name: "percentile over one", opts: LoadShedOptions{Percentile: 1.5}, wantErr: true},
		{name: "negative percentile", opts: LoadShedOptions{Percentile: -0.5}, wantErr: true},
		{name: "NaN percentile", opts: LoadShedOptions{Percentile: math.NaN()}, wantErr: true},
		{name: "sub-millisecond interval", opts: LoadShedOptions{Interval: time.Microsecond}, wantErr: true},
		{name: "negative interval", opts: LoadShedOptions{Interval: -time.Second}, wantErr: true},
		{name: "negative min in flight", opts: LoadShedOptions{MinInFlight: -1}, wantErr: true},
		{name: "negative retry after", opts: LoadShedOptions{RetryAfter: -1}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l, err := NewLoadShed(tt.opts)
			if tt.wantErr {
				if !errors.Is(err, ErrLimitOptions) {
					t.Fatalf("err = %v, want ErrLimitOptions", err)
				}
				return
			}
			if err != nil || l == nil {
				t.Fatalf("NewLoadShed: %v", err)
			}
		})
	}
	l, _ := NewLoadShed(LoadShedOptions{})
	if l.maxLatency != 100*time.Millisecond || l.percentile != 0.99 || l.interval != int64(100*time.Millisecond) ||
		l.minInFlight != int64(runtime.GOMAXPROCS(0)) || l.maxInFlight != 4096 || l.retryAfter != time.Second {
		t.Errorf("defaults: %+v", l)
	}
}

// limHist is a synthetic cumulative scheduler-latency histogram, the test
// hook that injects latency spikes.
type limHist struct {
	mu sync.Mutex
	h  metrics.Float64Histogram
}

func newLimHist() *limHist {
	b := []float64{math.Inf(-1), 0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.05, 0.1, 0.5, 1, math.Inf(1)}
	return &limHist{h: metrics.Float64Histogram{Buckets: b, Counts: make([]uint64, len(b)-1)}}
}

// add counts n events of the given latency in seconds.
func (s *limHist) add(latency float64, n uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.h.Counts) - 1; i >= 0; i-- {
		if latency >= s.h.Buckets[i] {
			s.h.Counts[i] += n
			return
		}
	}
}

// read returns a copy, as runtime/metrics does.
func (s *limHist) read() *metrics.Float64Histogram {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &metrics.Float64Histogram{Buckets: s.h.Buckets, Counts: append([]uint64(nil), s.h.Counts...)}
}

func TestShedQuantile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		events map[float64]uint64 // latency -> count since the previous read
		q      float64
		want   time.Duration
	}{
		{name: "nothing happened", q: 0.99, want: 0},
		{name: "all fast", events: map[float64]uint64{2e-6: 1000}, q: 0.99, want: time.Microsecond},
		{name: "one percent slow is the 99th percentile's tail", events: map[float64]uint64{2e-6: 990, 0.2: 10},
			q: 0.99, want: time.Microsecond},
		{name: "two percent slow", events: map[float64]uint64{2e-6: 980, 0.2: 20}, q: 0.99, want: 100 * time.Millisecond},
		{name: "max", events: map[float64]uint64{2e-6: 999, 0.7: 1}, q: 1, want: 500 * time.Millisecond},
		{name: "median", events: map[float64]uint64{2e-6: 10, 0.02: 10, 2: 10}, q: 0.5, want: 10 * time.Millisecond},
		{name: "beyond the last bound", events: map[float64]uint64{5: 10}, q: 0.99, want: time.Second},
		{name: "zero latency", events: map[float64]uint64{0: 10}, q: 0.99, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newLimHist()
			h.add(0.3, 5000) // history before the previous read
			prev := h.read().Counts
			for lat, n := range tt.events {
				h.add(lat, n)
			}
			if got := shedQuantile(prev, h.read(), tt.q); got != tt.want {
				t.Errorf("quantile = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestLoadShedLatencySpike injects a scheduler-latency spike through the
// histogram hook, on fake time: requests beyond MinInFlight are shed with
// 503 and Retry-After while it lasts, the measured latency is exposed, and
// service resumes once the latency falls.
func TestLoadShedLatencySpike(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sink := &limLogSink{}
		l, err := NewLoadShed(LoadShedOptions{MaxLatency: 50 * time.Millisecond, Interval: 100 * time.Millisecond,
			MinInFlight: 1, MaxInFlight: -1, RetryAfter: 2 * time.Second,
			Logger: slog.New(slog.NewTextHandler(sink, nil))})
		if err != nil {
			t.Fatal(err)
		}
		hist := newLimHist()
		l.read = hist.read
		ev := &limEvents{}
		gate := newLimGate()
		h := limInstall(ev)(l.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/hold" {
				gate.ServeHTTP(w, r)
			}
		})))
		get := func() *httptest.ResponseRecorder { return limRecord(h, "192.0.2.1:1") }

		// Healthy: microsecond latencies.
		for range 3 {
			hist.add(2e-6, 1000)
			if w := get(); w.Code != http.StatusOK {
				t.Fatalf("healthy: %d", w.Code)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if l.Overloaded() || l.Latency() != time.Microsecond {
			t.Fatalf("healthy: overloaded %v latency %v", l.Overloaded(), l.Latency())
		}

		// One long request in flight, then the spike.
		held := make(chan int, 1)
		go func() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/hold", nil))
			held <- w.Code
		}()
		gate.waitEntered(t, 1)
		hist.add(0.2, 500)
		hist.add(2e-6, 500)
		time.Sleep(100 * time.Millisecond)
		w := get()
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "2" {
			t.Fatalf("during the spike: %d Retry-After %q, want 503 and 2", w.Code, w.Header().Get("Retry-After"))
		}
		if !l.Overloaded() || l.Latency() != 100*time.Millisecond {
			t.Errorf("during the spike: overloaded %v latency %v, want true and 100ms", l.Overloaded(), l.Latency())
		}
		if l.InFlight() != 1 {
			t.Errorf("in flight %d, want the held request only", l.InFlight())
		}
		// Still shed until the next measure.
		if w := get(); w.Code != http.StatusServiceUnavailable {
			t.Errorf("second request during the spike: %d", w.Code)
		}
		// The held request finishes; alone, a request is admitted (MinInFlight).
		gate.open()
		if code := <-held; code != http.StatusOK {
			t.Errorf("held request: %d", code)
		}
		if w := get(); w.Code != http.StatusOK {
			t.Errorf("lone request while overloaded: %d, want 200 (MinInFlight)", w.Code)
		}

		// The spike passes.
		hist.add(2e-6, 1000)
		time.Sleep(100 * time.Millisecond)
		if w := get(); w.Code != http.StatusOK || l.Overloaded() {
			t.Errorf("after the spike: %d overloaded %v", w.Code, l.Overloaded())
		}
		if k := ev.kinds(); k[httperr.KindOverload] != 2 {
			t.Errorf("events %v, want 2 overload", k)
		}
		ev.mu.Lock()
		for _, e := range ev.events {
			if !errors.Is(e.Err, ErrSchedLatency) {
				t.Errorf("event cause %v, want ErrSchedLatency", e.Err)
			}
		}
		ev.mu.Unlock()
		if sink.count("load shedding started") != 1 || sink.count("load shedding stopped") != 1 {
			t.Errorf("log: %s", sink.String())
		}
	})
}

// TestLoadShedLatencySpikeServer runs the spike against a real listener:
// polling (bounded) until requests are shed, then until they are served.
func TestLoadShedLatencySpikeServer(t *testing.T) {
	t.Parallel()
	l, err := NewLoadShed(LoadShedOptions{MaxLatency: 50 * time.Millisecond, Interval: time.Millisecond,
		MinInFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	hist := newLimHist()
	l.read = hist.read
	gate := newLimGate()
	srv := limStart(t, l.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			gate.ServeHTTP(w, r)
		}
	})), nil)
	t.Cleanup(gate.open)
	c := limClient(t)
	if r := limGet(c, srv.URL); r.status != http.StatusOK {
		t.Fatalf("before: %d %v", r.status, r.err)
	}
	held := make(chan limResult, 1)
	go func() { held <- limGet(c, srv.URL+"/hold") }()
	gate.waitEntered(t, 1)

	poll := func(want int) limResult {
		var r limResult
		for range 2000 {
			if r = limGet(c, srv.URL); r.status == want {
				return r
			}
			time.Sleep(time.Millisecond)
		}
		t.Fatalf("never got %d (last %d %v)", want, r.status, r.err)
		return r
	}
	hist.add(0.2, 1000)
	r := poll(http.StatusServiceUnavailable)
	if r.header.Get("Retry-After") != "1" {
		t.Errorf("shed without Retry-After: %v", r.header)
	}
	hist.add(2e-6, 100_000)
	poll(http.StatusOK)
	gate.open()
	if r := <-held; r.status != http.StatusOK {
		t.Errorf("request in flight during the spike: %d %v", r.status, r.err)
	}
}

// TestLoadShedMaxInFlight sheds on in-flight work alone, and recovers.
func TestLoadShedMaxInFlight(t *testing.T) {
	t.Parallel()
	l, err := NewLoadShed(LoadShedOptions{MaxLatency: -1, MaxInFlight: 2})
	if err != nil {
		t.Fatal(err)
	}
	gate := newLimGate()
	ev := &limEvents{}
	srv := limStart(t, l.Handler(gate), ev)
	t.Cleanup(gate.open)
	c := limClient(t)
	held := make(chan limResult, 2)
	for range 2 {
		go func() { held <- limGet(c, srv.URL) }()
	}
	gate.waitEntered(t, 2)
	if r := limGet(c, srv.URL); r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "1" {
		t.Errorf("third request: %d %v", r.status, r.err)
	}
	gate.open()
	for range 2 {
		<-held
	}
	if r := limGet(c, srv.URL); r.status != http.StatusOK {
		t.Errorf("after: %d", r.status)
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if len(ev.events) != 1 || !errors.Is(ev.events[0].Err, ErrOverloaded) {
		t.Errorf("events %+v", ev.events)
	}
}

// TestLoadShedRuntimeMetric reads the real scheduler latency: after CPU
// contention (more spinning goroutines than CPUs) it is measured above
// zero, and without a hook nothing is shed under a high threshold.
func TestLoadShedRuntimeMetric(t *testing.T) {
	t.Parallel()
	l, err := NewLoadShed(LoadShedOptions{MaxLatency: time.Hour, Interval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h := l.Handler(limOK)
	for attempt := range 20 {
		if w := limRecord(h, "192.0.2.1:1"); w.Code != http.StatusOK {
			t.Fatalf("request: %d", w.Code)
		}
		var wg sync.WaitGroup
		for range 4 * runtime.GOMAXPROCS(0) {
			wg.Go(func() {
				for end := time.Now().Add(20 * time.Millisecond); time.Now().Before(end); {
				}
			})
		}
		wg.Wait()
		time.Sleep(2 * time.Millisecond)
		if w := limRecord(h, "192.0.2.1:1"); w.Code != http.StatusOK {
			t.Fatalf("request: %d", w.Code)
		}
		if l.Latency() > 0 {
			t.Logf("measured scheduler latency p99 %v (attempt %d)", l.Latency(), attempt+1)
			return
		}
	}
	t.Errorf("scheduler latency never measured above zero under CPU contention")
}

// FuzzShedQuantile checks the quantile of a histogram delta: it is the
// lower bound of a bucket that received events, never above the highest
// one, never below the lowest, and q=1 gives the highest.
func FuzzShedQuantile(f *testing.F) {
	f.Add([]byte{10, 0, 0, 0, 0, 0, 0, 0, 0, 1}, uint16(990))
	f.Add([]byte{0, 0, 5, 5}, uint16(1000))
	f.Add([]byte{}, uint16(500))
	f.Fuzz(func(t *testing.T, events []byte, permille uint16) {
		q := float64(permille%1000+1) / 1000
		h := newLimHist()
		h.add(0.3, 1000) // earlier history
		prev := h.read().Counts
		lo, hi := -1, -1
		for i, n := range events {
			b := 1 + i%(len(h.h.Counts)-1) // skip the -Inf bucket
			if n > 0 {
				h.add(h.h.Buckets[b], uint64(n))
				if lo < 0 || b < lo {
					lo = b
				}
				hi = max(hi, b)
			}
		}
		got := shedQuantile(prev, h.read(), q)
		if lo < 0 {
			if got != 0 {
				t.Fatalf("no events: %v", got)
			}
			return
		}
		bound := func(b int) time.Duration { return time.Duration(h.h.Buckets[b] * float64(time.Second)) }
		if got < bound(lo) || got > bound(hi) {
			t.Fatalf("quantile %v outside [%v, %v]", got, bound(lo), bound(hi))
		}
		if q == 1 && got != bound(hi) {
			t.Fatalf("q=1: %v, want %v", got, bound(hi))
		}
	})
}

package middleware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stormcellar/stormcellar/httperr"
)

// ErrSchedLatency is the logged cause of a 503 sent by [LoadShed] because
// the Go scheduler's latency is over its threshold.
var ErrSchedLatency = errors.New("middleware: scheduler latency over threshold")

// loadShedMetric is the runtime metric LoadShed watches: how long runnable
// goroutines waited for a CPU.
const loadShedMetric = "/sched/latencies:seconds"

// Defaults of [LoadShedOptions].
const (
	defaultShedMaxLatency  = 100 * time.Millisecond
	defaultShedPercentile  = 0.99
	defaultShedInterval    = 100 * time.Millisecond
	defaultShedMaxInFlight = 4096
	defaultShedRetryAfter  = time.Second
)

// LoadShedOptions configure [NewLoadShed]. The zero value is valid: shed
// when the 99th percentile of the scheduler latency over the last 100 ms
// passes 100 ms (still admitting GOMAXPROCS requests at a time), or when
// 4096 requests are in flight.
type LoadShedOptions struct {
	// MaxLatency is the scheduler latency above which requests are shed:
	// the Percentile of the time goroutines spent runnable but waiting for
	// a CPU (runtime/metrics /sched/latencies:seconds) during the last
	// Interval. It rises when the process has more work than CPUs: the
	// Go counterpart of a blocked event loop. If zero, 100 ms (asyncio's
	// slow-callback threshold). Negative disables the latency signal.
	MaxLatency time.Duration
	// Percentile of the latency distribution compared with MaxLatency, in
	// (0, 1]. If zero, 0.99.
	Percentile float64
	// Interval is how often the latency is measured, and the span each
	// measure covers. It is measured by the first request after each
	// Interval, not by a background goroutine. If zero, 100 ms; under
	// 1 ms is an error.
	Interval time.Duration
	// MinInFlight is how many requests are still admitted at once while
	// the latency is over MaxLatency, so the server keeps making progress
	// and the measure can recover. If zero, GOMAXPROCS. Negative is an
	// error.
	MinInFlight int
	// MaxInFlight sheds any request that would make more than this many
	// in flight through the middleware, whatever the latency. If zero,
	// 4096. Negative disables it.
	MaxInFlight int
	// RetryAfter is the Retry-After sent with the 503. If zero, one
	// second. Negative is an error.
	RetryAfter time.Duration
	// Logger receives a warning when shedding on latency starts and a
	// record when it stops. If nil, slog.Default(). Each shed request is
	// logged by httperr.
	Logger *slog.Logger
}

// LoadShed answers 503 Service Unavailable, with Retry-After, to new
// requests while the Go scheduler is overloaded or too many requests are in
// flight, so the requests already admitted can finish. Create it with
// [NewLoadShed]; it is safe for concurrent use.
type LoadShed struct {
	maxLatency  time.Duration
	percentile  float64
	interval    int64
	minInFlight int64
	maxInFlight int64
	retryAfter  time.Duration
	logger      *slog.Logger

	inflight atomic.Int64
	latency  atomic.Int64 // nanoseconds, last measure
	over     atomic.Bool
	next     atomic.Int64 // nanoseconds after start of the next measure
	// start is when the LoadShed was made. Time is measured from it:
	// time.Since reads only the monotonic clock, where time.Now reads
	// the wall clock too, and a request pays for one reading.
	start time.Time

	mu      sync.Mutex // guards the measure below
	samples [1]metrics.Sample
	prev    []uint64
	// read returns the cumulative latency histogram: readRuntime, or a
	// synthetic one in tests, to inject a latency spike.
	read func() *metrics.Float64Histogram
}

// NewLoadShed returns a load shedder configured by opts, or an error naming
// the first invalid option. It measures time from its creation on the
// monotonic clock: in tests under testing/synctest, make it inside the
// bubble that serves through it (one made outside never measures there).
func NewLoadShed(opts LoadShedOptions) (*LoadShed, error) {
	if opts.MaxLatency < 0 && opts.MaxInFlight < 0 {
		return nil, fmt.Errorf("%w: LoadShedOptions: MaxLatency and MaxInFlight both disabled", ErrLimitOptions)
	}
	if opts.Percentile < 0 || opts.Percentile > 1 || math.IsNaN(opts.Percentile) {
		return nil, fmt.Errorf("%w: LoadShedOptions.Percentile %v not in (0, 1]", ErrLimitOptions, opts.Percentile)
	}
	if opts.Interval < 0 || (opts.Interval > 0 && opts.Interval < time.Millisecond) {
		return nil, fmt.Errorf("%w: LoadShedOptions.Interval %v: must be zero (100ms) or at least 1ms", ErrLimitOptions, opts.Interval)
	}
	if opts.MinInFlight < 0 {
		return nil, fmt.Errorf("%w: LoadShedOptions.MinInFlight %d is negative", ErrLimitOptions, opts.MinInFlight)
	}
	if opts.RetryAfter < 0 {
		return nil, fmt.Errorf("%w: LoadShedOptions.RetryAfter %v is negative", ErrLimitOptions, opts.RetryAfter)
	}
	l := &LoadShed{
		maxLatency:  opts.MaxLatency,
		percentile:  opts.Percentile,
		interval:    int64(opts.Interval),
		minInFlight: int64(opts.MinInFlight),
		maxInFlight: int64(opts.MaxInFlight),
		retryAfter:  opts.RetryAfter,
		logger:      opts.Logger,
		start:       time.Now(),
	}
	l.read = l.readRuntime
	if l.maxLatency == 0 {
		l.maxLatency = defaultShedMaxLatency
	}
	if l.percentile == 0 {
		l.percentile = defaultShedPercentile
	}
	if l.interval == 0 {
		l.interval = int64(defaultShedInterval)
	}
	if l.minInFlight == 0 {
		l.minInFlight = int64(runtime.GOMAXPROCS(0))
	}
	if l.maxInFlight == 0 {
		l.maxInFlight = defaultShedMaxInFlight
	}
	if l.retryAfter == 0 {
		l.retryAfter = defaultShedRetryAfter
	}
	if l.logger == nil {
		l.logger = slog.Default()
	}
	l.samples[0].Name = loadShedMetric
	if l.maxLatency > 0 {
		supported := false
		for _, d := range metrics.All() {
			if d.Name == loadShedMetric && d.Kind == metrics.KindFloat64Histogram {
				supported = true
			}
		}
		if !supported {
			return nil, errors.New("middleware: LoadShed: this runtime has no " + loadShedMetric + " metric; set MaxLatency negative to shed on MaxInFlight only")
		}
	}
	return l, nil
}

// Handler returns middleware that sheds requests with 503 Service
// Unavailable and Retry-After, through httperr with kind overload: every
// request while more than MaxInFlight are in flight, and, while the
// scheduler latency is over MaxLatency, every request that finds
// MinInFlight or more in flight.
func (l *LoadShed) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := l.inflight.Add(1)
		defer l.inflight.Add(-1)
		if err := l.admit(n); err != nil {
			httperr.Write(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// admit decides whether the n-th request in flight may run.
func (l *LoadShed) admit(n int64) error {
	if l.maxInFlight > 0 && n > l.maxInFlight {
		return httperr.Unavailable(httperr.KindOverload, l.retryAfter, ErrOverloaded)
	}
	if l.maxLatency > 0 {
		l.maybeMeasure(int64(time.Since(l.start)))
		if l.over.Load() && n > l.minInFlight {
			return httperr.Unavailable(httperr.KindOverload, l.retryAfter, ErrSchedLatency)
		}
	}
	return nil
}

// Latency returns the last measured scheduler latency (the configured
// percentile over the last interval), for metrics. It is 0 until two
// measures were taken, and when MaxLatency is disabled.
func (l *LoadShed) Latency() time.Duration { return time.Duration(l.latency.Load()) }

// InFlight returns the number of requests in the middleware, for metrics.
func (l *LoadShed) InFlight() int { return int(l.inflight.Load()) }

// Overloaded reports whether the last measured latency was over MaxLatency,
// so that requests beyond MinInFlight are being shed.
func (l *LoadShed) Overloaded() bool { return l.over.Load() }

// maybeMeasure measures the latency if an Interval has passed since the
// last measure. Only one caller measures; the others go on at once.
func (l *LoadShed) maybeMeasure(now int64) {
	next := l.next.Load()
	if now < next || !l.next.CompareAndSwap(next, now+l.interval) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.read()
	if h == nil || len(h.Buckets) != len(h.Counts)+1 {
		return
	}
	if len(l.prev) != len(h.Counts) {
		// First measure: it only sets the baseline.
		l.prev = append(l.prev[:0], h.Counts...)
		return
	}
	lat := shedQuantile(l.prev, h, l.percentile)
	copy(l.prev, h.Counts)
	l.latency.Store(int64(lat))
	over := lat > l.maxLatency
	if over == l.over.Swap(over) {
		return
	}
	if over {
		l.logger.LogAttrs(context.Background(), slog.LevelWarn, "load shedding started: scheduler latency over threshold",
			slog.Duration("latency", lat), slog.Duration("threshold", l.maxLatency),
			slog.Int64("in_flight", l.inflight.Load()))
	} else {
		l.logger.LogAttrs(context.Background(), slog.LevelInfo, "load shedding stopped",
			slog.Duration("latency", lat), slog.Duration("threshold", l.maxLatency))
	}
}

// readRuntime reads the scheduler latency histogram from the runtime. After
// the first call it allocates nothing: runtime/metrics reuses the
// histogram held by the sample.
func (l *LoadShed) readRuntime() *metrics.Float64Histogram {
	metrics.Read(l.samples[:])
	if l.samples[0].Value.Kind() != metrics.KindFloat64Histogram {
		return nil
	}
	return l.samples[0].Value.Float64Histogram()
}

// shedQuantile returns the q-quantile of the events counted in h since the
// counts prev, as the lower bound of the bucket it falls in (so that
// bucket width never makes a measure look worse than it was); 0 when no
// event was counted.
func shedQuantile(prev []uint64, h *metrics.Float64Histogram, q float64) time.Duration {
	var total uint64
	for i, c := range h.Counts {
		total += shedDelta(c, prev[i])
	}
	if total == 0 {
		return 0
	}
	target := uint64(math.Ceil(float64(total) * q))
	target = max(target, 1)
	var cum uint64
	for i, c := range h.Counts {
		cum += shedDelta(c, prev[i])
		if cum >= target {
			lo := h.Buckets[i]
			if lo <= 0 || math.IsInf(lo, 0) || math.IsNaN(lo) {
				return 0
			}
			if lo >= float64(math.MaxInt64)/float64(time.Second) {
				return time.Duration(math.MaxInt64)
			}
			return time.Duration(lo * float64(time.Second))
		}
	}
	return 0
}

// shedDelta is c-prev for counts that only grow, and 0 if they did not.
func shedDelta(c, prev uint64) uint64 {
	if c < prev {
		return 0
	}
	return c - prev
}

package timeouts

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
	"unsafe"

	"github.com/stormcellar/stormcellar/internal/testutil"
)

func TestRateReader(t *testing.T) {
	t.Parallel()
	type chunk struct {
		after time.Duration // since the previous chunk
		n     int
	}
	repeat := func(c chunk, times int) []chunk {
		out := make([]chunk, times)
		for i := range out {
			out[i] = c
		}
		return out
	}
	cases := []struct {
		name     string
		chunks   []chunk
		wantErr  bool
		wantRead int
		wantAt   time.Duration // when the read failed (or finished)
	}{
		{"steady body above the rate", repeat(chunk{500 * time.Millisecond, 100}, 10), false, 1000, 5 * time.Second},
		{"one byte a second is cut after one window", repeat(chunk{time.Second, 1}, 30), true, 0, time.Second},
		{"quota at the end of every window passes", repeat(chunk{900 * time.Millisecond, 100}, 6), false, 600, 5400 * time.Millisecond},
		{"below the quota is cut", repeat(chunk{110 * time.Millisecond, 9}, 30), true, 81, time.Second},
		{"first byte later than a window is cut", []chunk{{1500 * time.Millisecond, 500}}, true, 0, time.Second},
		{"short body finishing inside the window", []chunk{{200 * time.Millisecond, 40}}, false, 40, 200 * time.Millisecond},
		{"stall after a good start is cut a window later", []chunk{{0, 150}, {10 * time.Second, 10}}, true, 150, 2 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				client, server := net.Pipe()
				writerDone := make(chan struct{})
				defer func() { <-writerDone }()
				go func() {
					defer close(writerDone)
					defer client.Close()
					for _, c := range tc.chunks {
						time.Sleep(c.after)
						if _, err := client.Write(bytes.Repeat([]byte{'x'}, c.n)); err != nil {
							return
						}
					}
				}()
				start := time.Now()
				rr := &rateReader{body: server, deadline: server}
				rr.configure(rateConfig{rate: 100, window: time.Second}, start)
				got, err := io.ReadAll(rr)
				at := time.Since(start)
				_ = rr.Close()
				if tc.wantErr != (err != nil) {
					t.Fatalf("err = %v, want error %v", err, tc.wantErr)
				}
				if err != nil {
					var he interface{ Unwrap() error }
					if !errors.Is(err, ErrBodyTooSlow) || !errors.As(err, &he) {
						t.Fatalf("err = %v, want ErrBodyTooSlow inside an HTTPError", err)
					}
				}
				if len(got) != tc.wantRead && !(tc.wantErr && len(got) >= tc.wantRead) {
					t.Fatalf("read %d bytes, want %d", len(got), tc.wantRead)
				}
				if at != tc.wantAt {
					t.Fatalf("finished after %v, want %v", at, tc.wantAt)
				}
			})
		})
	}
}

// After the body ends the deadline is cleared, so a handler may work on.
func TestRateReaderClearsDeadlineAtEOF(t *testing.T) {
	t.Parallel()
	rec := &deadlineRecorder{}
	rr := &rateReader{body: io.NopCloser(strings.NewReader("hello")), deadline: rec}
	rr.configure(rateConfig{rate: 1, window: time.Second}, time.Now())
	if _, err := io.ReadAll(rr); err != nil {
		t.Fatal(err)
	}
	if len(rec.set) < 2 || !rec.set[len(rec.set)-1].IsZero() {
		t.Fatalf("deadlines set: %v, want the last one cleared", rec.set)
	}
}

type deadlineRecorder struct{ set []time.Time }

func (d *deadlineRecorder) SetReadDeadline(t time.Time) error {
	d.set = append(d.set, t)
	return nil
}

func TestWindowQuota(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		rate   int
		window time.Duration
		want   int64
	}{
		{1024, 10 * time.Second, 10240},
		{1, time.Millisecond, 1},
		{100, 1500 * time.Millisecond, 150},
	} {
		if got := windowQuota(tc.rate, tc.window); got != tc.want {
			t.Errorf("windowQuota(%d, %v) = %d, want %d", tc.rate, tc.window, got, tc.want)
		}
	}
}

var loopbackCases = []struct {
	addr string
	want bool
}{
	{"127.0.0.1:6060", true},
	{"[::1]:80", true},
	{"localhost:8080", true},
	{"LOCALHOST:1", true},
	{"127.9.9.9:1", true},
	{"[::ffff:127.0.0.1]:1", true},
	{":8080", false},
	{"0.0.0.0:80", false},
	{"[::]:80", false},
	{"10.0.0.1:80", false},
	{"example.com:80", false},
	{"", false},
}

func TestLoopbackAddr(t *testing.T) {
	t.Parallel()
	for _, tc := range loopbackCases {
		if got := loopbackAddr(tc.addr); got != tc.want {
			t.Errorf("loopbackAddr(%q) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}

func FuzzLoopbackAddr(f *testing.F) {
	for _, tc := range loopbackCases {
		f.Add(tc.addr)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		if !loopbackAddr(addr) {
			return
		}
		// Property: a loopback answer means the host part names loopback.
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		host = strings.Trim(host, "[]")
		ip := net.ParseIP(host)
		if !strings.EqualFold(host, "localhost") && (ip == nil || !ip.IsLoopback()) {
			t.Fatalf("loopbackAddr(%q) = true for host %q", addr, host)
		}
	})
}

var sameHostCases = []struct {
	from, to string
	want     bool
}{
	{"http://a.example/x", "http://a.example/y", true},
	{"http://A.example/x", "http://a.EXAMPLE:80/y", true},
	{"http://a.example/x", "https://a.example/y", true},
	{"https://a.example/x", "https://a.example:443/y", true},
	{"http://a.example:8080/x", "http://a.example:8081/y", false},
	{"http://a.example:8080/x", "https://a.example/y", false},
	{"http://a.example/x", "http://b.example/y", false},
	{"http://a.example/x", "http://a.example.evil/y", false},
	{"http://127.0.0.1:1/", "http://127.0.0.1:2/", false},
	{"http:///x", "http:///y", false},
}

func TestSameHost(t *testing.T) {
	t.Parallel()
	for _, tc := range sameHostCases {
		from, _ := url.Parse(tc.from)
		to, _ := url.Parse(tc.to)
		if got := sameHost(from, to); got != tc.want {
			t.Errorf("sameHost(%s, %s) = %v, want %v", tc.from, tc.to, got, tc.want)
		}
	}
}

func FuzzSameHost(f *testing.F) {
	for _, tc := range sameHostCases {
		f.Add(tc.from, tc.to)
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		from, err1 := url.Parse(a)
		to, err2 := url.Parse(b)
		if err1 != nil || err2 != nil {
			return
		}
		got := sameHost(from, to)
		// Properties: never across hostnames; always reflexive for a URL
		// with a host.
		if got && !strings.EqualFold(from.Hostname(), to.Hostname()) {
			t.Fatalf("sameHost(%q, %q) crosses hostnames", a, b)
		}
		if from.Hostname() != "" && !sameHost(from, from) {
			t.Fatalf("sameHost(%q, itself) = false", a)
		}
	})
}

var debugPatternCases = []struct {
	pattern string
	want    bool
}{
	{"/debug/pprof/", true},
	{"GET /debug/vars", true},
	{"example.com/debug/pprof/", true},
	{"/debug/pprof/*", true},
	{"/", false},
	{"/*", false},
	{"GET /{path...}", false},
	{"", false},
	{"/api/debug/", false},
}

func TestIsDebugPattern(t *testing.T) {
	t.Parallel()
	for _, tc := range debugPatternCases {
		if got := isDebugPattern(tc.pattern); got != tc.want {
			t.Errorf("isDebugPattern(%q) = %v, want %v", tc.pattern, got, tc.want)
		}
	}
}

func FuzzIsDebugPattern(f *testing.F) {
	for _, tc := range debugPatternCases {
		f.Add(tc.pattern)
	}
	f.Fuzz(func(t *testing.T, pattern string) {
		// Property: a debug answer means the pattern's path is under
		// /debug/; a catch-all root never is.
		if isDebugPattern(pattern) && !strings.Contains(pattern, "/debug/") {
			t.Fatalf("isDebugPattern(%q) = true", pattern)
		}
		if !strings.Contains(pattern, " ") && strings.HasPrefix(pattern, "/debug/") && !isDebugPattern(pattern) {
			t.Fatalf("isDebugPattern(%q) = false", pattern)
		}
	})
}

// TestDeadlineTimerKinds checks the timer a Deadline takes: a pooled one
// on the real clock, a private one in a synctest bubble (a bubble's timer
// must never reach the pool, and a pooled one must never run in a
// bubble), and that a pooled timer stopped in time goes back unfired.
func TestDeadlineTimerKinds(t *testing.T) {
	g := &guard{}
	g.startTimer(time.Hour, time.Now())
	if g.cell == nil || g.timer != nil {
		t.Fatalf("real clock: cell %v, timer %v; want a pooled cell", g.cell, g.timer)
	}
	c := g.cell
	if c.g.Load() != g {
		t.Fatal("the cell does not point at its guard")
	}
	g.stopTimer()
	if g.cell != nil || c.g.Load() != nil {
		t.Fatal("a stopped cell still points at its guard")
	}

	synctest.Test(t, func(t *testing.T) {
		g := &guard{}
		g.startTimer(time.Hour, time.Now())
		if g.cell != nil || g.timer == nil {
			t.Fatalf("bubble: cell %v, timer %v; want a timer of its own", g.cell, g.timer)
		}
		g.stopTimer()
	})
}

// TestPrivateHeader checks the handler's copy of the headers: equal, its
// own map, and, once the timer has clipped the real map as it does before
// the 503, an Add on either side cannot change what the other reads.
func TestPrivateHeader(t *testing.T) {
	shared := make([]string, 1, 4)
	shared[0] = "Accept"
	real := http.Header{"Vary": shared, "X-Frame-Options": {"DENY"}}
	p := privateHeader(real)
	if !reflect.DeepEqual(p, real) {
		t.Fatalf("copy %v, want %v", p, real)
	}
	p.Add("Vary", "Cookie") // the handler, before the deadline
	if got := real["Vary"]; !slices.Equal(got, []string{"Accept"}) {
		t.Errorf("real Vary = %q after the handler's Add", got)
	}
	clipHeader(real) // the timer, before it writes the 503
	real.Add("Vary", "Origin")
	p.Add("Vary", "Cookie")
	if got := p["Vary"]; !slices.Equal(got, []string{"Accept", "Cookie", "Cookie"}) {
		t.Errorf("private Vary = %q after the Adds", got)
	}
	if got := real["Vary"]; !slices.Equal(got, []string{"Accept", "Origin"}) {
		t.Errorf("real Vary = %q after the Adds", got)
	}
	p.Del("X-Frame-Options")
	if real.Get("X-Frame-Options") != "DENY" {
		t.Error("a Del on the copy reached the real headers")
	}
	if p := privateHeader(http.Header{}); p == nil {
		t.Error("copy of an empty header is nil")
	}
	if p := privateHeader(nil); p == nil {
		t.Error("copy of a nil header is nil")
	}
}

// TestDeadlineQueue checks the queue's list and timer: requests leave in
// any order, the timer takes out exactly those whose deadline has passed,
// and re-arms for the oldest left.
func TestDeadlineQueue(t *testing.T) {
	q := &deadlineShard{timeout: time.Hour}
	gs := make([]*guard, 4)
	for i := range gs {
		gs[i] = &guard{state: stateDone} // expire does nothing
		if !q.push(gs[i]) {
			t.Fatal("push refused on the real clock")
		}
	}
	defer q.t.Stop()
	order := func() []*guard {
		var got []*guard
		for g := q.head; g != nil; g = g.qnext {
			got = append(got, g)
		}
		return got
	}
	for i := 1; i < len(gs); i++ {
		if gs[i].dl.Before(gs[i-1].dl) {
			t.Fatalf("deadline %d is before deadline %d", i, i-1)
		}
	}
	q.remove(gs[1])
	q.remove(gs[1]) // twice: no effect
	if got := order(); !slices.Equal(got, []*guard{gs[0], gs[2], gs[3]}) || q.tail != gs[3] {
		t.Fatalf("after removing the second: %v", got)
	}
	// The first two left have passed their deadline.
	past := time.Now().Add(-time.Second)
	gs[0].dl, gs[2].dl = past, past
	q.fire()
	if got := order(); !slices.Equal(got, []*guard{gs[3]}) || q.head != gs[3] || q.tail != gs[3] {
		t.Fatalf("after the timer: %v", got)
	}
	if gs[0].queued || gs[2].queued || !gs[3].queued || !q.armed {
		t.Fatalf("queued %v %v %v, armed %v", gs[0].queued, gs[2].queued, gs[3].queued, q.armed)
	}
	q.remove(gs[3])
	if q.head != nil || q.tail != nil {
		t.Fatal("queue not empty")
	}
	q.fire() // nothing due, nothing left: the timer stays disarmed
	if q.armed {
		t.Fatal("timer re-armed for an empty queue")
	}

	synctest.Test(t, func(t *testing.T) {
		if q.push(&guard{}) {
			t.Fatal("push accepted a request in a synctest bubble")
		}
	})

	// The sharded queue: a guard leaves the shard it joined.
	sq := newDeadlineQueue(time.Hour)
	if n := len(sq.shards); n < 2 || n > 64 || n&(n-1) != 0 {
		t.Fatalf("%d shards, want a power of two from 2 to 64", n)
	}
	for range 100 {
		g := &guard{state: stateDone}
		if !sq.push(g) {
			t.Fatal("push refused on the real clock")
		}
		sh := &sq.shards[g.qshard]
		if sh.tail != g {
			t.Fatal("the guard is not at the tail of its shard")
		}
		sq.remove(g)
		if g.queued || sh.head != nil {
			t.Fatal("the guard did not leave its shard")
		}
	}
	for i := range sq.shards {
		if sq.shards[i].t != nil {
			sq.shards[i].t.Stop()
		}
	}
}

var guardSink *guard

// TestGuardSize checks the bytes one guard allocation takes (its size
// class, with the allocation header Go adds to objects over 512 bytes):
// every request through a Deadline pays them. A field that pushes the
// guard into the next class costs 64 bytes a request.
func TestGuardSize(t *testing.T) {
	const want = 576
	if got := testutil.AllocBytes(func() { guardSink = new(guard) }); got > want {
		t.Errorf("a guard allocation takes %d bytes (struct %d), want at most %d", got, unsafe.Sizeof(guard{}), want)
	}
}

// TestSyncHeader checks that the handler's headers replace the real ones
// exactly, whatever the handler did to the copy: kept, set, added to,
// shortened, deleted or new entries.
func TestSyncHeader(t *testing.T) {
	two := []string{"a", "b"}
	real := http.Header{
		"Kept": {"k"}, "Set": {"old"}, "Added-To": {"x"}, "Shortened": two,
		"Deleted": {"gone"}, "Empty": {},
	}
	g := &guard{w: &headerWriter{h: real}}
	g.h = privateHeader(real)
	g.h.Set("Set", "new")
	g.h.Add("Added-To", "y")
	g.h["Shortened"] = g.h["Shortened"][:1]
	g.h.Del("Deleted")
	g.h.Set("New", "n")
	want := g.h.Clone()
	g.syncHeader()
	if !reflect.DeepEqual(real, want) {
		t.Errorf("real headers after sync:\n%v\nwant\n%v", real, want)
	}
}

type headerWriter struct {
	http.ResponseWriter
	h http.Header
}

func (w *headerWriter) Header() http.Header { return w.h }

// TestCancelCtxKeyFound checks that the probe still finds the context
// package's key: without it a guard cannot hide its parent's cancellation
// state, and context.Cause on the handler's context reports the client's
// going away after a deadline (TestDeadlineContext).
func TestCancelCtxKeyFound(t *testing.T) {
	if cancelCtxKey() == nil {
		t.Fatal("context.Cause did not ask the probe for a key")
	}
}

// TestExpectsContinue: the first window of a body waits for the first read
// when the client waits for 100 Continue, as net/http decides it: the
// 100-continue token in Expect, on HTTP/1.1 or HTTP/2.
func TestExpectsContinue(t *testing.T) {
	for _, tc := range []struct {
		major, minor int
		expect       []string
		want         bool
	}{
		{1, 1, []string{"100-continue"}, true},
		{1, 1, []string{"100-Continue"}, true},
		{1, 1, []string{"100-continue, x-other"}, true},
		{1, 1, []string{" 100-continue "}, true},
		{2, 0, []string{"100-continue"}, true},
		{1, 0, []string{"100-continue"}, false}, // HTTP/1.0 has no 100 Continue
		{1, 1, nil, false},
		{1, 1, []string{"200-ok"}, false},
		{1, 1, []string{"100-continuex"}, false},
	} {
		r := &http.Request{ProtoMajor: tc.major, ProtoMinor: tc.minor, Header: http.Header{}}
		if tc.expect != nil {
			r.Header["Expect"] = tc.expect
		}
		if got := expectsContinue(r); got != tc.want {
			t.Errorf("HTTP/%d.%d Expect %q: %v, want %v", tc.major, tc.minor, tc.expect, got, tc.want)
		}
	}
}

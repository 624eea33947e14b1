package timeouts_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/stormcellar/stormcellar/httperr"
	"github.com/stormcellar/stormcellar/timeouts"
)

// Attack tests run real servers on loopback and attack them with raw
// connections. Attackers use their own loopback source addresses
// (127.0.0.2 and up), the legitimate client 127.0.0.1, so per-client caps
// see them as different clients.

// startServer serves h through NewServer on 127.0.0.1 until stop is
// called; stop returns what Serve returned.
func startServer(t *testing.T, h http.Handler, opts timeouts.ServerOptions) (s *timeouts.Server, addr string, stop func() error) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger
	}
	s, err := timeouts.NewServer(httperr.Install(httperr.Options{Logger: quietLogger})(h), opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ctx, ln) }()
	var once sync.Once
	var serveErr error
	stop = func() error {
		once.Do(func() { cancel(); serveErr = <-errc })
		return serveErr
	}
	t.Cleanup(func() { _ = stop() })
	return s, ln.Addr().String(), stop
}

// dialFrom connects to addr from the loopback source address src.
func dialFrom(src, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	return d.Dial("tcp", addr)
}

// legitClient sends GET requests from 127.0.0.1 every interval until stop
// is closed and reports how many got 200 and how many did not.
func legitClient(url string, interval time.Duration, stop <-chan struct{}) (ok, failed *atomic.Int32, done <-chan struct{}) {
	ok, failed = new(atomic.Int32), new(atomic.Int32)
	d := make(chan struct{})
	go func() {
		defer close(d)
		tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}}).DialContext}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr, Timeout: 3 * time.Second}
		for i := 0; i < 1000; i++ {
			select {
			case <-stop:
				return
			case <-time.After(interval):
			}
			resp, err := c.Get(url)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
			if err == nil && resp.StatusCode == 200 {
				ok.Add(1)
			} else {
				failed.Add(1)
			}
		}
	}()
	return ok, failed, d
}

// slowloris opens n connections to addr, spread over sources, and sends a
// never-ending header one byte per interval on each. It returns how long
// the server took to cut each connection, or -1 for a connection still
// open when the attacker gave up after giveUp.
func slowloris(t *testing.T, addr string, sources []string, n int, interval, giveUp time.Duration) []time.Duration {
	t.Helper()
	header := "GET / HTTP/1.1\r\nHost: victim\r\nX-Slow: " + strings.Repeat("a", 4096)
	cut := make([]time.Duration, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Ramp up as a real attacker does; a burst of hundreds of
			// simultaneous SYNs on one loopback listener is dropped by the
			// kernel and would measure the TCP stack, not the server.
			time.Sleep(time.Duration(i) * 3 * time.Millisecond)
			// The start is taken before the dial: the server's header timer
			// cannot start before the connection exists, so a cut is never
			// measured shorter than it was, however late this goroutine
			// runs on a loaded machine.
			start := time.Now()
			c, err := dialFrom(sources[i%len(sources)], addr)
			if err != nil {
				t.Errorf("dial: %v", err)
				return
			}
			defer c.Close()
			buf := make([]byte, 1)
			for j := 0; j < int(giveUp/interval)+2; j++ {
				if time.Since(start) >= giveUp {
					break
				}
				if _, err := c.Write([]byte{header[j%len(header)]}); err != nil {
					cut[i] = time.Since(start)
					return
				}
				_ = c.SetReadDeadline(time.Now().Add(interval))
				// Cut means the server closed, or answered (net/http sends
				// 400 and closes when a partial request line times out).
				if n, err := c.Read(buf); n > 0 || (err != nil && !isNetTimeout(err)) {
					cut[i] = time.Since(start)
					return
				}
			}
			cut[i] = -1
		}()
	}
	wg.Wait()
	return cut
}

// quietLogger keeps the expected error records of attack tests out of the
// test output.
var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

func isNetTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func sources(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s.%d", prefix, i+2)
	}
	return out
}

func okHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
}

// TestSlowlorisDefaultServerVersusNewServer runs the same slowloris attack
// (300 connections, one header byte a second each) against Go's default
// server and against NewServer with a 2 s header deadline, side by side.
func TestSlowlorisDefaultServerVersusNewServer(t *testing.T) {
	// Not parallel: it measures cut-off times, which other attack tests'
	// connection floods on the same loopback would distort.
	const conns, headerTimeout, margin = 300, 2 * time.Second, 2 * time.Second
	s, addr, _ := startServer(t, okHandler(), timeouts.ServerOptions{ReadHeaderTimeout: headerTimeout})
	plain := httptest.NewServer(okHandler()) // http.Server{}: no timeouts

	stopLegit := make(chan struct{})
	ok, failed, legitDone := legitClient("http://"+addr+"/", 100*time.Millisecond, stopLegit)

	var ours, theirs []time.Duration
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		ours = slowloris(t, addr, sources("127.0.0", 10), conns, time.Second, headerTimeout+margin)
	}()
	go func() {
		defer wg.Done()
		theirs = slowloris(t, strings.TrimPrefix(plain.URL, "http://"), sources("127.0.1", 10), conns, time.Second, headerTimeout+margin)
	}()
	wg.Wait()
	close(stopLegit)
	<-legitDone
	plain.Close()

	var maxCut, minCut time.Duration = 0, time.Hour
	held := 0
	for _, d := range ours {
		if d < 0 {
			held++
			continue
		}
		maxCut, minCut = max(maxCut, d), min(minCut, d)
	}
	plainHeld := 0
	for _, d := range theirs {
		if d < 0 {
			plainHeld++
		}
	}
	t.Logf("slowloris, %d connections at 1 byte/s, observed for %v:", conns, headerTimeout+margin)
	t.Logf("  Go default server: %d/%d still open", plainHeld, conns)
	t.Logf("  NewServer (ReadHeaderTimeout %v): %d/%d still open, cut after %v..%v, %d refused by caps",
		headerTimeout, held, conns, minCut.Round(time.Millisecond), maxCut.Round(time.Millisecond), s.RefusedConns())
	t.Logf("  legitimate requests during the attack: %d ok, %d failed", ok.Load(), failed.Load())
	// The lower bound only catches a cut for another reason (the client's
	// start time comes before the server's timer starts, so a cut is
	// never measured short).
	if held != 0 || maxCut > headerTimeout+margin || minCut < headerTimeout/2 {
		t.Errorf("NewServer: %d held, cut after %v..%v; want all cut between %v and %v", held, minCut, maxCut, headerTimeout, headerTimeout+margin)
	}
	if plainHeld < conns*9/10 {
		t.Errorf("the default server was expected to hold the connections (%d/%d)", plainHeld, conns)
	}
	if failed.Load() != 0 || ok.Load() < 10 {
		t.Errorf("legitimate traffic: %d ok, %d failed", ok.Load(), failed.Load())
	}
}

// rawRequest writes req on a new connection from src and returns the
// response status line and the time it took.
func readStatus(c net.Conn, timeout time.Duration) (string, error) {
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func TestSlowPOSTCutByMinimumRate(t *testing.T) {
	// Not parallel: it measures cut-off times, which other attack tests'
	// connection floods on the same loopback would distort.
	const conns, window = 100, time.Second
	mux := http.NewServeMux()
	mux.Handle("POST /upload", httperr.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			return err
		}
		_, _ = fmt.Fprintf(w, "got %d", n)
		return nil
	}))
	mux.Handle("GET /", okHandler())
	_, addr, _ := startServer(t, mux, timeouts.ServerOptions{MinBodyRate: 1024, BodyRateWindow: window})

	stopLegit := make(chan struct{})
	ok, failed, legitDone := legitClient("http://"+addr+"/", 100*time.Millisecond, stopLegit)

	type outcome struct {
		status string
		after  time.Duration
	}
	out := make([]outcome, conns)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 5 * time.Millisecond) // ramp up, as in slowloris
			c, err := dialFrom(sources("127.0.2", 4)[i%4], addr)
			if err != nil {
				t.Errorf("dial: %v", err)
				return
			}
			defer c.Close()
			start := time.Now()
			_, _ = io.WriteString(c, "POST /upload HTTP/1.1\r\nHost: victim\r\nContent-Length: 100000\r\n\r\n")
			statusc := make(chan string, 1)
			go func() { s, _ := readStatus(c, window+3*time.Second); statusc <- s }()
			for j := 0; j < 10; j++ { // one byte a second, bounded
				select {
				case s := <-statusc:
					out[i] = outcome{s, time.Since(start)}
					return
				case <-time.After(time.Second):
					_, _ = c.Write([]byte{'x'})
				}
			}
			out[i] = outcome{<-statusc, time.Since(start)}
		}()
	}
	// A legitimate upload of 256 KiB during the attack.
	body := strings.NewReader(strings.Repeat("y", 256<<10))
	resp, err := http.Post("http://"+addr+"/upload", "application/octet-stream", body)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	wg.Wait()
	close(stopLegit)
	<-legitDone
	http.DefaultClient.CloseIdleConnections()

	if resp.StatusCode != 200 || string(got) != fmt.Sprintf("got %d", 256<<10) {
		t.Errorf("legitimate upload: %d %q", resp.StatusCode, got)
	}
	var worst time.Duration
	for i, o := range out {
		if !strings.HasPrefix(o.status, "HTTP/1.1 408") {
			t.Fatalf("slow POST %d got %q after %v, want 408", i, o.status, o.after)
		}
		worst = max(worst, o.after)
	}
	if worst > window+2*time.Second {
		t.Errorf("slowest cut after %v, want within %v", worst, window+2*time.Second)
	}
	if failed.Load() != 0 {
		t.Errorf("legitimate requests failed: %d (ok %d)", failed.Load(), ok.Load())
	}
	t.Logf("slow POST: %d connections at 1 byte/s all answered 408 within %v; legitimate upload ok, %d GETs ok",
		conns, worst.Round(time.Millisecond), ok.Load())
}

func TestIdleConnectionsClosed(t *testing.T) {
	// Not parallel: it measures cut-off times, which other attack tests'
	// connection floods on the same loopback would distort.
	const conns, idle = 50, time.Second
	_, addr, _ := startServer(t, okHandler(), timeouts.ServerOptions{IdleTimeout: idle})
	var wg sync.WaitGroup
	after := make([]time.Duration, conns)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dialFrom("127.0.3.2", addr)
			if err != nil {
				t.Errorf("dial: %v", err)
				return
			}
			defer c.Close()
			_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Errorf("response: %v", err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			start := time.Now()
			_ = c.SetReadDeadline(time.Now().Add(idle + 3*time.Second))
			if _, err := br.ReadByte(); err == nil || isNetTimeout(err) {
				after[i] = -1 // still open
				return
			}
			after[i] = time.Since(start)
		}()
	}
	wg.Wait()
	for i, d := range after {
		if d < 0 || d > idle+2*time.Second || d < idle/2 { // see the slowloris test on the lower bound
			t.Fatalf("idle connection %d closed after %v, want about %v", i, d, idle)
		}
	}
}

func TestConnectionCapsRefuseExcess(t *testing.T) {
	// Not parallel: it measures cut-off times, which other attack tests'
	// connection floods on the same loopback would distort.
	s, addr, _ := startServer(t, okHandler(), timeouts.ServerOptions{MaxConns: 30, MaxConnsPerClient: 10, ReadHeaderTimeout: time.Minute})

	// open dials n idle connections from src and reports which the server
	// kept and which it reset at once.
	open := func(src string, n int) (kept []net.Conn, refused int) {
		openBefore, refusedBefore := s.OpenConns(), s.RefusedConns()
		var conns []net.Conn
		for range n {
			c, err := dialFrom(src, addr)
			if err != nil { // reset before connect returned
				refused++
				continue
			}
			// One byte of a request line: the connection is then surely
			// established on the server's side too (an idle handshake can
			// sit in the kernel when loopback is flooded).
			_, _ = c.Write([]byte("G"))
			conns = append(conns, c)
		}
		// Wait (bounded) until the server has accepted or refused them all,
		// so that a slow accept loop is not mistaken for an admission.
		for range 250 {
			if s.OpenConns()-openBefore+int(s.RefusedConns()-refusedBefore) >= n {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		for _, c := range conns {
			// The server has decided by now: a reset is already here.
			_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if _, err := c.Read(make([]byte, 1)); isNetTimeout(err) {
				kept = append(kept, c)
			} else {
				refused++
				_ = c.Close()
			}
		}
		return kept, refused
	}
	get := func() error {
		tr := &http.Transport{DisableKeepAlives: true,
			DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}}).DialContext}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 2 * time.Second}).Get("http://" + addr + "/")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}

	kept, refused := open("127.0.4.2", 15)
	if len(kept) != 10 || refused != 5 {
		t.Fatalf("one client: %d kept, %d refused; want 10 and 5", len(kept), refused)
	}
	if err := get(); err != nil {
		t.Fatalf("legitimate client refused while one client is at its cap: %v", err)
	}
	k2, _ := open("127.0.4.3", 10)
	k3, _ := open("127.0.4.4", 10)
	kept = append(append(kept, k2...), k3...)
	if len(kept) != 30 || s.OpenConns() != 30 {
		t.Fatalf("kept %d, server has %d open; want 30", len(kept), s.OpenConns())
	}
	if err := get(); err == nil {
		t.Fatal("a connection over the total cap was served")
	}
	_ = kept[0].Close()
	var err error
	for range 20 { // the freed slot is seen once the server reads the close
		if err = get(); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("legitimate client not served after a slot freed: %v", err)
	}
	if s.RefusedConns() < 6 {
		t.Fatalf("RefusedConns = %d", s.RefusedConns())
	}
	for _, c := range kept[1:] {
		_ = c.Close()
	}
}

func TestOversizedHeaderRefused(t *testing.T) {
	t.Parallel()
	_, addr, _ := startServer(t, okHandler(), timeouts.ServerOptions{})
	cases := []struct {
		name   string
		header int
		want   string
	}{
		{"1 MiB header", 1 << 20, "HTTP/1.1 431"},
		{"8 KiB header", 8 << 10, "HTTP/1.1 200"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := dialFrom("127.0.5.2", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			go func() {
				_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("b", tc.header)+"\r\n\r\n")
			}()
			status, err := readStatus(c, 5*time.Second)
			if !strings.HasPrefix(status, tc.want) {
				t.Fatalf("got %q (%v), want %s", status, err, tc.want)
			}
		})
	}
}

func TestHangingUpstreamGets504(t *testing.T) {
	t.Parallel()
	// The upstream accepts and never answers.
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held sync.WaitGroup
	held.Add(1)
	var upConns []net.Conn
	var mu sync.Mutex
	go func() {
		defer held.Done()
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			upConns = append(upConns, c)
			mu.Unlock()
		}
	}()
	defer func() {
		_ = up.Close()
		held.Wait()
		mu.Lock()
		for _, c := range upConns {
			_ = c.Close()
		}
		mu.Unlock()
	}()
	upURL := "http://" + up.Addr().String() + "/"
	const limit = 300 * time.Millisecond

	fast, err := timeouts.NewClient(timeouts.ClientOptions{ResponseHeaderTimeout: limit})
	if err != nil {
		t.Fatal(err)
	}
	defer fast.CloseIdleConnections()
	slow, err := timeouts.NewClient(timeouts.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.CloseIdleConnections()

	fetch := func(ctx context.Context, c *http.Client) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, upURL, nil)
		if err != nil {
			return 0, err
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		return resp.StatusCode, nil
	}
	mux := http.NewServeMux()
	mux.Handle("/client", httperr.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		_, err := fetch(r.Context(), fast)
		return err
	}))
	mux.Handle("/waitfor", httperr.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		_, err := timeouts.WaitFor(r.Context(), limit, func(ctx context.Context) (int, error) {
			return fetch(ctx, slow)
		})
		return err
	}))
	_, addr, _ := startServer(t, timeouts.Deadline(timeouts.DeadlineOptions{Timeout: 5 * time.Second})(mux), timeouts.ServerOptions{})
	for _, path := range []string{"/client", "/waitfor"} {
		t.Run(path, func(t *testing.T) {
			start := time.Now()
			resp, err := http.Get("http://" + addr + path)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			took := time.Since(start)
			if resp.StatusCode != http.StatusGatewayTimeout || took < limit || took > limit+1500*time.Millisecond {
				t.Fatalf("got %d after %v, want 504 after about %v", resp.StatusCode, took, limit)
			}
		})
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestDeadlineOnRealServer(t *testing.T) {
	t.Parallel()
	const deadline = 300 * time.Millisecond
	lateErr := make(chan error, 1)
	mux := http.NewServeMux()
	mux.Handle("/stuck", timeouts.Deadline(timeouts.DeadlineOptions{Timeout: deadline})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Internal", "should not leak")
			time.Sleep(1500 * time.Millisecond) // ignores its context
			_, err := w.Write([]byte("late"))
			lateErr <- err
		})))
	mux.Handle("/stream", timeouts.Deadline(timeouts.DeadlineOptions{Timeout: deadline, Stream: true})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for i := range 5 {
				_, _ = fmt.Fprintf(w, "event %d\n", i)
				_ = http.NewResponseController(w).Flush()
				time.Sleep(150 * time.Millisecond)
			}
		})))
	mux.Handle("/fast", timeouts.Deadline(timeouts.DeadlineOptions{Timeout: deadline})(okHandler()))
	_, addr, _ := startServer(t, mux, timeouts.ServerOptions{})
	defer http.DefaultClient.CloseIdleConnections()

	start := time.Now()
	resp, err := http.Get("http://" + addr + "/stuck")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	took := time.Since(start)
	if resp.StatusCode != 503 || took < deadline || took > deadline+time.Second ||
		resp.Header.Get("X-Internal") != "" || strings.Contains(string(body), "late") || !resp.Close {
		t.Fatalf("stuck: %d after %v, headers %v, body %q", resp.StatusCode, took, resp.Header, body)
	}
	if err := <-lateErr; !errors.Is(err, timeouts.ErrTimeout) {
		t.Fatalf("late write returned %v, want ErrTimeout", err)
	}

	resp, err = http.Get("http://" + addr + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	body, err = io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || strings.Count(string(body), "event") != 5 {
		t.Fatalf("stream: %d %q %v", resp.StatusCode, body, err)
	}
	resp, err = http.Get("http://" + addr + "/fast")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("fast: %v %v", resp, err)
	}
	_ = resp.Body.Close()
}

// Upgrade headers are chosen by the client: sent to a route that does not
// hijack, they must not lift its Deadline (before the fix they exempted
// the request, so a stuck or slow handler ran with no deadline at all),
// while a real WebSocket under a short Deadline lives past it.
func TestDeadlineUpgradeHeadersCannotLiftIt(t *testing.T) {
	t.Parallel()
	const deadline = 300 * time.Millisecond
	ctxDeadline := make(chan bool, 1)
	mux := http.NewServeMux()
	mux.Handle("/report", timeouts.Deadline(timeouts.DeadlineOptions{Timeout: deadline})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select { // an expensive, context-aware operation
			case <-r.Context().Done():
				httperr.Write(w, r, r.Context().Err())
			case <-time.After(3 * time.Second):
				_, _ = io.WriteString(w, "report")
			}
		})))
	mux.Handle("/ws", timeouts.Deadline(timeouts.DeadlineOptions{Timeout: deadline})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer c.CloseNow()
			_, has := r.Context().Deadline()
			ctxDeadline <- has
			for {
				typ, msg, err := c.Read(r.Context())
				if err != nil {
					return
				}
				if err := c.Write(r.Context(), typ, msg); err != nil {
					return
				}
			}
		})))
	_, addr, _ := startServer(t, mux, timeouts.ServerOptions{})
	defer http.DefaultClient.CloseIdleConnections()

	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/report", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if took := time.Since(start); resp.StatusCode != 503 || took > deadline+time.Second || strings.Contains(string(body), "report") {
		t.Fatalf("spoofed upgrade: %d %q after %v; want 503 at the %v deadline", resp.StatusCode, body, took, deadline)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if <-ctxDeadline {
		t.Error("the hijacked handler's context still reports the route deadline")
	}
	time.Sleep(2 * deadline)
	if err := c.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := c.Read(ctx); err != nil || string(msg) != "hi" {
		t.Fatalf("WebSocket after the deadline: %q %v", msg, err)
	}
	_ = c.Close(websocket.StatusNormalClosure, "")
}

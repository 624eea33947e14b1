package wsguard_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stormcellar/stormcellar/httperr"
	"github.com/stormcellar/stormcellar/timeouts"
	"github.com/stormcellar/stormcellar/wsguard"
	"github.com/stormcellar/stormcellar/wsorigin"
)

func TestNewRefusesBadOptions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		opts wsguard.Options
		want string
	}{
		{"negative MaxConns", wsguard.Options{MaxConns: -1}, "MaxConns must not be negative"},
		{"negative per client", wsguard.Options{MaxConnsPerClient: -1}, "MaxConnsPerClient"},
		{"negative message size", wsguard.Options{MaxMessageBytes: -1}, "MaxMessageBytes"},
		{"negative rate", wsguard.Options{MessageRate: -1}, "MessageRate"},
		{"infinite rate", wsguard.Options{MessageRate: math.Inf(1)}, "MessageRate must be finite"},
		{"NaN rate", wsguard.Options{MessageRate: math.NaN()}, "MessageRate must be finite"},
		{"idle shorter than ping", wsguard.Options{PingInterval: time.Minute, IdleTimeout: 30 * time.Second}, "longer than PingInterval"},
		{"idle equal to default ping", wsguard.Options{IdleTimeout: wsguard.DefaultPingInterval}, "longer than PingInterval"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if _, err := wsguard.New(c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New = %v, want an error containing %q", err, c.want)
			}
		})
	}
	if _, err := wsguard.New(wsguard.Options{}); err != nil {
		t.Fatalf("zero Options: %v", err)
	}
}

// TestHandshakeRefusalsThroughHTTPErr sends malformed and cross-origin
// handshakes with a plain HTTP client: each is answered before any
// upgrade, by httperr, with the right status, kind and headers.
func TestHandshakeRefusalsThroughHTTPErr(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, wsguard.Options{}, echo)
	valid := func() http.Header {
		return http.Header{"Upgrade": {"websocket"}, "Connection": {"keep-alive, Upgrade"},
			"Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="},
			"Origin": {ts.URL}, "Accept": {"application/json"}}
	}
	cases := []struct {
		name   string
		method string
		edit   func(h http.Header)
		status int
		kind   httperr.Kind
		header string // "Name: value" expected on the response
	}{
		{"plain GET", "GET", func(h http.Header) { h.Del("Upgrade"); h.Del("Connection") }, 426, httperr.KindBadRequest, "Upgrade: websocket"},
		{"POST handshake", "POST", nil, 405, httperr.KindMethod, "Allow: GET"},
		{"old version", "GET", func(h http.Header) { h.Set("Sec-Websocket-Version", "8") }, 400, httperr.KindBadRequest, "Sec-Websocket-Version: 13"},
		{"missing key", "GET", func(h http.Header) { h.Del("Sec-Websocket-Key") }, 400, httperr.KindBadRequest, ""},
		{"two keys", "GET", func(h http.Header) { h.Add("Sec-Websocket-Key", "dGhlIHNhbXBsZSBub25jZQ==") }, 400, httperr.KindBadRequest, ""},
		{"short key", "GET", func(h http.Header) { h.Set("Sec-Websocket-Key", "c2hvcnQ=") }, 400, httperr.KindBadRequest, ""},
		{"cross origin", "GET", func(h http.Header) { h.Set("Origin", "https://evil.example") }, 403, httperr.KindOrigin, ""},
		{"null origin", "GET", func(h http.Header) { h.Set("Origin", "null") }, 403, httperr.KindOrigin, ""},
		{"http twin suffix attack", "GET", func(h http.Header) { h.Set("Origin", ts.URL+".evil.com") }, 403, httperr.KindOrigin, ""},
	}
	for _, c := range cases {
		// Sequential: the kinds channel is shared.
		h := valid()
		if c.edit != nil {
			c.edit(h)
		}
		req, _ := http.NewRequest(c.method, ts.URL, nil)
		req.Header = h
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Fatalf("%s: status %d, want %d (%s)", c.name, resp.StatusCode, c.status, body)
		}
		if k := <-ts.kinds; k != c.kind {
			t.Errorf("%s: kind %q, want %q", c.name, k, c.kind)
		}
		if !strings.Contains(string(body), `"request_id"`) {
			t.Errorf("%s: body %q is not httperr's", c.name, body)
		}
		if c.header != "" {
			name, value, _ := strings.Cut(c.header, ": ")
			if got := resp.Header.Get(name); got != value {
				t.Errorf("%s: %s = %q, want %q", c.name, name, got, value)
			}
		}
	}
	if n := ts.g.Len(); n != 0 {
		t.Fatalf("%d connections after refusals", n)
	}
	// A legitimate client is unaffected.
	c := ts.mustDial(t, "198.51.100.1")
	roundTrip(t, c, "still fine")
	c.Close(websocket.StatusNormalClosure, "")
}

// TestConnectionFloodRefusedBeforeUpgrade: one client opens far more
// connections than its cap, then several clients fill the global cap.
// Every excess handshake is refused before the upgrade (429 or 503 with
// Retry-After), the guard never holds more than its caps, and a
// legitimate client still connects and talks.
func TestConnectionFloodRefusedBeforeUpgrade(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, wsguard.Options{MaxConns: 6, MaxConnsPerClient: 3}, echo)
	var conns []*websocket.Conn
	defer func() {
		for _, c := range conns {
			c.CloseNow()
		}
	}()
	const attacker = "203.0.113.66"
	var refused429 int
	for i := range 20 {
		c, resp, err := ts.dial(t, attacker)
		if err == nil {
			conns = append(conns, c)
			continue
		}
		if resp == nil || resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("attempt %d: %v, %+v; want 429 with Retry-After", i, err, resp)
		}
		refused429++
	}
	if len(conns) != 3 || refused429 != 17 {
		t.Fatalf("attacker got %d connections and %d refusals, want 3 and 17", len(conns), refused429)
	}
	if n := ts.g.Len(); n != 3 {
		t.Fatalf("guard holds %d connections, want 3", n)
	}
	// The legitimate client connects and is served while the flood holds
	// its three.
	legit := ts.mustDial(t, "198.51.100.7")
	roundTrip(t, legit, "hello")
	conns = append(conns, legit)

	// Fill the global cap from other clients: 6 in total, then 503.
	conns = append(conns, ts.mustDial(t, "198.51.100.8"), ts.mustDial(t, "198.51.100.9"))
	for i := range 5 {
		_, resp, err := ts.dial(t, fmt.Sprintf("192.0.2.%d", i+1))
		if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("over the global cap: %v %+v; want 503 with Retry-After", err, resp)
		}
	}
	if n := ts.g.Len(); n != 6 {
		t.Fatalf("guard holds %d connections, want 6", n)
	}
	// Freeing one slot lets a new client in.
	conns[0].Close(websocket.StatusNormalClosure, "")
	deadline := time.Now().Add(5 * time.Second)
	for ts.g.Len() != 5 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	late := ts.mustDial(t, "198.51.100.10")
	roundTrip(t, late, "room again")
	conns = append(conns, late)
	roundTrip(t, legit, "still served")
}

// TestOversizedMessageGets1009 sends a 1 MiB message: the connection is
// closed with 1009 and the handler sees ErrMessageTooBig; another client
// keeps working.
func TestOversizedMessageGets1009(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, wsguard.Options{}, echo)
	other := ts.mustDial(t, "198.51.100.1")
	defer other.CloseNow()
	c := ts.mustDial(t, "203.0.113.1")
	defer c.CloseNow()
	writeErr := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		writeErr <- c.Write(ctx, websocket.MessageBinary, make([]byte, 1<<20))
	}()
	code, reason, took := readUntilClosed(c, 10*time.Second)
	<-writeErr // it may or may not have finished; the server drains it
	if code != websocket.StatusMessageTooBig {
		t.Fatalf("close %d %q after %v, want 1009", code, reason, took)
	}
	if err := <-ts.errs; !errors.Is(err, websocket.ErrMessageTooBig) {
		t.Fatalf("handler error %v, want ErrMessageTooBig", err)
	}
	roundTrip(t, other, "unaffected")
	other.Close(websocket.StatusNormalClosure, "")
}

// TestMessageFloodGets1008: a client sends messages as fast as it can; it
// is closed with 1008 while another client keeps receiving its echoes.
func TestMessageFloodGets1008(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, wsguard.Options{MessageRate: 50, MessageBurst: 20}, echo)
	legit := ts.mustDial(t, "198.51.100.1")
	defer legit.CloseNow()
	flood := ts.mustDial(t, "203.0.113.1")
	defer flood.CloseNow()

	var wg sync.WaitGroup
	var sent int
	wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for sent = 0; sent < 5000; sent++ {
			if flood.Write(ctx, websocket.MessageText, []byte("spam")) != nil {
				return
			}
		}
	})
	code, reason, took := readUntilClosed(flood, 10*time.Second)
	wg.Wait()
	if code != websocket.StatusPolicyViolation || reason != "message rate exceeded" {
		t.Fatalf("flooder got close %d %q, want 1008", code, reason)
	}
	if took > 5*time.Second || sent >= 5000 {
		t.Fatalf("flooder cut after %v and %d messages", took, sent)
	}
	if err := <-ts.errs; !errors.Is(err, wsguard.ErrRateLimited) {
		t.Fatalf("handler error %v, want ErrRateLimited", err)
	}
	for i := range 10 {
		roundTrip(t, legit, fmt.Sprintf("legit %d", i))
	}
	legit.Close(websocket.StatusNormalClosure, "")
}

// TestPingFloodGets1008: control frames count against the rate too.
func TestPingFloodGets1008(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, wsguard.Options{MessageRate: 20, MessageBurst: 10}, echo)
	c := ts.mustDial(t, "203.0.113.1")
	defer c.CloseNow()
	rctx := c.CloseRead(context.Background())
	start := time.Now()
	for i := 0; i < 1000 && rctx.Err() == nil; i++ {
		ctx, cancel := context.WithTimeout(rctx, 50*time.Millisecond)
		c.Ping(ctx)
		cancel()
	}
	<-rctx.Done()
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("ping flood cut after %v", took)
	}
	if err := <-ts.errs; !errors.Is(err, wsguard.ErrRateLimited) {
		t.Fatalf("handler error %v, want ErrRateLimited", err)
	}
}

// TestPongFloodGets1008: unsolicited pongs (which RFC 6455 allows and no
// browser sends in bulk) count against the rate like pings; a raw client
// streaming them is closed with 1008 instead of keeping the server busy.
func TestPongFloodGets1008(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, wsguard.Options{MessageRate: 20, MessageBurst: 10, WriteTimeout: time.Second}, echo)
	conn, br := rawHandshake(t, ts, "203.0.113.1")
	defer conn.Close()
	batch := bytes.Repeat([]byte{0x8A, 0x80, 1, 2, 3, 4}, 1000) // masked empty pongs
	go func() {
		conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		for range 50 {
			if _, err := conn.Write(batch); err != nil {
				return
			}
		}
	}()
	frames, took := readRawFrames(conn, br, 5*time.Second)
	if code, reason := closeCode(frames); code != websocket.StatusPolicyViolation || reason != "message rate exceeded" {
		t.Fatalf("pong flooder got close %d %q after %v, want 1008", code, reason, took)
	}
	if err := <-ts.errs; !errors.Is(err, wsguard.ErrRateLimited) {
		t.Fatalf("handler error %v, want ErrRateLimited", err)
	}
}

// TestIdlePeerCutByHeartbeat: a raw client completes the handshake and
// then never answers a ping. It is pinged, closed with 1001 and cut within
// the idle timeout (generous bound), while a normal client that reads
// stays connected for several idle periods.
func TestIdlePeerCutByHeartbeat(t *testing.T) {
	t.Parallel()
	// Short enough for a unit test, long enough that a loaded machine
	// answers pings in time: the live client must never be cut.
	const idle = 1500 * time.Millisecond
	ts := newTestServer(t, wsguard.Options{PingInterval: 200 * time.Millisecond, IdleTimeout: idle,
		WriteTimeout: time.Second}, echo)
	live := ts.mustDial(t, "198.51.100.1")
	defer live.CloseNow()
	pongs := live.CloseRead(context.Background()) // reads, so it answers pings

	conn, br := rawHandshake(t, ts, "203.0.113.9")
	defer conn.Close()
	frames, took := readRawFrames(conn, br, 10*time.Second)
	code, reason := closeCode(frames)
	if code != websocket.StatusGoingAway || reason != "idle timeout" {
		t.Fatalf("unresponsive peer got close %d %q (frames %d), want 1001 idle timeout", code, reason, len(frames))
	}
	if n := countOpcode(frames, 0x9); n < 1 {
		t.Fatalf("unresponsive peer was pinged %d times before the cut", n)
	}
	if took < idle-100*time.Millisecond || took > idle+5*time.Second {
		t.Fatalf("cut after %v, want about %v", took, idle)
	}
	if err := <-ts.errs; !errors.Is(err, wsguard.ErrIdle) {
		t.Fatalf("handler error %v, want ErrIdle", err)
	}
	// The live client has outlived several idle periods by now.
	if pongs.Err() != nil {
		t.Fatal("the responsive client was closed")
	}
	if n := ts.g.Len(); n != 1 {
		t.Fatalf("guard holds %d connections, want the live one", n)
	}
	live.Close(websocket.StatusNormalClosure, "")
}

// TestMalformedJSONClosed sends bad messages to a ReadJSON handler: each
// gets the designed close code, with a reason that never quotes the input.
func TestMalformedJSONClosed(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, wsguard.Options{}, func(c *wsguard.Conn) error {
		for {
			var m chatMessage
			if err := c.ReadJSON(context.Background(), &m); err != nil {
				return err
			}
			if err := c.WriteJSON(context.Background(), m); err != nil {
				return err
			}
		}
	})
	cases := []struct {
		name string
		typ  websocket.MessageType
		msg  string
		code websocket.StatusCode
		err  error
	}{
		{"binary", websocket.MessageBinary, `{"text":"hi"}`, websocket.StatusUnsupportedData, wsguard.ErrBadMessage},
		{"not JSON", websocket.MessageText, `<script>alert(1)</script>`, websocket.StatusInvalidFramePayloadData, wsguard.ErrBadMessage},
		{"unknown field", websocket.MessageText, `{"text":"hi","admin":true}`, websocket.StatusInvalidFramePayloadData, wsguard.ErrBadMessage},
		{"trailing data", websocket.MessageText, `{"text":"hi"} {"text":"again"}`, websocket.StatusInvalidFramePayloadData, wsguard.ErrBadMessage},
		{"trailing garbage", websocket.MessageText, `{"text":"hi"}xx`, websocket.StatusInvalidFramePayloadData, wsguard.ErrBadMessage},
		{"wrong type", websocket.MessageText, `{"text":42}`, websocket.StatusInvalidFramePayloadData, wsguard.ErrBadMessage},
		{"null", websocket.MessageText, `null`, websocket.StatusInvalidFramePayloadData, wsguard.ErrBadMessage},
		{"empty", websocket.MessageText, ``, websocket.StatusInvalidFramePayloadData, wsguard.ErrBadMessage},
		{"invalid UTF-8", websocket.MessageText, "{\"text\":\"\xff\"}", websocket.StatusInvalidFramePayloadData, wsguard.ErrBadMessage},
		{"Validate refuses", websocket.MessageText, `{"text":""}`, websocket.StatusPolicyViolation, wsguard.ErrInvalid},
	}
	for _, c := range cases {
		// Sequential: ts.errs is shared.
		conn := ts.mustDial(t, "203.0.113.5")
		// One good message first: the connection works.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := conn.Write(ctx, websocket.MessageText, []byte(`{"text":"<b>hi</b>"}`)); err != nil {
			t.Fatal(err)
		}
		_, got, err := conn.Read(ctx)
		if err != nil || string(got) != `{"text":"\u003cb\u003ehi\u003c/b\u003e"}` {
			t.Fatalf("%s: good message echoed as %q, %v", c.name, got, err)
		}
		if err := conn.Write(ctx, c.typ, []byte(c.msg)); err != nil {
			t.Fatal(err)
		}
		cancel()
		code, reason, _ := readUntilClosed(conn, 10*time.Second)
		if code != c.code {
			t.Errorf("%s: close %d %q, want %d", c.name, code, reason, c.code)
		}
		if strings.Contains(reason, "hi") || strings.Contains(reason, "script") || strings.Contains(reason, "admin") {
			t.Errorf("%s: close reason %q quotes the message", c.name, reason)
		}
		if err := <-ts.errs; !errors.Is(err, c.err) {
			t.Errorf("%s: handler error %v, want %v", c.name, err, c.err)
		}
		conn.CloseNow()
	}
}

type chatMessage struct {
	Text string `json:"text"`
}

func (m *chatMessage) Validate() error {
	if m.Text == "" || len(m.Text) > 200 {
		return errors.New("text must be 1 to 200 bytes")
	}
	return nil
}

// TestShutdownSends1001: every live connection, readers and a raw peer
// that never answers, is closed on Shutdown; readers see 1001, new
// handshakes get 503, and Shutdown returns within its bound.
func TestShutdownSends1001(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, wsguard.Options{WriteTimeout: 300 * time.Millisecond}, echo)
	var clients []*websocket.Conn
	for i := range 5 {
		clients = append(clients, ts.mustDial(t, fmt.Sprintf("198.51.100.%d", i+1)))
	}
	raw, br := rawHandshake(t, ts, "203.0.113.1")
	defer raw.Close()
	type result struct {
		code   websocket.StatusCode
		reason string
	}
	results := make(chan result, len(clients))
	for _, c := range clients {
		go func() {
			code, reason, _ := readUntilClosed(c, 10*time.Second)
			results <- result{code, reason}
		}()
	}
	rawFrames := make(chan []rawFrame, 1)
	go func() { f, _ := readRawFrames(raw, br, 10*time.Second); rawFrames <- f }()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := ts.g.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("Shutdown took %v", took)
	}
	for range clients {
		if r := <-results; r.code != websocket.StatusGoingAway || r.reason != "server shutting down" {
			t.Errorf("client got %d %q, want 1001", r.code, r.reason)
		}
	}
	if code, _ := closeCode(<-rawFrames); code != websocket.StatusGoingAway {
		t.Errorf("raw peer got close %d, want 1001", code)
	}
	if n := ts.g.Len(); n != 0 {
		t.Fatalf("%d connections after Shutdown", n)
	}
	_, resp, err := ts.dial(t, "198.51.100.99")
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("handshake after Shutdown: %v %+v, want 503", err, resp)
	}
	// A handshake whose client already has its 101 may still be
	// registering when Shutdown starts: Accept then closes it with 1001
	// itself and returns ErrShuttingDown, so not every handler reaches
	// its read loop. Those that did must report the shutdown.
	for {
		select {
		case err := <-ts.errs:
			if !errors.Is(err, wsguard.ErrShuttingDown) {
				t.Errorf("handler error %v, want ErrShuttingDown", err)
			}
			continue
		default:
		}
		break
	}
}

// TestRegisterOnShutdown wires the guard into http.Server.Shutdown, which
// on its own ignores hijacked connections.
func TestRegisterOnShutdown(t *testing.T) {
	t.Parallel()
	g, err := wsguard.New(wsguard.Options{Logger: discard, WriteTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var handlers sync.WaitGroup
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handlers.Add(1)
		defer handlers.Done()
		c, err := g.Accept(w, r)
		if err != nil {
			return
		}
		defer c.CloseNow()
		echo(c)
	}), ReadHeaderTimeout: 5 * time.Second}
	srv.RegisterOnShutdown(func() { _ = g.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	clients, codes := dialAndWatch(t, ln.Addr().String(), 3)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for range clients {
		if code := <-codes; code != websocket.StatusGoingAway {
			t.Errorf("client got %d, want 1001", code)
		}
	}
	handlers.Wait()
	if err := <-served; err != http.ErrServerClosed {
		t.Fatal(err)
	}
}

// dialAndWatch opens n WebSockets to addr (same origin) and reports, on
// codes, the close status each one ends with.
func dialAndWatch(t *testing.T, addr string, n int) (clients []*websocket.Conn, codes chan websocket.StatusCode) {
	t.Helper()
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, _, err := websocket.Dial(ctx, "ws://"+addr, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"http://" + addr}}})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	codes = make(chan websocket.StatusCode, n)
	for _, c := range clients {
		go func() { code, _, _ := readUntilClosed(c, 10*time.Second); codes <- code }()
	}
	return clients, codes
}

// TestTrackShutdownerWithNewServer: on a timeouts.Server, whose shutdown
// closes the hijacked connections left once it is done, the guard drains
// through the server's Registry: every client gets its 1001 before that,
// and Serve reports a clean shutdown.
func TestTrackShutdownerWithNewServer(t *testing.T) {
	t.Parallel()
	g, err := wsguard.New(wsguard.Options{Logger: discard, WriteTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := timeouts.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := g.Accept(w, r)
		if err != nil {
			return
		}
		defer c.CloseNow()
		echo(c)
	}), timeouts.ServerOptions{Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Registry().TrackShutdowner(g); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveCtx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(serveCtx, ln) }()
	clients, codes := dialAndWatch(t, ln.Addr().String(), 3)
	stop()
	for range clients {
		if code := <-codes; code != websocket.StatusGoingAway {
			t.Errorf("client got %d, want 1001", code)
		}
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// TestWriteTimeoutCutsSlowReader: a client that never reads cannot hold a
// writer: Write returns ErrWriteTimeout after about WriteTimeout.
func TestWriteTimeoutCutsSlowReader(t *testing.T) {
	t.Parallel()
	done := make(chan time.Duration, 1)
	ts := newTestServer(t, wsguard.Options{WriteTimeout: 300 * time.Millisecond}, func(c *wsguard.Conn) error {
		msg := make([]byte, 256<<10)
		start := time.Now()
		for range 1000 { // at most 256 MB, far beyond any socket buffer
			if err := c.Write(context.Background(), websocket.MessageBinary, msg); err != nil {
				done <- time.Since(start)
				return err
			}
		}
		done <- -1
		return nil
	})
	c := ts.mustDial(t, "203.0.113.1") // never reads
	defer c.CloseNow()
	took := <-done
	if took < 0 || took > 5*time.Second {
		t.Fatalf("writer released after %v, want about 300ms", took)
	}
	if err := <-ts.errs; !errors.Is(err, wsguard.ErrWriteTimeout) {
		t.Fatalf("handler error %v, want ErrWriteTimeout", err)
	}
}

// TestGuardUsesOriginPolicy: a configured allowlist applies to Accept.
func TestGuardUsesOriginPolicy(t *testing.T) {
	t.Parallel()
	p, err := wsorigin.New(wsorigin.Options{Allowed: []string{"https://app.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, wsguard.Options{Origin: p}, echo)
	for origin, ok := range map[string]bool{
		"https://app.example.com": true, "http://app.example.com": false,
		"https://app.example.com.evil.com": false, ts.URL: true,
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, resp, err := websocket.Dial(ctx, ts.wsURL(), &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {origin}}})
		cancel()
		if ok != (err == nil) {
			t.Fatalf("Origin %q: %v, want allowed=%v", origin, err, ok)
		}
		if !ok && resp.StatusCode != http.StatusForbidden {
			t.Fatalf("Origin %q: status %d, want 403", origin, resp.StatusCode)
		}
		if c != nil {
			roundTrip(t, c, "x")
			c.Close(websocket.StatusNormalClosure, "")
		}
	}
}

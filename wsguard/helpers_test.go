package wsguard_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	chimw "github.com/go-chi/chi/v5/middleware"
	"github.com/stormcellar/stormcellar/httperr"
	"github.com/stormcellar/stormcellar/wsguard"
)

var discard = slog.New(slog.DiscardHandler)

// testServer is a real loopback server running a guard. The loopback
// client is the trusted proxy: X-Forwarded-For names the client, through
// chi's resolver, exactly as behind a real proxy.
type testServer struct {
	*httptest.Server
	g        *wsguard.Guard
	kinds    chan httperr.Kind
	handlers sync.WaitGroup
	errs     chan error // what the handler's last Read/ReadJSON returned
}

func newTestServer(t *testing.T, opts wsguard.Options, handle func(c *wsguard.Conn) error) *testServer {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = discard
	}
	g, err := wsguard.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{g: g, kinds: make(chan httperr.Kind, 1024), errs: make(chan error, 1024)}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts.handlers.Add(1)
		defer ts.handlers.Done()
		c, err := g.Accept(w, r)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ts.errs <- handle(c)
	})
	ts.Server = httptest.NewServer(httperr.Install(httperr.Options{
		Logger:   discard,
		Observer: func(e httperr.Event) { ts.kinds <- e.Kind },
	})(chimw.ClientIPFromXFF("127.0.0.1/32")(h)))
	t.Cleanup(func() {
		if err := g.Close(); err != nil {
			t.Errorf("guard Close: %v", err)
		}
		ts.handlers.Wait()
		ts.Server.Close()
	})
	return ts
}

func (ts *testServer) wsURL() string { return "ws" + strings.TrimPrefix(ts.URL, "http") }

// dial connects as client ip (X-Forwarded-For) from the server's own
// origin.
func (ts *testServer) dial(t *testing.T, ip string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := http.Header{"Origin": {ts.URL}, "Accept": {"application/json"}}
	if ip != "" {
		h.Set("X-Forwarded-For", ip)
	}
	c, resp, err := websocket.Dial(ctx, ts.wsURL(), &websocket.DialOptions{HTTPHeader: h})
	if resp != nil && resp.Body != nil && err != nil {
		resp.Body.Close()
	}
	return c, resp, err
}

func (ts *testServer) mustDial(t *testing.T, ip string) *websocket.Conn {
	t.Helper()
	c, resp, err := ts.dial(t, ip)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial as %s: %v (status %d)", ip, err, status)
	}
	return c
}

// echo is a handler that echoes every message.
func echo(c *wsguard.Conn) error {
	for {
		typ, p, err := c.Read(context.Background())
		if err != nil {
			return err
		}
		if err := c.Write(context.Background(), typ, p); err != nil {
			return err
		}
	}
}

// roundTrip sends msg and expects it back.
func roundTrip(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("write %q: %v", msg, err)
	}
	_, got, err := c.Read(ctx)
	if err != nil || string(got) != msg {
		t.Fatalf("read = %q, %v; want %q", got, err, msg)
	}
}

// readUntilClosed reads until the connection fails and returns the close
// status the server sent (-1 if none) and how long it took.
func readUntilClosed(c *websocket.Conn, limit time.Duration) (websocket.StatusCode, string, time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	start := time.Now()
	for {
		_, _, err := c.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code, ce.Reason, time.Since(start)
			}
			return -1, err.Error(), time.Since(start)
		}
	}
}

// rawHandshake opens a TCP connection and performs the WebSocket
// handshake by hand, for clients that misbehave below coder/websocket.
func rawHandshake(t *testing.T, ts *testServer, ip string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(ts.URL, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	req := "GET / HTTP/1.1\r\nHost: " + strings.TrimPrefix(ts.URL, "http://") + "\r\n" +
		"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: " + ts.URL + "\r\n" +
		"X-Forwarded-For: " + ip + "\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("raw handshake: %v %v", resp, err)
	}
	conn.SetReadDeadline(time.Time{})
	return conn, br
}

// rawFrame is one server frame read by a raw client.
type rawFrame struct {
	opcode  byte
	payload []byte
}

// readRawFrames reads server frames until EOF or error, without ever
// answering: an unresponsive peer that still drains its socket.
func readRawFrames(conn net.Conn, br *bufio.Reader, limit time.Duration) ([]rawFrame, time.Duration) {
	start := time.Now()
	conn.SetReadDeadline(start.Add(limit))
	var frames []rawFrame
	for {
		var h [2]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return frames, time.Since(start)
		}
		n := int64(h[1] & 0x7f)
		switch n {
		case 126:
			var b [2]byte
			if _, err := io.ReadFull(br, b[:]); err != nil {
				return frames, time.Since(start)
			}
			n = int64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			if _, err := io.ReadFull(br, b[:]); err != nil {
				return frames, time.Since(start)
			}
			n = int64(binary.BigEndian.Uint64(b[:]))
		}
		p := make([]byte, min(n, 1<<20))
		if _, err := io.ReadFull(br, p); err != nil {
			return frames, time.Since(start)
		}
		frames = append(frames, rawFrame{opcode: h[0] & 0x0f, payload: p})
	}
}

func closeCode(frames []rawFrame) (websocket.StatusCode, string) {
	for _, f := range frames {
		if f.opcode == 0x8 && len(f.payload) >= 2 {
			return websocket.StatusCode(binary.BigEndian.Uint16(f.payload)), string(f.payload[2:])
		}
	}
	return -1, ""
}

func countOpcode(frames []rawFrame, op byte) int {
	n := 0
	for _, f := range frames {
		if f.opcode == op {
			n++
		}
	}
	return n
}

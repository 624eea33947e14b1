package wsguard_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/stormcellar/stormcellar/wsguard"
)

// pipeListener serves HTTP over net.Pipe, so that a whole server and its
// clients run inside a synctest bubble on fake time.
type pipeListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	server, client := net.Pipe()
	select {
	case l.ch <- server:
		return client, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// TestHeartbeatDefaults runs the default heartbeat (ping every 25 s, idle
// cut at 60 s) on fake time: a peer that never answers is closed at 60 s,
// not before; a peer that answers pings stays for an hour.
func TestHeartbeatDefaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, err := wsguard.New(wsguard.Options{Logger: discard})
		if err != nil {
			t.Fatal(err)
		}
		ln := newPipeListener()
		errs := make(chan error, 2)
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := g.Accept(w, r)
			if err != nil {
				return
			}
			defer c.CloseNow()
			errs <- echo(c)
		})}
		go srv.Serve(ln)
		tr := &http.Transport{DialContext: ln.dial}
		dial := func() *websocket.Conn {
			c, _, err := websocket.Dial(context.Background(), "ws://bubble/", &websocket.DialOptions{
				HTTPClient: &http.Client{Transport: tr}, HTTPHeader: http.Header{"Origin": {"http://bubble"}}})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		live := dial()
		liveCtx := live.CloseRead(context.Background()) // answers pings
		// The unresponsive peer: its TCP stack takes every byte (like a
		// socket buffer would), but it never answers a ping.
		dead, err := ln.dial(context.Background(), "", "")
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(dead, "GET / HTTP/1.1\r\nHost: bubble\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://bubble\r\n\r\n")
		br := bufio.NewReader(dead)
		if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 101 {
			t.Fatalf("handshake: %v %v", resp, err)
		}
		drained := make(chan struct{})
		go func() { io.Copy(io.Discard, br); close(drained) }()
		start := time.Now()

		time.Sleep(59 * time.Second)
		synctest.Wait()
		if n := g.Len(); n != 2 {
			t.Fatalf("at 59s: %d connections, want both", n)
		}
		if err := <-errs; !errors.Is(err, wsguard.ErrIdle) {
			t.Fatalf("dead peer: handler error %v, want ErrIdle", err)
		}
		if cut := time.Since(start); cut < 60*time.Second || cut > 61*time.Second {
			t.Fatalf("dead peer cut at %v, want 60s (idle timeout) plus at most 1s for the close frame", cut)
		}
		synctest.Wait()
		if n := g.Len(); n != 1 {
			t.Fatalf("after the cut: %d connections, want only the live one", n)
		}

		time.Sleep(time.Hour)
		synctest.Wait()
		if n := g.Len(); n != 1 || liveCtx.Err() != nil {
			t.Fatalf("after an hour: %d connections, live closed: %v", n, liveCtx.Err())
		}

		<-drained // the server closed the dead peer's connection
		dead.Close()
		live.Close(websocket.StatusNormalClosure, "")
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
		<-errs
		srv.Close()
		tr.CloseIdleConnections()
	})
}

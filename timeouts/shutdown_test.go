package timeouts_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/stormcellar/stormcellar/timeouts"
)

// wsEcho accepts a WebSocket, registers it with the server's Registry so
// that shutdown closes it with 1001, and echoes until it ends.
func wsEcho(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	reg := timeouts.RegistryFrom(r.Context())
	done, err := reg.Track(func(ctx context.Context) {
		closed := make(chan struct{})
		go func() { defer close(closed); _ = c.Close(websocket.StatusGoingAway, "server shutting down") }()
		select {
		case <-closed:
		case <-ctx.Done():
			_ = c.CloseNow()
			<-closed
		}
	})
	if err != nil {
		_ = c.Close(websocket.StatusGoingAway, "server shutting down")
		return
	}
	defer done()
	ctx := context.WithoutCancel(r.Context())
	for {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			return
		}
		if err := c.Write(ctx, typ, msg); err != nil {
			return
		}
	}
}

func TestGracefulShutdownDrainsRequestsAndWebSockets(t *testing.T) {
	t.Parallel()
	inFlight := make(chan struct{}, 3)
	hijacked := make(chan struct{}, 1)
	mux := http.NewServeMux()
	// A Deadline shorter than the WebSocket's life: a hijacked connection leaves it.
	mux.Handle("/ws", timeouts.Deadline(timeouts.DeadlineOptions{Timeout: 100 * time.Millisecond})(http.HandlerFunc(wsEcho)))
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		inFlight <- struct{}{}
		time.Sleep(700 * time.Millisecond)
		_, _ = io.WriteString(w, "done")
	})
	mux.HandleFunc("/raw", func(w http.ResponseWriter, r *http.Request) {
		// A hijacked connection nobody registered: closed when the
		// shutdown ends.
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		hijacked <- struct{}{}
		_, _ = io.Copy(io.Discard, c)
		_ = c.Close()
	})
	s, addr, stop := startServer(t, mux, timeouts.ServerOptions{ShutdownTimeout: 5 * time.Second})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const sockets = 3
	wsErrs := make(chan error, sockets)
	var clients []*websocket.Conn
	for range sockets {
		c, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		if err := c.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
			t.Fatal(err)
		}
		if _, msg, err := c.Read(ctx); err != nil || string(msg) != "hi" {
			t.Fatalf("echo: %q %v", msg, err)
		}
		clients = append(clients, c)
	}
	time.Sleep(200 * time.Millisecond) // past the route's Deadline: still open
	for _, c := range clients {
		go func() {
			_, _, err := c.Read(ctx)
			wsErrs <- err
		}()
	}
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_, _ = io.WriteString(raw, "GET /raw HTTP/1.1\r\nHost: x\r\n\r\n")
	<-hijacked

	type result struct {
		body string
		err  error
	}
	results := make(chan result, 3)
	var wg sync.WaitGroup
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := (&http.Client{Transport: tr}).Get("http://" + addr + "/slow")
			if err != nil {
				results <- result{err: err}
				return
			}
			b, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			results <- result{string(b), err}
		}()
	}
	for range 3 {
		<-inFlight
	}
	if s.Registry().Len() != sockets {
		t.Fatalf("registry tracks %d connections, want %d", s.Registry().Len(), sockets)
	}

	start := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("Serve returned %v, want a clean shutdown", err)
	}
	took := time.Since(start)
	wg.Wait()
	close(results)
	for r := range results {
		if r.err != nil || r.body != "done" {
			t.Errorf("in-flight request: %q %v", r.body, r.err)
		}
	}
	for range sockets {
		if err := <-wsErrs; websocket.CloseStatus(err) != websocket.StatusGoingAway {
			t.Errorf("WebSocket client got %v, want close 1001", err)
		}
	}
	_ = raw.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := raw.Read(make([]byte, 1)); err == nil || isNetTimeout(err) {
		t.Errorf("unregistered hijacked connection still open: %v", err)
	}
	if took < 500*time.Millisecond || took > 3*time.Second {
		t.Errorf("shutdown took %v, want about the in-flight requests' 700ms", took)
	}
	if s.OpenConns() != 0 || s.Registry().Len() != 0 {
		t.Errorf("after shutdown: %d connections open, %d tracked", s.OpenConns(), s.Registry().Len())
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("listener still accepting after shutdown")
	}
}

// A hijacked connection whose owner ignores the drain request is closed at
// the shutdown deadline, and Shutdown reports it.
func TestShutdownDeadlineClosesStubbornConnections(t *testing.T) {
	t.Parallel()
	accepted := make(chan struct{}, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("/stubborn", func(w http.ResponseWriter, r *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		done, err := timeouts.RegistryFrom(r.Context()).Track(func(ctx context.Context) {
			<-ctx.Done() // ignores the request to close until the deadline
		})
		if err != nil {
			_ = c.Close()
			return
		}
		defer done()
		accepted <- struct{}{}
		_, _ = io.Copy(io.Discard, c) // ends when the server closes it
	})
	_, addr, stop := startServer(t, mux, timeouts.ServerOptions{ShutdownTimeout: 300 * time.Millisecond})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "GET /stubborn HTTP/1.1\r\nHost: x\r\n\r\n")
	<-accepted
	start := time.Now()
	err = stop()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Serve = %v, want the shutdown deadline reported", err)
	}
	if took := time.Since(start); took < 300*time.Millisecond || took > 2*time.Second {
		t.Fatalf("shutdown took %v", took)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isNetTimeout(err) {
		t.Fatalf("stubborn connection still open: %v", err)
	}
}

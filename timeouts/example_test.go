package timeouts_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/stormcellar/stormcellar/httperr"
	"github.com/stormcellar/stormcellar/timeouts"
)

// A service: safe limits by default, per-route deadlines, a streaming
// route, and a graceful shutdown when the context ends.
func ExampleNewServer() {
	mux := http.NewServeMux()
	mux.Handle("GET /hello", timeouts.Deadline(timeouts.DeadlineOptions{Timeout: 2 * time.Second})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "hello") })))
	mux.Handle("GET /events", timeouts.Deadline(timeouts.DeadlineOptions{Stream: true})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "data: 1\n\n") })))

	srv, err := timeouts.NewServer(mux, timeouts.ServerOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, stop := context.WithCancel(context.Background()) // signal.NotifyContext in a real main
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()

	resp, err := http.Get("http://" + ln.Addr().String() + "/hello")
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()
	fmt.Println(resp.StatusCode, string(body))

	stop()
	fmt.Println("shutdown:", <-served)
	// Output:
	// 200 hello
	// shutdown: <nil>
}

// Refuse to start in production with a server that can be held open.
func ExampleCheckServer() {
	srv := &http.Server{Addr: ":8080", Handler: http.NewServeMux()} // Go's defaults: no timeouts
	findings := timeouts.CheckServer(srv)
	for _, f := range findings {
		if f.Severity >= timeouts.Medium {
			fmt.Println(f.Severity, f.Setting)
		}
	}
	production := true
	if err := findings.Err(timeouts.Medium); err != nil && production {
		fmt.Println("refusing to start")
	}

	hardened, _ := timeouts.NewServer(http.NewServeMux(), timeouts.ServerOptions{})
	fmt.Println("NewServer findings:", len(timeouts.CheckServer(hardened.HTTPServer())))
	// Output:
	// high ReadHeaderTimeout
	// medium IdleTimeout
	// medium WriteTimeout
	// medium MaxHeaderBytes
	// refusing to start
	// NewServer findings: 0
}

// A handler that ignores its context still answers 503 at its deadline;
// what it writes afterwards goes nowhere.
func ExampleDeadline() {
	late := make(chan error, 1)
	stuck := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(100 * time.Millisecond) // ignores r.Context()
		_, err := w.Write([]byte("too late"))
		late <- err
	})
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := httperr.Install(httperr.Options{Logger: quiet})(
		timeouts.Deadline(timeouts.DeadlineOptions{Timeout: 20 * time.Millisecond})(stuck))

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/report", nil))
	fmt.Println(rec.Code, rec.Header().Get("Connection"))
	err := <-late
	fmt.Println(errors.Is(err, timeouts.ErrTimeout), errors.Is(err, context.DeadlineExceeded))
	// Output:
	// 503 close
	// true true
}

// WaitFor is asyncio.wait_for: the function is cancelled at the deadline.
func ExampleWaitFor() {
	fetch := func(ctx context.Context) (string, error) {
		select {
		case <-time.After(time.Second): // a slow upstream
			return "data", nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	_, err := timeouts.WaitFor(context.Background(), 10*time.Millisecond, fetch)
	fmt.Println(err)
	fmt.Println(errors.Is(err, timeouts.ErrTimeout), errors.Is(err, context.DeadlineExceeded))

	v, err := timeouts.WaitFor(context.Background(), time.Second, func(context.Context) (int, error) { return 42, nil })
	fmt.Println(v, err)
	// Output:
	// timeouts: WaitFor gave up after 10ms
	// true true
	// 42 <nil>
}

// An upstream client with every timeout set; redirects stay on the host.
func ExampleNewClient() {
	elsewhere := httptest.NewServer(http.NotFoundHandler())
	defer elsewhere.Close()
	upstream := httptest.NewServer(http.RedirectHandler(elsewhere.URL, http.StatusFound))
	defer upstream.Close()

	client, err := timeouts.NewClient(timeouts.ClientOptions{ResponseHeaderTimeout: 2 * time.Second})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.CloseIdleConnections()
	_, err = client.Get(upstream.URL)
	fmt.Println(errors.Is(err, timeouts.ErrRedirect))
	// Output:
	// true
}

// How a WebSocket layer takes part in the shutdown: register each
// connection, close it with 1001 when asked, and say when it has ended.
func ExampleRegistry() {
	var reg timeouts.Registry // a Server's: timeouts.RegistryFrom(r.Context())
	closed := make(chan struct{})
	done, err := reg.Track(func(ctx context.Context) {
		fmt.Println("sending close 1001 going away")
		close(closed)
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	go func() { <-closed; done() }() // the connection's read loop ends

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	fmt.Println("drained:", reg.Drain(ctx))
	_, err = reg.Track(func(context.Context) {})
	fmt.Println(errors.Is(err, timeouts.ErrShuttingDown))
	// Output:
	// sending close 1001 going away
	// drained: <nil>
	// true
}

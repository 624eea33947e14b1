// Command wsload holds many concurrent idle WebSocket connections on
// loopback and reports the server's memory per connection, for wsguard
// and for bare coder/websocket side by side. The clients run in a child
// process, so the figures are the server's alone.
//
//	go run ./wsguard/internal/wsload -conns 10000
//
// It raises its open-file limit to the hard limit; each process needs one
// descriptor per connection plus a few.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/stormcellar/stormcellar/wsguard"
)

func main() {
	conns := flag.Int("conns", 10000, "concurrent connections to hold")
	client := flag.String("client", "", "internal: run as the client process against this address")
	modes := flag.String("modes", "coder,wsguard", "servers to measure, in order")
	flag.Parse()
	raiseFileLimit()
	if *client != "" {
		runClients(*client, *conns)
		return
	}
	list := splitComma(*modes)
	if len(list) > 1 {
		// One process per server, so that one's heap does not colour the
		// other's figures.
		self, err := os.Executable()
		if err != nil {
			fmt.Fprintln(os.Stderr, "wsload:", err)
			os.Exit(1)
		}
		for _, mode := range list {
			cmd := exec.Command(self, "-modes", mode, "-conns", fmt.Sprint(*conns))
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
			if err := cmd.Run(); err != nil {
				fmt.Fprintln(os.Stderr, "wsload:", mode, err)
				os.Exit(1)
			}
		}
		return
	}
	for _, mode := range list {
		if err := measure(mode, *conns); err != nil {
			fmt.Fprintln(os.Stderr, "wsload:", err)
			os.Exit(1)
		}
	}
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}

func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

func measure(mode string, n int) error {
	var live atomic.Int64
	var handler http.Handler
	var guard *wsguard.Guard
	switch mode {
	case "coder":
		handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer c.CloseNow()
			live.Add(1)
			defer live.Add(-1)
			_, _, _ = c.Read(context.Background())
		})
	case "wsguard":
		g, err := wsguard.New(wsguard.Options{MaxConns: n + 10, MaxConnsPerClient: n + 10,
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return err
		}
		guard = g
		handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := g.Accept(w, r)
			if err != nil {
				return
			}
			defer c.CloseNow()
			live.Add(1)
			defer live.Add(-1)
			_, _, _ = c.Read(context.Background())
		})
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)

	before := snapshot()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "-client", ln.Addr().String(), "-conns", fmt.Sprint(n))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return fmt.Errorf("client: %v", err)
	}
	deadline := time.Now().Add(time.Minute)
	for live.Load() < int64(n) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	connected := time.Since(start)
	time.Sleep(time.Second) // let the handshake garbage settle
	after := snapshot()
	got := live.Load()
	fmt.Printf("%-8s %d connections (client: %s) in %v\n", mode, got, trim(line), connected.Round(time.Millisecond))
	perConn := func(a, b uint64) float64 { return float64(int64(a)-int64(b)) / float64(got) / 1024 }
	fmt.Printf("%-8s heap in use %.2f KiB/conn, stacks %.2f KiB/conn, total from OS %.2f KiB/conn, goroutines %.2f/conn\n",
		mode, perConn(after.heap, before.heap), perConn(after.stack, before.stack),
		perConn(after.sys, before.sys), float64(after.goroutines-before.goroutines)/float64(got))

	stdin.Close() // the client closes everything and exits
	_ = cmd.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if guard != nil {
		_ = guard.Shutdown(ctx)
	}
	for live.Load() > 0 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	return srv.Shutdown(ctx)
}

func trim(s string) string {
	if len(s) > 0 && s[len(s)-1] == '\n' {
		return s[:len(s)-1]
	}
	return s
}

type mem struct {
	heap, stack, sys uint64
	goroutines       int
}

func snapshot() mem {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return mem{heap: m.HeapInuse, stack: m.StackInuse, sys: m.Sys, goroutines: runtime.NumGoroutine()}
}

// runClients dials n connections (64 at a time), answers pings, prints
// one line once all are up, and closes them when stdin closes.
func runClients(addr string, n int) {
	var mu sync.Mutex
	var conns []*websocket.Conn
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	var failed atomic.Int64
	origin := http.Header{"Origin": {"http://" + addr}}
	for range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, _, err := websocket.Dial(ctx, "ws://"+addr, &websocket.DialOptions{HTTPHeader: origin})
			if err != nil {
				failed.Add(1)
				return
			}
			c.CloseRead(context.Background())
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		})
	}
	wg.Wait()
	fmt.Printf("%d up, %d failed\n", len(conns), failed.Load())
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	for _, c := range conns {
		c.CloseNow()
	}
}

// Command chionly serves the hello handler behind the nearest stack made
// of chi's middleware alone (ClientIPFromXFF, Recoverer, RequestSize,
// Timeout, Throttle) on a net/http server with its own timeouts set: the
// comparison bench/run draws for the full stormcellar stack.
//
//	go run ./bench/servers/chionly -addr 127.0.0.1:8083
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/stormcellar/stormcellar/bench/internal/stack"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8083", "loopback `host:port` to listen on")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to `file` until the server stops")
	flag.Parse()
	if err := stack.CheckLoopback(*addr); err != nil {
		fmt.Fprintln(os.Stderr, "chionly:", err)
		os.Exit(2)
	}
	stopProfile, err := stack.StartCPUProfile(*cpuprofile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chionly:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := stack.ChiOnlyServer(stack.ChiOnly())
	srv.Addr = *addr
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	err = srv.ListenAndServe()
	stopProfile()
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "chionly:", err)
		os.Exit(1)
	}
}

// Command bare serves the hello handler on a zero-configuration
// net/http server: the baseline bench/run compares the stacks with.
//
//	go run ./bench/servers/bare -addr 127.0.0.1:8081
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
	addr := flag.String("addr", "127.0.0.1:8081", "loopback `host:port` to listen on")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to `file` until the server stops")
	flag.Parse()
	if err := stack.CheckLoopback(*addr); err != nil {
		fmt.Fprintln(os.Stderr, "bare:", err)
		os.Exit(2)
	}
	stopProfile, err := stack.StartCPUProfile(*cpuprofile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bare:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := &http.Server{Addr: *addr, Handler: stack.Bare()}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	err = srv.ListenAndServe()
	stopProfile()
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "bare:", err)
		os.Exit(1)
	}
}

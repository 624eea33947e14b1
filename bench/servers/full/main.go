// Command full serves the hello handler behind the full recommended
// stormcellar stack (httperr.Install, chi's ClientIPFromXFF, RequestID,
// SecureHeaders with a CSP nonce, Recover, HTTPSRedirect, MaxURLLength,
// RateLimit, ConcurrencyLimit, MaxBytes, timeouts.Deadline) on a
// timeouts.NewServer, configured as a service behind a TLS-terminating
// proxy on loopback: send X-Forwarded-Proto: https, or every request is
// redirected.
//
//	go run ./bench/servers/full -addr 127.0.0.1:8082
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/stormcellar/stormcellar/bench/internal/stack"
	"github.com/stormcellar/stormcellar/timeouts"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8082", "loopback `host:port` to listen on")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to `file` until the server stops")
	flag.Parse()
	if err := run(*addr, *cpuprofile); err != nil {
		fmt.Fprintln(os.Stderr, "full:", err)
		os.Exit(1)
	}
}

func run(addr, cpuprofile string) error {
	if err := stack.CheckLoopback(addr); err != nil {
		return err
	}
	h, err := stack.Full(stack.FullOptions{})
	if err != nil {
		return err
	}
	srv, err := timeouts.NewServer(h, timeouts.ServerOptions{})
	if err != nil {
		return err
	}
	stopProfile, err := stack.StartCPUProfile(cpuprofile)
	if err != nil {
		return err
	}
	defer stopProfile()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return srv.ListenAndServe(ctx, addr)
}

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

	"github.com/stormcellar/stormcellar/bench/internal/stack"
	"github.com/stormcellar/stormcellar/timeouts"
)

func main() {
	stack.Main("full", "127.0.0.1:8082", func(ctx context.Context, addr string) error {
		h, err := stack.Full(stack.FullOptions{})
		if err != nil {
			return err
		}
		srv, err := timeouts.NewServer(h, timeouts.ServerOptions{})
		if err != nil {
			return err
		}
		return srv.ListenAndServe(ctx, addr)
	})
}

// Command nomiddleware serves the hello handler through the chi router of
// bench/servers/full, on a timeouts.NewServer with its defaults, with none
// of the full stack's middleware: what the full stack's server and router
// cost before any middleware runs.
//
//	go run ./bench/servers/nomiddleware -addr 127.0.0.1:8085
package main

import (
	"context"

	"github.com/stormcellar/stormcellar/bench/internal/stack"
	"github.com/stormcellar/stormcellar/timeouts"
)

func main() {
	stack.Main("nomiddleware", "127.0.0.1:8085", func(ctx context.Context, addr string) error {
		srv, err := timeouts.NewServer(stack.Router(), timeouts.ServerOptions{})
		if err != nil {
			return err
		}
		return srv.ListenAndServe(ctx, addr)
	})
}

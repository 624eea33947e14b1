// Command chionly serves the hello handler behind the nearest stack made
// of chi's middleware alone (ClientIPFromXFF, Recoverer, RequestSize,
// Timeout, Throttle) on a net/http server with its own timeouts set: the
// comparison bench/run draws for the full stormcellar stack.
//
//	go run ./bench/servers/chionly -addr 127.0.0.1:8083
package main

import (
	"context"

	"github.com/stormcellar/stormcellar/bench/internal/stack"
)

func main() {
	stack.Main("chionly", "127.0.0.1:8083", func(ctx context.Context, addr string) error {
		return stack.ServeUntil(ctx, stack.ChiOnlyServer(stack.ChiOnly()), addr)
	})
}

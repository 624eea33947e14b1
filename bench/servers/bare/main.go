// Command bare serves the hello handler on a zero-configuration
// net/http server: the baseline bench/run compares the stacks with.
//
//	go run ./bench/servers/bare -addr 127.0.0.1:8081
package main

import (
	"context"
	"net/http"

	"github.com/stormcellar/stormcellar/bench/internal/stack"
)

func main() {
	stack.Main("bare", "127.0.0.1:8081", func(ctx context.Context, addr string) error {
		return stack.ServeUntil(ctx, &http.Server{Handler: stack.Bare()}, addr)
	})
}

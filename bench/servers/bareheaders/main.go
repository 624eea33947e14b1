// Command bareheaders serves the hello handler on a zero-configuration
// net/http server, like bench/servers/bare, but with the response headers
// the full stack sends (security headers, request id) as fixed values:
// the cost of the full stack's response bytes alone, and so the fastest
// any stack sending those headers can be.
//
//	go run ./bench/servers/bareheaders -addr 127.0.0.1:8084
package main

import (
	"context"
	"net/http"

	"github.com/stormcellar/stormcellar/bench/internal/stack"
)

func main() {
	stack.Main("bareheaders", "127.0.0.1:8084", func(ctx context.Context, addr string) error {
		h, err := stack.FullResponseHeaders()
		if err != nil {
			return err
		}
		return stack.ServeUntil(ctx, &http.Server{Handler: stack.BareWithHeaders(h)}, addr)
	})
}

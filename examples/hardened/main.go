// Command hardened is the reference service of stormcellar: a small shop
// with login, a chat over WebSocket, templated pages, an upstream call and
// background work, with every defence of the library wired in. See
// README.md for the threat → defence → demonstration table.
//
//	go run ./examples/hardened               # development, 127.0.0.1:8080
//	STORMCELLAR_ENV=production ./hardened …   # refuses insecure settings
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/stormcellar/stormcellar/timeouts"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	os.Exit(code)
}

// run starts the service and returns the exit status: 0 after a graceful
// shutdown, 2 for a configuration refused, 1 for a failure while serving.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	cfg, problems, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "hardened: "+oneLine(err))
		return 2
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(stderr, "hardened: refusing to start: "+p)
		}
		return 2
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg.Logger = logger
	mode := "development"
	if cfg.Prod {
		mode = "production"
	}
	if cfg.EphemeralKeys {
		logger.Warn("no STORMCELLAR_COOKIE_SECRETS: using an ephemeral cookie secret; sessions end when the process exits")
	}
	a, err := newApp(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "hardened: "+oneLine(err))
		return 2
	}
	if cfg.Prod {
		// The server's own settings, checked like any other server's.
		if err := timeouts.CheckServer(a.srv.HTTPServer()).Err(timeouts.Medium); err != nil {
			fmt.Fprintln(stderr, "hardened: refusing to start: "+oneLine(err))
			return 2
		}
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		fmt.Fprintln(stderr, "hardened: "+oneLine(err))
		return 1
	}
	adminLn, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		_ = ln.Close()
		fmt.Fprintln(stderr, "hardened: "+oneLine(err))
		return 1
	}
	logger.Info("listening", "mode", mode, "addr", ln.Addr().String(), "admin_addr", adminLn.Addr().String(),
		"demo_faults", cfg.DemoFaults, "tls", cfg.TLSCert != "", "keys", cfg.Keyring)
	if err := a.serve(ctx, ln, adminLn); err != nil {
		logger.Error("shutdown", "err", err)
		return 1
	}
	logger.Info("stopped")
	return 0
}

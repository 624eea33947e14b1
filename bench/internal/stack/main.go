package stack

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
)

// Main is the body of every benchmark server command: it parses -addr
// (default defaultAddr, which must be loopback) and -cpuprofile, then runs
// serve until SIGINT or SIGTERM. Errors are printed prefixed with name;
// the exit status is 2 for a non-loopback address and 1 for any other
// failure.
func Main(name, defaultAddr string, serve func(ctx context.Context, addr string) error) {
	addr := flag.String("addr", defaultAddr, "loopback `host:port` to listen on")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to `file` until the server stops")
	flag.Parse()
	fail := func(code int, err error) {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(code)
	}
	if err := CheckLoopback(*addr); err != nil {
		fail(2, err)
	}
	stopProfile, err := StartCPUProfile(*cpuprofile)
	if err != nil {
		fail(1, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = serve(ctx, *addr)
	stop()
	stopProfile()
	if err != nil {
		fail(1, err)
	}
}

// ServeUntil runs srv on addr until ctx is done, then closes it. A close
// caused by ctx is not an error.
func ServeUntil(ctx context.Context, srv *http.Server, addr string) error {
	srv.Addr = addr
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

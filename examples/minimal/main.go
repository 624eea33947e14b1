// Command minimal is the smallest service with stormcellar's whole
// recommended stack: error pages, request ids, security headers, panic
// recovery, URL, rate, concurrency and body limits, load shedding, a
// handler deadline, and a server with safe timeouts and a graceful
// shutdown. GET / answers "hello". It is the baseline for overhead
// measurements against a bare net/http handler.
//
//	go run ./examples/minimal -addr 127.0.0.1:8081
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-chi/chi/v5"

	"github.com/stormcellar/stormcellar/httperr"
	"github.com/stormcellar/stormcellar/middleware"
	"github.com/stormcellar/stormcellar/timeouts"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "listen address")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "minimal:", err)
		os.Exit(1)
	}
	logger.Info("listening", "addr", ln.Addr().String())
	if err := serve(ctx, ln, logger); err != nil {
		logger.Error("shutdown", "err", err)
		os.Exit(1)
	}
}

// handler is the recommended stack (middleware.Example_chain's order)
// around a chi router with one route.
func handler(logger *slog.Logger) (http.Handler, error) {
	ids, err := middleware.NewRequestID(middleware.RequestIDOptions{})
	if err != nil {
		return nil, err
	}
	headers, err := middleware.NewSecureHeaders(middleware.SecureHeadersOptions{})
	if err != nil {
		return nil, err
	}
	rate, err := middleware.NewRateLimit(middleware.RateLimitOptions{Logger: logger})
	if err != nil {
		return nil, err
	}
	conc, err := middleware.NewConcurrencyLimit(middleware.ConcurrencyLimitOptions{})
	if err != nil {
		return nil, err
	}
	shed, err := middleware.NewLoadShed(middleware.LoadShedOptions{Logger: logger})
	if err != nil {
		return nil, err
	}
	r := chi.NewRouter()
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { httperr.WriteStatus(w, r, http.StatusNotFound) })
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		httperr.WriteStatus(w, r, http.StatusMethodNotAllowed)
	})
	r.With(timeouts.Deadline(timeouts.DeadlineOptions{})).Get("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "hello")
	})
	return middleware.Chain(
		httperr.Install(httperr.Options{Logger: logger}),
		ids.Handler,
		headers.Handler,
		middleware.Recover,
		middleware.MaxURLLength(middleware.MaxURLLengthOptions{}),
		rate.Handler,
		shed.Handler,
		conc.Handler,
		middleware.MaxBytes(middleware.MaxBytesOptions{}),
	)(r), nil
}

func serve(ctx context.Context, ln net.Listener, logger *slog.Logger) error {
	h, err := handler(logger)
	if err != nil {
		return err
	}
	srv, err := timeouts.NewServer(h, timeouts.ServerOptions{Logger: logger})
	if err != nil {
		return err
	}
	return srv.Serve(ctx, ln)
}

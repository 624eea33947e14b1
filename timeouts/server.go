package timeouts

import (
	"context"
	"crypto/tls"
	"errors"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/stormcellar/stormcellar/internal/clientip"
	"github.com/stormcellar/stormcellar/internal/reqstate"
)

// Defaults of [ServerOptions].
const (
	DefaultReadHeaderTimeout    = 10 * time.Second
	DefaultIdleTimeout          = 120 * time.Second
	DefaultMaxHeaderBytes       = 64 << 10
	DefaultWriteTimeout         = 60 * time.Second
	DefaultMinBodyRate          = 1024
	DefaultBodyRateWindow       = 10 * time.Second
	DefaultMaxConns             = 10000
	DefaultMaxConnsPerClient    = 128
	DefaultShutdownTimeout      = 30 * time.Second
	DefaultMaxConcurrentStreams = 100
)

// ServerOptions configure [NewServer]. The zero value is the safe setting:
// every limit on, at the default its field names. A negative value is an
// error.
type ServerOptions struct {
	// ReadHeaderTimeout bounds the time to read a request's line and
	// headers, from the first byte; the TLS handshake must also finish
	// within it. A client that drips its headers (slowloris) is cut off
	// when it passes. Default 10 s.
	ReadHeaderTimeout time.Duration

	// IdleTimeout closes a keep-alive connection that has not begun a new
	// request within it. Default 120 s.
	IdleTimeout time.Duration

	// MaxHeaderBytes caps the request line plus headers; larger requests
	// get 431 from net/http (which adds 4 KiB of slack). Default 64 KiB,
	// Tornado's max_header_size; net/http's own default is 1 MiB.
	MaxHeaderBytes int

	// WriteTimeout is the write deadline set on the connection when each
	// request starts (through [http.ResponseController], not
	// http.Server.WriteTimeout): a client that stops reading its response
	// cannot hold the handler past it. Routes wrapped in [Deadline]
	// replace it with their own; streaming routes declare themselves
	// there. Default 60 s.
	WriteTimeout time.Duration

	// MinBodyRate and BodyRateWindow set the slow-POST limit applied to
	// every request body: see [BodyRateOptions]. Defaults 1024 bytes/s
	// and 10 s. A route can set its own with [BodyRate].
	MinBodyRate    int
	BodyRateWindow time.Duration

	// InsecureNoBodyRate turns the body rate limit off for the whole
	// server: a client may then send a body as slowly as it likes, holding
	// its connection and handler. Prefer a lower rate on the routes that
	// need it.
	InsecureNoBodyRate bool

	// MaxConns caps the open connections, hijacked ones included. A
	// connection over the cap is reset as soon as it is accepted, so the
	// server never runs out of file descriptors. Default 10000.
	MaxConns int

	// MaxConnsPerClient caps the open connections of one client: one IPv4
	// address, or one IPv6 /64 (a NAT64 address alone), of the TCP peer
	// (a transport limit, never
	// keyed on forwarded headers). Behind a reverse proxy every client is
	// the proxy: raise it to the proxy's connection pool size. Default 128.
	MaxConnsPerClient int

	// ShutdownTimeout bounds [Server.Shutdown]: in-flight requests and
	// hijacked connections get this long to finish, then every connection
	// left is closed. Default 30 s.
	ShutdownTimeout time.Duration

	// TLSConfig, when set, makes Serve speak TLS (with HTTP/2) using its
	// certificates. MinVersion below TLS 1.2 is refused. Default nil:
	// plain HTTP/1.1, for a server behind a TLS-terminating proxy.
	TLSConfig *tls.Config

	// MaxConcurrentStreams caps the concurrent requests of one HTTP/2
	// connection. Default 100.
	MaxConcurrentStreams int

	// Logger receives net/http's own error log (TLS handshake failures at
	// Debug, panics and accept errors at Error, the rest at Warn, under
	// the key "component"="net/http") and connection-cap refusals (at
	// most one record a second). If nil, slog.Default() at the time of
	// each record.
	Logger *slog.Logger
}

func (o *ServerOptions) fill() error {
	type dur struct {
		name string
		v    *time.Duration
		def  time.Duration
	}
	for _, d := range []dur{
		{"ReadHeaderTimeout", &o.ReadHeaderTimeout, DefaultReadHeaderTimeout},
		{"IdleTimeout", &o.IdleTimeout, DefaultIdleTimeout},
		{"WriteTimeout", &o.WriteTimeout, DefaultWriteTimeout},
		{"BodyRateWindow", &o.BodyRateWindow, DefaultBodyRateWindow},
		{"ShutdownTimeout", &o.ShutdownTimeout, DefaultShutdownTimeout},
	} {
		switch {
		case *d.v < 0:
			return invalid("ServerOptions.%s is negative (%v)", d.name, *d.v)
		case *d.v == 0:
			*d.v = d.def
		}
	}
	type num struct {
		name string
		v    *int
		def  int
	}
	for _, n := range []num{
		{"MaxHeaderBytes", &o.MaxHeaderBytes, DefaultMaxHeaderBytes},
		{"MinBodyRate", &o.MinBodyRate, DefaultMinBodyRate},
		{"MaxConns", &o.MaxConns, DefaultMaxConns},
		{"MaxConnsPerClient", &o.MaxConnsPerClient, DefaultMaxConnsPerClient},
		{"MaxConcurrentStreams", &o.MaxConcurrentStreams, DefaultMaxConcurrentStreams},
	} {
		switch {
		case *n.v < 0:
			return invalid("ServerOptions.%s is negative (%d)", n.name, *n.v)
		case *n.v == 0:
			*n.v = n.def
		}
	}
	if o.TLSConfig != nil {
		if v := o.TLSConfig.MinVersion; v != 0 && v < tls.VersionTLS12 {
			return invalid("ServerOptions.TLSConfig.MinVersion is below TLS 1.2 (%s)", tls.VersionName(v))
		}
		if len(o.TLSConfig.Certificates) == 0 && o.TLSConfig.GetCertificate == nil &&
			o.TLSConfig.GetConfigForClient == nil {
			return invalid("ServerOptions.TLSConfig has no certificate (set Certificates or GetCertificate)")
		}
	}
	return nil
}

// Server is an [http.Server] with safe limits, connection caps and a
// graceful shutdown that also drains hijacked connections. Create it with
// [NewServer] and run it with [Server.Serve] or [Server.ListenAndServe]:
// only those apply the connection caps.
type Server struct {
	srv             *http.Server
	reg             *Registry
	conns           *connSet
	tls             bool
	shutdownTimeout time.Duration
	logger          *slog.Logger
}

// NewServer returns a Server for h with the limits of opts (see
// [ServerOptions] for each default). It returns an error wrapping
// [ErrInvalidOptions] that names the field when opts cannot work.
//
// Every request's context carries the server's [Registry] (see
// [RegistryFrom]); every request gets the write deadline
// ServerOptions.WriteTimeout and, when it has a body, the minimum body
// rate.
func NewServer(h http.Handler, opts ServerOptions) (*Server, error) {
	if h == nil {
		return nil, invalid("NewServer: nil handler")
	}
	if err := opts.fill(); err != nil {
		return nil, err
	}
	s := &Server{
		reg:             new(Registry),
		tls:             opts.TLSConfig != nil,
		shutdownTimeout: opts.ShutdownTimeout,
		logger:          opts.Logger,
	}
	s.conns = newConnSet(opts.MaxConns, opts.MaxConnsPerClient, s.log)
	base := &serverHandler{next: h, writeTimeout: opts.WriteTimeout}
	if !opts.InsecureNoBodyRate {
		base.rate = rateConfig{rate: opts.MinBodyRate, window: opts.BodyRateWindow}
	}
	s.srv = &http.Server{
		Handler:           base,
		ReadHeaderTimeout: opts.ReadHeaderTimeout,
		IdleTimeout:       opts.IdleTimeout,
		MaxHeaderBytes:    opts.MaxHeaderBytes,
		ErrorLog:          log.New(&errorLogWriter{logger: s.log}, "", 0),
		BaseContext: func(net.Listener) context.Context {
			return WithRegistry(context.Background(), s.reg)
		},
		// The connection's own peer address, which every per-client
		// decision uses: RemoteAddr can be rewritten by a middleware
		// (chi's RealIP) before the first stormcellar layer sees it.
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if a := clientip.PeerOf(c.RemoteAddr()); a.IsValid() {
				return reqstate.WithConnPeer(ctx, a)
			}
			return ctx
		},
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: opts.MaxConcurrentStreams,
			// Reads and writes that make no progress for this long end
			// the connection: the HTTP/2 counterpart of the deadlines.
			WriteByteTimeout: opts.WriteTimeout,
			SendPingTimeout:  opts.IdleTimeout / 2,
			PingTimeout:      15 * time.Second,
		},
	}
	if opts.TLSConfig != nil {
		cfg := opts.TLSConfig.Clone()
		if cfg.MinVersion == 0 {
			cfg.MinVersion = tls.VersionTLS12
		}
		s.srv.TLSConfig = cfg
	}
	return s, nil
}

func (s *Server) log() *slog.Logger {
	if s.logger != nil {
		return s.logger
	}
	return slog.Default()
}

// HTTPServer returns the underlying [http.Server], to read or adjust its
// settings before serving (CheckServer it, add ConnState hooks…). Serve
// through [Server.Serve], not through its own Serve methods, or the
// connection caps and the drain of hijacked connections are lost.
func (s *Server) HTTPServer() *http.Server { return s.srv }

// Registry returns the registry of hijacked connections that
// [Server.Shutdown] drains.
func (s *Server) Registry() *Registry { return s.reg }

// OpenConns reports the connections open now (hijacked ones included).
func (s *Server) OpenConns() int { return s.conns.open() }

// RefusedConns reports how many connections were reset because a
// connection cap was reached.
func (s *Server) RefusedConns() uint64 { return s.conns.refused.Load() }

// ListenAndServe listens on the TCP address addr and calls
// [Server.Serve].
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Serve accepts connections on ln, within the connection caps, until ctx
// is done; it then shuts down gracefully ([Server.Shutdown]) and returns
// what the shutdown returned: nil when every request and hijacked
// connection finished in time. If serving fails first, Serve returns that
// error. Serve may be called for several listeners; they share the caps.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	cl := &capListener{Listener: ln, set: s.conns}
	errc := make(chan error, 1)
	go func() {
		if s.tls {
			errc <- s.srv.ServeTLS(cl, "", "")
		} else {
			errc <- s.srv.Serve(cl)
		}
	}()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil // Shutdown was called by someone else
		}
		return err
	case <-ctx.Done():
	}
	err := s.Shutdown(context.WithoutCancel(ctx))
	<-errc // returns ErrServerClosed as soon as the listener is closed
	return err
}

// Shutdown stops the server gracefully: it closes the listeners, refuses
// new hijacked connections, lets in-flight requests finish
// ([http.Server.Shutdown]) while it drains the [Registry] (WebSockets get
// close 1001), and when both are done, or at the earlier of ctx's
// deadline and ServerOptions.ShutdownTimeout, closes every connection
// left, hijacked ones included. It returns nil when every request
// finished and the Registry drained in time; hijacked connections that
// are not in the Registry are then closed without a close handshake, with
// a warning in the log: register WebSocket layers (wsguard's Guard
// through [Registry.TrackShutdowner]) so that they are drained first.
func (s *Server) Shutdown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.shutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	var httpErr, drainErr error
	wg.Add(2)
	go func() { defer wg.Done(); httpErr = s.srv.Shutdown(ctx) }()
	go func() { defer wg.Done(); drainErr = s.reg.Drain(ctx) }()
	wg.Wait()
	if httpErr != nil {
		_ = s.srv.Close()
	}
	forced := s.conns.closeAll()
	if httpErr == nil && drainErr == nil {
		if forced > 0 {
			// Everything tracked finished in time; hijacked connections
			// nobody registered (a WebSocket layer outside the Registry)
			// were left, and cut without a close handshake.
			s.log().LogAttrs(context.Background(), slog.LevelWarn,
				"shutdown closed hijacked connections not in the Registry", slog.Int("closed", forced))
		}
		return nil
	}
	s.log().LogAttrs(context.Background(), slog.LevelWarn, "shutdown deadline passed; connections closed",
		slog.Int("closed", forced), slog.Any("err", errors.Join(httpErr, drainErr)))
	return errors.Join(httpErr, drainErr)
}

// serverHandler applies the per-request limits of a Server.
type serverHandler struct {
	next         http.Handler
	writeTimeout time.Duration
	rate         rateConfig
}

func (h *serverHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(h.writeTimeout))
	if h.rate.rate > 0 && hasBody(r) {
		serveRate(h.next, w, r, h.rate)
		return
	}
	h.next.ServeHTTP(w, r)
}

// errorLogWriter turns net/http's ErrorLog lines into slog records.
type errorLogWriter struct {
	logger func() *slog.Logger
}

func (e *errorLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := slog.LevelWarn
	switch {
	case strings.HasPrefix(msg, "http: TLS handshake error"):
		level = slog.LevelDebug
	case strings.HasPrefix(msg, "http: panic serving"), strings.HasPrefix(msg, "http: Accept error"):
		level = slog.LevelError
	}
	e.logger().LogAttrs(context.Background(), level, msg, slog.String("component", "net/http"))
	return len(p), nil
}

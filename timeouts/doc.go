// Package timeouts gives an HTTP service deadlines that an attacker cannot
// stretch: a server constructor with safe non-zero limits, connection caps
// and a graceful shutdown that also drains hijacked connections; a
// per-route [Deadline] that answers 503 without racing the handler; a
// minimum body rate against slow POST; [WaitFor], the asyncio.wait_for of
// Go; and an upstream [*http.Client] with every timeout set.
//
// Start a service with [NewServer] and [Server.Serve], wrap routes in
// [Deadline] (declaring streaming routes with Stream), call upstreams with
// a client from [NewClient] or through [WaitFor], and gate production
// start-up on [CheckServer].
//
// # Threat model
//
// The seed threats are slowloris and slow POST (a client holds
// connections open by sending headers or a body a byte at a time),
// asynchronous operations without timeouts (a stuck handler or a hanging
// upstream ties up a connection and a goroutine per request until the
// server runs out), resource exhaustion by idle or numerous connections,
// and insecure server configuration (no timeouts, oversized header
// limits, debug endpoints on a public listener).
//
// Which setting covers which phase of a request:
//
//	phase                          setting                                    on expiry
//	-----------------------------  -----------------------------------------  ---------------------------------
//	accept                         ServerOptions.MaxConns, MaxConnsPerClient  connection reset at once
//	TLS handshake                  ServerOptions.ReadHeaderTimeout            connection closed
//	request line + headers         ReadHeaderTimeout (10 s), MaxHeaderBytes   closed (net/http sends 400 first
//	                                                                          if part of a line came); 431 over 64 KiB
//	request body                   ServerOptions.MinBodyRate / BodyRate       408 + Connection: close (HTTP/1)
//	                               (from the first read if Expect: 100-continue, HTTP/1.1 and HTTP/2)
//	handler                        Deadline.Timeout (30 s)                    503 if nothing written, else abort;
//	                                                                          body reads fail from then on
//	upstream call                  NewClient timeouts, WaitFor                504 through httperr
//	response write                 ServerOptions.WriteTimeout (60 s),         write fails, connection closed
//	                               Deadline (per route, per write if Stream)
//	keep-alive wait                ServerOptions.IdleTimeout (120 s)          connection closed
//	HTTP/2 streams                 MaxConcurrentStreams (100), pings          stream refused / conn closed
//	HTTP/2 header block            IdleTimeout (120 s): ReadHeaderTimeout     conn closed
//	                               bounds only the TLS handshake there
//	shutdown                       ServerOptions.ShutdownTimeout (30 s)       remaining connections closed
//
// Defaults, and how they compare with the anchors:
//
//   - net/http's zero http.Server has no timeout at all and a 1 MiB
//     header limit. Measured with the same attack (300 connections
//     sending one header byte a second, observed for 4 s; go test -race
//     -run TestSlowlorisDefaultServerVersusNewServer -v ./timeouts/), the
//     default server still held 300 of 300 connections while NewServer
//     with a 2 s header deadline had cut all 300, each 2.0 to 2.8 s after
//     it connected (range over several runs on a shared two-core
//     machine), and legitimate requests kept getting 200 throughout. [NewServer] cuts
//     them at the header deadline, caps connections per
//     client and in total, and sets a write deadline per request rather
//     than http.Server.WriteTimeout, which cannot be lifted per route and
//     breaks streaming.
//   - Tornado's only header deadline is its 3600 s idle_connection_timeout,
//     it has no body rate (body_timeout is off by default) and no write
//     or handler timeout; [NewServer] has all of them on by default.
//   - [http.TimeoutHandler] buffers the whole response (no streaming, no
//     Flusher or Hijacker), runs the handler on a second goroutine and
//     loses its panics after the deadline; chi's Timeout only cancels the
//     context and writes its 504 after the handler returns, however late.
//     [Deadline] writes the 503 at the deadline, streams, keeps panics on
//     the request goroutine and is race-free (TestDeadlineLateCallsRaceFree,
//     TestDeadlineOnRealServer).
//   - Tornado's gen.with_timeout takes an absolute time when given a
//     number (gen.with_timeout(5, f) times out at once) and does not
//     cancel the operation. Every API here takes a [time.Duration] or a
//     [context.Context], and [WaitFor] cancels.
//
// Fail-open cases, each deliberate:
//
//   - A handler that ignores its context keeps its goroutine (and, under
//     Deadline, its connection, after the 503 told the client to close)
//     until it returns: Go cannot stop a goroutine. The same holds for a
//     WaitFor function.
//   - Connections are capped per TCP peer; behind a reverse proxy the
//     proxy is one client, so raise MaxConnsPerClient to its pool size
//     and let the proxy enforce per-client limits.
//   - A body arriving just above MinBodyRate is accepted for as long as
//     it keeps that rate; Deadline bounds the handler as a whole: at its
//     deadline the body's reads fail too, so a handler blocked on a slow
//     body returns then (TestDeadlineCutsBodyReads).
//   - On HTTP/2, net/http applies ReadHeaderTimeout to the TLS handshake
//     only: a client that trickles a stream's header block (HEADERS, then
//     CONTINUATION frames) holds its connection until IdleTimeout, within
//     MaxConnsPerClient.
//   - Deadline lets a WebSocket go once the handler hijacks the
//     connection (its lifetime then belongs to the WebSocket layer and the
//     [Registry]); until the hijack the handshake is timed like any
//     request, so Upgrade headers alone never lift a route's deadline.
//   - [CheckServer] can only look into http.ServeMux and chi routers for
//     debug endpoints.
//   - net/http writes its own 431 for oversized headers, and its own 400
//     (or nothing) when a header deadline passes, outside httperr: no
//     handler has run yet.
//   - context.Cause on a Deadline route's context reports
//     context.DeadlineExceeded because the route's context hides the
//     request context's internal cancellation state from the lookup Cause
//     makes; should a future Go release look it up differently, Cause
//     would report the request's own cause instead (Err stays right).
//
// # Hijacked connections
//
// [http.Server.Shutdown] neither closes nor waits for hijacked
// connections. A [Server] puts its [Registry] in every request's context
// ([RegistryFrom]); a WebSocket layer registers each accepted connection
// with [Registry.Track], or itself once with [Registry.TrackShutdowner]
// (anything with Shutdown(ctx) error), and is asked to close them (1001
// Going Away) on shutdown. Connections nobody registered are closed when
// the shutdown ends.
package timeouts

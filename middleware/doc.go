// Package middleware provides hardened net/http middleware for the layers
// every service needs in front of its handlers: panic recovery ([Recover]),
// request size limits ([MaxBytes], [MaxURLLength]), browser security
// headers with a per-response CSP nonce ([SecureHeaders]), an HTTPS
// redirect that cannot be turned into an open redirect ([HTTPSRedirect]),
// request ids ([RequestID]), per-client rate limits ([RateLimit]),
// concurrency limits ([ConcurrencyLimit]) and load shedding ([LoadShed]),
// and [Chain] to put them together.
//
// Every middleware is a func(http.Handler) http.Handler, so it fits
// chi's Use and With, plain wrapping and [Chain]. Those whose settings can
// be wrong are built with a New function that returns an error naming the
// setting; their Handler method is the middleware. Options structs are
// passed by value and their zero value is the safe setting; a setting that
// weakens protection is named Insecure….
//
// Every refusal (413, 414, 415, a panic's 500…) is written by
// [httperr.Write]: one page design in HTML, JSON or text as the client
// accepts, the request id, one log record and one observer call, and never
// a cause, a stack or a file path unless httperr's InsecureExposeCause is
// on. The middleware share one per-request state, created by the first of
// them (or by [httperr.Install]) with one allocation and reused by all
// the others for free: the request id, the CSP nonce, and a response
// writer that records whether the response was committed or hijacked and
// keeps Unwrap, Flush, Hijack and ReadFrom working for
// [net/http.ResponseController].
//
// # Recommended order
//
// Outermost first; each layer covers everything below it (see
// Example_chain for the code):
//
//  1. [httperr.Install]: the renderer, logger and observer of every
//     refusal below.
//  2. chi's ClientIPFromXFF or ClientIPFromHeader, with your proxies'
//     prefixes: the client address that rate limits and logs below use.
//  3. [RequestID]: an id on every response and log record below.
//  4. [SecureHeaders]: the headers on every response below, refusals and
//     panics included.
//  5. [Recover]: a panic anywhere below becomes a 500 with those headers.
//  6. [HTTPSRedirect]: plain HTTP goes no further.
//  7. [MaxURLLength], per-client rate limits, concurrency limits and load
//     shedding: cheap refusals before any work is done.
//  8. [MaxBytes]: the default body limit.
//  9. The router; on its routes, MaxBytes with a route's own limit,
//     cross-origin and XSRF checks (package cookiesecret) and deadlines
//     (package timeouts). A route that takes multipart uploads needs its
//     MaxBytes here, inside the router: chi's router passes on a copy of
//     the request, and a form parsed into that copy is out of sight of a
//     MaxBytes above it, which could not remove its temporary files.
//
// # Request size
//
// Three limits apply to a request, each at its own place:
//
//   - The request line and headers: [net/http.Server.MaxHeaderBytes].
//     net/http reads them before any handler runs, and answers a request
//     over the limit itself with a bare "431 Request Header Fields Too
//     Large": no security headers, no request id, no httperr log record
//     (TestMaxHeaderBytesGuide shows it). The default when the field is
//     zero is 1 MiB, plus 4096 bytes of slack; set it instead. 64 KiB is
//     Tornado's default and leaves room for large cookies; 16 to 32 KiB is
//     enough for most APIs. Package timeouts' server sets it with its other
//     limits.
//   - The request target: [MaxURLLength], default 8 KiB, a 414. It only
//     sees targets that fit within MaxHeaderBytes, so keep it below that.
//     net/url refuses to parse a query of more than 10,000 parameters
//     (GODEBUG urlmaxqueryparams).
//   - The body: [MaxBytes], default 1 MiB, a 413 with Connection: close,
//     for declared and chunked bodies alike, after decompression when it
//     decompresses, with multipart bodies capped at 100 parts (multipart
//     as net/http's parser reads Content-Type, Unicode spaces and case
//     included). Routes raise or lower the limit with their own MaxBytes.
//     A form parsed with ParseMultipartForm(maxMemory) keeps at most
//     maxMemory bytes of files (plus up to 10 MB of other fields) in
//     memory and the rest of the body in temporary files, so memory and
//     disk are both bounded by the body limit. MaxBytes removes those
//     files when the handler returns if the form was parsed into the
//     request it passed on, or copied back into it (see the fail-open
//     cases below).
//
// # Threat model
//
// The package answers these threats of the seed documents:
//
//   - "Proper error handling" (unhandled exceptions: denial of service
//     and information leakage) and "debug mode in production": [Recover]
//     keeps a panicking handler from taking the connection down silently
//     or leaking its panic value, stack or file paths. The client gets a
//     500 with the status text and a request id; the log gets one record
//     with the value and the stack. A panic after the status line was sent
//     aborts the connection, so the client sees a truncation instead of a
//     complete-looking response; after a hijack nothing is written; the
//     stack reaches the page only through httperr's InsecureExposeCause.
//   - "Request size limits" (request body denial of service): [MaxBytes]
//     refuses a declared length over the limit before reading any of the
//     body, cuts a chunked body at the limit and closes the connection
//     instead of draining it, answers 413 even when the handler ignored the
//     read error, caps decompressed size (and compressed input), part
//     counts and multipart boundaries. [MaxURLLength] and the
//     MaxHeaderBytes guide above cover the rest of the request.
//   - "Insecure server configuration", its header half: [SecureHeaders]
//     sends nosniff, Referrer-Policy, X-Frame-Options and frame-ancestors,
//     Cross-Origin-Opener-Policy, a nonce-based Content-Security-Policy and
//     (on HTTPS) a two-year HSTS with includeSubDomains, on every response
//     below it, refusals and panics included, and [HTTPSRedirect] moves
//     plain HTTP to HTTPS.
//   - Rate limiting, "connection limits per client and globally" and
//     resource exhaustion: [RateLimit] counts every request before it
//     checks it (including refused ones), so no concurrent burst gets past
//     the limit and a client that ignores Retry-After stays limited. The
//     client is chi's trusted-proxy resolver's address or the TCP peer,
//     grouped by /64 for IPv6 (an address in a NAT64 prefix, 64:ff9b::/96
//     or 64:ff9b:1::/48, is one IPv4 client and counts alone), or a key of
//     the application's (user id, API key). The default is 100 requests per minute in a sliding window; a
//     refusal is a 429 with the exact Retry-After and the RateLimit-*
//     headers. The in-memory store holds at most MaxKeys clients (default
//     1<<20, about 38 bytes each: 36 MiB measured for a million, given
//     back as windows pass); when it is full, new clients share one count
//     per shard and are limited together, never let through. A store
//     error is a 503 (fail closed) unless InsecureFailOpen is set.
//   - [ConcurrencyLimit] caps requests in flight (1024 by default) and per
//     client (32), with a FIFO queue of Max/4 waiting up to 1 s, and sheds
//     with 503 and Retry-After (chi's Throttle answers 429 without one). A
//     slot is held only while the handler runs, and HoldTimeout (30 s) sets
//     the write deadline so that a slow reader cannot pin a slot.
//   - "Blocking the event loop" and its monitoring: [LoadShed] is the Go
//     counterpart of watching Tornado's event-loop latency (Tornado has
//     none of these three limits). It takes the p99 of the runtime's
//     /sched/latencies:seconds over each 100 ms, sampled by the first
//     request of each interval (no goroutine), and above 100 ms admits only
//     MinInFlight requests; it also sheds above 4096 in flight. Latency,
//     InFlight and Overloaded are exposed for metrics.
//
// The limiter's store is go-chi/httprate's LimitCounter interface, so
// httprate-redis shares counts between replicas, but the decision is this
// package's: httprate v0.16.1 checks before it increments (two replicas
// admit twice the limit, TestRateLimitBurstAcrossReplicas), serialises
// every request on one mutex (14 allocations per request, against none
// here), sends the window length as Retry-After, and has no memory cap.
//
// Client identity: the library never reads X-Forwarded-For. Decisions
// that depend on a forwarded header (X-Forwarded-Proto for HTTPS and HSTS,
// an inbound X-Request-Id) trust it only when the TCP peer is in the
// configured TrustedProxies prefixes, never because chi's resolver, or a
// header, says the client is such an address; the zero value trusts no
// one. The TCP peer is the connection's own address on a timeouts.Server
// (recorded when the connection is accepted), else RemoteAddr as the
// first stormcellar layer (httperr.Install, outermost) received it: a
// middleware that rewrites RemoteAddr from request headers (chi's RealIP,
// gorilla's ProxyHeaders) changes neither these checks nor the per-client
// limits (TestRemoteAddrRewriterCannotForgeTrust,
// TestConnPeerBeatsRewrittenRemoteAddr). Redirect targets are
// built only from the configured host list.
//
// Fail-open cases, by design:
//
//   - A panic in a goroutine the handler started is not recoverable by any
//     middleware and ends the process (package tasks supervises those).
//   - Responses written outside the middleware (above it in the chain, or
//     net/http's own 400 and 431 for malformed requests) lack the security
//     headers, and [MaxBytes] cannot limit what middleware above it read.
//   - [MaxBytes] answers an over-long declared length when the handler
//     reads the body or starts its response, so that a route-level
//     MaxBytes can raise the limit: a handler that ignores its body runs
//     anyway (it would for any body) and its response is replaced by the
//     413. A limit crossed after the handler started streaming its
//     response can only abort the connection.
//   - [MaxBytes] removes the temporary files of a multipart form parsed
//     into the request it passed to the next handler, or copied back into
//     it by an inner layer; stormcellar's own layers that copy a request
//     (timeouts.Deadline, timeouts.BodyRate, the per-request state) copy a
//     parsed form back. A router or other middleware that copies the
//     request between MaxBytes and the handler (chi's Mux, otelhttp…)
//     hides the form from it, and net/http misses it too
//     (golang/go#74455): for routes that take uploads, put a MaxBytes at
//     route level inside the router (chi's r.Use or r.With).
//   - HSTS and the HTTPS redirect trust X-Forwarded-Proto from the
//     configured proxies as they send it (the rightmost value): a proxy
//     that passes a client's header through unchanged makes it
//     client-controlled.
//   - A CSP nonce is as secret as the page that carries it: a page cached
//     by a shared cache reuses its nonce.
//   - Rate-limit keys are 64-bit seeded hashes: a collision, negligible at
//     a million clients, would merge two clients. A shared store costs two
//     round trips per request and must enforce its own timeouts. Requests
//     whose address is unknown share one count.
//   - [ConcurrencyLimit] cannot bound a writer without deadlines (a
//     recorder), WebSocket handlers hold their slot for the life of the
//     connection, and a slow request body is package timeouts' job.
//   - [LoadShed] measures latency only while requests arrive, and it sees
//     the whole process, not only HTTP work.
//
// Where the anchors are weaker (the tests named show this package doing
// better):
//
//   - chi's Recoverer writes a 500 after the response was committed, so
//     the client gets a 200 with a cleanly ended, truncated body
//     (TestRecoverAfterFirstByte); it skips the write for a hijacked
//     connection only when the Connection header is exactly "Upgrade"
//     (TestRecoverHijacked); its 500 has an empty body, and without a chi
//     LogEntry in the context its stack goes to stderr, not to the
//     application's logger.
//   - chi's RequestSize neither checks Content-Length nor maps the error
//     to 413: a handler that ignores the read error answers 200
//     (TestChiRequestSizeAnchor), and net/http's Connection: close is lost
//     behind any wrapping writer (golang/go#73754).
//   - chi's RequestID takes any client's X-Request-Id, of any length and
//     content (TestChiRequestIDAnchor).
//   - Tornado 6.2 lets 1 KB of gzip become 1 MB past a 10 KB limit
//     (TestMaxBytesGzipBombTornadoCase), answers an oversized body with a
//     bare 400 and no 413, has no part limit before 6.5.5 (TestMaxBytes),
//     sends no security header at all (TestSecurityHeadersOnEveryResponse),
//     and redirects to whatever the request names, //evil.example
//     included (TestHTTPSRedirectNoOpenRedirect).
//   - unrolled/secure sends nothing with its zero options; SecureHeaders'
//     zero options send everything, with a fresh nonce per response
//     (TestSecureHeaders, TestSecureHeadersNonceFresh).
//
// # Performance
//
// The middleware do not pool writers or state across requests: a handler
// goroutine that outlives its request would write into another request's
// response. With the per-request state already created (as in any
// stormcellar stack), Recover, MaxBytes (on a request without a body, or
// with a declared length within the limit), SecureHeaders without a nonce,
// HTTPSRedirect (passing HTTPS through) and MaxURLLength allocate nothing.
// RequestID allocates nothing either (a generated id and its header value
// live in the per-request state); a CSP nonce costs one allocation; a
// chunked or multipart body costs one.
// The figures, side by side with chi's Recoverer, RequestSize and
// RequestID and a bare handler, and the command that measured them, are
// in BENCHMARKS.md beside this file.
package middleware

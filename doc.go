// Package stormcellar is a set of hardened net/http primitives for Go
// services: one package for each threat in Tornado's well-known list of
// web-framework threats and mitigations, composable with the standard
// library and chi, with every default set to the safe choice.
//
// It is for Go teams that put these pieces into production servers, for
// teams that copy its example service as a reference architecture, and for
// anyone learning how each attack works and how it is stopped. This package
// holds only documentation; the code is in the packages below.
//
// # Threats and where they are answered
//
// Every threat named in the Tornado threat documents, the package and
// identifier that answer it, and, where Tornado's own behaviour is weaker
// or the threat document is wrong, one line saying so.
//
//   - Unhandled errors in asynchronous code: [httperr.Write] and [httperr.HandlerFunc]
//     write one safe page and one log record for every failure; [middleware.Recover]
//     turns a handler's panic into that page (or aborts a response already started);
//     [tasks.Supervisor] recovers panics in background goroutines, which in Go would
//     otherwise end the process. Tornado logs a failed spawn_callback and moves on; a
//     Go goroutine that panics takes every request down with it.
//   - Hanging asynchronous operations (timeouts): [timeouts.WaitFor] (asyncio.wait_for:
//     the operation is cancelled), [timeouts.Deadline] per route, [timeouts.NewClient]
//     for upstream calls, a Timeout in [tasks.Options] for background work. Tornado:
//     gen.with_timeout(5, …), the threat document's own example, takes 5 as an absolute
//     time and fails at once, and the timed-out operation keeps running.
//   - Cross-site WebSocket hijacking: [wsorigin.New] compares scheme, host and port and
//     refuses null and look-alike hosts; [wsguard.New] enforces it on every handshake.
//     Tornado compares only host:port, ignores the scheme and allows a missing Origin.
//   - Cross-site scripting and auto-escaping: [safetmpl.New] (html/template with
//     typed-string bypasses closed and actions refused in script, style and event
//     handlers) and a CSP with a per-response nonce from [middleware.SecureHeaders].
//     Tornado escapes for the HTML body only, not for URL, JavaScript or CSS contexts.
//   - Oversized requests: [middleware.MaxBytes] (413 before the body is read,
//     decompressed size capped), [middleware.MaxURLLength], and [timeouts.NewServer]'s
//     64 KiB header limit. The threat document is wrong: max_body_size is an HTTPServer
//     argument (as an Application setting it is silently ignored), an oversized body
//     gets a bare 400, not 413, and Tornado 6.2 lets 1 KB of gzip grow to 1 MB past it.
//   - Debug mode and information leakage: causes and stacks reach a page only through
//     InsecureExposeCause in [httperr.Options]; [timeouts.CheckServer] finds pprof and
//     expvar on a public mux. The threat documents are wrong twice: Tornado's debug mode
//     has no interactive debugger (it adds tracebacks, autoreload and no caching), and
//     there is no X-Tornado-Version header (the banner is Server: TornadoServer/x.y).
//   - Outdated dependencies: .ci/run prints the available module updates on every run;
//     the README shows how to run govulncheck.
//   - Asynchronous reentrancy and races on shared state: [keyedmutex.Map] (per-key
//     locks with cleanup and a cap on keys). Tornado has no keyed lock, and its
//     Lock.acquire(timeout=0) waits forever.
//   - Blocking the event loop: [tasks.Pool] (bounded workers, 503 when the queue wait
//     runs out), [middleware.LoadShed] (scheduler latency, Go's event-loop latency) and
//     [middleware.ConcurrencyLimit].
//   - WebSocket injection: strict JSON message decoding in [wsguard] (unknown fields,
//     trailing data, size), and [safetmpl] data islands for what pages show.
//   - WebSocket resource exhaustion: [wsguard.New] (global and per-client connection
//     caps, message size and rate limits, heartbeat, write timeout, drain with close
//     1001). Tornado has no WebSocket connection cap and no ping by default.
//   - Slowloris and slow POST: [timeouts.NewServer] (header deadline, minimum body rate,
//     connection caps per client and in total). The threat document is wrong:
//     HTTPServer has no header_timeout; the header deadline is idle_connection_timeout,
//     3600 s by default, and there is no body timeout by default.
//   - Insecure server configuration: [timeouts.NewServer] and [timeouts.CheckServer],
//     [middleware.SecureHeaders] (HSTS, CSP, frame-ancestors…) and
//     [middleware.HTTPSRedirect] (no open redirect). Tornado sends no security header at
//     all, and its xheaders setting trusts forwarded headers from any peer.
//   - Server-side template injection: [safetmpl.Const] and the FS of [safetmpl.Options]
//     are the only template sources, so request data never becomes template text. In
//     Tornado it is code execution, and the template can read the cookie secret.
//   - Weak cookie secret, cookie forgery and XSRF bypass: [cookiesecret.ParseKeyring]
//     refuses short, low-entropy and sample secrets, [cookiesecret.NewCookie] signs (and
//     encrypts) with key rotation, [cookiesecret.NewXSRF] layers origin checks and
//     signed, masked tokens, and [cookiesecret.NewTornado] reads and writes Tornado's
//     signed values during a migration. The threat document is wrong on XSRF: Tornado's
//     XSRF cookie is not signed with cookie_secret at all, so a weak secret does not
//     bypass it, but a planted cookie does.
//
// [httperr.Install] goes first in every stack: every other package rejects
// requests through [httperr.Write], so one page design, one log format and
// one metrics hook cover them all.
//
// [cookiesecret.NewCookie]: https://pkg.go.dev/github.com/stormcellar/stormcellar/cookiesecret#NewCookie
// [cookiesecret.NewTornado]: https://pkg.go.dev/github.com/stormcellar/stormcellar/cookiesecret#NewTornado
// [cookiesecret.NewXSRF]: https://pkg.go.dev/github.com/stormcellar/stormcellar/cookiesecret#NewXSRF
// [cookiesecret.ParseKeyring]: https://pkg.go.dev/github.com/stormcellar/stormcellar/cookiesecret#ParseKeyring
// [httperr.HandlerFunc]: https://pkg.go.dev/github.com/stormcellar/stormcellar/httperr#HandlerFunc
// [httperr.Install]: https://pkg.go.dev/github.com/stormcellar/stormcellar/httperr#Install
// [httperr.Options]: https://pkg.go.dev/github.com/stormcellar/stormcellar/httperr#Options
// [httperr.Write]: https://pkg.go.dev/github.com/stormcellar/stormcellar/httperr#Write
// [keyedmutex.Map]: https://pkg.go.dev/github.com/stormcellar/stormcellar/keyedmutex#Map
// [middleware.ConcurrencyLimit]: https://pkg.go.dev/github.com/stormcellar/stormcellar/middleware#ConcurrencyLimit
// [middleware.HTTPSRedirect]: https://pkg.go.dev/github.com/stormcellar/stormcellar/middleware#HTTPSRedirect
// [middleware.LoadShed]: https://pkg.go.dev/github.com/stormcellar/stormcellar/middleware#LoadShed
// [middleware.MaxBytes]: https://pkg.go.dev/github.com/stormcellar/stormcellar/middleware#MaxBytes
// [middleware.MaxURLLength]: https://pkg.go.dev/github.com/stormcellar/stormcellar/middleware#MaxURLLength
// [middleware.Recover]: https://pkg.go.dev/github.com/stormcellar/stormcellar/middleware#Recover
// [middleware.SecureHeaders]: https://pkg.go.dev/github.com/stormcellar/stormcellar/middleware#SecureHeaders
// [safetmpl]: https://pkg.go.dev/github.com/stormcellar/stormcellar/safetmpl
// [safetmpl.Const]: https://pkg.go.dev/github.com/stormcellar/stormcellar/safetmpl#Const
// [safetmpl.New]: https://pkg.go.dev/github.com/stormcellar/stormcellar/safetmpl#New
// [safetmpl.Options]: https://pkg.go.dev/github.com/stormcellar/stormcellar/safetmpl#Options
// [tasks.Options]: https://pkg.go.dev/github.com/stormcellar/stormcellar/tasks#Options
// [tasks.Pool]: https://pkg.go.dev/github.com/stormcellar/stormcellar/tasks#Pool
// [tasks.Supervisor]: https://pkg.go.dev/github.com/stormcellar/stormcellar/tasks#Supervisor
// [timeouts.CheckServer]: https://pkg.go.dev/github.com/stormcellar/stormcellar/timeouts#CheckServer
// [timeouts.Deadline]: https://pkg.go.dev/github.com/stormcellar/stormcellar/timeouts#Deadline
// [timeouts.NewClient]: https://pkg.go.dev/github.com/stormcellar/stormcellar/timeouts#NewClient
// [timeouts.NewServer]: https://pkg.go.dev/github.com/stormcellar/stormcellar/timeouts#NewServer
// [timeouts.WaitFor]: https://pkg.go.dev/github.com/stormcellar/stormcellar/timeouts#WaitFor
// [wsguard]: https://pkg.go.dev/github.com/stormcellar/stormcellar/wsguard
// [wsguard.New]: https://pkg.go.dev/github.com/stormcellar/stormcellar/wsguard#New
// [wsorigin.New]: https://pkg.go.dev/github.com/stormcellar/stormcellar/wsorigin#New
package stormcellar

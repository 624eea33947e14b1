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
//   - Unhandled errors in asynchronous code: [github.com/stormcellar/stormcellar/httperr]
//     ([httperr.Write], [httperr.HandlerFunc]) writes one safe page and one log record for
//     every failure. Tornado logs and answers 500 too, but a handler's own error path is
//     free-form; here every package rejects through one choke point.
//   - Hanging asynchronous operations (timeouts): package timeouts (planned).
//     Tornado: gen.with_timeout(5, …) takes 5 as an absolute time and fails at once (the
//     threat document's own example), and the timed-out operation keeps running.
//   - Cross-site WebSocket hijacking: package wsorigin (planned). Tornado compares only
//     host:port, ignores the scheme and allows a missing Origin.
//   - Cross-site scripting and auto-escaping: package safetmpl (planned). Tornado escapes
//     for the HTML body only, not for URL, JavaScript or CSS contexts.
//   - Oversized requests: package middleware, MaxBytes (planned). The threat document is
//     wrong: max_body_size is an HTTPServer argument (as an Application setting it is
//     silently ignored) and an oversized body gets a bare 400, not 413.
//   - Debug mode and information leakage: [httperr.Options] shows causes only with
//     InsecureExposeCause, off by default. The threat documents are wrong twice: Tornado's
//     debug mode has no interactive debugger (it adds tracebacks, autoreload and no
//     caching), and there is no X-Tornado-Version header (the banner is
//     Server: TornadoServer/x.y).
//   - Outdated dependencies: .ci/run prints the available module updates on every run;
//     the README shows how to run govulncheck.
//   - Asynchronous reentrancy and races on shared state: package keyedmutex (planned).
//     Tornado has no keyed lock, and its Lock(timeout=0) waits forever.
//   - Blocking the event loop: package tasks (bounded pools) and middleware.LoadShed
//     (planned).
//   - WebSocket injection: package wsguard, strict message decoding (planned).
//   - WebSocket resource exhaustion: package wsguard (planned). Tornado has no
//     WebSocket connection cap and no ping by default.
//   - Slowloris and slow POST: package timeouts (planned). The threat document is wrong:
//     HTTPServer has no header_timeout; the header deadline is idle_connection_timeout,
//     3600 s by default, and there is no body timeout by default.
//   - Insecure server configuration: packages timeouts and middleware (planned).
//   - Server-side template injection: package safetmpl (planned). In Tornado it is code
//     execution, and the template can read the cookie secret.
//   - Weak cookie secret, cookie forgery and XSRF bypass: package cookiesecret (planned).
//     The threat document is wrong on XSRF: Tornado's XSRF cookie is not signed with
//     cookie_secret at all, so a weak secret does not bypass it, but a planted cookie does.
package stormcellar

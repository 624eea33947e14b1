// Package wsorigin provides the origin policy for WebSocket handshakes
// (and, optionally, other state-changing requests): same-origin by
// default, a full-origin allowlist, anchored subdomain wildcards, a
// configured public origin for deployments behind proxies, and a list
// loaded from an environment variable. It plugs into
// github.com/coder/websocket ([Policy.Accept], [Policy.AcceptOptions])
// and into any net/http stack ([Policy.Handler]).
//
//	policy, err := wsorigin.New(wsorigin.Options{
//		PublicOrigin: "https://chat.example.com",
//		Allowed:      []string{"https://*.example.com", "http://localhost:3000"},
//	})
//	...
//	c, err := policy.Accept(w, r, nil) // 403 through httperr when refused
//
// # Threat model
//
// Cross-site WebSocket hijacking (seed threat documents 000 "Validate
// WebSocket Origin" and 001 "WebSocket Injection"): a WebSocket handshake
// is a GET that carries the victim's cookies, and browsers apply neither
// CORS nor the same-origin policy to it. Any page the victim visits can
// open a socket to the application and act as the user unless the server
// checks the Origin header. The browser sets Origin itself and page
// scripts cannot forge it, so checking it strictly is a complete defence
// against hijacking from browsers.
//
// Default behaviour (zero [Options]): only the same origin is allowed —
// same scheme, host and port, compared after normalisation, where the
// server's origin is PublicOrigin if set, else derived from the request
// (https when it came over TLS, else http, with the Host header). Refused:
// every other origin; "null" (sandboxed iframes, file: and data: pages);
// more than one Origin header; a value with user info, a path (even "/"),
// a query, a fragment, spaces, non-ASCII bytes, or longer than
// [MaxOriginLen]; malformed hosts and ports, including the numeric host
// forms browsers never send (127.1, 0x7f.0.0.1). A refusal through
// [Policy.Handler] or [Policy.Accept] is a 403 rendered by httperr with
// kind [httperr.KindOrigin], logged once with the refused value (quoted,
// truncated to 100 bytes).
//
// Matching: an Allowed entry matches only the same scheme, host and port
// (default ports are filled in, so https://example.com and
// https://example.com:443 are equal, and http://example.com is a different
// origin). A wildcard https://*.example.com matches a.example.com and
// a.b.example.com, never example.com, example.com.evil.com or
// evilexample.com. Host names are compared in lower-case ASCII:
// configured internationalised names are converted to punycode, and an
// Origin header must already be ASCII, as every browser sends it.
//
// Fail-open cases, all deliberate and documented on their fields:
//   - A request with no Origin header and no Sec-Fetch-* headers is
//     allowed unless Options.RequireOrigin is set. Browsers always send
//     Origin on a handshake, so only non-browser clients are let through,
//     and those can send any Origin they like anyway. Authenticate such
//     clients with something other than ambient cookies.
//   - Without PublicOrigin the same origin comes from the Host header.
//     A DNS-rebinding page (the attacker's name resolving to this server)
//     then looks same-origin; set PublicOrigin in production.
//   - Without PublicOrigin a server behind a TLS-terminating proxy sees
//     plain HTTP and refuses its own https:// pages (fail closed); set
//     PublicOrigin rather than reaching for a wildcard.
//   - Forwarded headers are never read, so they cannot be used to spoof
//     the same origin; that is also why PublicOrigin must be configured.
//
// # Where the anchors are weaker
//
// Tornado's WebSocketHandler.check_origin compares the Origin's host:port
// with the raw Host header: it ignores the scheme (http://host is allowed
// for an https:// server), allows a missing Origin even from browsers,
// accepts a path in the Origin, and refuses a same-origin request whose
// Host differs only in case. coder/websocket compares the Origin host with
// the Host header ignoring the scheme, and matches OriginPatterns with
// path.Match on the host alone unless the pattern has a scheme, so
// "example.com" admits http://example.com for an https site, "*example.com"
// admits evilexample.com, "*" admits "null", and a bad pattern is only
// discovered at request time. gorilla/websocket users who set CheckOrigin
// to return true produced advisories such as GHSA-q355-h244-969h and
// CVE-2026-34403. This package validates every pattern at construction,
// compares scheme, host and port, and never lets a pattern match more than
// it says. TestRealTornadoAcceptsWhatPolicyRefuses runs the same
// handshakes against a real Tornado server (Debian python3-tornado),
// TestHandshakeAgainstAnchors against coder/websocket's Accept on real
// listeners, and TestAnchorsAcceptWhatPolicyRefuses shows path.Match
// patterns (character classes, "?", ":*") admitting what wsorigin refuses.
//
// [Policy.Accept] and [Policy.AcceptOptions] keep coder/websocket's own
// check switched on: they pass it exactly the one origin the policy
// allowed, so coder/websocket can only narrow the decision, never widen
// it.
package wsorigin

package wsorigin

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/coder/websocket"
	"github.com/stormcellar/stormcellar/httperr"
)

// Options configures a [Policy]. The zero value is the strictest useful
// policy: same-origin only, with the origin derived from the request.
type Options struct {
	// PublicOrigin is the origin browsers use to reach this server, such
	// as "https://app.example.com". Set it whenever the server sits
	// behind a proxy, a load balancer or TLS termination: same-origin then
	// means exactly this origin, and neither the Host header nor the
	// request's TLS state is consulted. It also stops DNS rebinding, where
	// an attacker's host name resolves to this server and the browser
	// sends that name as both Host and Origin.
	//
	// If empty, the same origin is derived from the request: "https" when
	// it arrived over TLS, else "http", and the Host header. Forwarded
	// headers (X-Forwarded-Proto, Forwarded…) are never read.
	PublicOrigin string

	// Allowed lists the other origins that may connect, each a full origin
	// "scheme://host[:port]" (https://app.example.com,
	// http://localhost:3000) or an anchored subdomain wildcard
	// "scheme://*.example.com[:port]", which matches any host ending in
	// ".example.com" (a.example.com, a.b.example.com) but not example.com
	// itself, with the same scheme and port. Entries are normalised (case,
	// default port, trailing dot, internationalised names to punycode).
	// An entry with a path (even "/"), query, user info, a bare "*", a
	// wildcard anywhere but the whole leftmost label, a wildcard over a
	// public suffix (*.com, *.github.io) or "null" makes [New] fail.
	// If empty, only the same origin is allowed.
	Allowed []string

	// RequireOrigin refuses requests that carry no Origin header at all.
	// If false (the default), such a request is allowed only when it also
	// carries no browser fetch metadata (Sec-Fetch-Site, Sec-Fetch-Mode):
	// every browser sends Origin on a WebSocket handshake and on any
	// non-GET request, so a request without it comes from a non-browser
	// client, which could put any Origin it liked and so gains nothing
	// from the check. Turn it on when only browsers should connect.
	RequireOrigin bool

	// CheckUnsafeMethods makes [Policy.Handler] also check every request
	// whose method is not GET, HEAD, OPTIONS or TRACE, not only WebSocket
	// handshakes. If false (the default), only handshakes are checked;
	// net/http's CrossOriginProtection (middleware.CrossOrigin) is the
	// usual guard for forms and APIs.
	CheckUnsafeMethods bool
}

// Policy decides which origins may open a WebSocket (or, optionally, send
// a state-changing request). It is immutable and safe for concurrent use
// by multiple goroutines. The zero Policy is the same-origin policy of
// zero [Options].
type Policy struct {
	public    *Origin
	exact     map[Origin]struct{}
	wildcards []pattern
	require   bool
	unsafe    bool
}

// New validates opts and returns the policy. Every invalid entry is
// reported (joined with [errors.Join]), each as a [*PatternError] naming
// its position and wrapping [ErrBadPattern].
func New(opts Options) (*Policy, error) {
	p := &Policy{require: opts.RequireOrigin, unsafe: opts.CheckUnsafeMethods,
		exact: make(map[Origin]struct{}, len(opts.Allowed))}
	var errs []error
	if opts.PublicOrigin != "" {
		pat, err := parsePattern("PublicOrigin", opts.PublicOrigin)
		switch {
		case err != nil:
			errs = append(errs, err)
		case pat.wildcard:
			errs = append(errs, &PatternError{Source: "PublicOrigin", Pattern: opts.PublicOrigin,
				Reason: "the public origin cannot be a wildcard"})
		default:
			p.public = &pat.Origin
		}
	}
	for i, s := range opts.Allowed {
		pat, err := parsePattern(fmt.Sprintf("Allowed[%d]", i), s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if pat.wildcard {
			p.wildcards = append(p.wildcards, pat)
		} else {
			p.exact[pat.Origin] = struct{}{}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// Check applies the policy to the request's Origin header and returns nil
// when it may proceed. A refusal wraps one of [ErrMissing], [ErrMultiple],
// [ErrNull], [ErrMalformed], [ErrTooLong] or [ErrNotAllowed]; the text
// quotes at most 100 bytes of the offending value.
//
// The header is looked up as Origin and, only when that is absent, as the
// pre-RFC Sec-WebSocket-Origin. Check never panics.
func (p *Policy) Check(r *http.Request) error {
	vals := r.Header["Origin"]
	if len(vals) == 0 {
		vals = r.Header["Sec-Websocket-Origin"]
	}
	switch {
	case len(vals) > 1:
		return fmt.Errorf("%w (%d)", ErrMultiple, len(vals))
	case len(vals) == 0 || vals[0] == "":
		if p.require {
			return ErrMissing
		}
		if r.Header.Get("Sec-Fetch-Site") != "" || r.Header.Get("Sec-Fetch-Mode") != "" {
			return fmt.Errorf("%w from a browser request (Sec-Fetch-* present)", ErrMissing)
		}
		return nil
	}
	o, err := ParseOrigin(vals[0])
	if err != nil {
		if errors.Is(err, ErrMalformed) {
			return fmt.Errorf("%w: %q", ErrMalformed, truncate(vals[0], 100))
		}
		return err
	}
	if p.AllowsOrigin(o) || p.sameOrigin(r, &o) {
		return nil
	}
	return fmt.Errorf("%w: %q", ErrNotAllowed, truncate(vals[0], 100))
}

// AllowsOrigin reports whether o is the configured PublicOrigin or matches
// an Allowed entry. It does not know the request, so it cannot apply the
// derived same-origin rule; use [Policy.Check] for requests.
func (p *Policy) AllowsOrigin(o Origin) bool {
	if p.public != nil && *p.public == o {
		return true
	}
	if _, ok := p.exact[o]; ok {
		return true
	}
	for i := range p.wildcards {
		if p.wildcards[i].match(&o) {
			return true
		}
	}
	return false
}

// sameOrigin compares o with the origin derived from the request, when no
// PublicOrigin is configured.
func (p *Policy) sameOrigin(r *http.Request, o *Origin) bool {
	if p.public != nil {
		return false
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if o.Scheme != scheme || r.Host == "" || len(r.Host) > MaxOriginLen {
		return false
	}
	host, port, why := splitHostPort(r.Host)
	if why != "" {
		return false
	}
	pn := defaultPort(scheme)
	if port != "" {
		var ok bool
		if pn, ok = parsePort(port); !ok {
			return false
		}
	}
	if pn != o.Port {
		return false
	}
	h, why := normaliseHost(host, false)
	return why == "" && h == o.Host
}

// Handler returns middleware that refuses, with 403 through httperr (kind
// [httperr.KindOrigin]), every WebSocket handshake (a request whose Upgrade
// header names websocket) that [Policy.Check] refuses, and, with
// Options.CheckUnsafeMethods, every state-changing request too. Other
// requests pass untouched.
func (p *Policy) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isUpgrade(r) || (p.unsafe && !safeMethod(r.Method)) {
			if err := p.Check(r); err != nil {
				httperr.Write(w, r, httperr.Forbidden(httperr.KindOrigin, err))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func safeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// isUpgrade reports whether r asks for a WebSocket upgrade.
func isUpgrade(r *http.Request) bool {
	for _, v := range r.Header["Upgrade"] {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), "websocket") {
				return true
			}
		}
	}
	return false
}

// AcceptOptions checks r against the policy and returns a copy of base
// (which may be nil) ready for [websocket.Accept]: InsecureSkipVerify is
// forced off and OriginPatterns holds exactly the one origin this request
// carries, escaped so that path.Match treats it literally. coder/websocket
// therefore still runs its own origin check, and it can only admit what
// the policy admitted. When r has no Origin, coder/websocket's rule
// (missing Origin allowed) agrees with the policy's decision.
//
// On refusal it returns the error from [Policy.Check] and nil options;
// nothing is written to the client.
func (p *Policy) AcceptOptions(r *http.Request, base *websocket.AcceptOptions) (*websocket.AcceptOptions, error) {
	if err := p.Check(r); err != nil {
		return nil, err
	}
	var o websocket.AcceptOptions
	if base != nil {
		o = *base
	}
	o.InsecureSkipVerify = false
	o.OriginPatterns = nil
	vals := r.Header["Origin"]
	if len(vals) == 1 {
		o.OriginPatterns = []string{coderPattern(vals[0])}
	}
	return &o, nil
}

// coderPattern returns the path.Match pattern that matches exactly the
// scheme://host[:port] coder/websocket derives from origin (it lower-cases
// both sides and compares scheme + "://" + url.Host). The policy only lets
// through origins without user info, path or wildcard characters, so the
// value is the whole origin; brackets and backslashes are escaped.
func coderPattern(origin string) string {
	var b strings.Builder
	b.Grow(len(origin) + 4)
	for i := 0; i < len(origin); i++ {
		switch c := origin[i]; c {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Accept checks r against the policy and, if it passes, upgrades the
// connection with [websocket.Accept] using [Policy.AcceptOptions]. A
// refused origin gets a 403 through httperr (kind [httperr.KindOrigin]),
// not coder/websocket's plain-text error, and the error is returned.
func (p *Policy) Accept(w http.ResponseWriter, r *http.Request, opts *websocket.AcceptOptions) (*websocket.Conn, error) {
	o, err := p.AcceptOptions(r, opts)
	if err != nil {
		httperr.Write(w, r, httperr.Forbidden(httperr.KindOrigin, err))
		return nil, err
	}
	return websocket.Accept(w, r, o)
}

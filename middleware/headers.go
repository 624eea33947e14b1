package middleware

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/stormcellar/stormcellar/internal/reqstate"
)

// NoncePlaceholder stands for the per-response nonce in a
// Content-Security-Policy given to [NewSecureHeaders], as in
// "script-src 'nonce-{nonce}'".
const NoncePlaceholder = "{nonce}"

// DefaultCSP is the policy [SecureHeaders] sends when none is configured:
// a strict, nonce-based policy. Scripts run only if they carry the
// response's nonce (and, through 'strict-dynamic', the scripts those load);
// inline event handlers, javascript: URLs, plugins and <base> are refused;
// everything else loads from the page's own origin; forms post only to it.
// frame-ancestors is added from the framing setting.
const DefaultCSP = "default-src 'self'; " +
	"script-src 'nonce-" + NoncePlaceholder + "' 'strict-dynamic'; " +
	"style-src 'self' 'nonce-" + NoncePlaceholder + "'; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'"

// DefaultHSTSMaxAge is the HSTS max-age sent when none is configured: two
// years, the value the preload list asks for.
const DefaultHSTSMaxAge = 2 * 365 * 24 * time.Hour

// ErrHeaderValue is returned by [NewSecureHeaders] when a configured value
// cannot be sent as it is (control characters, an unknown token, a fixed
// nonce, a preload request that the preload list would refuse).
var ErrHeaderValue = errors.New("middleware: invalid security header setting")

// SecureHeadersOptions configure [NewSecureHeaders]. The zero value sends
// every header with its strictest common setting.
type SecureHeadersOptions struct {
	// ContentSecurityPolicy is the policy sent on every response. Each
	// {nonce} is replaced by a fresh random nonce per response, which
	// templates read with [CSPNonce]. A policy without a frame-ancestors
	// directive gets one from the framing setting. Default: [DefaultCSP].
	ContentSecurityPolicy string
	// InsecureCSPReportOnly sends the policy as
	// Content-Security-Policy-Report-Only: violations are reported (to the
	// policy's report-to or report-uri), not blocked. For rolling a policy
	// out, never for good. Default off.
	InsecureCSPReportOnly bool
	// InsecureNoCSP sends no Content-Security-Policy at all (X-Frame-Options
	// still guards framing). Default off.
	InsecureNoCSP bool

	// AllowSameOriginFraming lets the service's own pages frame its
	// responses: X-Frame-Options: SAMEORIGIN and frame-ancestors 'self'.
	// Default off: DENY and frame-ancestors 'none', no framing at all.
	AllowSameOriginFraming bool

	// ReferrerPolicy is the Referrer-Policy value, a comma-separated list
	// of policy tokens. Default "no-referrer".
	ReferrerPolicy string
	// CrossOriginOpenerPolicy is the Cross-Origin-Opener-Policy value:
	// "same-origin", "same-origin-allow-popups", "noopener-allow-popups" or
	// "unsafe-none". Default "same-origin".
	CrossOriginOpenerPolicy string

	// HSTSMaxAge is the max-age of Strict-Transport-Security, sent on
	// every response to a request that came over HTTPS, directly or
	// through a trusted proxy (never over plain HTTP, where browsers ignore
	// it). It is rounded down to whole seconds. Zero or negative means
	// [DefaultHSTSMaxAge] (two years).
	HSTSMaxAge time.Duration
	// HSTSPreload adds "preload", asking browsers' preload lists to include
	// the domain. It needs a max-age of at least one year and subdomains
	// included. Opt in only once every subdomain serves HTTPS: removal
	// from the lists takes months. Default off.
	HSTSPreload bool
	// InsecureHSTSNoSubdomains leaves includeSubDomains out, so a
	// subdomain served over HTTP (or an attacker's, on a network they
	// control) can set cookies for the parent domain. Default off.
	InsecureHSTSNoSubdomains bool
	// InsecureNoHSTS sends no Strict-Transport-Security. Default off.
	InsecureNoHSTS bool

	// TrustedProxies are the TCP peers whose X-Forwarded-Proto: https
	// makes a plain-HTTP connection count as HTTPS for HSTS. Any other
	// peer's X-Forwarded-Proto is ignored. Default: none.
	TrustedProxies []netip.Prefix
}

// SecureHeaders is middleware that sets the browser security headers on
// every response: X-Content-Type-Options: nosniff, Referrer-Policy,
// X-Frame-Options and CSP frame-ancestors, Cross-Origin-Opener-Policy,
// Content-Security-Policy with a per-response nonce, and HSTS on HTTPS.
//
// The headers are set before the next handler runs, so they are on every
// response produced below it: pages, redirects, 404s, and the rejections
// and panics that stormcellar middleware turn into error pages (which keep
// the headers already set). Put it near the top of the chain (see
// [Chain]); responses written above it, and the 431 or 400 that net/http
// itself sends for a malformed request, do not have them.
//
// The header values are shared, read-only, between responses (that is why
// they cost no allocation). A handler may replace one with Header().Set or
// Del, or Add to it, but must never write into the value slice itself
// (w.Header()["X-Frame-Options"][0] = …), which would change it for every
// response.
//
// It is safe for concurrent use.
type SecureHeaders struct {
	static   []headerValue
	cspKey   string
	cspParts []string // policy split around the nonce; nil when no nonce
	hsts     []string
	trusted  proxies
}

// NewSecureHeaders returns the middleware configured by opts, or an error
// wrapping [ErrHeaderValue] or [ErrTrustedProxy] naming the bad setting.
func NewSecureHeaders(opts SecureHeadersOptions) (*SecureHeaders, error) {
	ps, err := newProxies("TrustedProxies", opts.TrustedProxies)
	if err != nil {
		return nil, err
	}
	m := &SecureHeaders{trusted: ps}

	xfo, ancestors := "DENY", "frame-ancestors 'none'"
	if opts.AllowSameOriginFraming {
		xfo, ancestors = "SAMEORIGIN", "frame-ancestors 'self'"
	}
	referrer := opts.ReferrerPolicy
	if referrer == "" {
		referrer = "no-referrer"
	} else if err := checkReferrerPolicy(referrer); err != nil {
		return nil, err
	}
	coop := opts.CrossOriginOpenerPolicy
	switch coop {
	case "":
		coop = "same-origin"
	case "same-origin", "same-origin-allow-popups", "noopener-allow-popups", "unsafe-none":
	default:
		return nil, fmt.Errorf("%w: CrossOriginOpenerPolicy %q is not a known value", ErrHeaderValue, coop)
	}
	m.add("X-Content-Type-Options", "nosniff")
	m.add("X-Frame-Options", xfo)
	m.add("Referrer-Policy", referrer)
	m.add("Cross-Origin-Opener-Policy", coop)

	if !opts.InsecureNoCSP {
		policy := opts.ContentSecurityPolicy
		if policy == "" {
			policy = DefaultCSP
		}
		policy = strings.TrimRight(strings.TrimSpace(policy), ";")
		if err := checkCSP(policy); err != nil {
			return nil, err
		}
		if !hasDirective(policy, "frame-ancestors") {
			policy += "; " + ancestors
		}
		m.cspKey = "Content-Security-Policy"
		if opts.InsecureCSPReportOnly {
			m.cspKey = "Content-Security-Policy-Report-Only"
		}
		if strings.Contains(policy, NoncePlaceholder) {
			m.cspParts = strings.Split(policy, NoncePlaceholder)
		} else {
			m.add(m.cspKey, policy)
		}
	}

	if !opts.InsecureNoHSTS {
		age := opts.HSTSMaxAge / time.Second
		if opts.HSTSMaxAge <= 0 {
			age = DefaultHSTSMaxAge / time.Second
		}
		v := "max-age=" + strconv.FormatInt(int64(age), 10)
		if !opts.InsecureHSTSNoSubdomains {
			v += "; includeSubDomains"
		}
		if opts.HSTSPreload {
			if opts.InsecureHSTSNoSubdomains || age < 365*24*60*60 {
				return nil, fmt.Errorf("%w: HSTSPreload needs a max-age of at least one year and subdomains included", ErrHeaderValue)
			}
			v += "; preload"
		}
		m.hsts = []string{v}
	}
	return m, nil
}

func (m *SecureHeaders) add(key, value string) {
	// A shared, read-only slice of capacity 1: setting it costs no
	// allocation, and Header.Add on it copies instead of writing into it.
	m.static = append(m.static, headerValue{key, []string{value}[:1:1]})
}

type headerValue struct {
	key string
	val []string
}

// Handler returns next wrapped by the middleware.
func (m *SecureHeaders) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		for _, hv := range m.static {
			h[hv.key] = hv.val
		}
		if m.hsts != nil && m.trusted.isHTTPS(r) {
			h["Strict-Transport-Security"] = m.hsts
		}
		if m.cspParts != nil {
			var st *reqstate.State
			orig := r
			st, w, r = reqstate.Ensure(w, r)
			if r != orig {
				defer reqstate.KeepForm(orig, r)
			}
			policy, nonce := m.noncePolicy(st.Nonce)
			st.Nonce = nonce
			h[m.cspKey] = st.CSPHeader(policy)
		}
		next.ServeHTTP(w, r)
	})
}

// nonceLen is the length of a nonce: 16 random bytes in unpadded base64url
// (RFC 4648 §5), which CSP accepts and which no HTML or JS context needs
// to escape.
const nonceLen = 22

// noncePolicy returns the policy with a nonce in place of each
// placeholder, and the nonce (a substring of the policy, so one
// allocation serves both). The nonce is the response's nonce if it already
// has one (prev, from a SecureHeaders further out: every policy of a
// response must accept the nonce its pages carry), or a fresh one.
func (m *SecureHeaders) noncePolicy(prev string) (policy, nonce string) {
	var enc [nonceLen]byte
	if len(prev) == nonceLen {
		copy(enc[:], prev)
	} else {
		var raw [16]byte
		_, _ = rand.Read(raw[:]) // never fails since Go 1.24; crashes the program if the OS cannot supply randomness
		base64.RawURLEncoding.Encode(enc[:], raw[:])
	}

	n := 0
	for _, p := range m.cspParts {
		n += len(p)
	}
	n += nonceLen * (len(m.cspParts) - 1)
	var b strings.Builder
	b.Grow(n)
	for i, p := range m.cspParts {
		if i > 0 {
			b.Write(enc[:])
		}
		b.WriteString(p)
	}
	policy = b.String()
	start := len(m.cspParts[0])
	return policy, policy[start : start+nonceLen]
}

// CSPNonce returns the Content-Security-Policy nonce of the response being
// built for the request whose context is ctx, for templates to put in
// <script nonce="…"> and <style nonce="…">; "" when [SecureHeaders] with a
// nonce policy is not installed. The nonce is fresh for every response: do
// not cache a page that carries it in a shared cache.
func CSPNonce(ctx context.Context) string {
	if st := reqstate.From(ctx); st != nil {
		return st.Nonce
	}
	return ""
}

// checkCSP refuses what cannot be sent or defeats the nonce: control or
// non-ASCII characters, and a nonce written into the policy instead of the
// placeholder (a fixed nonce is public and allows any script).
func checkCSP(policy string) error {
	if policy == "" {
		return fmt.Errorf("%w: ContentSecurityPolicy is empty after trimming", ErrHeaderValue)
	}
	for i := 0; i < len(policy); i++ {
		if c := policy[i]; c < 0x20 || c > 0x7e {
			return fmt.Errorf("%w: ContentSecurityPolicy has a control or non-ASCII byte at %d", ErrHeaderValue, i)
		}
	}
	rest := policy
	for {
		i := strings.Index(strings.ToLower(rest), "'nonce-")
		if i < 0 {
			break
		}
		rest = rest[i+len("'nonce-"):]
		if !strings.HasPrefix(rest, NoncePlaceholder+"'") {
			return fmt.Errorf("%w: ContentSecurityPolicy has a fixed nonce; write 'nonce-%s' to get a fresh one per response", ErrHeaderValue, NoncePlaceholder)
		}
	}
	if strings.Count(policy, "{") != strings.Count(policy, NoncePlaceholder) {
		return fmt.Errorf("%w: ContentSecurityPolicy has a '{' that is not part of %s", ErrHeaderValue, NoncePlaceholder)
	}
	return nil
}

// hasDirective reports whether policy has the named directive.
func hasDirective(policy, name string) bool {
	for d := range strings.SplitSeq(policy, ";") {
		f := strings.Fields(d)
		if len(f) > 0 && strings.EqualFold(f[0], name) {
			return true
		}
	}
	return false
}

func checkReferrerPolicy(v string) error {
	for tok := range strings.SplitSeq(v, ",") {
		switch strings.TrimSpace(tok) {
		case "no-referrer", "no-referrer-when-downgrade", "origin", "origin-when-cross-origin",
			"same-origin", "strict-origin", "strict-origin-when-cross-origin", "unsafe-url":
		default:
			return fmt.Errorf("%w: ReferrerPolicy token %q is not a known policy", ErrHeaderValue, strings.TrimSpace(tok))
		}
	}
	return nil
}

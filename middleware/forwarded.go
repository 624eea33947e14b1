package middleware

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/stormcellar/stormcellar/internal/clientip"
)

// ErrTrustedProxy is returned by the constructors that take trusted proxy
// prefixes when one of them is not a valid CIDR prefix (the zero
// [netip.Prefix], for instance).
var ErrTrustedProxy = errors.New("middleware: invalid trusted proxy prefix")

// proxies is a validated list of trusted proxy prefixes.
type proxies []netip.Prefix

// newProxies checks and normalises the trusted proxy prefixes of an
// options struct. IPv4-mapped IPv6 prefixes (::ffff:10.0.0.0/104) are
// turned into their IPv4 form, because peer addresses are unmapped before
// they are compared.
func newProxies(field string, in []netip.Prefix) (proxies, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make(proxies, 0, len(in))
	for i, p := range in {
		if !p.IsValid() {
			return nil, fmt.Errorf("%w: %s[%d] (%q)", ErrTrustedProxy, field, i, p.String())
		}
		a := p.Addr() // never zoned: netip.PrefixFrom drops zones
		if a.Is4In6() {
			if p.Bits() < 96 {
				return nil, fmt.Errorf("%w: %s[%d] (%q) mixes IPv4-mapped and IPv6 space", ErrTrustedProxy, field, i, p.String())
			}
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// trusts reports whether the TCP peer of r is a trusted proxy. It looks at
// the peer only, never at a resolved client address: the forwarded headers
// this decides about were set (or passed on) by the peer.
func (ps proxies) trusts(r *http.Request) bool {
	if len(ps) == 0 {
		return false
	}
	a := clientip.Peer(r)
	if !a.IsValid() {
		return false
	}
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// isHTTPS reports whether the client reached the service over HTTPS: the
// connection itself is TLS, or the peer is a trusted proxy whose
// X-Forwarded-Proto says https.
func (ps proxies) isHTTPS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	vals, ok := r.Header["X-Forwarded-Proto"]
	if !ok || !ps.trusts(r) {
		return false
	}
	return forwardedProtoIsHTTPS(vals)
}

// forwardedProtoIsHTTPS reads X-Forwarded-Proto values. The rightmost
// element wins: it was written by the hop closest to this server (a proxy
// that appends adds it last; one that overwrites leaves only its own). An
// empty or unknown element is not https.
func forwardedProtoIsHTTPS(vals []string) bool {
	if len(vals) == 0 {
		return false
	}
	v := vals[len(vals)-1]
	if v == "https" {
		return true // what a proxy sends, checked first: it costs one comparison
	}
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return strings.EqualFold(strings.Trim(v, " \t"), "https")
}

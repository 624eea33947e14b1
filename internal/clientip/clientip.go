// Package clientip gives every stormcellar package the same answer to
// "which client sent this request": the address stored by one of chi's
// trusted-proxy resolvers (middleware.ClientIPFromXFF,
// ClientIPFromHeader…) when the application installed one, otherwise the
// TCP peer. stormcellar never reads X-Forwarded-For or similar headers
// itself: which proxies to trust is the application's decision, made once,
// in chi's resolver, which walks the chain right to left and fails closed.
package clientip

import (
	"net"
	"net/http"
	"net/netip"

	chimw "github.com/go-chi/chi/v5/middleware"

	"github.com/stormcellar/stormcellar/internal/reqstate"
)

// Addr returns the client address of r: chi's resolved client IP if a
// ClientIPFrom* middleware ran, else the TCP peer (see [Peer]).
// IPv4-mapped IPv6 addresses are unmapped and zones removed.
//
// When a resolver failed closed (a forwarded header that does not parse),
// chi stores nothing and Addr returns the peer: behind a proxy, such
// requests all count as the proxy's address, one shared bucket. The zero
// Addr means even the peer is unknown (RemoteAddr does not parse); callers
// must treat it as one shared, untrusted client too, never as "no limit".
func Addr(r *http.Request) netip.Addr {
	if a := chimw.GetClientIPAddr(r.Context()); a.IsValid() {
		return a.Unmap().WithZone("")
	}
	return Peer(r)
}

// Peer returns the TCP peer address of r, ignoring any resolver: the
// request state's (see [reqstate.State.Peer]: the connection's own
// address on a timeouts.Server, else RemoteAddr when the state was
// created; a RemoteAddr rewritten later, by chi's RealIP for one, is not
// believed), else RemoteAddr's. The zero Addr when
// it does not parse.
func Peer(r *http.Request) netip.Addr {
	if st := reqstate.From(r.Context()); st != nil {
		a, _ := st.Peer()
		return a
	}
	a, _ := reqstate.ParsePeer(r.RemoteAddr)
	return a
}

// PeerOf returns the address of a connection's peer (net.Conn.RemoteAddr),
// for limits applied before any request exists; the zero Addr when it is
// not an IP address.
func PeerOf(a net.Addr) netip.Addr {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort().Addr().Unmap().WithZone("")
	}
	if a == nil {
		return netip.Addr{}
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	return netip.Addr{}
}

// Group returns the prefix that counts as one client for limits: the
// address itself for IPv4, its /64 for IPv6 (a single subscriber usually
// holds a whole /64 and could otherwise rotate through it). An address in
// a NAT64 prefix (64:ff9b::/96, RFC 6052, and 64:ff9b:1::/48, RFC 8215)
// is an IPv4 client as an IPv6-only network behind a translator sees it:
// it counts alone, as that IPv4 address would, instead of sharing one /64
// with every IPv4 client on the internet. The zero Addr maps to the zero
// Prefix, one shared bucket.
func Group(a netip.Addr) netip.Prefix {
	if !a.IsValid() {
		return netip.Prefix{}
	}
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	if nat64WellKnown.Contains(a) || nat64Local.Contains(a) {
		return netip.PrefixFrom(a, 128)
	}
	p, _ := a.Prefix(64)
	return p
}

// The NAT64 prefixes: their addresses are not routed on the IPv6 internet
// (no IPv6 host holds one), so counting each alone lets no client rotate.
var (
	nat64WellKnown = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local     = netip.MustParsePrefix("64:ff9b:1::/48")
)

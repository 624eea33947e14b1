package middleware

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// ErrRedirectHost is returned by [NewHTTPSRedirect] when the host list is
// empty or an entry is not a host name or IP address.
var ErrRedirectHost = errors.New("middleware: invalid HTTPS redirect host")

// HTTPSRedirectOptions configure [NewHTTPSRedirect].
type HTTPSRedirectOptions struct {
	// Hosts are the host names (or IP addresses) the service answers to,
	// without scheme or port; the first is the canonical one. A plain-HTTP
	// request whose Host is in the list is redirected to the same host over
	// HTTPS; any other Host, and a missing one, to the first entry. The
	// Location is never built from a Host that is not listed, nor from
	// X-Forwarded-Host or any other forwarded header, so the redirect
	// cannot be pointed at another site. Names are compared without case
	// and without a trailing dot; use the ASCII (punycode) form of
	// internationalised names. Required.
	Hosts []string
	// Port is the HTTPS port put in the Location. Zero means 443, which is
	// left out of the URL.
	Port int
	// TrustedProxies are the TCP peers that terminate TLS in front of the
	// service and whose X-Forwarded-Proto tells whether the client used
	// HTTPS. From any other peer the header is ignored, and a request on a
	// plain-HTTP connection is redirected whatever it claims. The peer is
	// the connection's address, never one resolved from X-Forwarded-For.
	// Default: none.
	TrustedProxies []netip.Prefix
}

// HTTPSRedirect is middleware that answers every request that did not come
// over HTTPS (directly, or through a trusted proxy that says so) with a
// 308 Permanent Redirect to the same path and query over HTTPS on an
// allowed host, and passes HTTPS requests on. 308 keeps the method and the
// body, so a POST is repeated as a POST. Pair it with [SecureHeaders], whose
// HSTS makes browsers skip the plain-HTTP request next time.
//
// It is safe for concurrent use.
type HTTPSRedirect struct {
	hosts   []string // normalised, as they appear in a URL ([v6] bracketed)
	port    string   // ":8443", or "" for 443
	trusted proxies
}

// NewHTTPSRedirect returns the middleware configured by opts, or an error
// wrapping [ErrRedirectHost] or [ErrTrustedProxy].
func NewHTTPSRedirect(opts HTTPSRedirectOptions) (*HTTPSRedirect, error) {
	if len(opts.Hosts) == 0 {
		return nil, fmt.Errorf("%w: Hosts is empty; list the names the service answers to", ErrRedirectHost)
	}
	m := &HTTPSRedirect{}
	for i, h := range opts.Hosts {
		n, ok := normalizeHost(h)
		if !ok {
			return nil, fmt.Errorf("%w: Hosts[%d] (%q) is not a host name or IP address", ErrRedirectHost, i, h)
		}
		m.hosts = append(m.hosts, n)
	}
	switch {
	case opts.Port == 0 || opts.Port == 443:
	case opts.Port > 0 && opts.Port < 65536:
		m.port = ":" + strconv.Itoa(opts.Port)
	default:
		return nil, fmt.Errorf("%w: Port %d is out of range", ErrRedirectHost, opts.Port)
	}
	ps, err := newProxies("TrustedProxies", opts.TrustedProxies)
	if err != nil {
		return nil, err
	}
	m.trusted = ps
	return m, nil
}

// Handler returns next wrapped by the middleware.
func (m *HTTPSRedirect) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m.trusted.isHTTPS(r) {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Location", m.location(r))
		w.WriteHeader(http.StatusPermanentRedirect)
	})
}

// location builds the HTTPS URL for r: an allowed host, the configured
// port, the escaped path and the raw query.
func (m *HTTPSRedirect) location(r *http.Request) string {
	host := m.hosts[0]
	if h, ok := requestHost(r.Host); ok {
		for _, allowed := range m.hosts {
			if h == allowed {
				host = allowed
				break
			}
		}
	}
	path := r.URL.EscapedPath()
	if !strings.HasPrefix(path, "/") {
		// "*" (OPTIONS *), "" (CONNECT) and anything else not rooted.
		path = "/"
	}
	var b strings.Builder
	b.Grow(len("https://") + len(host) + len(m.port) + len(path) + 1 + len(r.URL.RawQuery))
	b.WriteString("https://")
	b.WriteString(host)
	b.WriteString(m.port)
	b.WriteString(path)
	if r.URL.RawQuery != "" {
		b.WriteByte('?')
		b.WriteString(r.URL.RawQuery)
	}
	return b.String()
}

// requestHost normalises the Host of a request: the port is dropped.
func requestHost(h string) (string, bool) {
	if h == "" {
		return "", false
	}
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	} else if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	return normalizeHost(h)
}

// normalizeHost returns h lowercased without a trailing dot if it is a DNS
// name, or in canonical bracketed form if it is an IPv6 address; false if
// it is neither (ports, paths, userinfo, wildcards and non-ASCII are
// refused).
func normalizeHost(h string) (string, bool) {
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	if a, err := netip.ParseAddr(h); err == nil {
		if a.Zone() != "" {
			return "", false
		}
		if a.Is4() {
			return a.String(), true
		}
		return "[" + a.String() + "]", true
	}
	h = strings.TrimSuffix(h, ".")
	if len(h) == 0 || len(h) > 253 {
		return "", false
	}
	label := 0
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case 'A' <= c && c <= 'Z':
		case c == '-' || c == '_':
			if label == 0 {
				return "", false
			}
		case c == '.':
			if label == 0 || h[i-1] == '-' {
				return "", false
			}
			label = 0
			continue
		default:
			return "", false
		}
		label++
		if label > 63 {
			return "", false
		}
	}
	if label == 0 || h[len(h)-1] == '-' {
		return "", false // an empty last label ("a..") or a trailing hyphen
	}
	return strings.ToLower(h), true
}

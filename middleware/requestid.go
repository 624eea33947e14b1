package middleware

import (
	"net/http"
	"net/netip"

	"github.com/stormcellar/stormcellar/internal/reqstate"
)

// RequestIDHeader is the header that carries the request id, in requests
// from trusted proxies and in every response.
const RequestIDHeader = "X-Request-Id"

// Bounds of an inbound request id.
const (
	minInboundID = 8
	maxInboundID = 64
)

// RequestIDOptions configure [NewRequestID]. The zero value gives every
// request a fresh id and ignores inbound ids.
type RequestIDOptions struct {
	// TrustedProxies are the TCP peers whose X-Request-Id is taken as the
	// request's id, so that one id follows a request through a proxy tier.
	// It is taken only if the request has exactly one such header whose
	// value is 8 to 64 characters of A–Z, a–z, 0–9, '.', '_' and '-';
	// otherwise a fresh id is used. Requests from any other peer always get
	// a fresh id: a client cannot choose the id its errors are logged under.
	// The peer is the connection's address, not the address chi's
	// ClientIPFrom* resolvers compute, so a forged X-Forwarded-For changes
	// nothing. Default: none.
	TrustedProxies []netip.Prefix
}

// RequestID is middleware that gives every request an id: the one a
// trusted proxy sent (see [RequestIDOptions]), or a new random one of 16
// hex digits. The id is stored in the request's context, where
// [httperr.RequestID] reads it and where httperr puts it on error pages and
// in log records, and is echoed in the X-Request-Id response header. An
// inbound X-Request-Id that was not accepted is overwritten with the real
// id in the request headers, so code below never sees the forged one.
//
// It is safe for concurrent use.
type RequestID struct {
	trusted proxies
}

// NewRequestID returns the request-id middleware configured by opts, or an
// error wrapping [ErrTrustedProxy] if a prefix is invalid.
func NewRequestID(opts RequestIDOptions) (*RequestID, error) {
	ps, err := newProxies("TrustedProxies", opts.TrustedProxies)
	if err != nil {
		return nil, err
	}
	return &RequestID{trusted: ps}, nil
}

// Handler returns next wrapped by the middleware.
func (m *RequestID) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		orig := r
		st, w, r := reqstate.Ensure(w, r)
		if r != orig {
			defer reqstate.KeepForm(orig, r)
		}
		var hdr []string
		inbound, hasInbound := r.Header[RequestIDHeader]
		switch {
		case st.ID != "":
			// An outer RequestID (or an error already written) chose it.
			hdr = []string{st.ID}
		case hasInbound && len(inbound) == 1 && validInboundID(inbound[0]) && m.trusted.trusts(r):
			st.ID = inbound[0]
			hdr = inbound[:1:1]
		default:
			hdr = st.GenerateID()
		}
		if hasInbound {
			r.Header[RequestIDHeader] = hdr
		}
		w.Header()[RequestIDHeader] = hdr
		next.ServeHTTP(w, r)
	})
}

// validInboundID reports whether s is acceptable as an inbound id: 8 to 64
// characters of [A-Za-z0-9._-]. Anything else (spaces, quotes, control
// characters, non-ASCII) could forge or break log lines.
func validInboundID(s string) bool {
	if len(s) < minInboundID || len(s) > maxInboundID {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

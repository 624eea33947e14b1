package middleware

import (
	"errors"
	"net/http"

	"github.com/stormcellar/stormcellar/httperr"
)

// DefaultURLLimit is the longest request target [MaxURLLength] accepts when
// none is configured: 8 KiB, what common proxies and CDNs accept.
const DefaultURLLimit = 8 << 10

// ErrURITooLong is the cause logged when [MaxURLLength] refuses a request.
var ErrURITooLong = errors.New("middleware: request target longer than the limit")

// MaxURLLengthOptions configure [MaxURLLength].
type MaxURLLengthOptions struct {
	// Limit is the longest request target (path and query as sent on the
	// request line, or the :path of HTTP/2) accepted, in bytes. Zero or
	// negative means [DefaultURLLimit] (8 KiB).
	Limit int
}

// MaxURLLength is middleware that answers a request whose target is
// longer than the limit with 414 URI Too Long through [httperr.Write],
// before any handler below it runs. Long URLs cost memory in logs, caches
// and every layer that copies them, and a long query string is the usual
// way to make a parser work hard. Nested, the smallest limit applies.
//
// The server reads the whole request line with the headers, within
// [net/http.Server.MaxHeaderBytes]: a target longer than that never
// reaches this middleware and gets the server's own 431. Keep the limit
// below MaxHeaderBytes (see the package documentation).
//
// It allocates nothing for a request within the limit.
func MaxURLLength(opts MaxURLLengthOptions) func(http.Handler) http.Handler {
	limit := opts.Limit
	if limit <= 0 {
		limit = DefaultURLLimit
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := len(r.RequestURI)
			if n == 0 && r.URL != nil {
				// A request not read by a server (a test or a client-side
				// handler chain) has no RequestURI.
				n = len(r.URL.RequestURI())
			}
			if n > limit {
				httperr.Write(w, r, &httperr.HTTPError{
					Status: http.StatusRequestURITooLong,
					Kind:   httperr.KindURITooLong,
					Err:    ErrURITooLong,
				})
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

package httperr

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/stormcellar/stormcellar/internal/reqstate"
)

// Options configure the error responses of every stormcellar package for
// the requests that pass through [Install]. The zero value is the safe
// setting: the default page, slog.Default(), no observer, causes hidden.
type Options struct {
	// Renderer writes error bodies. If nil, [DefaultRenderer] is used.
	Renderer Renderer
	// Logger receives one record per error: Error for 5xx (with the
	// cause), Warn for 4xx, Info for a client that went away. If nil,
	// slog.Default() at the time of the error is used.
	Logger *slog.Logger
	// Observer, if set, is called once for every error response, after it
	// is written (or found impossible to write), on the request's
	// goroutine. Use it for metrics; it must not block. A panic in it is
	// recovered and logged.
	Observer func(Event)
	// InsecureExposeCause puts the private cause (and, for panics caught
	// by middleware.Recover, the stack) on the error page, like Tornado's
	// serve_traceback. It exists for local development only: it shows
	// file paths, internal messages and anything a cause carries, secrets
	// included. Default off.
	InsecureExposeCause bool
}

// Event describes one error response, for [Options.Observer].
type Event struct {
	Status    int
	Kind      Kind
	RequestID string
	// Err is the private cause (nil for a bare status).
	Err error
	// Committed is true when the response had already been committed and
	// nothing could be written.
	Committed bool
	// Request is the request that failed; use it for route labels, not to
	// write a response.
	Request *http.Request
}

type config struct {
	renderer      Renderer
	logger        *slog.Logger
	observer      func(Event)
	insecureCause bool
}

var defaultConfig = &config{}

func configOf(st *reqstate.State) *config {
	if st != nil {
		if st.Errors != nil {
			if c, ok := st.Errors.Config.(*config); ok {
				return c
			}
		}
	}
	return defaultConfig
}

// Install returns middleware that makes opts the error configuration of
// every request passing through it, so that [Write], and every
// stormcellar package that rejects a request, uses the same renderer,
// logger and observer without being told. It also wraps the response
// writer once per request to track whether the response has been committed
// (the wrapper keeps Unwrap, Flush, Hijack and ReadFrom working).
//
// Put it first (outermost) in the chain: rejections by middleware outside
// it use the defaults.
func Install(opts Options) func(http.Handler) http.Handler {
	cfg := &reqstate.Errors{Config: &config{
		renderer:      opts.Renderer,
		logger:        opts.Logger,
		observer:      opts.Observer,
		insecureCause: opts.InsecureExposeCause,
	}}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			orig := r
			st, w, r := reqstate.Ensure(w, r)
			if r != orig {
				defer reqstate.KeepForm(orig, r) // for net/http to remove its files
			}
			st.Errors = cfg
			next.ServeHTTP(w, r)
		})
	}
}

// RequestID returns the id of the request whose context is ctx: the one set
// by middleware.RequestID, or the one generated for the first error written;
// "" if there is none yet.
func RequestID(ctx context.Context) string {
	if st := reqstate.From(ctx); st != nil {
		return st.ID
	}
	return ""
}

// HandlerFunc is a handler that returns an error instead of writing one:
// a non-nil error is sent with [Write]. If the handler had already
// committed the response, the connection is aborted with
// panic(http.ErrAbortHandler) so that the client sees a truncated response
// instead of one that looks complete; net/http and middleware.Recover let
// that panic through quietly.
type HandlerFunc func(http.ResponseWriter, *http.Request) error

// ServeHTTP calls f and writes its error.
func (f HandlerFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	orig := r
	st, w, r := reqstate.Ensure(w, r)
	if r != orig {
		defer reqstate.KeepForm(orig, r)
	}
	err := f(w, r)
	if err == nil {
		return
	}
	if !write(w, r, err) && !st.Writer().Hijacked() {
		panic(http.ErrAbortHandler)
	}
}

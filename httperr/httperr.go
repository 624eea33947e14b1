package httperr

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// Kind is a stable, low-cardinality name for why a request was rejected,
// meant for metrics labels and log queries. The values below are the ones
// stormcellar's packages use; applications may define their own.
type Kind string

// Kinds used by stormcellar.
const (
	KindBadRequest   Kind = "bad_request"    // malformed request
	KindUnauthorized Kind = "unauthorized"   // authentication missing or failed
	KindForbidden    Kind = "forbidden"      // authenticated but not allowed
	KindNotFound     Kind = "not_found"      // no such resource
	KindMethod       Kind = "method"         // method not allowed
	KindBodyTooLarge Kind = "body_too_large" // request body over its limit
	KindURITooLong   Kind = "uri_too_long"   // request target over its limit
	KindOrigin       Kind = "origin"         // cross-origin request refused
	KindXSRF         Kind = "xsrf"           // XSRF token missing or wrong
	KindRateLimit    Kind = "rate_limit"     // client over its request rate
	KindOverload     Kind = "overload"       // load shed: too much in flight
	KindTimeout      Kind = "timeout"        // a deadline passed
	KindCanceled     Kind = "canceled"       // the client went away
	KindPanic        Kind = "panic"          // a handler panicked
	KindInternal     Kind = "internal"       // any other server error
	KindClient       Kind = "client_error"   // any other 4xx
)

// HTTPError is an error with an HTTP status, a message that is safe to show
// to the client, and a private cause that is only logged, in the manner of
// Tornado's HTTPError(status, log_message).
//
// The zero value is a 500 with the standard status text.
type HTTPError struct {
	// Status is the response status, 400–599; zero means 500. Any other
	// value is answered with 500, and the log records the invalid status.
	Status int
	// Message is shown to the client, escaped for the negotiated format,
	// with control characters replaced and at most 512 bytes kept. If
	// empty, the status text is used. Never put a cause, a secret or
	// user-controlled text you would not echo here.
	Message string
	// Kind labels the rejection for metrics and logs. If empty, it is
	// derived from Status by [KindForStatus].
	Kind Kind
	// Header holds extra response headers (Retry-After, Allow,
	// WWW-Authenticate…). It cannot override Content-Type, Content-Length,
	// Cache-Control or X-Content-Type-Options.
	Header http.Header
	// Err is the private cause: logged, never sent (unless the
	// Insecure setting of [Options] is on).
	Err error
}

// Error returns the status, kind and cause, for logs.
func (e *HTTPError) Error() string {
	if e == nil {
		return "httperr: <nil>"
	}
	s := "httperr: " + strconv.Itoa(e.Status) + " " + string(e.kind())
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *HTTPError) Unwrap() error {
	if e == nil {
		return nil
	}
	return e.Err
}

func (e *HTTPError) kind() Kind {
	if e.Kind != "" {
		return e.Kind
	}
	return KindForStatus(e.Status)
}

// New returns an error with the given status, kind and private cause, and
// the status text as its public message.
func New(status int, kind Kind, cause error) *HTTPError {
	return &HTTPError{Status: status, Kind: kind, Err: cause}
}

// BadRequest returns a 400 with a public message (say which field was
// wrong, not what the parser said) and a private cause.
func BadRequest(message string, cause error) *HTTPError {
	return &HTTPError{Status: http.StatusBadRequest, Kind: KindBadRequest, Message: message, Err: cause}
}

// Forbidden returns a 403 of the given kind.
func Forbidden(kind Kind, cause error) *HTTPError {
	return &HTTPError{Status: http.StatusForbidden, Kind: kind, Err: cause}
}

// NotFound returns a 404.
func NotFound(cause error) *HTTPError {
	return &HTTPError{Status: http.StatusNotFound, Kind: KindNotFound, Err: cause}
}

// Internal returns a 500 whose cause is logged and never shown.
func Internal(cause error) *HTTPError {
	return &HTTPError{Status: http.StatusInternalServerError, Kind: KindInternal, Err: cause}
}

// Unavailable returns a 503 (KindOverload, KindTimeout…) that tells the
// client when to retry. A retryAfter under one second is sent as 1.
func Unavailable(kind Kind, retryAfter time.Duration, cause error) *HTTPError {
	return &HTTPError{Status: http.StatusServiceUnavailable, Kind: kind, Err: cause,
		Header: retryHeader(retryAfter)}
}

// TooManyRequests returns a 429 that tells the client when to retry. A
// retryAfter under one second is sent as 1.
func TooManyRequests(retryAfter time.Duration, cause error) *HTTPError {
	return &HTTPError{Status: http.StatusTooManyRequests, Kind: KindRateLimit, Err: cause,
		Header: retryHeader(retryAfter)}
}

func retryHeader(d time.Duration) http.Header {
	secs := int64((d + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	return http.Header{"Retry-After": {strconv.FormatInt(secs, 10)}}
}

// KindForStatus returns the kind stormcellar uses for a bare status.
func KindForStatus(status int) Kind {
	switch status {
	case http.StatusBadRequest:
		return KindBadRequest
	case http.StatusUnauthorized:
		return KindUnauthorized
	case http.StatusForbidden:
		return KindForbidden
	case http.StatusNotFound:
		return KindNotFound
	case http.StatusMethodNotAllowed:
		return KindMethod
	case http.StatusRequestEntityTooLarge:
		return KindBodyTooLarge
	case http.StatusRequestURITooLong:
		return KindURITooLong
	case http.StatusTooManyRequests:
		return KindRateLimit
	case http.StatusServiceUnavailable:
		return KindOverload
	case http.StatusGatewayTimeout, http.StatusRequestTimeout:
		return KindTimeout
	case statusClientClosed:
		return KindCanceled
	}
	if status >= 400 && status < 500 {
		return KindClient
	}
	return KindInternal
}

// statusClientClosed is the status recorded (and, uselessly, sent) when the
// client went away before the handler finished; nginx's convention.
const statusClientClosed = 499

// ErrNilError is the cause logged when [Write] is called with a nil error.
// The client gets a 500: a caller that meant success should not be writing
// an error page.
var ErrNilError = errors.New("httperr: Write called with a nil error")

// ErrInvalidStatus is the cause logged when an [HTTPError] has a status
// outside 400–599; the client gets a 500.
var ErrInvalidStatus = errors.New("httperr: status outside 400-599")

// classify turns any error into the HTTPError to send and the cause to log.
func classify(r *http.Request, err error) (he HTTPError, cause error) {
	var target *HTTPError
	var tooLarge *http.MaxBytesError
	switch {
	case err == nil:
		return HTTPError{Status: http.StatusInternalServerError, Kind: KindInternal}, ErrNilError
	case errors.As(err, &target) && target != nil:
		// (A typed nil *HTTPError falls through to a plain 500.)
		he = *target
		if he.Status == 0 {
			he.Status = http.StatusInternalServerError
		}
		if he.Status < 400 || he.Status > 599 {
			invalid := he.Status
			he = HTTPError{Status: http.StatusInternalServerError, Kind: KindInternal}
			return he, &statusError{status: invalid, err: err}
		}
		if err == error(target) {
			// Log the cause, not "httperr: 404 not_found: cause" again.
			return he, he.Err
		}
		return he, err
	case errors.As(err, &tooLarge):
		return HTTPError{Status: http.StatusRequestEntityTooLarge, Kind: KindBodyTooLarge,
			Header: http.Header{"Connection": {"close"}}}, err
	case errors.Is(err, context.DeadlineExceeded):
		if r.Context().Err() == context.DeadlineExceeded {
			// The request's own deadline passed: the service is too slow.
			return HTTPError{Status: http.StatusServiceUnavailable, Kind: KindTimeout}, err
		}
		// Something the handler waited on timed out.
		return HTTPError{Status: http.StatusGatewayTimeout, Kind: KindTimeout}, err
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		return HTTPError{Status: statusClientClosed, Kind: KindCanceled, Message: "Client Closed Request"}, err
	}
	return HTTPError{Status: http.StatusInternalServerError, Kind: KindInternal}, err
}

type statusError struct {
	status int
	err    error
}

func (e *statusError) Error() string {
	return ErrInvalidStatus.Error() + " (" + strconv.Itoa(e.status) + "): " + e.err.Error()
}

func (e *statusError) Unwrap() []error { return []error{ErrInvalidStatus, e.err} }

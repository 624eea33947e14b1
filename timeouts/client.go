package timeouts

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Defaults of [ClientOptions].
const (
	DefaultDialTimeout            = 5 * time.Second
	DefaultTLSHandshakeTimeout    = 5 * time.Second
	DefaultResponseHeaderTimeout  = 10 * time.Second
	DefaultClientTimeout          = 30 * time.Second
	DefaultIdleConnTimeout        = 90 * time.Second
	DefaultMaxResponseBytes       = 10 << 20
	DefaultMaxResponseHeaderBytes = 64 << 10
	DefaultMaxRedirects           = 5
)

// ClientOptions configure [NewClient]. The zero value is the safe
// setting; a negative value is an error.
type ClientOptions struct {
	// DialTimeout bounds the TCP connect. Default 5 s.
	DialTimeout time.Duration
	// TLSHandshakeTimeout bounds the TLS handshake. Default 5 s.
	TLSHandshakeTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for the response headers
	// once the request is written: an upstream that accepts and then
	// hangs is cut here. Default 10 s.
	ResponseHeaderTimeout time.Duration
	// Timeout bounds the whole exchange, redirects and reading the body
	// included (http.Client.Timeout). Default 30 s. The request's context
	// can only shorten it.
	Timeout time.Duration
	// IdleConnTimeout closes pooled connections unused this long.
	// Default 90 s.
	IdleConnTimeout time.Duration
	// MaxResponseBytes caps a response body: a response that declares a
	// larger Content-Length fails at once, and reading past the cap
	// fails with [ErrResponseTooLarge]. Default 10 MiB.
	MaxResponseBytes int64
	// MaxResponseHeaderBytes caps the response headers. Default 64 KiB
	// (net/http's own default is 10 MiB).
	MaxResponseHeaderBytes int64
	// MaxRedirects is how many redirects are followed. Default 5.
	MaxRedirects int
	// NoRedirects returns the first 3xx response to the caller instead of
	// following it.
	NoRedirects bool
	// AllowRedirectHosts lists the other hosts ("api.example.com" or
	// "api.example.com:8443") that redirects may lead to. Redirects to the
	// request's own host (same port, or its HTTPS port on an upgrade) are
	// always allowed; any other host is refused with [ErrRedirect], and
	// so is a redirect from https to http.
	AllowRedirectHosts []string
	// InsecureAllowCrossHostRedirects follows redirects to any host, as
	// http.DefaultClient does: an upstream (or whoever controls its
	// redirects) can then point the client at internal addresses.
	// Redirects from https to http stay refused.
	InsecureAllowCrossHostRedirects bool
	// TLSConfig is the TLS client configuration. MinVersion below TLS 1.2
	// and InsecureSkipVerify are refused. Default: the system roots,
	// TLS 1.2 or later.
	TLSConfig *tls.Config
}

// NewClient returns an *http.Client for calls to upstream services with
// every timeout set (see [ClientOptions] for each default), a cap on the
// response body and headers, and redirects kept to the original host. It
// returns an error wrapping [ErrInvalidOptions] naming the field when
// opts cannot work.
//
// Timeouts surface as errors matching context.DeadlineExceeded, which
// [httperr.Write] answers 504 (the upstream was too slow, not this
// service). The proxy comes from the environment (HTTP_PROXY, NO_PROXY…),
// as with http.DefaultTransport. Call CloseIdleConnections when done
// with the client.
func NewClient(opts ClientOptions) (*http.Client, error) {
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"DialTimeout", &opts.DialTimeout, DefaultDialTimeout},
		{"TLSHandshakeTimeout", &opts.TLSHandshakeTimeout, DefaultTLSHandshakeTimeout},
		{"ResponseHeaderTimeout", &opts.ResponseHeaderTimeout, DefaultResponseHeaderTimeout},
		{"Timeout", &opts.Timeout, DefaultClientTimeout},
		{"IdleConnTimeout", &opts.IdleConnTimeout, DefaultIdleConnTimeout},
	} {
		switch {
		case *d.v < 0:
			return nil, invalid("ClientOptions.%s is negative (%v)", d.name, *d.v)
		case *d.v == 0:
			*d.v = d.def
		}
	}
	switch {
	case opts.MaxResponseBytes < 0:
		return nil, invalid("ClientOptions.MaxResponseBytes is negative (%d)", opts.MaxResponseBytes)
	case opts.MaxResponseBytes == 0:
		opts.MaxResponseBytes = DefaultMaxResponseBytes
	}
	switch {
	case opts.MaxResponseHeaderBytes < 0:
		return nil, invalid("ClientOptions.MaxResponseHeaderBytes is negative (%d)", opts.MaxResponseHeaderBytes)
	case opts.MaxResponseHeaderBytes == 0:
		opts.MaxResponseHeaderBytes = DefaultMaxResponseHeaderBytes
	}
	switch {
	case opts.MaxRedirects < 0:
		return nil, invalid("ClientOptions.MaxRedirects is negative (%d)", opts.MaxRedirects)
	case opts.MaxRedirects == 0:
		opts.MaxRedirects = DefaultMaxRedirects
	}
	allowed := make(map[string]bool, len(opts.AllowRedirectHosts))
	for _, h := range opts.AllowRedirectHosts {
		if h == "" || strings.ContainsAny(h, "/@ ") {
			return nil, invalid("ClientOptions.AllowRedirectHosts has an invalid host %q", h)
		}
		allowed[strings.ToLower(h)] = true
	}
	var tlsCfg *tls.Config
	if opts.TLSConfig != nil {
		if opts.TLSConfig.InsecureSkipVerify {
			return nil, invalid("ClientOptions.TLSConfig.InsecureSkipVerify is set: upstream certificates would not be checked")
		}
		if v := opts.TLSConfig.MinVersion; v != 0 && v < tls.VersionTLS12 {
			return nil, invalid("ClientOptions.TLSConfig.MinVersion is below TLS 1.2 (%s)", tls.VersionName(v))
		}
		tlsCfg = opts.TLSConfig.Clone()
	} else {
		tlsCfg = &tls.Config{}
	}
	if tlsCfg.MinVersion == 0 {
		tlsCfg.MinVersion = tls.VersionTLS12
	}

	dialer := &net.Dialer{Timeout: opts.DialTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                  http.ProxyFromEnvironment,
		DialContext:            dialer.DialContext,
		TLSClientConfig:        tlsCfg,
		TLSHandshakeTimeout:    opts.TLSHandshakeTimeout,
		ResponseHeaderTimeout:  opts.ResponseHeaderTimeout,
		ExpectContinueTimeout:  time.Second,
		IdleConnTimeout:        opts.IdleConnTimeout,
		MaxIdleConns:           100,
		MaxIdleConnsPerHost:    16,
		MaxResponseHeaderBytes: opts.MaxResponseHeaderBytes,
		ForceAttemptHTTP2:      true,
	}
	c := &http.Client{
		Transport: &limitTransport{base: tr, max: opts.MaxResponseBytes},
		Timeout:   opts.Timeout,
	}
	maxRedirects, noRedirects, anyHost := opts.MaxRedirects, opts.NoRedirects, opts.InsecureAllowCrossHostRedirects
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if noRedirects {
			return http.ErrUseLastResponse
		}
		if len(via) > maxRedirects {
			return fmt.Errorf("%w: more than %d redirects", ErrRedirect, maxRedirects)
		}
		prev := via[len(via)-1].URL
		if prev.Scheme == "https" && req.URL.Scheme != "https" {
			return fmt.Errorf("%w: from https to %s", ErrRedirect, req.URL.Scheme)
		}
		if anyHost || sameHost(via[0].URL, req.URL) || allowed[hostPort(req.URL)] ||
			allowed[strings.ToLower(req.URL.Hostname())] {
			return nil
		}
		return fmt.Errorf("%w: cross-host redirect to %q", ErrRedirect, req.URL.Host)
	}
	return c, nil
}

// hostPort is the lowercase host:port of u, with the scheme's default
// port filled in.
func hostPort(u *url.URL) string {
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if port == "" {
		switch strings.ToLower(u.Scheme) {
		case "https", "wss":
			port = "443"
		default:
			port = "80"
		}
	}
	return net.JoinHostPort(host, port)
}

// sameHost reports whether to is the same host as from: the same
// hostname and port, or the same hostname reached on the default HTTPS
// port by an upgrade from http's default port.
func sameHost(from, to *url.URL) bool {
	if from.Hostname() == "" || !strings.EqualFold(from.Hostname(), to.Hostname()) {
		return false
	}
	if hostPort(from) == hostPort(to) {
		return true
	}
	return strings.EqualFold(from.Scheme, "http") && strings.EqualFold(to.Scheme, "https") &&
		from.Port() == "" && to.Port() == ""
}

// limitTransport caps response bodies.
type limitTransport struct {
	base *http.Transport
	max  int64
}

func (t *limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > t.max {
		_ = resp.Body.Close()
		return nil, fmt.Errorf("%w: Content-Length %d over the %d-byte cap", ErrResponseTooLarge,
			resp.ContentLength, t.max)
	}
	resp.Body = &limitedBody{rc: resp.Body, left: t.max}
	return resp, nil
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the
// transport.
func (t *limitTransport) CloseIdleConnections() { t.base.CloseIdleConnections() }

// limitedBody fails reads past the cap instead of truncating silently.
type limitedBody struct {
	mu   sync.Mutex
	rc   io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.left <= 0 {
		// One more byte tells a body of exactly the cap from a longer one.
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, fmt.Errorf("%w: body over the cap", ErrResponseTooLarge)
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

package middleware

import (
	"bytes"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	chimw "github.com/go-chi/chi/v5/middleware"

	"github.com/stormcellar/stormcellar/httperr"
)

// The benchmarks run each middleware around the same bare handler, side
// by side with the bare handler alone, with chi's equivalent, and with
// the per-request state already created by httperr.Install (what a real
// stack does once for all stormcellar middleware: 2 allocations). The
// writer is a reused in-memory one, so the figures are the middleware's
// own cost and not net/http's.
//
//	go test -run '^$' -bench . -benchmem ./middleware/

var okBody = []byte("ok")

var bare = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	w.Header()["Content-Type"] = textPlain
	_, _ = w.Write(okBody)
})

var textPlain = []string{"text/plain; charset=utf-8"}

type benchWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) WriteHeader(code int)        { w.status = code }
func (w *benchWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

// reusableBody is a request body that can be rewound without allocating.
type reusableBody struct{ *bytes.Reader }

func (reusableBody) Close() error { return nil }

type benchCase struct {
	name string
	h    http.Handler
}

func runBench(b *testing.B, req *http.Request, body []byte, cases []benchCase) {
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			w := &benchWriter{h: make(http.Header, 16)}
			r := req.Clone(req.Context())
			var rb reusableBody
			if body != nil {
				rb.Reader = bytes.NewReader(body)
			}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				if body != nil {
					rb.Reset(body)
					r.Body = rb
				}
				c.h.ServeHTTP(w, r)
			}
		})
	}
}

func withState(h http.Handler) http.Handler {
	return httperr.Install(httperr.Options{})(h)
}

func BenchmarkRecover(b *testing.B) {
	runBench(b, httptest.NewRequest(http.MethodGet, "/", nil), nil, []benchCase{
		{"bare", bare},
		{"chi_Recoverer", chimw.Recoverer(bare)},
		{"Recover_standalone", Recover(bare)},
		{"state_only", withState(bare)},
		{"state+Recover", withState(Recover(bare))},
	})
}

func BenchmarkMaxBytes(b *testing.B) {
	b.Run("GET", func(b *testing.B) {
		runBench(b, httptest.NewRequest(http.MethodGet, "/", nil), nil, []benchCase{
			{"bare", bare},
			{"chi_RequestSize", chimw.RequestSize(DefaultBodyLimit)(bare)},
			{"MaxBytes_standalone", MaxBytes(MaxBytesOptions{})(bare)},
			{"state_only", withState(bare)},
			{"state+MaxBytes", withState(MaxBytes(MaxBytesOptions{})(bare))},
		})
	})
	body := bytes.Repeat([]byte("x"), 512)
	post := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	readAll := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var buf [1024]byte
		for {
			if _, err := r.Body.Read(buf[:]); err != nil {
				break
			}
		}
		bare(w, r)
	})
	b.Run("POST_512B_length", func(b *testing.B) {
		runBench(b, post, body, []benchCase{
			{"bare", readAll},
			{"chi_RequestSize", chimw.RequestSize(DefaultBodyLimit)(readAll)},
			{"MaxBytes_standalone", MaxBytes(MaxBytesOptions{})(readAll)},
			{"state_only", withState(readAll)},
			{"state+MaxBytes", withState(MaxBytes(MaxBytesOptions{})(readAll))},
		})
	})
	chunked := post.Clone(post.Context())
	chunked.ContentLength = -1
	b.Run("POST_512B_chunked", func(b *testing.B) {
		runBench(b, chunked, body, []benchCase{
			{"bare", readAll},
			{"chi_RequestSize", chimw.RequestSize(DefaultBodyLimit)(readAll)},
			{"MaxBytes_standalone", MaxBytes(MaxBytesOptions{})(readAll)},
			{"state_only", withState(readAll)},
			{"state+MaxBytes", withState(MaxBytes(MaxBytesOptions{})(readAll))},
		})
	})
}

func BenchmarkRequestID(b *testing.B) {
	ids := mustRequestID(b, RequestIDOptions{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}})
	runBench(b, httptest.NewRequest(http.MethodGet, "/", nil), nil, []benchCase{
		{"bare", bare},
		{"chi_RequestID", chimw.RequestID(bare)},
		{"RequestID_standalone", ids.Handler(bare)},
		{"state_only", withState(bare)},
		{"state+RequestID", withState(ids.Handler(bare))},
	})
	proxied := httptest.NewRequest(http.MethodGet, "/", nil) // RemoteAddr 192.0.2.1, trusted
	proxied.Header.Set(RequestIDHeader, "lb-4bf92f3577b34da6")
	b.Run("from_trusted_proxy", func(b *testing.B) {
		runBench(b, proxied, nil, []benchCase{
			{"chi_RequestID", chimw.RequestID(bare)},
			{"state+RequestID", withState(ids.Handler(bare))},
		})
	})
}

func BenchmarkSecureHeaders(b *testing.B) {
	static := mustHeaders(b, SecureHeadersOptions{ContentSecurityPolicy: "default-src 'self'; object-src 'none'; base-uri 'none'"})
	nonce := mustHeaders(b, SecureHeadersOptions{})
	tlsReq := httptest.NewRequest(http.MethodGet, "/", nil)
	tlsReq.TLS = &tls.ConnectionState{}
	runBench(b, tlsReq, nil, []benchCase{
		{"bare", bare},
		{"no_nonce_standalone", static.Handler(bare)},
		{"state_only", withState(bare)},
		{"state+no_nonce", withState(static.Handler(bare))},
		{"state+nonce", withState(nonce.Handler(bare))},
	})
}

func BenchmarkHTTPSRedirect(b *testing.B) {
	m, err := NewHTTPSRedirect(HTTPSRedirectOptions{Hosts: []string{"example.com"}})
	if err != nil {
		b.Fatal(err)
	}
	tlsReq := httptest.NewRequest(http.MethodGet, "https://example.com/a?b=c", nil)
	tlsReq.TLS = &tls.ConnectionState{}
	b.Run("https_passes", func(b *testing.B) {
		runBench(b, tlsReq, nil, []benchCase{{"bare", bare}, {"HTTPSRedirect", m.Handler(bare)}})
	})
	b.Run("http_redirected", func(b *testing.B) {
		runBench(b, httptest.NewRequest(http.MethodGet, "http://example.com/a?b=c", nil), nil, []benchCase{{"HTTPSRedirect", m.Handler(bare)}})
	})
}

func BenchmarkMaxURLLength(b *testing.B) {
	runBench(b, httptest.NewRequest(http.MethodGet, "/a/b?c=d", nil), nil, []benchCase{
		{"bare", bare},
		{"MaxURLLength", MaxURLLength(MaxURLLengthOptions{})(bare)},
	})
}

// BenchmarkStack is the recommended stack of Example_chain (without chi's
// client-IP resolver) against the bare handler and chi's nearest stack.
func BenchmarkStack(b *testing.B) {
	ids := mustRequestID(b, RequestIDOptions{})
	static := mustHeaders(b, SecureHeadersOptions{ContentSecurityPolicy: "default-src 'self'"})
	nonce := mustHeaders(b, SecureHeadersOptions{})
	redirect, _ := NewHTTPSRedirect(HTTPSRedirectOptions{Hosts: []string{"example.com"}})
	stack := func(headers *SecureHeaders) http.Handler {
		return Chain(httperr.Install(httperr.Options{}), ids.Handler, headers.Handler, Recover, redirect.Handler,
			MaxURLLength(MaxURLLengthOptions{}), MaxBytes(MaxBytesOptions{}))(bare)
	}
	chiStack := Chain(chimw.RequestID, chimw.Recoverer, chimw.RequestSize(DefaultBodyLimit))(bare)
	tlsReq := httptest.NewRequest(http.MethodGet, "https://example.com/", nil)
	tlsReq.TLS = &tls.ConnectionState{}
	runBench(b, tlsReq, nil, []benchCase{
		{"bare", bare},
		{"chi_RequestID+Recoverer+RequestSize", chiStack},
		{"stormcellar_static_CSP", stack(static)},
		{"stormcellar_nonce_CSP", stack(nonce)},
	})
}

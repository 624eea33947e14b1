package middleware

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stormcellar/stormcellar/httperr"
)

func TestMaxURLLength(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		limit  int
		target string
		status int
	}{
		{"short", 0, "/a?b=c", 200},
		{"default limit, at it", 0, "/" + strings.Repeat("a", DefaultURLLimit-1), 200},
		{"default limit, over", 0, "/" + strings.Repeat("a", DefaultURLLimit), 414},
		{"query counts", 64, "/p?" + strings.Repeat("q", 62), 414},
		{"custom limit, at it", 64, "/" + strings.Repeat("a", 63), 200},
		{"negative means default", -1, "/" + strings.Repeat("a", 100), 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var ev httperr.Event
			h := httperr.Install(httperr.Options{Logger: discardLogger(), Observer: func(e httperr.Event) { ev = e }})(
				MaxURLLength(MaxURLLengthOptions{Limit: tc.limit})(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
					w.WriteHeader(200)
				})))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.target, nil))
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d", rec.Code, tc.status)
			}
			if tc.status == 414 && (ev.Kind != httperr.KindURITooLong || ev.Err != ErrURITooLong) {
				t.Errorf("event %+v", ev)
			}
		})
	}
	// A request built without a server has no RequestURI.
	req := httptest.NewRequest(http.MethodGet, "/"+strings.Repeat("a", 100), nil)
	req.RequestURI = ""
	rec := httptest.NewRecorder()
	httperr.Install(httperr.Options{Logger: discardLogger()})(
		MaxURLLength(MaxURLLengthOptions{Limit: 50})(http.NotFoundHandler())).ServeHTTP(rec, req)
	if rec.Code != 414 {
		t.Errorf("without RequestURI: %d", rec.Code)
	}
}

// TestMaxHeaderBytesGuide checks what the package documentation says
// about the server's own header limit, on a real server: a request target
// within MaxURLLength but beyond MaxHeaderBytes never reaches the
// middleware and gets net/http's bare 431, without the security headers
// or a request id; one within both gets the middleware's 414.
func TestMaxHeaderBytesGuide(t *testing.T) {
	t.Parallel()
	ts := httptest.NewUnstartedServer(httperr.Install(httperr.Options{Logger: discardLogger()})(
		MaxURLLength(MaxURLLengthOptions{Limit: 64 << 10})(http.NotFoundHandler())))
	ts.Config.MaxHeaderBytes = 16 << 10
	ts.Start()
	defer ts.Close()
	addr := ts.Listener.Addr().String()

	// net/http allows MaxHeaderBytes plus 4096 bytes of slack.
	resp := rawRequest(t, addr, fmt.Sprintf("GET /%s HTTP/1.1\r\nHost: x\r\n\r\n", strings.Repeat("a", 24<<10)))
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || resp.Header.Get(RequestIDHeader) != "" {
		t.Errorf("over MaxHeaderBytes: %d %v, want net/http's bare 431", resp.StatusCode, resp.Header)
	}
	ts2 := httptest.NewUnstartedServer(httperr.Install(httperr.Options{Logger: discardLogger()})(
		MaxURLLength(MaxURLLengthOptions{Limit: 8 << 10})(http.NotFoundHandler())))
	ts2.Config.MaxHeaderBytes = 16 << 10
	ts2.Start()
	defer ts2.Close()
	resp = rawRequest(t, ts2.Listener.Addr().String(), fmt.Sprintf("GET /%s HTTP/1.1\r\nHost: x\r\n\r\n", strings.Repeat("a", 12<<10)))
	if resp.StatusCode != http.StatusRequestURITooLong {
		t.Errorf("within MaxHeaderBytes, over the URL limit: %d, want 414", resp.StatusCode)
	}
}

package wsorigin_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stormcellar/stormcellar/httperr"
	"github.com/stormcellar/stormcellar/wsorigin"
)

// dial opens a WebSocket to srv with the given Origin header values and
// Host override. It returns the connection (nil when refused) and the
// handshake status.
func dial(t *testing.T, srv *httptest.Server, origins []string, host string, extra http.Header) (*websocket.Conn, int, string) {
	t.Helper()
	return dialURL(t, "ws"+strings.TrimPrefix(srv.URL, "http"), srv.Client(), origins, host, extra)
}

// dialAddr dials ws://hostport/ with the given headers.
func dialAddr(t *testing.T, hostport string, origins []string, host string, extra http.Header) (*websocket.Conn, int) {
	t.Helper()
	c, status, _ := dialURL(t, "ws://"+hostport+"/", http.DefaultClient, origins, host, extra)
	return c, status
}

func dialURL(t *testing.T, u string, client *http.Client, origins []string, host string, extra http.Header) (*websocket.Conn, int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := http.Header{"Accept": {"application/json"}}
	if origins != nil {
		h["Origin"] = origins
	}
	for k, v := range extra {
		h[k] = v
	}
	c, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: client, HTTPHeader: h, Host: host})
	if err != nil {
		if resp == nil {
			t.Fatalf("dial %s: %v", u, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return nil, resp.StatusCode, string(body)
	}
	return c, resp.StatusCode, ""
}

// echoOnce reads one message and writes it back.
func echoOnce(c *websocket.Conn) {
	defer c.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	typ, msg, err := c.Read(ctx)
	if err != nil {
		return
	}
	if c.Write(ctx, typ, msg) != nil {
		return
	}
	_, _, _ = c.Read(ctx) // wait for the client's close
}

// exchange sends a message on c and checks it comes back, then closes.
func exchange(t *testing.T, c *websocket.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
		t.Fatalf("write: %v", err)
	}
	_, got, err := c.Read(ctx)
	if err != nil || string(got) != "hello" {
		t.Fatalf("read = %q, %v; want the echo", got, err)
	}
	c.Close(websocket.StatusNormalClosure, "")
}

// policyServer serves p.Accept behind httperr.Install, recording the kind
// of every error response in kinds.
func policyServer(t *testing.T, p *wsorigin.Policy, tls bool) (*httptest.Server, chan httperr.Kind) {
	kinds := make(chan httperr.Kind, 64)
	h := httperr.Install(httperr.Options{
		Logger:   slog.New(slog.DiscardHandler),
		Observer: func(e httperr.Event) { kinds <- e.Kind },
	})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := p.Accept(w, r, nil)
		if err != nil {
			return
		}
		echoOnce(c)
	}))
	var srv *httptest.Server
	if tls {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	t.Cleanup(srv.Close)
	return srv, kinds
}

func TestHandshakeSameOriginAcceptedCrossOriginRefused(t *testing.T) {
	t.Parallel()
	p, err := wsorigin.New(wsorigin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, kinds := policyServer(t, p, false)
	self := srv.URL // http://127.0.0.1:port

	for _, origin := range []string{
		"http://evil.example", "https://" + strings.TrimPrefix(self, "http://"), "null",
		self + "/", self + ".evil.com", "http://x@" + strings.TrimPrefix(self, "http://"),
	} {
		c, status, body := dial(t, srv, []string{origin}, "", nil)
		if c != nil {
			c.CloseNow()
			t.Fatalf("Origin %q: upgraded, want 403", origin)
		}
		if status != http.StatusForbidden {
			t.Fatalf("Origin %q: status %d, want 403", origin, status)
		}
		var prob struct {
			Error struct {
				Status    int    `json:"status"`
				RequestID string `json:"request_id"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(body), &prob); err != nil || prob.Error.Status != 403 || prob.Error.RequestID == "" {
			t.Fatalf("Origin %q: body %q is not httperr's JSON error", origin, body)
		}
		if k := <-kinds; k != httperr.KindOrigin {
			t.Fatalf("Origin %q: kind %q, want origin", origin, k)
		}
		if strings.Contains(body, "evil") {
			t.Fatalf("403 body echoes the refused origin: %q", body)
		}
	}
	// The legitimate page still connects and exchanges a message.
	c, status, _ := dial(t, srv, []string{self}, "", nil)
	if c == nil {
		t.Fatalf("same origin refused with %d", status)
	}
	exchange(t, c)
}

func TestHandlerMiddlewareOnRealListener(t *testing.T) {
	t.Parallel()
	p, _ := wsorigin.New(wsorigin.Options{})
	var upgraded = make(chan struct{}, 4)
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Behind the middleware, a library with its own (weaker) check may
		// run; it never sees the refused handshakes.
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return
		}
		upgraded <- struct{}{}
		echoOnce(c)
	})
	srv := httptest.NewServer(p.Handler(inner))
	t.Cleanup(srv.Close)
	if c, status, _ := dial(t, srv, []string{"https://evil.example"}, "", nil); c != nil || status != 403 {
		t.Fatalf("cross-origin through middleware: status %d, want 403", status)
	}
	if len(upgraded) != 0 {
		t.Fatal("inner handler upgraded a refused handshake")
	}
	c, status, _ := dial(t, srv, []string{srv.URL}, "", nil)
	if c == nil {
		t.Fatalf("same origin through middleware: %d", status)
	}
	exchange(t, c)
}

// TestAcceptOptionsKeepsCoderCheck shows that the options handed to
// coder/websocket admit exactly the origin the policy checked: reused for
// another request, coder/websocket's own check refuses.
func TestAcceptOptionsKeepsCoderCheck(t *testing.T) {
	t.Parallel()
	p, err := wsorigin.New(wsorigin.Options{Allowed: []string{"https://app.example.com", "http://[::1]:8080"}})
	if err != nil {
		t.Fatal(err)
	}
	var stolen *websocket.AcceptOptions
	captured := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/capture" {
			o, err := p.AcceptOptions(r, &websocket.AcceptOptions{InsecureSkipVerify: true})
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			stolen = o
			close(captured)
			w.WriteHeader(204)
			return
		}
		// Reuse the options computed for another request.
		<-captured
		c, err := websocket.Accept(w, r, stolen)
		if err != nil {
			return
		}
		echoOnce(c)
	}))
	t.Cleanup(srv.Close)
	req, _ := http.NewRequest("GET", srv.URL+"/capture", nil)
	req.Header.Set("Origin", "HTTPS://App.Example.com:443")
	resp, err := srv.Client().Do(req)
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("capture: %v %v", resp, err)
	}
	resp.Body.Close()
	if stolen.InsecureSkipVerify || len(stolen.OriginPatterns) != 1 {
		t.Fatalf("AcceptOptions = %+v; want InsecureSkipVerify off and one exact pattern", stolen)
	}
	if c, status, _ := dial(t, srv, []string{"https://evil.example.com"}, "", nil); c != nil || status != 403 {
		t.Fatalf("coder/websocket admitted another origin with the policy's options: %d", status)
	}
	c, status, _ := dial(t, srv, []string{"https://app.example.com:443"}, "", nil)
	if c == nil {
		t.Fatalf("the checked origin was refused by coder/websocket: %d", status)
	}
	exchange(t, c)

	// The IPv6 entry's brackets are escaped for path.Match.
	r := httptest.NewRequest("GET", "http://backend/", nil)
	r.Header.Set("Origin", "http://[::1]:8080")
	o, err := p.AcceptOptions(r, nil)
	if err != nil || o.OriginPatterns[0] != `http://\[::1\]:8080` {
		t.Fatalf("AcceptOptions for IPv6 = %+v, %v", o, err)
	}
}

// tornadoAllows is Tornado's WebSocketHandler.check_origin as documented
// in the reference notes (websocket.py): the Origin (or, if absent,
// Sec-Websocket-Origin) netloc, lower-cased, must equal the raw Host
// header; no Origin at all is allowed. It is the baseline, not code we
// ship.
func tornadoAllows(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		origin = r.Header.Get("Sec-Websocket-Origin")
	}
	if origin == "" {
		return true
	}
	netloc := ""
	if i := strings.Index(origin, "://"); i >= 0 {
		netloc = origin[i+3:]
		if j := strings.IndexAny(netloc, "/?#"); j >= 0 {
			netloc = netloc[:j]
		}
	}
	return strings.ToLower(netloc) == r.Host
}

// TestHandshakeAgainstAnchors runs the same handshakes against three real
// servers: coder/websocket's Accept with the patterns a user would write,
// Tornado's check_origin rule, and wsorigin with the equivalent intent.
// Each row is a case where an anchor accepts what wsorigin refuses (or,
// for the last rows, refuses a legitimate request).
func TestHandshakeAgainstAnchors(t *testing.T) {
	t.Parallel()
	const any = 0 // not asserted
	cases := []struct {
		name                 string
		tls                  bool
		host                 string // Host override; {host} is the server's host:port
		origins              []string
		header               http.Header
		coderPatterns        []string
		ours                 wsorigin.Options
		coder, tornado, want int
	}{
		{name: "http twin of an https page", tls: true, origins: []string{"http://{host}"},
			coder: 101, tornado: 101, want: 403},
		{name: "origin with a path", tls: true, origins: []string{"https://{host}/evil"},
			coder: 101, tornado: 101, want: 403},
		{name: "user info in front of the host", tls: true, origins: []string{"https://evil.example@{host}"},
			coder: 101, tornado: 403, want: 403},
		{name: "two Origin headers, the second evil", tls: true, origins: []string{"https://{host}", "https://evil.example"},
			coder: 101, tornado: any, want: 403},
		{name: "host-only pattern admits the http twin", tls: true, origins: []string{"http://app.example.com"},
			coderPatterns: []string{"app.example.com"}, ours: wsorigin.Options{Allowed: []string{"https://app.example.com"}},
			coder: 101, tornado: 403, want: 403},
		{name: "glued wildcard admits evilexample.com", tls: true, origins: []string{"https://evilexample.com"},
			coderPatterns: []string{"*example.com"}, ours: wsorigin.Options{Allowed: []string{"https://example.com", "https://*.example.com"}},
			coder: 101, tornado: 403, want: 403},
		{name: "star pattern admits null", tls: true, origins: []string{"null"},
			coderPatterns: []string{"*"}, ours: wsorigin.Options{Allowed: []string{"https://*.example.com"}},
			coder: 101, tornado: 403, want: 403},
		{name: "DNS rebinding", host: "rebind.evil.test:{port}", origins: []string{"http://rebind.evil.test:{port}"},
			ours:  wsorigin.Options{PublicOrigin: "http://{host}"},
			coder: 101, tornado: 101, want: 403},
		{name: "browser request without Origin", header: http.Header{"Sec-Fetch-Mode": {"websocket"}, "Sec-Fetch-Site": {"cross-site"}},
			coder: 101, tornado: 101, want: 403},
		{name: "legitimate: Host in upper case", host: "APP.EXAMPLE.TEST:{port}", origins: []string{"http://app.example.test:{port}"},
			coder: 101, tornado: 403, want: 101},
		{name: "legitimate: trailing dot", host: "app.example.test:{port}", origins: []string{"http://app.example.test.:{port}"},
			coder: 403, tornado: 403, want: 101},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			coderSrv := newServer(c.tls, func(w http.ResponseWriter, r *http.Request) {
				conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: c.coderPatterns})
				if err == nil {
					echoOnce(conn)
				}
			})
			tornadoSrv := newServer(c.tls, func(w http.ResponseWriter, r *http.Request) {
				if !tornadoAllows(r) {
					http.Error(w, "Cross origin websockets not allowed", http.StatusForbidden)
					return
				}
				conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
				if err == nil {
					echoOnce(conn)
				}
			})
			var p *wsorigin.Policy
			oursSrv := newServer(c.tls, func(w http.ResponseWriter, r *http.Request) {
				conn, err := p.Accept(w, r, nil)
				if err == nil {
					echoOnce(conn)
				}
			})
			defer coderSrv.Close()
			defer tornadoSrv.Close()
			defer oursSrv.Close()
			for _, s := range []struct {
				name string
				srv  *httptest.Server
				want int
			}{{"coder/websocket", coderSrv, c.coder}, {"tornado rule", tornadoSrv, c.tornado}, {"wsorigin", oursSrv, c.want}} {
				hostport := strings.TrimPrefix(strings.TrimPrefix(s.srv.URL, "https://"), "http://")
				port := hostport[strings.LastIndexByte(hostport, ':')+1:]
				fill := func(v string) string {
					return strings.ReplaceAll(strings.ReplaceAll(v, "{host}", hostport), "{port}", port)
				}
				if s.name == "wsorigin" {
					opts := c.ours
					opts.PublicOrigin = fill(opts.PublicOrigin)
					var err error
					if p, err = wsorigin.New(opts); err != nil {
						t.Fatal(err)
					}
				}
				var origins []string
				for _, o := range c.origins {
					origins = append(origins, fill(o))
				}
				conn, status, _ := dial(t, s.srv, origins, fill(c.host), c.header)
				if conn != nil {
					exchange(t, conn)
				}
				if s.want != any && status != s.want {
					t.Errorf("%s: status %d, want %d", s.name, status, s.want)
				}
			}
		})
	}
}

func newServer(tls bool, h http.HandlerFunc) *httptest.Server {
	if tls {
		return httptest.NewTLSServer(h)
	}
	return httptest.NewServer(h)
}

// TestAnchorsAcceptWhatPolicyRefuses compares the decision functions
// directly on crafted requests, without a listener: coder/websocket's rule
// through its real Accept on a recorder, Tornado's rule, and Check.
func TestAnchorsAcceptWhatPolicyRefuses(t *testing.T) {
	t.Parallel()
	p, _ := wsorigin.New(wsorigin.Options{Allowed: []string{"https://*.example.com"}})
	cases := []struct {
		name, host, origin string
		patterns           []string
	}{
		{"suffix pattern matches any port", "api.example.com", "https://a.example.com:9999", []string{"*.example.com:*"}},
		{"character class", "api.example.com", "https://b.example.com.evil.com", []string{"[a-z].example.com*"}},
		{"question mark", "api.example.com", "https://xexample.com", []string{"?example.com"}},
		{"scheme-less host pattern", "api.example.com", "http://a.example.com", []string{"*.example.com"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("GET", "https://"+c.host+"/ws", nil)
			r.Header.Set("Origin", c.origin)
			r.Header.Set("Connection", "Upgrade")
			r.Header.Set("Upgrade", "websocket")
			r.Header.Set("Sec-WebSocket-Version", "13")
			r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
			rec := httptest.NewRecorder() // not a Hijacker: 501 means the origin passed
			_, err := websocket.Accept(rec, r, &websocket.AcceptOptions{OriginPatterns: c.patterns})
			if rec.Code != http.StatusNotImplemented {
				t.Fatalf("coder/websocket refused (%d, %v); this row no longer shows a gap", rec.Code, err)
			}
			if err := p.Check(r); err == nil {
				t.Fatalf("wsorigin allowed %q", c.origin)
			}
		})
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/stormcellar/stormcellar/cookiesecret"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) {
		if binPath != "" {
			_ = os.RemoveAll(filepath.Dir(binPath))
		}
	}))
}

// testApp is one instance of the service on loopback listeners.
type testApp struct {
	*app
	base, admin string
	clock       *fakeClock
	stop        context.CancelFunc
	done        chan error
}

// fakeClock is the service's clock (config.Now): the real time moved by
// advance, or, once frozen, a fixed instant moved only by advance.
type fakeClock struct {
	offset atomic.Int64
	frozen atomic.Int64 // unix nanoseconds; zero: not frozen
}

func (c *fakeClock) now() time.Time {
	base := time.Now()
	if f := c.frozen.Load(); f != 0 {
		base = time.Unix(0, f)
	}
	return base.Add(time.Duration(c.offset.Load()))
}
func (c *fakeClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// freeze stops the clock at the present instant: budgets that refill with
// time then hold exactly what the test spent, however slow the run.
func (c *fakeClock) freeze() { c.frozen.Store(time.Now().UnixNano()) }
func testKeyring(t *testing.T, id string) *cookiesecret.Keyring {
	t.Helper()
	ring, err := cookiesecret.NewKeyring(cookiesecret.Key{ID: id, Secret: cookiesecret.GenerateSecret()})
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

// startApp runs the service with test limits: timeouts short enough for the
// attack tests to watch them fire, request limits high enough for the load
// tests to reach the handlers.
func startApp(t *testing.T, mutate func(*config)) *testApp {
	t.Helper()
	clock := &fakeClock{}
	cfg := config{
		Keyring:           testKeyring(t, "k1"),
		DemoFaults:        true,
		Logger:            slog.New(slog.DiscardHandler),
		Now:               clock.now,
		RatePerMinute:     1_000_000,
		ConcPerClient:     512,
		ReadHeaderTimeout: time.Second,
		BodyRateWindow:    time.Second,
		ShutdownTimeout:   5 * time.Second,
		MaxLatency:        10 * time.Second, // -race on two busy cores is not an overload
		WSMessageRate:     5,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	a, err := newApp(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	ta := &testApp{app: a, base: "http://" + ln.Addr().String(), admin: "http://" + adminLn.Addr().String(),
		clock: clock, stop: stop, done: make(chan error, 1)}
	go func() { ta.done <- a.serve(ctx, ln, adminLn) }()
	t.Cleanup(func() {
		stop()
		select {
		case err := <-ta.done:
			if err != nil {
				t.Errorf("shutdown: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("shutdown did not finish in 15 s")
		}
	})
	return ta
}

// browser is an HTTP client that keeps cookies itself (net/http/cookiejar
// will not send Secure cookies over plain http://127.0.0.1, which browsers
// do for loopback) and never follows redirects.
type browser struct {
	t      *testing.T
	base   string
	client *http.Client
	xff    string // X-Forwarded-For sent with every request, if set
	mu     sync.Mutex
	jar    map[string]string
}

// newBrowserFrom returns a browser whose requests reach the service through
// a trusted proxy (startApp with trustLoopbackProxy) on behalf of the
// client address addr.
func newBrowserFrom(t *testing.T, base, addr string) *browser {
	b := newBrowser(t, base)
	b.xff = addr
	return b
}

// trustLoopbackProxy makes the test clients, which all connect from
// 127.0.0.1, a trusted proxy: each client address then comes from the
// X-Forwarded-For a browser from newBrowserFrom sends.
func trustLoopbackProxy(c *config) {
	c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
}

func newBrowser(t *testing.T, base string) *browser {
	tr := &http.Transport{MaxConnsPerHost: 64, MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return &browser{t: t, base: base, jar: map[string]string{}, client: &http.Client{
		Transport: tr, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (b *browser) cookieHeader() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var parts []string
	for k, v := range b.jar {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, "; ")
}

func (b *browser) setCookie(name, value string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if value == "" {
		delete(b.jar, name)
		return
	}
	b.jar[name] = value
}

func (b *browser) cookie(name string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.jar[name]
}

// do sends a request as a same-origin page of the service would, unless hdr
// says otherwise, and returns the status, headers and body.
func (b *browser) do(method, path string, body io.Reader, hdr http.Header) (int, http.Header, string) {
	b.t.Helper()
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if method != http.MethodGet && method != http.MethodHead {
		req.Header.Set("Origin", b.base)
	}
	if b.xff != "" {
		req.Header.Set("X-Forwarded-For", b.xff)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if c := b.cookieHeader(); c != "" && req.Header.Get("Cookie") == "" {
		req.Header.Set("Cookie", c)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 {
			b.setCookie(c.Name, "")
		} else {
			b.setCookie(c.Name, c.Value)
		}
	}
	return resp.StatusCode, resp.Header, string(data)
}

func (b *browser) get(path string) (int, string) {
	b.t.Helper()
	code, _, body := b.do(http.MethodGet, path, nil, nil)
	return code, body
}

var (
	fieldRe = regexp.MustCompile(`name="_xsrf" value="([^"]+)"`)
	metaRe  = regexp.MustCompile(`<meta name="xsrf-token" content="([^"]+)">`)
)

// token loads the home page and returns the XSRF token it carries.
func (b *browser) token() string {
	b.t.Helper()
	code, body := b.get("/")
	m := metaRe.FindStringSubmatch(body)
	if code != http.StatusOK || m == nil {
		b.t.Fatalf("GET /: %d, no token", code)
	}
	return m[1]
}

// loginToken loads the login page and returns the _xsrf value of its form.
func (b *browser) loginToken() string {
	b.t.Helper()
	code, body := b.get("/login")
	m := fieldRe.FindStringSubmatch(body)
	if code != http.StatusOK || m == nil {
		b.t.Fatalf("GET /login: %d, no _xsrf field", code)
	}
	return m[1]
}

// postLogin posts the login form with the _xsrf value tok and returns the
// status and headers of the answer.
func (b *browser) postLogin(user, password, tok string) (int, http.Header) {
	b.t.Helper()
	form := url.Values{"username": {user}, "password": {password}, "_xsrf": {tok}}
	code, h, _ := b.do(http.MethodPost, "/login", strings.NewReader(form.Encode()),
		http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
	return code, h
}

// login logs in through the form, as a browser would.
func (b *browser) login(user string) {
	b.t.Helper()
	code, h := b.postLogin(user, "demo", b.loginToken())
	if code != http.StatusSeeOther || h.Get("Location") != "/me" || b.cookie("__Host-session") == "" {
		b.t.Fatalf("POST /login: %d Location=%q, session cookie %t", code, h.Get("Location"), b.cookie("__Host-session") != "")
	}
}

func (b *browser) purchase(sku string, qty int, token string) (int, string) {
	b.t.Helper()
	hdr := http.Header{"Content-Type": {"application/json"}}
	if token != "" {
		hdr.Set("X-XSRF-Token", token)
	}
	code, _, body := b.do(http.MethodPost, "/api/purchase",
		strings.NewReader(fmt.Sprintf(`{"sku":%q,"qty":%d}`, sku, qty)), hdr)
	return code, body
}

// metric returns the admin /metrics text.
func (ta *testApp) metrics(t *testing.T) string {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := c.Get(ta.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// eventually polls cond every 20 ms for up to d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

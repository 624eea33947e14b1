package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/stormcellar/stormcellar/cookiesecret"
)

// XSS: every payload comes back escaped for each of its four contexts, and
// the page carries a nonce CSP that would stop an injected script anyway.
func TestAttackXSSOnSearch(t *testing.T) {
	t.Parallel()
	ta := startApp(t, nil)
	b := newBrowser(t, ta.base)
	payloads := map[string]string{
		"script tag":      `<script>alert(1)</script>`,
		"img onerror":     `<img src=x onerror=alert(1)>`,
		"attr breakout":   `" autofocus onfocus="alert(1)`,
		"single quote":    `' onmouseover='alert(1)`,
		"javascript url":  `javascript:alert(1)`,
		"script end":      `</script><script>alert(1)</script>`,
		"comment":         `<!--<script>alert(1)//-->`,
		"svg":             `<svg/onload=alert(1)>`,
		"template syntax": `{{.}} {% raw %} ${7*7}`,
		"line separator":  "\u2028</title><script>x</script>",
	}
	for name, p := range payloads {
		t.Run(name, func(t *testing.T) {
			code, hdr, body := b.do(http.MethodGet, "/search?q="+url.QueryEscape(p), nil, nil)
			if code != http.StatusOK {
				t.Fatalf("status %d", code)
			}
			start := strings.Index(body, `id="search-data">`)
			end := start + strings.Index(body[start:], "</script>")
			island := body[start+len(`id="search-data">`) : end]
			// In the JSON island quotes are inert; everywhere else nothing
			// of the payload's markup may come back raw.
			if outside := body[:start] + body[end:]; strings.ContainsAny(p, `<>"'`) && strings.Contains(outside, p) {
				t.Fatalf("payload reflected raw:\n%s", body)
			}
			if !strings.Contains(body, `<em id="echo-text">`+html.EscapeString(p)+`</em>`) {
				t.Errorf("element text is not the escaped query")
			}
			if n := strings.Count(body, "<script"); n != 2 { // the island and search.js
				t.Errorf("%d <script elements, want 2", n)
			}
			if strings.Contains(p, "javascript:") && !strings.Contains(body, `id="echo-link" href="#ZgotmplZ"`) {
				t.Errorf("javascript: URL not neutralised")
			}
			if strings.ContainsAny(island, "<>") {
				t.Errorf("data island holds raw markup: %s", island)
			}
			csp := hdr.Get("Content-Security-Policy")
			if !strings.Contains(csp, "'nonce-") || strings.Contains(csp, "unsafe-inline") {
				t.Errorf("CSP %q", csp)
			}
			if hdr.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("no nosniff")
			}
		})
	}
	// Legitimate use still works.
	if code, body := b.get("/search?q=umbrella"); code != 200 || !strings.Contains(body, "umbrella") {
		t.Fatalf("plain search: %d", code)
	}
}

// A long query is refused at the door: 414 beyond 4 KiB of URL, 431 beyond
// 32 KiB of headers, before any handler runs.
func TestAttackOversizedURLAndHeaders(t *testing.T) {
	t.Parallel()
	ta := startApp(t, nil)
	b := newBrowser(t, ta.base)
	if code, _ := b.get("/search?q=" + strings.Repeat("a", 5000)); code != http.StatusRequestURITooLong {
		t.Errorf("5 KB URL: %d, want 414", code)
	}
	code, _, _ := b.do(http.MethodGet, "/", nil, http.Header{"X-Big": {strings.Repeat("b", 64<<10)}})
	if code != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("64 KiB header: %d, want 431", code)
	}
	if code, _ := b.get("/healthz"); code != 200 {
		t.Errorf("healthz after: %d", code)
	}
}

// Oversized bodies: refused from Content-Length before the body is sent,
// cut at the limit when chunked; a body at the limit is accepted.
func TestAttackOversizedBodies(t *testing.T) {
	t.Parallel()
	ta := startApp(t, nil)
	b := newBrowser(t, ta.base)
	tok := b.token()
	hdr := func() http.Header {
		return http.Header{"X-XSRF-Token": {tok}, "Content-Type": {"application/octet-stream"}}
	}

	// Declared 2 MiB, nothing sent: the answer must come without the body.
	conn, err := net.Dial("tcp", strings.TrimPrefix(ta.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/upload HTTP/1.1\r\nHost: %s\r\nOrigin: %s\r\nCookie: %s\r\nX-XSRF-Token: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n",
		strings.TrimPrefix(ta.base, "http://"), ta.base, b.cookieHeader(), tok, 2<<20)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a 2 MiB Content-Length without its body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !resp.Close {
		t.Errorf("declared 2 MiB: %d close=%t, want 413 and Connection: close", resp.StatusCode, resp.Close)
	}

	// Chunked 1.5 MiB: cut at 1 MiB.
	pr, pw := io.Pipe()
	go func() {
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for range 24 {
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
		pw.Close()
	}()
	code, _, _ := b.do(http.MethodPost, "/api/upload", pr, hdr())
	pr.CloseWithError(errors.New("done"))
	if code != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked 1.5 MiB: %d, want 413", code)
	}
	// Purchase has a 4 KiB limit of its own.
	b.login("bodyuser")
	tok = b.token()
	big := `{"sku":"limited","qty":1,"pad":"` + strings.Repeat("p", 8<<10) + `"}`
	code, _, _ = b.do(http.MethodPost, "/api/purchase", strings.NewReader(big),
		http.Header{"X-XSRF-Token": {tok}, "Content-Type": {"application/json"}})
	if code != http.StatusRequestEntityTooLarge {
		t.Errorf("8 KiB purchase: %d, want 413", code)
	}
	// Exactly 1 MiB passes.
	code, _, body := b.do(http.MethodPost, "/api/upload", bytes.NewReader(make([]byte, 1<<20)), hdr())
	if code != 200 || !strings.Contains(body, `"bytes":1048576`) {
		t.Errorf("1 MiB upload: %d %s", code, body)
	}
	if !strings.Contains(ta.metrics(t), `stormcellar_http_rejections_total{code="413",kind="body_too_large"}`) {
		t.Errorf("413s not in metrics")
	}
}

// Slowloris: connections that drip their headers are cut at the header
// deadline (1 s in this test; 10 s by default), while others are served.
func TestAttackSlowHeaders(t *testing.T) {
	t.Parallel()
	ta := startApp(t, nil)
	b := newBrowser(t, ta.base)
	const n = 30
	cut := make(chan time.Duration, n)
	start := time.Now()
	for range n {
		go func() {
			conn, err := net.Dial("tcp", strings.TrimPrefix(ta.base, "http://"))
			if err != nil {
				cut <- -1
				return
			}
			defer conn.Close()
			_, _ = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n")
			for i := 0; i < 60; i++ { // at most 12 s of dripping
				if _, err := io.WriteString(conn, "X-A: b\r\n"[i%8:i%8+1]); err != nil {
					break
				}
				_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				var buf [512]byte
				if _, err := conn.Read(buf[:]); err != nil && !errors.Is(err, errTimeout(err)) {
					break // closed (with or without a 408/400 first)
				}
			}
			cut <- time.Since(start)
		}()
	}
	for range 3 {
		if code, _ := b.get("/healthz"); code != 200 {
			t.Errorf("legitimate request during the attack: %d", code)
		}
	}
	for range n {
		d := <-cut
		if d < 0 || d > 5*time.Second {
			t.Fatalf("slow-header connection held for %s (want cut at about 1 s)", d)
		}
	}
}

// errTimeout returns err when it is a timeout (the read deadline of the
// probe), so errors.Is matches only timeouts.
func errTimeout(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return err
	}
	return errSentinel
}

var errSentinel = errors.New("not a timeout")

// Slow POST: a body below the minimum rate is cut (408) within the window.
func TestAttackSlowBody(t *testing.T) {
	t.Parallel()
	ta := startApp(t, nil)
	b := newBrowser(t, ta.base)
	tok := b.token()
	conn, err := net.Dial("tcp", strings.TrimPrefix(ta.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "POST /api/upload HTTP/1.1\r\nHost: %s\r\nOrigin: %s\r\nCookie: %s\r\nX-XSRF-Token: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n",
		strings.TrimPrefix(ta.base, "http://"), ta.base, b.cookieHeader(), tok)
	respc := make(chan *http.Response, 1)
	go func() {
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, _ := http.ReadResponse(bufio.NewReader(conn), nil)
		respc <- resp
	}()
	var resp *http.Response
drip:
	for range 100 { // 10 bytes every 100 ms: 100 B/s, under 1 KiB/s
		select {
		case resp = <-respc:
			break drip
		case <-time.After(100 * time.Millisecond):
			if _, err := conn.Write([]byte("0123456789")); err != nil {
				resp = <-respc
				break drip
			}
		}
	}
	took := time.Since(start)
	if resp == nil {
		t.Fatalf("slow body not cut after %s", took)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout || took > 5*time.Second {
		t.Errorf("slow body: %d after %s, want 408 within the 1 s window", resp.StatusCode, took)
	}
	if code, _ := b.get("/healthz"); code != 200 {
		t.Errorf("healthz: %d", code)
	}
}

// Sessions: only a cookie signed with a current key, untouched, unexpired,
// for a live server-side session gets in.
func TestAttackTamperedAndForgedCookies(t *testing.T) {
	t.Parallel()
	ta := startApp(t, nil)
	b := newBrowser(t, ta.base)
	b.login("alice")
	code, body := b.get("/me")
	if code != 200 || !strings.Contains(body, `<span id="user">alice</span>`) {
		t.Fatalf("/me with a valid session: %d", code)
	}
	good := b.cookie("__Host-session")
	flip := func(s string, i int) string {
		c := byte('A')
		if s[i] == 'A' {
			c = 'B'
		}
		return s[:i] + string(c) + s[i+1:]
	}
	other, err := cookiesecret.NewCookie(testKeyring(t, "k1"), cookiesecret.CookieOptions{Name: "__Host-session"})
	if err != nil {
		t.Fatal(err)
	}
	foreign, _ := other.Encode([]byte("any-session-id"))
	unknownKey, _ := func() (string, error) {
		c, _ := cookiesecret.NewCookie(testKeyring(t, "k9"), cookiesecret.CookieOptions{Name: "__Host-session"})
		return c.Encode([]byte("x"))
	}()
	cases := map[string]string{
		"missing":             "",
		"tampered middle":     flip(good, len(good)/2),
		"tampered end":        flip(good, len(good)-3),
		"truncated":           good[:len(good)-10],
		"forged same key id":  foreign,
		"unknown key id":      unknownKey,
		"plain session id":    "alice",
		"huge":                strings.Repeat("A", 5000),
		"other cookie's name": b.cookie("__Host-xsrf"),
	}
	for name, v := range cases {
		hdr := http.Header{"Cookie": {"__Host-session=" + v}}
		if v == "" {
			hdr = http.Header{"Cookie": {"x=y"}}
		}
		code, _, body := b.do(http.MethodGet, "/me", nil, hdr)
		if code != http.StatusUnauthorized || strings.Contains(body, "alice") {
			t.Errorf("%s: %d, want 401", name, code)
		}
	}
	// Expired: the server-side session ends after its TTL, whatever the
	// browser kept.
	ta.clock.advance(13 * time.Hour)
	if code, _ := b.get("/me"); code != http.StatusUnauthorized {
		t.Errorf("expired session: %d, want 401", code)
	}
	ta.clock.advance(-13 * time.Hour)
	// Logout ends the session server-side: the old cookie stops working.
	b2 := newBrowser(t, ta.base)
	b2.login("bob")
	old := b2.cookie("__Host-session")
	tok := b2.token()
	code, _, _ = b2.do(http.MethodPost, "/logout", nil, http.Header{"X-XSRF-Token": {tok}})
	if code != http.StatusSeeOther {
		t.Fatalf("logout: %d", code)
	}
	code, _, _ = b2.do(http.MethodGet, "/me", nil, http.Header{"Cookie": {"__Host-session=" + old}})
	if code != http.StatusUnauthorized {
		t.Errorf("cookie replayed after logout: %d, want 401", code)
	}
	// The legitimate session still works.
	if code, _ := b.get("/me"); code != 200 {
		t.Errorf("valid session after the attacks: %d", code)
	}
}

// XSRF: cross-site and tokenless POSTs are refused; so is a token stolen
// from another session.
func TestAttackCrossSiteAndTokenlessPosts(t *testing.T) {
	t.Parallel()
	ta := startApp(t, nil)
	victim := newBrowser(t, ta.base)
	victim.login("victim")
	tok := victim.token()
	attacker := newBrowser(t, ta.base)
	attacker.login("mallory")
	attackerTok := attacker.token()
	body := func() io.Reader { return strings.NewReader(`{"sku":"limited","qty":1}`) }
	cases := []struct {
		name string
		hdr  http.Header
	}{
		{"cross-site origin with token", http.Header{"Origin": {"https://evil.example"}, "X-XSRF-Token": {tok}}},
		{"sec-fetch-site cross-site", http.Header{"Sec-Fetch-Site": {"cross-site"}, "X-XSRF-Token": {tok}}},
		{"null origin", http.Header{"Origin": {"null"}, "X-XSRF-Token": {tok}}},
		{"same origin no token", http.Header{}},
		{"garbage token", http.Header{"X-XSRF-Token": {"k1.garbage"}}},
		{"token of another session", http.Header{"X-XSRF-Token": {attackerTok}}},
	}
	for _, c := range cases {
		c.hdr.Set("Content-Type", "application/json")
		code, _, _ := victim.do(http.MethodPost, "/api/purchase", body(), c.hdr)
		if code != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", c.name, code)
		}
	}
	// A cross-site form posting the login (login CSRF) without a token.
	code, _, _ := newBrowser(t, ta.base).do(http.MethodPost, "/login",
		strings.NewReader("username=mallory&password=demo"),
		http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Origin": {"https://evil.example"}})
	if code != http.StatusForbidden {
		t.Errorf("cross-site login: %d, want 403", code)
	}
	// Without a session, a valid anonymous token still gets no purchase.
	anon := newBrowser(t, ta.base)
	if code, _ := anon.purchase("limited", 1, anon.token()); code != http.StatusUnauthorized {
		t.Errorf("anonymous purchase: %d, want 401", code)
	}
	// Stock untouched by every refused attempt; the victim can still buy.
	code, resp := victim.purchase("limited", 1, tok)
	if code != 200 || !strings.Contains(resp, `"remaining":99`) {
		t.Fatalf("legitimate purchase: %d %s", code, resp)
	}
	if !strings.Contains(ta.metrics(t), `kind="xsrf"`) {
		t.Errorf("xsrf rejections not in metrics")
	}
}

// 200 concurrent purchases of the last item: exactly one wins.
func TestAttackConcurrentPurchaseLastOne(t *testing.T) {
	t.Parallel()
	ta := startApp(t, nil)
	b := newBrowser(t, ta.base)
	b.login("buyer")
	tok := b.token()
	const n = 200
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	startGate := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-startGate
			sku := "last-one"
			if i%2 == 1 {
				sku = "limited" // 100 more buyers race for the 100 lanterns
			}
			code, _ := b.purchase(sku, 1, tok)
			mu.Lock()
			codes[code*10+i%2]++
			mu.Unlock()
		}()
	}
	close(startGate)
	wg.Wait()
	if codes[2000] != 1 || codes[4090] != n/2-1 {
		t.Errorf("last-one: %d won, %d refused with 409 (all: %v); want 1 and %d", codes[2000], codes[4090], codes, n/2-1)
	}
	if codes[2001] != n/2 {
		t.Errorf("limited: %d of %d won (all: %v)", codes[2001], n/2, codes)
	}
	// One more for last-one: refused; stock reads 0 and never below.
	if code, _ := b.purchase("last-one", 1, tok); code != http.StatusConflict {
		t.Errorf("purchase after sell-out: %d, want 409", code)
	}
	code, body := b.get("/api/products")
	var products []Product
	if err := json.Unmarshal([]byte(body), &products); code != 200 || err != nil {
		t.Fatalf("/api/products: %d %v", code, err)
	}
	for _, p := range products {
		if (p.SKU == "last-one" || p.SKU == "limited") && p.Stock != 0 {
			t.Errorf("%s stock %d, want 0", p.SKU, p.Stock)
		}
	}
}

// A panic in a handler is a 500 without details; one in a background task
// is logged and counted; the process serves on.
func TestAttackPanics(t *testing.T) {
	t.Parallel()
	ta := startApp(t, nil)
	b := newBrowser(t, ta.base)
	code, hdr, body := b.do(http.MethodGet, "/boom", nil, http.Header{"Accept": {"text/html"}})
	if code != 500 || strings.Contains(body, "demo fault") || strings.Contains(body, ".go:") {
		t.Errorf("/boom: %d %q", code, body)
	}
	if hdr.Get("Content-Security-Policy") == "" || hdr.Get("X-Request-Id") == "" {
		t.Errorf("500 without security headers or request id")
	}
	if code, _ := b.get("/boom-async"); code != http.StatusAccepted {
		t.Errorf("/boom-async: %d, want 202", code)
	}
	eventually(t, 5*time.Second, "task panic counted", func() bool {
		return strings.Contains(ta.metrics(t), `stormcellar_tasks_total{outcome="panic"} 1`)
	})
	for range 3 {
		if code, _ := b.get("/"); code != 200 {
			t.Errorf("after panics: %d", code)
		}
	}
	if m := ta.metrics(t); !strings.Contains(m, `stormcellar_http_rejections_total{code="500",kind="panic"} 1`) {
		t.Errorf("handler panic not counted")
	}
}

// A hanging upstream is cut at 2 s: 504 in time; a healthy one answers.
func TestAttackHangingUpstream(t *testing.T) {
	t.Parallel()
	ta := startApp(t, nil)
	b := newBrowser(t, ta.base)
	start := time.Now()
	code, _ := b.get("/api/quote?upstream_delay=20s")
	took := time.Since(start)
	if code != http.StatusGatewayTimeout || took < 1500*time.Millisecond || took > 5*time.Second {
		t.Errorf("hanging upstream: %d after %s, want 504 at about 2 s", code, took)
	}
	if code, body := b.get("/api/quote"); code != 200 || !strings.Contains(body, `"price"`) {
		t.Errorf("healthy upstream: %d %s", code, body)
	}
	// A stuck handler under its 3 s route deadline: 503 at the deadline.
	start = time.Now()
	code, _ = b.get("/slow?d=30s")
	took = time.Since(start)
	if code != http.StatusServiceUnavailable || took > 6*time.Second {
		t.Errorf("/slow: %d after %s, want 503 at about 3 s", code, took)
	}
	if code, _ := b.get("/slow?d=10ms"); code != 200 {
		t.Errorf("/slow quick: %d", code)
	}
}

func TestFaultRoutesOnlyWithDemoFaults(t *testing.T) {
	t.Parallel()
	ta := startApp(t, func(c *config) { c.DemoFaults = false })
	b := newBrowser(t, ta.base)
	for _, p := range []string{"/boom", "/boom-async", "/slow?d=1s"} {
		if code, _ := b.get(p); code != http.StatusNotFound {
			t.Errorf("%s without -demo-faults: %d, want 404", p, code)
		}
	}
	if code, _ := b.get("/metrics"); code != http.StatusNotFound {
		t.Errorf("/metrics on the public listener: %d, want 404", code)
	}
}

func wsURL(base string) string { return "ws" + strings.TrimPrefix(base, "http") + "/ws/chat" }

func dialChat(ctx context.Context, ta *testApp, origin string) (*websocket.Conn, *http.Response, error) {
	return websocket.Dial(ctx, wsURL(ta.base), &websocket.DialOptions{
		HTTPHeader: http.Header{"Origin": {origin}}})
}

// Cross-site WebSocket hijacking: handshakes from other origins get 403.
func TestAttackCrossOriginWebSocket(t *testing.T) {
	t.Parallel()
	ta := startApp(t, func(c *config) { c.AllowedOrigins = []string{"https://app.example.com"} })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	host := strings.TrimPrefix(ta.base, "http://")
	for name, origin := range map[string]string{
		"other site":       "https://evil.example",
		"null":             "null",
		"suffix trick":     "http://" + host + ".evil.example",
		"prefix trick":     "https://evil-app.example.com",
		"subdomain":        "https://x.app.example.com",
		"scheme downgrade": "http://app.example.com",
		"other port":       "http://127.0.0.1:1",
		"with path":        ta.base + "/",
	} {
		c, resp, err := dialChat(ctx, ta, origin)
		if err == nil {
			c.CloseNow()
			t.Errorf("%s (%s): connected", name, origin)
			continue
		}
		if resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %v, want 403", name, err)
		}
	}
	for _, origin := range []string{ta.base, "https://app.example.com"} {
		c, _, err := dialChat(ctx, ta, origin)
		if err != nil {
			t.Fatalf("allowed origin %s: %v", origin, err)
		}
		if err := c.Write(ctx, websocket.MessageText, []byte(`{"text":"hi"}`)); err != nil {
			t.Fatal(err)
		}
		if _, msg, err := c.Read(ctx); err != nil || string(msg) != `{"text":"hi"}` {
			t.Fatalf("echo: %q %v", msg, err)
		}
		c.Close(websocket.StatusNormalClosure, "")
	}
	if !strings.Contains(ta.metrics(t), `kind="origin"`) {
		t.Errorf("origin rejections not in metrics")
	}
}

// WebSocket abuse: floods (1008), oversized messages (1009), malformed
// (1007) and binary (1003) messages each close only the offender; a
// connection-count flood gets 429; an honest client keeps chatting.
func TestAttackWebSocketAbuse(t *testing.T) {
	t.Parallel()
	ta := startApp(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	honest, _, err := dialChat(ctx, ta, ta.base)
	if err != nil {
		t.Fatal(err)
	}
	defer honest.CloseNow()
	received := make(chan string, 1024)
	go func() {
		for {
			_, m, err := honest.Read(ctx)
			if err != nil {
				close(received)
				return
			}
			received <- string(m)
		}
	}()

	abuse := []struct {
		name string
		send func(c *websocket.Conn) error
		want websocket.StatusCode
	}{
		{"flood", func(c *websocket.Conn) error {
			for range 200 {
				if err := c.Write(ctx, websocket.MessageText, []byte(`{"text":"spam"}`)); err != nil {
					return err
				}
			}
			return nil
		}, websocket.StatusPolicyViolation},
		{"oversized", func(c *websocket.Conn) error {
			return c.Write(ctx, websocket.MessageText, []byte(`{"text":"`+strings.Repeat("a", 5000)+`"}`))
		}, websocket.StatusMessageTooBig},
		{"malformed", func(c *websocket.Conn) error {
			return c.Write(ctx, websocket.MessageText, []byte(`{"text":`))
		}, websocket.StatusInvalidFramePayloadData},
		{"unknown field", func(c *websocket.Conn) error {
			return c.Write(ctx, websocket.MessageText, []byte(`{"text":"x","admin":true}`))
		}, websocket.StatusInvalidFramePayloadData},
		{"invalid utf-8", func(c *websocket.Conn) error {
			return c.Write(ctx, websocket.MessageText, []byte("{\"text\":\"\xff\"}"))
		}, websocket.StatusInvalidFramePayloadData},
		{"binary", func(c *websocket.Conn) error {
			return c.Write(ctx, websocket.MessageBinary, []byte{0, 1, 2})
		}, websocket.StatusUnsupportedData},
		{"empty text", func(c *websocket.Conn) error {
			return c.Write(ctx, websocket.MessageText, []byte(`{"text":"  "}`))
		}, websocket.StatusPolicyViolation},
	}
	for _, a := range abuse {
		c, _, err := dialChat(ctx, ta, ta.base)
		if err != nil {
			t.Fatalf("%s: dial: %v", a.name, err)
		}
		c.SetReadLimit(1 << 20)
		_ = a.send(c)
		var got error
		for got == nil {
			_, _, got = c.Read(ctx)
		}
		if code := websocket.CloseStatus(got); code != a.want {
			t.Errorf("%s: closed with %d (%v), want %d", a.name, code, got, a.want)
		}
		c.CloseNow()
	}
	// Too many connections from one client: the 9th is refused with 429.
	var conns []*websocket.Conn
	refused := 0
	for range 10 {
		c, resp, err := dialChat(ctx, ta, ta.base)
		if err != nil {
			if resp != nil && resp.StatusCode == http.StatusTooManyRequests {
				refused++
			}
			continue
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.CloseNow()
	}
	if len(conns) != 7 || refused != 3 { // 8 per client, the honest one included
		t.Errorf("connection flood: %d accepted, %d refused with 429; want 7 and 3", len(conns), refused)
	}
	// The honest client still chats, and saw the flood capped.
	if err := honest.Write(ctx, websocket.MessageText, []byte(`{"text":"still here"}`)); err != nil {
		t.Fatal(err)
	}
	spam := 0
	for m := range received {
		if m == `{"text":"still here"}` {
			if spam > 20 {
				t.Errorf("%d flood messages broadcast before the flooder was cut (burst is 10)", spam)
			}
			return
		}
		spam++
	}
	t.Fatalf("honest client lost its connection")
}

// Graceful shutdown: WebSockets get 1001, in-flight requests finish, serve
// returns nil.
func TestShutdownClosesWebSocketsGoingAway(t *testing.T) {
	t.Parallel()
	ta := startApp(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := dialChat(ctx, ta, ta.base)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	b := newBrowser(t, ta.base)
	slow := make(chan int, 1)
	go func() {
		code, _ := b.get("/slow?d=500ms")
		slow <- code
	}()
	time.Sleep(100 * time.Millisecond) // let the slow request start
	readErr := make(chan error, 1)
	go func() {
		for {
			if _, _, err := c.Read(ctx); err != nil {
				readErr <- err
				return
			}
		}
	}()
	ta.stop()
	if err := <-readErr; websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Errorf("WebSocket at shutdown: %v, want close 1001", err)
	}
	if code := <-slow; code != 200 {
		t.Errorf("in-flight request at shutdown: %d, want 200", code)
	}
	select {
	case err := <-ta.done:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
		ta.done <- nil // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("no shutdown")
	}
}

// Password guessing from one address cannot lock the account's owner out:
// the guesser is throttled after 10 failures for the account (even when it
// then sends the right password), concurrent guesses do not slip past that
// budget together, and the owner, from their own address, logs in while the
// guessing goes on, as often as they like: only failures count.
func TestAttackLoginGuessingCannotLockOutOwner(t *testing.T) {
	t.Parallel()
	ta := startApp(t, trustLoopbackProxy)
	ta.clock.freeze() // budgets hold exactly what the test spent

	attacker := newBrowserFrom(t, ta.base, "198.51.100.7")
	tok := attacker.loginToken()
	var codes []int
	var retryAfter string
	for i := range 30 {
		code, h := attacker.postLogin("ann", fmt.Sprintf("guess-%d", i), tok)
		codes = append(codes, code)
		retryAfter = h.Get("Retry-After")
	}
	for i, code := range codes {
		if want := loginWant(i < 10); code != want {
			t.Fatalf("guess %d from one address: %d, want %d (all: %v)", i+1, code, want, codes)
		}
	}
	if retryAfter != "6" {
		t.Errorf("Retry-After %q for the throttled guesser, want 6 (one more guess every 6 s)", retryAfter)
	}

	// 40 guesses at once from a second address: 10 are checked, 30 refused.
	rusher := newBrowserFrom(t, ta.base, "198.51.100.8")
	rtok := rusher.loginToken()
	var mu sync.Mutex
	got := map[int]int{}
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			code, _ := rusher.postLogin("ann", fmt.Sprintf("rush-%d", i), rtok)
			mu.Lock()
			got[code]++
			mu.Unlock()
		}()
	}
	close(gate)
	wg.Wait()
	if got[http.StatusUnauthorized] != 10 || got[http.StatusTooManyRequests] != 30 {
		t.Errorf("40 concurrent guesses: %v, want 10×401 and 30×429", got)
	}

	// The first guesser keeps hammering (at most 200 attempts) while the
	// owner logs in from their own address.
	stop := make(chan struct{})
	done := make(chan map[int]int, 1)
	go func() {
		seen := map[int]int{}
		defer func() { done <- seen }()
		for range 200 {
			code, _ := attacker.postLogin("ann", "hunter2", tok)
			seen[code]++
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	halt := sync.OnceValue(func() map[int]int { close(stop); return <-done })
	t.Cleanup(func() { halt() })

	owner := newBrowserFrom(t, ta.base, "203.0.113.5")
	if code, _ := owner.postLogin("ann", "typo", owner.loginToken()); code != http.StatusUnauthorized {
		t.Errorf("owner's typo: %d, want 401", code)
	}
	for i := range 12 {
		code, h := owner.postLogin("ann", "demo", owner.loginToken())
		if code != http.StatusSeeOther {
			t.Fatalf("owner's login %d while the account is under attack: %d (Retry-After %q), want 303",
				i+1, code, h.Get("Retry-After"))
		}
	}
	if code, body := owner.get("/me"); code != http.StatusOK || !strings.Contains(body, `<span id="user">ann</span>`) {
		t.Errorf("owner's /me: %d", code)
	}
	if seen := halt(); seen[http.StatusTooManyRequests] == 0 || len(seen) != 1 {
		t.Errorf("hammering guesser during the owner's logins: %v, want only 429s", seen)
	}
	// Throttled, the guesser gets nothing even for the right password.
	if code, _ := attacker.postLogin("ann", "demo", tok); code != http.StatusTooManyRequests || attacker.cookie("__Host-session") != "" {
		t.Errorf("throttled guesser with the right password: %d, session %t; want 429 and none",
			code, attacker.cookie("__Host-session") != "")
	}
	// Another account from the guesser's address is not affected.
	if code, _ := attacker.postLogin("zoe", "demo", tok); code != http.StatusSeeOther {
		t.Errorf("guesser's address, other account: %d, want 303", code)
	}
	if !strings.Contains(ta.metrics(t), `stormcellar_http_rejections_total{code="429",kind="rate_limit"}`) {
		t.Errorf("login 429s not in metrics")
	}
}

func loginWant(checked bool) int {
	if checked {
		return http.StatusUnauthorized
	}
	return http.StatusTooManyRequests
}

// Guessing spread over many addresses is bounded per account: each address
// has its own 10 failures, but the account as a whole gives at most 100 (and
// 30 more a minute). That bound is what it costs: while a distributed
// guesser keeps the account's budget spent, its owner is refused too, from
// any address, until the guessing stops and the budget refills.
func TestAttackLoginDistributedGuessingBounded(t *testing.T) {
	t.Parallel()
	ta := startApp(t, trustLoopbackProxy)
	ta.clock.freeze()
	for i := range 12 {
		b := newBrowserFrom(t, ta.base, fmt.Sprintf("198.51.100.%d", 10+i))
		tok := b.loginToken()
		for j := range 10 {
			// Addresses 1-10 spend the account's 100; 11 and 12 find it empty.
			if code, _ := b.postLogin("bob", fmt.Sprintf("guess-%d-%d", i, j), tok); code != loginWant(i < 10) {
				t.Fatalf("address %d, guess %d: %d, want %d", i+1, j+1, code, loginWant(i < 10))
			}
		}
	}
	owner := newBrowserFrom(t, ta.base, "203.0.113.9")
	code, h := owner.postLogin("bob", "demo", owner.loginToken())
	if code != http.StatusTooManyRequests || h.Get("Retry-After") != "2" {
		t.Errorf("owner while the account's budget is spent: %d Retry-After %q, want 429 and 2", code, h.Get("Retry-After"))
	}
	// Another account is untouched.
	owner.login("carl")
	// The guessing stops; a minute later the budget has refilled by 30.
	ta.clock.advance(time.Minute)
	if code, _ := owner.postLogin("bob", "demo", owner.loginToken()); code != http.StatusSeeOther {
		t.Errorf("owner a minute after the guessing stopped: %d, want 303", code)
	}
}

// sessionCount is how many sessions the in-memory store holds.
func sessionCount(s *memSessions) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byID)
}

// Filling the session store does not block logins: with the store 20 short
// of its 100,000 cap, one client logs in under 20 names, then the victim
// logs in and gets a session; the least recently used session is ended to
// make room, while a session in use survives, and the store never holds
// more than its cap.
func TestAttackSessionStoreFloodKeepsLoginOpen(t *testing.T) {
	t.Parallel()
	ta := startApp(t, nil)
	store := ta.sessions.(*memSessions)
	const capacity = 100_000
	ctx := context.Background()

	active := newBrowser(t, ta.base)
	active.login("erin") // the oldest session, but in use
	var idle Session
	for i := range capacity - 20 - 1 {
		s, err := store.Create(ctx, fmt.Sprintf("filler-%d", i))
		if err != nil {
			t.Fatalf("pre-fill %d: %v", i, err)
		}
		if i == 0 {
			idle = s // the least recently used once erin's is used again
		}
	}
	// Erin comes back later (the recency order is kept to the minute).
	ta.clock.advance(2 * time.Minute)
	if code, _ := active.get("/me"); code != http.StatusOK {
		t.Fatalf("erin's /me: %d", code)
	}
	attacker := newBrowser(t, ta.base)
	for i := range 20 {
		attacker.setCookie("__Host-session", "") // a new session every time
		code, _ := attacker.postLogin(fmt.Sprintf("flood-%d", i), "demo", attacker.loginToken())
		if code != http.StatusSeeOther {
			t.Errorf("flood login %d: %d", i+1, code)
		}
		if n := sessionCount(store); n > capacity {
			t.Fatalf("store holds %d sessions, cap %d", n, capacity)
		}
	}
	victim := newBrowser(t, ta.base)
	code, h := victim.postLogin("victim", "demo", victim.loginToken())
	if code != http.StatusSeeOther {
		t.Fatalf("victim's login with the store full: %d (Retry-After %q), want 303", code, h.Get("Retry-After"))
	}
	if code, body := victim.get("/me"); code != http.StatusOK || !strings.Contains(body, `<span id="user">victim</span>`) {
		t.Errorf("victim's /me: %d", code)
	}
	if n := sessionCount(store); n != capacity {
		t.Errorf("store holds %d sessions, want exactly its cap %d", n, capacity)
	}
	if code, _ := active.get("/me"); code != http.StatusOK {
		t.Errorf("erin's session, in use, after the flood: %d, want 200", code)
	}
	if _, ok := store.Get(ctx, idle.ID); ok {
		t.Errorf("the least recently used session survived a login into the full store")
	}
}

// One user holds at most 10 sessions: the 11th login ends that user's
// oldest (its cookie then gets 401), and so on, while other users'
// sessions are untouched.
func TestAttackSessionsPerUserCapped(t *testing.T) {
	t.Parallel()
	ta := startApp(t, nil)
	other := newBrowser(t, ta.base)
	other.login("dave")
	var carols []*browser
	for range 15 {
		b := newBrowser(t, ta.base)
		b.login("carol")
		carols = append(carols, b)
	}
	for i, b := range carols {
		want := http.StatusOK
		if i < 5 {
			want = http.StatusUnauthorized // the 5 oldest were ended
		}
		if code, _ := b.get("/me"); code != want {
			t.Errorf("carol's session %d of 15: %d, want %d", i+1, code, want)
		}
	}
	if code, body := other.get("/me"); code != http.StatusOK || !strings.Contains(body, `<span id="user">dave</span>`) {
		t.Errorf("dave's session: %d, want 200", code)
	}
	if n := sessionCount(ta.sessions.(*memSessions)); n != 11 {
		t.Errorf("store holds %d sessions, want 11 (10 of carol's, dave's)", n)
	}
}

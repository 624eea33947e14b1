package cookiesecret

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/stormcellar/stormcellar/httperr"
)

// xsrfApp is a real server: a session cookie, the XSRF middleware bound to
// it, a form page and a state-changing endpoint.
type xsrfApp struct {
	srv    *httptest.Server
	sess   *Cookie
	xsrf   *XSRF
	mu     sync.Mutex
	kinds  map[string]httperr.Kind // request id → kind of the refusal
	causes map[string]string
}

const trustedOrigin = "https://admin.example.test"

func newXSRFApp(t *testing.T, ring *Keyring) *xsrfApp {
	t.Helper()
	app := &xsrfApp{kinds: map[string]httperr.Kind{}, causes: map[string]string{}}
	app.sess = testCookie(t, ring, CookieOptions{Name: "__Host-sid"})
	var err error
	app.xsrf, err = NewXSRF(ring, XSRFOptions{
		TrustedOrigins: []string{trustedOrigin + ":443"},
		Session: func(r *http.Request) string {
			sid, err := app.sess.Get(r)
			if err != nil {
				return ""
			}
			return string(sid)
		},
		InsecureBypassPatterns: []string{"POST /hooks/{id}"},
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /form", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, `<form method="post" action="/transfer">`+string(XSRFField(r))+`</form>`)
	})
	mux.HandleFunc("GET /token", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, XSRFToken(r))
	})
	mux.HandleFunc("/transfer", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "transferred")
	})
	mux.HandleFunc("POST /hooks/{id}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hook")
	})
	handler := httperr.Install(httperr.Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Observer: func(ev httperr.Event) {
			app.mu.Lock()
			defer app.mu.Unlock()
			app.kinds[ev.RequestID] = ev.Kind
			if ev.Err != nil {
				app.causes[ev.RequestID] = ev.Err.Error()
			}
		},
	})(http.MaxBytesHandler(app.xsrf.Handler(mux), 64<<10))
	app.srv = httptest.NewServer(handler)
	t.Cleanup(app.srv.Close)
	return app
}

// browser keeps cookies by hand: Go's cookie jar does not send Secure
// cookies over plain HTTP, and the tests also plant cookies.
type browser struct {
	t       *testing.T
	app     *xsrfApp
	cookies map[string]string
}

func (app *xsrfApp) browser(t *testing.T, session string) *browser {
	b := &browser{t: t, app: app, cookies: map[string]string{}}
	if session != "" {
		v, err := app.sess.Encode([]byte(session))
		if err != nil {
			t.Fatal(err)
		}
		b.cookies["__Host-sid"] = v
	}
	return b
}

type result struct {
	status int
	body   string
	kind   httperr.Kind
	cause  string
}

var tokenInPage = regexp.MustCompile(`name="_xsrf" value="([^"]+)"`)

// token loads the form page and returns the token in it.
func (b *browser) token() string {
	b.t.Helper()
	r := b.do("GET", "/form", nil, "", "")
	m := tokenInPage.FindStringSubmatch(r.body)
	if r.status != 200 || m == nil {
		b.t.Fatalf("GET /form: %d %q", r.status, r.body)
	}
	return m[1]
}

// do sends a request as a same-origin browser would (Origin and
// Sec-Fetch-Site) unless headers say otherwise.
func (b *browser) do(method, path string, headers map[string]string, contentType, body string) result {
	b.t.Helper()
	req, err := http.NewRequest(method, b.app.srv.URL+path, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	if method != "GET" {
		req.Header.Set("Origin", b.app.srv.URL)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	var pairs []string
	for k, v := range b.cookies {
		pairs = append(pairs, k+"="+v)
	}
	if len(pairs) > 0 && req.Header.Get("Cookie") == "" {
		req.Header.Set("Cookie", strings.Join(pairs, "; "))
	}
	resp, err := b.app.srv.Client().Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, ck := range resp.Cookies() {
		b.cookies[ck.Name] = ck.Value
	}
	res := result{status: resp.StatusCode, body: string(raw)}
	if resp.StatusCode >= 400 {
		var e struct {
			Error struct {
				RequestID string `json:"request_id"`
			} `json:"error"`
		}
		if err := json.Unmarshal(raw, &e); err == nil {
			b.app.mu.Lock()
			res.kind = b.app.kinds[e.Error.RequestID]
			res.cause = b.app.causes[e.Error.RequestID]
			b.app.mu.Unlock()
		}
	}
	return res
}

func form(tok string) string { return url.Values{"_xsrf": {tok}, "amount": {"100"}}.Encode() }

const formType = "application/x-www-form-urlencoded"

func TestXSRFAgainstServer(t *testing.T) {
	t.Parallel()
	app := newXSRFApp(t, testRing(t, "k1"))

	alice := app.browser(t, "alice-session")
	aliceTok := alice.token()
	bob := app.browser(t, "bob-session")
	bob.token() // bob has his own valid XSRF cookie
	if alice.cookies["__Host-xsrf"] == "" || bob.cookies["__Host-xsrf"] == "" {
		t.Fatal("GET /form did not set the XSRF cookie")
	}
	anon := app.browser(t, "")
	anonTok := anon.token()

	// A multipart body with the token.
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	mw.WriteField("_xsrf", alice.token())
	mw.Close()

	cases := []struct {
		name    string
		b       *browser
		method  string
		path    string
		headers map[string]string
		ctype   string
		body    string
		status  int
		kind    httperr.Kind
	}{
		{"GET needs no token", anon, "GET", "/transfer", nil, "", "", 200, ""},
		{"OPTIONS needs no token", anon, "OPTIONS", "/transfer", nil, "", "", 200, ""},
		{"same origin, form token", alice, "POST", "/transfer", nil, formType, form(aliceTok), 200, ""},
		{"same origin, multipart token", alice, "POST", "/transfer", nil, mw.FormDataContentType(), mp.String(), 200, ""},
		{"same origin, X-XSRF-Token", alice, "POST", "/transfer", map[string]string{"X-XSRF-Token": aliceTok}, "", "", 200, ""},
		{"same origin, X-CSRF-Token", alice, "PUT", "/transfer", map[string]string{"X-CSRF-Token": aliceTok}, "", "", 200, ""},
		{"same origin, Tornado's X-XSRFToken", alice, "DELETE", "/transfer", map[string]string{"X-XSRFToken": aliceTok}, "", "", 200, ""},
		{"no session, own token", anon, "POST", "/transfer", nil, formType, form(anonTok), 200, ""},
		{"no Origin, no Sec-Fetch-Site (not a browser), token", alice, "POST", "/transfer", map[string]string{"Origin": "", "Sec-Fetch-Site": ""}, formType, form(aliceTok), 200, ""},
		{"trusted origin, token", alice, "POST", "/transfer", map[string]string{"Origin": trustedOrigin, "Sec-Fetch-Site": "cross-site"}, formType, form(aliceTok), 200, ""},
		{"bypass pattern, no token", anon, "POST", "/hooks/7", nil, "", "", 200, ""},

		{"no token", alice, "POST", "/transfer", nil, formType, "amount=100", 403, httperr.KindXSRF},
		{"no token, PATCH", alice, "PATCH", "/transfer", nil, "", "", 403, httperr.KindXSRF},
		{"empty token", alice, "POST", "/transfer", nil, formType, form(""), 403, httperr.KindXSRF},
		{"token in the query only", alice, "POST", "/transfer?_xsrf=" + url.QueryEscape(aliceTok), nil, "", "", 403, httperr.KindXSRF},
		{"another session's token", bob, "POST", "/transfer", nil, formType, form(aliceTok), 403, httperr.KindXSRF},
		{"anonymous token after login", alice, "POST", "/transfer", nil, formType, form(anonTok), 403, httperr.KindXSRF},
		{"planted cookie and token of another session", bob, "POST", "/transfer",
			map[string]string{"Cookie": "__Host-sid=" + bob.cookies["__Host-sid"] + "; __Host-xsrf=" + alice.cookies["__Host-xsrf"]},
			formType, form(aliceTok), 403, httperr.KindXSRF},
		{"planted unsigned cookie plus matching header", anon, "POST", "/transfer",
			map[string]string{"Cookie": "__Host-xsrf=aa", "X-XSRF-Token": "aa"}, "", "", 403, httperr.KindXSRF},
		{"planted unsigned cookie plus matching form field", anon, "POST", "/transfer",
			map[string]string{"Cookie": "__Host-xsrf=aa"}, formType, form("aa"), 403, httperr.KindXSRF},
		{"no XSRF cookie", anon, "POST", "/transfer", map[string]string{"Cookie": "x=y"}, formType, form(anonTok), 403, httperr.KindXSRF},
		{"session cookie as XSRF cookie", alice, "POST", "/transfer",
			map[string]string{"Cookie": "__Host-sid=" + alice.cookies["__Host-sid"] + "; __Host-xsrf=" + alice.cookies["__Host-sid"]},
			formType, form(aliceTok), 403, httperr.KindXSRF},
		{"malformed token", alice, "POST", "/transfer", map[string]string{"X-XSRF-Token": "k1.abc"}, "", "", 403, httperr.KindXSRF},
		{"token with unknown key id", alice, "POST", "/transfer", map[string]string{"X-XSRF-Token": "k9" + aliceTok[2:]}, "", "", 403, httperr.KindXSRF},
		{"token with a flipped byte", alice, "POST", "/transfer", map[string]string{"X-XSRF-Token": flip(aliceTok, 40)}, "", "", 403, httperr.KindXSRF},

		{"cross-site Origin, valid token", alice, "POST", "/transfer", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": ""}, formType, form(aliceTok), 403, httperr.KindOrigin},
		{"Sec-Fetch-Site cross-site, valid token", alice, "POST", "/transfer", map[string]string{"Sec-Fetch-Site": "cross-site"}, formType, form(aliceTok), 403, httperr.KindOrigin},
		{"Sec-Fetch-Site same-site, valid token", alice, "POST", "/transfer", map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "https://sub.example.test"}, formType, form(aliceTok), 403, httperr.KindOrigin},
		{"http twin of the trusted origin, valid token", alice, "POST", "/transfer", map[string]string{"Origin": "http://admin.example.test", "Sec-Fetch-Site": "cross-site"}, formType, form(aliceTok), 403, httperr.KindOrigin},
		{"null Origin, valid token", alice, "POST", "/transfer", map[string]string{"Origin": "null", "Sec-Fetch-Site": ""}, formType, form(aliceTok), 403, httperr.KindOrigin},
		{"bypass pattern, unclean path", anon, "POST", "/hooks/../transfer", nil, "", "", 403, httperr.KindXSRF},

		{"form over the body limit", alice, "POST", "/transfer", nil, formType, "amount=" + strings.Repeat("1", 70<<10), 413, httperr.KindBodyTooLarge},
		{"malformed multipart", alice, "POST", "/transfer", nil, "multipart/form-data; boundary=x", "garbage", 400, httperr.KindBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := tc.b.do(tc.method, tc.path, tc.headers, tc.ctype, tc.body)
			if r.status != tc.status || r.kind != tc.kind {
				t.Fatalf("%d %s (%s); want %d %s\n%s", r.status, r.kind, r.cause, tc.status, tc.kind, r.body)
			}
			if r.status == 200 && r.body != "transferred" && r.body != "hook" && tc.method != "GET" && tc.method != "OPTIONS" {
				t.Errorf("body %q", r.body)
			}
			if r.status == 403 && (strings.Contains(r.body, "token") || strings.Contains(r.body, "origin") || strings.Contains(r.body, "session")) {
				t.Errorf("the 403 says why: %s", r.body)
			}
		})
	}
	// Legitimate traffic still works after every attack.
	t.Cleanup(func() {
		if r := alice.do("POST", "/transfer", nil, formType, form(alice.token())); r.status != 200 {
			t.Errorf("alice after the attacks: %d %s", r.status, r.cause)
		}
	})
}

func flip(s string, i int) string {
	b := []byte(s)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

// TestXSRFPlantedCookieTornadoVsThis plants "_xsrf=aa" with a matching
// header: real Tornado (xsrf_cookies=True) accepts it, because its XSRF
// cookie is not signed; this package refuses it.
func TestXSRFPlantedCookieTornadoVsThis(t *testing.T) {
	t.Parallel()
	tornadoURL := startTornadoXSRF(t)
	req, _ := http.NewRequest("POST", tornadoURL+"/form", nil)
	req.Header.Set("Cookie", "_xsrf=aa")
	req.Header.Set("X-XSRFToken", "aa")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Errorf("Tornado: %d %q; the reference says Tornado accepts a planted cookie", resp.StatusCode, body)
	}
	req, _ = http.NewRequest("POST", tornadoURL+"/form", nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("Tornado without a token: %d; want 403", resp.StatusCode)
	}
	t.Logf("Tornado: planted cookie + matching header -> %d", 200)

	app := newXSRFApp(t, testRing(t, "k1"))
	for _, header := range []string{"X-XSRF-Token", "X-XSRFToken", "X-CSRF-Token"} {
		r := app.browser(t, "").do("POST", "/transfer", map[string]string{"Cookie": "__Host-xsrf=aa; _xsrf=aa", header: "aa"}, "", "")
		if r.status != 403 || r.kind != httperr.KindXSRF {
			t.Errorf("this package, %s: %d %s; want 403 xsrf", header, r.status, r.kind)
		}
	}
}

func TestXSRFTokensAreMaskedPerRequest(t *testing.T) {
	t.Parallel()
	app := newXSRFApp(t, testRing(t, "k1"))
	b := app.browser(t, "s1")
	seen := map[string]bool{}
	for range 20 {
		tok := b.token()
		if seen[tok] {
			t.Fatalf("token %q repeated", tok)
		}
		seen[tok] = true
	}
	cookie := b.cookies["__Host-xsrf"]
	for tok := range seen {
		if r := b.do("POST", "/transfer", map[string]string{"X-XSRF-Token": tok}, "", ""); r.status != 200 {
			t.Fatalf("masked token refused: %d %s", r.status, r.cause)
		}
	}
	if b.cookies["__Host-xsrf"] != cookie {
		t.Error("the XSRF cookie changed although it was valid")
	}
	// The hidden input is exactly this.
	r := b.do("GET", "/form", nil, "", "")
	if !regexp.MustCompile(`^<form method="post" action="/transfer"><input type="hidden" name="_xsrf" value="k1\.[A-Za-z0-9_-]{86}"></form>$`).MatchString(r.body) {
		t.Errorf("form: %s", r.body)
	}
}

// TestXSRFRotation: tokens and XSRF cookies made before a rotation keep
// working while the old key is in the keyring; the cookie is re-signed
// with the new key the next time a token is made.
func TestXSRFRotation(t *testing.T) {
	t.Parallel()
	before := newXSRFApp(t, testRing(t, "old"))
	during := newXSRFApp(t, testRing(t, "new", "old"))
	after := newXSRFApp(t, testRing(t, "new"))

	b := before.browser(t, "")
	tok := b.token()
	b.app = during
	if r := b.do("POST", "/transfer", map[string]string{"X-XSRF-Token": tok}, "", ""); r.status != 200 {
		t.Fatalf("old token during rotation: %d %s", r.status, r.cause)
	}
	oldCookie := b.cookies["__Host-xsrf"]
	fresh := b.token()
	if !strings.HasPrefix(fresh, "new.") || b.cookies["__Host-xsrf"] == oldCookie || !strings.HasPrefix(b.cookies["__Host-xsrf"], "new.") {
		t.Errorf("after rotation: token %.8s…, cookie %.8s…; want both on the new key", fresh, b.cookies["__Host-xsrf"])
	}
	b.app = after
	if r := b.do("POST", "/transfer", map[string]string{"X-XSRF-Token": fresh}, "", ""); r.status != 200 {
		t.Errorf("new token after the old key was removed: %d %s", r.status, r.cause)
	}
	if r := b.do("POST", "/transfer", map[string]string{"X-XSRF-Token": tok}, "", ""); r.status != 403 {
		t.Errorf("old token after its key was removed: %d", r.status)
	}
}

func TestXSRFTokenAfterCommitIsLogged(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	x, err := NewXSRF(testRing(t, "k1"), XSRFOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	h := x.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "early ")
		io.WriteString(w, string(XSRFField(r)))
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Header().Get("Set-Cookie") != "" || !strings.Contains(logs.String(), "after the response was committed") {
		t.Errorf("Set-Cookie %q, log %q", rec.Header().Get("Set-Cookie"), logs.String())
	}
	if XSRFToken(httptest.NewRequest("GET", "/", nil)) != "" || XSRFField(httptest.NewRequest("GET", "/", nil)) != "" {
		t.Error("a token without the middleware")
	}
}

// TestXSRFTokenAfterCommitWithOldKeyCookie: after a rotation, a page that
// commits before making its token cannot re-sign the XSRF cookie, but the
// cookie still verifies, so the token works and nothing is logged as an
// error.
func TestXSRFTokenAfterCommitWithOldKeyCookie(t *testing.T) {
	t.Parallel()
	oldCookie, err := NewXSRF(testRing(t, "old"), XSRFOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := oldCookie.cookie.Encode(bytes.Repeat([]byte{7}, xsrfBaseLen))
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	x, err := NewXSRF(testRing(t, "new", "old"), XSRFOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var tok string
	h := x.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "early ")
		tok = XSRFToken(r)
	}))
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Cookie", "__Host-xsrf="+v)
	h.ServeHTTP(httptest.NewRecorder(), req)
	if logs.String() != "" {
		t.Errorf("logged although the cookie is valid: %s", logs.String())
	}
	post := httptest.NewRequest("POST", "/", nil)
	post.Header.Set("Cookie", "__Host-xsrf="+v)
	post.Header.Set(XSRFHeader, tok)
	if err := x.Check(post); err != nil {
		t.Errorf("the token made after the commit is refused: %v", err)
	}
}

func TestNewXSRFRefusesBadOptions(t *testing.T) {
	t.Parallel()
	ring := testRing(t, "k1")
	cases := []struct {
		name string
		ring *Keyring
		opts XSRFOptions
	}{
		{"no keyring", nil, XSRFOptions{}},
		{"host without scheme", ring, XSRFOptions{TrustedOrigins: []string{"example.com"}}},
		{"wildcard", ring, XSRFOptions{TrustedOrigins: []string{"https://*.example.com"}}},
		{"null", ring, XSRFOptions{TrustedOrigins: []string{"null"}}},
		{"path", ring, XSRFOptions{TrustedOrigins: []string{"https://example.com/"}}},
		{"userinfo", ring, XSRFOptions{TrustedOrigins: []string{"https://u@example.com"}}},
		{"other scheme", ring, XSRFOptions{TrustedOrigins: []string{"ftp://example.com"}}},
		{"bad pattern", ring, XSRFOptions{InsecureBypassPatterns: []string{"POST"}}},
		{"duplicate pattern", ring, XSRFOptions{InsecureBypassPatterns: []string{"/a", "/a"}}},
		{"__Host- over http", ring, XSRFOptions{CookieName: "__Host-x", InsecureAllowHTTP: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if x, err := NewXSRF(tc.ring, tc.opts); err == nil {
				t.Errorf("NewXSRF = %v, nil; want an error", x)
			}
		})
	}
	x, err := NewXSRF(ring, XSRFOptions{InsecureAllowHTTP: true})
	if err != nil || x.cookie.Name() != "xsrf" || x.cookie.tmpl.Secure {
		t.Errorf("InsecureAllowHTTP: %v, %v", x, err)
	}
}

func TestNormalizeOrigin(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://Example.COM":     "https://example.com",
		"https://example.com:443": "https://example.com",
		"http://example.com:80":   "http://example.com",
		"http://localhost:8080":   "http://localhost:8080",
		"https://[::1]:8443":      "https://[::1]:8443",
		"https://[::1]":           "https://[::1]",
		"HTTPS://a.example":       "https://a.example",
	} {
		got, err := normalizeOrigin(in)
		if err != nil || got != want {
			t.Errorf("normalizeOrigin(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestXSRFCheckErrors(t *testing.T) {
	t.Parallel()
	x, err := NewXSRF(testRing(t, "k1"), XSRFOptions{})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("POST", "/", nil)
	err = x.Check(req)
	var he *httperr.HTTPError
	if !errors.As(err, &he) || he.Status != 403 || he.Kind != httperr.KindXSRF || !errors.Is(err, http.ErrNoCookie) {
		t.Errorf("Check without cookie = %v", err)
	}
	v, _ := x.cookie.Encode(make([]byte, xsrfBaseLen))
	req.Header.Set("Cookie", "__Host-xsrf="+v)
	if err := x.Check(req); !errors.Is(err, ErrTokenMissing) || !errors.Is(err, ErrInvalid) {
		t.Errorf("Check without token = %v", err)
	}
	req.Header.Set("X-XSRF-Token", "k1.x")
	if err := x.Check(req); !errors.Is(err, ErrTokenMismatch) {
		t.Errorf("Check with a bad token = %v", err)
	}
}

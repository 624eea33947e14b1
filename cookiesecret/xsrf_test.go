package cookiesecret

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/stormcellar/stormcellar/httperr"
	"github.com/stormcellar/stormcellar/middleware"
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
		{"negative MaxFormMemory", ring, XSRFOptions{MaxFormMemory: -1}},
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

// formServer is a real server for the form-parsing tests: GET /token goes
// through XSRF.Handler (it sets the XSRF cookie and returns a token) and
// POST /submit through the handler under test, which the server calls
// directly (ServeMux passes the server's request value on), or through
// httperr.Install when install is set.
type formServer struct {
	t      *testing.T
	srv    *httptest.Server
	cookie string // the XSRF cookie, as a Cookie header
	token  string
	mu     sync.Mutex
	kind   httperr.Kind // of the last refusal, when install is set
}

func newFormServer(t *testing.T, x *XSRF, submit http.Handler, install bool) *formServer {
	t.Helper()
	fs := &formServer{t: t}
	if install {
		submit = httperr.Install(httperr.Options{
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Observer: func(ev httperr.Event) {
				fs.mu.Lock()
				defer fs.mu.Unlock()
				fs.kind = ev.Kind
			},
		})(submit)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /token", x.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, XSRFToken(r))
	})))
	mux.Handle("POST /submit", submit)
	fs.srv = httptest.NewServer(mux)
	t.Cleanup(fs.srv.Close)
	resp, err := fs.srv.Client().Get(fs.srv.URL + "/token")
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == DefaultXSRFCookie {
			fs.cookie = c.Name + "=" + c.Value
		}
	}
	if resp.StatusCode != 200 || fs.cookie == "" || len(tok) == 0 {
		t.Fatalf("GET /token: %d, cookie %q, token %q", resp.StatusCode, fs.cookie, tok)
	}
	fs.token = string(tok)
	return fs
}

// post sends body to POST /submit as a same-origin browser would, with the
// XSRF cookie, and returns the status, the response body and, for a
// refusal through httperr.Install, its kind.
func (fs *formServer) post(contentType string, body []byte) (int, string, httperr.Kind) {
	fs.t.Helper()
	req, err := http.NewRequest("POST", fs.srv.URL+"/submit", bytes.NewReader(body))
	if err != nil {
		fs.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Origin", fs.srv.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Cookie", fs.cookie)
	fs.mu.Lock()
	fs.kind = ""
	fs.mu.Unlock()
	resp, err := fs.srv.Client().Do(req)
	if err != nil {
		fs.t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return resp.StatusCode, string(raw), fs.kind
}

// multipartForm returns a multipart body with the given fields, in order,
// and one file part "upload" (if file is not nil), then the token field
// (if tok is not "").
func multipartForm(t *testing.T, fields map[string]string, file []byte, tok string) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		if err := mw.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if file != nil {
		fw, err := mw.CreateFormFile("upload", "upload.bin")
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(file)
	}
	if tok != "" {
		mw.WriteField(XSRFFormField, tok)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return mw.FormDataContentType(), buf.Bytes()
}

func filesIn(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// TestXSRFRemovesMultipartTempFiles sends a 4 MiB file part, first without
// a token (refused after the form was parsed), then with a valid token,
// through XSRF.Handler alone (which passes on a copy of the server's
// request), behind httperr.Install, behind http.MaxBytesHandler (which
// copies the request and removes nothing), in front of and behind
// middleware.MaxBytes (which removes the files too: removing them twice is
// harmless), and through Check alone on a copy of the request. Nothing may
// be left in the temporary directory once the server has finished, and the
// legitimate upload must reach the handler whole, from its temporary file.
func TestXSRFRemovesMultipartTempFiles(t *testing.T) {
	// Not parallel: t.Setenv points os.TempDir, where mime/multipart
	// writes, to a directory of each subtest.
	upload := make([]byte, 4<<20)
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	for i := range upload {
		upload[i] = byte(rng.Uint32())
	}
	type visit struct {
		same    bool // the handler read the whole upload
		onDisk  bool // from a temporary file
		present int  // files in the temporary directory while it ran
	}
	stacks := []struct {
		name    string
		install bool
		wrap    func(x *XSRF, app http.Handler) http.Handler
	}{
		{"Handler", false, func(x *XSRF, app http.Handler) http.Handler { return x.Handler(app) }},
		{"httperr.Install then Handler", true, func(x *XSRF, app http.Handler) http.Handler { return x.Handler(app) }},
		{"http.MaxBytesHandler then Handler", false, func(x *XSRF, app http.Handler) http.Handler {
			return http.MaxBytesHandler(x.Handler(app), 64<<20)
		}},
		{"middleware.MaxBytes then Handler", false, func(x *XSRF, app http.Handler) http.Handler {
			return middleware.MaxBytes(middleware.MaxBytesOptions{Limit: 64 << 20})(x.Handler(app))
		}},
		{"Handler then middleware.MaxBytes", false, func(x *XSRF, app http.Handler) http.Handler {
			return x.Handler(middleware.MaxBytes(middleware.MaxBytesOptions{Limit: 64 << 20})(app))
		}},
		{"Check alone on a copy", false, func(x *XSRF, app http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				r = r.WithContext(r.Context()) // as a router passes it on
				if err := x.Check(r); err != nil {
					httperr.Write(w, r, err)
					return
				}
				// As Check's documentation says: the caller removes the
				// files of an accepted request.
				if r.MultipartForm != nil {
					defer r.MultipartForm.RemoveAll()
				}
				app.ServeHTTP(w, r)
			})
		}},
	}
	for _, stack := range stacks {
		for _, withToken := range []bool{false, true} {
			name := stack.name + "/no token"
			if withToken {
				name = stack.name + "/token in the form"
			}
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				t.Setenv("TMPDIR", dir)
				if os.TempDir() != dir {
					t.Fatalf("os.TempDir() = %q, not %q", os.TempDir(), dir)
				}
				x, err := NewXSRF(testRing(t, "k1"), XSRFOptions{})
				if err != nil {
					t.Fatal(err)
				}
				var visits []visit
				app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					f, _, err := r.FormFile("upload")
					if err != nil {
						httperr.Write(w, r, err)
						return
					}
					defer f.Close()
					_, onDisk := f.(*os.File)
					got, err := io.ReadAll(f)
					visits = append(visits, visit{err == nil && bytes.Equal(got, upload), onDisk, filesIn(t, dir)})
					io.WriteString(w, "stored")
				})
				fs := newFormServer(t, x, stack.wrap(x, app), stack.install)
				tok := ""
				if withToken {
					tok = fs.token
				}
				ct, body := multipartForm(t, map[string]string{"note": "report"}, upload, tok)
				status, resp, kind := fs.post(ct, body)
				fs.srv.Close() // waits for every handler to return
				left := filesIn(t, dir)

				if !withToken {
					if status != 403 || (stack.install && kind != httperr.KindXSRF) || len(visits) != 0 {
						t.Errorf("attacker got %d %s (%d handler calls); want 403 xsrf and no call", status, kind, len(visits))
					}
				} else {
					if status != 200 || resp != "stored" || len(visits) != 1 {
						t.Fatalf("user got %d %q (%s), %d handler calls; want 200 stored", status, resp, kind, len(visits))
					}
					if v := visits[0]; !v.same || !v.onDisk || v.present == 0 {
						t.Errorf("the handler saw %+v; want the whole upload, from a temporary file present while it ran", v)
					}
				}
				if left != 0 {
					t.Errorf("%d temporary files left after the server finished", left)
				}
			})
		}
	}
}

// TestXSRFFormMemoryBounds pins the memory bounds of the form parse that
// looks for the token, with a valid token in the form: a url-encoded body
// of up to MaxFormMemory (1 MiB by default) passes and a longer one is a
// 413, whatever limit is in front; a multipart body keeps up to
// MaxFormMemory of file content in memory (the rest on disk), and fields
// up to MaxFormMemory + 10 MiB; middleware.MaxBytes in front bounds all of
// it to its own limit.
func TestXSRFFormMemoryBounds(t *testing.T) {
	t.Parallel()
	const (
		miB      = 1 << 20
		tokenLen = 89 // "k1." and 86 base64 characters
	)
	type seen struct {
		calls   int
		aLen    int  // length of field "a"
		file    bool // a file part arrived
		fileMem bool // and was kept in memory
	}
	stacks := map[string]func(x *XSRF, app http.Handler) http.Handler{
		"Handler": func(x *XSRF, app http.Handler) http.Handler { return x.Handler(app) },
		"http.MaxBytesHandler 64 MiB": func(x *XSRF, app http.Handler) http.Handler {
			return http.MaxBytesHandler(x.Handler(app), 64*miB)
		},
		"middleware.MaxBytes default": func(x *XSRF, app http.Handler) http.Handler {
			return middleware.MaxBytes(middleware.MaxBytesOptions{})(x.Handler(app))
		},
	}
	type bodyFunc func(t *testing.T, tok string) (contentType string, body []byte)
	// formOf is a url-encoded body of exactly size bytes: the token, then
	// field "a".
	formOf := func(size int) bodyFunc {
		return func(t *testing.T, tok string) (string, []byte) {
			prefix := XSRFFormField + "=" + tok + "&a="
			return formType, append([]byte(prefix), bytes.Repeat([]byte("x"), size-len(prefix))...)
		}
	}
	aIn := func(size int) int { return size - len(XSRFFormField+"=&a=") - tokenLen }
	fieldOf := func(n int) bodyFunc {
		return func(t *testing.T, tok string) (string, []byte) {
			return multipartForm(t, map[string]string{"a": strings.Repeat("x", n)}, nil, tok)
		}
	}
	fileOf := func(n int) bodyFunc {
		return func(t *testing.T, tok string) (string, []byte) {
			return multipartForm(t, nil, bytes.Repeat([]byte{7}, n), tok)
		}
	}
	cases := []struct {
		name    string
		stack   string
		maxForm int64
		body    bodyFunc
		status  int
		want    seen // when 200
	}{
		{"url-encoded, exactly 1 MiB", "Handler", 0, formOf(miB), 200, seen{calls: 1, aLen: aIn(miB)}},
		{"url-encoded, 1 MiB + 1", "Handler", 0, formOf(miB + 1), 413, seen{}},
		{"url-encoded, 9 MiB", "Handler", 0, formOf(9 * miB), 413, seen{}},
		{"url-encoded, 9 MiB, behind a 64 MiB http.MaxBytesHandler", "http.MaxBytesHandler 64 MiB", 0, formOf(9 * miB), 413, seen{}},
		{"url-encoded, 3 MiB, MaxFormMemory 4 MiB", "Handler", 4 * miB, formOf(3 * miB), 200, seen{calls: 1, aLen: aIn(3 * miB)}},
		{"multipart, field of 1 MiB + 10 MiB - 64 KiB", "Handler", 0, fieldOf(11*miB - 64<<10), 200, seen{calls: 1, aLen: 11*miB - 64<<10}},
		{"multipart, field of 1 MiB + 10 MiB + 1", "Handler", 0, fieldOf(11*miB + 1), 413, seen{}},
		{"multipart, field of 10 MiB + 513 KiB, MaxFormMemory 512 KiB", "Handler", 512 << 10, fieldOf(10*miB + 513<<10), 413, seen{}},
		{"multipart, file of 1 MiB stays in memory", "Handler", 0, fileOf(miB), 200, seen{calls: 1, file: true, fileMem: true}},
		{"multipart, file of 1 MiB + 1 goes to disk", "Handler", 0, fileOf(miB + 1), 200, seen{calls: 1, file: true}},
		{"multipart, file of 4 MiB goes to disk", "Handler", 0, fileOf(4 * miB), 200, seen{calls: 1, file: true}},
		{"multipart, field of 2 MiB, behind middleware.MaxBytes", "middleware.MaxBytes default", 0, fieldOf(2 * miB), 413, seen{}},
		{"multipart, file of 2 MiB, behind middleware.MaxBytes", "middleware.MaxBytes default", 0, fileOf(2 * miB), 413, seen{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			x, err := NewXSRF(testRing(t, "k1"), XSRFOptions{MaxFormMemory: tc.maxForm})
			if err != nil {
				t.Fatal(err)
			}
			var got seen
			app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got.calls++
				got.aLen = len(r.PostFormValue("a"))
				if f, _, err := r.FormFile("upload"); err == nil {
					_, onDisk := f.(*os.File)
					got.file, got.fileMem = true, !onDisk
					f.Close()
				}
				io.WriteString(w, "ok")
			})
			fs := newFormServer(t, x, stacks[tc.stack](x, app), true)
			if len(fs.token) != tokenLen {
				t.Fatalf("token of %d bytes; the expected lengths assume %d", len(fs.token), tokenLen)
			}
			ct, body := tc.body(t, fs.token)
			status, _, kind := fs.post(ct, body)
			fs.srv.Close()
			if status != tc.status {
				t.Fatalf("%d %s; want %d", status, kind, tc.status)
			}
			if status == 413 && (kind != httperr.KindBodyTooLarge || got.calls != 0) {
				t.Errorf("413 of kind %s after %d handler calls; want body_too_large and none", kind, got.calls)
			}
			if status == 200 && got != tc.want {
				t.Errorf("the handler saw %+v; want %+v", got, tc.want)
			}
		})
	}
}

// TestXSRFLeavesFormsParsedBefore: a multipart form parsed before
// XSRF.Handler (or Check) ran belongs to whoever parsed it, who may still
// use its files after the inner handler returns; neither an accepted nor a
// refused request has them removed from under it.
func TestXSRFLeavesFormsParsedBefore(t *testing.T) {
	t.Parallel()
	x, err := NewXSRF(testRing(t, "k1"), XSRFOptions{})
	if err != nil {
		t.Fatal(err)
	}
	base := bytes.Repeat([]byte{3}, xsrfBaseLen)
	cookie, err := x.cookie.Encode(base)
	if err != nil {
		t.Fatal(err)
	}
	file := bytes.Repeat([]byte("upload "), 1<<10)
	for _, tc := range []struct {
		name   string
		tok    string
		status int
	}{
		{"accepted", x.mask(base, ""), 200},
		{"refused", "", 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ct, body := multipartForm(t, nil, file, tc.tok)
			req := httptest.NewRequest("POST", "/", bytes.NewReader(body))
			req.Header.Set("Content-Type", ct)
			req.Header.Set("Cookie", DefaultXSRFCookie+"="+cookie)
			// An outer layer parses the form first, with its file on disk.
			if err := req.ParseMultipartForm(1 << 10); err != nil {
				t.Fatal(err)
			}
			defer req.MultipartForm.RemoveAll()
			inner := 0
			rec := httptest.NewRecorder()
			quiet := httperr.Install(httperr.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			quiet(x.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				inner++
			}))).ServeHTTP(rec, req)
			if rec.Code != tc.status || (inner == 1) != (tc.status == 200) {
				t.Fatalf("%d after %d inner calls; want %d", rec.Code, inner, tc.status)
			}
			fileIntact := func(after string) {
				t.Helper()
				f, err := req.MultipartForm.File["upload"][0].Open()
				if err != nil {
					t.Fatalf("after %s, the outer layer's file is gone: %v", after, err)
				}
				defer f.Close()
				got, _ := io.ReadAll(f)
				if _, onDisk := f.(*os.File); !onDisk || !bytes.Equal(got, file) {
					t.Fatalf("after %s, the outer layer's file: on disk %v, %d bytes of %d", after, onDisk, len(got), len(file))
				}
			}
			fileIntact("Handler")
			if err := x.Check(req); (err == nil) != (tc.status == 200) {
				t.Fatalf("Check = %v", err)
			}
			fileIntact("Check alone")
		})
	}
}

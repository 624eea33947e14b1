package cookiesecret

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stormcellar/stormcellar/httperr"
)

// testSecret returns a deterministic valid secret (not one to reuse: it
// is derived from a public label).
func testSecret(label string) Secret {
	sum := sha256.Sum256([]byte("cookiesecret test key " + label))
	s, err := NewSecret(sum[:])
	if err != nil {
		panic(err)
	}
	return s
}

func testRing(t testing.TB, ids ...string) *Keyring {
	t.Helper()
	keys := make([]Key, len(ids))
	for i, id := range ids {
		keys[i] = Key{ID: id, Secret: testSecret(id)}
	}
	ring, err := NewKeyring(keys[0], keys[1:]...)
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

func testCookie(t testing.TB, ring *Keyring, opts CookieOptions) *Cookie {
	t.Helper()
	if opts.Name == "" {
		opts.Name = "__Host-session"
	}
	c, err := NewCookie(ring, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// mint builds a cookie value exactly as a holder of the key would, with
// any timestamp: the securecookie format base64url("date|b64(v)|mac") with
// the MAC over "name|date|b64(v)", prefixed by the key id.
func mint(ring *Keyring, kid, name string, value []byte, ts int64) string {
	var secret Secret
	for _, k := range ring.keys {
		if k.ID == kid {
			secret = k.Secret
		}
	}
	key := derive(secret, purposeCookieMAC, kid)
	payload := base64.URLEncoding.EncodeToString(value)
	body := strconv.FormatInt(ts, 10) + "|" + payload
	m := hmac.New(sha256.New, key)
	m.Write([]byte(name + "|" + body))
	return kid + "." + base64.URLEncoding.EncodeToString(append([]byte(body+"|"), m.Sum(nil)...))
}

func TestCookieRoundTrip(t *testing.T) {
	t.Parallel()
	ring := testRing(t, "k1")
	for _, encrypt := range []bool{false, true} {
		c := testCookie(t, ring, CookieOptions{Encrypt: encrypt})
		for _, v := range [][]byte{{}, []byte("alice"), {0, 0xff, '|', '.', '"'}, bytes.Repeat([]byte("x"), 2000)} {
			orig := bytes.Clone(v)
			enc, err := c.Encode(v)
			if !bytes.Equal(v, orig) {
				t.Fatalf("encrypt=%v: Encode changed the caller's bytes", encrypt)
			}
			if err != nil {
				t.Fatalf("encrypt=%v: Encode: %v", encrypt, err)
			}
			if !strings.HasPrefix(enc, "k1.") {
				t.Errorf("value %q does not carry its key id", enc)
			}
			if encrypt && len(v) > 3 && strings.Contains(decodeAll(enc), string(v)) {
				t.Errorf("encrypted value shows its plaintext")
			}
			got, err := c.Decode(enc)
			if err != nil || !bytes.Equal(got, v) {
				t.Errorf("encrypt=%v: Decode = %.40q, %v; want %.40q", encrypt, got, err, v)
			}
		}
	}
}

func decodeAll(enc string) string {
	_, rest, _ := strings.Cut(enc, ".")
	b, _ := base64.URLEncoding.DecodeString(rest)
	inner := strings.SplitN(string(b), "|", 3)
	if len(inner) < 2 {
		return string(b)
	}
	p, _ := base64.URLEncoding.DecodeString(inner[1])
	return string(p)
}

// TestCookieRefusesForgeries: every one-bit flip and every truncation of
// a valid value is refused, as are values from another key, for another
// name, from the other mode, and with unknown or missing key ids.
func TestCookieRefusesForgeries(t *testing.T) {
	t.Parallel()
	ring := testRing(t, "k1")
	c := testCookie(t, ring, CookieOptions{})
	enc, err := c.Encode([]byte(`{"user":"alice","admin":false}`))
	if err != nil {
		t.Fatal(err)
	}
	for i := range len(enc) {
		for _, bit := range []byte{0x01, 0x20} {
			b := []byte(enc)
			b[i] ^= bit
			if v, err := c.Decode(string(b)); err == nil {
				t.Fatalf("flipping bit %#x of byte %d accepted: %q", bit, i, v)
			} else if !errors.Is(err, ErrInvalid) {
				t.Fatalf("flip %d: error %v is not an ErrInvalid", i, err)
			}
		}
	}
	for n := range len(enc) {
		if v, err := c.Decode(enc[:n]); err == nil {
			t.Fatalf("truncation to %d bytes accepted: %q", n, v)
		}
	}

	other := testCookie(t, testRing(t, "k1-other"), CookieOptions{})
	sameIDOtherSecret, err := NewKeyring(Key{ID: "k1", Secret: testSecret("not k1")})
	if err != nil {
		t.Fatal(err)
	}
	impostor := testCookie(t, sameIDOtherSecret, CookieOptions{})
	otherName := testCookie(t, ring, CookieOptions{Name: "__Host-admin"})
	encrypted := testCookie(t, ring, CookieOptions{Encrypt: true})
	xsrfCookie, err := newCookie(ring, CookieOptions{Name: "__Host-session"}, purposeXSRFCookieMAC, "")
	if err != nil {
		t.Fatal(err)
	}
	mustEncode := func(c *Cookie) string {
		v, err := c.Encode([]byte("alice"))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	cases := []struct {
		name  string
		value string
		want  error
	}{
		{"another key, another id", mustEncode(other), ErrUnknownKey},
		{"another key, same id", mustEncode(impostor), ErrTampered},
		{"another cookie name", mustEncode(otherName), ErrTampered},
		{"encrypted read as signed", mustEncode(encrypted), ErrTampered},
		{"XSRF cookie read as session", mustEncode(xsrfCookie), ErrTampered},
		{"key id swapped", "k2" + enc[2:], ErrUnknownKey},
		{"no key id", enc[3:], ErrTampered},
		{"bad key id", "k!." + enc[3:], ErrTampered},
		{"empty", "", ErrTampered},
		{"too large", enc + strings.Repeat("A", 5000), ErrTooLarge},
		{"plain base64", base64.URLEncoding.EncodeToString([]byte("alice")), ErrTampered},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v, err := c.Decode(tc.value)
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrInvalid) || v != nil {
				t.Errorf("Decode = %q, %v; want %v", v, err, tc.want)
			}
		})
	}
	t.Run("encrypted refuses signed", func(t *testing.T) {
		t.Parallel()
		if v, err := encrypted.Decode(enc); !errors.Is(err, ErrTampered) {
			t.Errorf("Decode = %q, %v; want ErrTampered", v, err)
		}
	})
}

// TestCookieExpiry runs on synctest's fake clock: a value is accepted up
// to exactly MaxAge and refused one second later.
func TestCookieExpiry(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ring := testRing(t, "k1")
		def := testCookie(t, ring, CookieOptions{})
		short := testCookie(t, ring, CookieOptions{MaxAge: time.Hour})
		v1, _ := def.Encode([]byte("alice"))
		v2, _ := short.Encode([]byte("alice"))

		time.Sleep(time.Hour)
		if _, err := short.Decode(v2); err != nil {
			t.Errorf("at exactly MaxAge: %v", err)
		}
		time.Sleep(time.Second)
		if _, err := short.Decode(v2); !errors.Is(err, ErrExpired) {
			t.Errorf("MaxAge+1s: %v; want ErrExpired", err)
		}
		time.Sleep(31*day - time.Hour - time.Second)
		if _, err := def.Decode(v1); err != nil {
			t.Errorf("at exactly 31 days: %v", err)
		}
		time.Sleep(time.Second)
		if _, err := def.Decode(v1); !errors.Is(err, ErrExpired) {
			t.Errorf("31 days + 1s: %v; want ErrExpired", err)
		}
	})
}

// TestCookieFuture: a value minted by a clock two days ahead (the first
// bubble) is refused by a server at the right time (the second bubble,
// whose fake clock starts at the same instant).
func TestCookieFuture(t *testing.T) {
	t.Parallel()
	ring := testRing(t, "k1")
	var ahead, slightly string
	synctest.Test(t, func(t *testing.T) {
		c := testCookie(t, ring, CookieOptions{})
		time.Sleep(30 * time.Second)
		slightly, _ = c.Encode([]byte("alice"))
		time.Sleep(2 * day)
		ahead, _ = c.Encode([]byte("alice"))
	})
	synctest.Test(t, func(t *testing.T) {
		c := testCookie(t, ring, CookieOptions{})
		if _, err := c.Decode(ahead); !errors.Is(err, ErrFuture) {
			t.Errorf("2 days ahead: %v; want ErrFuture", err)
		}
		if _, err := c.Decode(slightly); err != nil {
			t.Errorf("30s ahead (within the 1-minute skew): %v", err)
		}
		strict := testCookie(t, ring, CookieOptions{MaxClockSkew: -1})
		if _, err := strict.Decode(slightly); !errors.Is(err, ErrFuture) {
			t.Errorf("30s ahead with no skew allowed: %v; want ErrFuture", err)
		}
	})
	// The same with values minted directly, as a stolen key would allow.
	c := testCookie(t, ring, CookieOptions{})
	now := time.Now().Unix()
	for _, tc := range []struct {
		ts   int64
		want error
	}{
		{now, nil}, {now + 3600, ErrFuture}, {now + 365*86400, ErrFuture},
		{now - 31*86400 - 5, ErrExpired}, {now - 30*86400, nil},
	} {
		_, err := c.Decode(mint(ring, "k1", "__Host-session", []byte("alice"), tc.ts))
		if !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
			t.Errorf("timestamp now%+d: %v; want %v", tc.ts-now, err, tc.want)
		}
	}
}

// TestCookieRotation: after a new key is put first, old values still
// verify, new values use the new key; once the old key is removed, old
// values are refused as from an unknown key.
func TestCookieRotation(t *testing.T) {
	t.Parallel()
	before := testCookie(t, testRing(t, "2024"), CookieOptions{})
	during := testCookie(t, testRing(t, "2025", "2024"), CookieOptions{})
	after := testCookie(t, testRing(t, "2025"), CookieOptions{})

	old, _ := before.Encode([]byte("alice"))
	if got, err := during.Decode(old); err != nil || string(got) != "alice" {
		t.Errorf("old value during rotation: %q, %v", got, err)
	}
	fresh, _ := during.Encode([]byte("bob"))
	if !strings.HasPrefix(fresh, "2025.") {
		t.Errorf("new value %q is not signed with the new key", fresh)
	}
	if got, err := after.Decode(fresh); err != nil || string(got) != "bob" {
		t.Errorf("new value after rotation: %q, %v", got, err)
	}
	if _, err := before.Decode(fresh); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("new value on a server that lacks the new key: %v; want ErrUnknownKey", err)
	}
	if _, err := after.Decode(old); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("old value after its key was removed: %v; want ErrUnknownKey", err)
	}
}

func TestCookieAttributes(t *testing.T) {
	t.Parallel()
	ring := testRing(t, "k1")
	cases := []struct {
		name string
		opts CookieOptions
		want string
	}{
		{"defaults", CookieOptions{Name: "__Host-session"}, "; Path=/; Max-Age=2678400; HttpOnly; Secure; SameSite=Lax"},
		{"session only", CookieOptions{Name: "__Host-s", SessionOnly: true}, "; Path=/; HttpOnly; Secure; SameSite=Lax"},
		{"strict, path", CookieOptions{Name: "s", Path: "/app", SameSite: http.SameSiteStrictMode, MaxAge: time.Hour}, "; Path=/app; Max-Age=3600; HttpOnly; Secure; SameSite=Strict"},
		{"domain", CookieOptions{Name: "__Secure-s", Domain: "example.com", MaxAge: time.Hour}, "; Path=/; Domain=example.com; Max-Age=3600; HttpOnly; Secure; SameSite=Lax"},
		{"insecure", CookieOptions{Name: "dev", InsecureAllowHTTP: true, InsecureScriptAccess: true, MaxAge: time.Hour}, "; Path=/; Max-Age=3600; SameSite=Lax"},
		{"none", CookieOptions{Name: "embed", SameSite: http.SameSiteNoneMode, MaxAge: time.Hour}, "; Path=/; Max-Age=3600; HttpOnly; Secure; SameSite=None"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := testCookie(t, ring, tc.opts)
			rec := httptest.NewRecorder()
			if err := c.Set(rec, []byte("v")); err != nil {
				t.Fatal(err)
			}
			h := rec.Header().Get("Set-Cookie")
			_, attrs, _ := strings.Cut(h, "; ")
			if "; "+attrs != tc.want || !strings.HasPrefix(h, tc.opts.Name+"=k1.") {
				t.Errorf("Set-Cookie: %s\nwant attributes %s", h, tc.want)
			}
			rec = httptest.NewRecorder()
			c.Delete(rec)
			if d := rec.Header().Get("Set-Cookie"); !strings.Contains(d, "Max-Age=0") || !strings.HasPrefix(d, tc.opts.Name+"=;") {
				t.Errorf("Delete: %s", d)
			}
		})
	}
}

func TestNewCookieRefusesUnsafeOptions(t *testing.T) {
	t.Parallel()
	ring := testRing(t, "k1")
	cases := []struct {
		name string
		ring *Keyring
		opts CookieOptions
	}{
		{"no keyring", nil, CookieOptions{Name: "s"}},
		{"no name", ring, CookieOptions{}},
		{"bad name", ring, CookieOptions{Name: "a b"}},
		{"__Host- with domain", ring, CookieOptions{Name: "__Host-s", Domain: "example.com"}},
		{"__Host- with path", ring, CookieOptions{Name: "__Host-s", Path: "/app"}},
		{"__Host- over http", ring, CookieOptions{Name: "__Host-s", InsecureAllowHTTP: true}},
		{"__host- any case", ring, CookieOptions{Name: "__HOST-s", InsecureAllowHTTP: true}},
		{"__Secure- over http", ring, CookieOptions{Name: "__Secure-s", InsecureAllowHTTP: true}},
		{"SameSite=None over http", ring, CookieOptions{Name: "s", SameSite: http.SameSiteNoneMode, InsecureAllowHTTP: true}},
		{"unknown SameSite", ring, CookieOptions{Name: "s", SameSite: 9}},
		{"relative path", ring, CookieOptions{Name: "s", Path: "app"}},
		{"tiny max age", ring, CookieOptions{Name: "s", MaxAge: time.Millisecond}},
		{"negative max age", ring, CookieOptions{Name: "s", MaxAge: -time.Hour}},
		{"tiny max length", ring, CookieOptions{Name: "s", MaxLength: 10}},
		{"bad domain", ring, CookieOptions{Name: "s", Domain: "exa mple.com"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if c, err := NewCookie(tc.ring, tc.opts); err == nil {
				t.Errorf("NewCookie = %v, nil; want an error", c)
			}
		})
	}
}

func TestCookieSizeLimit(t *testing.T) {
	t.Parallel()
	c := testCookie(t, testRing(t, "k1"), CookieOptions{MaxLength: 200})
	if _, err := c.Encode(make([]byte, 100)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Encode over MaxLength: %v; want ErrTooLarge", err)
	}
	if _, err := c.Encode(make([]byte, 20)); err != nil {
		t.Errorf("Encode under MaxLength: %v", err)
	}
	big := testCookie(t, testRing(t, "k1"), CookieOptions{})
	if _, err := big.Encode(make([]byte, 4000)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Encode of 4000 bytes with the 4096 default: %v; want ErrTooLarge", err)
	}
}

// syncBuffer is an io.Writer safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var requestIDs = regexp.MustCompile(`[0-9a-f]{16}`)

// TestCookieServerRefusesForgedCookies runs a real server whose /me
// handler reads the session cookie. Forged, truncated, expired, future and
// unknown-key cookies all get the same 401 page; the log tells them apart;
// the legitimate cookie keeps working throughout.
func TestCookieServerRefusesForgedCookies(t *testing.T) {
	t.Parallel()
	old := testRing(t, "old")
	ring := testRing(t, "new")
	sess := testCookie(t, ring, CookieOptions{})
	var logs syncBuffer
	mux := http.NewServeMux()
	mux.Handle("POST /login", httperr.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		return sess.Set(w, []byte("alice"))
	}))
	mux.Handle("GET /me", httperr.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		user, err := sess.Get(r)
		if err != nil {
			return httperr.New(http.StatusUnauthorized, httperr.KindUnauthorized, err)
		}
		_, err = fmt.Fprintf(w, "hello %s", user)
		return err
	}))
	srv := httptest.NewServer(httperr.Install(httperr.Options{
		Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
	})(mux))
	defer srv.Close()

	resp, err := srv.Client().Post(srv.URL+"/login", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var good string
	for _, ck := range resp.Cookies() {
		good = ck.Value
	}
	get := func(cookie string) (int, string) {
		req, _ := http.NewRequest("GET", srv.URL+"/me", nil)
		req.Header.Set("Accept", "text/plain")
		if cookie != "" {
			req.Header.Set("Cookie", "__Host-session="+cookie)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, requestIDs.ReplaceAllString(string(body), "ID")
	}
	if code, body := get(good); code != 200 || body != "hello alice" {
		t.Fatalf("legitimate cookie: %d %q", code, body)
	}
	flipped := []byte(good)
	flipped[len(flipped)/2] ^= 1
	now := time.Now().Unix()
	attacks := []struct {
		name, cookie, logged string
	}{
		{"flipped byte", string(flipped), "tampered"},
		{"truncated", good[:len(good)-5], "tampered"},
		{"other key", mint(old, "old", "__Host-session", []byte("admin"), now), "unknown key"},
		{"same id, attacker's key", forgedSameID(t, now), "tampered"},
		{"expired", mint(ring, "new", "__Host-session", []byte("alice"), now-32*86400), "expired"},
		{"future", mint(ring, "new", "__Host-session", []byte("admin"), now+365*86400), "future"},
		{"unsigned", "alice", "tampered"},
	}
	var refusal string
	for _, a := range attacks {
		code, body := get(a.cookie)
		if code != http.StatusUnauthorized {
			t.Errorf("%s: status %d, body %q; want 401", a.name, code, body)
		}
		if refusal == "" {
			refusal = body
		} else if body != refusal {
			t.Errorf("%s: the client can tell refusals apart:\n%q\n%q", a.name, body, refusal)
		}
		for _, word := range []string{"tamper", "expire", "future", "unknown", "key"} {
			if strings.Contains(strings.ToLower(body), word) {
				t.Errorf("%s: client body mentions %q: %q", a.name, word, body)
			}
		}
	}
	for _, a := range attacks {
		if len(a.cookie) > 10 && strings.Contains(logs.String(), a.cookie) {
			t.Errorf("the log holds the %s cookie's value (Tornado logs v1 cookies whole)", a.name)
		}
		if !strings.Contains(logs.String(), a.logged) {
			t.Errorf("log lacks %q (for %s):\n%s", a.logged, a.name, logs.String())
		}
	}
	if code, body := get(good); code != 200 || body != "hello alice" {
		t.Errorf("legitimate cookie after the attacks: %d %q", code, body)
	}
}

// forgedSameID signs with an attacker's own secret under the victim's key
// id "new".
func forgedSameID(t *testing.T, now int64) string {
	t.Helper()
	attacker, err := NewKeyring(Key{ID: "new", Secret: testSecret("attacker")})
	if err != nil {
		t.Fatal(err)
	}
	return mint(attacker, "new", "__Host-session", []byte("admin"), now)
}

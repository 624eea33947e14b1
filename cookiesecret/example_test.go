package cookiesecret_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/stormcellar/stormcellar/cookiesecret"
	"github.com/stormcellar/stormcellar/httperr"
)

// Never hard-code a key: these examples generate theirs. In a service,
// load the keyring with cookiesecret.LoadKeyring("COOKIE_KEYS").
func exampleKeyring() *cookiesecret.Keyring {
	text := "2025-06:" + cookiesecret.GenerateSecret().Reveal() + "," +
		"2024-12:" + cookiesecret.GenerateSecret().Reveal()
	ring, err := cookiesecret.ParseKeyring(text)
	if err != nil {
		panic(err)
	}
	return ring
}

func ExampleParseKeyring() {
	ring := exampleKeyring()
	fmt.Println("signs with:", ring.Current())
	fmt.Println("verifies:", ring.IDs())
	fmt.Println(ring)
	// Output:
	// signs with: 2025-06
	// verifies: [2025-06 2024-12]
	// cookiesecret.Keyring{current: 2025-06, keys: 2025-06 2024-12}
}

func ExampleValidate() {
	for _, s := range []string{
		"changeme",
		"__TODO:_GENERATE_YOUR_OWN_RANDOM_VALUE_HERE__",
		"tooshort-but-random-Xq9",
		strings.Repeat("abc", 12),
		"my-app-production-cookie-secret-2024",
	} {
		err := cookiesecret.Validate([]byte(s))
		msg, _, _ := strings.Cut(err.Error(), ";")
		fmt.Println(msg)
	}
	// Output:
	// cookiesecret: secret is a published sample value: it is a well-known placeholder value
	// cookiesecret: secret is a published sample value: it is Tornado's documentation placeholder
	// cookiesecret: secret too short: 23 bytes, need at least 32
	// cookiesecret: secret too weak: it repeats a 3-byte pattern
	// cookiesecret: secret too weak: estimated entropy 70 bits, need 100: it is made of 4 dictionary words or keyboard patterns plus little else
}

func ExampleLoadKeyring() {
	os.Setenv("EXAMPLE_COOKIE_KEYS", "k1:"+cookiesecret.GenerateSecret().Reveal())
	defer os.Unsetenv("EXAMPLE_COOKIE_KEYS")
	ring, err := cookiesecret.LoadKeyring("EXAMPLE_COOKIE_KEYS")
	fmt.Println(ring.Current(), err)

	_, err = cookiesecret.LoadKeyring("EXAMPLE_UNSET_KEYS")
	fmt.Println(errors.Is(err, cookiesecret.ErrNotSet))
	// Output:
	// k1 <nil>
	// true
}

func ExampleSecret() {
	s := cookiesecret.GenerateSecret()
	fmt.Println(s)
	fmt.Printf("%#v %x\n", s, s)
	b, _ := json.Marshal(struct{ Key cookiesecret.Secret }{s})
	fmt.Println(string(b))
	slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})).Info("loaded", "secret", s)
	// Output:
	// [REDACTED]
	// cookiesecret.Secret{[REDACTED]} [REDACTED]
	// {"Key":"[REDACTED]"}
	// level=INFO msg=loaded secret=[REDACTED]
}

func ExampleNewCookie() {
	ring := exampleKeyring()
	session, err := cookiesecret.NewCookie(ring, cookiesecret.CookieOptions{Name: "__Host-session"})
	if err != nil {
		panic(err)
	}

	rec := httptest.NewRecorder()
	if err := session.Set(rec, []byte("user:42")); err != nil {
		panic(err)
	}
	setCookie := rec.Header().Get("Set-Cookie")
	_, attrs, _ := strings.Cut(setCookie, "; ")
	fmt.Println(attrs)

	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Cookie", strings.SplitN(setCookie, ";", 2)[0])
	v, err := session.Get(req)
	fmt.Printf("%s %v\n", v, err)

	req.Header.Set("Cookie", "__Host-session=2025-06.forged")
	_, err = session.Get(req)
	fmt.Println(errors.Is(err, cookiesecret.ErrTampered), errors.Is(err, cookiesecret.ErrInvalid))
	// Output:
	// Path=/; Max-Age=2678400; HttpOnly; Secure; SameSite=Lax
	// user:42 <nil>
	// true true
}

func ExampleNewTornado() {
	// The Tornado application's cookie_secret, as the Tornado app has it.
	// This one is weak (it is the one of Tornado's reference vectors):
	// InsecureUncheckedSecret accepts it so that its cookies can be read
	// while it is rotated. Use cookiesecret.NewSecret for a real one.
	secret := cookiesecret.InsecureUncheckedSecret([]byte("my-secret-key"))
	tor, err := cookiesecret.NewTornado(cookiesecret.TornadoOptions{
		Secret: secret,
		Now:    func() time.Time { return time.Unix(1700000000, 0) },
	})
	if err != nil {
		panic(err)
	}
	v, _ := tor.Encode("session", []byte("alice"))
	fmt.Println(v)

	// What Tornado's set_signed_cookie sent, quotes included.
	got, err := tor.Decode("session", `"2|1:0|10:1700000000|7:session|8:YWxpY2U=|af0313485f563ae2d16c450365c3738e519693327ce63f472ac5cdcb2a59da9d"`)
	fmt.Printf("%s %v\n", got, err)
	// Output:
	// 2|1:0|10:1700000000|7:session|8:YWxpY2U=|af0313485f563ae2d16c450365c3738e519693327ce63f472ac5cdcb2a59da9d
	// alice <nil>
}

func ExampleNewXSRF() {
	ring := exampleKeyring()
	xsrf, err := cookiesecret.NewXSRF(ring, cookiesecret.XSRFOptions{})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /form", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<form method="post" action="/pay">%s</form>`, cookiesecret.XSRFField(r))
	})
	mux.HandleFunc("POST /pay", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "paid")
	})
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := httptest.NewServer(httperr.Install(httperr.Options{Logger: logger})(xsrf.Handler(mux)))
	defer srv.Close()

	// The browser loads the form: it gets the signed XSRF cookie and a
	// masked token in the page.
	resp, _ := http.Get(srv.URL + "/form")
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	cookie := resp.Cookies()[0]
	_, tok, _ := strings.Cut(string(page), `value="`)
	tok, _, _ = strings.Cut(tok, `"`)

	post := func(origin, token string) int {
		req, _ := http.NewRequest("POST", srv.URL+"/pay", strings.NewReader(url.Values{"_xsrf": {token}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", origin)
		req.AddCookie(cookie)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	fmt.Println("cookie:", cookie.Name, "HttpOnly:", cookie.HttpOnly, "Secure:", cookie.Secure)
	fmt.Println("same origin, token:", post(srv.URL, tok))
	fmt.Println("same origin, no token:", post(srv.URL, ""))
	fmt.Println("cross-site, token:", post("https://evil.example", tok))
	// Output:
	// cookie: __Host-xsrf HttpOnly: true Secure: true
	// same origin, token: 200
	// same origin, no token: 403
	// cross-site, token: 403
}

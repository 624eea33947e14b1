package cookiesecret

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// TestNothingPrintsASecret prints every type that holds key material, on
// its own and inside structs (exported and unexported fields, by value and
// by pointer), with every fmt verb, slog's text and JSON handlers and
// encoding/json, and looks for the secret and every derived key in any
// encoding.
func TestNothingPrintsASecret(t *testing.T) {
	t.Parallel()
	s := GenerateSecret()
	ring, err := NewKeyring(Key{ID: "k1", Secret: s})
	if err != nil {
		t.Fatal(err)
	}
	cookie, err := NewCookie(ring, CookieOptions{Name: "__Host-s", Encrypt: true})
	if err != nil {
		t.Fatal(err)
	}
	tor, err := NewTornado(TornadoOptions{Secrets: map[int]Secret{3: s}, KeyVersion: 3})
	if err != nil {
		t.Fatal(err)
	}
	xsrf, err := NewXSRF(ring, XSRFOptions{})
	if err != nil {
		t.Fatal(err)
	}

	materials := [][]byte{s.bytes()}
	for _, p := range []string{purposeCookieMAC, purposeEncryptedCookieMAC, purposeEncryptedCookieAES, purposeXSRFCookieMAC, purposeXSRFBind} {
		materials = append(materials, derive(s, p, "k1"))
	}
	var forbidden []string
	for _, m := range materials {
		forbidden = append(forbidden,
			string(m), hex.EncodeToString(m), strings.ToUpper(hex.EncodeToString(m)),
			base64.StdEncoding.EncodeToString(m)[:20], base64.URLEncoding.EncodeToString(m)[:20],
			strings.Trim(fmt.Sprint(m[:6]), "[]"), fmt.Sprintf("%q", m)[1:20],
			fmt.Sprintf("%#v", m[:4])[7:],
		)
	}

	type exported struct {
		Secret Secret
		Key    Key
		Ring   *Keyring
		Cookie *Cookie
		Tor    *Tornado
		XSRF   *XSRF
	}
	type unexported struct {
		secret Secret
		keys   []Key
		ring   Keyring
		cookie Cookie
		tor    Tornado
		xsrf   XSRF
		m      map[string]Secret
	}
	values := map[string]any{
		"Secret":     s,
		"*Secret":    &s,
		"Key":        Key{ID: "k1", Secret: s},
		"Keyring":    ring,
		"Keyring{}":  *ring,
		"Cookie":     cookie,
		"Cookie{}":   *cookie,
		"Tornado":    tor,
		"Tornado{}":  *tor,
		"XSRF":       xsrf,
		"XSRF{}":     *xsrf,
		"exported":   exported{s, Key{"k1", s}, ring, cookie, tor, xsrf},
		"*exported":  &exported{s, Key{"k1", s}, ring, cookie, tor, xsrf},
		"unexported": unexported{s, []Key{{"k1", s}}, *ring, *cookie, *tor, *xsrf, map[string]Secret{"a": s}},
		"*unexport":  &unexported{s, []Key{{"k1", s}}, *ring, *cookie, *tor, *xsrf, map[string]Secret{"a": s}},
		"[]Secret":   []Secret{s, s},
		"map":        map[string]any{"s": s, "ring": ring},
		"error":      fmt.Errorf("wrapped %v", s),
	}
	check := func(how, out string) {
		t.Helper()
		for _, f := range forbidden {
			if strings.Contains(out, f) {
				t.Errorf("%s printed key material (%q): %s", how, f, out)
				return
			}
		}
	}
	for name, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %v"} {
			check(name+" "+verb, fmt.Sprintf(verb, v))
		}
		check(name+" Sprint", fmt.Sprint(v))
		check(name+" Sprintln", fmt.Sprintln(v))
		if b, err := json.Marshal(v); err == nil {
			check(name+" json", string(b))
		}
		var text, js bytes.Buffer
		slog.New(slog.NewTextHandler(&text, nil)).Info("msg", "v", v, slog.Any("any", v), slog.Group("g", "v", v))
		slog.New(slog.NewJSONHandler(&js, nil)).Info("msg", "v", v, slog.Any("any", v), slog.Group("g", "v", v))
		check(name+" slog text", text.String())
		check(name+" slog json", js.String())
	}
	// And what the redaction looks like.
	for _, tc := range []struct{ got, want string }{
		{fmt.Sprintf("%v", s), "[REDACTED]"},
		{fmt.Sprintf("%#v", s), "cookiesecret.Secret{[REDACTED]}"},
		{fmt.Sprintf("%x", s), "[REDACTED]"},
		{fmt.Sprint(ring), "cookiesecret.Keyring{current: k1, keys: k1}"},
		{fmt.Sprint(cookie), "cookiesecret.Cookie{name: __Host-s, keys: k1}"},
		{fmt.Sprint(tor), "cookiesecret.Tornado{version: 2, key version: 3, key versions: [3]}"},
		{fmt.Sprint(xsrf), "cookiesecret.XSRF{cookie: __Host-xsrf, keys: k1}"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	if b, _ := json.Marshal(s); string(b) != `"[REDACTED]"` {
		t.Errorf("json: %s", b)
	}
	if b, _ := s.MarshalText(); string(b) != "[REDACTED]" {
		t.Errorf("text: %s", b)
	}
}

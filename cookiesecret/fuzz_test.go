package cookiesecret

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// knownErr reports whether err is one of the package's documented errors.
func knownErr(err error) bool {
	for _, e := range []error{ErrTooShort, ErrWeak, ErrSample, ErrMalformed, ErrNotSet, ErrInvalid} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func FuzzValidate(f *testing.F) {
	for _, s := range []string{"changeme", strings.Repeat("a", 40), "thisismysupersecretcookiesecretkey",
		"__TODO:_GENERATE_YOUR_OWN_RANDOM_VALUE_HERE__", "0123456789abcdef0123456789abcdef", string(GenerateSecret().bytes())} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		err := Validate(raw)
		if err != nil && !knownErr(err) {
			t.Fatalf("unexpected error type: %v", err)
		}
		if err == nil && (len(raw) < MinSecretLen || distinct(raw) < 8 || period(raw) <= len(raw)/2) {
			t.Fatalf("accepted a weak secret of %d bytes", len(raw))
		}
	})
}

func FuzzParseSecret(f *testing.F) {
	for _, s := range []string{"", "changeme", GenerateSecret().Reveal(), "61oETzKXQAGaYdkL5gEmGeJJFuYh7EQnp2XdTP1o/Vo=",
		"  " + GenerateSecret().Reveal() + "\n", "not base64!", "AAAA"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		s, err := ParseSecret(text)
		if err != nil {
			if !knownErr(err) {
				t.Fatalf("unexpected error type: %v", err)
			}
			if trimmed := strings.TrimSpace(text); len(trimmed) >= 12 && strings.Contains(err.Error(), trimmed) {
				t.Fatalf("error repeats the input: %v", err)
			}
			return
		}
		if Validate(s.bytes()) != nil || s.Len() < MinSecretLen {
			t.Fatal("parsed a secret that does not validate")
		}
		back, err := ParseSecret(s.Reveal())
		if err != nil || !back.Equal(s) {
			t.Fatalf("Reveal does not parse back: %v", err)
		}
	})
}

func FuzzParseKeyring(f *testing.F) {
	a, b := GenerateSecret().Reveal(), GenerateSecret().Reveal()
	for _, s := range []string{"k2:" + a + ",k1:" + b, a, "k:61oETzKXQAGaYdkL5gEmGeJJFuYh7EQnp2XdTP1o_Vo", "k:" + a + ",k:" + b, "k/1:" + a, " , ", "x:changeme", "a:" + a + "\nb:" + b} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		ring, err := ParseKeyring(text)
		if err != nil {
			if !knownErr(err) {
				t.Fatalf("unexpected error type: %v", err)
			}
			return
		}
		ids := ring.IDs()
		if ring.Current() != ids[0] || len(ids) > maxKeys {
			t.Fatalf("Current %q, IDs %v", ring.Current(), ids)
		}
		var parts []string
		for _, k := range ring.keys {
			if !validKeyID(k.ID) || Validate(k.Secret.bytes()) != nil {
				t.Fatalf("key %q is invalid", k.ID)
			}
			parts = append(parts, k.ID+":"+k.Secret.Reveal())
		}
		again, err := ParseKeyring(strings.Join(parts, ","))
		if err != nil || strings.Join(again.IDs(), ",") != strings.Join(ids, ",") {
			t.Fatalf("keyring does not round-trip: %v", err)
		}
	})
}

// FuzzCookieDecode: whatever the input, Decode never panics, every error
// is an ErrInvalid, and only values the codec made verify: a successful
// decode gives back one of the seeded plaintexts.
func FuzzCookieDecode(f *testing.F) {
	ring := testRing(f, "k2", "k1")
	signed := testCookie(f, ring, CookieOptions{})
	encrypted := testCookie(f, ring, CookieOptions{Name: "__Host-e", Encrypt: true})
	plain := [][]byte{[]byte("alice"), {}, []byte(`{"admin":true}`)}
	for _, p := range plain {
		v1, _ := signed.Encode(p)
		v2, _ := encrypted.Encode(p)
		f.Add(v1)
		f.Add(v2)
		f.Add(v1[:len(v1)/2])
	}
	f.Add("")
	f.Add("k1.")
	f.Add("k9.AAAA")
	f.Add(mint(ring, "k1", "__Host-session", []byte("alice"), time.Now().Unix()+86400))
	f.Fuzz(func(t *testing.T, value string) {
		for _, c := range []*Cookie{signed, encrypted} {
			got, err := c.Decode(value)
			if err != nil {
				if !errors.Is(err, ErrInvalid) || got != nil {
					t.Fatalf("Decode = %q, %v", got, err)
				}
				continue
			}
			found := false
			for _, p := range plain {
				found = found || bytes.Equal(got, p)
			}
			if !found {
				t.Fatalf("forged value verified: %q", got)
			}
		}
	})
}

func FuzzCookieRoundTrip(f *testing.F) {
	ring := testRing(f, "k1")
	signed := testCookie(f, ring, CookieOptions{})
	encrypted := testCookie(f, ring, CookieOptions{Encrypt: true})
	f.Add([]byte("alice"))
	f.Add([]byte{})
	f.Add([]byte{0, 0xff, '|', '.'})
	f.Fuzz(func(t *testing.T, value []byte) {
		for _, c := range []*Cookie{signed, encrypted} {
			orig := bytes.Clone(value)
			enc, err := c.Encode(value)
			if err != nil {
				if !errors.Is(err, ErrTooLarge) {
					t.Fatalf("Encode: %v", err)
				}
				continue
			}
			if !bytes.Equal(value, orig) {
				t.Fatal("Encode changed its input")
			}
			if ck := (&http.Cookie{Name: c.Name(), Value: enc}); ck.Valid() != nil {
				t.Fatalf("encoded value is not a valid cookie value: %v", ck.Valid())
			}
			got, err := c.Decode(enc)
			if err != nil || !bytes.Equal(got, value) {
				t.Fatalf("round trip: %q, %v", got, err)
			}
		}
	})
}

// FuzzTornadoDecode: Tornado values of any shape never panic (Tornado
// itself raises on some), every error is an ErrInvalid, and only the
// seeded signed values verify.
func FuzzTornadoDecode(f *testing.F) {
	tor, err := NewTornado(TornadoOptions{Secret: weak("my-secret-key"), InsecureAllowV1: true, Now: clockAt(vectorClock, 0)})
	if err != nil {
		f.Fatal(err)
	}
	dict, err := NewTornado(TornadoOptions{Secrets: rotationSecrets(), KeyVersion: 1, Now: clockAt(vectorClock, 0)})
	if err != nil {
		f.Fatal(err)
	}
	for _, v := range tornadoVectors {
		f.Add(v.cookie, v.encoded)
		f.Add(v.cookie, `"`+v.encoded+`"`)
		f.Add(v.cookie, v.encoded[:len(v.encoded)/2])
	}
	for _, s := range []string{"", "abc", "s=abc", "2|", "2|1:0|", "2|99999999999:", "1000|x", "0|x", "|||", "2|\n", "2|1:0|10:1700000000|7:session|8:YWxpY2U=|"} {
		f.Add("session", s)
	}
	plain := map[string]bool{}
	for _, v := range tornadoVectors {
		plain[string(v.value)] = true
	}
	f.Fuzz(func(t *testing.T, name, value string) {
		for _, c := range []*Tornado{tor, dict} {
			got, err := c.Decode(name, value)
			if err != nil {
				if !errors.Is(err, ErrInvalid) || got != nil {
					t.Fatalf("Decode = %q, %v", got, err)
				}
				continue
			}
			if !plain[string(got)] {
				t.Fatalf("forged Tornado value verified: %q", got)
			}
		}
		if v := tornadoVersion(value); v < 1 || v > 999 {
			t.Fatalf("version %d", v)
		}
	})
}

func FuzzTornadoRoundTrip(f *testing.F) {
	tor, err := NewTornado(TornadoOptions{Secrets: rotationSecrets(), KeyVersion: 1})
	if err != nil {
		f.Fatal(err)
	}
	v1, err := NewTornado(TornadoOptions{Secret: weak("my-secret-key"), Version: 1, InsecureAllowV1: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Add("session", []byte("alice"))
	f.Add("blob", []byte("\x00\xff\xfe|:"))
	f.Add("a", []byte{})
	f.Fuzz(func(t *testing.T, name string, value []byte) {
		for _, c := range []*Tornado{tor, v1} {
			enc, err := c.Encode(name, value)
			if err != nil {
				continue // invalid cookie name or too large
			}
			got, err := c.Decode(name, enc)
			if err != nil || !bytes.Equal(got, value) {
				t.Fatalf("round trip of %q: %q, %v", enc, got, err)
			}
		}
	})
}

// FuzzXSRFVerify: submitted tokens of any shape never panic, and only a
// token made for this cookie and session verifies.
func FuzzXSRFVerify(f *testing.F) {
	x, err := NewXSRF(testRing(f, "k1"), XSRFOptions{})
	if err != nil {
		f.Fatal(err)
	}
	base := bytes.Repeat([]byte{7}, xsrfBaseLen)
	good := x.mask(base, "s1")
	f.Add(good, "s1")
	f.Add(good, "s2")
	f.Add(x.mask(base, ""), "")
	f.Add("k1.", "")
	f.Add("aa", "")
	f.Add("k9"+good[2:], "s1")
	f.Fuzz(func(t *testing.T, tok, session string) {
		err := x.verify(tok, base, session)
		if err != nil {
			if !errors.Is(err, ErrTokenMismatch) {
				t.Fatalf("verify: %v", err)
			}
			return
		}
		// A token verifies only if it unmasks to the binding of this
		// cookie and session: check against an independent session.
		if x.verify(tok, base, session+"\x00other") == nil {
			t.Fatalf("token %q verifies for two sessions", tok)
		}
	})
}

func FuzzNormalizeOrigin(f *testing.F) {
	for _, s := range []string{"https://example.com", "https://Example.com:443", "http://[::1]:80", "null", "*", "example.com", "https://a/b", "https://u@h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, o string) {
		norm, err := normalizeOrigin(o)
		if err != nil {
			return
		}
		again, err := normalizeOrigin(norm)
		if err != nil || again != norm {
			t.Fatalf("normalizeOrigin(%q) = %q, then %q, %v", o, norm, again, err)
		}
		if !strings.HasPrefix(norm, "https://") && !strings.HasPrefix(norm, "http://") {
			t.Fatalf("normalized %q to %q", o, norm)
		}
		if err := http.NewCrossOriginProtection().AddTrustedOrigin(norm); err != nil {
			t.Fatalf("stdlib refuses %q: %v", norm, err)
		}
	})
}

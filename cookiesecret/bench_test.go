package cookiesecret

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/securecookie"
)

// The baselines are plain gorilla/securecookie with the same serializer
// (raw bytes) and keys of the same size; this package adds key ids, the
// future check, size limits before cryptography and the copy that keeps
// encryption from overwriting the caller's bytes.

var benchValue = []byte("session-id:7f3a9c2e8b1d4f60a5e7c3b9d2f1a8e4")

func benchCodecs(b *testing.B) (plain, plainEnc *securecookie.SecureCookie, signed, encrypted *Cookie, tor *Tornado) {
	ring := testRing(b, "k2", "k1")
	plain = securecookie.New(derive(testSecret("k2"), purposeCookieMAC, "k2"), nil).SetSerializer(securecookie.NopEncoder{})
	plainEnc = securecookie.New(derive(testSecret("k2"), purposeEncryptedCookieMAC, "k2"),
		derive(testSecret("k2"), purposeEncryptedCookieAES, "k2")).SetSerializer(securecookie.NopEncoder{})
	signed = testCookie(b, ring, CookieOptions{})
	encrypted = testCookie(b, ring, CookieOptions{Encrypt: true})
	tor, err := NewTornado(TornadoOptions{Secret: testSecret("tornado")})
	if err != nil {
		b.Fatal(err)
	}
	return
}

func BenchmarkSign(b *testing.B) {
	plain, plainEnc, signed, encrypted, tor := benchCodecs(b)
	b.Run("securecookie", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := plain.Encode("__Host-session", benchValue); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cookiesecret", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := signed.Encode(benchValue); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("securecookie-encrypted", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			// securecookie encrypts in place: give it a copy, as
			// cookiesecret does, or benchValue would be destroyed.
			if _, err := plainEnc.Encode("__Host-session", append([]byte(nil), benchValue...)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cookiesecret-encrypted", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := encrypted.Encode(benchValue); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("tornado-v2", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := tor.Encode("session", benchValue); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	plain, plainEnc, signed, encrypted, tor := benchCodecs(b)
	pv, _ := plain.Encode("__Host-session", benchValue)
	pev, _ := plainEnc.Encode("__Host-session", append([]byte(nil), benchValue...))
	sv, _ := signed.Encode(benchValue)
	ev, _ := encrypted.Encode(benchValue)
	tv, _ := tor.Encode("session", benchValue)
	b.Run("securecookie", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var out []byte
			if err := plain.Decode("__Host-session", pv, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cookiesecret", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := signed.Decode(sv); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("securecookie-encrypted", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var out []byte
			if err := plainEnc.Decode("__Host-session", pev, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cookiesecret-encrypted", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := encrypted.Decode(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("tornado-v2", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := tor.Decode("session", tv); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkVerifyForged measures what an attacker's oversized cookie costs
// (8 KiB, the most a default net/http header allows per line is larger):
// securecookie base64-decodes it before refusing it; cookiesecret refuses
// it on its length.
func BenchmarkVerifyForged(b *testing.B) {
	plain, _, signed, _, tor := benchCodecs(b)
	plain.MaxLength(0)
	forged := "k2." + strings.Repeat("QUFB", 2048)
	b.Run("securecookie", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var out []byte
			_ = plain.Decode("__Host-session", forged[3:], &out)
		}
	})
	b.Run("cookiesecret", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = signed.Decode(forged)
		}
	})
	b.Run("tornado-v2", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = tor.Decode("session", forged)
		}
	})
}

// BenchmarkXSRF compares an unsafe same-origin request through a bare
// handler, through the standard library's CrossOriginProtection alone, and
// through both layers of XSRF (origin check, cookie verification, token
// unmasking; the token in a header).
func BenchmarkXSRF(b *testing.B) {
	ring := testRing(b, "k1")
	x, err := NewXSRF(ring, XSRFOptions{})
	if err != nil {
		b.Fatal(err)
	}
	base := make([]byte, xsrfBaseLen)
	cookie, _ := x.cookie.Encode(base)
	tok := x.mask(base, "")
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	req := httptest.NewRequest("POST", "https://example.com/transfer", nil)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Cookie", "__Host-xsrf="+cookie)
	req.Header.Set("X-XSRF-Token", tok)
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{
		{"bare", ok},
		{"CrossOriginProtection", http.NewCrossOriginProtection().Handler(ok)},
		{"XSRF", x.Handler(ok)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			w := httptest.NewRecorder()
			for b.Loop() {
				bc.h.ServeHTTP(w, req)
			}
			if w.Code != 200 {
				b.Fatalf("status %d", w.Code)
			}
		})
	}
}

func BenchmarkValidate(b *testing.B) {
	s := GenerateSecret().Reveal()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseSecret(s); err != nil {
			b.Fatal(err)
		}
	}
}

package cookiesecret

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateRefuses(t *testing.T) {
	t.Parallel()
	half := make([]byte, 16)
	rand.Read(half)
	fewChars := make([]byte, 48)
	for i := range fewChars {
		fewChars[i] = "abcd"[mrand.IntN(4)]
	}
	cases := []struct {
		name   string
		secret string
		want   error
		why    string
	}{
		{"secret", "secret", ErrSample, "placeholder"},
		{"changeme", "changeme", ErrSample, "placeholder"},
		{"Tornado placeholder", "__TODO:_GENERATE_YOUR_OWN_RANDOM_VALUE_HERE__", ErrSample, "Tornado's documentation placeholder"},
		{"Tornado demo key", "61oETzKXQAGaYdkL5gEmGeJJFuYh7EQnp2XdTP1o/Vo=", ErrSample, "Tornado's demos"},
		{"gorilla securecookie hash key", "very-secret", ErrSample, "gorilla"},
		{"gorilla securecookie block key", "a-lot-secret", ErrSample, "gorilla"},
		{"gorilla csrf key", "32-byte-long-auth-key", ErrSample, "gorilla"},
		{"express-session", "keyboard cat", ErrSample, "express"},
		{"django insecure", "django-insecure-0123456789abcdefghijklmnopqrstuvwxyz!@#$%^", ErrSample, "Django"},
		{"quoted sample", `"changeme"`, ErrSample, "placeholder"},
		{"short random", string(half), ErrTooShort, "16 bytes, need at least 32"},
		{"one byte repeated", strings.Repeat("a", 40), ErrWeak, "one byte repeated"},
		{"zero bytes", string(make([]byte, 32)), ErrWeak, "one byte repeated"},
		{"short pattern", strings.Repeat("abcd", 10), ErrWeak, "4-byte pattern"},
		{"random half repeated", string(half) + string(half), ErrWeak, "16-byte pattern"},
		{"few characters", string(fewChars), ErrWeak, "distinct byte values"},
		{"words", "thisismysupersecretcookiesecretkey", ErrWeak, "dictionary words"},
		{"words with separators and a year", "my-app-production-cookie-secret-2024-xyz", ErrWeak, "estimated entropy"},
		{"passphrase", "correct horse battery staple correct horse", ErrWeak, "dictionary words"},
		{"leet", "Sup3rS3cr3tC00kieK3yF0rPr0duct10n2024", ErrWeak, "dictionary words"},
		{"keyboard walk", "qwertyuiopasdfghjklzxcvbnm1234567890", ErrWeak, "estimated entropy"},
		{"alphabet", "abcdefghijklmnopqrstuvwxyz0123456789", ErrWeak, "estimated entropy"},
		{"too long", strings.Repeat("xK9#", 300), ErrMalformed, "more than 1024"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := Validate([]byte(tc.secret))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Validate = %v; want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.why) {
				t.Errorf("error %q does not say %q", err, tc.why)
			}
			if len(tc.secret) >= 8 && strings.Contains(err.Error(), tc.secret) {
				t.Errorf("error repeats the secret: %q", err)
			}
			if _, err := NewSecret([]byte(tc.secret)); !errors.Is(err, tc.want) {
				t.Errorf("NewSecret = %v; want %v", err, tc.want)
			}
		})
	}
}

// TestValidateAcceptsRandomKeys: no random key in the usual encodings is
// refused (the estimate must not reject what generators produce).
func TestValidateAcceptsRandomKeys(t *testing.T) {
	t.Parallel()
	rng := mrand.New(mrand.NewChaCha8([32]byte{1}))
	randBytes := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	gens := map[string]func() []byte{
		"GenerateSecret":        func() []byte { return GenerateSecret().bytes() },
		"32 random bytes":       func() []byte { return randBytes(32) },
		"32 hex digits":         func() []byte { return []byte(hex.EncodeToString(randBytes(16))) },
		"32 upper hex digits":   func() []byte { return []byte(strings.ToUpper(hex.EncodeToString(randBytes(16)))) },
		"base64 of 32 bytes":    func() []byte { return []byte(base64.StdEncoding.EncodeToString(randBytes(32))) },
		"base64url of 24 bytes": func() []byte { return []byte(base64.RawURLEncoding.EncodeToString(randBytes(24))) },
		"40 alphanumerics": func() []byte {
			b := make([]byte, 40)
			for i := range b {
				b[i] = alnum[rng.IntN(len(alnum))]
			}
			return b
		},
	}
	for name, gen := range gens {
		for range 1000 {
			raw := gen()
			if err := Validate(raw); err != nil {
				t.Errorf("%s: %v", name, err)
				break
			}
		}
	}
}

func TestParseSecret(t *testing.T) {
	t.Parallel()
	raw := make([]byte, 32)
	rand.Read(raw)
	good := []string{
		base64.StdEncoding.EncodeToString(raw),
		base64.RawStdEncoding.EncodeToString(raw),
		base64.URLEncoding.EncodeToString(raw),
		base64.RawURLEncoding.EncodeToString(raw),
		"  " + base64.StdEncoding.EncodeToString(raw) + "\n",
	}
	for _, text := range good {
		s, err := ParseSecret(text)
		if err != nil || !bytes.Equal(s.bytes(), raw) {
			t.Errorf("ParseSecret(%q) = %v", text, err)
		}
		if s.Reveal() != base64.StdEncoding.EncodeToString(raw) {
			t.Errorf("Reveal does not give the standard base64 back")
		}
	}
	weakB64 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("ab"), 20))
	bad := []struct {
		text string
		want error
	}{
		{"", ErrMalformed},
		{"   ", ErrMalformed},
		{"not base64 at all!", ErrMalformed},
		{base64.StdEncoding.EncodeToString(raw)[:10] + "*", ErrMalformed},
		{"61oETzKXQAGaYdkL5gEmGeJJFuYh7EQnp2XdTP1o/Vo=", ErrSample},
		{"61oETzKXQAGaYdkL5gEmGeJJFuYh7EQnp2XdTP1o_Vo", ErrSample},
		{"changeme", ErrSample},
		{base64.StdEncoding.EncodeToString(raw[:20]), ErrTooShort},
		{weakB64, ErrWeak},
		{strings.Repeat("A", 3000), ErrMalformed},
	}
	for _, tc := range bad {
		_, err := ParseSecret(tc.text)
		if !errors.Is(err, tc.want) {
			t.Errorf("ParseSecret(%.40q) = %v; want %v", tc.text, err, tc.want)
		}
		if trimmed := strings.TrimSpace(tc.text); len(trimmed) > 8 && err != nil && strings.Contains(err.Error(), trimmed) {
			t.Errorf("error repeats the secret: %v", err)
		}
	}
}

// TestParseSecretRefusesWordsThatAreBase64: text typed as a secret that
// happens to be valid base64 decodes to random-looking bytes; it is judged
// as the text it is, through ParseSecret and through a keyring.
func TestParseSecretRefusesWordsThatAreBase64(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, text string }{
		{"words", "thisismysupersecretcookiekeyforproductionuse"},
		{"camel case and a year", "MySuperSecretCookieKeyForProductionUse2024ab"},
		{"placeholder repeated", "changemechangemechangemeplease1234567890abcd"},
		{"passphrase", "correcthorsebatterystaplecorrecthorsebattery"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := decodeBase64(tc.text); err != nil {
				t.Fatalf("the case is meant to be valid base64: %v", err)
			}
			if _, err := ParseSecret(tc.text); !errors.Is(err, ErrWeak) || !strings.Contains(err.Error(), "base64 text") {
				t.Errorf("ParseSecret = %v; want ErrWeak about the text", err)
			}
			if _, err := ParseKeyring("k1:" + tc.text); !errors.Is(err, ErrWeak) || strings.Contains(err.Error(), tc.text) {
				t.Errorf("ParseKeyring = %v; want ErrWeak, without the secret", err)
			}
		})
	}
}

// TestParseSecretAcceptsRandomText: the check on the text refuses none of
// the encodings that generators produce.
func TestParseSecretAcceptsRandomText(t *testing.T) {
	t.Parallel()
	rng := mrand.New(mrand.NewChaCha8([32]byte{2}))
	encs := map[string]func([]byte) string{
		"std":     base64.StdEncoding.EncodeToString,
		"raw std": base64.RawStdEncoding.EncodeToString,
		"url":     base64.URLEncoding.EncodeToString,
		"raw url": base64.RawURLEncoding.EncodeToString,
		"hex":     hex.EncodeToString, // openssl rand -hex 32, read as base64
	}
	raw := make([]byte, 32)
	for name, enc := range encs {
		for range 2000 {
			for i := range raw {
				raw[i] = byte(rng.Uint32())
			}
			if _, err := ParseSecret(enc(raw)); err != nil {
				t.Errorf("%s: %v", name, err)
				break
			}
		}
	}
}

// TestLoadSecret changes the environment, so it does not run in parallel.
func TestLoadSecret(t *testing.T) {
	s := GenerateSecret()
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, []byte(s.Reveal()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	weakFile := filepath.Join(dir, "weak")
	if err := os.WriteFile(weakFile, []byte("changeme\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Setenv("CS_TEST_A", s.Reveal())
	if got, err := LoadSecret("CS_TEST_A"); err != nil || !got.Equal(s) {
		t.Errorf("from the variable: %v", err)
	}
	t.Setenv("CS_TEST_B_FILE", file)
	if got, err := LoadSecret("CS_TEST_B"); err != nil || !got.Equal(s) {
		t.Errorf("from the file: %v", err)
	}
	if got, err := ReadSecretFile(file); err != nil || !got.Equal(s) {
		t.Errorf("ReadSecretFile: %v", err)
	}
	t.Setenv("CS_TEST_A_FILE", file)
	if _, err := LoadSecret("CS_TEST_A"); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "both") {
		t.Errorf("both set: %v", err)
	}
	_, err := LoadSecret("CS_TEST_UNSET")
	if !errors.Is(err, ErrNotSet) || !strings.Contains(err.Error(), "cmd/cookiesecret") || !strings.Contains(err.Error(), "CS_TEST_UNSET_FILE") {
		t.Errorf("unset: %v", err)
	}
	t.Setenv("CS_TEST_C", "changeme")
	if _, err := LoadSecret("CS_TEST_C"); !errors.Is(err, ErrSample) || !strings.Contains(err.Error(), "CS_TEST_C") {
		t.Errorf("sample value in the variable: %v", err)
	}
	t.Setenv("CS_TEST_D_FILE", weakFile)
	if _, err := LoadSecret("CS_TEST_D"); !errors.Is(err, ErrSample) {
		t.Errorf("sample value in the file: %v", err)
	}
	t.Setenv("CS_TEST_E_FILE", filepath.Join(dir, "missing"))
	if _, err := LoadSecret("CS_TEST_E"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestParseKeyring(t *testing.T) {
	t.Parallel()
	a, b := GenerateSecret(), GenerateSecret()
	ring, err := ParseKeyring("k2:" + a.Reveal() + ", k1:" + b.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	if ring.Current() != "k2" || strings.Join(ring.IDs(), " ") != "k2 k1" {
		t.Errorf("Current %q, IDs %v", ring.Current(), ring.IDs())
	}
	single, err := ParseKeyring(a.Reveal())
	if err != nil || single.Current() != "0" {
		t.Errorf("bare secret: %v, %v", single, err)
	}
	lines, err := ParseKeyring("new:" + a.Reveal() + "\nold:" + b.Reveal() + "\n")
	if err != nil || lines.Current() != "new" {
		t.Errorf("one per line: %v", err)
	}
	cases := []struct {
		name, text string
		want       error
		says       string
	}{
		{"empty", " , ", ErrMalformed, "empty"},
		{"duplicate id", "k:" + a.Reveal() + ",k:" + b.Reveal(), ErrMalformed, "twice"},
		{"duplicate secret", "k1:" + a.Reveal() + ",k2:" + a.Reveal(), ErrMalformed, "same secret"},
		{"bad id", "k/1:" + a.Reveal(), ErrMalformed, "key id"},
		{"long id", strings.Repeat("k", 33) + ":" + a.Reveal(), ErrMalformed, "key id"},
		{"missing id in a list", a.Reveal() + ",k1:" + b.Reveal(), ErrMalformed, "no key id"},
		{"weak second key", "k2:" + a.Reveal() + ",k1:" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", 32))), ErrWeak, `entry 2`},
		{"sample key", "k1:61oETzKXQAGaYdkL5gEmGeJJFuYh7EQnp2XdTP1o/Vo=", ErrSample, "Tornado"},
		{"too many", strings.Repeat("k:"+a.Reveal()+",", 17), ErrMalformed, "at most 16"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseKeyring(tc.text)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("ParseKeyring = %v; want %v saying %q", err, tc.want, tc.says)
			}
			if err != nil && (strings.Contains(err.Error(), a.Reveal()) || strings.Contains(err.Error(), b.Reveal())) {
				t.Errorf("error repeats a secret: %v", err)
			}
		})
	}
}

func TestLoadKeyring(t *testing.T) {
	a := GenerateSecret()
	file := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(file, []byte("k9:"+a.Reveal()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CS_RING_FILE", file)
	if ring, err := LoadKeyring("CS_RING"); err != nil || ring.Current() != "k9" {
		t.Errorf("LoadKeyring from file: %v", err)
	}
	if ring, err := ReadKeyringFile(file); err != nil || ring.Current() != "k9" {
		t.Errorf("ReadKeyringFile: %v", err)
	}
	t.Setenv("CS_RING2", "k1:"+base64.StdEncoding.EncodeToString([]byte("__TODO:_GENERATE_YOUR_OWN_RANDOM_VALUE_HERE__")))
	if _, err := LoadKeyring("CS_RING2"); !errors.Is(err, ErrSample) {
		t.Errorf("base64 of Tornado's placeholder: %v", err)
	}
	if _, err := LoadKeyring("CS_RING_UNSET"); !errors.Is(err, ErrNotSet) {
		t.Errorf("unset: %v", err)
	}
}

func TestNewKeyringRefuses(t *testing.T) {
	t.Parallel()
	s := GenerateSecret()
	if _, err := NewKeyring(Key{ID: "k1"}); err == nil {
		t.Error("zero secret accepted")
	}
	if _, err := NewKeyring(Key{ID: "", Secret: s}); err == nil {
		t.Error("empty id accepted")
	}
	if _, err := NewKeyring(Key{ID: "a.b", Secret: s}); err == nil {
		t.Error("id with a dot accepted")
	}
}

// TestDerivedKeysAreSeparate: every purpose and key id gets its own key,
// none equal to the secret.
func TestDerivedKeysAreSeparate(t *testing.T) {
	t.Parallel()
	s := GenerateSecret()
	seen := map[string]string{hex.EncodeToString(s.bytes()): "the secret"}
	for _, id := range []string{"k1", "k2"} {
		for _, p := range []string{purposeCookieMAC, purposeEncryptedCookieMAC, purposeEncryptedCookieAES, purposeXSRFCookieMAC, purposeXSRFBind} {
			k := hex.EncodeToString(derive(s, p, id))
			if prev, dup := seen[k]; dup {
				t.Errorf("%s/%s has the same key as %s", p, id, prev)
			}
			seen[k] = p + "/" + id
		}
	}
}

// An entry that fails to parse is named by its position: when someone
// pastes a raw secret that contains a colon, the part before it is secret.
func TestParseKeyringErrorHidesSecretPrefix(t *testing.T) {
	t.Parallel()
	_, err := ParseKeyring("hunter2x:changeme")
	if err == nil {
		t.Fatal("weak keyring accepted")
	}
	if strings.Contains(err.Error(), "hunter2x") || !strings.Contains(err.Error(), "entry 1") {
		t.Errorf("error %q", err)
	}
}

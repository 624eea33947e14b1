package cookiesecret

import (
	"bytes"
	"fmt"
	"math"
	"strings"
)

// minEstimatedBits is the least estimated entropy accepted for a secret.
// Random keys are far above it (32 random bytes: about 256 bits; 32 hex
// digits: 128 bits; 44 base64 characters: about 280 bits); sentences, word
// lists with separators and keyboard walks are below it.
const minEstimatedBits = 100

// Validate reports why raw is not fit to be a secret key, or nil. It
// refuses, with an error that says why and never repeats the secret:
//
//   - published sample values: "secret", "changeme", Tornado's
//     documentation placeholder and demo key, the keys of gorilla's and
//     other frameworks' examples ([ErrSample]);
//   - fewer than [MinSecretLen] bytes ([ErrTooShort]);
//   - one repeated byte, a repeated pattern of up to half the length, fewer
//     than 8 distinct bytes, and text made of words, years and keyboard
//     walks whose estimated entropy is under 100 bits ([ErrWeak]).
//
// The estimate is deliberately simple (a dictionary of common and
// secret-related words, character classes, runs): it catches what people
// type, not every bad key. Generate keys with [GenerateSecret].
func Validate(raw []byte) error {
	if len(raw) > maxSecretLen {
		return fmt.Errorf("%w: %d bytes, more than %d", ErrMalformed, len(raw), maxSecretLen)
	}
	if name := sampleName(raw); name != "" {
		return fmt.Errorf("%w: it is %s; generate a secret with: %s", ErrSample, name, generateCommand)
	}
	if len(raw) < MinSecretLen {
		return fmt.Errorf("%w: %d bytes, need at least %d; generate one with: %s",
			ErrTooShort, len(raw), MinSecretLen, generateCommand)
	}
	return weakness(raw)
}

// weakness reports why raw, which is not empty, is predictable: one
// repeated byte, a repeated pattern, few distinct bytes or a low entropy
// estimate.
func weakness(raw []byte) error {
	if bytes.Count(raw, raw[:1]) == len(raw) {
		return fmt.Errorf("%w: it is one byte repeated", ErrWeak)
	}
	if p := period(raw); p <= len(raw)/2 {
		return fmt.Errorf("%w: it repeats a %d-byte pattern", ErrWeak, p)
	}
	if d := distinct(raw); d < 8 {
		return fmt.Errorf("%w: it uses only %d distinct byte values", ErrWeak, d)
	}
	if bits, words := estimateBits(raw); bits < minEstimatedBits {
		why := "it is built from too small a set of characters"
		if words > 0 {
			why = fmt.Sprintf("it is made of %d dictionary words or keyboard patterns plus little else", words)
		}
		return fmt.Errorf("%w: estimated entropy %d bits, need %d: %s; generate one with: %s",
			ErrWeak, int(bits), minEstimatedBits, why, generateCommand)
	}
	return nil
}

// period returns the smallest p such that raw is a prefix of raw[:p]
// repeated (the classic prefix-function result); len(raw) if none shorter.
func period(raw []byte) int {
	n := len(raw)
	pi := make([]int, n)
	for i := 1; i < n; i++ {
		k := pi[i-1]
		for k > 0 && raw[i] != raw[k] {
			k = pi[k-1]
		}
		if raw[i] == raw[k] {
			k++
		}
		pi[i] = k
	}
	return n - pi[n-1]
}

func distinct(raw []byte) int {
	var seen [256]bool
	d := 0
	for _, c := range raw {
		if !seen[c] {
			seen[c] = true
			d++
		}
	}
	return d
}

// estimateBits is a small zxcvbn-like estimate: dictionary words and
// keyboard walks cost about 10 bits each, runs of repeated or consecutive
// characters 1 bit per character, repeated separators 2 bits, four-digit
// years 7 bits, and every other character log2 of the alphabet its
// character classes span.
func estimateBits(raw []byte) (bits float64, words int) {
	perChar := math.Log2(float64(alphabet(raw)))
	lower := leetLower(raw)
	var lastSep byte
	for i := 0; i < len(raw); {
		if n := wordAt(lower[i:]); n > 0 {
			bits += 10
			words++
			i += n
			continue
		}
		if i+4 <= len(raw) && isYear(raw[i:i+4]) {
			bits += 7
			i += 4
			continue
		}
		c := raw[i]
		switch {
		case i >= 2 && run(raw[i-2], raw[i-1], c):
			bits++
		case isSeparator(c) && c == lastSep:
			bits += 2
		default:
			bits += perChar
		}
		if isSeparator(c) {
			lastSep = c
		}
		i++
	}
	return bits, words
}

// run reports whether a, b, c repeat or count up or down by one.
func run(a, b, c byte) bool {
	d1, d2 := int(b)-int(a), int(c)-int(b)
	return d1 == d2 && d1 >= -1 && d1 <= 1
}

func isSeparator(c byte) bool {
	switch c {
	case ' ', '-', '_', '.', ',', ':', ';', '/', '+', '|', '~':
		return true
	}
	return false
}

func isYear(b []byte) bool {
	return (b[0] == '1' && b[1] == '9' || b[0] == '2' && b[1] == '0') &&
		b[2] >= '0' && b[2] <= '9' && b[3] >= '0' && b[3] <= '9'
}

// alphabet returns the size of the alphabet raw's characters come from:
// 256 if any byte is not printable ASCII, 16 for hex digits, else the sum
// of the classes present (26 lower, 26 upper, 10 digits, and 4 for the
// base64 symbols or 33 for any other printable symbol).
func alphabet(raw []byte) int {
	var lower, upper, digit, hexOnlyLower, hexOnlyUpper, b64sym, other bool
	hexOnlyLower, hexOnlyUpper = true, true
	for _, c := range raw {
		switch {
		case c >= 'a' && c <= 'z':
			lower = true
			hexOnlyUpper = false
			if c > 'f' {
				hexOnlyLower = false
			}
		case c >= 'A' && c <= 'Z':
			upper = true
			hexOnlyLower = false
			if c > 'F' {
				hexOnlyUpper = false
			}
		case c >= '0' && c <= '9':
			digit = true
		case c == '+' || c == '/' || c == '-' || c == '_' || c == '=':
			b64sym = true
		case c >= 0x20 && c < 0x7f:
			other = true
		default:
			return 256
		}
	}
	if !b64sym && !other && (lower || upper) && (hexOnlyLower || hexOnlyUpper) {
		return 16
	}
	n := 0
	if lower {
		n += 26
	}
	if upper {
		n += 26
	}
	if digit {
		n += 10
	}
	switch {
	case other:
		n += 33
	case b64sym:
		n += 4
	}
	return max(n, 2)
}

// leetLower lowercases ASCII letters and maps common digit and symbol
// substitutions (p4ssw0rd, s3cr3t, $ecret) to letters, for word matching.
func leetLower(raw []byte) []byte {
	out := make([]byte, len(raw))
	for i, c := range raw {
		switch {
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case c == '0':
			c = 'o'
		case c == '1' || c == '!':
			c = 'i'
		case c == '3':
			c = 'e'
		case c == '4' || c == '@':
			c = 'a'
		case c == '5' || c == '$':
			c = 's'
		case c == '7':
			c = 't'
		}
		out[i] = c
	}
	return out
}

// wordAt returns the length of the longest dictionary word at the start
// of s, or 0.
func wordAt(s []byte) int {
	for n := min(len(s), 14); n >= 3; n-- {
		if isWord(string(s[:n])) {
			return n
		}
	}
	return 0
}

// isWord reports whether w (lowercase) is in the small built-in
// dictionary: words that people put in secrets, common English words and
// keyboard walks.
func isWord(w string) bool {
	switch w {
	case "the", "and", "for", "you", "our", "key", "app", "api", "web", "dev", "foo", "bar", "baz",
		"qux", "abc", "xyz", "qwe", "asd", "zxc", "god", "sex", "pwd", "pass", "word", "very", "this",
		"that", "with", "from", "your", "here", "there", "mine", "some", "long", "more", "much", "make",
		"sure", "safe", "test", "demo", "temp", "todo", "fixme", "none", "null", "true", "false", "yes",
		"auth", "hash", "sign", "salt", "seed", "code", "data", "site", "user", "name", "admin", "root",
		"love", "hello", "world", "welcome", "please", "change", "changeme", "replace", "insert", "enter",
		"secret", "secrets", "secure", "security", "password", "passwd", "passphrase", "private",
		"cookie", "cookies", "session", "sessions", "token", "tokens", "signing", "signature", "random",
		"string", "value", "values", "default", "example", "sample", "dummy", "local", "localhost",
		"develop", "development", "staging", "stage", "prod", "production", "release", "server",
		"client", "master", "main", "super", "supersecret", "topsecret", "letmein", "trustno", "monkey",
		"dragon", "shadow", "sunshine", "princess", "football", "baseball", "iloveyou", "qwerty",
		"qwertz", "azerty", "asdf", "asdfgh", "zxcv", "qwer", "uiop", "hjkl", "tornado", "django",
		"flask", "rails", "express", "gorilla", "golang", "python", "node", "java", "keyboard", "cat",
		"dog", "generate", "generated", "own", "new", "old", "one", "two", "three", "four", "five",
		"six", "seven", "eight", "nine", "ten", "first", "second", "last", "good", "best", "great",
		"nice", "cool", "awesome", "magic", "unique", "strong", "hard", "guess", "cannot", "nobody",
		"will", "never", "ever", "know", "knows", "what", "when", "where", "who", "how", "why", "not",
		"can", "all", "are", "was", "but", "out", "get", "set", "use", "used", "using", "put",
		"have", "has", "had", "just", "like", "time", "year", "day", "days", "company", "project",
		"service", "account", "login", "logout", "access", "encrypt", "encryption", "decrypt", "block",
		"blocks", "crypto", "hmac", "sha", "aes", "rsa", "xsrf", "csrf", "jwt", "oauth", "bearer",
		"lot", "lots", "little", "big", "small", "another", "other", "same", "thing", "things",
		"stuff", "blah", "lorem", "ipsum", "dolor", "amet", "quick", "brown", "fox", "jumps", "over",
		"lazy", "correct", "horse", "battery", "staple", "apple", "banana", "orange", "summer",
		"winter", "spring", "autumn", "january", "monday", "friday", "freedom", "internet", "computer",
		"mysecret", "mykey", "secretkey", "shh", "shhh", "shhhh", "shhhhh", "wow", "lol", "omg",
		"todos", "changeit", "replaceme", "fill", "filler", "placeholder", "myapp", "webapp",
		"application", "store", "shop", "blog", "chat", "mail", "email", "home", "office", "team",
		"beego", "xsrfkey", "hunter", "abcdef", "abcdefg", "abcdefgh", "qazwsx",
		"zaq", "wsx", "edc", "rfv", "tgb", "yhn", "ujm":
		return true
	}
	return false
}

// sampleName names the published sample value raw is (compared after
// trimming white space and quotes, case-insensitively), or returns "".
func sampleName(raw []byte) string {
	s := strings.ToLower(strings.Trim(string(raw), " \t\r\n\"'`"))
	if strings.HasPrefix(s, "django-insecure-") {
		return "a Django development key (django-insecure- prefix)"
	}
	switch s {
	case "__todo:_generate_your_own_random_value_here__":
		return "Tornado's documentation placeholder"
	case "61oetzkxqagaydkl5gemgejjfuyh7eqnp2xdtp1o/vo=", "61oetzkxqagaydkl5gemgejjfuyh7eqnp2xdtp1o":
		return "the cookie_secret of Tornado's demos (also beego's sample XSRF key)"
	case "very-secret", "a-lot-secret", "something-very-secret", "super-secret-key",
		"32-byte-long-auth-key", "secret-key", "your-secret-key", "session-key":
		return "a key from gorilla's (securecookie, sessions, csrf) examples"
	case "keyboard cat":
		return "the key of express-session's examples"
	case "secret", "changeme", "change-me", "change_me", "changeit", "password", "s3cr3t",
		"supersecret", "topsecret", "mysecret", "secretkey", "secret_key", "cookie_secret",
		"cookie-secret", "cookiesecret", "default", "example", "test", "development", "insecure",
		"replace-me", "replaceme", "todo", "xxx", "your_secret_key", "your-secret-key-here",
		"notasecret", "not-a-secret", "shhhhh":
		return "a well-known placeholder value"
	}
	return ""
}

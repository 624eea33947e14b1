package cookiesecret

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// MinSecretLen is the shortest secret accepted, in bytes: 256 bits, the
// size of the HMAC-SHA256 and AES-256 keys derived from it.
const MinSecretLen = 32

// maxSecretLen bounds what is parsed, so a huge value in a variable or a
// file costs nothing.
const maxSecretLen = 1024

// maxFileLen bounds what ReadSecretFile and ReadKeyringFile read.
const maxFileLen = 64 << 10

// generateCommand is what error messages tell the operator to run.
const generateCommand = "go run github.com/stormcellar/stormcellar/cookiesecret/cmd/cookiesecret"

// Secret is a secret key. It never prints: String, GoString, Format (every
// verb, %x and %d included), LogValue, MarshalJSON and MarshalText all give
// "[REDACTED]", and the bytes are sealed (see below) so that even a struct
// holding a Secret in an unexported field, which fmt prints without calling
// its methods, shows an address, not the key.
//
// The zero Secret is empty and is refused wherever a secret is needed. A
// Secret is immutable and safe for concurrent use.
type Secret struct {
	k sealed[[]byte]
}

// sealed holds key material where fmt cannot reach it. fmt prints the
// fields of values it cannot call methods on (unexported fields), and for
// a verb other than %v it dereferences a pointer to a struct, slice or map
// and prints what it points to, at any depth. It stops at a pointer to a
// pointer, printing an address. Every type here that holds keys keeps them
// in a sealed.
type sealed[T any] struct{ pp **T }

func seal[T any](v T) sealed[T] {
	p := &v
	return sealed[T]{&p}
}

// get returns the value, or T's zero value for a zero sealed.
func (s sealed[T]) get() (v T) {
	if s.pp == nil {
		return v
	}
	return **s.pp
}

// GenerateSecret returns a new random secret of [MinSecretLen] bytes from
// crypto/rand (which does not fail on supported platforms).
func GenerateSecret() Secret {
	b := make([]byte, MinSecretLen)
	_, _ = rand.Read(b)
	return Secret{seal(b)}
}

// NewSecret validates raw (see [Validate]) and returns it as a Secret. It
// keeps a copy: later changes to raw do not affect the Secret.
//
// Use it for keys that are raw bytes, such as a Tornado cookie_secret,
// which Tornado uses as the text's UTF-8 bytes:
//
//	s, err := cookiesecret.NewSecret([]byte(os.Getenv("TORNADO_COOKIE_SECRET")))
func NewSecret(raw []byte) (Secret, error) {
	if err := Validate(raw); err != nil {
		return Secret{}, err
	}
	return Secret{seal(append([]byte(nil), raw...))}, nil
}

// InsecureUncheckedSecret returns raw as a Secret without validating it.
// It exists for one case: reading values signed by an existing application
// (a Tornado app during a migration) whose secret is weak, until that
// secret is rotated. A weak secret lets anyone who guesses it forge every
// cookie; never use this for new keys.
func InsecureUncheckedSecret(raw []byte) Secret {
	return Secret{seal(append([]byte(nil), raw...))}
}

// ParseSecret decodes a secret written in base64 (standard or URL
// alphabet, with or without padding; surrounding white space is ignored)
// and validates it. Both the text and the decoded bytes are checked
// against published sample values and for weakness, so words that happen
// to be valid base64 are refused too.
//
// The error says why a secret is refused but never repeats it.
func ParseSecret(text string) (Secret, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return Secret{}, fmt.Errorf("%w: empty secret", ErrMalformed)
	}
	if len(text) > maxSecretLen*2 {
		return Secret{}, fmt.Errorf("%w: secret text is %d bytes, more than %d", ErrMalformed, len(text), maxSecretLen*2)
	}
	if name := sampleName([]byte(text)); name != "" {
		return Secret{}, fmt.Errorf("%w: it is %s; generate a secret with: %s", ErrSample, name, generateCommand)
	}
	raw, err := decodeBase64(text)
	if err != nil {
		return Secret{}, fmt.Errorf("%w: secret is not base64 (generate one with: %s)", ErrMalformed, generateCommand)
	}
	// The same sample written in another base64 alphabet or without
	// padding is the same key.
	if name := sampleName([]byte(base64.StdEncoding.EncodeToString(raw))); name != "" {
		return Secret{}, fmt.Errorf("%w: it is %s; generate a secret with: %s", ErrSample, name, generateCommand)
	}
	s, err := NewSecret(raw)
	if err != nil {
		return Secret{}, err
	}
	// Words typed as a secret are often valid base64 too, and decode to
	// bytes that look random: judge the text as well, in the standard form
	// that Reveal gives back (the decoder ignores line breaks).
	if err := weakness([]byte(base64.StdEncoding.EncodeToString(raw))); err != nil {
		return Secret{}, fmt.Errorf("its base64 text: %w", err)
	}
	return s, nil
}

// decodeBase64 accepts the standard and URL alphabets, padded or not.
func decodeBase64(text string) ([]byte, error) {
	text = strings.TrimRight(text, "=")
	enc := base64.RawStdEncoding
	if strings.ContainsAny(text, "-_") {
		enc = base64.RawURLEncoding
	}
	return enc.Strict().DecodeString(text)
}

// LoadSecret reads the secret from the environment variable name, or,
// when name is unset or empty, from the file named by the variable
// name+"_FILE" (the convention for Docker and Kubernetes secrets). Setting
// both is an error, as is setting neither. The text is parsed with
// [ParseSecret].
func LoadSecret(name string) (Secret, error) {
	text, err := loadText(name)
	if err != nil {
		return Secret{}, err
	}
	s, err := ParseSecret(text)
	if err != nil {
		return Secret{}, fmt.Errorf("%s: %w", name, err)
	}
	return s, nil
}

// ReadSecretFile reads a secret from a file (at most 64 KiB, surrounding
// white space ignored) and parses it with [ParseSecret].
func ReadSecretFile(path string) (Secret, error) {
	text, err := readSmallFile(path)
	if err != nil {
		return Secret{}, err
	}
	s, err := ParseSecret(text)
	if err != nil {
		return Secret{}, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

func loadText(name string) (string, error) {
	val := os.Getenv(name)
	file := os.Getenv(name + "_FILE")
	switch {
	case val != "" && file != "":
		return "", fmt.Errorf("%w: both %s and %s_FILE are set; set one", ErrMalformed, name, name)
	case val != "":
		return val, nil
	case file != "":
		return readSmallFile(file)
	}
	return "", fmt.Errorf("%w: set %s (or %s_FILE to a file holding it); generate one with: %s",
		ErrNotSet, name, name, generateCommand)
}

func readSmallFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("cookiesecret: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileLen+1))
	if err != nil {
		return "", fmt.Errorf("cookiesecret: %w", err)
	}
	if len(b) > maxFileLen {
		return "", fmt.Errorf("%w: %s is larger than %d bytes", ErrMalformed, path, maxFileLen)
	}
	return strings.TrimSpace(string(b)), nil
}

// IsZero reports whether s is the zero (empty) Secret.
func (s Secret) IsZero() bool { return len(s.bytes()) == 0 }

// Len returns the length of the secret in bytes.
func (s Secret) Len() int { return len(s.bytes()) }

// Equal reports whether s and o hold the same bytes, in constant time.
func (s Secret) Equal(o Secret) bool {
	return subtle.ConstantTimeCompare(s.bytes(), o.bytes()) == 1
}

// Reveal returns the secret in standard base64, the form [ParseSecret] and
// [ParseKeyring] read. It is the one way to get the secret out, for
// writing it where it is kept (a secret store, a protected file); never
// log it.
func (s Secret) Reveal() string {
	return base64.StdEncoding.EncodeToString(s.bytes())
}

func (s Secret) bytes() []byte { return s.k.get() }

const redactedText = "[REDACTED]"

// String returns "[REDACTED]".
func (s Secret) String() string { return redactedText }

// GoString returns a redacted Go-syntax form.
func (s Secret) GoString() string { return "cookiesecret.Secret{" + redactedText + "}" }

// Format prints "[REDACTED]" for every verb (the Go-syntax form for %#v).
func (s Secret) Format(f fmt.State, verb rune) { formatRedacted(f, verb, s.GoString()) }

// LogValue returns "[REDACTED]" for log/slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redactedText) }

// MarshalJSON returns "[REDACTED]" as a JSON string.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redactedText + `"`), nil }

// MarshalText returns "[REDACTED]", so text encoders (YAML, TOML, flags)
// cannot write the secret either.
func (s Secret) MarshalText() ([]byte, error) { return []byte(redactedText), nil }

func formatRedacted(f fmt.State, verb rune, goSyntax string) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, goSyntax)
		return
	}
	_, _ = io.WriteString(f, redactedText)
}

// describer gives the types that hold key material (Keyring, Cookie,
// Tornado, XSRF) the same redacting print methods: they print a short
// description with key ids only, never a key.
type describer struct{ desc string }

// String returns a description without key material.
func (d describer) String() string { return d.desc }

// GoString returns the same description.
func (d describer) GoString() string { return d.desc }

// Format prints the description for every verb.
func (d describer) Format(f fmt.State, verb rune) { _, _ = io.WriteString(f, d.desc) }

// LogValue returns the description for log/slog.
func (d describer) LogValue() slog.Value { return slog.StringValue(d.desc) }

// MarshalJSON returns the description as a JSON string.
func (d describer) MarshalJSON() ([]byte, error) { return json.Marshal(d.desc) }

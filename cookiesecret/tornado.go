package cookiesecret

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// TornadoOptions configure a [Tornado] codec. Set either Secret (Tornado's
// cookie_secret as a string) or Secrets with KeyVersion (cookie_secret as a
// dict plus the key_version setting). Every other zero value is the safe
// setting.
type TornadoOptions struct {
	// Secret is the application's cookie_secret when it is a single
	// string: its UTF-8 bytes, as Tornado uses them ([NewSecret] with
	// []byte(text)). Like Tornado, a single secret verifies a v2 value
	// whatever key version it names, and signs with key version 0.
	Secret Secret
	// Secrets is cookie_secret when it is a dict {key_version: secret}.
	// A value naming a version not in Secrets is refused with
	// [ErrUnknownKey].
	Secrets map[int]Secret
	// KeyVersion is the key_version setting: the entry of Secrets that
	// signs. Ignored with Secret.
	KeyVersion int
	// MaxAge is Tornado's max_age_days: older values are refused with
	// [ErrExpired] (a value exactly MaxAge old is accepted, as in Tornado).
	// Default [DefaultMaxAge] (31 days).
	MaxAge time.Duration
	// MaxClockSkew is how far in the future a timestamp may be before the
	// value is refused with [ErrFuture]; Tornado accepts any future v2
	// timestamp, and v1 ones up to 31 days ahead. Default
	// [DefaultMaxClockSkew] (one minute); negative allows none.
	MaxClockSkew time.Duration
	// MaxLength is the longest value decoded, in bytes; longer ones are
	// refused with [ErrTooLarge] before any cryptography. Default
	// [DefaultMaxLength] (4096).
	MaxLength int
	// InsecureAllowV1 accepts v1 values and lets Version be 1. Tornado's
	// default min_version is 1; this codec's is 2. Only valid with Secret:
	// Tornado cannot check v1 values against a dict either (it fails an
	// assertion and answers 500).
	//
	// A v1 value is "base64|timestamp|signature", signed with HMAC-SHA1
	// over the cookie name, the base64 value and the timestamp run
	// together without delimiters. Tornado's digit-shifting check (a
	// timestamp may not start with a zero) guards the boundary between
	// the value and the timestamp; nothing guards the one between the
	// name and the value, in Tornado or here. So when one cookie name is
	// another followed by four characters of the base64 alphabet (letters,
	// digits, '+', '/'), or by any multiple of four, a value signed for
	// either name verifies as a value of the other, with other bytes: a
	// value signed for "userdata" verifies as one of "user" once "data" is
	// put in front of its base64, and decodes to the 3 bytes that "data"
	// encodes followed by the original value; a value signed for "user"
	// whose base64 starts with "data" verifies as one of "userdata" once
	// "data" is cut off, and decodes to the original value without its
	// first 3 bytes. Names that differ in any other way ("user" and
	// "users", "user" and "user.abc") cannot be swapped: what moves does
	// not leave valid base64. The codec cannot tell such a value from a
	// genuine one without knowing every name ever signed with the secret,
	// so it accepts it, as Tornado does. v2 values and [Cookie] values
	// sign the name as a field of its own and never verify under another
	// name. With v1 on, give no two cookies signed with this secret names
	// related like this, or move them to v2.
	InsecureAllowV1 bool
	// Version is the format Encode writes: 2 (the default, Tornado's
	// DEFAULT_SIGNED_VALUE_VERSION) or 1 (needs InsecureAllowV1).
	Version int
	// Now is the clock, like Tornado's clock argument. Default time.Now.
	Now func() time.Time
}

// Tornado encodes and decodes Tornado's signed values (the format of
// set_signed_cookie / get_signed_cookie, alias set_secure_cookie,
// create_signed_value and decode_signed_value) byte for byte, so a Go
// service can read and write the cookies of a Tornado application during
// a migration. Create it with [NewTornado]; it is immutable and safe for
// concurrent use.
//
// Where it differs from Tornado it is stricter, and it never panics:
//
//   - future timestamps are refused ([ErrFuture]), for v2 too;
//   - v1 values are refused unless TornadoOptions.InsecureAllowV1 is set;
//   - a v1 or garbage value read with a dict secret is refused
//     ([ErrVersion]) where Tornado fails an assertion (HTTP 500);
//   - lengths, key versions and timestamps must be plain decimal numbers,
//     where Python's int() also takes signs, spaces and underscores (only
//     a key holder can write such values, as they are signed);
//   - the errors tell expired, future, tampered and unknown key apart for
//     the log, where Tornado returns None for all of them (and logs v1
//     failures with the whole cookie value).
//
// Values are signed, not encrypted: the client can read them.
type Tornado struct {
	describer
	single     Secret
	versioned  map[int]Secret
	keyVersion int
	maxAge     time.Duration
	maxSkew    time.Duration
	maxLength  int
	version    int
	allowV1    bool
	now        func() time.Time
}

// NewTornado returns a codec for opts.
func NewTornado(opts TornadoOptions) (*Tornado, error) {
	t := &Tornado{
		single:     opts.Secret,
		keyVersion: opts.KeyVersion,
		maxAge:     opts.MaxAge,
		maxSkew:    opts.MaxClockSkew,
		maxLength:  opts.MaxLength,
		version:    opts.Version,
		allowV1:    opts.InsecureAllowV1,
		now:        opts.Now,
	}
	switch {
	case !opts.Secret.IsZero() && len(opts.Secrets) > 0:
		return nil, errors.New("cookiesecret: TornadoOptions: set Secret or Secrets, not both")
	case opts.Secret.IsZero() && len(opts.Secrets) == 0:
		return nil, errors.New("cookiesecret: TornadoOptions: Secret or Secrets is required")
	case len(opts.Secrets) > 0:
		if len(opts.Secrets) > maxKeys {
			return nil, fmt.Errorf("cookiesecret: TornadoOptions: %d secrets, at most %d", len(opts.Secrets), maxKeys)
		}
		t.versioned = make(map[int]Secret, len(opts.Secrets))
		for v, s := range opts.Secrets {
			if v < 0 {
				return nil, fmt.Errorf("cookiesecret: TornadoOptions: negative key version %d", v)
			}
			if s.IsZero() {
				return nil, fmt.Errorf("cookiesecret: TornadoOptions: key version %d has no secret", v)
			}
			t.versioned[v] = s
		}
		if _, ok := t.versioned[opts.KeyVersion]; !ok {
			return nil, fmt.Errorf("cookiesecret: TornadoOptions: KeyVersion %d is not in Secrets", opts.KeyVersion)
		}
		if opts.InsecureAllowV1 {
			return nil, errors.New("cookiesecret: TornadoOptions: v1 values cannot be checked against versioned Secrets")
		}
	}
	switch t.version {
	case 0:
		t.version = 2
	case 2:
	case 1:
		if !opts.InsecureAllowV1 {
			return nil, errors.New("cookiesecret: TornadoOptions: Version 1 needs InsecureAllowV1")
		}
	default:
		return nil, fmt.Errorf("cookiesecret: TornadoOptions: unsupported Version %d", t.version)
	}
	if t.maxAge == 0 {
		t.maxAge = DefaultMaxAge
	}
	if t.maxAge < 0 {
		return nil, fmt.Errorf("cookiesecret: TornadoOptions: negative MaxAge %v", t.maxAge)
	}
	switch {
	case t.maxSkew == 0:
		t.maxSkew = DefaultMaxClockSkew
	case t.maxSkew < 0:
		t.maxSkew = 0
	}
	switch {
	case t.maxLength == 0:
		t.maxLength = DefaultMaxLength
	case t.maxLength < 64:
		return nil, fmt.Errorf("cookiesecret: TornadoOptions: MaxLength %d is below 64 bytes", t.maxLength)
	}
	if t.now == nil {
		t.now = time.Now
	}
	desc := "cookiesecret.Tornado{version: " + strconv.Itoa(t.version)
	if t.versioned != nil {
		vs := make([]int, 0, len(t.versioned))
		for v := range t.versioned {
			vs = append(vs, v)
		}
		slices.Sort(vs)
		desc += ", key version: " + strconv.Itoa(t.keyVersion) + ", key versions: " + fmt.Sprint(vs)
	}
	t.describer = describer{desc + "}"}
	return t, nil
}

// Encode returns the signed value for cookie name and value, exactly as
// Tornado's create_signed_value with the same secret, clock, version and
// key_version. Tornado sends it in double quotes (Python's SimpleCookie
// quotes '=' and '/'); Go sends it bare; both read either form.
func (t *Tornado) Encode(name string, value []byte) (string, error) {
	if err := (&http.Cookie{Name: name, Value: "x"}).Valid(); err != nil {
		return "", fmt.Errorf("cookiesecret: Tornado cookie name %q: %w", name, err)
	}
	ts := strconv.FormatInt(t.now().Unix(), 10)
	b64 := base64.StdEncoding.EncodeToString(value)
	var out []byte
	if t.version == 1 {
		out = append(out, b64...)
		out = append(out, '|')
		out = append(out, ts...)
		out = append(out, '|')
		out = append(out, signV1(t.single.bytes(), name, b64, ts)...)
	} else {
		secret, kv := t.single, 0
		if t.versioned != nil {
			secret, kv = t.versioned[t.keyVersion], t.keyVersion
		}
		out = append(out, "2|"...)
		for _, f := range [...]string{strconv.Itoa(kv), ts, name, b64} {
			out = strconv.AppendInt(out, int64(len(f)), 10)
			out = append(out, ':')
			out = append(out, f...)
			out = append(out, '|')
		}
		out = append(out, signV2(secret.bytes(), out)...)
	}
	if len(out) > t.maxLength {
		return "", fmt.Errorf("%w: Tornado value for %q would be %d bytes, over the %d-byte limit", ErrTooLarge, name, len(out), t.maxLength)
	}
	return string(out), nil
}

// Decode verifies a Tornado signed value for cookie name and returns the
// value, where Tornado's decode_signed_value would return it (with the
// stricter rules listed on [Tornado]). A value in double quotes, as
// Tornado sends it, is accepted. Errors match [ErrInvalid] and one of
// [ErrTooLarge], [ErrVersion], [ErrTampered], [ErrUnknownKey],
// [ErrExpired] or [ErrFuture].
func (t *Tornado) Decode(name, value string) ([]byte, error) {
	if len(value) > t.maxLength {
		return nil, fmt.Errorf("%w: Tornado value for %q is %d bytes, over the %d-byte limit", ErrTooLarge, name, len(value), t.maxLength)
	}
	if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
		value = value[1 : len(value)-1]
	}
	if value == "" {
		return nil, fmt.Errorf("%w: empty Tornado value for %q", ErrTampered, name)
	}
	switch v := tornadoVersion(value); {
	case v == 1 && t.allowV1:
		return t.decodeV1(name, value)
	case v == 2:
		return t.decodeV2(name, value)
	default:
		return nil, fmt.Errorf("%w: Tornado value for %q has version %d", ErrVersion, name, v)
	}
}

// tornadoVersion is Tornado's _get_version: a value matching
// ^([1-9][0-9]*)\|(.*)$ has the version of its number, unless that is over
// 999; any other value is v1. In Python's re, '.' does not match a newline
// and '$' also matches before a final newline.
func tornadoVersion(value string) int {
	prefix, rest, ok := strings.Cut(value, "|")
	if !ok || prefix == "" || prefix[0] == '0' || len(prefix) > 3 {
		return 1
	}
	if i := strings.IndexByte(rest, '\n'); i >= 0 && i != len(rest)-1 {
		return 1
	}
	n := 0
	for i := 0; i < len(prefix); i++ {
		c := prefix[i]
		if c < '0' || c > '9' {
			return 1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

func (t *Tornado) decodeV2(name, value string) ([]byte, error) {
	rest := value[2:]
	var fields [4]string
	for i := range fields {
		var ok bool
		fields[i], rest, ok = consumeField(rest)
		if !ok {
			return nil, fmt.Errorf("%w: Tornado value for %q: malformed field %d", ErrTampered, name, i+1)
		}
	}
	kvField, tsField, nameField, valueField := fields[0], fields[1], fields[2], fields[3]
	sig := rest
	kv, ok := decimal(kvField, 9)
	if !ok {
		return nil, fmt.Errorf("%w: Tornado value for %q: malformed key version", ErrTampered, name)
	}
	secret := t.single
	if t.versioned != nil {
		var found bool
		if secret, found = t.versioned[int(kv)]; !found {
			return nil, fmt.Errorf("%w: Tornado value for %q names key version %d", ErrUnknownKey, name, kv)
		}
	}
	signed := value[:len(value)-len(sig)]
	if subtle.ConstantTimeCompare([]byte(sig), signV2(secret.bytes(), []byte(signed))) != 1 {
		return nil, fmt.Errorf("%w: Tornado value for %q, key version %d: bad signature", ErrTampered, name, kv)
	}
	if nameField != name {
		return nil, fmt.Errorf("%w: Tornado value for %q was signed for another cookie name", ErrTampered, name)
	}
	ts, ok := decimal(tsField, 18)
	if !ok {
		return nil, fmt.Errorf("%w: Tornado value for %q: malformed timestamp", ErrTampered, name)
	}
	if err := t.checkTime(name, ts); err != nil {
		return nil, err
	}
	out, err := base64.StdEncoding.DecodeString(valueField)
	if err != nil {
		return nil, fmt.Errorf("%w: Tornado value for %q: value is not base64", ErrTampered, name)
	}
	return out, nil
}

func (t *Tornado) decodeV1(name, value string) ([]byte, error) {
	parts := strings.Split(value, "|")
	if len(parts) != 3 {
		return nil, fmt.Errorf("%w: Tornado v1 value for %q: malformed", ErrTampered, name)
	}
	if subtle.ConstantTimeCompare([]byte(parts[2]), signV1(t.single.bytes(), name, parts[0], parts[1])) != 1 {
		return nil, fmt.Errorf("%w: Tornado v1 value for %q: bad signature", ErrTampered, name)
	}
	// Tornado raises (HTTP 500) on a signed non-numeric timestamp.
	ts, ok := decimal(parts[1], 18)
	if !ok {
		return nil, fmt.Errorf("%w: Tornado v1 value for %q: malformed timestamp", ErrTampered, name)
	}
	if err := t.checkTime(name, ts); err != nil {
		return nil, err
	}
	// The v1 MAC input has no delimiters: a leading zero means digits
	// were moved between the value and the timestamp.
	if strings.HasPrefix(parts[1], "0") {
		return nil, fmt.Errorf("%w: Tornado v1 value for %q: timestamp with a leading zero", ErrTampered, name)
	}
	out, err := base64.StdEncoding.DecodeString(parts[0])
	if err != nil {
		return nil, fmt.Errorf("%w: Tornado v1 value for %q: value is not base64", ErrTampered, name)
	}
	return out, nil
}

// checkTime applies Tornado's expiry rule (timestamp < now - max age,
// with now in fractional seconds, so the boundary is inclusive) and the
// future check Tornado lacks.
func (t *Tornado) checkTime(name string, ts int64) error {
	now := t.now()
	const maxTS = 1 << 33 // year 2242: keeps the nanosecond arithmetic exact
	if ts > maxTS {
		return fmt.Errorf("%w: Tornado value for %q: timestamp %d in the future", ErrFuture, name, ts)
	}
	issued := time.Unix(ts, 0)
	if issued.Before(now.Add(-t.maxAge)) {
		return fmt.Errorf("%w: Tornado value for %q: issued %s ago, max age %s", ErrExpired, name,
			now.Sub(issued).Truncate(time.Second), t.maxAge)
	}
	if issued.After(now.Add(t.maxSkew)) {
		return fmt.Errorf("%w: Tornado value for %q: issued %s in the future", ErrFuture, name,
			issued.Sub(now).Truncate(time.Second))
	}
	return nil
}

// consumeField is Tornado's _consume_field: "len:bytes|".
func consumeField(s string) (field, rest string, ok bool) {
	length, rest, found := strings.Cut(s, ":")
	if !found {
		return "", "", false
	}
	n, ok := decimal(length, 5)
	if !ok || int(n) >= len(rest) || rest[n] != '|' {
		return "", "", false
	}
	return rest[:n], rest[n+1:], true
}

// decimal parses a plain non-negative decimal number of at most maxDigits
// digits (no sign, no spaces, no leading zeros except "0").
func decimal(s string, maxDigits int) (int64, bool) {
	if s == "" || len(s) > maxDigits || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func signV2(secret, signed []byte) []byte {
	return hexMAC(sha256.New, secret, signed)
}

func signV1(secret []byte, parts ...string) []byte {
	m := hmac.New(sha1.New, secret)
	for _, p := range parts {
		m.Write([]byte(p))
	}
	return hex.AppendEncode(nil, m.Sum(nil))
}

func hexMAC(h func() hash.Hash, secret, msg []byte) []byte {
	m := hmac.New(h, secret)
	m.Write(msg)
	return hex.AppendEncode(nil, m.Sum(nil))
}

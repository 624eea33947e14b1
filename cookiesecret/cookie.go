package cookiesecret

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/securecookie"
)

// Defaults of [CookieOptions] and [TornadoOptions].
const (
	// DefaultMaxAge is the server-side maximum age of a value: 31 days,
	// Tornado's max_age_days default.
	DefaultMaxAge = 31 * 24 * time.Hour
	// DefaultMaxClockSkew is how far in the future a timestamp may be
	// before the value is refused with [ErrFuture].
	DefaultMaxClockSkew = time.Minute
	// DefaultMaxLength is the largest name=value accepted, in bytes: the
	// size every browser must store (RFC 6265, section 6.1).
	DefaultMaxLength = 4096
)

// maxTried bounds how many cookies of the same name Get verifies.
const maxTried = 4

// CookieOptions configure a [Cookie]. The zero value, with a Name, is the
// safe setting: signed, Path=/, host-only, HttpOnly, Secure, SameSite=Lax,
// 31 days.
type CookieOptions struct {
	// Name is the cookie name; required. A name starting with "__Host-"
	// (recommended) makes the browser refuse the cookie unless it is
	// Secure, host-only and for Path=/, so a sibling subdomain or a
	// plain-HTTP page cannot plant or overwrite it; NewCookie enforces
	// those rules, and "__Secure-" likewise requires Secure.
	Name string
	// Path is the cookie path. Default "/".
	Path string
	// Domain makes the cookie visible to subdomains. Default "" (host
	// only), which is safer: a cookie shared with subdomains can be read
	// and overwritten by any of them.
	Domain string
	// MaxAge is the server-side maximum age: Decode refuses older values
	// with [ErrExpired], whatever the browser kept. It is also sent as the
	// cookie's Max-Age unless SessionOnly is set. Default [DefaultMaxAge]
	// (31 days).
	MaxAge time.Duration
	// SessionOnly omits Max-Age, so the browser drops the cookie when it
	// closes; MaxAge is still enforced by the server. Default false.
	SessionOnly bool
	// SameSite is the SameSite attribute. Default (zero or
	// [http.SameSiteDefaultMode]) Lax. [http.SameSiteNoneMode] sends the
	// cookie on cross-site requests and requires Secure.
	SameSite http.SameSite
	// Encrypt encrypts the value (AES-256-CTR, then HMAC-SHA256, by
	// gorilla/securecookie) as well as signing it. Default false: values
	// are signed, so readable by the client but not forgeable. Encrypted
	// and signed-only cookies use different keys, so one is never
	// accepted as the other.
	Encrypt bool
	// MaxLength is the largest len(name)+1+len(encoded value), in bytes.
	// Encode fails over it, and Decode refuses longer values before any
	// cryptography. Default [DefaultMaxLength] (4096).
	MaxLength int
	// MaxClockSkew is how far in the future a value's timestamp may be
	// (clock differences between servers) before it is refused with
	// [ErrFuture]. Default [DefaultMaxClockSkew] (one minute); negative
	// allows none.
	MaxClockSkew time.Duration
	// InsecureAllowHTTP omits the Secure attribute, so the browser also
	// sends the cookie over plain HTTP, where anyone on the path can read
	// it and a man in the middle can replace it. Browsers accept Secure
	// cookies on http://localhost, so development does not need it.
	// Refused with a "__Host-" or "__Secure-" name or SameSite=None.
	InsecureAllowHTTP bool
	// InsecureScriptAccess omits HttpOnly, so page scripts (and any XSS)
	// can read the cookie.
	InsecureScriptAccess bool
}

// Cookie signs (and optionally encrypts) one named cookie with the keys
// of a [Keyring], on top of gorilla/securecookie, and sets it with safe
// attributes. Create it with [NewCookie]; it is immutable and safe for
// concurrent use.
//
// An encoded value is "keyid.securecookie-value": the key id chooses the
// verifying key directly. securecookie binds the value to the cookie name
// and a timestamp; Cookie adds the key id (through the derived key), the
// future-timestamp check, size limits before any cryptography, and errors
// that tell expired from tampered from unknown-key for the log.
type Cookie struct {
	describer
	name      string
	tmpl      http.Cookie
	maxAge    int64 // seconds
	maxSkew   int64 // seconds
	maxLength int
	current   string
	codecs    sealed[map[string]*securecookie.SecureCookie]
	encrypted bool
}

// encryptedFormat is the first plaintext byte of an encrypted value.
const encryptedFormat = 1

// NewCookie returns the cookie codec for opts with the keys of ring. It
// fails if the options are invalid or unsafe together (a "__Host-" name
// with a Domain, SameSite=None without Secure…).
func NewCookie(ring *Keyring, opts CookieOptions) (*Cookie, error) {
	mac, aes := purposeCookieMAC, ""
	if opts.Encrypt {
		mac, aes = purposeEncryptedCookieMAC, purposeEncryptedCookieAES
	}
	return newCookie(ring, opts, mac, aes)
}

func newCookie(ring *Keyring, opts CookieOptions, macPurpose, aesPurpose string) (*Cookie, error) {
	if ring == nil || len(ring.keys) == 0 {
		return nil, errors.New("cookiesecret: NewCookie needs a Keyring")
	}
	if opts.Name == "" {
		return nil, errors.New("cookiesecret: CookieOptions.Name is required")
	}
	if opts.Path == "" {
		opts.Path = "/"
	}
	if opts.MaxAge == 0 {
		opts.MaxAge = DefaultMaxAge
	}
	if opts.MaxAge < time.Second {
		return nil, fmt.Errorf("cookiesecret: cookie %q: MaxAge %v is under one second", opts.Name, opts.MaxAge)
	}
	if opts.MaxLength == 0 {
		opts.MaxLength = DefaultMaxLength
	}
	if opts.MaxLength < 64 {
		return nil, fmt.Errorf("cookiesecret: cookie %q: MaxLength %d is too small", opts.Name, opts.MaxLength)
	}
	switch opts.SameSite {
	case 0, http.SameSiteDefaultMode:
		opts.SameSite = http.SameSiteLaxMode
	case http.SameSiteLaxMode, http.SameSiteStrictMode, http.SameSiteNoneMode:
	default:
		return nil, fmt.Errorf("cookiesecret: cookie %q: unknown SameSite %d", opts.Name, opts.SameSite)
	}
	lower := strings.ToLower(opts.Name)
	switch {
	case strings.HasPrefix(lower, "__host-"):
		if opts.InsecureAllowHTTP || opts.Domain != "" || opts.Path != "/" {
			return nil, fmt.Errorf("cookiesecret: cookie %q: a __Host- cookie must be Secure, have no Domain and Path \"/\"", opts.Name)
		}
	case strings.HasPrefix(lower, "__secure-"):
		if opts.InsecureAllowHTTP {
			return nil, fmt.Errorf("cookiesecret: cookie %q: a __Secure- cookie must be Secure", opts.Name)
		}
	}
	if opts.SameSite == http.SameSiteNoneMode && opts.InsecureAllowHTTP {
		return nil, fmt.Errorf("cookiesecret: cookie %q: SameSite=None requires Secure", opts.Name)
	}
	if !strings.HasPrefix(opts.Path, "/") {
		return nil, fmt.Errorf("cookiesecret: cookie %q: Path must start with /", opts.Name)
	}
	c := &Cookie{
		describer: describer{"cookiesecret.Cookie{name: " + opts.Name + ", keys: " + strings.Join(ring.IDs(), " ") + "}"},
		name:      opts.Name,
		tmpl: http.Cookie{
			Name:     opts.Name,
			Path:     opts.Path,
			Domain:   opts.Domain,
			Secure:   !opts.InsecureAllowHTTP,
			HttpOnly: !opts.InsecureScriptAccess,
			SameSite: opts.SameSite,
		},
		maxAge:    int64(opts.MaxAge / time.Second),
		maxSkew:   int64(opts.MaxClockSkew / time.Second),
		maxLength: opts.MaxLength,
		current:   ring.Current(),
		encrypted: aesPurpose != "",
	}
	switch {
	case opts.MaxClockSkew == 0:
		c.maxSkew = int64(DefaultMaxClockSkew / time.Second)
	case opts.MaxClockSkew < 0:
		c.maxSkew = 0
	}
	if !opts.SessionOnly {
		c.tmpl.MaxAge = int(c.maxAge)
	}
	probe := c.tmpl
	probe.Value = "x"
	if err := probe.Valid(); err != nil {
		return nil, fmt.Errorf("cookiesecret: cookie %q: %w", opts.Name, err)
	}
	codecs := make(map[string]*securecookie.SecureCookie, len(ring.keys))
	for _, k := range ring.keys {
		var block []byte
		if aesPurpose != "" {
			block = derive(k.Secret, aesPurpose, k.ID)
		}
		sc := securecookie.New(derive(k.Secret, macPurpose, k.ID), block).
			SetSerializer(securecookie.NopEncoder{}).
			MaxAge(0). // checked by Cookie, with the future check too
			MaxLength(0)
		// securecookie reports a bad key only when first used: try it now.
		v, err := sc.Encode(opts.Name, []byte("probe"))
		if err == nil {
			var out []byte
			err = sc.Decode(opts.Name, v, &out)
		}
		if err != nil {
			return nil, fmt.Errorf("cookiesecret: cookie %q: key %q: %w", opts.Name, k.ID, err)
		}
		codecs[k.ID] = sc
	}
	c.codecs = seal(codecs)
	return c, nil
}

// Name returns the cookie name.
func (c *Cookie) Name() string { return c.name }

// Encode signs (and encrypts, if configured) value with the current key
// and returns the cookie value. It fails with [ErrTooLarge] if the result
// would be over MaxLength.
func (c *Cookie) Encode(value []byte) (string, error) {
	if c.encrypted {
		// securecookie encrypts in place (it would overwrite the
		// caller's bytes) and cannot decrypt an empty plaintext: encrypt
		// a copy with a leading format byte.
		value = append([]byte{encryptedFormat}, value...)
	}
	v, err := c.codecs.get()[c.current].Encode(c.name, value)
	if err != nil {
		return "", fmt.Errorf("cookiesecret: cookie %q: %w", c.name, err)
	}
	out := c.current + "." + v
	if n := len(c.name) + 1 + len(out); n > c.maxLength {
		return "", fmt.Errorf("%w: cookie %q would be %d bytes, over its %d-byte limit", ErrTooLarge, c.name, n, c.maxLength)
	}
	return out, nil
}

// Decode verifies encoded and returns the value. Errors match
// [ErrInvalid] and one of [ErrTooLarge], [ErrTampered] (malformed,
// truncated, altered, signed by another key or for another name),
// [ErrUnknownKey] (key id not in the keyring), [ErrExpired] or
// [ErrFuture]. Log them; never send them to the client.
func (c *Cookie) Decode(encoded string) ([]byte, error) {
	v, _, err := c.decode(encoded)
	return v, err
}

func (c *Cookie) decode(encoded string) (value []byte, kid string, err error) {
	if n := len(c.name) + 1 + len(encoded); n > c.maxLength {
		return nil, "", fmt.Errorf("%w: cookie %q is %d bytes, over its %d-byte limit", ErrTooLarge, c.name, n, c.maxLength)
	}
	kid, rest, ok := strings.Cut(encoded, ".")
	if !ok || !validKeyID(kid) {
		return nil, "", fmt.Errorf("%w: cookie %q has no valid key id", ErrTampered, c.name)
	}
	sc := c.codecs.get()[kid]
	if sc == nil {
		return nil, kid, fmt.Errorf("%w: cookie %q names key %q", ErrUnknownKey, c.name, kid)
	}
	if err := sc.Decode(c.name, rest, &value); err != nil {
		return nil, kid, fmt.Errorf("%w: cookie %q, key %q: %v", ErrTampered, c.name, kid, err)
	}
	if c.encrypted {
		if len(value) == 0 || value[0] != encryptedFormat {
			return nil, kid, fmt.Errorf("%w: cookie %q, key %q: unknown format", ErrTampered, c.name, kid)
		}
		value = value[1:]
	}
	// The MAC is valid: the timestamp is the one the key holder wrote.
	ts, ok := securecookieTimestamp(rest)
	if !ok {
		return nil, kid, fmt.Errorf("%w: cookie %q, key %q: no timestamp", ErrTampered, c.name, kid)
	}
	now := time.Now().Unix()
	switch {
	case ts < now-c.maxAge:
		return nil, kid, fmt.Errorf("%w: cookie %q, key %q: issued %s ago, max age %s",
			ErrExpired, c.name, kid, time.Duration(now-ts)*time.Second, time.Duration(c.maxAge)*time.Second)
	case ts > now+c.maxSkew:
		return nil, kid, fmt.Errorf("%w: cookie %q, key %q: issued %s in the future",
			ErrFuture, c.name, kid, time.Duration(ts-now)*time.Second)
	}
	return value, kid, nil
}

// securecookieTimestamp reads the timestamp of a securecookie value:
// base64url("date|payload|mac").
func securecookieTimestamp(v string) (int64, bool) {
	// The date is in the first 24 characters of base64 (18 bytes) for any
	// timestamp up to 17 digits; decode just enough.
	head := v
	if len(head) > 24 {
		head = head[:24]
	}
	var buf [18]byte
	n, err := base64.URLEncoding.Decode(buf[:], []byte(head))
	if err != nil && n == 0 {
		return 0, false
	}
	date, _, ok := strings.Cut(string(buf[:n]), "|")
	if !ok {
		return 0, false
	}
	ts, err := strconv.ParseInt(date, 10, 64)
	return ts, err == nil
}

// Set encodes value and adds the Set-Cookie header to w. It must be called
// before the response is committed.
func (c *Cookie) Set(w http.ResponseWriter, value []byte) error {
	v, err := c.Encode(value)
	if err != nil {
		return err
	}
	ck := c.tmpl
	ck.Value = v
	http.SetCookie(w, &ck)
	return nil
}

// Get returns the verified value of the request's cookie. If the request
// has several cookies of that name (one planted for a parent domain or
// another path, say), the first that verifies wins, and at most four are
// tried. With no cookie it returns [http.ErrNoCookie]; otherwise the error
// of the first cookie (see [Cookie.Decode]).
func (c *Cookie) Get(r *http.Request) ([]byte, error) {
	v, _, err := c.get(r)
	return v, err
}

func (c *Cookie) get(r *http.Request) ([]byte, string, error) {
	var first error
	tried := 0
	for _, ck := range r.CookiesNamed(c.name) {
		v, kid, err := c.decode(ck.Value)
		if err == nil {
			return v, kid, nil
		}
		if first == nil {
			first = err
		}
		if tried++; tried == maxTried {
			break
		}
	}
	if first == nil {
		return nil, "", http.ErrNoCookie
	}
	return nil, "", first
}

// Delete adds a Set-Cookie header that removes the cookie (same name,
// path and domain, Max-Age=0).
func (c *Cookie) Delete(w http.ResponseWriter) {
	ck := c.tmpl
	ck.MaxAge = -1
	http.SetCookie(w, &ck)
}

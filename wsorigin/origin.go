package wsorigin

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// MaxOriginLen is the longest Origin header value that is parsed. A
// serialised origin is a scheme, "://", a host name of at most 253 bytes
// and a port; anything longer is refused before it is looked at.
const MaxOriginLen = 512

// Errors returned by [Policy.Check], [ParseOrigin] and [New]. Each
// refusal wraps exactly one of them; use [errors.Is] to branch.
var (
	// ErrMissing: the request has no Origin header and the policy
	// requires one, or it carries browser fetch metadata without one.
	ErrMissing = errors.New("wsorigin: Origin header missing")
	// ErrMultiple: the request has more than one Origin header.
	ErrMultiple = errors.New("wsorigin: more than one Origin header")
	// ErrNull: the origin is the opaque origin "null" (sandboxed
	// iframes, data: and file: URLs, some redirects).
	ErrNull = errors.New("wsorigin: opaque origin null refused")
	// ErrMalformed: the value is not scheme://host[:port].
	ErrMalformed = errors.New("wsorigin: malformed origin")
	// ErrTooLong: the value is longer than [MaxOriginLen].
	ErrTooLong = errors.New("wsorigin: origin too long")
	// ErrNotAllowed: a well-formed origin that the policy does not allow.
	ErrNotAllowed = errors.New("wsorigin: origin not allowed")
	// ErrBadPattern: an allowlist entry or public origin is invalid.
	ErrBadPattern = errors.New("wsorigin: invalid origin pattern")
)

// Origin is a parsed, normalised origin: lower-case scheme and host, no
// trailing dot, host names in ASCII (punycode), IPv6 in canonical form,
// and Port always set (the scheme's default port when none was written;
// zero only for a scheme without a known default and no explicit port).
type Origin struct {
	Scheme string
	Host   string // without brackets for IPv6
	Port   uint16
}

// String returns the serialised origin, scheme://host[:port], omitting
// the scheme's default port: the form a browser sends.
func (o Origin) String() string {
	host := o.Host
	if strings.IndexByte(host, ':') >= 0 {
		host = "[" + host + "]"
	}
	if o.Port == 0 || o.Port == defaultPort(o.Scheme) {
		return o.Scheme + "://" + host
	}
	return o.Scheme + "://" + host + ":" + strconv.Itoa(int(o.Port))
}

func defaultPort(scheme string) uint16 {
	switch scheme {
	case "https", "wss":
		return 443
	case "http", "ws":
		return 80
	}
	return 0
}

// ParseOrigin parses an Origin header value strictly, the way a browser
// serialises it (RFC 6454 §6.2): scheme "://" host [":" port], ASCII only,
// with no user info, path (not even "/"), query or fragment. Upper case,
// a trailing dot on the host and an explicit default port are accepted
// and normalised away. "null" returns [ErrNull]; anything else that does
// not fit returns an error wrapping [ErrMalformed] or [ErrTooLong].
//
// ParseOrigin never panics and allocates only when the value needs
// lower-casing or is refused.
func ParseOrigin(s string) (Origin, error) {
	if len(s) > MaxOriginLen {
		return Origin{}, fmt.Errorf("%w (%d bytes, limit %d)", ErrTooLong, len(s), MaxOriginLen)
	}
	if strings.EqualFold(s, "null") {
		return Origin{}, ErrNull
	}
	o, why := parse(s, false)
	if why != "" {
		return Origin{}, fmt.Errorf("%w: %s: %q", ErrMalformed, why, s)
	}
	return o, nil
}

// parse splits and normalises an origin. It returns a short reason when s
// is refused. With pattern set it accepts a non-ASCII host (converted to
// punycode) and validates host names fully through IDNA.
func parse(s string, pattern bool) (Origin, string) {
	i := strings.Index(s, "://")
	if i < 0 {
		return Origin{}, "no scheme://"
	}
	scheme, rest := s[:i], s[i+3:]
	if !validScheme(scheme) {
		return Origin{}, "invalid scheme"
	}
	for j := 0; j < len(rest); j++ {
		switch c := rest[j]; {
		case c == '@':
			return Origin{}, "user info"
		case c == '/' || c == '\\':
			return Origin{}, "path"
		case c == '?':
			return Origin{}, "query"
		case c == '#':
			return Origin{}, "fragment"
		case c <= ' ' || c == 0x7f:
			return Origin{}, "control character or space"
		case c >= 0x80 && !pattern:
			return Origin{}, "non-ASCII character"
		case c == '*' || c == ',' || c == '%' || c == '"' || c == '<' || c == '>' || c == '^' || c == '`' || c == '{' || c == '|' || c == '}':
			return Origin{}, "invalid character " + strconv.QuoteRune(rune(c))
		}
	}
	host, portStr, why := splitHostPort(rest)
	if why != "" {
		return Origin{}, why
	}
	o := Origin{Scheme: lower(scheme)}
	if portStr != "" {
		p, ok := parsePort(portStr)
		if !ok {
			return Origin{}, "invalid port"
		}
		o.Port = p
	} else {
		o.Port = defaultPort(o.Scheme)
	}
	h, why := normaliseHost(host, pattern)
	if why != "" {
		return Origin{}, why
	}
	o.Host = h
	return o, ""
}

func validScheme(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// splitHostPort splits "host", "host:port", "[v6]" or "[v6]:port".
func splitHostPort(s string) (host, port, why string) {
	if s == "" {
		return "", "", "empty host"
	}
	if s[0] == '[' {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", "", "unclosed IPv6 bracket"
		}
		host, rest := s[:end+1], s[end+1:]
		if rest == "" {
			return host, "", ""
		}
		if rest[0] != ':' {
			return "", "", "junk after IPv6 literal"
		}
		if rest == ":" {
			return "", "", "empty port"
		}
		return host, rest[1:], ""
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return s, "", ""
	}
	if strings.IndexByte(s[:i], ':') >= 0 {
		return "", "", "IPv6 address without brackets"
	}
	if i == len(s)-1 {
		return "", "", "empty port"
	}
	return s[:i], s[i+1:], ""
}

func parsePort(s string) (uint16, bool) {
	if len(s) > 5 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if n < 1 || n > 65535 {
		return 0, false
	}
	return uint16(n), true
}

// normaliseHost validates a host and returns its canonical form.
func normaliseHost(h string, pattern bool) (string, string) {
	if h == "" {
		return "", "empty host"
	}
	if h[0] == '[' {
		a, err := netip.ParseAddr(h[1 : len(h)-1])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", "invalid IPv6 literal"
		}
		if a.Is4In6() {
			return "", "IPv4-mapped IPv6 literal"
		}
		return a.String(), ""
	}
	if h[len(h)-1] == '.' {
		h = h[:len(h)-1] // one trailing dot: the same host in DNS
		if h == "" || h[len(h)-1] == '.' {
			return "", "empty label"
		}
	}
	ascii := true
	for i := 0; i < len(h); i++ {
		if h[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if !ascii {
		if !pattern {
			return "", "non-ASCII host"
		}
		a, err := idna.Lookup.ToASCII(h)
		if err != nil {
			return "", "invalid internationalised host name"
		}
		h = a
	}
	h = lower(h)
	if len(h) > 253 {
		return "", "host name longer than 253 bytes"
	}
	if looksNumeric(h) {
		a, err := netip.ParseAddr(h)
		if err != nil || !a.Is4() {
			return "", "invalid IPv4 address"
		}
		return h, ""
	}
	start := 0
	for i := 0; i <= len(h); i++ {
		if i < len(h) && h[i] != '.' {
			c := h[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return "", "invalid character in host name"
			}
			continue
		}
		label := h[start:i]
		switch {
		case label == "":
			return "", "empty label"
		case len(label) > 63:
			return "", "label longer than 63 bytes"
		case label[0] == '-' || label[len(label)-1] == '-':
			return "", "label starts or ends with a hyphen"
		}
		start = i + 1
	}
	if pattern && strings.Contains(h, "xn--") {
		// Patterns are configuration: check that punycode decodes.
		if _, err := idna.Lookup.ToUnicode(h); err != nil {
			return "", "invalid punycode label"
		}
	}
	return h, ""
}

// looksNumeric reports whether a browser would parse h as an IPv4 address:
// its last label is all digits or a 0x hex number (WHATWG URL standard).
func looksNumeric(h string) bool {
	last := h[strings.LastIndexByte(h, '.')+1:]
	if last == "" {
		return false
	}
	if strings.HasPrefix(last, "0x") {
		return true
	}
	for i := 0; i < len(last); i++ {
		if last[i] < '0' || last[i] > '9' {
			return false
		}
	}
	return true
}

// lower returns s in lower case, allocating only if s has upper case.
func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// pattern is one allowlist entry: an exact origin, or with wildcard set,
// any subdomain (one or more labels) of Origin.Host.
type pattern struct {
	Origin
	wildcard bool
	text     string // as configured, for errors
}

// PatternError describes one invalid allowlist entry.
type PatternError struct {
	Source  string // where the entry came from: "Allowed[2]", "$WS_ORIGINS entry 3"…
	Pattern string // the entry, truncated to 100 bytes
	Reason  string
}

func (e *PatternError) Error() string {
	return fmt.Sprintf("wsorigin: %s %q: %s", e.Source, e.Pattern, e.Reason)
}

// Unwrap returns [ErrBadPattern].
func (e *PatternError) Unwrap() error { return ErrBadPattern }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// parsePattern parses one allowlist entry: "scheme://host[:port]" or
// "scheme://*.domain[:port]".
func parsePattern(src, s string) (pattern, error) {
	bad := func(reason string) (pattern, error) {
		return pattern{}, &PatternError{Source: src, Pattern: truncate(s, 100), Reason: reason}
	}
	switch t := strings.TrimSpace(s); {
	case t != s:
		return bad("leading or trailing space")
	case s == "":
		return bad("empty entry")
	case len(s) > MaxOriginLen:
		return bad("longer than " + strconv.Itoa(MaxOriginLen) + " bytes")
	case s == "*" || s == "*://*" || strings.HasSuffix(s, "://*"):
		return bad("a bare * would allow every origin; list the origins instead")
	case strings.EqualFold(s, "null"):
		return bad("the opaque origin null cannot be allowed: any sandboxed page sends it")
	}
	i := strings.Index(s, "://")
	if i < 0 {
		return bad(`no scheme: write "https://` + truncate(s, 60) + `"`)
	}
	rest := s[i+3:]
	wild := strings.HasPrefix(rest, "*.")
	if wild {
		rest = rest[2:]
	}
	if strings.ContainsAny(rest, "*[]") && !strings.HasPrefix(rest, "[") {
		return bad("a wildcard may only be a whole leftmost label, as in https://*.example.com")
	}
	o, why := parse(s[:i+3]+rest, true)
	if why != "" {
		switch why {
		case "path":
			why = "has a path; an origin is scheme://host[:port] with nothing after it"
		case "query", "fragment", "user info":
			why = "has a " + why + "; an origin is scheme://host[:port]"
		}
		return bad(why)
	}
	if wild {
		if o.Scheme != "http" && o.Scheme != "https" {
			return bad("wildcards are only for http and https origins")
		}
		if looksNumeric(o.Host) || strings.IndexByte(o.Host, ':') >= 0 {
			return bad("a wildcard cannot stand in front of an IP address")
		}
		if ps, _ := publicsuffix.PublicSuffix(o.Host); ps == o.Host {
			return bad("*." + o.Host + " would match every site under the public suffix " + o.Host)
		}
	}
	return pattern{Origin: o, wildcard: wild, text: s}, nil
}

// match reports whether o is allowed by p: same scheme, same port, and
// the same host or, for a wildcard, a host ending in "." + p.Host with at
// least one label in front.
func (p *pattern) match(o *Origin) bool {
	if o.Scheme != p.Scheme || o.Port != p.Port {
		return false
	}
	if !p.wildcard {
		return o.Host == p.Host
	}
	n := len(o.Host) - len(p.Host)
	return n >= 2 && o.Host[n-1] == '.' && o.Host[n:] == p.Host
}

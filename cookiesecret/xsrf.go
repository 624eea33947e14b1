package cookiesecret

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/stormcellar/stormcellar/httperr"
	"github.com/stormcellar/stormcellar/internal/reqstate"
)

// XSRF token transport: the form field and the request headers a token is
// read from on unsafe methods, in this order (headers first, so the body
// is parsed only when no header carries a token).
const (
	// XSRFFormField is the form field of the token, as in Tornado.
	XSRFFormField = "_xsrf"
	// XSRFHeader is the preferred request header (Angular's name).
	XSRFHeader = "X-XSRF-Token"
	// CSRFHeader is also accepted (gorilla/csrf's and nosurf's name).
	CSRFHeader = "X-CSRF-Token"
)

// DefaultXSRFCookie is the default name of the XSRF cookie.
const DefaultXSRFCookie = "__Host-xsrf"

const (
	xsrfBaseLen   = 32
	xsrfMaskedLen = 2 * xsrfBaseLen
	// defaultMaxFormMemory is the default of XSRFOptions.MaxFormMemory.
	// The check bounds its own parse rather than relying on what is in
	// front, because anyone holding an XSRF cookie (one GET) can make it
	// parse a body, and the limits it would otherwise get are large
	// (ParseForm's 10 MiB) or none (ParseForm behind a big
	// http.MaxBytesReader). 1 MiB is middleware.MaxBytes' default body
	// limit, so behind the default stack it refuses nothing more. It does
	// not limit multipart file content, which goes to disk, so a route that
	// raises its own MaxBytes for uploads keeps working; only url-encoded
	// forms over 1 MiB need MaxFormMemory raised.
	defaultMaxFormMemory = 1 << 20
)

// XSRF token failures, logged (never shown) with the 403. Both match
// [ErrInvalid].
var (
	// ErrTokenMissing: an unsafe request carried no token in the form or
	// the headers.
	ErrTokenMissing error = &invalidError{"cookiesecret: XSRF token missing"}
	// ErrTokenMismatch: the token is malformed, was made for another XSRF
	// cookie or another session, or names an unknown key.
	ErrTokenMismatch error = &invalidError{"cookiesecret: XSRF token does not match"}
)

// XSRFOptions configure [NewXSRF]. The zero value is the safe setting.
type XSRFOptions struct {
	// TrustedOrigins are origins, in full ("https://admin.example.com",
	// "http://localhost:8080": scheme, host and port), whose cross-origin
	// requests pass the origin layer (they still need a token). Hosts
	// without a scheme, paths, wildcards and "null" are refused, so the
	// http:// twin of a trusted https:// origin never passes. Default
	// none.
	TrustedOrigins []string
	// Session returns the id of the request's session, or "" when there
	// is none. Tokens are then bound to it: a token (and a signed XSRF
	// cookie) taken from another session is refused, even if an attacker
	// plants both. Default nil: tokens are bound to the XSRF cookie only.
	Session func(*http.Request) string
	// CookieName is the name of the signed cookie holding the per-browser
	// token. Default [DefaultXSRFCookie] ("__Host-xsrf"), or "xsrf" with
	// InsecureAllowHTTP.
	CookieName string
	// MaxAge is the server-side maximum age of the XSRF cookie, and its
	// Max-Age. Default [DefaultMaxAge] (31 days).
	MaxAge time.Duration
	// Logger receives a record when a token is requested after the
	// response was committed (the cookie cannot be set then). Rejections
	// are logged by httperr. Default slog.Default().
	Logger *slog.Logger
	// MaxFormMemory bounds the memory the token check uses when it parses
	// a form body to find the "_xsrf" field, which it does only when no
	// header carries a token. The form it parses is the one the handler
	// then reads.
	//
	//   - A url-encoded body is held in memory whole, so one longer than
	//     MaxFormMemory is refused with 413, whatever limit is in front.
	//   - Of a multipart body, at most MaxFormMemory bytes of file content
	//     stay in memory and the rest goes to a temporary file, which is
	//     bounded only by the body limit in front (middleware.MaxBytes)
	//     and removed when the handler returns (see [XSRF.Handler] and
	//     [XSRF.Check]). The other fields, the part headers and the file
	//     content kept in memory may together take MaxFormMemory plus
	//     10 MiB, the reserve that mime/multipart adds for fields and
	//     does not let callers lower; a form over that, or with more parts
	//     or part headers than mime/multipart allows (1000 parts by
	//     default), is refused with 413.
	//
	// Default 1 MiB; NewXSRF refuses a negative value. Raise it for routes
	// whose url-encoded forms are larger; multipart uploads need no
	// change, since their files go to disk.
	MaxFormMemory int64
	// InsecureBypassPatterns are [http.ServeMux] patterns ("POST
	// /webhook/{id}") whose requests skip both layers, for endpoints
	// authenticated otherwise. Anything matching is open to cross-site
	// requests.
	InsecureBypassPatterns []string
	// InsecureAllowHTTP drops the Secure attribute from the XSRF cookie
	// (and the "__Host-" prefix from its default name), so the cookie also
	// travels over plain HTTP, where it can be read and replaced.
	InsecureAllowHTTP bool
}

// XSRF is the cross-site request forgery protection: two layers, both
// required on unsafe methods (anything but GET, HEAD and OPTIONS).
//
//  1. Origin: [http.CrossOriginProtection] refuses requests whose
//     Sec-Fetch-Site or Origin shows another origin, unless the origin is
//     in XSRFOptions.TrustedOrigins (403, [httperr.KindOrigin]).
//  2. Token: the request must carry a token (form field "_xsrf", or
//     header X-XSRF-Token, X-CSRF-Token, or Tornado's X-XSRFToken /
//     X-CSRFToken) that matches the signed XSRF cookie and, when
//     XSRFOptions.Session is set, the session (403, [httperr.KindXSRF]).
//
// Tokens are masked with fresh random bytes every time one is made, so no
// two pages carry the same token (against BREACH-style compression
// attacks). Create it with [NewXSRF]; it is safe for concurrent use.
type XSRF struct {
	describer
	cookie   *Cookie
	cop      *http.CrossOriginProtection
	bypass   *http.ServeMux
	sentinel http.Handler
	bindKeys sealed[map[string][]byte]
	current  string
	session  func(*http.Request) string
	logger   *slog.Logger
	maxForm  int64
}

type bypassHandler struct{}

func (*bypassHandler) ServeHTTP(http.ResponseWriter, *http.Request) {}

// NewXSRF returns the XSRF protection for opts, keyed from ring: the XSRF
// cookie is signed, and tokens bound, with keys derived for those purposes
// only, never the cookie keys.
func NewXSRF(ring *Keyring, opts XSRFOptions) (*XSRF, error) {
	if ring == nil {
		return nil, errors.New("cookiesecret: NewXSRF needs a Keyring")
	}
	maxForm := opts.MaxFormMemory
	switch {
	case maxForm == 0:
		maxForm = defaultMaxFormMemory
	case maxForm < 0:
		return nil, fmt.Errorf("cookiesecret: XSRFOptions: negative MaxFormMemory %d", maxForm)
	}
	name := opts.CookieName
	if name == "" {
		name = DefaultXSRFCookie
		if opts.InsecureAllowHTTP {
			name = "xsrf"
		}
	}
	cookie, err := newCookie(ring, CookieOptions{
		Name:              name,
		MaxAge:            opts.MaxAge,
		InsecureAllowHTTP: opts.InsecureAllowHTTP,
	}, purposeXSRFCookieMAC, "")
	if err != nil {
		return nil, err
	}
	x := &XSRF{
		describer: describer{"cookiesecret.XSRF{cookie: " + name + ", keys: " + strings.Join(ring.IDs(), " ") + "}"},
		cookie:    cookie,
		cop:       http.NewCrossOriginProtection(),
		sentinel:  &bypassHandler{},
		current:   ring.Current(),
		session:   opts.Session,
		logger:    opts.Logger,
		maxForm:   maxForm,
	}
	bindKeys := make(map[string][]byte, len(ring.keys))
	for _, k := range ring.keys {
		bindKeys[k.ID] = derive(k.Secret, purposeXSRFBind, k.ID)
	}
	x.bindKeys = seal(bindKeys)
	for _, o := range opts.TrustedOrigins {
		norm, err := normalizeOrigin(o)
		if err != nil {
			return nil, err
		}
		if err := x.cop.AddTrustedOrigin(norm); err != nil {
			return nil, fmt.Errorf("cookiesecret: trusted origin %q: %w", o, err)
		}
	}
	if len(opts.InsecureBypassPatterns) > 0 {
		x.bypass = http.NewServeMux()
		for _, p := range opts.InsecureBypassPatterns {
			if err := handlePattern(x.bypass, p, x.sentinel); err != nil {
				return nil, err
			}
		}
	}
	return x, nil
}

// handlePattern registers p, turning ServeMux's panic on a bad pattern
// into an error.
func handlePattern(mux *http.ServeMux, p string, sentinel http.Handler) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("cookiesecret: bypass pattern %q: %v", p, v)
		}
	}()
	mux.Handle(p, sentinel)
	return nil
}

// normalizeOrigin checks a trusted origin and returns it as browsers send
// it: lower case, default port omitted.
func normalizeOrigin(o string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("cookiesecret: trusted origin %q: %s (want scheme://host[:port])", o, why)
	}
	if o == "" || o == "null" || strings.Contains(o, "*") {
		return bad("not an origin")
	}
	u, err := url.Parse(o)
	if err != nil {
		return bad(err.Error())
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && scheme != "http" {
		return bad("scheme must be https or http")
	}
	if u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || u.Host == "" {
		return bad("only scheme, host and port are allowed")
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Is6() != strings.HasPrefix(u.Host, "[") || ip.Zone() != "" {
			return bad("malformed IP address")
		}
	} else if !validHostname(host) {
		return bad("malformed host name")
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || port[0] == '0' {
			return bad("malformed port")
		}
	}
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	switch {
	case port != "":
		host = net.JoinHostPort(host, port)
	case strings.Contains(host, ":"):
		host = "[" + host + "]"
	}
	return scheme + "://" + host, nil
}

// validHostname reports whether h is an ASCII host name as browsers
// serialize it in an Origin: labels of letters, digits, '-' and '_',
// separated by single dots.
func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// Handler returns middleware that checks every unsafe request (403 through
// httperr on failure) and makes tokens available to the handler: through
// [XSRFToken] and [XSRFField], and as the request state's XSRFToken
// function, which templates use.
//
// When the next handler returns (or panics), or when the request is
// refused, Handler removes the temporary files of a multipart form parsed
// into the request it passed on, whether Check or the handler parsed it:
// net/http removes only those of its own request value, and the request
// Handler passes on is a copy (made by Handler, or by an earlier
// middleware or router). Like net/http, it does not wait for goroutines
// the handler started: hand them a copy of an uploaded file, not the file.
// A form that was already parsed when Handler ran is left to whoever
// parsed it. Removing files that middleware.MaxBytes removed already is
// harmless.
func (x *XSRF) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, w, r := reqstate.Ensure(w, r)
		defer removeFormFiles(r, r.MultipartForm)
		if err := x.Check(r); err != nil {
			httperr.Write(w, r, err)
			return
		}
		st.XSRFToken = x.tokenSource(w, r, st)
		next.ServeHTTP(w, r)
	})
}

// removeFormFiles removes the temporary files of r's multipart form unless
// it is prior, the form r had before: that one belongs to whoever parsed
// it. [multipart.Form.RemoveAll] ignores files already removed, so this is
// harmless after middleware.MaxBytes or net/http removed them.
func removeFormFiles(r *http.Request, prior *multipart.Form) {
	if f := r.MultipartForm; f != nil && f != prior {
		_ = f.RemoveAll()
	}
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// Check applies both layers to r and returns nil or the error to send with
// httperr, which answers it with one log record:
//
//   - an [*httperr.HTTPError]: 403 of kind [httperr.KindOrigin] or
//     [httperr.KindXSRF], whose cause says what failed; 413 of kind
//     [httperr.KindBodyTooLarge] for a multipart form over the memory
//     bounds of XSRFOptions.MaxFormMemory; 400 for a form that does not
//     parse;
//   - an error wrapping an [*http.MaxBytesError], which httperr answers
//     with 413 of kind [httperr.KindBodyTooLarge]: a url-encoded body over
//     MaxFormMemory, or a body over a limit in front.
//
// Safe methods always pass.
//
// Check parses the form body only when no header carries a token:
// url-encoded bodies of POST, PUT and PATCH (as [http.Request.ParseForm]
// reads them; a DELETE must send its token in a header) and multipart
// bodies of any method, within the memory bounds of
// XSRFOptions.MaxFormMemory. The body is parsed before the token can be
// checked, by anyone holding an XSRF cookie (one is given to every
// visitor), so put middleware.MaxBytes in front: it bounds the whole body,
// files included (1 MiB by default, raised per upload route), and removes
// the temporary files of a multipart form when the handler returns.
// [http.MaxBytesHandler] bounds the body too, but removes no file.
//
// When Check refuses a request after parsing its multipart form itself, it
// removes the form's temporary files before it returns (the form's values
// stay; its files can no longer be opened). The files of an accepted
// request stay for the handler: [XSRF.Handler] removes them when the next
// handler returns. A caller of Check alone removes them itself
// (r.MultipartForm.RemoveAll) once the handler is done, unless r is the
// request value that net/http or middleware.MaxBytes passed to a handler:
// each removes the files of a form parsed into that value, but not into a
// copy of it (WithContext, Clone), which is what routers pass on.
func (x *XSRF) Check(r *http.Request) error {
	prior := r.MultipartForm
	err := x.check(r)
	if err != nil {
		removeFormFiles(r, prior)
	}
	return err
}

func (x *XSRF) check(r *http.Request) error {
	if safeMethod(r.Method) {
		return nil
	}
	if x.bypass != nil {
		// A path that ServeMux would redirect (unclean, or missing its
		// trailing slash) gets a redirect handler, not the sentinel, so it
		// is not bypassed (cf. CVE-2025-47910).
		if h, _ := x.bypass.Handler(r); h == x.sentinel {
			return nil
		}
	}
	if err := x.cop.Check(r); err != nil {
		return httperr.Forbidden(httperr.KindOrigin, fmt.Errorf("cookiesecret: %w (Origin %.100q, Sec-Fetch-Site %.30q)",
			err, r.Header.Get("Origin"), r.Header.Get("Sec-Fetch-Site")))
	}
	base, _, err := x.cookie.get(r)
	if err == nil && len(base) != xsrfBaseLen {
		err = fmt.Errorf("%w: XSRF cookie holds %d bytes", ErrTampered, len(base))
	}
	if err != nil {
		return httperr.Forbidden(httperr.KindXSRF, fmt.Errorf("cookiesecret: XSRF cookie: %w", err))
	}
	tok, err := x.submittedToken(r)
	if err != nil {
		return err
	}
	if tok == "" {
		return httperr.Forbidden(httperr.KindXSRF, fmt.Errorf("%w from %s", ErrTokenMissing, r.Method))
	}
	if err := x.verify(tok, base, x.sessionID(r)); err != nil {
		return httperr.Forbidden(httperr.KindXSRF, err)
	}
	return nil
}

func (x *XSRF) sessionID(r *http.Request) string {
	if x.session == nil {
		return ""
	}
	return x.session(r)
}

// submittedToken returns the token of the first header that has one, else
// the "_xsrf" field of a url-encoded or multipart body, parsed within
// x.maxForm. The query string is not read: tokens in URLs leak through
// logs and Referer.
func (x *XSRF) submittedToken(r *http.Request) (string, error) {
	// Tornado's X-XSRFToken and X-CSRFToken are accepted too, so that
	// front-end code written for Tornado keeps working.
	for _, h := range [...]string{XSRFHeader, CSRFHeader, "X-Xsrftoken", "X-Csrftoken"} {
		if v := r.Header.Get(h); v != "" {
			return v, nil
		}
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var err error
	switch ct {
	case "application/x-www-form-urlencoded":
		// ParseForm reads the whole body into memory: 10 MiB at most, but
		// behind an http.MaxBytesReader (http.MaxBytesHandler) it drops
		// that cap for the reader's limit, however large. Reading through
		// a MaxBytesReader of our own makes the bound x.maxForm whatever is
		// in front (or lower, if what is in front is). The body is
		// restored afterwards: the bound is for this parse only.
		body := r.Body
		if body != nil {
			r.Body = http.MaxBytesReader(nil, body, x.maxForm)
		}
		err = r.ParseForm()
		r.Body = body
	case "multipart/form-data":
		// File content over x.maxForm goes to a temporary file; fields
		// are bounded by mime/multipart at x.maxForm + 10 MiB.
		err = r.ParseMultipartForm(x.maxForm)
	default:
		return "", nil
	}
	if err != nil {
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			return "", fmt.Errorf("cookiesecret: XSRF: form body over %d bytes: %w", tooLarge.Limit, err)
		case errors.Is(err, multipart.ErrMessageTooLarge):
			return "", &httperr.HTTPError{
				Status: http.StatusRequestEntityTooLarge,
				Kind:   httperr.KindBodyTooLarge,
				Header: http.Header{"Connection": {"close"}},
				Err: fmt.Errorf("cookiesecret: XSRF: multipart form over MaxFormMemory (%d bytes) plus 10 MiB in memory, or with too many parts or headers: %w",
					x.maxForm, err),
			}
		}
		return "", httperr.BadRequest("The form could not be read.", fmt.Errorf("cookiesecret: XSRF: parsing the form: %w", err))
	}
	return r.PostForm.Get(XSRFFormField), nil
}

// bind returns the unmasked token for base and session under key.
func bind(key, base []byte, session string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(base)
	m.Write([]byte(session))
	return m.Sum(nil)
}

// mask returns "kid.base64url(mask || bound XOR mask)".
func (x *XSRF) mask(base []byte, session string) string {
	bound := bind(x.bindKeys.get()[x.current], base, session)
	var raw [xsrfMaskedLen]byte
	_, _ = rand.Read(raw[:xsrfBaseLen])
	subtle.XORBytes(raw[xsrfBaseLen:], bound, raw[:xsrfBaseLen])
	return x.current + "." + base64.RawURLEncoding.EncodeToString(raw[:])
}

func (x *XSRF) verify(tok string, base []byte, session string) error {
	kid, enc, ok := strings.Cut(tok, ".")
	if !ok || !validKeyID(kid) || len(enc) != base64.RawURLEncoding.EncodedLen(xsrfMaskedLen) {
		return fmt.Errorf("%w: malformed token", ErrTokenMismatch)
	}
	key := x.bindKeys.get()[kid]
	if key == nil {
		return fmt.Errorf("%w: token names unknown key %q", ErrTokenMismatch, kid)
	}
	var raw [xsrfMaskedLen]byte
	if n, err := base64.RawURLEncoding.Decode(raw[:], []byte(enc)); err != nil || n != xsrfMaskedLen {
		return fmt.Errorf("%w: malformed token", ErrTokenMismatch)
	}
	var got [xsrfBaseLen]byte
	subtle.XORBytes(got[:], raw[xsrfBaseLen:], raw[:xsrfBaseLen])
	if !hmac.Equal(got[:], bind(key, base, session)) {
		return fmt.Errorf("%w: token is for another XSRF cookie or session", ErrTokenMismatch)
	}
	return nil
}

// tokenSource returns the request's token function: the first call finds
// the XSRF cookie, or creates and sets one (or re-signs one made with an
// older key), then every call returns a freshly masked token. It is meant
// for the request's goroutine.
func (x *XSRF) tokenSource(w http.ResponseWriter, r *http.Request, st *reqstate.State) func() string {
	var base []byte
	return func() string {
		if base == nil {
			b, kid, err := x.cookie.get(r)
			valid := err == nil && len(b) == xsrfBaseLen
			if !valid {
				b = make([]byte, xsrfBaseLen)
				_, _ = rand.Read(b)
			}
			if !valid || kid != x.current {
				switch {
				case st.Writer().Committed() && valid:
					// Re-signing with the current key can wait: the cookie
					// verifies while its key is in the keyring.
				case st.Writer().Committed():
					x.log().LogAttrs(r.Context(), slog.LevelError,
						"cookiesecret: XSRF token made after the response was committed: its cookie could not be set, the form will be refused",
						slog.String("path", r.URL.Path), slog.String("request_id", st.ID))
				default:
					if err := x.cookie.Set(w, b); err != nil {
						x.log().LogAttrs(r.Context(), slog.LevelError, "cookiesecret: setting the XSRF cookie",
							slog.String("err", err.Error()), slog.String("request_id", st.ID))
					}
				}
			}
			base = b
		}
		return x.mask(base, x.sessionID(r))
	}
}

func (x *XSRF) log() *slog.Logger {
	if x.logger != nil {
		return x.logger
	}
	return slog.Default()
}

// XSRFToken returns a freshly masked XSRF token for r, for a form field
// named "_xsrf" or an X-XSRF-Token header, or "" when no [XSRF] handler is
// installed on the route. Call it before the response is committed: the
// first call may set the XSRF cookie.
func XSRFToken(r *http.Request) string {
	st := reqstate.From(r.Context())
	if st == nil || st.XSRFToken == nil {
		return ""
	}
	return st.XSRFToken()
}

// XSRFField returns the hidden form input carrying a fresh token:
// <input type="hidden" name="_xsrf" value="…">. Tokens contain only
// letters, digits, '-', '_' and '.', so the HTML is safe by construction.
// It returns "" when no [XSRF] handler is installed on the route; the
// form will then be refused.
func XSRFField(r *http.Request) template.HTML {
	tok := XSRFToken(r)
	if tok == "" {
		return ""
	}
	return template.HTML(`<input type="hidden" name="` + XSRFFormField + `" value="` + tok + `">`)
}

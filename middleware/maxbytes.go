package middleware

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"github.com/stormcellar/stormcellar/httperr"
	"github.com/stormcellar/stormcellar/internal/reqstate"
)

// Defaults of [MaxBytesOptions].
const (
	// DefaultBodyLimit is the body limit when none is configured: 1 MiB.
	DefaultBodyLimit = 1 << 20
	// DefaultMaxParts is the most parts a multipart body may have when no
	// other number is configured (Tornado 6.5.5 chose the same).
	DefaultMaxParts = 100
)

// maxBoundary is the longest multipart boundary RFC 2046 allows.
const maxBoundary = 70

// Errors a request body read may return, as the cause of the
// [httperr.HTTPError] that [MaxBytes] sends.
var (
	// ErrTooManyParts: the multipart body has more parts than allowed.
	ErrTooManyParts = errors.New("middleware: multipart body has too many parts")
	// ErrBoundary: the multipart boundary is longer than 70 bytes.
	ErrBoundary = errors.New("middleware: multipart boundary longer than 70 bytes")
	// ErrContentEncoding: the body's Content-Encoding cannot be
	// decompressed (only gzip and deflate can, one layer).
	ErrContentEncoding = errors.New("middleware: unsupported request Content-Encoding")
)

// MaxBytesOptions configure [MaxBytes]. The zero value limits bodies to
// 1 MiB and multipart bodies to 100 parts, and passes compressed bodies on
// compressed.
type MaxBytesOptions struct {
	// Limit is the largest request body accepted, in bytes, counted after
	// decompression when Decompress is on. Zero or negative means
	// [DefaultBodyLimit] (1 MiB). There is no unlimited setting: a route
	// that takes large uploads sets a large number.
	Limit int64
	// MaxParts is the most parts a multipart body may have, counted as the
	// body is read, whoever parses it (ParseMultipartForm, FormValue or a
	// streaming MultipartReader): the read that would pass on the
	// delimiter line opening part MaxParts+1 fails, so no parser gets that
	// part. Zero or negative means [DefaultMaxParts] (100).
	MaxParts int
	// Decompress makes a body sent with Content-Encoding gzip (or x-gzip)
	// or deflate reach the handler decompressed, with Content-Encoding and
	// Content-Length removed from the request. Limit then applies to the
	// decompressed bytes, and the compressed bytes read are also capped at
	// Limit, so neither a small bomb nor an endless stream of empty gzip
	// members gets through. Any other encoding, or more than one layer,
	// is refused with 415. Default off: the body is passed on as sent, and
	// Limit counts the bytes on the wire.
	Decompress bool
}

type bodyConfig struct {
	limit      int64
	maxParts   int
	decompress bool
}

// MaxBytes is middleware that limits the size of request bodies.
//
//   - A Content-Length above the limit is refused with 413 and
//     Connection: close before one byte of the body is read: the body
//     reader fails at once, without reading, and any response the handler
//     then tries to send other than its own 4xx becomes the 413.
//   - A body of unknown length (chunked) is cut at the limit: the read
//     that crosses it fails with an [*net/http.MaxBytesError], and the
//     response is a 413 with Connection: close even when the handler
//     ignores the error and writes a 200 (or a 500). Nothing past the
//     limit reaches the handler, and the connection is closed instead of
//     the rest of the body being drained.
//   - If the handler had already started its response when the limit is
//     crossed, the connection is aborted when the handler returns, so the
//     client does not take a response computed from a cut body for a
//     complete one.
//   - A multipart body with more parts than MaxParts fails the same way
//     (413, cause [ErrTooManyParts]); a boundary over 70 bytes is a 400
//     (cause [ErrBoundary]) before any of the body is read.
//   - A body is multipart when the first Content-Type value, lowercased
//     and trimmed with Unicode rules as [mime.ParseMediaType] does, starts
//     with "multipart/": "\u00a0multipart/…" and "MULTİPART/…" are, as
//     they are for net/http's ParseMultipartForm and MultipartReader. That
//     covers every value net/http takes for multipart; the only others are
//     values mime.ParseMediaType refuses, which are watched but have no
//     part count. The parts are counted with the boundary of
//     mime.ParseMediaType's parse of that value, the one net/http uses.
//   - Every occurrence of "--" and the boundary in the body counts as a
//     delimiter, wherever it is (RFC 2046 keeps the boundary out of the
//     parts). Delimiter MaxParts+1 passes only as the closing delimiter:
//     if the two bytes after it are not "--", or the body ends before
//     them, the read fails at the first byte that shows it, and nothing
//     from that byte on reaches the handler. Any later delimiter fails
//     the read at its last byte. The decision is the same however the
//     body is split into reads.
//   - MaxBytes removes, when the handler returns, the temporary files of a
//     multipart form parsed into the request it passed to the next
//     handler, or copied back into that request by an inner layer.
//     stormcellar's own layers that copy a request (timeouts.Deadline,
//     timeouts.BodyRate, the per-request state) copy a parsed form back.
//     A router or other middleware that copies the request between
//     MaxBytes and the handler (chi's Mux, otelhttp…) hides the form from
//     MaxBytes, and from net/http, which removes only the files of its
//     own request value (golang/go#74455): for routes that take uploads,
//     put a MaxBytes at route level inside the router (chi's r.Use or
//     r.With).
//
// Every refusal goes through [httperr.Write] (one log record, the error
// page of [httperr.Install]).
//
// Per-route limits: a MaxBytes below another one replaces its limits, up
// or down, for the routes it wraps, as long as no byte of the body has
// been read (after that it can only lower them). So a service can limit
// everything to 1 MiB at the top and let one route take 100 MiB:
//
//	r.Use(middleware.MaxBytes(middleware.MaxBytesOptions{}))
//	r.With(middleware.MaxBytes(middleware.MaxBytesOptions{Limit: 100 << 20})).
//		Post("/upload", upload)
//
// This is why an oversized Content-Length is answered when the handler
// reads the body or starts its response rather than before the first
// handler runs: only the innermost MaxBytes knows the route's limit. The
// handler is still called; a handler with side effects that ignores its
// body entirely runs them, as it would for a body of any size.
//
// A request without a body, or with a Content-Length within the limit
// that is neither multipart nor (with Decompress) encoded, costs no
// allocation: the server's own reader already stops at Content-Length. A
// body that needs watching costs one allocation (the reader and the
// response gate together), plus the per-request state shared by all
// stormcellar middleware if no other created it.
//
// The limit covers the body only. The request line and headers are
// limited by [net/http.Server.MaxHeaderBytes] (see the package
// documentation) and the request target by [MaxURLLength].
func MaxBytes(opts MaxBytesOptions) func(http.Handler) http.Handler {
	cfg := bodyConfig{limit: opts.Limit, maxParts: opts.MaxParts, decompress: opts.Decompress}
	if cfg.limit <= 0 {
		cfg.limit = DefaultBodyLimit
	}
	if cfg.maxParts <= 0 {
		cfg.maxParts = DefaultMaxParts
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if l := findLimiter(w); l != nil {
				l.configure(r, cfg)
				defer removeMultipart(r)
				next.ServeHTTP(w, r)
				return
			}
			if !cfg.needsLimiter(r) {
				defer removeMultipart(r)
				next.ServeHTTP(w, r)
				return
			}
			st, w, r := reqstate.Ensure(w, r)
			defer removeMultipart(r)
			l := &bodyLimiter{st: st, w: w, r: r, orig: r.Body, declared: r.ContentLength}
			l.configure(r, cfg)
			r.Body = (*limitedBody)(l)
			next.ServeHTTP((*gatedWriter)(l), r)
			l.finish()
		})
	}
}

func (c bodyConfig) needsLimiter(r *http.Request) bool {
	if r.Body == nil || r.Body == http.NoBody {
		return false
	}
	if r.ContentLength < 0 || r.ContentLength > c.limit {
		return true
	}
	if _, ok := r.Header["Content-Encoding"]; ok && c.decompress {
		return true
	}
	return isMultipart(r.Header)
}

// isMultipart reports whether the first Content-Type value names a
// multipart media type as [mime.ParseMediaType] reads it, the parse behind
// net/http's ParseMultipartForm and MultipartReader (see multipartType).
func isMultipart(h http.Header) bool {
	v := h["Content-Type"]
	if len(v) == 0 || v[0] == "" {
		return false
	}
	// The common case: an ASCII first byte that is neither white space
	// nor 'm' or 'M' decides.
	if c := v[0][0]; c < utf8.RuneSelf && c|0x20 != 'm' && c != ' ' && (c < '\t' || c > '\r') {
		return false
	}
	return multipartType(v[0])
}

// multipartType reports whether strings.TrimSpace(strings.ToLower(base)),
// where base is v up to its first ';', starts with "multipart/". That is
// the media type [mime.ParseMediaType] returns for v, with or without an
// error, unless it returns "" because the value is malformed; so every
// value that it, and net/http after it, takes for multipart is one, and
// the only others are values it refuses. Unicode rules apply as they do
// there: U+00A0, U+0085 and the other Unicode spaces are trimmed, and
// U+0130 ('İ') lowercases to 'i'. It allocates nothing; a value of ASCII
// bytes takes only the byte comparisons.
func multipartType(v string) bool {
	const prefix = "multipart/"
	i := 0
	for i < len(v) {
		if c := v[i]; c < utf8.RuneSelf {
			if c != ' ' && (c < '\t' || c > '\r') { // ASCII white space as strings.TrimSpace has it
				break
			}
			i++
			continue
		}
		// strings.ToLower turns an invalid byte into U+FFFD, which is
		// neither white space nor part of the prefix, as RuneError is.
		r, n := utf8.DecodeRuneInString(v[i:])
		if !unicode.IsSpace(unicode.ToLower(r)) {
			break
		}
		i += n
	}
	// The usual spelling. EqualFold also folds non-ASCII runes, but only
	// U+212A (K) and U+017F (ſ) fold to ASCII, and the prefix has neither
	// 'k' nor 's': a match is 10 ASCII bytes.
	if len(v)-i >= len(prefix) && strings.EqualFold(v[i:i+len(prefix)], prefix) {
		return true
	}
	for j := 0; j < len(prefix); j++ {
		if i >= len(v) {
			return false
		}
		c := v[i]
		if c < utf8.RuneSelf {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != prefix[j] {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(v[i:])
		if unicode.ToLower(r) != rune(prefix[j]) {
			return false
		}
		i += n
	}
	return true
}

func removeMultipart(r *http.Request) {
	if r.MultipartForm != nil {
		_ = r.MultipartForm.RemoveAll()
	}
}

// findLimiter returns the limiter an outer MaxBytes installed for this
// request, found through the writer's Unwrap chain.
func findLimiter(w http.ResponseWriter) *bodyLimiter {
	for range 32 {
		switch x := w.(type) {
		case *gatedWriter:
			return (*bodyLimiter)(x)
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return nil
		}
	}
	return nil
}

// bodyLimiter watches one request: it is the request body (as
// *limitedBody), the compressed-input counter (as *rawBody) and the
// response gate (as *gatedWriter), all in one allocation.
type bodyLimiter struct {
	st   *reqstate.State
	w    http.ResponseWriter // the writer outside the gate
	r    *http.Request       // the request as the creating MaxBytes saw it
	orig io.ReadCloser       // the body as received
	src  io.Reader           // what the body reads from: orig or a decompressor
	zr   io.Closer           // the decompressor, if any

	// rejected is set once the request must be refused; cause says why.
	// cause is written before rejected is set and read after it is seen.
	rejected atomic.Bool
	cause    error
	readErr  error // sticky error of the source (bad encoding…)
	preErr   error // refusal decided from the headers (encoding, boundary)

	limit, n, rawN, declared int64
	maxParts, delims         int
	encoding                 string // "gzip" or "deflate" when decompressing
	started                  bool   // a body read has begun
	encChecked, mpChecked    bool

	// The response gate; used only by the goroutine writing the response.
	gated, replaced bool
	gateStatus      int

	// Multipart delimiter ("--" + boundary) and its KMP failure table;
	// closeDashes counts the dashes still expected after delimiter
	// maxParts+1 for it to be the closing one.
	delim       []byte
	matched     int
	closeDashes int
	delimBuf    [maxBoundary + 2]byte
	fail        [maxBoundary + 2]uint8
}

// configure applies the config of one MaxBytes. Before the body is read it
// replaces the limits; afterwards it can only lower them.
func (l *bodyLimiter) configure(r *http.Request, cfg bodyConfig) {
	if l.started {
		if cfg.limit < l.limit {
			l.limit = cfg.limit
			// The compressed count too: a decompressor reads ahead, so it
			// can be past the new limit while the decompressed one is not.
			if l.n > l.limit || l.rawN > l.limit {
				l.reject(&http.MaxBytesError{Limit: l.limit})
			}
		}
		l.maxParts = min(l.maxParts, cfg.maxParts)
		return
	}
	l.limit, l.maxParts = cfg.limit, cfg.maxParts
	if cfg.decompress && !l.encChecked {
		l.encChecked = true
		l.setEncoding(r)
	}
	if !l.mpChecked {
		l.mpChecked = true
		l.setBoundary(r)
	}
	l.rejected.Store(false)
	l.cause = nil
	switch {
	case l.preErr != nil:
		l.reject(l.preErr)
	case l.declared > l.limit:
		l.reject(&http.MaxBytesError{Limit: l.limit})
	}
}

func (l *bodyLimiter) reject(cause error) {
	if l.rejected.Load() {
		return
	}
	l.cause = cause
	l.rejected.Store(true)
}

// setEncoding prepares decompression of a gzip or deflate body and refuses
// any other coding.
func (l *bodyLimiter) setEncoding(r *http.Request) {
	vals, ok := r.Header["Content-Encoding"]
	if !ok {
		return
	}
	var codings []string
	for _, v := range vals {
		for c := range strings.SplitSeq(v, ",") {
			c = strings.ToLower(strings.Trim(c, " \t"))
			if c != "" && c != "identity" {
				codings = append(codings, c)
			}
		}
	}
	switch {
	case len(codings) == 0:
		r.Header.Del("Content-Encoding")
		return
	case len(codings) == 1 && (codings[0] == "gzip" || codings[0] == "x-gzip"):
		l.encoding = "gzip"
	case len(codings) == 1 && codings[0] == "deflate":
		l.encoding = "deflate"
	default:
		l.preErr = &httperr.HTTPError{
			Status:  http.StatusUnsupportedMediaType,
			Message: "Unsupported Content-Encoding: send gzip, deflate or an uncompressed body",
			Header:  http.Header{"Accept-Encoding": {"gzip, deflate"}},
			Err:     ErrContentEncoding,
		}
		return
	}
	r.Header.Del("Content-Encoding")
	r.Header.Del("Content-Length")
	r.ContentLength = -1
}

// setBoundary prepares part counting for a multipart body, with the
// boundary of the parse net/http makes of the same value (Header.Get,
// then [mime.ParseMediaType]).
func (l *bodyLimiter) setBoundary(r *http.Request) {
	if !isMultipart(r.Header) {
		return
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if !strings.HasPrefix(mt, "multipart/") || err != nil || params["boundary"] == "" {
		// Malformed, or without a boundary: net/http's parser refuses it
		// (and multipart.NewReader refuses an empty boundary).
		return
	}
	b := params["boundary"]
	if len(b) > maxBoundary {
		l.preErr = httperr.BadRequest("The multipart boundary is longer than 70 bytes", ErrBoundary)
		return
	}
	l.delim = append(append(l.delimBuf[:0], "--"...), b...)
	k := 0
	for i := 1; i < len(l.delim); i++ {
		for k > 0 && l.delim[i] != l.delim[k] {
			k = int(l.fail[k-1])
		}
		if l.delim[i] == l.delim[k] {
			k++
		}
		l.fail[i] = uint8(k)
	}
}

// countParts scans body bytes for delimiters ("--" + boundary, every
// occurrence, overlapping ones included) and decides whether the body has
// more than maxParts parts. A body with p parts has p+1 delimiters, the
// last one closing it ("--" + boundary + "--"). So delimiter maxParts+1 is
// refused unless the two bytes after it are "--": any other byte there
// (or the end of the body, see partsEnded) would make it open part
// maxParts+1. Any later delimiter is refused. It returns how many bytes of
// p come before the byte that decided a refusal (all of p when there is
// none) and whether there is one. The state it keeps between calls (the
// matched length, the dashes still expected) makes the decision and the
// count the same however the body is split into reads.
func (l *bodyLimiter) countParts(p []byte) (int, bool) {
	d, m := l.delim, l.matched
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case l.closeDashes > 0:
			// A byte after delimiter maxParts+1: the matcher still sees
			// it below, since a dash can begin the next delimiter.
			if c != '-' {
				l.matched = m
				return i, true
			}
			l.closeDashes--
		case m == 0:
			j := bytes.IndexByte(p[i:], d[0])
			if j < 0 {
				l.matched = 0
				return len(p), false
			}
			i += j
			c = p[i]
		}
		for m > 0 && c != d[m] {
			m = int(l.fail[m-1])
		}
		if c == d[m] {
			m++
			if m == len(d) {
				l.delims++
				m = int(l.fail[m-1])
				switch {
				case l.delims > l.maxParts+1:
					l.matched = m
					return i, true
				case l.delims == l.maxParts+1:
					l.closeDashes = 2
				}
			}
		}
	}
	l.matched = m
	return len(p), false
}

// partsEnded reports whether the part count refuses a body that ends
// here: it does when the body ends within the two bytes that say whether
// delimiter maxParts+1 closes it.
func (l *bodyLimiter) partsEnded() bool { return l.closeDashes > 0 }

// open sets up the source on the first read.
func (l *bodyLimiter) open() error {
	raw := (*rawBody)(l)
	switch l.encoding {
	case "gzip":
		zr, err := gzip.NewReader(raw)
		if err != nil {
			return l.decodeErr(err)
		}
		l.src, l.zr = zr, zr
	case "deflate":
		zr, err := zlib.NewReader(raw)
		if err != nil {
			return l.decodeErr(err)
		}
		l.src, l.zr = zr, zr
	default:
		l.src = l.orig
	}
	return nil
}

// decodeErr turns a format error of the decompressor into a 400; other
// errors (the client went away, the compressed limit) pass unchanged.
func (l *bodyLimiter) decodeErr(err error) error {
	if l.rejected.Load() {
		return l.cause
	}
	if err == io.EOF {
		// An empty body declared as compressed: nothing to decompress.
		l.src = eofReader{}
		return nil
	}
	var corrupt flate.CorruptInputError
	if errors.Is(err, gzip.ErrHeader) || errors.Is(err, gzip.ErrChecksum) ||
		errors.Is(err, zlib.ErrHeader) || errors.Is(err, zlib.ErrChecksum) ||
		errors.Is(err, zlib.ErrDictionary) || errors.As(err, &corrupt) {
		return httperr.BadRequest("The request body is not valid "+l.encoding, err)
	}
	return err
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// limitedBody is the request body handed to the handler.
type limitedBody bodyLimiter

// Read reads at most up to the limit. The read that would cross it returns
// the bytes up to the limit and an [*net/http.MaxBytesError]; every later
// read returns the error at once.
func (b *limitedBody) Read(p []byte) (int, error) {
	l := (*bodyLimiter)(b)
	if l.rejected.Load() {
		return 0, l.cause
	}
	if l.readErr != nil {
		return 0, l.readErr
	}
	l.started = true
	if l.src == nil {
		if err := l.open(); err != nil {
			if l.rejected.Load() {
				return 0, l.cause
			}
			l.readErr = err
			return 0, err
		}
	}
	if len(p) == 0 {
		return 0, nil
	}
	room := l.limit - l.n
	if int64(len(p)) > room+1 {
		p = p[:room+1]
	}
	n, err := l.src.Read(p)
	if int64(n) > room {
		n = int(room)
		l.n = l.limit
		l.reject(&http.MaxBytesError{Limit: l.limit})
	} else {
		l.n += int64(n)
	}
	if l.delim != nil {
		// Counted even in the read that crossed the limit: the bytes it
		// hands on could hold parts past MaxParts for a streaming reader.
		k, over := l.countParts(p[:n])
		if over || (err == io.EOF && l.partsEnded()) {
			n = k // nothing from the deciding byte on reaches the handler
			l.reject(&httperr.HTTPError{
				Status:  http.StatusRequestEntityTooLarge,
				Kind:    httperr.KindBodyTooLarge,
				Message: "Too many parts in the multipart body",
				Header:  http.Header{"Connection": {"close"}},
				Err:     ErrTooManyParts,
			})
		}
	}
	if l.rejected.Load() {
		return n, l.cause
	}
	if err != nil && err != io.EOF && l.encoding != "" {
		err = l.decodeErr(err)
		if err != io.EOF {
			l.readErr = err
		}
	}
	return n, err
}

// Close closes the decompressor, if any, and the body as received.
func (b *limitedBody) Close() error {
	l := (*bodyLimiter)(b)
	if l.zr != nil {
		_ = l.zr.Close()
	}
	return l.orig.Close()
}

// rawBody reads the body as received for the decompressor, capped at the
// limit so that compressed input that decompresses to little (a stream of
// empty gzip members) cannot be sent forever.
type rawBody bodyLimiter

func (b *rawBody) Read(p []byte) (int, error) {
	l := (*bodyLimiter)(b)
	if l.rejected.Load() {
		return 0, l.cause
	}
	room := max(l.limit-l.rawN, 0)
	if int64(len(p)) > room+1 {
		p = p[:room+1]
	}
	n, err := l.orig.Read(p)
	if int64(n) > room {
		l.rawN = l.limit
		l.reject(&http.MaxBytesError{Limit: l.limit})
		return int(room), l.cause
	}
	l.rawN += int64(n)
	return n, err
}

// gatedWriter is the response writer handed to the handler: it passes
// everything through, except that a response started after the request
// was refused is replaced by the refusal.
type gatedWriter bodyLimiter

// gate is called when the handler commits a status. It reports whether
// the handler's response may go out.
func (l *bodyLimiter) gate(status int) bool {
	if l.gated {
		return !l.replaced
	}
	l.gated = true
	l.gateStatus = status
	// The handler's own 4xx stands (it may be the 413 itself, or a refusal
	// for another reason); a success, a redirect or a 5xx caused by the
	// failed read is replaced.
	if l.rejected.Load() && (status < 400 || status >= 500) && !l.st.Writer().Committed() {
		l.replaced = true
		httperr.Write(l.w, l.r, l.cause)
		return false
	}
	return true
}

// finish runs when the handler returns.
func (l *bodyLimiter) finish() {
	if !l.rejected.Load() || l.replaced {
		return
	}
	sw := l.st.Writer()
	if !sw.Committed() {
		httperr.Write(l.w, l.r, l.cause)
		return
	}
	if sw.Hijacked() || (l.gateStatus >= 400 && l.gateStatus < 500) {
		return
	}
	// The response went out before the body was cut: log, then abort so
	// the client sees a truncated response.
	httperr.Write(l.w, l.r, l.cause)
	panic(http.ErrAbortHandler)
}

// Header implements [net/http.ResponseWriter].
func (g *gatedWriter) Header() http.Header { return g.w.Header() }

// WriteHeader implements [net/http.ResponseWriter].
func (g *gatedWriter) WriteHeader(code int) {
	l := (*bodyLimiter)(g)
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		l.w.WriteHeader(code) // informational: commits nothing
		return
	}
	if l.gate(code) {
		l.w.WriteHeader(code)
	}
}

// Write implements [net/http.ResponseWriter].
func (g *gatedWriter) Write(p []byte) (int, error) {
	l := (*bodyLimiter)(g)
	if !l.gate(http.StatusOK) {
		return 0, l.cause
	}
	return l.w.Write(p)
}

// WriteString implements [io.StringWriter].
func (g *gatedWriter) WriteString(s string) (int, error) {
	l := (*bodyLimiter)(g)
	if !l.gate(http.StatusOK) {
		return 0, l.cause
	}
	return io.WriteString(l.w, s)
}

// ReadFrom implements [io.ReaderFrom], keeping the sendfile path.
func (g *gatedWriter) ReadFrom(src io.Reader) (int64, error) {
	l := (*bodyLimiter)(g)
	if !l.gate(http.StatusOK) {
		return 0, l.cause
	}
	return io.Copy(l.w, src)
}

// Flush implements [net/http.Flusher].
func (g *gatedWriter) Flush() { _ = g.FlushError() }

// FlushError flushes, for [net/http.ResponseController].
func (g *gatedWriter) FlushError() error {
	l := (*bodyLimiter)(g)
	if !l.gate(http.StatusOK) {
		return l.cause
	}
	return http.NewResponseController(l.w).Flush()
}

// Hijack implements [net/http.Hijacker]. A refused request cannot be
// hijacked: it gets the refusal.
func (g *gatedWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	l := (*bodyLimiter)(g)
	if l.rejected.Load() && !l.gate(http.StatusSwitchingProtocols) {
		return nil, nil, l.cause
	}
	return http.NewResponseController(l.w).Hijack()
}

// Unwrap returns the writer outside the gate, for
// [net/http.ResponseController].
func (g *gatedWriter) Unwrap() http.ResponseWriter { return g.w }

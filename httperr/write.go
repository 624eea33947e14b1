package httperr

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/stormcellar/stormcellar/internal/clientip"
	"github.com/stormcellar/stormcellar/internal/reqstate"
)

// maxMessage is the most of a public message that is sent.
const maxMessage = 512

// Write sends the error response for err: the status, a safe public
// message and the request id, in the format negotiated from the request's
// Accept header (see [Negotiate]), with one log record and one call of the
// observer. It never writes the cause, a stack or a Go type name, unless
// Options.InsecureExposeCause is on.
//
// err may be anything: an [*HTTPError] anywhere in its chain gives the
// status and message; an [*http.MaxBytesError] gives 413 with
// Connection: close; [context.DeadlineExceeded] gives 503 when the
// request's own deadline passed and 504 when something the handler waited
// on timed out; [context.Canceled] after the client went away is recorded
// as 499; any other error, and a nil one, gives 500.
//
// Headers the handler set that describe the body it meant to send
// (Content-Length, Content-Encoding, Content-Disposition, ETag, Set-Cookie…)
// are removed; others, such as security headers set by earlier middleware,
// are kept. Content-Type is set with a charset, with
// X-Content-Type-Options: nosniff, Cache-Control: no-store and
// Vary: Accept. A HEAD request gets the headers without the body.
//
// If the response was already committed (the status line was sent, or the
// connection hijacked), Write sends nothing more: the record says so, and
// the caller should abort the response with panic(http.ErrAbortHandler) so
// the client sees a truncated response rather than one that looks
// complete. [HandlerFunc] does this itself. Commit tracking needs the
// writer wrapped by [Install] (or by any stormcellar middleware); on a bare
// writer Write cannot tell, and net/http logs a superfluous WriteHeader.
func Write(w http.ResponseWriter, r *http.Request, err error) {
	write(w, r, err)
}

// WriteStatus is [Write] for a bare status, with its status text and
// [KindForStatus].
func WriteStatus(w http.ResponseWriter, r *http.Request, status int) {
	write(w, r, &HTTPError{Status: status})
}

// headersToDrop describe a body that is no longer being sent.
var headersToDrop = [...]string{
	"Content-Length", "Content-Encoding", "Content-Range", "Content-Disposition",
	"Content-Language", "Content-Location", "Etag", "Last-Modified", "Location",
	"Set-Cookie", "Trailer", "Transfer-Encoding", "Expires", "Pragma", "Accept-Ranges",
}

// protectedHeaders are set by write and cannot be overridden through
// HTTPError.Header.
func protectedHeader(k string) bool {
	switch http.CanonicalHeaderKey(k) {
	case "Content-Type", "Content-Length", "Cache-Control", "X-Content-Type-Options",
		"Transfer-Encoding", "Set-Cookie":
		return true
	}
	return false
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// write sends the error and reports whether it could: false when the
// response had already been committed.
func write(w http.ResponseWriter, r *http.Request, err error) (sent bool) {
	st := reqstate.From(r.Context())
	cfg := configOf(st)
	he, cause := classify(r, err)
	kind := he.kind()

	var reqID string
	if st != nil {
		reqID = st.RequestID()
	} else {
		reqID = reqstate.NewID()
	}

	committed := st != nil && st.Writer().Committed()
	var renderErr error
	if !committed {
		renderErr = send(w, r, cfg, &he, kind, reqID, cause)
	}
	cfg.log(r, he.Status, kind, reqID, cause, committed, st, renderErr)
	cfg.observe(r, Event{Status: he.Status, Kind: kind, RequestID: reqID, Err: cause,
		Committed: committed, Request: r})
	return !committed
}

func send(w http.ResponseWriter, r *http.Request, cfg *config, he *HTTPError, kind Kind, reqID string, cause error) (renderErr error) {
	title := http.StatusText(he.Status)
	if title == "" {
		title = "Error"
	}
	p := Problem{Status: he.Status, Title: title, Message: title, RequestID: reqID, Kind: kind,
		Format: Negotiate(r.Header.Get("Accept"))}
	if he.Message != "" {
		p.Message = publicText(he.Message)
		if he.Status == statusClientClosed {
			p.Title = p.Message
		}
	}
	if cfg.insecureCause && cause != nil {
		p.Detail = cause.Error()
	}

	buf := bufPool.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 64<<10 {
			buf.Reset()
			bufPool.Put(buf)
		}
	}()
	ct, renderErr := cfg.render(buf, r, p)
	if renderErr != nil {
		buf.Reset()
		ct, _ = DefaultRenderer{}.Render(buf, r, p)
	}
	if ct == "" {
		ct = p.Format.contentType()
	}

	h := w.Header()
	for _, k := range headersToDrop {
		delete(h, k)
	}
	for k, vs := range he.Header {
		if !protectedHeader(k) {
			// A copy: the error value may be shared by concurrent
			// requests, and the response's header may be appended to.
			h[http.CanonicalHeaderKey(k)] = slices.Clone(vs)
		}
	}
	// One backing array for the values this function sets; each header
	// gets a full slice expression so that a later Add cannot overwrite
	// its neighbour.
	vals := [...]string{ct, "nosniff", "no-store", strconv.Itoa(buf.Len()), "Accept"}
	v := make([]string, len(vals))
	copy(v, vals[:])
	h["Content-Type"] = v[0:1:1]
	h["X-Content-Type-Options"] = v[1:2:2]
	h["Cache-Control"] = v[2:3:3]
	h["Content-Length"] = v[3:4:4]
	if !varyHasAccept(h) {
		if vary := h["Vary"]; len(vary) > 0 {
			h["Vary"] = append(vary, "Accept")
		} else {
			h["Vary"] = v[4:5:5]
		}
	}
	w.WriteHeader(he.Status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
	return renderErr
}

func varyHasAccept(h http.Header) bool {
	for _, v := range h["Vary"] {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); strings.EqualFold(f, "Accept") || f == "*" {
				return true
			}
		}
	}
	return false
}

// publicText makes a public message safe to place in any format: valid
// UTF-8, no control characters (CR and LF included), at most maxMessage
// bytes. Escaping for the format is the renderer's job.
func publicText(s string) string {
	if len(s) > maxMessage {
		cut := maxMessage
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c >= utf8.RuneSelf {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || (r >= 0x7f && r < 0xa0) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
}

// remote is the client address for the log: chi's trusted-proxy
// resolver's answer when the application installed one, else the peer.
func remote(r *http.Request) string {
	if a := clientip.Addr(r); a.IsValid() {
		return a.String()
	}
	return r.RemoteAddr
}

// render calls the configured renderer, turning a panic into an error.
func (c *config) render(buf *bytes.Buffer, r *http.Request, p Problem) (ct string, err error) {
	if c.renderer == nil {
		return DefaultRenderer{}.Render(buf, r, p)
	}
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("httperr: renderer panicked: %v", v)
		}
	}()
	return c.renderer.Render(buf, r, p)
}

func (c *config) log(r *http.Request, status int, kind Kind, reqID string, cause error,
	committed bool, st *reqstate.State, renderErr error) {
	logger := c.logger
	if logger == nil {
		logger = slog.Default()
	}
	level, msg := slog.LevelWarn, "request rejected"
	switch {
	case status >= 500:
		level, msg = slog.LevelError, "request failed"
	case kind == KindCanceled:
		level, msg = slog.LevelInfo, "client went away"
	}
	ctx := r.Context()
	if !logger.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 10)
	attrs = append(attrs,
		slog.Int("status", status),
		slog.String("kind", string(kind)),
		slog.String("request_id", reqID),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.String("remote", remote(r)),
	)
	if cause != nil {
		attrs = append(attrs, slog.String("err", cause.Error()))
	}
	if committed {
		hijacked := st.Writer().Hijacked()
		attrs = append(attrs, slog.Bool("committed", true), slog.Bool("hijacked", hijacked))
		msg += "; response already committed, nothing written"
	}
	if renderErr != nil {
		attrs = append(attrs, slog.String("render_err", renderErr.Error()))
	}
	logger.LogAttrs(context.WithoutCancel(ctx), level, msg, attrs...)
}

func (c *config) observe(r *http.Request, ev Event) {
	if c.observer == nil {
		return
	}
	defer func() {
		if v := recover(); v != nil {
			logger := c.logger
			if logger == nil {
				logger = slog.Default()
			}
			logger.LogAttrs(r.Context(), slog.LevelError, "httperr observer panicked",
				slog.String("request_id", ev.RequestID), slog.String("panic", fmt.Sprint(v)))
		}
	}()
	c.observer(ev)
}

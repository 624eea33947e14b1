package httperr

import (
	"bytes"
	"net/http"
	"strconv"
	"unicode/utf8"
)

// Problem is what a [Renderer] may show: nothing in it is secret unless
// the Insecure setting of [Options] put the cause in Detail.
type Problem struct {
	Status    int    // 400–599
	Title     string // the status text, e.g. "Not Found"
	Message   string // the public message; equals Title unless the error set one
	RequestID string // the id also found in the log record
	Kind      Kind
	Format    Format // the format negotiated from the Accept header
	// Detail is the cause's text. It is empty unless
	// Options.InsecureExposeCause is set.
	Detail string
}

// A Renderer writes the body of an error response. It is given a buffer,
// not the ResponseWriter, so that it cannot send a status, headers or half
// a page: [Write] sends the status, the safety headers and the whole body
// at once.
//
// Render writes the body for p into dst and returns its Content-Type; an
// empty one means the Content-Type of p.Format. The renderer must escape
// every field of p for its format. If it returns an error or panics, the
// [DefaultRenderer] page is sent instead and the failure is logged in the
// same record.
type Renderer interface {
	Render(dst *bytes.Buffer, r *http.Request, p Problem) (contentType string, err error)
}

// RendererFunc adapts a function to a [Renderer].
type RendererFunc func(dst *bytes.Buffer, r *http.Request, p Problem) (string, error)

// Render calls f.
func (f RendererFunc) Render(dst *bytes.Buffer, r *http.Request, p Problem) (string, error) {
	return f(dst, r, p)
}

// DefaultRenderer writes a minimal page in the negotiated format: the
// status, the public message, the request id, and nothing else. The HTML
// page has no script or style, so it satisfies any Content-Security-Policy.
//
//	HTML: <!DOCTYPE html>…<title>404: Not Found</title>…
//	JSON: {"error":{"status":404,"message":"Not Found","request_id":"…"}}
//	text: 404 Not Found
//	      request_id: …
type DefaultRenderer struct{}

// Render implements [Renderer].
func (DefaultRenderer) Render(dst *bytes.Buffer, _ *http.Request, p Problem) (string, error) {
	switch p.Format {
	case FormatHTML:
		renderHTML(dst, p)
	case FormatJSON:
		renderJSON(dst, p)
	default:
		renderText(dst, p)
	}
	return "", nil
}

// writeInt writes n in decimal without allocating.
func writeInt(b *bytes.Buffer, n int) {
	var scratch [20]byte
	b.Write(strconv.AppendInt(scratch[:0], int64(n), 10))
}

func renderHTML(b *bytes.Buffer, p Problem) {
	b.WriteString("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>")
	writeInt(b, p.Status)
	b.WriteString(": ")
	HTMLEscape(b, p.Title)
	b.WriteString("</title></head><body><h1>")
	writeInt(b, p.Status)
	b.WriteString(": ")
	HTMLEscape(b, p.Title)
	b.WriteString("</h1>\n")
	if p.Message != p.Title {
		b.WriteString("<p>")
		HTMLEscape(b, p.Message)
		b.WriteString("</p>\n")
	}
	if p.Detail != "" {
		b.WriteString("<pre>")
		HTMLEscape(b, p.Detail)
		b.WriteString("</pre>\n")
	}
	b.WriteString("<p>Request ID: <code>")
	HTMLEscape(b, p.RequestID)
	b.WriteString("</code></p></body></html>\n")
}

func renderJSON(b *bytes.Buffer, p Problem) {
	b.WriteString(`{"error":{"status":`)
	writeInt(b, p.Status)
	b.WriteString(`,"message":`)
	JSONString(b, p.Message)
	b.WriteString(`,"request_id":`)
	JSONString(b, p.RequestID)
	if p.Detail != "" {
		b.WriteString(`,"detail":`)
		JSONString(b, p.Detail)
	}
	b.WriteString("}}\n")
}

func renderText(b *bytes.Buffer, p Problem) {
	writeInt(b, p.Status)
	b.WriteByte(' ')
	b.WriteString(p.Title)
	if p.Message != p.Title {
		b.WriteString(": ")
		b.WriteString(p.Message)
	}
	b.WriteString("\nrequest_id: ")
	b.WriteString(p.RequestID)
	b.WriteByte('\n')
	if p.Detail != "" {
		b.WriteString("\n")
		b.WriteString(p.Detail)
		b.WriteByte('\n')
	}
}

// HTMLEscape writes s to b with &, <, >, " and ' escaped, so the result is
// safe in HTML text and in quoted attribute values.
func HTMLEscape(b *bytes.Buffer, s string) {
	last := 0
	for i := 0; i < len(s); i++ {
		var esc string
		switch s[i] {
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '"':
			esc = "&#34;"
		case '\'':
			esc = "&#39;"
		default:
			continue
		}
		b.WriteString(s[last:i])
		b.WriteString(esc)
		last = i + 1
	}
	b.WriteString(s[last:])
}

// JSONString writes s to b as a JSON string. Like encoding/json it escapes
// <, > and & (so the result is also safe inside HTML), U+2028 and U+2029
// (so it is safe inside JavaScript), and every control character; invalid
// UTF-8 becomes U+FFFD.
func JSONString(b *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	last := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b.WriteString(s[last:i])
			switch c {
			case '"', '\\':
				b.WriteByte('\\')
				b.WriteByte(c)
			case '\n':
				b.WriteString(`\n`)
			case '\r':
				b.WriteString(`\r`)
			case '\t':
				b.WriteString(`\t`)
			default:
				b.WriteString(`\u00`)
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&0xf])
			}
			i++
			last = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteString(s[last:i])
			b.WriteString(`\ufffd`)
			i += size
			last = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b.WriteString(s[last:i])
			b.WriteString(`\u202`)
			b.WriteByte(hex[r&0xf])
			i += size
			last = i
			continue
		}
		i += size
	}
	b.WriteString(s[last:])
	b.WriteByte('"')
}

package safetmpl

import "github.com/stormcellar/stormcellar/internal/reqstate"

// pageBuffer receives a page while it executes. Nothing reaches the
// client until execution has succeeded. It also fills in the per-request
// values: a write whose bytes are one of the markers' own (a request
// function's text node, never a value from data) becomes the escaped nonce or token.
type pageBuffer struct {
	buf       []byte
	max       int
	marks     *markers
	st        *reqstate.State
	fieldOpen []byte
	token     string
	tokenUsed bool
}

func (b *pageBuffer) reset() {
	b.buf = b.buf[:0]
	b.marks, b.st, b.fieldOpen = nil, nil, nil
	b.token, b.tokenUsed = "", false
}

// Write implements io.Writer for text/template.
func (b *pageBuffer) Write(p []byte) (int, error) {
	if len(p) != 0 && b.marks != nil {
		switch &p[0] {
		case &b.marks.nonce[0]:
			var nonce string
			if b.st != nil {
				nonce = b.st.Nonce
			}
			return len(p), b.appendEscaped(nonce)
		case &b.marks.xsrfToken[0]:
			return len(p), b.writeToken(false)
		case &b.marks.xsrfField[0]:
			return len(p), b.writeToken(true)
		}
	}
	if len(b.buf)+len(p) > b.max {
		return 0, ErrPageTooLarge
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *pageBuffer) appendEscaped(s string) error {
	if len(b.buf)+len(s)*6 > b.max {
		return ErrPageTooLarge
	}
	b.buf = appendEscaped(b.buf, s)
	return nil
}

// writeToken writes the request's XSRF token, as a hidden input or alone.
// Without an XSRF middleware, or with an empty token, the render fails: a
// form must not go out without its token.
func (b *pageBuffer) writeToken(field bool) error {
	if !b.tokenUsed {
		if b.st == nil || b.st.XSRFToken == nil {
			return ErrNoXSRF
		}
		b.token = b.st.XSRFToken()
		if b.token == "" {
			return ErrNoXSRF
		}
		b.tokenUsed = true
	}
	if !field {
		return b.appendEscaped(b.token)
	}
	if len(b.buf)+len(b.fieldOpen)+2 > b.max {
		return ErrPageTooLarge
	}
	b.buf = append(b.buf, b.fieldOpen...)
	if err := b.appendEscaped(b.token); err != nil {
		return err
	}
	b.buf = append(b.buf, '"', '>')
	return nil
}

package safetmpl

import (
	"errors"
	"strconv"
	"strings"
)

// Errors returned by [New] for templates it refuses. Each refused action is
// reported as an [*Error] that wraps one of these; test with [errors.Is].
var (
	// ErrScriptContext: an action whose output would land in JavaScript: a
	// <script> element, an on* event-handler attribute, a javascript:
	// scheme that html/template treats as script, an attribute of a
	// <script> or <base> start tag, a JS template literal, a JS regular
	// expression, or a value an SVG animation sets (the to, from, by,
	// values or attributeName attribute of <animate>, <set>,
	// <animateMotion>, <animateTransform> or <animateColor>, which can
	// make an href a javascript: URL). Options.InsecureAllowScriptActions
	// allows the first ones; nothing allows template literals, regular
	// expressions and animation values.
	ErrScriptContext = errors.New("safetmpl: action in a script context")
	// ErrStyleContext: an action whose output would land in CSS: a <style>
	// element or a style attribute. Options.InsecureAllowStyleActions
	// allows it.
	ErrStyleContext = errors.New("safetmpl: action in a style context")
	// ErrMarkupContext: an action that would decide markup, or an
	// instruction the browser obeys, instead of text: a tag or attribute
	// name, an unquoted attribute value, an HTML comment, an srcdoc
	// attribute (whose value is parsed as a whole document), the
	// http-equiv or charset attribute of a <meta> tag, or its content
	// attribute if the tag has an http-equiv attribute, in any order
	// (refresh navigates to the URL in it). No option allows it.
	ErrMarkupContext = errors.New("safetmpl: action in a markup context")
	// ErrReserved: nonce, xsrfField or xsrfToken used other than as a whole
	// action ({{nonce}}) in a context where its value is safe, or a
	// reserved identifier used in a template.
	ErrReserved = errors.New("safetmpl: reserved function misused")
	// ErrConfig: an invalid option (bad pattern, reserved function name,
	// duplicate file, no pages…).
	ErrConfig = errors.New("safetmpl: invalid configuration")
)

// Errors reported at request time, always as a 500 through httperr; the
// client never sees part of the page.
var (
	// ErrNoSuchPage: Render was asked for a page the set does not have.
	ErrNoSuchPage = errors.New("safetmpl: no such page")
	// ErrNoXSRF: the page prints {{xsrfField}} or {{xsrfToken}} but no
	// XSRF middleware put a token source in the request state, or the
	// source returned an empty token. The page is not sent: a form without
	// its token would only fail later, at submit.
	ErrNoXSRF = errors.New("safetmpl: page prints an XSRF token and the request has none (is the XSRF middleware installed?)")
	// ErrPageTooLarge: the rendered page exceeded Options.MaxPageSize.
	ErrPageTooLarge = errors.New("safetmpl: rendered page exceeds MaxPageSize")
	// ErrBadStatus: RenderStatus was given a status that cannot carry a
	// page (below 200, 204, 304, or above 599).
	ErrBadStatus = errors.New("safetmpl: status cannot carry a page")
)

// Error is a template that [New] refused, with the file and line of the
// action and the reason.
type Error struct {
	// File is the template file (its path in the FS, or the name given to
	// [Const]).
	File string
	// Line and Col locate the action in File; 0 when unknown.
	Line, Col int
	// Action is the action as written, such as {{.Name}}.
	Action string
	// Context says where the action is, such as "a <script> element" or
	// "the onclick attribute".
	Context string
	// Err is one of ErrScriptContext, ErrStyleContext, ErrMarkupContext or
	// ErrReserved.
	Err error
	// Hint says what to do instead.
	Hint string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("safetmpl: ")
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
		if e.Col > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(e.Col))
		}
	}
	b.WriteString(": ")
	b.WriteString(e.Action)
	if e.Context != "" {
		b.WriteString(" in ")
		b.WriteString(e.Context)
	}
	b.WriteString(": ")
	b.WriteString(strings.TrimPrefix(e.Err.Error(), "safetmpl: "))
	if e.Hint != "" {
		b.WriteString("; ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

// Unwrap returns the sentinel.
func (e *Error) Unwrap() error { return e.Err }

// parseLocation splits text/template's "name:line:col" location.
func parseLocation(loc string) (file string, line, col int) {
	file = loc
	if i := strings.LastIndexByte(file, ':'); i >= 0 {
		if n, err := strconv.Atoi(file[i+1:]); err == nil {
			col, file = n, file[:i]
			if j := strings.LastIndexByte(file, ':'); j >= 0 {
				if m, err := strconv.Atoi(file[j+1:]); err == nil {
					line, file = m, file[:j]
					return file, line, col
				}
			}
			// Only one number: it is the line.
			return file, col, 0
		}
	}
	return file, 0, 0
}

package safetmpl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"reflect"
	"strings"
)

// stringConstant is the parameter type of the functions that accept only
// compile-time constants. It is unexported, so a caller cannot name it to
// convert a variable: only an untyped string constant (a literal, or a
// constant expression of literals) is assignable to it.
type stringConstant string

// HTML is markup that safetmpl inserts without escaping in HTML text. It is
// a struct, not a string type, so it cannot be converted from a string:
// the only ways to get one are [ConstHTML] (a compile-time constant) and
// [Set.Sanitize] (the output of the set's sanitiser). In any other context
// (an attribute, a URL, RCDATA such as <textarea>) it is escaped like any
// other text.
//
// The zero HTML is empty.
type HTML struct {
	s string
}

// ConstHTML returns trusted markup written in the program. Only an untyped
// string constant compiles as its argument: a value computed at run time,
// and so any value from a request, does not.
func ConstHTML(markup stringConstant) HTML { return HTML{s: string(markup)} }

// String returns the markup. Printing it in a template anywhere but HTML
// text escapes it.
func (h HTML) String() string { return h.s }

// The html/template escapers that safetmpl replaces with its own,
// equivalent for plain values, that refuse html/template's typed strings.
const (
	escHTML      = "_html_template_htmlescaper"
	escURLFilter = "_html_template_urlfilter"

	ownHTML      = "_safetmpl_htmlescaper"
	ownURLFilter = "_safetmpl_urlfilter"
	ownUntyped   = "_safetmpl_untyped"
)

// escapeHTMLText is safetmpl's escaper for HTML text. For plain values it
// produces exactly what html/template's produces; it passes [HTML]
// through, and escapes html/template's typed strings (template.HTML,
// template.URL…) like plain text instead of trusting them.
func escapeHTMLText(v any) string {
	s, trusted := stringify(v)
	if trusted {
		return s
	}
	return escapeString(s)
}

// filterURL is safetmpl's replacement for html/template's URL filter: a
// value whose scheme is not http, https or mailto becomes "#ZgotmplZ".
// Unlike html/template's, it applies to template.URL values too.
func filterURL(v any) string {
	s, _ := stringify(v)
	if protocol, _, ok := strings.Cut(s, ":"); ok && !strings.Contains(protocol, "/") {
		if !strings.EqualFold(protocol, "http") && !strings.EqualFold(protocol, "https") &&
			!strings.EqualFold(protocol, "mailto") {
			return "#ZgotmplZ"
		}
	}
	return s
}

// untyped turns html/template's typed strings and [HTML] into plain
// strings, so that the html/template escaper that follows treats them as
// untrusted. Other values pass unchanged.
func untyped(v any) any {
	switch v.(type) {
	case nil, string:
		return v
	}
	switch x := indirect(v).(type) {
	case HTML:
		return x.s
	case template.HTML, template.HTMLAttr, template.JS, template.JSStr, template.CSS,
		template.URL, template.Srcset:
		return reflect.ValueOf(x).String()
	}
	return v
}

// stringify converts a pipeline value to text the way html/template does
// (pointers followed, nil printed as nothing, Stringer and error used),
// and reports whether it is trusted markup ([HTML]). html/template's typed
// strings are returned as plain, untrusted text.
func stringify(v any) (s string, trusted bool) {
	switch x := v.(type) {
	case nil:
		return "", false
	case string:
		return x, false
	case HTML:
		return x.s, true
	}
	switch x := indirect(v).(type) {
	case string:
		return x, false
	case HTML:
		return x.s, true
	case template.HTML, template.HTMLAttr, template.JS, template.JSStr, template.CSS,
		template.URL, template.Srcset:
		return reflect.ValueOf(x).String(), false
	}
	return fmt.Sprint(indirectToStringerOrError(v)), false
}

var (
	errorType    = reflect.TypeFor[error]()
	stringerType = reflect.TypeFor[fmt.Stringer]()
)

// indirect follows pointers to the base value (or a nil pointer).
func indirect(a any) any {
	if reflect.TypeOf(a).Kind() != reflect.Pointer {
		return a
	}
	v := reflect.ValueOf(a)
	for v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem()
	}
	return v.Interface()
}

// indirectToStringerOrError follows pointers until a value that is a
// fmt.Stringer or an error, or the base value.
func indirectToStringerOrError(a any) any {
	v := reflect.ValueOf(a)
	for !v.Type().Implements(stringerType) && !v.Type().Implements(errorType) &&
		v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem()
	}
	return v.Interface()
}

// htmlEscapes is the replacement for each byte that must be escaped in
// HTML text and quoted attribute values: the same set as html/template
// (NUL, quotes, &, +, <, >). Multi-byte UTF-8 sequences never contain
// these bytes, so escaping byte by byte is exact; invalid UTF-8 passes
// through, as in html/template.
var htmlEscapes = [256]string{
	0:    "\uFFFD",
	'"':  "&#34;",
	'&':  "&amp;",
	'\'': "&#39;",
	'+':  "&#43;",
	'<':  "&lt;",
	'>':  "&gt;",
}

// escapeString escapes s for HTML text or a quoted attribute value. It
// returns s itself (no allocation) when nothing needs escaping.
func escapeString(s string) string {
	for i := 0; i < len(s); i++ {
		if htmlEscapes[s[i]] != "" {
			var b strings.Builder
			b.Grow(len(s) + 16)
			b.WriteString(s[:i])
			for ; i < len(s); i++ {
				if r := htmlEscapes[s[i]]; r != "" {
					b.WriteString(r)
				} else {
					b.WriteByte(s[i])
				}
			}
			return b.String()
		}
	}
	return s
}

// appendEscaped appends s escaped for HTML text or a quoted attribute.
func appendEscaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if r := htmlEscapes[s[i]]; r != "" {
			dst = append(dst, r...)
		} else {
			dst = append(dst, s[i])
		}
	}
	return dst
}

// maxIslandID bounds the id of a data island.
const maxIslandID = 64

// validID reports whether id may be used as a data-island id: 1 to 64
// ASCII letters, digits, '-' and '_', starting with a letter.
func validID(id string) bool {
	if id == "" || len(id) > maxIslandID {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '-' || c == '_'):
		default:
			return false
		}
	}
	return true
}

// Island returns a JSON data island: a <script type="application/json">
// element with the given id whose text is v encoded as JSON, for pages
// that need server data in their scripts. The script reads it with
// JSON.parse(document.getElementById(id).textContent); no action is ever
// placed inside executable script.
//
// The JSON is escaped so that nothing in it can end the element or change
// how the HTML parser reads it: '<', '>' and '&' are written as \u003c,
// \u003e and \u0026 (so "</script>" and "<!--" cannot appear), and U+2028
// and U+2029 as \u2028 and \u2029. The id must be 1–64 ASCII letters,
// digits, '-' or '_', starting with a letter.
//
// Templates call it as {{island "id" .Value}}.
func Island(id string, v any) (HTML, error) {
	if !validID(id) {
		return HTML{}, fmt.Errorf("safetmpl: island id %q: must be 1-64 letters, digits, '-' or '_', starting with a letter", id)
	}
	// json.Marshal escapes <, >, &, U+2028 and U+2029 in strings and in
	// the output of MarshalJSON methods (which it also compacts).
	js, err := json.Marshal(v)
	if err != nil {
		return HTML{}, fmt.Errorf("safetmpl: island %q: %w", id, err)
	}
	js = escapeIslandJSON(js)
	var b strings.Builder
	b.Grow(len(js) + len(id) + 60)
	b.WriteString(`<script type="application/json" id="`)
	b.WriteString(id)
	b.WriteString(`">`)
	b.Write(js)
	b.WriteString(`</script>`)
	return HTML{s: b.String()}, nil
}

// escapeIslandJSON makes sure, whatever the encoder did, that the JSON
// text holds no byte that the HTML parser treats specially inside a script
// element, and no line terminator that older JavaScript parsers reject.
// Outside JSON strings these characters cannot occur in valid JSON, so
// rewriting them as \u escapes keeps the text valid and its value
// unchanged.
func escapeIslandJSON(js []byte) []byte {
	if !bytes.ContainsAny(js, "<>&\u2028\u2029") {
		return js
	}
	var out bytes.Buffer
	out.Grow(len(js) + 32)
	for i := 0; i < len(js); i++ {
		switch c := js[i]; {
		case c == '<':
			out.WriteString(`\u003c`)
		case c == '>':
			out.WriteString(`\u003e`)
		case c == '&':
			out.WriteString(`\u0026`)
		case c == 0xE2 && i+2 < len(js) && js[i+1] == 0x80 && (js[i+2] == 0xA8 || js[i+2] == 0xA9):
			if js[i+2] == 0xA8 {
				out.WriteString(`\u2028`)
			} else {
				out.WriteString(`\u2029`)
			}
			i += 2
		default:
			out.WriteByte(c)
		}
	}
	return out.Bytes()
}

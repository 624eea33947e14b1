package safetmpl

import "strings"

// scanner follows the HTML structure of a template's literal text far
// enough to say, at each action, which element and attribute it is in.
// html/template's escapers already tell the JavaScript and CSS contexts;
// the scanner adds what they do not distinguish: the attributes of a
// <script> or <base> start tag (a URL there loads code), style and srcdoc
// attributes whose value is a URL or plain text to html/template, and an
// action right after '<' that would name the element.
//
// It mirrors the HTML tokenizer's states for tags, attributes, comments
// and the raw-text elements html/template knows (script, style, textarea,
// title). It is a value: copying it saves the state for branches.
type scanner struct {
	st    scanState
	tag   name // start-tag name, or the raw-text element while in stRaw
	attr  name // attribute whose name or value is being read
	match int  // progress through "</tag" in stRaw, or "--" / "-->" in comments
	// scheme is the literal start of the attribute value being read, up
	// to a ':', '/', '?' or '#' (what a browser would take as a URL
	// scheme), and url what it decided; see urlStep.
	scheme name
	url    urlScheme
}

// urlScheme is what the literal text of an attribute value says about the
// scheme of the URL it would be.
type urlScheme uint8

const (
	schemeOpen   urlScheme = iota // nothing decisive yet: an action here can write the scheme
	schemeSafe                    // a path, query, fragment or a scheme other than the script ones
	schemeScript                  // javascript:, vbscript:, or a scheme hidden behind an entity or an action
)

type scanState uint8

const (
	stText        scanState = iota
	stTagOpen               // after '<'
	stEndTagOpen            // after "</"
	stTagName               // in a start-tag name
	stEndTag                // in an end tag, until '>'
	stInTag                 // between attributes
	stAttrName              // in an attribute name
	stAfterAttr             // after an attribute name, before '=' or the next one
	stBeforeValue           // after '='
	stValueDQ               // in a "-quoted value
	stValueSQ               // in a '-quoted value
	stValueUQ               // in an unquoted value
	stRaw                   // in the text of script, style, textarea or title
	stMarkupDecl            // after "<!"
	stComment               // in <!-- -->
	stBogus                 // in <!…> or <?…>, until '>'
)

// name holds a lowercase tag or attribute name, cut at len(buf) bytes.
// Every name safetmpl checks is shorter; a longer one never equals them.
type name struct {
	buf [24]byte
	n   uint8
	cut bool
}

func (n *name) reset() { *n = name{} }

func (n *name) add(c byte) {
	if c >= 'A' && c <= 'Z' {
		c += 'a' - 'A'
	}
	if int(n.n) < len(n.buf) {
		n.buf[n.n] = c
		n.n++
	} else {
		n.cut = true
	}
}

func (n *name) String() string { return string(n.buf[:n.n]) }

func (n *name) is(s string) bool { return !n.cut && string(n.buf[:n.n]) == s }

// local returns the attribute name without a namespace prefix (xlink:href
// → href), as html/template classifies it.
func (n *name) local() string {
	s := n.String()
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			return s[i+1:]
		}
	}
	return s
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// rawText reports whether the element's content is not parsed as markup
// by html/template (script, style) or is parsed as RCDATA (textarea,
// title): in both cases only its end tag ends it.
func rawText(tag *name) bool {
	return tag.is("script") || tag.is("style") || tag.is("textarea") || tag.is("title")
}

// feed advances the scanner over literal template text.
func (s *scanner) feed(text []byte) {
	for i := 0; i < len(text); i++ {
		s.step(text[i])
	}
}

func (s *scanner) endStartTag() {
	s.attr.reset()
	if rawText(&s.tag) {
		s.st, s.match = stRaw, 0
		return
	}
	s.st = stText
	s.tag.reset()
}

func (s *scanner) step(c byte) {
	switch s.st {
	case stText:
		if c == '<' {
			s.st = stTagOpen
		}
	case stTagOpen:
		switch {
		case isLetter(c):
			s.st = stTagName
			s.tag.reset()
			s.tag.add(c)
		case c == '/':
			s.st = stEndTagOpen
		case c == '!':
			s.st, s.match = stMarkupDecl, 0
		case c == '?':
			s.st = stBogus
		case c == '<':
			// stay: "<<a" opens a tag at the second '<'
		default:
			s.st = stText
		}
	case stEndTagOpen:
		switch {
		case isLetter(c):
			s.st = stEndTag
		case c == '>':
			s.st = stText
		default:
			s.st = stBogus
		}
	case stEndTag, stBogus:
		if c == '>' {
			s.st = stText
		}
	case stTagName:
		switch {
		case isSpace(c), c == '/':
			s.st = stInTag
		case c == '>':
			s.endStartTag()
		default:
			s.tag.add(c)
		}
	case stInTag:
		switch {
		case isSpace(c), c == '/':
		case c == '>':
			s.endStartTag()
		default:
			s.st = stAttrName
			s.attr.reset()
			s.attr.add(c)
		}
	case stAttrName:
		switch {
		case isSpace(c):
			s.st = stAfterAttr
		case c == '/':
			s.st = stInTag
		case c == '=':
			s.st = stBeforeValue
		case c == '>':
			s.endStartTag()
		default:
			s.attr.add(c)
		}
	case stAfterAttr:
		switch {
		case isSpace(c):
		case c == '/':
			s.st = stInTag
		case c == '=':
			s.st = stBeforeValue
		case c == '>':
			s.endStartTag()
		default:
			s.st = stAttrName
			s.attr.reset()
			s.attr.add(c)
		}
	case stBeforeValue:
		switch {
		case isSpace(c):
		case c == '"':
			s.st = stValueDQ
			s.scheme.reset()
			s.url = schemeOpen
		case c == '\'':
			s.st = stValueSQ
			s.scheme.reset()
			s.url = schemeOpen
		case c == '>':
			s.endStartTag()
		default:
			s.st = stValueUQ
		}
	case stValueDQ:
		if c == '"' {
			s.st = stInTag
		} else {
			s.urlStep(c)
		}
	case stValueSQ:
		if c == '\'' {
			s.st = stInTag
		} else {
			s.urlStep(c)
		}
	case stValueUQ:
		switch {
		case isSpace(c):
			s.st = stInTag
		case c == '>':
			s.endStartTag()
		}
	case stRaw:
		s.stepRaw(c)
	case stMarkupDecl:
		if c == '-' && s.match == 0 {
			s.match = 1
		} else if c == '-' && s.match == 1 {
			s.st, s.match = stComment, 0
		} else {
			s.st = stBogus
			if c == '>' {
				s.st = stText
			}
		}
	case stComment:
		switch {
		case c == '-':
			if s.match < 2 {
				s.match++
			}
		case c == '>' && s.match == 2:
			s.st, s.match = stText, 0
		default:
			s.match = 0
		}
	}
}

// urlStep follows the scheme of a quoted attribute value as a browser
// reads a URL: leading spaces and control characters are dropped, tabs and
// newlines ignored, letters compared without case. An '&' before the
// scheme ends could be an entity (javascript&colon;) and counts as a
// script scheme.
func (s *scanner) urlStep(c byte) {
	if s.url != schemeOpen {
		return
	}
	switch {
	case c <= ' ' && s.scheme.n == 0 && !s.scheme.cut,
		c == '\t', c == '\n', c == '\r':
	case c == '/' || c == '?' || c == '#':
		s.url = schemeSafe
	case c == '&':
		s.url = schemeScript
	case c == ':':
		s.url = schemeSafe
		if s.scheme.cut || s.scheme.is("javascript") || s.scheme.is("vbscript") {
			s.url = schemeScript
		}
	default:
		s.scheme.add(c)
	}
}

// stepRaw looks for "</tag" followed by a space, '/' or '>' in raw text.
func (s *scanner) stepRaw(c byte) {
	n := int(s.tag.n)
	switch {
	case c == '<':
		s.match = 1
	case s.match == 1 && c == '/':
		s.match = 2
	case s.match >= 2 && s.match-2 < n && lower(c) == s.tag.buf[s.match-2]:
		s.match++
	case s.match == 2+n && (isSpace(c) || c == '/' || c == '>'):
		s.tag.reset()
		s.match = 0
		if c == '>' {
			s.st = stText
		} else {
			s.st = stEndTag
		}
	default:
		s.match = 0
	}
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// action advances the scanner over the output of an action, which is
// text of unknown content in the current state.
func (s *scanner) action() {
	switch s.st {
	case stTagOpen:
		s.st = stTagName
		s.tag.reset()
		s.tag.cut = true
	case stEndTagOpen:
		s.st = stEndTag
	case stTagName:
		s.tag.cut = true
	case stInTag, stAfterAttr:
		s.st = stAttrName
		s.attr.reset()
		s.attr.cut = true
	case stAttrName:
		s.attr.cut = true
	case stBeforeValue:
		s.st = stValueUQ
	case stValueDQ, stValueSQ:
		if s.url == schemeOpen {
			s.scheme.cut = true // unknown text where the scheme is
		}
	case stRaw:
		s.match = 0
	}
}

// inStartTag reports whether the scanner is inside a start tag (its name,
// attributes or attribute values).
func (s *scanner) inStartTag() bool {
	switch s.st {
	case stTagName, stInTag, stAttrName, stAfterAttr, stBeforeValue, stValueDQ, stValueSQ, stValueUQ:
		return true
	}
	return false
}

// risky reports whether the scanner is in a start tag whose name, or an
// attribute whose name, makes the checks refuse actions in its values.
func (s *scanner) risky() bool {
	if !s.inStartTag() {
		return false
	}
	if s.tag.is("script") || s.tag.is("base") {
		return true
	}
	if s.st == stTagName || s.st == stInTag {
		return false // attr names a finished attribute, if any
	}
	if (s.st == stValueDQ || s.st == stValueSQ) && s.url != schemeSafe {
		return true // an action here may be in a javascript: URL
	}
	a := s.attr.local()
	return a == "srcdoc" || a == "style" || strings.HasPrefix(a, "on")
}

// inValue reports whether the scanner is in an attribute value.
func (s *scanner) inValue() bool {
	return s.st == stValueDQ || s.st == stValueSQ || s.st == stValueUQ
}

package safetmpl

import "strings"

// scanner follows the HTML structure of a template's literal text far
// enough to say, at each action, which element and attribute it is in.
// html/template's escapers already tell the JavaScript and CSS contexts;
// the scanner adds what they do not distinguish: the attributes of a
// <script> or <base> start tag (a URL there loads code), style and srcdoc
// attributes whose value is a URL or plain text to html/template, the
// attributes of <meta> and of SVG animation elements that the browser
// obeys rather than shows, and an action right after '<' that would name
// the element.
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

	// Facts about the current start tag, reset when it ends. Whether an
	// action in a <meta> content attribute is refused depends on an
	// http-equiv attribute that may come after it, so the scanner carries
	// such actions to the end of the tag (pend) and hands them to the
	// checker (fired) if the tag has one. tagMay and attrMay keep what
	// the tag and the attribute are in the other arms of a branch that
	// named them differently (see join).
	tagMay  tagKind
	attrMay attrKind
	equiv   bool     // the tag has, or in some arm has, an http-equiv attribute
	pend    *pending // refusals that hold if the tag has an http-equiv attribute
	fired   *pending // pending refusals whose tag ended with one, for the checker
}

// pending is a list of refusals that wait for the end of a start tag,
// the latest first. Lists are never modified, so copies of a scanner can
// share them.
type pending struct {
	err  *Error
	next *pending
}

// holds reports whether the list holds the refusal e.
func (l *pending) holds(e *Error) bool {
	for ; l != nil; l = l.next {
		if l.err == e {
			return true
		}
	}
	return false
}

// reversed returns a copy of the list in the other order.
func (l *pending) reversed() *pending {
	var r *pending
	for ; l != nil; l = l.next {
		r = &pending{err: l.err, next: r}
	}
	return r
}

// tagKind is what a start tag's name makes the checks look at.
type tagKind uint8

const (
	tagMeta tagKind = 1 << iota // <meta>: http-equiv, charset and content
	tagAnim                     // SVG animation elements: the attribute values they set
)

// tagKindOf classifies a tag name, without its namespace prefix and in
// any case (the scanner lowercases names; the HTML parser matches SVG
// element names such as animateMotion in any case too).
func tagKindOf(n *name) tagKind {
	if n.cut {
		return 0
	}
	switch n.local() {
	case "meta":
		return tagMeta
	case "animate", "set", "animatemotion", "animatetransform", "animatecolor":
		return tagAnim
	}
	return 0
}

// attrKind is what an attribute's name makes the checks look at.
type attrKind uint8

const (
	attrContent   attrKind = 1 << iota // content, of <meta>
	attrEquiv                          // http-equiv, of <meta>
	attrCharset                        // charset, of <meta>
	attrAnimValue                      // to, from, by, values, attributeName, of an animation
)

// attrKindOf classifies an attribute name, without its namespace prefix
// (xlink:to → to, as html/template and [name.local] do) and in any case.
func attrKindOf(n *name) attrKind {
	if n.cut {
		return 0
	}
	switch n.local() {
	case "content":
		return attrContent
	case "http-equiv":
		return attrEquiv
	case "charset":
		return attrCharset
	case "to", "from", "by", "values", "attributename":
		return attrAnimValue
	}
	return 0
}

// tagKinds returns what the current start tag is, or may be in an arm of
// a branch.
func (s *scanner) tagKinds() tagKind { return s.tagMay | tagKindOf(&s.tag) }

// attrKinds returns what the current attribute is, or may be in an arm of
// a branch.
func (s *scanner) attrKinds() attrKind { return s.attrMay | attrKindOf(&s.attr) }

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

// newAttr starts an attribute name.
func (s *scanner) newAttr() {
	s.st = stAttrName
	s.attr.reset()
	s.attrMay = 0
}

// attrNamed is called when an attribute name ends.
func (s *scanner) attrNamed() {
	if s.attrKinds()&attrEquiv != 0 {
		s.equiv = true
	}
}

// endStartTag leaves a start tag: refusals waiting for an http-equiv
// attribute fire if it had one, and the tag's facts are reset.
func (s *scanner) endStartTag() {
	if s.st == stAttrName {
		s.attrNamed()
	}
	if s.equiv {
		for p := s.pend.reversed(); p != nil; p = p.next {
			s.fired = &pending{err: p.err, next: s.fired}
		}
	}
	s.pend, s.equiv, s.tagMay, s.attrMay = nil, false, 0, 0
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
			s.newAttr()
			s.attr.add(c)
		}
	case stAttrName:
		switch {
		case isSpace(c):
			s.attrNamed()
			s.st = stAfterAttr
		case c == '/':
			s.attrNamed()
			s.st = stInTag
		case c == '=':
			s.attrNamed()
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
			s.newAttr()
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
		s.newAttr()
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

// inAttr reports whether the scanner is in an attribute's name or value.
func (s *scanner) inAttr() bool {
	switch s.st {
	case stAttrName, stAfterAttr, stBeforeValue, stValueDQ, stValueSQ, stValueUQ:
		return true
	}
	return false
}

// join adds to s, the state the walk goes on from after a branch, the
// facts of alt, the state at the end of another arm (or of no arm) of
// the same branch. Where the arms name the tag or the attribute
// differently, the checks then consider every name; the pending
// refusals of both arms are kept, also where one arm ended the tag that
// the other is still in.
func (s *scanner) join(alt *scanner) {
	if !s.inStartTag() || !alt.inStartTag() {
		// html/template refuses arms that end in different contexts. Were
		// the walk to go on outside the tag that alt's pending refusals
		// wait in, they fire: the check fails closed.
		for p := alt.pend.reversed(); p != nil; p = p.next {
			s.fired = &pending{err: p.err, next: s.fired}
		}
		return
	}
	s.tagMay |= alt.tagKinds()
	s.equiv = s.equiv || alt.equiv
	if alt.st == stAttrName && alt.attrKinds()&attrEquiv != 0 {
		// The name may go on after the branch (http-equivx); counting it
		// as http-equiv only refuses more.
		s.equiv = true
	}
	if s.inAttr() && alt.inAttr() {
		s.attrMay |= alt.attrKinds()
	}
	for p := alt.pend.reversed(); p != nil; p = p.next {
		if !s.pend.holds(p.err) {
			s.pend = &pending{err: p.err, next: s.pend}
		}
	}
}

// metaContent reports whether the scanner is in the value of a content
// attribute of a <meta> tag, which the browser obeys if the tag has an
// http-equiv attribute, before or after this one.
func (s *scanner) metaContent() bool {
	return s.inValue() && s.tagKinds()&tagMeta != 0 && s.attrKinds()&attrContent != 0
}

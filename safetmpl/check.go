package safetmpl

import (
	"fmt"
	"html/template"
	"strings"
	"text/template/parse"
)

// The template functions safetmpl defines. nonce, xsrfField and xsrfToken
// are request functions: each must be a whole action, {{nonce}}; after
// escaping, the action is replaced by a sentinel text node that the page
// buffer recognises by identity and fills in.
const (
	fnNonce     = "nonce"
	fnXSRFField = "xsrfField"
	fnXSRFToken = "xsrfToken"
	fnIsland    = "island"
	fnSanitize  = "sanitize"
)

func isRequestFunc(ident string) bool {
	return ident == fnNonce || ident == fnXSRFField || ident == fnXSRFToken
}

// derivedMark is the separator html/template puts in the name of a copy
// of a template it escapes for a context other than HTML text.
const derivedMark = "$htmltemplate_"

// policy is what the options allow.
type policy struct {
	allowScript, allowStyle bool
}

// checkIdentifiers walks every parsed template, before escaping, and
// refuses reserved identifiers and request functions used other than as
// a whole action.
func checkIdentifiers(ns *template.Template) []error {
	var errs []error
	for _, t := range ns.Templates() {
		if t.Tree == nil || t.Tree.Root == nil {
			continue
		}
		tree := t.Tree
		var walk func(n parse.Node)
		walk = func(n parse.Node) {
			switch n := n.(type) {
			case *parse.ListNode:
				if n == nil {
					return
				}
				for _, c := range n.Nodes {
					walk(c)
				}
			case *parse.ActionNode:
				if requestFuncAction(n) != "" {
					return
				}
				walk(n.Pipe)
			case *parse.IfNode:
				walk(n.Pipe)
				walk(n.List)
				walk(n.ElseList)
			case *parse.RangeNode:
				walk(n.Pipe)
				walk(n.List)
				walk(n.ElseList)
			case *parse.WithNode:
				walk(n.Pipe)
				walk(n.List)
				walk(n.ElseList)
			case *parse.TemplateNode:
				walk(n.Pipe)
			case *parse.PipeNode:
				if n == nil {
					return
				}
				for _, c := range n.Cmds {
					walk(c)
				}
			case *parse.CommandNode:
				for _, a := range n.Args {
					walk(a)
				}
			case *parse.ChainNode:
				walk(n.Node)
			case *parse.IdentifierNode:
				switch {
				case strings.HasPrefix(n.Ident, "_"):
					errs = append(errs, nodeError(tree, n, "{{"+n.Ident+"}}", "", ErrReserved,
						"identifiers starting with '_' are reserved for the escapers"))
				case isRequestFunc(n.Ident):
					errs = append(errs, nodeError(tree, n, n.Ident, "", ErrReserved,
						"write {{"+n.Ident+"}} as a whole action, with no arguments, pipes or variables"))
				}
			}
		}
		walk(tree.Root)
	}
	return errs
}

// requestFuncAction returns the request function an action prints, if it
// is exactly {{name}} (followed, after escaping, only by escapers).
func requestFuncAction(n *parse.ActionNode) string {
	if len(n.Pipe.Decl) != 0 || len(n.Pipe.Cmds) == 0 {
		return ""
	}
	first := n.Pipe.Cmds[0]
	if len(first.Args) != 1 {
		return ""
	}
	id, ok := first.Args[0].(*parse.IdentifierNode)
	if !ok || !isRequestFunc(id.Ident) {
		return ""
	}
	for _, c := range n.Pipe.Cmds[1:] {
		if escaperName(c) == "" {
			return ""
		}
	}
	return id.Ident
}

// escaperName returns the escaper a command calls, an html/template
// contextual escaper or one of safetmpl's replacements; "" for a command
// of the template's own. (A predefined html or urlquery that
// html/template kept at the end of a pipeline is handled by the caller.)
func escaperName(c *parse.CommandNode) string {
	if len(c.Args) != 1 {
		return ""
	}
	id, ok := c.Args[0].(*parse.IdentifierNode)
	if !ok {
		return ""
	}
	switch {
	case strings.HasPrefix(id.Ident, "_html_template_"), strings.HasPrefix(id.Ident, "_safetmpl_"):
		return id.Ident
	}
	return ""
}

// markers are the sentinel texts that stand for per-request values. The
// page buffer recognises them by the address of their bytes, which only
// these text nodes share: a value from the page's data can never be
// mistaken for one, whatever its content.
type markers struct {
	nonce, xsrfField, xsrfToken []byte
}

func newMarkers() *markers {
	// Letters only: while checking, the scanner reads them as text that
	// changes no state.
	return &markers{
		nonce:     []byte("safetmplnonce"),
		xsrfField: []byte("safetmplxsrffield"),
		xsrfToken: []byte("safetmplxsrftoken"),
	}
}

// checker walks the escaped templates reachable from one page, refusing
// actions in forbidden contexts, replacing request functions with markers and
// html/template's text and URL escapers with safetmpl's.
type checker struct {
	ns      *template.Template
	pol     policy
	marks   *markers
	done    map[string]*walked // end of the walk per template and start state; nil while in progress
	unknown map[string]bool    // derived templates html/template keeps out of reach
	errs    []error
	usesXSRF,
	usesNonce bool
}

func (c *checker) walkTemplate(name string, sc *scanner) {
	// Pending refusals are part of the key only by their presence: the
	// walk's end is carried over to a call with other ones (resume), and
	// a recursive call inside a <meta> content attribute, which pends a
	// new refusal at each level, still meets its own walk in progress.
	key := fmt.Sprintf("%s\x00%d\x00%s\x00%s\x00%d\x00%s\x00%t\x00%d\x00%d\x00%t\x00%t", name, sc.st, sc.tag.String(), sc.attr.String(),
		sc.url, sc.scheme.String(), sc.scheme.cut, sc.tagMay, sc.attrMay, sc.equiv, sc.pend != nil)
	if w, ok := c.done[key]; ok {
		if w != nil {
			c.resume(w, sc)
		}
		return
	}
	t := c.ns.Lookup(name)
	if t == nil || t.Tree == nil {
		if strings.Contains(name, derivedMark) {
			c.unknown[name] = true
			return
		}
		c.errs = append(c.errs, fmt.Errorf("%w: template %q is called but not defined", ErrConfig, name))
		return
	}
	c.done[key] = nil
	in, n := sc.pend, len(c.errs)
	c.list(t.Tree, t.Tree.Root, sc)
	w := &walked{end: *sc, in: in}
	for _, err := range c.errs[n:] {
		if e, ok := err.(*Error); ok && in.holds(e) {
			w.fired = true
		}
	}
	c.done[key] = w
}

// walked is the end of a template's walk from one start state.
type walked struct {
	end   scanner
	in    *pending // the pending refusals the walk began with
	fired bool     // some of them fired during the walk
}

// resume sets sc to the end of an earlier walk of the same template from
// the same state, but for the pending refusals: where the earlier walk
// kept or fired its own, the ones sc has now are kept or fired.
func (c *checker) resume(w *walked, sc *scanner) {
	mine := sc.pend
	*sc = w.end
	if mine == w.in {
		return
	}
	if w.fired {
		for p := mine.reversed(); p != nil; p = p.next {
			c.errs = append(c.errs, p.err)
		}
	}
	var out *pending
	for p := w.end.pend; p != nil; p = p.next {
		if w.in.holds(p.err) {
			out = mine // the walk kept its own: keep these
			break
		}
	}
	for p := w.end.pend.reversed(); p != nil; p = p.next {
		if !w.in.holds(p.err) && !out.holds(p.err) {
			out = &pending{err: p.err, next: out}
		}
	}
	sc.pend = out
}

func (c *checker) list(tree *parse.Tree, l *parse.ListNode, sc *scanner) {
	if l == nil {
		return
	}
	for i, n := range l.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			sc.feed(n.Text)
			c.fire(sc)
		case *parse.ActionNode:
			c.action(tree, l, i, n, sc)
		case *parse.IfNode:
			c.branch(tree, &n.BranchNode, sc)
		case *parse.RangeNode:
			c.branch(tree, &n.BranchNode, sc)
		case *parse.WithNode:
			c.branch(tree, &n.BranchNode, sc)
		case *parse.TemplateNode:
			c.walkTemplate(n.Name, sc)
		}
	}
}

// fire reports the refusals that waited for the end of a start tag whose
// http-equiv attribute came after them.
func (c *checker) fire(sc *scanner) {
	for p := sc.fired.reversed(); p != nil; p = p.next {
		c.errs = append(c.errs, p.err)
	}
	sc.fired = nil
}

// branch walks both arms from the same state; a missing else arm (and a
// range or with that runs zero times) leaves the start state. html/template
// refuses branches that end in different contexts, but it does not tell
// srcdoc from other plain attributes, <base> from other tags, nor a
// javascript: URL from another one, so the
// arms can end in scanner states that differ only there: the walk goes on
// from the arm that would be refused, never from the one that would not,
// and with the <meta> and animation facts of both arms (scanner.join).
func (c *checker) branch(tree *parse.Tree, b *parse.BranchNode, sc *scanner) {
	start := *sc
	c.list(tree, b.List, sc)
	alt := start
	if b.ElseList != nil {
		c.list(tree, b.ElseList, &alt)
	}
	if alt.risky() && !sc.risky() {
		*sc, alt = alt, *sc
	}
	sc.join(&alt)
	c.fire(sc)
}

func (c *checker) action(tree *parse.Tree, l *parse.ListNode, i int, n *parse.ActionNode, sc *scanner) {
	if len(n.Pipe.Decl) != 0 {
		return // {{$x := …}} prints nothing
	}
	var user []*parse.CommandNode
	var esc []string
	for _, cmd := range n.Pipe.Cmds {
		if e := escaperName(cmd); e != "" {
			esc = append(esc, e)
		} else if len(esc) == 0 {
			user = append(user, cmd)
		}
	}
	// html and urlquery that end the user's pipeline act as escapers.
	if k := len(user); k > 0 {
		if id, ok := user[k-1].Args[0].(*parse.IdentifierNode); ok && len(user[k-1].Args) == 1 &&
			(id.Ident == "html" || id.Ident == "urlquery") {
			esc = append([]string{id.Ident}, esc...)
		}
	}
	if h := requestFuncAction(n); h != "" {
		c.requestFunc(tree, l, i, n, h, esc, sc)
		sc.action()
		return
	}
	if r := c.classify(esc, sc); r != nil {
		c.errs = append(c.errs, nodeError(tree, n, actionText(user), r.where, r.err, r.hint))
		sc.action()
		return
	}
	if sc.metaContent() {
		// Refused when the tag ends if it has an http-equiv attribute
		// after this one (classify refuses it now if one came before).
		err := nodeError(tree, n, actionText(user), metaContentWhere, ErrMarkupContext, metaContentHint)
		sc.pend = &pending{err: err, next: sc.pend}
	}
	rewrite(n.Pipe)
	sc.action()
}

// knownEscapers are the contextual escapers of html/template that the
// checks know the meaning of. An action with any other (a Go release that
// adds or renames one) is refused rather than judged on partial knowledge.
var knownEscapers = map[string]bool{
	"_html_template_attrescaper": true, "_html_template_commentescaper": true,
	"_html_template_cssescaper": true, "_html_template_cssvaluefilter": true,
	"_html_template_htmlnamefilter": true, "_html_template_htmlescaper": true,
	"_html_template_jsregexpescaper": true, "_html_template_jsstrescaper": true,
	"_html_template_jstmpllitescaper": true, "_html_template_jsvalescaper": true,
	"_html_template_nospaceescaper": true, "_html_template_rcdataescaper": true,
	"_html_template_srcsetescaper": true, "_html_template_urlescaper": true,
	"_html_template_urlfilter": true, "_html_template_urlnormalizer": true,
	ownHTML: true, ownURLFilter: true, ownUntyped: true, "html": true, "urlquery": true,
}

func has(esc []string, names ...string) bool {
	for _, e := range esc {
		for _, n := range names {
			if e == "_html_template_"+n {
				return true
			}
		}
	}
	return false
}

// refusal says why an action may not be printed where it is.
type refusal struct {
	err         error
	where, hint string
}

// The refusal of an action in the content attribute of a <meta> tag that
// has an http-equiv attribute, before or after it.
const (
	metaContentWhere = "the content attribute of a <meta> tag with an http-equiv attribute"
	metaContentHint  = "the browser obeys it as a response header (refresh navigates to the URL in it); write it in the template, or use <meta name=…> whose content is text"
)

// classify returns why an action may not be printed where it is, or nil.
func (c *checker) classify(esc []string, sc *scanner) *refusal {
	const (
		scriptHint = "pass data to scripts with {{island}} and read it with JSON.parse; Options.InsecureAllowScriptActions allows this"
		styleHint  = "choose among classes written in the template; Options.InsecureAllowStyleActions allows this"
	)
	attr := sc.attr.local()
	event := sc.inValue() && strings.HasPrefix(attr, "on")
	tagK, attrK := sc.tagKinds(), sc.attrKinds()
	switch {
	case has(esc, "jstmpllitescaper"):
		return &refusal{ErrScriptContext, "a JavaScript template literal", "no option allows this; pass data to scripts with {{island}}"}
	case has(esc, "jsregexpescaper"):
		return &refusal{ErrScriptContext, "a JavaScript regular expression", "no option allows this; pass data to scripts with {{island}}"}
	case sc.st == stTagOpen || sc.st == stEndTagOpen:
		return &refusal{ErrMarkupContext, "a tag name", "write element names in the template"}
	case sc.inValue() && tagK&tagAnim != 0 && attrK&attrAnimValue != 0:
		// An SVG animation sets the attribute that attributeName names
		// to these values: an href becomes a javascript: URL that runs
		// when followed, an on* attribute a handler. That is script, so
		// ErrScriptContext; but html/template escapes these attributes
		// as plain text, with no JavaScript or URL escaper that
		// InsecureAllowScriptActions could hand them to, so no option
		// allows it, as for template literals.
		return &refusal{ErrScriptContext, attrName(sc, attrAnimValue, "to, from, by, values or attributeName") + " of " + animTag(sc),
			"an animation sets the attribute attributeName names, such as href or onclick, to it; write the values in the template and choose among them with {{if}}; no option allows this"}
	}
	if !c.pol.allowScript {
		switch {
		case sc.st == stRaw && sc.tag.is("script"):
			return &refusal{ErrScriptContext, "a <script> element", scriptHint}
		case event:
			return &refusal{ErrScriptContext, "the " + sc.attr.String() + " attribute", scriptHint}
		case sc.inStartTag() && (sc.tag.is("script") || sc.tag.is("base")):
			return &refusal{ErrScriptContext, "the " + sc.attr.String() + " attribute of a <" + sc.tag.String() + "> tag", "a URL there loads code; write it in the template. Options.InsecureAllowScriptActions allows this"}
		case has(esc, "jsvalescaper", "jsstrescaper"):
			return &refusal{ErrScriptContext, "JavaScript", scriptHint}
		case has(esc, "urlnormalizer", "urlescaper") && !has(esc, "urlfilter") && sc.url != schemeSafe:
			// html/template filters the scheme only of an action that
			// starts the URL: after literal "javascript:" (or "java")
			// the value is only percent-encoded, which a javascript: URL
			// decodes before it runs.
			return &refusal{ErrScriptContext, "a javascript: URL in the " + sc.attr.String() + " attribute",
				"write the scheme in the template (https://, /, ./) or pass the whole URL as data; Options.InsecureAllowScriptActions allows this"}
		}
	}
	if !c.pol.allowStyle {
		switch {
		case sc.st == stRaw && sc.tag.is("style"):
			return &refusal{ErrStyleContext, "a <style> element", styleHint}
		case sc.inValue() && attr == "style":
			return &refusal{ErrStyleContext, "the style attribute", styleHint}
		case has(esc, "cssvaluefilter", "cssescaper"):
			return &refusal{ErrStyleContext, "CSS", styleHint}
		}
	}
	switch {
	case has(esc, "htmlnamefilter") || sc.st == stTagName || sc.st == stInTag || sc.st == stAttrName || sc.st == stAfterAttr:
		return &refusal{ErrMarkupContext, "a tag or attribute name", "write names in the template; use {{if}} to choose among them"}
	case has(esc, "nospaceescaper") || sc.st == stBeforeValue || sc.st == stValueUQ:
		return &refusal{ErrMarkupContext, "an unquoted attribute value", "quote the attribute value"}
	case has(esc, "commentescaper") || sc.st == stComment || sc.st == stBogus || sc.st == stMarkupDecl:
		return &refusal{ErrMarkupContext, "an HTML comment", "html/template drops comments; move the action out"}
	case sc.inValue() && attr == "srcdoc":
		return &refusal{ErrMarkupContext, "the srcdoc attribute", "its value is parsed as a whole HTML document after entity decoding; use src"}
	// <meta http-equiv> and <meta charset> are not text but instructions
	// the browser obeys, and no escaper of html/template makes an
	// attacker's value safe there (it escapes them as text, filtering at
	// most the scheme after a literal url=): like the other markup
	// contexts, no option allows them. content is refused only where the
	// tag has http-equiv; <meta name=… content> stays text.
	case sc.inValue() && tagK&tagMeta != 0 && attrK&attrEquiv != 0:
		return &refusal{ErrMarkupContext, attrName(sc, attrEquiv, "http-equiv") + " of a <meta> tag",
			"it names a response header the browser obeys (refresh, content-type…); write it in the template"}
	case sc.inValue() && tagK&tagMeta != 0 && attrK&attrCharset != 0:
		return &refusal{ErrMarkupContext, attrName(sc, attrCharset, "charset") + " of a <meta> tag",
			"it decides how the browser decodes every byte of the page, the escaped ones included; write it in the template"}
	case sc.metaContent() && sc.equiv:
		return &refusal{ErrMarkupContext, metaContentWhere, metaContentHint}
	case len(esc) == 0:
		return &refusal{ErrMarkupContext, "an unknown context", "html/template added no escaper"}
	}
	for _, e := range esc {
		if !knownEscapers[e] {
			return &refusal{ErrMarkupContext, "an unknown context", "html/template used the escaper " + e + ", which safetmpl does not know"}
		}
	}
	return nil
}

// attrName names the attribute an action is in for a refusal: as
// written, or, where the arms of a branch name it differently and the
// one the walk went on from is not of the kind refused, by the names of
// that kind.
func attrName(sc *scanner, k attrKind, names string) string {
	if attrKindOf(&sc.attr)&k != 0 {
		return "the " + sc.attr.String() + " attribute"
	}
	return "an attribute a branch may name " + names
}

// animTag names the animation element an action is in, for a refusal.
func animTag(sc *scanner) string {
	if tagKindOf(&sc.tag) == tagAnim {
		return "an SVG <" + sc.tag.String() + "> tag"
	}
	return "an SVG animation tag"
}

// requestFunc checks the context of a request function's action and
// replaces the action by its marker.
func (c *checker) requestFunc(tree *parse.Tree, l *parse.ListNode, i int, n *parse.ActionNode, h string, esc []string, sc *scanner) {
	var mark []byte
	ok := false
	one := len(esc) == 1
	switch h {
	case fnNonce, fnXSRFToken:
		// A quoted attribute value that is neither a URL, script nor CSS.
		ok = one && (esc[0] == "_html_template_attrescaper" || esc[0] == "html") &&
			(sc.st == stValueDQ || sc.st == stValueSQ)
		// Browsers hide a nonce from the page only in the nonce attribute
		// itself; anywhere else an injected style ([data-n^=a]) can read it
		// a character at a time.
		if h == fnNonce && !sc.attr.is("nonce") {
			ok = false
		}
		mark = c.marks.nonce
		if h == fnXSRFToken {
			mark = c.marks.xsrfToken
			c.usesXSRF = true
		} else {
			c.usesNonce = true
		}
	case fnXSRFField:
		ok = one && (esc[0] == escHTML || esc[0] == "html") && sc.st == stText
		mark = c.marks.xsrfField
		c.usesXSRF = true
	}
	if !ok {
		where := "this context"
		want := "a quoted attribute value, such as value=\"{{" + h + "}}\""
		if h == fnNonce {
			want = "the value of a nonce attribute: nonce=\"{{nonce}}\""
		}
		if h == fnXSRFField {
			want = "HTML text, inside a <form>"
		}
		c.errs = append(c.errs, nodeError(tree, n, "{{"+h+"}}", where, ErrReserved, "it belongs in "+want))
		return
	}
	l.Nodes[i] = &parse.TextNode{NodeType: parse.NodeText, Pos: n.Pos, Text: mark}
}

// rewrite replaces html/template's text escaper and URL filter with
// safetmpl's, and puts a filter that demotes typed strings to plain text
// before any other escaper that would trust them.
func rewrite(p *parse.PipeNode) {
	first := -1
	for i, cmd := range p.Cmds {
		e := escaperName(cmd)
		if e == "" {
			continue
		}
		if first < 0 {
			first = i
		}
		id := cmd.Args[0].(*parse.IdentifierNode)
		switch e {
		case escHTML:
			id.Ident = ownHTML
		case escURLFilter:
			id.Ident = ownURLFilter
		}
	}
	if first < 0 {
		return
	}
	switch escaperName(p.Cmds[first]) {
	// attrescaper, rcdataescaper and urlnormalizer treat typed strings
	// safely already (markup is stripped or escaped, URLs normalised), so
	// they need no filter, and the common attribute case pays nothing.
	case "_html_template_urlescaper", "_html_template_srcsetescaper", "_html_template_jsvalescaper",
		"_html_template_jsstrescaper", "_html_template_cssvaluefilter", "_html_template_cssescaper":
		pos := p.Cmds[first].Pos
		cmd := &parse.CommandNode{NodeType: parse.NodeCommand, Pos: pos,
			Args: []parse.Node{parse.NewIdentifier(ownUntyped).SetTree(nil).SetPos(pos)}}
		p.Cmds = append(p.Cmds[:first], append([]*parse.CommandNode{cmd}, p.Cmds[first:]...)...)
	}
}

func actionText(cmds []*parse.CommandNode) string {
	parts := make([]string, len(cmds))
	for i, c := range cmds {
		parts[i] = c.String()
	}
	return "{{" + strings.Join(parts, " | ") + "}}"
}

func nodeError(tree *parse.Tree, n parse.Node, action, where string, sentinel error, hint string) *Error {
	loc, _ := tree.ErrorContext(n)
	file, line, col := parseLocation(loc)
	if line > 0 {
		col++ // text/template counts columns from 0
	}
	return &Error{File: file, Line: line, Col: col, Action: action, Context: where, Err: sentinel, Hint: hint}
}

package safetmpl_test

import (
	"bufio"
	"encoding/json"
	"html/template"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/stormcellar/stormcellar/safetmpl"
)

// loadPayloads reads testdata/xss-payloads.txt (see its header).
func loadPayloads(t testing.TB) []string {
	t.Helper()
	f, err := os.Open("testdata/xss-payloads.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := strings.NewReplacer("{NUL}", "\x00", "{TAB}", "\t", "{LF}", "\n", "{CR}", "\r",
		"{LS}", "\u2028", "{PS}", "\u2029", "{BS}", `\`)
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, dec.Replace(line))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) < 150 {
		t.Fatalf("only %d payloads", len(out))
	}
	return out
}

// xssContext is one place a value can be printed. Each page puts the
// value in the element with id "c".
type xssContext struct {
	name  string
	page  string
	file  safetmpl.ConstFile
	check func(t *testing.T, doc *html.Node, payload string) // beyond the shape
}

const (
	pageHead = `<!doctype html><html><head><title>t</title></head><body>`
	pageTail = `</body></html>`
)

func xssContexts() []xssContext {
	return []xssContext{
		{"text", "text.html", safetmpl.Const("text.html", pageHead+`<p id="c">{{.}}</p>`+pageTail), checkText},
		{"attribute", "attr.html", safetmpl.Const("attr.html", pageHead+`<p id="c" title="{{.}}">x</p>`+pageTail), checkAttr("title")},
		{"attribute single-quoted", "attrsq.html", safetmpl.Const("attrsq.html", pageHead+`<p id="c" title='{{.}}'>x</p>`+pageTail), checkAttr("title")},
		{"attribute data-", "attrdata.html", safetmpl.Const("attrdata.html", pageHead+`<p id="c" data-v="{{.}}">x</p>`+pageTail), checkAttr("data-v")},
		{"url", "url.html", safetmpl.Const("url.html", pageHead+`<a id="c" href="{{.}}">x</a>`+pageTail), checkURL("href")},
		{"url path", "urlpath.html", safetmpl.Const("urlpath.html", pageHead+`<a id="c" href="/search/{{.}}">x</a>`+pageTail), checkURL("href")},
		{"url query", "urlquery.html", safetmpl.Const("urlquery.html", pageHead+`<a id="c" href="/search?q={{.}}&amp;x=1">x</a>`+pageTail), checkURL("href")},
		{"img src", "img.html", safetmpl.Const("img.html", pageHead+`<img id="c" src="{{.}}">`+pageTail), checkURL("src")},
		{"form action", "form.html", safetmpl.Const("form.html", pageHead+`<form id="c" action="{{.}}"><button>b</button></form>`+pageTail), checkURL("action")},
		{"textarea", "textarea.html", safetmpl.Const("textarea.html", pageHead+`<textarea id="c">{{.}}</textarea>`+pageTail), nil},
		{"title", "title.html", safetmpl.Const("title.html", `<!doctype html><html><head><title>{{.}}</title></head><body><p id="c">x</p>`+pageTail), nil},
		{"meta name content", "meta.html", safetmpl.Const("meta.html", `<!doctype html><html><head><meta id="c" name="description" content="{{.}}"><title>t</title></head><body>`+pageTail), checkAttr("content")},
		{"animation dur", "anim.html", safetmpl.Const("anim.html", pageHead+`<svg><animate id="c" attributeName="opacity" values="0;1" dur="{{.}}"/></svg>`+pageTail), checkAttr("dur")},
		{"json island", "island.html", safetmpl.Const("island.html", pageHead+`{{island "c" .}}`+pageTail), checkIsland},
	}
}

// cssContexts need InsecureAllowStyleActions: the CSS escapers of
// html/template are used, and checked here.
func cssContexts() []xssContext {
	return []xssContext{
		{"style attribute", "style.html", safetmpl.Const("style.html", pageHead+`<p id="c" style="color: {{.}}">x</p>`+pageTail), checkCSSAttr},
		{"style element", "styleel.html", safetmpl.Const("styleel.html", `<!doctype html><html><head><style id="c">p { color: {{.}} }</style></head><body>`+pageTail), checkCSSElement},
	}
}

// shape lists the document's structure: every element with its attribute
// names, and every comment. A value that added an element, an attribute,
// a script or a comment changes it. Text nodes are left out: whether the
// parser keeps one (an empty value, a textarea's leading newline) is not
// structure, and the text itself is compared by the context checks.
func shape(n *html.Node) []string {
	var out []string
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		switch n.Type {
		case html.ElementNode:
			keys := make([]string, 0, len(n.Attr))
			for _, a := range n.Attr {
				keys = append(keys, a.Namespace+":"+a.Key)
			}
			slices.Sort(keys)
			out = append(out, "<"+n.Data+" "+strings.Join(keys, " ")+">")
		case html.CommentNode:
			out = append(out, "#comment")
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
		if n.Type == html.ElementNode {
			out = append(out, "</"+n.Data+">")
		}
	}
	walk(n)
	return out
}

func byID(n *html.Node, id string) *html.Node {
	if n.Type == html.ElementNode {
		for _, a := range n.Attr {
			if a.Key == "id" && a.Val == id {
				return n
			}
		}
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if f := byID(c, id); f != nil {
			return f
		}
	}
	return nil
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func textOf(n *html.Node) string {
	var b strings.Builder
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if c.Type == html.TextNode {
			b.WriteString(c.Data)
		}
	}
	return b.String()
}

// parsed is what the HTML parser gives back for a value printed as text:
// html/template writes NUL as U+FFFD, and the parser turns CR and CRLF
// into LF.
func parsed(s string) string {
	return strings.NewReplacer("\r\n", "\n", "\r", "\n", "\x00", "\uFFFD").Replace(s)
}

func checkText(t *testing.T, doc *html.Node, payload string) {
	if got := textOf(byID(doc, "c")); got != parsed(payload) {
		t.Errorf("text is %q, want %q", got, parsed(payload))
	}
}

func checkAttr(key string) func(*testing.T, *html.Node, string) {
	return func(t *testing.T, doc *html.Node, payload string) {
		if got, _ := attr(byID(doc, "c"), key); got != parsed(payload) {
			t.Errorf("attribute is %q, want %q", got, parsed(payload))
		}
	}
}

// dangerousURL reports whether a browser would run or render attacker
// content from a URL attribute: it strips what the URL parser strips
// (leading C0 controls and spaces, tabs and newlines anywhere) and
// compares the scheme.
func dangerousURL(u string) bool {
	u = strings.TrimLeft(u, "\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\v\f\r\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f ")
	u = strings.NewReplacer("\t", "", "\n", "", "\r", "").Replace(u)
	u = strings.ToLower(u)
	for _, s := range []string{"javascript:", "vbscript:", "data:", "livescript:", "mocha:"} {
		if strings.HasPrefix(u, s) {
			return true
		}
	}
	return false
}

func checkURL(key string) func(*testing.T, *html.Node, string) {
	return func(t *testing.T, doc *html.Node, payload string) {
		if got, _ := attr(byID(doc, "c"), key); dangerousURL(got) {
			t.Errorf("%s is %q", key, got)
		}
	}
}

func checkIsland(t *testing.T, doc *html.Node, payload string) {
	n := byID(doc, "c")
	if n == nil || n.Data != "script" {
		t.Fatalf("no island script")
	}
	if typ, _ := attr(n, "type"); typ != "application/json" {
		t.Errorf("island type %q", typ)
	}
	var got string
	if err := json.Unmarshal([]byte(textOf(n)), &got); err != nil {
		t.Fatalf("island is not JSON: %v: %q", err, textOf(n))
	}
	if got != payload {
		t.Errorf("island holds %q, want %q", got, payload)
	}
	if strings.ContainsAny(textOf(n), "<>&\u2028\u2029") {
		t.Errorf("island text has raw <, >, &, U+2028 or U+2029: %q", textOf(n))
	}
}

func checkCSSAttr(t *testing.T, doc *html.Node, payload string) {
	v, _ := attr(byID(doc, "c"), "style")
	low := strings.ToLower(v)
	for _, bad := range []string{"expression", "url(", "@import", "behavior", ";", "}"} {
		if strings.Contains(low, bad) {
			t.Errorf("style is %q", v)
		}
	}
}

func checkCSSElement(t *testing.T, doc *html.Node, payload string) {
	v := strings.ToLower(textOf(byID(doc, "c")))
	for _, bad := range []string{"<", "expression", "url(", "@import", "behavior", "}body"} {
		if strings.Contains(v, bad) {
			t.Errorf("style element is %q", v)
		}
	}
}

func parseHTML(t testing.TB, s string) *html.Node {
	doc, err := html.Parse(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestXSSCorpus renders every payload in every allowed context and checks
// with a real HTML parser that the page has exactly the structure a benign
// value gives it, and that the value came back as the same text.
func TestXSSCorpus(t *testing.T) {
	t.Parallel()
	payloads := loadPayloads(t)
	run := func(t *testing.T, contexts []xssContext, opts safetmpl.Options) {
		for _, c := range contexts {
			opts.Consts = append(opts.Consts, c.file)
		}
		set := mustSet(t, opts)
		for _, c := range contexts {
			page := c.page
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				benign := shape(parseHTML(t, renderRec(t, set, page, "benign", reqState{}).Body.String()))
				for _, p := range payloads {
					rec := renderRec(t, set, page, p, reqState{})
					if rec.Code != 200 {
						t.Fatalf("%q: status %d", p, rec.Code)
					}
					doc := parseHTML(t, rec.Body.String())
					if got := shape(doc); !slices.Equal(got, benign) {
						t.Errorf("payload %q changed the page:\n%s\nshape %v\nwant  %v", p, rec.Body, got, benign)
						continue
					}
					if c.check != nil {
						c.check(t, doc, p)
					}
				}
			})
		}
	}
	t.Run("default", func(t *testing.T) { t.Parallel(); run(t, xssContexts(), safetmpl.Options{}) })
	t.Run("css", func(t *testing.T) {
		t.Parallel()
		run(t, cssContexts(), safetmpl.Options{InsecureAllowStyleActions: true, Logger: slog.New(slog.DiscardHandler)})
	})
}

// TestXSSCorpusSanitized: markup that went through the sanitiser may keep
// formatting elements, but never a script, a handler or a script URL.
func TestXSSCorpusSanitized(t *testing.T) {
	t.Parallel()
	set := mustSet(t, safetmpl.Options{Consts: []safetmpl.ConstFile{
		safetmpl.Const("p.html", pageHead+`<div id="c">{{sanitize .}}</div>`+pageTail),
	}})
	for _, p := range loadPayloads(t) {
		doc := parseHTML(t, renderRec(t, set, "p.html", p, reqState{}).Body.String())
		var walk func(*html.Node)
		walk = func(n *html.Node) {
			if n.Type == html.ElementNode {
				switch n.Data {
				case "script", "style", "iframe", "object", "embed", "base", "link", "meta", "form", "svg", "math", "frameset", "template":
					t.Errorf("%q: sanitised output has <%s>", p, n.Data)
				}
				for _, a := range n.Attr {
					if strings.HasPrefix(a.Key, "on") || a.Key == "style" || a.Key == "srcdoc" ||
						(a.Key == "href" || a.Key == "src" || a.Key == "action") && dangerousURL(a.Val) {
						t.Errorf("%q: sanitised output has %s=%q", p, a.Key, a.Val)
					}
				}
			}
			for c := n.FirstChild; c != nil; c = c.NextSibling {
				walk(c)
			}
		}
		walk(byID(doc, "c"))
	}
}

// TestXSSCheckerDetectsAnchorBypass runs the same checks on html/template
// given the payloads as template.HTML and template.URL, the typed-string
// conversion the anchor trusts: the checks must catch most of them, or
// they would be proving nothing.
func TestXSSCheckerDetectsAnchorBypass(t *testing.T) {
	t.Parallel()
	payloads := loadPayloads(t)
	text := template.Must(template.New("t").Parse(pageHead + `<p id="c">{{.}}</p>` + pageTail))
	url := template.Must(template.New("u").Parse(pageHead + `<a id="c" href="{{.}}">x</a>` + pageTail))
	render := func(tm *template.Template, v any) *html.Node {
		var b strings.Builder
		if err := tm.Execute(&b, v); err != nil {
			t.Fatal(err)
		}
		return parseHTML(t, b.String())
	}
	benign := shape(render(text, "benign"))
	changed, scripts := 0, 0
	for _, p := range payloads {
		doc := render(text, template.HTML(p))
		if !slices.Equal(shape(doc), benign) {
			changed++
		}
		if got, _ := attr(byID(render(url, template.URL(p)), "c"), "href"); dangerousURL(got) {
			scripts++
		}
	}
	t.Logf("html/template with typed strings: %d of %d payloads changed the page, %d left a script URL", changed, len(payloads), scripts)
	if changed < len(payloads)/2 || scripts < 10 {
		t.Errorf("checks too weak: %d changed, %d script URLs", changed, scripts)
	}
}

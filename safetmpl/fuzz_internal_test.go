package safetmpl

import (
	"html/template"
	"net/http/httptest"
	"strings"
	"testing"
)

var escapeSeeds = []string{
	"", "plain", `<script>alert(1)</script>`, `" onmouseover="x`, "a\x00b", "&amp;", "+ADw-", "\u2028",
	"\xff\xfe invalid", "é ü 日本", "javascript:alert(1)", " JaVaScRiPt:x", "mailto:a@b", "HTTP://x", "//x/y",
	"/a:b", "a/b:c", "#frag", "?q=1", "data:text/html,x", "java\tscript:x", "%6Aavascript:x", ":", "",
}

// FuzzEscapeHTMLText checks safetmpl's HTML-text escaper against
// html/template's on plain strings: the output must be byte for byte the
// same, and contain no markup character.
func FuzzEscapeHTMLText(f *testing.F) {
	for _, s := range escapeSeeds {
		f.Add(s)
	}
	ref := template.Must(template.New("r").Parse(`{{.}}`))
	f.Fuzz(func(t *testing.T, s string) {
		var want strings.Builder
		if err := ref.Execute(&want, s); err != nil {
			t.Fatal(err)
		}
		if got := escapeHTMLText(s); got != want.String() {
			t.Fatalf("escapeHTMLText(%q) = %q, html/template gives %q", s, got, want.String())
		}
		if got := string(appendEscaped(nil, s)); got != want.String() {
			t.Fatalf("appendEscaped(%q) = %q, want %q", s, got, want.String())
		}
		if got := escapeHTMLText(template.HTML(s)); got != want.String() {
			t.Fatalf("template.HTML(%q) was trusted: %q", s, got)
		}
		if strings.ContainsAny(want.String(), "<>\"'\x00") {
			t.Fatalf("escaped text has markup: %q", want.String())
		}
	})
}

// FuzzFilterURL renders a URL attribute with html/template and with
// safetmpl: for plain strings the output must be identical, and a
// template.URL must get the same treatment as the plain string.
func FuzzFilterURL(f *testing.F) {
	for _, s := range escapeSeeds {
		f.Add(s)
	}
	const src = `<a href="{{.}}">x</a><a href="/p/{{.}}?q={{.}}">y</a>`
	ref := template.Must(template.New("r").Parse(src))
	set, err := New(Options{Consts: []ConstFile{Const("p.html", src)}})
	if err != nil {
		f.Fatal(err)
	}
	render := func(t *testing.T, v any) string {
		rec := httptest.NewRecorder()
		set.Render(rec, httptest.NewRequest("GET", "/", nil), "p.html", v)
		if rec.Code != 200 {
			t.Fatalf("status %d", rec.Code)
		}
		return rec.Body.String()
	}
	f.Fuzz(func(t *testing.T, s string) {
		var want strings.Builder
		if err := ref.Execute(&want, s); err != nil {
			t.Fatal(err)
		}
		if got := render(t, s); got != want.String() {
			t.Fatalf("%q:\n got %s\nwant %s", s, got, want.String())
		}
		if got := render(t, template.URL(s)); got != want.String() {
			t.Fatalf("template.URL(%q) treated differently:\n got %s\nwant %s", s, got, want.String())
		}
	})
}

// FuzzScanner feeds arbitrary text to the structure scanner: it must not
// panic, names stay bounded, and splitting the text anywhere (as actions
// and branches do) gives the same state as feeding it whole.
func FuzzScanner(f *testing.F) {
	for _, s := range []string{
		`<p>x</p>`, `<a href="x" onclick='y'>`, `<script>if (a < b) {}</script><p>`, `<!-- <script> -->`,
		`<style>p{}</style >`, `<SCRIPT src=x>`, `<textarea></textareax></textarea>`, `<!doctype html>`,
		`<?xml ?>`, `</p foo>`, `<a b c=d e='f' g="h">`, `<<a`, `<a/b=c>`, `<scriptx>`, `</script`,
		`<title>a</title>`, `<a xlink:href="">`, `<!--->`, `<!-- -- -->`, `<p a=">">`,
		`<meta content="0;url=/" http-equiv="refresh">`, `<META HTTP-EQUIV=refresh content=0>`, `<meta http-equiv><p>`,
		`<svg><a><set attributeName="href" to="/"/></a></svg>`, `<animateMotion xlink:values='x'>`,
	} {
		f.Add(s, uint8(len(s)/2))
	}
	f.Fuzz(func(t *testing.T, s string, cut uint8) {
		var whole, split scanner
		whole.feed([]byte(s))
		k := int(cut) % (len(s) + 1)
		split.feed([]byte(s[:k]))
		split.feed([]byte(s[k:]))
		if whole != split {
			t.Fatalf("state depends on split at %d: %+v vs %+v", k, whole, split)
		}
		if int(whole.tag.n) > len(whole.tag.buf) || int(whole.attr.n) > len(whole.attr.buf) {
			t.Fatalf("name overflow: %+v", whole)
		}
		// Text without '<' never leaves the text state.
		if !strings.Contains(s, "<") {
			if whole.st != stText {
				t.Fatalf("state %d after %q", whole.st, s)
			}
		}
		// Only actions pend refusals, and a start tag's facts end with it.
		if whole.pend != nil || whole.fired != nil {
			t.Fatalf("refusals without an action: %+v", whole)
		}
		if !whole.inStartTag() && (whole.equiv || whole.tagMay != 0 || whole.attrMay != 0) {
			t.Fatalf("tag facts outside a start tag: %+v", whole)
		}
		// An action never panics whatever the state.
		whole.action()
		_ = whole.inStartTag()
		_ = whole.inValue()
	})
}

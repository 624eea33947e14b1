package safetmpl_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"golang.org/x/net/html"

	"github.com/stormcellar/stormcellar/safetmpl"
)

// FuzzIsland: whatever the value, the island is one application/json
// script whose text decodes back to the value and holds no character the
// HTML parser or an old JavaScript parser would act on.
func FuzzIsland(f *testing.F) {
	for _, p := range loadPayloads(f) {
		f.Add(p)
	}
	f.Add("\xff\xfe")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := safetmpl.Island("d", map[string]any{"v": s, "list": []string{s, s}})
		if err != nil {
			t.Fatal(err)
		}
		doc := parseHTML(t, "<!doctype html><html><head></head><body>"+h.String()+"<p id=after></p></body></html>")
		var scripts []*html.Node
		var walk func(*html.Node)
		walk = func(n *html.Node) {
			if n.Type == html.ElementNode && n.Data == "script" {
				scripts = append(scripts, n)
			}
			for c := n.FirstChild; c != nil; c = c.NextSibling {
				walk(c)
			}
		}
		walk(doc)
		if len(scripts) != 1 || byID(doc, "after") == nil {
			t.Fatalf("island broke out: %q", h)
		}
		text := textOf(scripts[0])
		if strings.ContainsAny(text, "<>&\u2028\u2029") {
			t.Fatalf("raw special character in %q", text)
		}
		var back struct {
			V    string
			List []string
		}
		if err := json.Unmarshal([]byte(text), &back); err != nil {
			t.Fatalf("not JSON: %v: %q", err, text)
		}
		want := strings.Map(func(r rune) rune { return r }, s) // each invalid byte becomes U+FFFD, as in encoding/json
		if back.V != want || len(back.List) != 2 || back.List[0] != want {
			t.Fatalf("round trip: %q, want %q", back.V, want)
		}
	})
}

// FuzzRenderContexts renders fuzzed data in every allowed context and
// requires the structure a benign value gives (the corpus check, on
// arbitrary input).
func FuzzRenderContexts(f *testing.F) {
	for _, p := range loadPayloads(f) {
		f.Add(p)
	}
	var opts safetmpl.Options
	contexts := xssContexts()
	for _, c := range contexts {
		opts.Consts = append(opts.Consts, c.file)
	}
	set, err := safetmpl.New(opts)
	if err != nil {
		f.Fatal(err)
	}
	benign := map[string][]string{}
	for _, c := range contexts {
		benign[c.page] = shape(parseHTML(f, renderRec(f, set, c.page, "benign", reqState{}).Body.String()))
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, c := range contexts {
			rec := renderRec(t, set, c.page, s, reqState{})
			doc := parseHTML(t, rec.Body.String())
			if got := shape(doc); !slices.Equal(got, benign[c.page]) {
				t.Fatalf("%s: %q changed the page: %s", c.name, s, rec.Body)
			}
			if c.check != nil && strings.ToValidUTF8(s, "") == s {
				c.check(t, doc, s)
			}
		}
	})
}

// FuzzTemplateHoles fuzzes the template text itself: markup with {{.}}
// holes. When New accepts a template, hostile values must leave the page
// with the same structure as a benign one; when it refuses, the error
// must name the file.
func FuzzTemplateHoles(f *testing.F) {
	for _, s := range []string{
		`<p>{{.}}</p>`, `<a href="{{.}}" title='{{.}}'>x</a>`, `<textarea>{{.}}</textarea>`,
		`<img srcset="{{.}}" alt="{{.}}">`, `<table><tr><td>{{.}}</td></tr></table>`, `<select><option value="{{.}}">{{.}}</option></select>`,
		`<svg><text>{{.}}</text></svg>`, `<math><mi>{{.}}</mi></math>`, `<meta http-equiv="refresh" content="0;url={{.}}">`,
		`<a href="/x?q={{.}}#{{.}}">y</a>`, `<noscript>{{.}}</noscript>`, `<xmp>{{.}}</xmp>`, `<iframe src="{{.}}"></iframe>`,
		`<script>{{.}}</script>`, `<a onclick="{{.}}">`, `<p style="{{.}}">`, `<iframe srcdoc="{{.}}">`,
		`<title>{{.}}</title><p>{{.}}</p>`, `<form action="{{.}}"><input name="a" value="{{.}}"></form>`,
		`<meta content="{{.}}" http-equiv="refresh">`, `<meta name="description" content="{{.}}">`, `<meta charset="{{.}}">`,
		`<svg><a><set attributeName="href" to="{{.}}"/></a></svg>`, `<svg><animate attributeName="opacity" values="0;1" dur="{{.}}"/></svg>`,
	} {
		f.Add(s)
	}
	values := []string{
		`<script>alert(1)</script>`, `"><img src=x onerror=alert(1)>`, `' onmouseover='alert(1)`, `javascript:alert(1)`,
		`</textarea><svg onload=alert(1)>`, `--><script>x</script>`, `]]></title><script>x</script>`, "a\x00b",
		`</noscript><img src=x onerror=alert(1)>`, `</xmp><script>x</script>`, `&lt;script&gt;`, `x" y="z`,
	}
	f.Fuzz(func(t *testing.T, src string) {
		if strings.Contains(strings.ReplaceAll(src, "{{.}}", ""), "{{") || strings.Contains(src, "}}}") ||
			strings.Contains(strings.ToLower(src), "frameset") {
			return // only literal markup with {{.}} holes
		}
		set, err := safetmpl.New(safetmpl.Options{FS: fstest.MapFS{"f.html": {Data: []byte(src)}}})
		if err != nil {
			if !strings.Contains(err.Error(), "f.html") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		rec := renderRec(t, set, "f.html", "benign", reqState{})
		if rec.Code != 200 {
			t.Fatalf("benign render: %d", rec.Code)
		}
		want := shape(parseHTML(t, rec.Body.String()))
		if !strings.Contains(strings.ToLower(src), obeyedMarker) {
			doc := parseHTML(t, renderRec(t, set, "f.html", obeyedMarker, reqState{}).Body.String())
			if where := obeyedValue(doc, obeyedMarker); where != "" {
				t.Fatalf("template %q puts the value in %s", src, where)
			}
		}
		for _, v := range values {
			rec := renderRec(t, set, "f.html", v, reqState{})
			if got := shape(parseHTML(t, rec.Body.String())); !slices.Equal(got, want) {
				t.Fatalf("template %q with %q:\n%s\nshape %v\nwant  %v", src, v, rec.Body, got, want)
			}
		}
	})
}

// obeyedMarker is the value FuzzTemplateHoles looks for in the attributes
// that the browser obeys rather than shows.
const obeyedMarker = "q7zmark"

// obeyedValue returns where in the document a value holding marker is an
// instruction to the browser, as the HTML parser (not safetmpl's scanner)
// sees it: the http-equiv or charset of a <meta>, the content of a <meta>
// with http-equiv, or a value an SVG animation sets; "" if nowhere.
func obeyedValue(n *html.Node, marker string) string {
	if n.Type == html.ElementNode {
		tag := strings.ToLower(n.Data)
		equiv := false
		for _, a := range n.Attr {
			equiv = equiv || a.Namespace == "" && a.Key == "http-equiv"
		}
		for _, a := range n.Attr {
			if a.Namespace != "" || !strings.Contains(strings.ToLower(a.Val), marker) {
				continue
			}
			key := strings.ToLower(a.Key)
			switch {
			case tag == "meta" && (key == "http-equiv" || key == "charset" || key == "content" && equiv),
				(tag == "animate" || tag == "set" || tag == "animatemotion" || tag == "animatetransform" || tag == "animatecolor") &&
					(key == "to" || key == "from" || key == "by" || key == "values" || key == "attributename"):
				return "the " + a.Key + " attribute of <" + n.Data + ">"
			}
		}
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if where := obeyedValue(c, marker); where != "" {
			return where
		}
	}
	return ""
}

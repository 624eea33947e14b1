package safetmpl_test

import (
	"errors"
	"fmt"
	"html/template"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/stormcellar/stormcellar/httperr"
	"github.com/stormcellar/stormcellar/safetmpl"
)

func TestRenderHeadersAndBody(t *testing.T) {
	t.Parallel()
	set := mustSet(t, safetmpl.Options{Consts: []safetmpl.ConstFile{
		safetmpl.Const("p.html", `<p>Hello, {{.}}</p>`),
	}})
	cases := []struct {
		name   string
		method string
		status int
		body   string
	}{
		{"get", http.MethodGet, http.StatusOK, `<p>Hello, &lt;b&gt;Ada&lt;/b&gt;</p>`},
		{"head has no body", http.MethodHead, http.StatusOK, ""},
		{"custom status", http.MethodGet, http.StatusNotFound, `<p>Hello, &lt;b&gt;Ada&lt;/b&gt;</p>`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			h := withState(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				set.RenderStatus(w, r, tc.status, "p.html", "<b>Ada</b>")
			}), reqState{}, nil)
			h.ServeHTTP(rec, httptest.NewRequest(tc.method, "/", nil))
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d", rec.Code, tc.status)
			}
			if got := rec.Header().Get("Content-Type"); got != "text/html; charset=utf-8" {
				t.Errorf("Content-Type %q", got)
			}
			if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options %q", got)
			}
			if got, want := rec.Header().Get("Content-Length"), fmt.Sprint(len(`<p>Hello, &lt;b&gt;Ada&lt;/b&gt;</p>`)); got != want {
				t.Errorf("Content-Length %q, want %q", got, want)
			}
			if rec.Body.String() != tc.body {
				t.Errorf("body %q, want %q", rec.Body.String(), tc.body)
			}
		})
	}
}

// TestHalfPageNeverSent runs pages that fail part-way against a real
// server: the client must get a 500 error page from httperr and none of the
// page's first half, while a healthy page on the same server still works.
func TestHalfPageNeverSent(t *testing.T) {
	t.Parallel()
	set := mustSet(t, safetmpl.Options{
		Consts: []safetmpl.ConstFile{
			safetmpl.Const("fail.html", `<h1>FIRST-HALF</h1>{{range .}}<p>{{.}}</p>{{end}}<p>{{boom}}</p><p>SECOND-HALF</p>`),
			safetmpl.Const("big.html", `<h1>FIRST-HALF</h1>{{range .}}<p>{{.}}</p>{{end}}`),
			safetmpl.Const("field.html", `<h1>FIRST-HALF</h1>{{.Missing.Field}}`),
			safetmpl.Const("ok.html", `<p>ok {{.}}</p>`),
		},
		Funcs:       template.FuncMap{"boom": func() (string, error) { return "", errors.New("database on fire at 10.0.0.7") }},
		MaxPageSize: 64 << 10,
	})
	logs := &logBuffer{}
	mux := http.NewServeMux()
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) {
		set.Render(w, r, "fail.html", []string{strings.Repeat("x", 1000), "y"})
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		set.Render(w, r, "big.html", make([]string, 20000)) // ~140 KiB > 64 KiB
	})
	mux.HandleFunc("/field", func(w http.ResponseWriter, r *http.Request) {
		set.Render(w, r, "field.html", map[string]any{"Missing": 3})
	})
	mux.HandleFunc("/nopage", func(w http.ResponseWriter, r *http.Request) {
		set.Render(w, r, "nope.html", nil)
	})
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { set.Render(w, r, "ok.html", 1) })
	srv := httptest.NewServer(withState(mux, reqState{}, logs))
	defer srv.Close()

	for _, path := range []string{"/fail", "/big", "/field", "/nopage"} {
		t.Run(path, func(t *testing.T) {
			res, err := srv.Client().Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusInternalServerError {
				t.Fatalf("status %d, want 500", res.StatusCode)
			}
			for _, leak := range []string{"FIRST-HALF", "xxxxxxxx", "database on fire", "10.0.0.7"} {
				if strings.Contains(string(body), leak) {
					t.Errorf("body leaks %q: %.200s", leak, body)
				}
			}
			if res.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Error("error page without nosniff")
			}
		})
	}
	res, err := srv.Client().Get(srv.URL + "/ok")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(body) != "<p>ok 1</p>" {
		t.Fatalf("healthy page: %d %q", res.StatusCode, body)
	}
	log := logs.String()
	for _, want := range []string{"database on fire", safetmpl.ErrPageTooLarge.Error(), "nope.html", "status=500"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

// TestPlainTemplateSendsHalfPage shows the anchor: html/template executing
// into the ResponseWriter, the usual handler, sends the first half of the
// page with a 200 before the error.
func TestPlainTemplateSendsHalfPage(t *testing.T) {
	t.Parallel()
	plain := template.Must(template.New("p").Funcs(template.FuncMap{
		"boom": func() (string, error) { return "", errors.New("fail") },
	}).Parse(`<h1>FIRST-HALF</h1>{{range .}}<p>{{.}}</p>{{end}}<p>{{boom}}</p>`))
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := plain.Execute(w, []string{strings.Repeat("x", 5000)}); err != nil {
			http.Error(w, "error", 500) // too late: superfluous WriteHeader
		}
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	defer srv.Close()
	res, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), "FIRST-HALF") {
		t.Fatalf("expected the anchor to send half a page with 200; got %d %.80q", res.StatusCode, body)
	}
}

func TestRefusedActions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		file    safetmpl.ConstFile
		want    error
		context string
	}{
		{"script element", safetmpl.Const("p.html", "<p>ok</p>\n<script>var x = {{.}};</script>"), safetmpl.ErrScriptContext, "a <script> element"},
		{"script string", safetmpl.Const("p.html", `<script>var x = "{{.}}";</script>`), safetmpl.ErrScriptContext, "a <script> element"},
		{"script uppercase", safetmpl.Const("p.html", `<SCRIPT>x = {{.}}</SCRIPT>`), safetmpl.ErrScriptContext, "a <script> element"},
		{"script non-JS type", safetmpl.Const("p.html", `<script type="text/template">{{.}}</script>`), safetmpl.ErrScriptContext, "a <script> element"},
		{"event handler", safetmpl.Const("p.html", `<a onclick="go({{.}})">x</a>`), safetmpl.ErrScriptContext, "the onclick attribute"},
		{"event handler single quotes", safetmpl.Const("p.html", `<body onload='init("{{.}}")'>`), safetmpl.ErrScriptContext, "the onload attribute"},
		{"namespaced event", safetmpl.Const("p.html", `<svg><g xlink:onclick="{{.}}"></g></svg>`), safetmpl.ErrScriptContext, "xlink:onclick"},
		{"template literal", safetmpl.Const("p.html", "<script>let s = `{{.}}`;</script>"), safetmpl.ErrScriptContext, "template literal"},
		{"regexp", safetmpl.Const("p.html", `<script>let r = /{{.}}/;</script>`), safetmpl.ErrScriptContext, "regular expression"},
		{"script src", safetmpl.Const("p.html", `<script src="{{.}}"></script>`), safetmpl.ErrScriptContext, "<script> tag"},
		{"script type attr", safetmpl.Const("p.html", `<script type="{{.}}"></script>`), safetmpl.ErrScriptContext, "<script> tag"},
		{"base href", safetmpl.Const("p.html", `<base href="{{.}}">`), safetmpl.ErrScriptContext, "<base> tag"},
		{"style element", safetmpl.Const("p.html", `<style>p { color: {{.}} }</style>`), safetmpl.ErrStyleContext, "a <style> element"},
		{"style element url", safetmpl.Const("p.html", `<style>p { background: url("{{.}}") }</style>`), safetmpl.ErrStyleContext, "a <style> element"},
		{"style attribute", safetmpl.Const("p.html", `<p style="color: {{.}}">x</p>`), safetmpl.ErrStyleContext, "the style attribute"},
		{"style attribute url", safetmpl.Const("p.html", `<p style="background: url({{.}})">x</p>`), safetmpl.ErrStyleContext, "the style attribute"},
		{"attribute name", safetmpl.Const("p.html", `<p {{.}}="x">y</p>`), safetmpl.ErrMarkupContext, "attribute name"},
		{"unquoted value", safetmpl.Const("p.html", `<input value={{.}}>`), safetmpl.ErrMarkupContext, "unquoted"},
		{"comment", safetmpl.Const("p.html", `<!-- {{.}} -->`), safetmpl.ErrMarkupContext, "comment"},
		{"srcdoc", safetmpl.Const("p.html", `<iframe srcdoc="{{.}}"></iframe>`), safetmpl.ErrMarkupContext, "srcdoc"},
		{"through a partial", safetmpl.Const("p.html", `{{define "v"}}{{.}}{{end}}<a onclick="f({{template "v" .}})">x</a>`), safetmpl.ErrScriptContext, "the onclick attribute"},
		{"partial inside script", safetmpl.Const("p.html", `{{define "v"}}{{.}}{{end}}<script>f({{template "v" .}})</script>`), safetmpl.ErrScriptContext, "script"},
		{"in a branch", safetmpl.Const("p.html", `{{if .}}<p>ok</p>{{else}}<script>f({{.}})</script>{{end}}`), safetmpl.ErrScriptContext, "a <script> element"},
		{"srcdoc named in else", safetmpl.Const("p.html", `<iframe {{if .A}}title{{else}}srcdoc{{end}}="{{.X}}"></iframe>`), safetmpl.ErrMarkupContext, "srcdoc"},
		{"srcdoc named in with-else", safetmpl.Const("p.html", `<iframe {{with .A}}title{{else}}srcdoc{{end}}="{{.X}}"></iframe>`), safetmpl.ErrMarkupContext, "srcdoc"},
		{"srcdoc named in range-else", safetmpl.Const("p.html", `<iframe {{range .A}}title{{else}}srcdoc{{end}}="{{.X}}"></iframe>`), safetmpl.ErrMarkupContext, "srcdoc"},
		{"srcdoc when if is skipped", safetmpl.Const("p.html", `<iframe srcdoc{{if .A}}x{{end}}="{{.X}}"></iframe>`), safetmpl.ErrMarkupContext, "srcdoc"},
		{"javascript: URL", safetmpl.Const("p.html", `<a href="javascript:{{.}}">x</a>`), safetmpl.ErrScriptContext, "javascript: URL"},
		{"javascript: URL in iframe src", safetmpl.Const("p.html", `<iframe src=" JavaScript:void({{.}})"></iframe>`), safetmpl.ErrScriptContext, "javascript: URL"},
		{"javascript: URL with a tab", safetmpl.Const("p.html", "<a href=\"java\tscript:{{.}}\">x</a>"), safetmpl.ErrScriptContext, "javascript: URL"},
		{"vbscript: URL", safetmpl.Const("p.html", `<form action="vbscript:{{.}}"></form>`), safetmpl.ErrScriptContext, "javascript: URL"},
		{"scheme behind an entity", safetmpl.Const("p.html", `<a href="javascript&#58;/{{.}}">x</a>`), safetmpl.ErrScriptContext, "javascript: URL"},
		{"scheme completed by data", safetmpl.Const("p.html", `<a href="java{{.}}">x</a>`), safetmpl.ErrScriptContext, "javascript: URL"},
		{"javascript: URL in one branch", safetmpl.Const("p.html", `<a href="{{if .A}}/{{else}}javascript:{{end}}{{.X}}">x</a>`), safetmpl.ErrScriptContext, "javascript: URL"},
		{"javascript: URL through a partial checked before", safetmpl.Const("p.html", `{{define "u"}}{{.}}{{end}}<a href="/{{template "u" .}}">x</a><a href="javascript:{{template "u" .}}">y</a>`), safetmpl.ErrScriptContext, "javascript: URL"},
		{"base when if is skipped", safetmpl.Const("p.html", `<base{{if .A}}x{{end}} href="{{.X}}">`), safetmpl.ErrScriptContext, "<base> tag"},
		// <meta http-equiv>: the content is a header the browser obeys,
		// whatever the attribute order, case or http-equiv value.
		{"meta refresh content", safetmpl.Const("p.html", `<meta http-equiv="refresh" content="0;url={{.}}">`), safetmpl.ErrMarkupContext, "the content attribute of a <meta> tag with an http-equiv attribute"},
		{"meta refresh whole content", safetmpl.Const("p.html", `<meta http-equiv="refresh" content="{{.}}">`), safetmpl.ErrMarkupContext, "content attribute of a <meta>"},
		{"meta content before http-equiv", safetmpl.Const("p.html", `<meta content="0;url={{.}}" http-equiv="refresh">`), safetmpl.ErrMarkupContext, "content attribute of a <meta>"},
		{"meta content before http-equiv self-closed", safetmpl.Const("p.html", `<meta content='{{.}}' http-equiv='refresh'/>`), safetmpl.ErrMarkupContext, "content attribute of a <meta>"},
		{"meta upper case", safetmpl.Const("p.html", `<META HTTP-EQUIV="Refresh" CONTENT="0;URL={{.}}">`), safetmpl.ErrMarkupContext, "content attribute of a <meta>"},
		{"meta upper case content first", safetmpl.Const("p.html", `<Meta Content="{{.}}" Http-Equiv="REFRESH">`), safetmpl.ErrMarkupContext, "content attribute of a <meta>"},
		{"meta http-equiv with spaces", safetmpl.Const("p.html", "<meta content=\"{{.}}\" http-equiv=\" refresh\t\">"), safetmpl.ErrMarkupContext, "content attribute of a <meta>"},
		{"meta http-equiv of another header", safetmpl.Const("p.html", `<meta http-equiv="content-type" content="text/html; charset={{.}}">`), safetmpl.ErrMarkupContext, "content attribute of a <meta>"},
		{"meta http-equiv without a value", safetmpl.Const("p.html", `<meta content="{{.}}" http-equiv>`), safetmpl.ErrMarkupContext, "content attribute of a <meta>"},
		{"meta namespaced attributes", safetmpl.Const("p.html", `<meta x:content="{{.}}" x:http-equiv="refresh">`), safetmpl.ErrMarkupContext, "content attribute of a <meta>"},
		{"meta http-equiv after other attributes", safetmpl.Const("p.html", "<meta\ncontent=\"0;url={{.}}\"\nid=\"r\"\nhttp-equiv=\"refresh\"\n>"), safetmpl.ErrMarkupContext, "content attribute of a <meta>"},
		{"meta action in http-equiv", safetmpl.Const("p.html", `<meta http-equiv="{{.}}" content="0;url=/next">`), safetmpl.ErrMarkupContext, "the http-equiv attribute of a <meta> tag"},
		{"meta action in http-equiv, upper case", safetmpl.Const("p.html", `<META HTTP-EQUIV='{{.}}'>`), safetmpl.ErrMarkupContext, "the http-equiv attribute of a <meta> tag"},
		{"meta action in charset", safetmpl.Const("p.html", `<meta charset="{{.}}">`), safetmpl.ErrMarkupContext, "the charset attribute of a <meta> tag"},
		{"meta http-equiv in an if arm after content", safetmpl.Const("p.html", `<meta content="{{.C}}"{{if .R}} http-equiv="refresh"{{end}}>`), safetmpl.ErrMarkupContext, "content attribute of a <meta>"},
		{"meta http-equiv in an else arm after content", safetmpl.Const("p.html", `<meta content="{{.C}}" {{if .R}}name{{else}}http-equiv{{end}}="refresh">`), safetmpl.ErrMarkupContext, "content attribute of a <meta>"},
		{"meta http-equiv named in else", safetmpl.Const("p.html", `<meta {{if .A}}name{{else}}http-equiv{{end}}="refresh" content="{{.C}}">`), safetmpl.ErrMarkupContext, "content attribute of a <meta>"},
		{"meta http-equiv only in else", safetmpl.Const("p.html", `<meta {{if .A}}{{else}}http-equiv="refresh"{{end}} content="{{.C}}">`), safetmpl.ErrMarkupContext, "content attribute of a <meta>"},
		{"meta http-equiv in range", safetmpl.Const("p.html", `<meta {{range .L}}http-equiv="refresh" {{end}}content="{{.C}}">`), safetmpl.ErrMarkupContext, "content attribute of a <meta>"},
		{"meta content in a with arm", safetmpl.Const("p.html", `<meta {{with .C}}content="{{.}}" {{end}}http-equiv="refresh">`), safetmpl.ErrMarkupContext, "content attribute of a <meta>"},
		{"meta content in an if arm of the value", safetmpl.Const("p.html", `<meta content="{{if .A}}{{.U}}{{else}}5{{end}}" http-equiv="refresh">`), safetmpl.ErrMarkupContext, "content attribute of a <meta>"},
		{"meta http-equiv from a partial", safetmpl.Const("p.html", `{{define "eq"}} http-equiv="refresh"{{end}}<meta content="{{.}}"{{template "eq"}}>`), safetmpl.ErrMarkupContext, "content attribute of a <meta>"},
		{"meta http-equiv from a partial called twice", safetmpl.Const("p.html", `{{define "eq"}} http-equiv="refresh"{{end}}<meta content="/x"{{template "eq"}}><meta content="/{{.}}"{{template "eq"}}>`), safetmpl.ErrMarkupContext, "content attribute of a <meta>"},
		{"meta http-equiv after an arm that ends the tag", safetmpl.Const("p.html", `<meta content="{{.}}"{{if .A}}><meta{{end}} http-equiv="refresh">`), safetmpl.ErrMarkupContext, "content attribute of a <meta>"},
		{"meta content in a recursive partial", safetmpl.Const("p.html", `{{define "r"}}" http-equiv="x"><meta content="{{.}}{{if .}}{{template "r" .}}{{end}}{{end}}<meta content="{{template "r" .}}">`), safetmpl.ErrMarkupContext, "content attribute of a <meta>"},
		{"meta tag ended by a partial", safetmpl.Const("p.html", `{{define "end"}}" http-equiv="refresh">{{end}}<meta content="{{.}}{{template "end"}}<p>x</p>`), safetmpl.ErrMarkupContext, "content attribute of a <meta>"},
		{"meta content from a partial", safetmpl.Const("p.html", `{{define "u"}}0;url={{.}}{{end}}<meta content="{{template "u" .}}" http-equiv="refresh">`), safetmpl.ErrMarkupContext, "content attribute of a <meta>"},
		// SVG animations set the attribute attributeName names: href
		// becomes a javascript: URL, on* a handler.
		{"animate values", safetmpl.Const("p.html", `<svg><a><animate attributeName="href" values="{{.}}"/><text>x</text></a></svg>`), safetmpl.ErrScriptContext, "the values attribute of an SVG <animate> tag"},
		{"set to", safetmpl.Const("p.html", `<svg><a><set attributeName="href" to="{{.}}"/><text>x</text></a></svg>`), safetmpl.ErrScriptContext, "the to attribute of an SVG <set> tag"},
		{"animate from", safetmpl.Const("p.html", `<svg><a><animate attributeName="href" from="{{.}}" to="/" dur="1s"/></a></svg>`), safetmpl.ErrScriptContext, "the from attribute of an SVG <animate> tag"},
		{"animate by", safetmpl.Const("p.html", `<svg><animate attributeName="x" by="{{.}}" dur="1s"/></svg>`), safetmpl.ErrScriptContext, "the by attribute"},
		{"animateMotion values", safetmpl.Const("p.html", `<svg><animateMotion values="{{.}}"/></svg>`), safetmpl.ErrScriptContext, "<animatemotion> tag"},
		{"animateTransform to", safetmpl.Const("p.html", `<svg><animateTransform attributeName="transform" to="{{.}}"/></svg>`), safetmpl.ErrScriptContext, "<animatetransform> tag"},
		{"animateColor to", safetmpl.Const("p.html", `<svg><animateColor attributeName="fill" to="{{.}}"/></svg>`), safetmpl.ErrScriptContext, "<animatecolor> tag"},
		{"action in attributeName", safetmpl.Const("p.html", `<svg><a><set attributeName="{{.}}" to="javascript:void(0)"/></a></svg>`), safetmpl.ErrScriptContext, "the attributename attribute"},
		{"action in attributeName, on* target", safetmpl.Const("p.html", `<svg><rect width="9" height="9"><set attributeName="on{{.}}" to="x"/></rect></svg>`), safetmpl.ErrScriptContext, "the attributename attribute"},
		{"animation upper case", safetmpl.Const("p.html", `<SVG><A><SET ATTRIBUTENAME="href" TO="{{.}}"/></A></SVG>`), safetmpl.ErrScriptContext, "the to attribute of an SVG <set> tag"},
		{"animation xlink:href target", safetmpl.Const("p.html", `<svg><a xlink:href="/"><animate attributeName="xlink:href" values="{{.}}"/></a></svg>`), safetmpl.ErrScriptContext, "the values attribute"},
		{"animation namespaced attribute", safetmpl.Const("p.html", `<svg><a><set attributeName="href" xlink:to="{{.}}"/></a></svg>`), safetmpl.ErrScriptContext, "the xlink:to attribute"},
		{"animation namespaced element", safetmpl.Const("p.html", `<svg><a><svg:set attributeName="href" to="{{.}}"/></a></svg>`), safetmpl.ErrScriptContext, "the to attribute of an SVG <svg:set> tag"},
		{"animation single-quoted", safetmpl.Const("p.html", `<svg><a><set attributeName='href' to='{{.}}'/></a></svg>`), safetmpl.ErrScriptContext, "the to attribute"},
		{"animation tag named in else", safetmpl.Const("p.html", `<svg><a>{{if .A}}<g{{else}}<set{{end}} attributeName="href" to="{{.X}}"/></a></svg>`), safetmpl.ErrScriptContext, "the to attribute of an SVG animation tag"},
		{"animation tag named in with-else", safetmpl.Const("p.html", `<svg><a>{{with .A}}<g{{else}}<animate{{end}} attributeName="href" values="{{.X}}"/></a></svg>`), safetmpl.ErrScriptContext, "the values attribute of an SVG animation tag"},
		{"animation attribute named in else", safetmpl.Const("p.html", `<svg><a><set attributeName="href" {{if .A}}begin{{else}}to{{end}}="{{.X}}"/></a></svg>`), safetmpl.ErrScriptContext, "an attribute a branch may name to, from, by, values or attributeName of an SVG <set> tag"},
		{"animation value in an if arm", safetmpl.Const("p.html", `<svg><a><set attributeName="href" {{if .A}}to="{{.X}}"{{end}}/></a></svg>`), safetmpl.ErrScriptContext, "the to attribute"},
		{"animation value through a partial", safetmpl.Const("p.html", `{{define "v"}}{{.}}{{end}}<svg><a><set attributeName="href" to="{{template "v" .}}"/></a></svg>`), safetmpl.ErrScriptContext, "the to attribute"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := safetmpl.New(safetmpl.Options{Consts: []safetmpl.ConstFile{tc.file}})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			var te *safetmpl.Error
			if !errors.As(err, &te) {
				t.Fatalf("err %T is not a *safetmpl.Error", err)
			}
			if te.File != "p.html" || te.Line < 1 || te.Col < 1 || !strings.Contains(te.Context, tc.context) {
				t.Errorf("got %+v, want file p.html, a line and col, context containing %q", te, tc.context)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("p.html:%d:%d", te.Line, te.Col)) {
				t.Errorf("message lacks the location: %v", err)
			}
		})
	}
}

// TestRefusalNamesFileAndLine loads a multi-line page from an FS and checks
// the exact position reported, for a page and for a shared partial.
func TestRefusalNamesFileAndLine(t *testing.T) {
	t.Parallel()
	fsys := fstest.MapFS{
		"pages/index.html":    {Data: []byte("<h1>{{.Title}}</h1>\n<p>ok</p>\n<button onclick=\"buy({{.ID}})\">Buy</button>\n")},
		"partials/chart.html": {Data: []byte("{{define \"chart\"}}\n<div>\n<script>draw({{.}})</script>\n</div>{{end}}")},
		"pages/chart.html":    {Data: []byte(`{{template "chart" .}}`)},
		// Refused when the tag ends, at the action's own position.
		"pages/head.html": {Data: []byte("<head>\n<meta\n  content=\"0;url={{.Next}}\"\n  http-equiv=\"refresh\">\n</head>")},
	}
	_, err := safetmpl.New(safetmpl.Options{FS: fsys, Shared: []string{"partials/*.html"}})
	if err == nil {
		t.Fatal("New accepted script actions")
	}
	for _, want := range []string{
		"pages/index.html:3:24: {{.ID}} in the onclick attribute",
		"partials/chart.html:3:16: {{.}} in a <script> element",
		"pages/head.html:3:20: {{.Next}} in the content attribute of a <meta> tag with an http-equiv attribute",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestInsecureOptionsAllowEscapedScriptAndStyle(t *testing.T) {
	t.Parallel()
	logs := &logBuffer{}
	set := mustSet(t, safetmpl.Options{
		Consts: []safetmpl.ConstFile{
			safetmpl.Const("p.html", `<script>var x = {{.}};</script><a onclick="f({{.}})">x</a><p style="color: {{.}}">y</p><script src="{{.}}"></script>`),
		},
		InsecureAllowScriptActions: true,
		InsecureAllowStyleActions:  true,
		Logger:                     logs.logger(),
	})
	rec := renderRec(t, set, "p.html", template.JS(`alert(1)</script>`), reqState{})
	body := rec.Body.String()
	// Typed strings are demoted to plain values even here: template.JS is
	// quoted as a string, not trusted as code.
	for _, want := range []string{`var x = "alert(1)\u003c/script\u003e";`, `f(&#34;alert(1)\u003c/script\u003e&#34;)`, `color: ZgotmplZ`} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %q: %s", want, body)
		}
	}
	for _, opt := range []string{"InsecureAllowScriptActions", "InsecureAllowStyleActions"} {
		if !strings.Contains(logs.String(), "option="+opt) {
			t.Errorf("no warning logged for %s: %s", opt, logs.String())
		}
	}
	// Template literals, regexps and animation values stay refused: no
	// JavaScript escaper applies there.
	for _, f := range []safetmpl.ConstFile{
		safetmpl.Const("p.html", "<script>`{{.}}`</script>"),
		safetmpl.Const("p.html", "<script>/{{.}}/</script>"),
		safetmpl.Const("p.html", `<svg><a><set attributeName="href" to="{{.}}"/></a></svg>`),
		safetmpl.Const("p.html", `<svg><a><animate attributeName="{{.}}" values="javascript:void(0)"/></a></svg>`),
	} {
		_, err := safetmpl.New(safetmpl.Options{Consts: []safetmpl.ConstFile{f}, InsecureAllowScriptActions: true, Logger: logs.logger()})
		if !errors.Is(err, safetmpl.ErrScriptContext) {
			t.Errorf("err = %v, want ErrScriptContext", err)
		}
	}
	// And <meta http-equiv>, <meta charset> with every option on.
	for _, f := range []safetmpl.ConstFile{
		safetmpl.Const("p.html", `<meta http-equiv="refresh" content="0;url={{.}}">`),
		safetmpl.Const("p.html", `<meta content="{{.}}" http-equiv="refresh">`),
		safetmpl.Const("p.html", `<meta charset="{{.}}">`),
	} {
		_, err := safetmpl.New(safetmpl.Options{Consts: []safetmpl.ConstFile{f}, InsecureAllowScriptActions: true,
			InsecureAllowStyleActions: true, Logger: logs.logger()})
		if !errors.Is(err, safetmpl.ErrMarkupContext) {
			t.Errorf("err = %v, want ErrMarkupContext", err)
		}
	}
}

// TestTypedStringBypassClosed compares the anchor, where converting request
// data to template.HTML or template.URL turns escaping off, with safetmpl,
// where the same values are escaped as text in every context.
func TestTypedStringBypassClosed(t *testing.T) {
	t.Parallel()
	const src = `<p>{{.H}}</p><a href="{{.U}}">x</a><a href="/s?q={{.Q}}">y</a><img srcset="{{.S}}"><p>{{.P}}</p><p>{{fn}}</p>`
	payload := `<img src=x onerror=alert(1)>`
	data := map[string]any{
		"H": template.HTML(payload),
		"U": template.URL("javascript:alert(1)"),
		"Q": template.URL("a&admin=1"),
		"S": template.Srcset("javascript:alert(1) 1x"),
		"P": ptr(template.HTML(payload)),
	}
	fn := func() template.HTML { return template.HTML(payload) }

	plain := template.Must(template.New("p").Funcs(template.FuncMap{"fn": fn}).Parse(src))
	var sb strings.Builder
	if err := plain.Execute(&sb, data); err != nil {
		t.Fatal(err)
	}
	anchor := sb.String()
	for _, bypass := range []string{"<p><img src=x onerror=alert(1)></p>", `href="javascript:alert%281%29"`, "q=a&amp;admin=1", `srcset="javascript:alert(1) 1x"`} {
		if !strings.Contains(anchor, bypass) {
			t.Errorf("anchor no longer shows bypass %q: %s", bypass, anchor)
		}
	}

	set := mustSet(t, safetmpl.Options{
		Consts: []safetmpl.ConstFile{safetmpl.Const("p.html", src)},
		Funcs:  template.FuncMap{"fn": fn},
	})
	got := renderRec(t, set, "p.html", data, reqState{}).Body.String()
	want := `<p>&lt;img src=x onerror=alert(1)&gt;</p><a href="#ZgotmplZ">x</a><a href="/s?q=a%26admin%3d1">y</a><img srcset="#ZgotmplZ"><p>&lt;img src=x onerror=alert(1)&gt;</p><p>&lt;img src=x onerror=alert(1)&gt;</p>`
	if got != want {
		t.Errorf("safetmpl:\n got %s\nwant %s", got, want)
	}
}

func ptr[T any](v T) *T { return &v }

func TestTrustedHTML(t *testing.T) {
	t.Parallel()
	set := mustSet(t, safetmpl.Options{Consts: []safetmpl.ConstFile{
		safetmpl.Const("p.html", `<div>{{.C}}</div><div>{{sanitize .U}}</div><div>{{.S}}</div><p title="{{.C}}">t</p><textarea>{{.C}}</textarea>`),
	}})
	data := map[string]any{
		"C": safetmpl.ConstHTML(`<b>bold</b>`),
		"U": `<a href="https://example.com/" onclick="x()">link</a><script>alert(1)</script><img src=x onerror=alert(1)>`,
		"S": set.Sanitize(`<i>ok</i><svg onload=alert(1)>`),
	}
	got := renderRec(t, set, "p.html", data, reqState{}).Body.String()
	want := `<div><b>bold</b></div><div><a href="https://example.com/" rel="nofollow">link</a><img src="x"></div><div><i>ok</i></div>` +
		`<p title="&lt;b&gt;bold&lt;/b&gt;">t</p><textarea>&lt;b&gt;bold&lt;/b&gt;</textarea>`
	if got != want {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
}

func TestNonce(t *testing.T) {
	t.Parallel()
	set := mustSet(t, safetmpl.Options{Consts: []safetmpl.ConstFile{
		safetmpl.Const("p.html", `<script nonce="{{nonce}}" src="/app.js"></script><style nonce='{{nonce}}'>p{}</style>`),
	}})
	cases := []struct{ name, nonce, want string }{
		{"nonce", "r4nd0m+/=", `<script nonce="r4nd0m&#43;/=" src="/app.js"></script><style nonce='r4nd0m&#43;/='>p{}</style>`},
		{"hostile nonce is still escaped", `"><script>`, `<script nonce="&#34;&gt;&lt;script&gt;" src="/app.js"></script><style nonce='&#34;&gt;&lt;script&gt;'>p{}</style>`},
		{"no SecureHeaders", "", `<script nonce="" src="/app.js"></script><style nonce=''>p{}</style>`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := renderRec(t, set, "p.html", nil, reqState{nonce: tc.nonce})
			if rec.Body.String() != tc.want {
				t.Errorf("\n got %s\nwant %s", rec.Body, tc.want)
			}
		})
	}
	// Data that spells the marker text is just text.
	set2 := mustSet(t, safetmpl.Options{Consts: []safetmpl.ConstFile{safetmpl.Const("p.html", `<p title="{{.}}">{{.}}</p>`)}})
	if got := renderRec(t, set2, "p.html", "safetmplnonce", reqState{nonce: "N"}).Body.String(); got != `<p title="safetmplnonce">safetmplnonce</p>` {
		t.Errorf("marker text in data was replaced: %s", got)
	}
}

// TestNonceConcurrent renders in parallel with a different nonce each:
// every response must carry its own.
func TestNonceConcurrent(t *testing.T) {
	t.Parallel()
	set := mustSet(t, safetmpl.Options{Consts: []safetmpl.ConstFile{
		safetmpl.Const("p.html", `{{range .}}<script nonce="{{nonce}}"></script><form>{{xsrfField}}</form>{{end}}`),
	}})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Go(func() {
			n := fmt.Sprintf("n%03d", i)
			tok := fmt.Sprintf("t%03d", i)
			rec := renderRec(t, set, "p.html", []int{1, 2, 3}, reqState{nonce: n, token: func() string { return tok }})
			want := strings.Repeat(`<script nonce="`+n+`"></script><form><input type="hidden" name="_xsrf" value="`+tok+`"></form>`, 3)
			if rec.Body.String() != want {
				errs <- fmt.Errorf("render %d: %s", i, rec.Body)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestXSRF(t *testing.T) {
	t.Parallel()
	set := mustSet(t, safetmpl.Options{
		Consts: []safetmpl.ConstFile{
			safetmpl.Const("form.html", `<form method="post"><p>FORM-START</p>{{xsrfField}}<meta name="xsrf" content="{{xsrfToken}}"></form>`),
			safetmpl.Const("cond.html", `{{if .}}<form>{{xsrfField}}</form>{{else}}<p>no form</p>{{end}}`),
		},
		XSRFField: "csrf_token",
	})
	calls := 0
	cases := []struct {
		name   string
		page   string
		data   any
		token  func() string
		status int
		body   string
	}{
		{"token", "form.html", nil, func() string { calls++; return "2|ab&cd|ef" }, 200,
			`<form method="post"><p>FORM-START</p><input type="hidden" name="csrf_token" value="2|ab&amp;cd|ef"><meta name="xsrf" content="2|ab&amp;cd|ef"></form>`},
		{"no middleware", "form.html", nil, nil, 500, ""},
		{"empty token", "form.html", nil, func() string { return "" }, 500, ""},
		{"form not rendered", "cond.html", false, nil, 200, `<p>no form</p>`},
		{"form rendered", "cond.html", true, nil, 500, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := renderRec(t, set, tc.page, tc.data, reqState{token: tc.token})
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d", rec.Code, tc.status)
			}
			if tc.status == 200 && rec.Body.String() != tc.body {
				t.Errorf("\n got %s\nwant %s", rec.Body, tc.body)
			}
			if tc.status == 500 && strings.Contains(rec.Body.String(), "FORM-START") {
				t.Errorf("half page sent: %s", rec.Body)
			}
			if tc.name == "token" && rec.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("page with a token is cacheable: %q", rec.Header().Get("Cache-Control"))
			}
		})
	}
	if calls != 1 {
		t.Errorf("token source called %d times for one page, want 1", calls)
	}
}

// TestPredefinedEscapers: html and urlquery, which html/template merges
// into its escaper chain, are accepted and still escape typed strings.
func TestPredefinedEscapers(t *testing.T) {
	t.Parallel()
	set := mustSet(t, safetmpl.Options{Consts: []safetmpl.ConstFile{
		safetmpl.Const("p.html", `<p>{{html .}}</p><p>{{. | html}}</p><p title="{{. | html}}">x</p><a href="/s?q={{. | urlquery}}">y</a><a href="{{. | html}}">z</a>`),
	}})
	got := renderRec(t, set, "p.html", template.HTML(`<b>&`), reqState{}).Body.String()
	want := `<p>&lt;b&gt;&amp;</p><p>&lt;b&gt;&amp;</p><p title="&lt;b&gt;&amp;">x</p><a href="/s?q=%3Cb%3E%26">y</a><a href="%3cb%3e&amp;">z</a>`
	if got != want {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
}

func TestRequestFuncMisuse(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		file safetmpl.ConstFile
	}{
		{"nonce in text", safetmpl.Const("p.html", `<p>{{nonce}}</p>`)},
		{"nonce in URL", safetmpl.Const("p.html", `<a href="{{nonce}}">x</a>`)},
		// Outside the nonce attribute, an injected style can read it.
		{"nonce in a data attribute", safetmpl.Const("p.html", `<p data-n="{{nonce}}">x</p>`)},
		{"nonce in a meta tag", safetmpl.Const("p.html", `<meta name="csp-nonce" content="{{nonce}}">`)},
		{"nonce piped", safetmpl.Const("p.html", `<p title="{{nonce | printf "%s"}}">x</p>`)},
		{"nonce as argument", safetmpl.Const("p.html", `<p title="{{printf "%s" nonce}}">x</p>`)},
		{"nonce in variable", safetmpl.Const("p.html", `{{$n := nonce}}<p title="{{$n}}">x</p>`)},
		{"nonce in if", safetmpl.Const("p.html", `{{if nonce}}x{{end}}`)},
		{"field in attribute", safetmpl.Const("p.html", `<p title="{{xsrfField}}">x</p>`)},
		{"field in textarea", safetmpl.Const("p.html", `<textarea>{{xsrfField}}</textarea>`)},
		{"token in text", safetmpl.Const("p.html", `<p>{{xsrfToken}}</p>`)},
		{"token unquoted", safetmpl.Const("p.html", `<p title={{xsrfToken}}>x</p>`)},
		{"reserved escaper name", safetmpl.Const("p.html", `<p>{{_html_template_htmlescaper .}}</p>`)},
		{"reserved own name", safetmpl.Const("p.html", `<p>{{_safetmpl_untyped .}}</p>`)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := safetmpl.New(safetmpl.Options{Consts: []safetmpl.ConstFile{tc.file}})
			// Reserved names fail at parse time or as ErrReserved; request
			// functions always as ErrReserved.
			if err == nil || !strings.HasPrefix(tc.name, "reserved") && !errors.Is(err, safetmpl.ErrReserved) {
				t.Fatalf("err = %v, want ErrReserved", err)
			}
			if !strings.Contains(err.Error(), "p.html:1:") {
				t.Errorf("no location: %v", err)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	ok := safetmpl.Const("p.html", `<p>{{.}}</p>`)
	fsys := fstest.MapFS{
		"a.html":        {Data: []byte(`<p>a</p>`)},
		"shared/x.html": {Data: []byte(`{{define "x"}}1{{end}}`)},
		"shared/y.html": {Data: []byte(`{{define "x"}}2{{end}}`)},
		"bad.html":      {Data: []byte("<p>\n{{.Foo</p>")},
	}
	cases := []struct {
		name string
		opts safetmpl.Options
		want string
	}{
		{"nothing", safetmpl.Options{}, "no page templates"},
		{"bad pattern", safetmpl.Options{Consts: []safetmpl.ConstFile{ok}, Pages: []string{"["}}, "syntax error in pattern"},
		{"pattern matches nothing", safetmpl.Options{Consts: []safetmpl.ConstFile{ok}, Shared: []string{"layouts/*.html"}}, "matches no template"},
		{"duplicate const", safetmpl.Options{Consts: []safetmpl.ConstFile{ok, ok}}, "two Const templates"},
		{"const shadows file", safetmpl.Options{FS: fstest.MapFS{"p.html": {}}, Consts: []safetmpl.ConstFile{ok}}, "has the name of a file"},
		{"bad const name", safetmpl.Options{Consts: []safetmpl.ConstFile{safetmpl.Const("../p.html", "x")}}, "not a valid"},
		{"shared define twice", safetmpl.Options{FS: fsys, Pages: []string{"a.html"}, Shared: []string{"shared/*.html"}}, `"x" is defined in both shared/x.html and shared/y.html`},
		{"parse error", safetmpl.Options{FS: fsys, Pages: []string{"bad.html"}}, "bad.html:2:"},
		{"undefined template", safetmpl.Options{Consts: []safetmpl.ConstFile{safetmpl.Const("p.html", `{{template "nope"}}`)}}, `no such template "nope"`},
		{"ends in a tag", safetmpl.Options{Consts: []safetmpl.ConstFile{safetmpl.Const("p.html", `<a href="`)}}, "non-text context"},
		{"negative MaxPageSize", safetmpl.Options{Consts: []safetmpl.ConstFile{ok}, MaxPageSize: -1}, "MaxPageSize"},
		{"bad XSRF field", safetmpl.Options{Consts: []safetmpl.ConstFile{ok}, XSRFField: `x" onfocus="`}, "XSRFField"},
		{"func shadows html", safetmpl.Options{Consts: []safetmpl.ConstFile{ok}, Funcs: template.FuncMap{"html": func(s string) string { return s }}}, "replace a builtin"},
		{"func shadows a safetmpl function", safetmpl.Options{Consts: []safetmpl.ConstFile{ok}, Funcs: template.FuncMap{"nonce": func() string { return "" }}}, "safetmpl function"},
		{"func underscore", safetmpl.Options{Consts: []safetmpl.ConstFile{ok}, Funcs: template.FuncMap{"_x": func() string { return "" }}}, "does not start with '_'"},
		{"func not a func", safetmpl.Options{Consts: []safetmpl.ConstFile{ok}, Funcs: template.FuncMap{"x": 3}}, "not a function"},
		{"func bad results", safetmpl.Options{Consts: []safetmpl.ConstFile{ok}, Funcs: template.FuncMap{"x": func() (int, int) { return 0, 0 }}}, "must return"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := safetmpl.New(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestTemplateSyntaxInDataIsLiteral: data is never parsed as a template,
// whatever template language it imitates (the SSTI payloads that run code
// in Tornado render as text here).
func TestTemplateSyntaxInDataIsLiteral(t *testing.T) {
	t.Parallel()
	set := mustSet(t, safetmpl.Options{Consts: []safetmpl.ConstFile{
		safetmpl.Const("p.html", `<p>{{.}}</p><p title="{{.}}">x</p>`),
	}})
	for _, in := range []string{
		`{{.}}`, `{{template "p.html" .}}`, `{{ handler.settings['cookie_secret'] }}`,
		`{% raw __import__('os').getpid() %}`, `{% import os %}{{ os.name }}`, `{% autoescape None %}`,
		`${7*7}`, `#{7*7}`, `<%= 7*7 %>`, `{{7*7}}`, `{{constructor.constructor('alert(1)')()}}`,
		`{{define "x"}}{{end}}`, `{{nonce}}`, `{{xsrfField}}`,
	} {
		got := renderRec(t, set, "p.html", in, reqState{nonce: "N", token: func() string { return "T" }}).Body.String()
		esc := template.HTMLEscapeString(in)
		esc = strings.ReplaceAll(esc, "+", "&#43;")
		if want := "<p>" + esc + `</p><p title="` + esc + `">x</p>`; got != want {
			t.Errorf("%q:\n got %s\nwant %s", in, got, want)
		}
	}
}

func TestIsland(t *testing.T) {
	t.Parallel()
	set := mustSet(t, safetmpl.Options{Consts: []safetmpl.ConstFile{
		safetmpl.Const("p.html", `<div>{{island "user-data" .}}</div>`),
		safetmpl.Const("bad.html", `{{island .ID .V}}`),
	}})
	data := map[string]any{"name": "</script><script>alert(1)</script>", "c": "<!--", "ls": "a\u2028b\u2029c", "amp": "&"}
	got := renderRec(t, set, "p.html", data, reqState{}).Body.String()
	want := `<div><script type="application/json" id="user-data">` +
		`{"amp":"\u0026","c":"\u003c!--","ls":"a\u2028b\u2029c","name":"\u003c/script\u003e\u003cscript\u003ealert(1)\u003c/script\u003e"}` +
		`</script></div>`
	if got != want {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
	for _, id := range []string{"", `x" onload="alert(1)`, "1abc", strings.Repeat("a", 65)} {
		rec := renderRec(t, set, "bad.html", map[string]any{"ID": id, "V": 1}, reqState{})
		if rec.Code != 500 {
			t.Errorf("island id %q: status %d, want 500", id, rec.Code)
		}
	}
	if rec := renderRec(t, set, "bad.html", map[string]any{"ID": "x", "V": func() {}}, reqState{}); rec.Code != 500 {
		t.Errorf("unencodable value: status %d, want 500", rec.Code)
	}
}

// TestPartialsInEveryContext checks that templates called outside HTML
// text (in attributes, RCDATA, URLs) are checked and rewritten too:
// html/template escapes such calls on copies its API does not expose.
func TestPartialsInEveryContext(t *testing.T) {
	t.Parallel()
	set := mustSet(t, safetmpl.Options{
		FS: fstest.MapFS{
			"parts.html": {Data: []byte(`{{define "name"}}<b>{{.}}</b>{{end}}{{define "link"}}{{.}}{{end}}{{define "n"}}{{nonce}}{{end}}`)},
			"p.html": {Data: []byte(`<p>{{template "name" .H}}</p><p title="{{template "name" .H}}">x</p>` +
				`<textarea>{{template "name" .H}}</textarea><a href="{{template "link" .U}}">y</a><script nonce="{{template "n"}}"></script>`)},
		},
		Shared: []string{"parts.html"},
	})
	data := map[string]any{"H": template.HTML(`<i>x</i>`), "U": template.URL("javascript:alert(1)")}
	got := renderRec(t, set, "p.html", data, reqState{nonce: "NONCE"}).Body.String()
	want := `<p><b>&lt;i&gt;x&lt;/i&gt;</b></p><p title="<b>x</b>">x</p><textarea>&lt;b>&lt;i&gt;x&lt;/i&gt;&lt;/b></textarea>` +
		`<a href="#ZgotmplZ">y</a><script nonce="NONCE"></script>`
	if got != want {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
}

func TestHandler(t *testing.T) {
	t.Parallel()
	set := mustSet(t, safetmpl.Options{Consts: []safetmpl.ConstFile{safetmpl.Const("item.html", `<p>{{.}}</p>`)}})
	h := set.Handler("item.html", func(r *http.Request) (any, error) {
		if r.URL.Query().Get("id") == "" {
			return nil, httperr.NotFound(errors.New("no id"))
		}
		return r.URL.Query().Get("id"), nil
	})
	for _, tc := range []struct {
		url    string
		status int
		body   string
	}{
		{"/?id=%3Cb%3E", 200, "<p>&lt;b&gt;</p>"},
		{"/", 404, ""},
	} {
		rec := httptest.NewRecorder()
		withState(h, reqState{}, nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.url, nil))
		if rec.Code != tc.status || tc.body != "" && rec.Body.String() != tc.body {
			t.Errorf("%s: %d %q", tc.url, rec.Code, rec.Body)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("Handler accepted an unknown page")
		}
	}()
	set.Handler("nope.html", nil)
}

func TestBadStatus(t *testing.T) {
	t.Parallel()
	set := mustSet(t, safetmpl.Options{Consts: []safetmpl.ConstFile{safetmpl.Const("p.html", `<p>x</p>`)}})
	for _, status := range []int{0, 100, 204, 304, 600} {
		rec := httptest.NewRecorder()
		withState(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			set.RenderStatus(w, r, status, "p.html", nil)
		}), reqState{}, nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		if rec.Code != 500 {
			t.Errorf("status %d: got %d, want 500", status, rec.Code)
		}
	}
}

// TestDevReload: production never re-reads templates; the explicit dev
// mode re-parses on every render, and a broken edit becomes a 500.
func TestDevReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "p.html")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`<p>v1 {{.}}</p>`)
	logs := &logBuffer{}
	prod := mustSet(t, safetmpl.Options{FS: os.DirFS(dir)})
	dev := mustSet(t, safetmpl.Options{FS: os.DirFS(dir), InsecureDevReload: true, Logger: logs.logger()})
	if !strings.Contains(logs.String(), "option=InsecureDevReload") {
		t.Errorf("dev mode not logged: %s", logs)
	}
	write(`<p>v2 {{.}}</p>`)
	if got := renderRec(t, prod, "p.html", 1, reqState{}).Body.String(); got != "<p>v1 1</p>" {
		t.Errorf("production re-read the template: %s", got)
	}
	if got := renderRec(t, dev, "p.html", 1, reqState{}).Body.String(); got != "<p>v2 1</p>" {
		t.Errorf("dev mode did not reload: %s", got)
	}
	write(`<script>{{.}}</script>`)
	if rec := renderRec(t, dev, "p.html", 1, reqState{}); rec.Code != 500 {
		t.Errorf("dev mode served a refused template: %d %s", rec.Code, rec.Body)
	}
	if got := renderRec(t, prod, "p.html", 1, reqState{}).Body.String(); got != "<p>v1 1</p>" {
		t.Errorf("production changed: %s", got)
	}
}

func TestPagesAndSharedPatterns(t *testing.T) {
	t.Parallel()
	set := mustSet(t, safetmpl.Options{
		FS: fstest.MapFS{
			"layouts/base.html": {Data: []byte(`{{define "base"}}<main>{{block "body" .}}{{end}}</main>{{end}}`)},
			"index.html":        {Data: []byte(`{{template "base" .}}{{define "body"}}home {{.}}{{end}}`)},
			"admin/index.html":  {Data: []byte(`{{template "base" .}}{{define "body"}}admin {{.}}{{end}}`)},
			"static/site.css":   {Data: []byte(`p{}`)},
			"notes.txt":         {Data: []byte(`{{`)},
		},
		Shared: []string{"layouts/*.html"},
	})
	if got := fmt.Sprint(set.Pages()); got != "[admin/index.html index.html]" {
		t.Fatalf("pages %s", got)
	}
	for page, want := range map[string]string{"index.html": "<main>home 1</main>", "admin/index.html": "<main>admin 1</main>"} {
		if got := renderRec(t, set, page, 1, reqState{}).Body.String(); got != want {
			t.Errorf("%s: %s, want %s", page, got, want)
		}
	}
}

// TestURLActionsAfterAFixedScheme: an action after a scheme, path, query or
// fragment written in the template is allowed (and escaped as a URL part);
// only a javascript:/vbscript: prefix, or one the action could complete,
// is refused (see TestRefusedActions).
func TestURLActionsAfterAFixedScheme(t *testing.T) {
	t.Parallel()
	for _, src := range []string{
		`<a href="https://example.com/u/{{.}}">x</a>`,
		`<a href="/search?q={{.}}">x</a>`,
		`<a href="./{{.}}">x</a>`,
		`<a href="#{{.}}">x</a>`,
		`<a href="mailto:{{.}}">x</a>`,
		`<img src="data:image/png;base64,{{.}}">`,
		`<a href="{{.}}">x</a>`,
		`<a href="{{.}}/{{.}}">x</a>`,
	} {
		if _, err := safetmpl.New(safetmpl.Options{FS: fstest.MapFS{"p.html": {Data: []byte(src)}}}); err != nil {
			t.Errorf("%s: %v", src, err)
		}
	}
}

// TestObeyedAttributesTextAllowed: the refusals of <meta http-equiv>,
// <meta charset> and animation values leave the common, harmless forms
// alone. The attacker's value is printed as escaped text where the
// browser does not obey it, and the legitimate value comes back intact.
func TestObeyedAttributesTextAllowed(t *testing.T) {
	t.Parallel()
	const (
		redirect = `0;url=https://evil.example/" http-equiv="refresh`
		script   = `javascript:alert(1)`
		legit    = `Cats & dogs: "a guide"`
	)
	cases := []struct {
		name, src, value, want string
	}{
		{"meta name description", `<meta charset="utf-8"><meta name="description" content="{{.}}">`, redirect,
			`<meta charset="utf-8"><meta name="description" content="0;url=https://evil.example/&#34; http-equiv=&#34;refresh">`},
		{"meta name description, legitimate", `<meta charset="utf-8"><meta name="description" content="{{.}}">`, legit,
			`<meta charset="utf-8"><meta name="description" content="Cats &amp; dogs: &#34;a guide&#34;">`},
		{"meta property og:title", `<meta property="og:title" content="{{.}}"><meta itemprop="name" content='{{.}}'>`, redirect,
			`<meta property="og:title" content="0;url=https://evil.example/&#34; http-equiv=&#34;refresh"><meta itemprop="name" content='0;url=https://evil.example/&#34; http-equiv=&#34;refresh'>`},
		{"meta name from a branch", `<meta {{if .}}name="description"{{else}}property="og:description"{{end}} content="{{.}}">`, legit,
			`<meta name="description" content="Cats &amp; dogs: &#34;a guide&#34;">`},
		{"literal meta refresh", `<meta http-equiv="refresh" content="300"><p>{{.}}</p>`, redirect,
			`<meta http-equiv="refresh" content="300"><p>0;url=https://evil.example/&#34; http-equiv=&#34;refresh</p>`},
		{"http-equiv on another element", `<p http-equiv="refresh" content="{{.}}">x</p>`, redirect,
			`<p http-equiv="refresh" content="0;url=https://evil.example/&#34; http-equiv=&#34;refresh">x</p>`},
		{"animation with literal values", `<svg><a href="/next"><animate attributeName="href" values="/a;/b" dur="{{.}}"/><text>{{.}}</text></a></svg>`, script,
			`<svg><a href="/next"><animate attributeName="href" values="/a;/b" dur="javascript:alert(1)"/><text>javascript:alert(1)</text></a></svg>`},
		{"animation target href", `<svg><animate href="{{.}}" attributeName="opacity" values="0;1" dur="1s"/></svg>`, script,
			`<svg><animate href="#ZgotmplZ" attributeName="opacity" values="0;1" dur="1s"/></svg>`},
		{"animation begin and id", `<svg><rect id="{{.}}"><set attributeName="fill" to="red" begin="{{.}}"/></rect></svg>`, legit,
			`<svg><rect id="Cats &amp; dogs: &#34;a guide&#34;"><set attributeName="fill" to="red" begin="Cats &amp; dogs: &#34;a guide&#34;"/></rect></svg>`},
		{"value names on other elements", `<my-set to="{{.}}" data-values="{{.}}"></my-set><option value="{{.}}">x</option>`, script,
			`<my-set to="javascript:alert(1)" data-values="javascript:alert(1)"></my-set><option value="javascript:alert(1)">x</option>`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			set := mustSet(t, safetmpl.Options{FS: fstest.MapFS{"p.html": {Data: []byte(tc.src)}}})
			if got := renderRec(t, set, "p.html", tc.value, reqState{}).Body.String(); got != tc.want {
				t.Errorf("\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestEveryPendingRefusalReported: a partial walked once is not walked
// again from the same state, so the refusals that wait for the end of a
// <meta> tag are carried over to every later call: each action is named.
// (For a partial that ends the tag, which html/template lets a page call
// only once from one context, see TestResumeCarriesPendingRefusals.)
func TestEveryPendingRefusalReported(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, src string }{
		{"partial leaves the tag open", `{{define "mid"}}x{{end}}` +
			"<meta content=\"/{{.A}}{{template \"mid\"}}\" http-equiv>\n<meta content=\"/{{.B}}{{template \"mid\"}}\" http-equiv>"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := safetmpl.New(safetmpl.Options{FS: fstest.MapFS{"p.html": {Data: []byte(tc.src)}}})
			if !errors.Is(err, safetmpl.ErrMarkupContext) {
				t.Fatalf("err = %v, want ErrMarkupContext", err)
			}
			for _, want := range []string{"p.html:1:", "{{.A}} in the content attribute", "p.html:2:", "{{.B}} in the content attribute"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q:\n%v", want, err)
				}
			}
		})
	}
}

package safetmpl_test

import (
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/stormcellar/stormcellar/safetmpl"
)

//go:embed testdata/site
var siteFiles embed.FS

func siteFS(t testing.TB) fs.FS {
	sub, err := fs.Sub(siteFiles, "testdata/site")
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

// TestEmbedFS loads a site from an embed.FS, which google/safehtml's
// template package cannot do (it has no fs.FS loader), with pages that
// share a base name in different directories.
func TestEmbedFS(t *testing.T) {
	t.Parallel()
	set := mustSet(t, safetmpl.Options{FS: siteFS(t), Shared: []string{"layouts/*.html"}})
	if got := strings.Join(set.Pages(), " "); got != "admin/index.html index.html" {
		t.Fatalf("pages: %s", got)
	}
	user := map[string]string{"User": "<ada>"}
	home := renderRec(t, set, "index.html", user, reqState{nonce: "N1"}).Body.String()
	admin := renderRec(t, set, "admin/index.html", user, reqState{nonce: "N2", token: func() string { return "T" }}).Body.String()
	for _, c := range []struct{ body, want string }{
		{home, `<title>Home</title>`},
		{home, `<script nonce="N1" src="/static/app.js">`},
		{home, `<h1>Welcome, &lt;ada&gt;</h1>`},
		{admin, `<title>Admin</title>`},
		{admin, `<h1>Admin: &lt;ada&gt;</h1><form method="post"><input type="hidden" name="_xsrf" value="T"><button>`},
	} {
		if !strings.Contains(c.body, c.want) {
			t.Errorf("missing %q in\n%s", c.want, c.body)
		}
	}
}

// TestAnchorParseFSNameCollision: html/template's ParseFS names templates by
// base name, so admin/index.html silently replaces index.html.
func TestAnchorParseFSNameCollision(t *testing.T) {
	t.Parallel()
	plain := template.Must(template.New("").Funcs(template.FuncMap{"nonce": func() string { return "" }, "xsrfField": func() string { return "" }}).
		ParseFS(siteFS(t), "layouts/*.html", "index.html", "admin/index.html"))
	var b strings.Builder
	if err := plain.ExecuteTemplate(&b, "index.html", map[string]string{"User": "x"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "Admin") {
		t.Fatalf("anchor no longer collides: %s", b.String())
	}
}

// TestAnchorAcceptsScriptActions: html/template accepts actions in JS
// template literals, event handlers and srcdoc; safetmpl refuses each at
// load time. For srcdoc, the anchor's output is shown to carry a live
// handler once the browser decodes the attribute.
func TestAnchorAcceptsScriptActions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		plain string
		file  safetmpl.ConstFile
		want  error
	}{
		{"template literal", "<script>let s = `{{.}}`;</script>", safetmpl.Const("p.html", "<script>let s = `{{.}}`;</script>"), safetmpl.ErrScriptContext},
		{"event handler", `<a onclick="f({{.}})">x</a>`, safetmpl.Const("p.html", `<a onclick="f({{.}})">x</a>`), safetmpl.ErrScriptContext},
		{"script src", `<script src="{{.}}"></script>`, safetmpl.Const("p.html", `<script src="{{.}}"></script>`), safetmpl.ErrScriptContext},
		{"srcdoc", `<iframe srcdoc="{{.}}"></iframe>`, safetmpl.Const("p.html", `<iframe srcdoc="{{.}}"></iframe>`), safetmpl.ErrMarkupContext},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b strings.Builder
			if err := template.Must(template.New("p").Parse(tc.plain)).Execute(&b, `<img src=x onerror=alert(1)>`); err != nil {
				t.Fatalf("anchor refused it: %v", err)
			}
			if tc.name == "srcdoc" {
				doc := parseHTML(t, b.String())
				var src string
				var find func(*html.Node)
				find = func(n *html.Node) {
					if v, ok := attr(n, "srcdoc"); ok {
						src = v
					}
					for c := n.FirstChild; c != nil; c = c.NextSibling {
						find(c)
					}
				}
				find(doc)
				if inner := parseHTML(t, src); !strings.Contains(strings.Join(shape(inner), " "), "onerror") {
					t.Errorf("anchor's srcdoc no longer yields a handler: %q", src)
				}
			}
			if _, err := safetmpl.New(safetmpl.Options{Consts: []safetmpl.ConstFile{tc.file}}); !errors.Is(err, tc.want) {
				t.Errorf("safetmpl: err = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestConstRefusesRuntimeString compiles a program that passes a runtime
// string to Const and to ConstHTML, as a server taking template text from
// a request would: the compiler must refuse both, while the same program
// with literals builds. This is the type-level guarantee that request
// data cannot become template text or trusted markup.
func TestConstRefusesRuntimeString(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go command not found: %v", err)
	}
	modRoot, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	const (
		runtimeSrc = `package main

import (
	"net/http"

	"github.com/stormcellar/stormcellar/safetmpl"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		text := r.FormValue("template")
		_ = safetmpl.Const("page.html", text)
		_ = safetmpl.ConstHTML(r.FormValue("html"))
		const typed string = "<p>typed</p>"
		_ = safetmpl.ConstHTML(typed)
	})
}
`
		literalSrc = `package main

import "github.com/stormcellar/stormcellar/safetmpl"

const page = "<p>{{.}}</p>"

func main() {
	_ = safetmpl.Const("page.html", page)
	_ = safetmpl.Const("other.html", "<p>" + page + "</p>")
	_ = safetmpl.ConstHTML("<b>fixed</b>")
}
`
	)
	build := func(src string) (string, error) {
		dir := t.TempDir()
		file := filepath.Join(dir, "main.go")
		if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		// The overlay places the program inside the module without
		// writing to it.
		target := filepath.Join(modRoot, "safetmpl", "internal", "ssticheck", "main.go")
		overlay := filepath.Join(dir, "overlay.json")
		if err := os.WriteFile(overlay, []byte(`{"Replace":{`+quote(target)+`:`+quote(file)+`}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(gobin, "build", "-overlay="+overlay, "-o", filepath.Join(dir, "out"), "./safetmpl/internal/ssticheck")
		cmd.Dir = modRoot
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=readonly", "GOWORK=off")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := build(literalSrc)
	if err != nil {
		t.Fatalf("program with literals does not build: %v\n%s", err, out)
	}
	out, err = build(runtimeSrc)
	if err == nil {
		t.Fatal("program passing runtime strings to Const and ConstHTML compiled")
	}
	for _, want := range []string{
		"cannot use text (variable of type string) as safetmpl.stringConstant value",
		"cannot use r.FormValue(\"html\") (value of type string) as safetmpl.stringConstant value",
		"cannot use typed (constant \"<p>typed</p>\" of type string) as safetmpl.stringConstant value",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("compiler output lacks %q:\n%s", want, out)
		}
	}
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

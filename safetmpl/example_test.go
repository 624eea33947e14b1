package safetmpl_test

import (
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/stormcellar/stormcellar/httperr"
	"github.com/stormcellar/stormcellar/safetmpl"
)

//go:embed testdata/example
var exampleFiles embed.FS

// Templates come from an embed.FS, are parsed and checked once, and each
// page is rendered into a buffer before anything is sent.
func Example() {
	files, err := fs.Sub(exampleFiles, "testdata/example")
	if err != nil {
		log.Fatal(err)
	}
	pages, err := safetmpl.New(safetmpl.Options{FS: files, Shared: []string{"layout.html"}})
	if err != nil {
		log.Fatal(err) // a template error stops the program at start
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pages.Render(w, r, "hello.html", map[string]string{
			"Name": r.URL.Query().Get("name"),
			"Site": r.URL.Query().Get("site"),
		})
	})

	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest("GET", "/?name=<script>alert(1)</script>&site=javascript:alert(1)", nil))
	fmt.Println(rec.Code, rec.Header().Get("Content-Type"), rec.Header().Get("X-Content-Type-Options"))
	fmt.Print(rec.Body.String())
	// Output:
	// 200 text/html; charset=utf-8 nosniff
	// <main><h1>Hello, &lt;script&gt;alert(1)&lt;/script&gt;</h1><a href="#ZgotmplZ">site</a></main>
}

// Const takes only compile-time constants: request data cannot become
// template text. safetmpl.Const("page.html", r.FormValue("t")) does not
// compile ("cannot use r.FormValue("t") (value of type string) as
// safetmpl.stringConstant value").
func ExampleConst() {
	pages, err := safetmpl.New(safetmpl.Options{Consts: []safetmpl.ConstFile{
		safetmpl.Const("greet.html", `<p>Hello, {{.}}</p>`),
	}})
	if err != nil {
		log.Fatal(err)
	}
	rec := httptest.NewRecorder()
	// Template syntax in data is text, never parsed.
	pages.Render(rec, httptest.NewRequest("GET", "/", nil), "greet.html", `{{ handler.settings["cookie_secret"] }}`)
	fmt.Println(rec.Body.String())
	// Output:
	// <p>Hello, {{ handler.settings[&#34;cookie_secret&#34;] }}</p>
}

// Actions inside scripts, event handlers and styles are refused when the
// set is built, with the file, line and column. Data for scripts goes in
// a JSON data island.
func ExampleNew_refused() {
	_, err := safetmpl.New(safetmpl.Options{Consts: []safetmpl.ConstFile{
		safetmpl.Const("profile.html", "<h1>{{.Name}}</h1>\n<script>var user = {{.}};</script>"),
	}})
	fmt.Println(errors.Is(err, safetmpl.ErrScriptContext))
	var e *safetmpl.Error
	if errors.As(err, &e) {
		fmt.Printf("%s:%d:%d %s in %s\n", e.File, e.Line, e.Col, e.Action, e.Context)
	}

	pages, err := safetmpl.New(safetmpl.Options{Consts: []safetmpl.ConstFile{
		safetmpl.Const("profile.html", `<h1>{{.Name}}</h1>{{island "user" .}}`),
	}})
	if err != nil {
		log.Fatal(err)
	}
	rec := httptest.NewRecorder()
	pages.Render(rec, httptest.NewRequest("GET", "/", nil), "profile.html", map[string]string{"Name": "</script>"})
	fmt.Println(rec.Body.String())
	// Output:
	// true
	// profile.html:2:22 {{.}} in a <script> element
	// <h1>&lt;/script&gt;</h1><script type="application/json" id="user">{"Name":"\u003c/script\u003e"}</script>
}

// Markup is printed raw only when it is a constant of the program or came
// out of the sanitiser. html/template's typed strings, such as
// template.HTML made from request data, are escaped like any text.
func ExampleHTML() {
	pages, err := safetmpl.New(safetmpl.Options{Consts: []safetmpl.ConstFile{
		safetmpl.Const("post.html", `<article>{{.Badge}} {{.Body}} {{.Typed}}</article>`),
	}})
	if err != nil {
		log.Fatal(err)
	}
	comment := `<b>nice</b><img src=x onerror=alert(1)>`
	data := map[string]any{
		"Badge": safetmpl.ConstHTML(`<span class="badge">new</span>`),
		"Body":  pages.Sanitize(comment),
		"Typed": template.HTML(comment), // the html/template bypass: escaped here
	}
	rec := httptest.NewRecorder()
	pages.Render(rec, httptest.NewRequest("GET", "/", nil), "post.html", data)
	fmt.Println(rec.Body.String())
	// Output:
	// <article><span class="badge">new</span> <b>nice</b><img src="x"> &lt;b&gt;nice&lt;/b&gt;&lt;img src=x onerror=alert(1)&gt;</article>
}

// An execution error never sends part of a page: the client gets the
// error page of httperr, and the cause goes to the log.
func ExampleSet_Render_error() {
	pages, err := safetmpl.New(safetmpl.Options{
		Consts: []safetmpl.ConstFile{safetmpl.Const("order.html", `<h1>Order</h1><p>{{total .}}</p>`)},
		Funcs: template.FuncMap{"total": func(id string) (string, error) {
			return "", errors.New("pricing service down")
		}},
	})
	if err != nil {
		log.Fatal(err)
	}
	h := httperr.Install(httperr.Options{Logger: discardLogger()})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pages.Render(w, r, "order.html", "A-17")
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	fmt.Println(rec.Code, strings.Contains(rec.Body.String(), "<h1>Order</h1>"))
	// Output:
	// 500 false
}

// Handler renders a page with data computed from the request; an error
// from the data function is an httperr response.
func ExampleSet_Handler() {
	pages, err := safetmpl.New(safetmpl.Options{Consts: []safetmpl.ConstFile{
		safetmpl.Const("item.html", `<p>Item {{.}}</p>`),
	}})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /item/{id}", pages.Handler("item.html", func(r *http.Request) (any, error) {
		if id := r.PathValue("id"); id != "7" {
			return nil, httperr.NotFound(fmt.Errorf("item %q", id))
		}
		return 7, nil
	}))
	h := httperr.Install(httperr.Options{Logger: discardLogger()})(mux)
	for _, path := range []string{"/item/7", "/item/8"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		fmt.Println(path, rec.Code)
	}
	// Output:
	// /item/7 200
	// /item/8 404
}

// Island encodes server data for scripts: nothing in it can end the
// element.
func ExampleIsland() {
	h, err := safetmpl.Island("config", map[string]string{"greeting": "</script><!-- \u2028"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(h)
	// Output:
	// <script type="application/json" id="config">{"greeting":"\u003c/script\u003e\u003c!-- \u2028"}</script>
}

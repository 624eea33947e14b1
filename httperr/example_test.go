package httperr_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/stormcellar/stormcellar/httperr"
)

// exampleLogger prints records to stdout without the time and the random
// request id, so that the examples' output is stable.
func exampleLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == "request_id" || a.Key == "remote" {
				return slog.Attr{}
			}
			return a
		},
	}))
}

// A handler returns an error; the client gets the status and the public
// message, the log gets the cause.
func ExampleHandlerFunc() {
	h := httperr.Install(httperr.Options{Logger: exampleLogger()})(httperr.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) error {
			if r.FormValue("name") == "" {
				return httperr.BadRequest("name is required", errors.New("form field name empty"))
			}
			_, err := fmt.Fprintf(w, "hello, %s\n", r.FormValue("name"))
			return err
		}))

	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/greet", nil)
	req.Header.Set("Accept", "application/json")
	h.ServeHTTP(rec, req)
	fmt.Println(rec.Code, rec.Header().Get("Content-Type"))
	// Output:
	// level=WARN msg="request rejected" status=400 kind=bad_request method=GET path=/greet err="form field name empty"
	// 400 application/json; charset=utf-8
}

// A plain error is a 500: whatever it says stays in the log.
func ExampleWrite() {
	h := httperr.Install(httperr.Options{Logger: exampleLogger()})(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			httperr.Write(w, r, errors.New("dial tcp 10.0.0.7:5432: connection refused"))
		}))

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/orders", nil))
	body, _, _ := bytes.Cut(rec.Body.Bytes(), []byte("\n"))
	fmt.Printf("%d %s\n", rec.Code, body)
	// Output:
	// level=ERROR msg="request failed" status=500 kind=internal method=GET path=/orders err="dial tcp 10.0.0.7:5432: connection refused"
	// 500 500 Internal Server Error
}

// A custom renderer gives every error of every stormcellar package the
// application's own page; the observer counts them.
func ExampleInstall() {
	renderer := httperr.RendererFunc(func(dst *bytes.Buffer, r *http.Request, p httperr.Problem) (string, error) {
		dst.WriteString("<p class=oops>Sorry: ")
		httperr.HTMLEscape(dst, p.Message)
		dst.WriteString("</p>")
		return "text/html; charset=utf-8", nil
	})
	rejections := map[httperr.Kind]int{}
	mw := httperr.Install(httperr.Options{
		Renderer: renderer,
		Logger:   slog.New(slog.DiscardHandler),
		Observer: func(e httperr.Event) { rejections[e.Kind]++ },
	})
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httperr.Write(w, r, httperr.Forbidden(httperr.KindOrigin, errors.New("origin https://evil.example")))
	}))

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/transfer", nil))
	fmt.Println(rec.Code, rec.Body.String())
	fmt.Println(rejections)
	// Output:
	// 403 <p class=oops>Sorry: Forbidden</p>
	// map[origin:1]
}

func ExampleNegotiate() {
	for _, accept := range []string{
		"text/html,application/xhtml+xml,*/*;q=0.8",
		"application/json",
		"*/*",
		"",
	} {
		fmt.Printf("%q -> %v\n", accept, httperr.Negotiate(accept))
	}
	// Output:
	// "text/html,application/xhtml+xml,*/*;q=0.8" -> text/html
	// "application/json" -> application/json
	// "*/*" -> text/plain
	// "" -> text/plain
}

package httperr

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func FuzzNegotiate(f *testing.F) {
	for _, s := range []string{"", "*/*", "text/html", "application/json;q=0.5, text/*", "application/x+json",
		"text/html;q=0, */*;q=0.1", "a/b;q=1.000;q=0", ";;,,", strings.Repeat("text/plain;q=0.1,", 100)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, accept string) {
		switch got := Negotiate(accept); got {
		case FormatText, FormatJSON, FormatHTML:
		default:
			t.Fatalf("Negotiate(%q) = %d", accept, got)
		}
	})
}

// FuzzRender checks the escaping properties of every format: markup from
// the message never reaches the HTML page, the JSON body is valid and
// decodes back to the message, and the text body keeps its line structure.
func FuzzRender(f *testing.F) {
	for _, s := range []string{"<script>alert(1)</script>", "a\r\nb", "\u2028\u2029", "\xff\xfe<", "&lt;", `"'`, ""} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, msg, detail string) {
		p := Problem{Status: 400, Title: "Bad Request", Message: publicText(msg), RequestID: "0123abcd", Detail: detail}
		if p.Message == "" {
			p.Message = p.Title
		}
		ref := p
		ref.Message, ref.Detail = "m", ""
		if p.Message == p.Title {
			ref.Message = p.Title
		}
		if p.Detail != "" {
			ref.Detail = "d"
		}
		var got, want bytes.Buffer
		renderHTML(&got, p)
		renderHTML(&want, ref)
		if strings.Count(got.String(), "<") != strings.Count(want.String(), "<") {
			t.Fatalf("unescaped < from the message or detail in %q", got.String())
		}
		if strings.Count(got.String(), ">") != strings.Count(want.String(), ">") {
			t.Fatalf("unescaped > in %q", got.String())
		}

		got.Reset()
		renderJSON(&got, p)
		if !json.Valid(got.Bytes()) {
			t.Fatalf("invalid JSON %q", got.String())
		}
		if bytes.ContainsAny(got.Bytes(), "<>&\u2028\u2029") {
			t.Fatalf("JSON holds characters unsafe in HTML or JS: %q", got.String())
		}
		var v struct {
			Error struct{ Message, Detail string }
		}
		if err := json.Unmarshal(got.Bytes(), &v); err != nil {
			t.Fatal(err)
		}
		if v.Error.Message != p.Message || v.Error.Detail != string([]rune(p.Detail)) {
			t.Fatalf("JSON round trip: %q != %q", v.Error.Message, p.Message)
		}

		if strings.ContainsAny(p.Message, "\r\n\x00") || len(p.Message) > maxMessage {
			t.Fatalf("publicText kept a control character or %d bytes: %q", len(p.Message), p.Message)
		}
	})
}

// pageTags removes the tags of the default HTML page.
var pageTags = strings.NewReplacer("<!DOCTYPE html>", "", `<html lang="en">`, "", "<head>", "",
	`<meta charset="utf-8">`, "", "<title>", "", "</title>", "", "</head>", "", "<body>", "",
	"<h1>", "", "</h1>", "", "<p>", "", "</p>", "", "<code>", "", "</code>", "", "<pre>", "",
	"</pre>", "", "</body>", "", "</html>", "")

// FuzzWrite drives the whole path with any Accept header, method and message.
func FuzzWrite(f *testing.F) {
	f.Add("text/html", "GET", "<b>x</b>", 400)
	f.Add("application/json", "HEAD", "\x00", 503)
	f.Add("*/*", "POST", "", 42)
	f.Fuzz(func(t *testing.T, accept, method, msg string, status int) {
		req := httptest.NewRequest("GET", "/", nil)
		req.Method = method
		req.Header.Set("Accept", accept)
		rec := httptest.NewRecorder()
		Install(Options{Logger: discard})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			Write(w, r, &HTTPError{Status: status, Message: msg})
		})).ServeHTTP(rec, req)
		if rec.Code < 400 || rec.Code > 599 {
			t.Fatalf("status %d", rec.Code)
		}
		if rec.Header().Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(rec.Header().Get("Content-Type"), "charset=utf-8") {
			t.Fatalf("headers %v", rec.Header())
		}
		if Negotiate(accept) == FormatHTML {
			rest := pageTags.Replace(rec.Body.String())
			if strings.ContainsAny(rest, "<>") {
				t.Fatalf("markup beyond the page's own tags: %q", rec.Body.String())
			}
		}
	})
}

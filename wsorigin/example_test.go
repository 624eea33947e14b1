package wsorigin_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/stormcellar/stormcellar/wsorigin"
)

func ExampleNew() {
	p, err := wsorigin.New(wsorigin.Options{
		PublicOrigin: "https://chat.example.com",
		Allowed:      []string{"https://*.example.com", "http://localhost:3000"},
	})
	if err != nil {
		panic(err)
	}
	for _, origin := range []string{
		"https://chat.example.com",
		"https://a.example.com",
		"http://a.example.com",
		"https://example.com.evil.com",
		"https://evilexample.com",
		"null",
	} {
		r := httptest.NewRequest("GET", "/ws", nil)
		r.Header.Set("Origin", origin)
		fmt.Printf("%-30s %v\n", origin, p.Check(r) == nil)
	}
	// Output:
	// https://chat.example.com       true
	// https://a.example.com          true
	// http://a.example.com           false
	// https://example.com.evil.com   false
	// https://evilexample.com        false
	// null                           false
}

func ExampleNew_badPatterns() {
	_, err := wsorigin.New(wsorigin.Options{Allowed: []string{
		"https://app.example.com/", "*", "https://*.github.io",
	}})
	fmt.Println(err)
	fmt.Println(errors.Is(err, wsorigin.ErrBadPattern))
	// Output:
	// wsorigin: Allowed[0] "https://app.example.com/": has a path; an origin is scheme://host[:port] with nothing after it
	// wsorigin: Allowed[1] "*": a bare * would allow every origin; list the origins instead
	// wsorigin: Allowed[2] "https://*.github.io": *.github.io would match every site under the public suffix github.io
	// true
}

func ExampleParseList() {
	list, err := wsorigin.ParseList("$WS_ORIGINS", "HTTPS://App.Example.com:443, http://localhost:3000")
	fmt.Println(list, err)
	_, err = wsorigin.ParseList("$WS_ORIGINS", "https://ok.example.com example.com")
	fmt.Println(err)
	// Output:
	// [https://app.example.com http://localhost:3000] <nil>
	// wsorigin: $WS_ORIGINS entry 2 "example.com": no scheme: write "https://example.com"
}

func ExamplePolicy_Handler() {
	p, _ := wsorigin.New(wsorigin.Options{PublicOrigin: "https://app.example.com"})
	h := p.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "upgrade would happen here")
	}))
	for _, origin := range []string{"https://app.example.com", "https://evil.example"} {
		r := httptest.NewRequest("GET", "/ws", nil)
		r.Header.Set("Upgrade", "websocket")
		r.Header.Set("Connection", "Upgrade")
		r.Header.Set("Origin", origin)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		fmt.Println(origin, rec.Code)
	}
	// Output:
	// https://app.example.com 200
	// https://evil.example 403
}

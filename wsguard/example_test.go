package wsguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/coder/websocket"
	"github.com/stormcellar/stormcellar/wsguard"
	"github.com/stormcellar/stormcellar/wsorigin"
)

// Message is what the chat clients send.
type Message struct {
	Text string `json:"text"`
}

// Validate is called by ReadJSON after strict decoding.
func (m *Message) Validate() error {
	if m.Text == "" || len(m.Text) > 500 {
		return errors.New("text must be 1 to 500 bytes")
	}
	return nil
}

func Example() {
	policy, err := wsorigin.New(wsorigin.Options{Allowed: []string{"https://chat.example.com"}})
	if err != nil {
		panic(err)
	}
	guard, err := wsguard.New(wsguard.Options{Origin: policy, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	hub := wsguard.NewHub(wsguard.HubOptions{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := guard.Accept(w, r)
		if err != nil {
			return // already answered: 403, 429, 503…
		}
		defer c.CloseNow()
		defer hub.Join(c)()
		for {
			var m Message
			if err := c.ReadJSON(c.Context(), &m); err != nil {
				return
			}
			b, _ := json.Marshal(m) // escapes <, > and &
			hub.Broadcast(websocket.MessageText, b)
		}
	}))
	defer srv.Close()
	defer hub.Close()
	defer guard.Close()

	ctx := context.Background()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	_, resp, _ := websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPHeader: http.Header{"Origin": {"https://evil.example"}}})
	fmt.Println("cross-origin:", resp.StatusCode)

	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPHeader: http.Header{"Origin": {"https://chat.example.com"}}})
	if err != nil {
		panic(err)
	}
	c.Write(ctx, websocket.MessageText, []byte(`{"text":"<img src=x onerror=alert(1)>"}`))
	_, got, _ := c.Read(ctx)
	fmt.Println("broadcast:", string(got))

	c.Write(ctx, websocket.MessageText, []byte(`{"text":"hi","admin":true}`))
	_, _, err = c.Read(ctx)
	fmt.Println("unknown field: close", int(websocket.CloseStatus(err)))
	// Output:
	// cross-origin: 403
	// broadcast: {"text":"\u003cimg src=x onerror=alert(1)\u003e"}
	// unknown field: close 1007
}

func ExampleDecodeJSON() {
	for _, in := range []string{
		`{"text":"hello"}`,
		`{"text":"hello","role":"admin"}`,
		`{"text":"hello"} trailing`,
		`{"text":""}`,
		`null`,
	} {
		var m Message
		err := wsguard.DecodeJSON([]byte(in), &m)
		switch {
		case err == nil:
			fmt.Printf("%-34s ok %q\n", in, m.Text)
		case errors.Is(err, wsguard.ErrInvalid):
			fmt.Printf("%-34s refused by Validate\n", in)
		default:
			fmt.Printf("%-34s malformed\n", in)
		}
	}
	// Output:
	// {"text":"hello"}                   ok "hello"
	// {"text":"hello","role":"admin"}    malformed
	// {"text":"hello"} trailing          malformed
	// {"text":""}                        refused by Validate
	// null                               malformed
}

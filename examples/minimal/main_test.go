package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestHelloWithTheWholeStack(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, slog.New(slog.DiscardHandler)) }()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	base := "http://" + ln.Addr().String()

	cases := []struct {
		name, method, path string
		body               io.Reader
		want               int
		wantBody           string
	}{
		{"hello", "GET", "/", nil, 200, "hello"},
		{"not found", "GET", "/nope", nil, 404, "404"},
		{"long url", "GET", "/?q=" + strings.Repeat("a", 9000), nil, 414, ""},
		{"wrong method", "POST", "/", strings.NewReader("x=1"), 405, "405"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, base+c.path, c.body)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.want || !strings.Contains(string(b), c.wantBody) {
				t.Errorf("%d %q, want %d %q", resp.StatusCode, b, c.want, c.wantBody)
			}
			for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options", "X-Request-Id", "X-Frame-Options"} {
				if resp.Header.Get(h) == "" {
					t.Errorf("no %s", h)
				}
			}
		})
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

package middleware

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	chimw "github.com/go-chi/chi/v5/middleware"
)

const attackBody = 200 << 20 // 200 MB

// TestMaxBytesContentLengthRefusedBeforeBody: a 200 MB Content-Length gets
// a 413 with Connection: close although the client has sent no byte of
// the body, and the server read nothing past the headers.
func TestMaxBytesContentLengthRefusedBeforeBody(t *testing.T) {
	t.Parallel()
	reached := make(chan int64, 1)
	ts := startServer(t, MaxBytes(MaxBytesOptions{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		reached <- n
		if err != nil {
			// A careless handler: any error is a 500. MaxBytes still
			// answers 413.
			http.Error(w, "read failed", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, "stored")
	})))

	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	fmt.Fprintf(conn, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", attackBody)
	// Not one byte of the body is sent: the answer must come anyway.
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no response to the headers alone: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413; body %q", resp.StatusCode, body)
	}
	if !resp.Close { // set by ReadResponse from "Connection: close" (which it then removes)
		t.Error("413 without Connection: close")
	}
	if n := <-reached; n != 0 {
		t.Errorf("handler received %d body bytes, want 0", n)
	}
	t.Logf("413 after %v with 0 body bytes sent; server read %d bytes in all", time.Since(start), ts.read.Load())
	if ts.read.Load() > 4096 {
		t.Errorf("server read %d bytes, more than the headers", ts.read.Load())
	}
}

// TestMaxBytesContentLengthStreamingClient: a real client streaming a
// 200 MB body with Content-Length gets the 413 after having sent less
// than 1 MB. The client's socket send buffer is kept small (32 KiB) so
// that what it counts as produced is close to what actually left it.
func TestMaxBytesContentLengthStreamingClient(t *testing.T) {
	t.Parallel()
	ts := startServer(t, MaxBytes(MaxBytesOptions{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "stored")
	})))
	body := &patternReader{left: attackBody}
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/upload", body)
	req.ContentLength = attackBody
	resp, err := smallBufferClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	sent := body.taken.Load()
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", resp.StatusCode)
	}
	t.Logf("client had produced %d bytes when the 413 arrived; server read %d", sent, ts.read.Load())
	if sent >= 1<<20 {
		t.Errorf("client sent %d bytes before the 413, want < 1 MB", sent)
	}
}

// TestMaxBytesChunkedCut: a chunked 200 MB body is cut at the limit and
// answered 413 although the handler ignores the read error and writes a
// 200: the server takes in less than 2 MB of it, and the client (with a
// 32 KiB socket send buffer, so that produced is close to sent) has sent
// less than 2 MB when the 413 arrives.
func TestMaxBytesChunkedCut(t *testing.T) {
	t.Parallel()
	got := make(chan int64, 1)
	ts := startServer(t, MaxBytes(MaxBytesOptions{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body) // error ignored
		got <- n
		_, _ = io.WriteString(w, "stored")
	})))
	body := &patternReader{left: attackBody}
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/upload", hideLength{body})
	start := time.Now()
	resp, err := smallBufferClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	sent := body.taken.Load()
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || strings.Contains(string(b), "stored") {
		t.Fatalf("status %d body %q, want 413", resp.StatusCode, b)
	}
	if n := <-got; n != DefaultBodyLimit {
		t.Errorf("handler received %d bytes, want exactly the limit %d", n, DefaultBodyLimit)
	}
	t.Logf("413 after %v; client produced %d bytes, server read %d", time.Since(start), sent, ts.read.Load())
	if r := ts.read.Load(); r >= 2<<20 {
		t.Errorf("server read %d bytes, want < 2 MB", r)
	}
	if sent >= 2<<20 {
		t.Errorf("client sent %d bytes before the 413, want < 2 MB", sent)
	}
}

// TestChiRequestSizeAnchor shows the anchor's weakness on the same attack:
// chi's RequestSize cuts the body, but a handler that ignores the error
// answers 200 as if the upload had worked.
func TestChiRequestSizeAnchor(t *testing.T) {
	t.Parallel()
	ts := startServer(t, chimw.RequestSize(DefaultBodyLimit)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "stored")
	})))
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/upload", hideLength{&patternReader{left: 4 << 20}})
	resp, err := client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != "stored" {
		t.Fatalf("chi RequestSize: status %d %q; the anchor's behaviour changed, update this test", resp.StatusCode, b)
	}
}

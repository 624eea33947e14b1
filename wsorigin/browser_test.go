package wsorigin_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stormcellar/stormcellar/httperr"
	"github.com/stormcellar/stormcellar/internal/testutil"
	"github.com/stormcellar/stormcellar/wsorigin"
)

const pageTemplate = `<!doctype html><title>ws</title><script>
window.result = new Promise(resolve => {
  const ws = new WebSocket(%q);
  ws.onopen = () => ws.send("hello from the page");
  ws.onmessage = e => { resolve("got:" + e.data); ws.close(1000); };
  ws.onclose = e => resolve("closed:" + e.code);
});
</script>`

// TestBrowserCrossOriginRefused drives headless Chromium: a page from one
// loopback origin opens a WebSocket to a server on another and is
// refused; the same page served by the WebSocket server itself connects
// and exchanges a message.
func TestBrowserCrossOriginRefused(t *testing.T) {
	chromium := testutil.Tool(t, "chromium", "chromium")
	t.Parallel()

	p, err := wsorigin.New(wsorigin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string // "origin status"
	record := func(s string) { mu.Lock(); seen = append(seen, s); mu.Unlock() }

	var wsURL string
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := p.Accept(w, r, nil)
		if err != nil {
			record(r.Header.Get("Origin") + " 403")
			return
		}
		record(r.Header.Get("Origin") + " 101")
		echoOnce(c)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, pageTemplate, wsURL)
	})
	wsSrv := httptest.NewServer(httperr.Install(httperr.Options{Logger: slog.New(slog.DiscardHandler)})(mux))
	defer wsSrv.Close()
	wsURL = "ws" + strings.TrimPrefix(wsSrv.URL, "http") + "/ws"
	// The other origin: same page, different port.
	pageSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, pageTemplate, wsURL)
	}))
	defer pageSrv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	actx, acancel := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.Headless)...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()

	run := func(page string) string {
		if err := chromedp.Do(bctx, chromedp.Navigate(page)); err != nil {
			t.Fatalf("chromium on %s: %v", page, err)
		}
		res, err := chromedp.Run(bctx, chromedp.Evaluate[string](`window.result`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("chromium on %s: %v", page, err)
		}
		return res
	}
	if got := run(pageSrv.URL + "/"); got != "closed:1006" {
		t.Errorf("cross-origin page: %q, want the handshake to fail (closed:1006)", got)
	}
	if got := run(wsSrv.URL + "/"); got != "got:hello from the page" {
		t.Errorf("same-origin page: %q, want the echo", got)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{pageSrv.URL + " 403", wsSrv.URL + " 101"}
	if strings.Join(seen, "|") != strings.Join(want, "|") {
		t.Errorf("server saw %q, want %q", seen, want)
	}
}

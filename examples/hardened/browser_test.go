package main

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"

	"github.com/stormcellar/stormcellar/internal/testutil"
)

// A real browser renders chat messages carrying markup as text: nothing
// parses, no script runs. The search page's data island reaches the DOM as
// text too.
func TestBrowserChatRendersMarkupAsText(t *testing.T) {
	t.Parallel()
	chromium := testutil.Tool(t, "chromium", "chromium")
	ta := startApp(t, nil)

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()

	if err := chromedp.Do(bctx,
		chromedp.Navigate(ta.base+"/chat"),
		chromedp.WaitVisible(chromedp.CSS("#messages")),
	); err != nil {
		t.Fatalf("load chat: %v", err)
	}
	if _, err := chromedp.Run(bctx, chromedp.Poll[bool](`document.getElementById("status").textContent === "connected"`,
		chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		t.Fatalf("chat did not connect: %v", err)
	}

	// Another client sends markup.
	peer, _, err := dialChat(ctx, ta, ta.base)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.CloseNow()
	payload := `<img src=x onerror="window.__xss=1"><b>bold</b><script>window.__xss=2</script>`
	msg, _ := jsonText(payload)
	if err := peer.Write(ctx, websocket.MessageText, msg); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bctx, chromedp.WaitVisible(chromedp.CSS("#messages li"))); err != nil {
		t.Fatalf("message not shown: %v", err)
	}
	text, err := chromedp.Run(bctx, chromedp.TextContent(chromedp.CSS("#messages li")))
	if err != nil {
		t.Fatal(err)
	}
	elems, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll("#messages img, #messages b, #messages script").length`))
	if err != nil {
		t.Fatal(err)
	}
	_ = chromedp.Do(bctx, chromedp.Sleep(200*time.Millisecond)) // give an onerror the chance to fire
	xss, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`window.__xss !== undefined`))
	if err != nil {
		t.Fatal(err)
	}
	if text != payload || elems != 0 || xss {
		t.Errorf("rendered %q with %d elements, xss=%t; want the markup as text", text, elems, xss)
	}

	// The browser sends through the page's form; the peer gets the text.
	if err := chromedp.Do(bctx,
		chromedp.SendKeys(chromedp.CSS("#text"), "<i>from the browser</i>"),
		chromedp.Click(chromedp.CSS("#send button")),
	); err != nil {
		t.Fatalf("send: %v", err)
	}
	for {
		_, got, err := peer.Read(ctx)
		if err != nil {
			t.Fatalf("peer read: %v", err)
		}
		if string(got) == `{"text":"\u003ci\u003efrom the browser\u003c/i\u003e"}` {
			break
		}
	}

	// Search: the payload reaches the page in four contexts and runs in none.
	q := `<img src=x onerror="window.__xss=3">`
	if err := chromedp.Do(bctx,
		chromedp.Navigate(ta.base+"/search?q="+url.QueryEscape(q)),
		chromedp.WaitVisible(chromedp.CSS("#echo-text")),
	); err != nil {
		t.Fatalf("search page: %v", err)
	}
	if _, err := chromedp.Run(bctx, chromedp.Poll[bool](`document.getElementById("echo-island").textContent !== ""`,
		chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatalf("island not read: %v", err)
	}
	island, err := chromedp.Run(bctx, chromedp.TextContent(chromedp.CSS("#echo-island")))
	if err != nil {
		t.Fatal(err)
	}
	echo, err := chromedp.Run(bctx, chromedp.TextContent(chromedp.CSS("#echo-text")))
	if err != nil {
		t.Fatal(err)
	}
	_ = chromedp.Do(bctx, chromedp.Sleep(200*time.Millisecond))
	xss, err = chromedp.Run(bctx, chromedp.Evaluate[bool](`window.__xss !== undefined || document.querySelectorAll("main img").length > 0`))
	if err != nil {
		t.Fatal(err)
	}
	if island != q || echo != q || xss {
		t.Errorf("search: island %q, echo %q, xss %t", island, echo, xss)
	}
	if !strings.Contains(ta.metrics(t), "stormcellar_chat_messages_total 2") {
		t.Errorf("chat messages not counted")
	}
}

func jsonText(s string) ([]byte, error) {
	return jsonMarshal(chatMessage{Text: s})
}

package safetmpl_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/stormcellar/stormcellar/internal/reqstate"
	"github.com/stormcellar/stormcellar/internal/testutil"
	"github.com/stormcellar/stormcellar/safetmpl"
)

// The head holds the legitimate script of every browser test page: it runs
// first, under the page's nonce, and turns any later call of alert,
// prompt, confirm or print (the calls the payloads make) into a count in
// window.__xss. Payloads that do not call them set window.__xss directly.
const (
	headStart = `<!doctype html><html><head><meta charset="utf-8"><title>xss</title><script nonce="`
	headEnd   = `">window.__calls=[];` +
		`for(const f of ["alert","prompt","confirm","print"]){window[f]=function(){window.__xss=(window.__xss||0)+1;window.__calls.push(f)}}` +
		`window.__legit=1;</script></head><body>`
)

// The safetmpl page puts every payload in every allowed context, then a
// data island with all of them, read back by a second nonce'd script.
const browserPage = headStart + `{{nonce}}` + headEnd + `{{range .}}<section>` +
	`<p>{{.}}</p><p title="{{.}}">a</p><p title='{{.}}'>b</p><p data-v="{{.}}">c</p>` +
	`<a href="{{.}}">d</a><a href="/s/{{.}}">e</a><a href="/s?q={{.}}">f</a>` +
	`<form action="{{.}}"><button type="button">g</button></form><textarea>{{.}}</textarea>` +
	`</section>{{end}}{{island "payloads" .}}` +
	`<script nonce="{{nonce}}">window.__island=JSON.parse(document.getElementById("payloads").textContent);window.__legit=2;</script>` +
	`</body></html>`

// The anchor page gives html/template the payloads as typed strings
// (template.HTML, template.URL), and a plain string in srcdoc, which
// safetmpl refuses to load.
const anchorPage = headStart + `{{.Nonce}}` + headEnd + `{{range .Items}}<section><p>{{.H}}</p><a href="{{.U}}">d</a>` +
	`</section>{{end}}<iframe srcdoc="{{.Srcdoc}}"></iframe></body></html>`

type anchorItem struct {
	H template.HTML
	U template.URL
}

// srcdocPayload is escaped by html/template as a plain attribute value,
// which the browser decodes and parses as a document.
const srcdocPayload = `<img src=x onerror=parent.__srcdoc=1>`

// harness runs after load: it calls every inline event handler the page
// has, clicks every javascript: link, then lets a few frames and timers
// pass before reporting.
const harness = `(async () => {
  let handlers = 0, links = 0;
  for (const el of document.querySelectorAll("*")) {
    for (const a of [...el.attributes]) {
      if (a.name.startsWith("on")) {
        handlers++;
        try { if (typeof el[a.name] === "function") el[a.name].call(el, new Event(a.name.slice(2))); } catch (e) {}
      }
    }
  }
  for (const a of document.querySelectorAll("a[href]")) {
    if (/^[\s\u0000-\u001f]*j\s*a\s*v\s*a\s*s\s*c\s*r\s*i\s*p\s*t\s*:/i.test(a.getAttribute("href"))) { links++; a.click(); }
  }
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(r, 300))));
  return {
    xss: window.__xss || 0,
    srcdoc: window.__srcdoc || 0,
    calls: window.__calls || [],
    legit: window.__legit || 0,
    island: window.__island || null,
    handlers: handlers,
    links: links,
    scripts: document.scripts.length,
  };
})()`

type browserResult struct {
	XSS      int      `json:"xss"`
	Srcdoc   int      `json:"srcdoc"`
	Calls    []string `json:"calls"`
	Legit    int      `json:"legit"`
	Island   []string `json:"island"`
	Handlers int      `json:"handlers"`
	Links    int      `json:"links"`
	Scripts  int      `json:"scripts"`
}

func newNonce() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// browserServer serves the safetmpl page and the anchor page, each with
// (?csp=1) or without a strict nonce-based Content-Security-Policy.
func browserServer(t *testing.T, payloads []string) *httptest.Server {
	set := mustSet(t, safetmpl.Options{Consts: []safetmpl.ConstFile{safetmpl.Const("xss.html", browserPage)}})
	anchor := template.Must(template.New("a").Parse(anchorPage))
	// The anchor page only has to show that the harness sees execution and
	// that CSP stops it: every fourth payload (all families) keeps it fast.
	var items []anchorItem
	for i := 0; i < len(payloads); i += 4 {
		items = append(items, anchorItem{H: template.HTML(payloads[i]), U: template.URL(payloads[i])})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/safetmpl", func(w http.ResponseWriter, r *http.Request) {
		set.Render(w, r, "xss.html", payloads)
	})
	mux.HandleFunc("/anchor", func(w http.ResponseWriter, r *http.Request) {
		data := struct {
			Nonce, Srcdoc string
			Items         []anchorItem
		}{reqstate.From(r.Context()).Nonce, srcdocPayload, items}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := anchor.Execute(w, data); err != nil {
			t.Error(err)
		}
	})
	csp := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			st, w, r := reqstate.Ensure(w, r)
			st.Nonce = newNonce()
			if r.URL.Query().Get("csp") == "1" {
				w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+st.Nonce+
					"'; style-src 'nonce-"+st.Nonce+"'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-src 'none'; object-src 'none'")
			}
			next.ServeHTTP(w, r)
		})
	}
	return httptest.NewServer(withState(csp(mux), reqState{}, nil))
}

// startBrowser starts headless Chromium for at most d; stop ends it and
// every tab opened from the returned context.
func startBrowser(t *testing.T, chromium string, d time.Duration) (browserCtx context.Context, stop func()) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// /dev/shm is small in many containers; Chromium crashes when it fills.
		chromedp.Flag("disable-dev-shm-usage", true),
		// No name resolves: nothing a payload names can be fetched.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"),
		chromedp.UserDataDir(t.TempDir()),
	)
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	stop = func() {
		cancelBrowser()
		cancelAlloc()
		cancel()
	}
	if err := chromedp.Do(browserCtx, chromedp.Navigate("about:blank")); err != nil {
		stop()
		t.Fatalf("starting chromium: %v", err)
	}
	return browserCtx, stop
}

// TestBrowserPayloadsDoNotRun loads the pages in headless Chromium. On the
// safetmpl page no payload runs, with or without CSP, the nonce'd scripts
// run and the data island reads back every payload exactly. On the anchor
// page (html/template with typed strings and srcdoc) payloads do run
// without CSP — proving the harness sees execution — and a strict nonce
// CSP stops them while the legitimate nonce'd script still runs.
func TestBrowserPayloadsDoNotRun(t *testing.T) {
	chromium := testutil.Tool(t, "chromium", "chromium")
	payloads := loadPayloads(t)
	srv := browserServer(t, payloads)
	defer srv.Close()
	browserCtx, stop := startBrowser(t, chromium, 120*time.Second)
	defer stop()

	cases := []struct {
		name string
		path string
		safe bool // safetmpl page: nothing may run
		csp  bool
	}{
		{"safetmpl without CSP", "/safetmpl?csp=0", true, false},
		{"safetmpl with strict CSP", "/safetmpl?csp=1", true, true},
		{"anchor without CSP", "/anchor?csp=0", false, false},
		{"anchor with strict CSP", "/anchor?csp=1", false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tabCtx, cancelTab := chromedp.NewContext(browserCtx)
			var dialogs atomic.Int32
			var wg sync.WaitGroup
			if err := chromedp.Do(tabCtx, chromedp.Navigate("about:blank")); err != nil {
				t.Fatal(err)
			}
			events := chromedp.Events(tabCtx, page.JavascriptDialogOpening)
			wg.Go(func() {
				for _, err := range events {
					if err != nil {
						return
					}
					dialogs.Add(1)
					_, _ = chromedp.Call(tabCtx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
				}
			})
			defer func() {
				cancelTab()
				wg.Wait()
			}()

			if err := chromedp.Do(tabCtx, chromedp.Navigate(srv.URL+tc.path)); err != nil {
				t.Fatal(err)
			}
			res, err := chromedp.Run(tabCtx, chromedp.Evaluate[browserResult](harness, chromedp.EvalAwaitPromise))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: xss=%d srcdoc=%d dialogs=%d legit=%d handlers=%d js-links=%d scripts=%d",
				tc.path, res.XSS, res.Srcdoc, dialogs.Load(), res.Legit, res.Handlers, res.Links, res.Scripts)
			switch {
			case tc.safe:
				if res.XSS != 0 || dialogs.Load() != 0 {
					t.Errorf("payloads ran: __xss=%d calls=%v dialogs=%d", res.XSS, res.Calls, dialogs.Load())
				}
				if res.Legit != 2 {
					t.Errorf("the nonce'd scripts did not both run: __legit=%d", res.Legit)
				}
				if res.Handlers != 0 || res.Links != 0 || res.Scripts != 3 {
					t.Errorf("page has %d inline handlers, %d javascript: links, %d scripts (want 0, 0, 3)",
						res.Handlers, res.Links, res.Scripts)
				}
				if !slices.Equal(res.Island, payloads) {
					t.Errorf("data island did not read back the payloads (%d of %d)", len(res.Island), len(payloads))
				}
			case !tc.csp:
				if res.XSS == 0 && dialogs.Load() == 0 {
					t.Errorf("no payload ran on the anchor page: the harness cannot see execution")
				}
				if res.Srcdoc != 1 {
					t.Errorf("html/template's escaped srcdoc did not run; the anchor comparison is stale")
				}
			default:
				if res.XSS != 0 || res.Srcdoc != 0 || dialogs.Load() != 0 {
					t.Errorf("strict CSP let payloads run: __xss=%d calls=%v dialogs=%d", res.XSS, res.Calls, dialogs.Load())
				}
				if res.Legit < 1 {
					t.Errorf("the nonce'd script did not run under CSP")
				}
				if res.Scripts <= 1 {
					t.Errorf("no injected script in the anchor page: %d scripts", res.Scripts)
				}
			}
		})
	}
}

// Templates html/template accepts and New refuses (TestBrowserObeyedAttributes):
// an action in the content of a <meta http-equiv="refresh"> and in the
// values of an SVG animation of a link's href. Beside each, the page
// New accepts, which prints the same value as text: in <meta name>
// content, and in the animation's dur.
const (
	refreshPage = `<!doctype html><html><head><meta http-equiv="refresh" content="0;url={{.}}"><title>t</title></head>` +
		`<body><p>page</p></body></html>`
	metaNamePage = `<!doctype html><html><head><meta name="description" content="{{.}}"><title>t</title></head>` +
		`<body><p>page</p></body></html>`
	animatedHrefPage = `<!doctype html><html><head><title>t</title></head><body><svg width="200" height="50">` +
		`<a id="l"><animate attributeName="href" values="{{.}}"/><text x="10" y="30">link</text></a></svg></body></html>`
	animatedOpacityPage = `<!doctype html><html><head><title>t</title></head><body><svg width="200" height="50">` +
		`<a id="l" href="#clicked"><animate attributeName="opacity" values="1;0.5" dur="{{.}}"/><text x="10" y="30">link</text></a></svg></body></html>`
)

// TestBrowserObeyedAttributes shows in Chromium what the <meta> and SVG
// animation refusals stop. html/template, given an attacker's value,
// sends a page that navigates to the attacker's server (meta refresh) and
// one whose link runs the attacker's script when clicked (an animated
// href); New refuses both templates. The pages New accepts, given the
// same values, stay where they are, run nothing, and their link still
// works.
func TestBrowserObeyedAttributes(t *testing.T) {
	chromium := testutil.Tool(t, "chromium", "chromium")
	for _, r := range []struct {
		src  string
		want error
	}{{refreshPage, safetmpl.ErrMarkupContext}, {animatedHrefPage, safetmpl.ErrScriptContext}} {
		if _, err := safetmpl.New(safetmpl.Options{FS: fstest.MapFS{"p.html": {Data: []byte(r.src)}}}); !errors.Is(err, r.want) {
			t.Fatalf("New: err = %v, want %v", err, r.want)
		}
	}
	set := mustSet(t, safetmpl.Options{FS: fstest.MapFS{
		"meta.html":    {Data: []byte(metaNamePage)},
		"animate.html": {Data: []byte(animatedOpacityPage)},
	}})

	var evilHits atomic.Int32
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/landed" {
			evilHits.Add(1)
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!doctype html><title>attacker</title><p>attacker's page</p>`))
	}))
	defer evil.Close()
	redirect := evil.URL + "/landed"
	const script = "javascript:window.__xss=1"

	anchor := func(src string, v string) http.HandlerFunc {
		tm := template.Must(template.New("p").Parse(src))
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			if err := tm.Execute(w, v); err != nil {
				t.Error(err)
			}
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/anchor/refresh", anchor(refreshPage, redirect))
	mux.Handle("/anchor/animate", anchor(animatedHrefPage, script))
	mux.HandleFunc("/safetmpl/meta", func(w http.ResponseWriter, r *http.Request) {
		set.Render(w, r, "meta.html", "0;url="+redirect)
	})
	mux.HandleFunc("/safetmpl/animate", func(w http.ResponseWriter, r *http.Request) {
		set.Render(w, r, "animate.html", script)
	})
	srv := httptest.NewServer(withState(mux, reqState{}, nil))
	defer srv.Close()

	browserCtx, stop := startBrowser(t, chromium, 60*time.Second)
	defer stop()

	type state struct {
		Href string `json:"href"`
		XSS  int    `json:"xss"`
	}
	// settled waits two frames and a little more, then reads the page.
	settled := func(ctx context.Context) (state, error) {
		return chromedp.Run(ctx, chromedp.Evaluate[state](`(async () => {
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(r, 300))));
  return {href: location.href, xss: window.__xss || 0};
})()`, chromedp.EvalAwaitPromise))
	}
	// until reads the page every 50 ms, for at most 5 s, until done
	// holds; a read that fails (the page is navigating) is retried.
	until := func(ctx context.Context, done func(state) bool) state {
		var last state
		for range 100 {
			if s, err := chromedp.Run(ctx, chromedp.Evaluate[state](`({href: location.href, xss: window.__xss || 0})`)); err == nil {
				last = s
				if done(s) {
					break
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		return last
	}

	cases := []struct {
		name   string
		path   string
		click  bool
		attack bool // the anchor page: the attack must work
	}{
		{"html/template meta refresh", "/anchor/refresh", false, true},
		{"safetmpl meta name", "/safetmpl/meta", false, false},
		{"html/template animated href", "/anchor/animate", true, true},
		{"safetmpl animated opacity", "/safetmpl/animate", true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tabCtx, cancelTab := chromedp.NewContext(browserCtx)
			defer cancelTab()
			before := evilHits.Load()
			if err := chromedp.Do(tabCtx, chromedp.Navigate(srv.URL+tc.path)); err != nil {
				t.Fatal(err)
			}
			var got state
			switch {
			case tc.attack && !tc.click:
				got = until(tabCtx, func(s state) bool { return strings.HasPrefix(s.Href, evil.URL) })
				if !strings.HasPrefix(got.Href, redirect) || evilHits.Load() == before {
					t.Fatalf("html/template's meta refresh did not take the browser to the attacker's server: at %q, %d hits; the comparison is stale",
						got.Href, evilHits.Load()-before)
				}
				return
			case !tc.click:
				var err error
				if got, err = settled(tabCtx); err != nil {
					t.Fatal(err)
				}
				if got.Href != srv.URL+tc.path || evilHits.Load() != before {
					t.Errorf("the <meta name> page navigated: at %q, %d hits on the attacker's server", got.Href, evilHits.Load()-before)
				}
				return
			}
			if _, err := settled(tabCtx); err != nil {
				t.Fatal(err)
			}
			if err := chromedp.Do(tabCtx, chromedp.Click("#l text")); err != nil {
				t.Fatal(err)
			}
			if tc.attack {
				got = until(tabCtx, func(s state) bool { return s.XSS != 0 })
				if got.XSS != 1 {
					t.Fatalf("html/template's animated href did not run the attacker's script; the comparison is stale")
				}
				return
			}
			got = until(tabCtx, func(s state) bool { return strings.HasSuffix(s.Href, "#clicked") })
			if got.Href != srv.URL+tc.path+"#clicked" || got.XSS != 0 {
				t.Errorf("after a click on the link: at %q, __xss=%d; want the link's own #clicked and no script", got.Href, got.XSS)
			}
		})
	}
}

package wsorigin_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stormcellar/stormcellar/internal/testutil"
	"github.com/stormcellar/stormcellar/wsorigin"
)

// debianPython is the interpreter of the Debian python3-tornado package;
// the default python3 on PATH may be another installation.
const debianPython = "/usr/bin/python3"

// tornadoEcho is a Tornado WebSocket echo server with the default
// check_origin; it prints its port and serves until killed.
const tornadoEcho = `
import asyncio
import tornado.httpserver, tornado.netutil, tornado.web, tornado.websocket

class Echo(tornado.websocket.WebSocketHandler):
    def on_message(self, message):
        self.write_message(message)

async def main():
    socks = tornado.netutil.bind_sockets(0, "127.0.0.1")
    tornado.httpserver.HTTPServer(tornado.web.Application([(r"/", Echo)])).add_sockets(socks)
    print(socks[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
`

// startTornado runs tornadoEcho and returns its host:port, or skips the
// test (fails with STORMCELLAR_REQUIRE_TOOLS=1) when Tornado is missing.
func startTornado(t *testing.T) string {
	t.Helper()
	py := testutil.Tool(t, debianPython, "python3-tornado")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, py, "-c", tornadoEcho)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	port := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		port <- strings.TrimSpace(line)
	}()
	select {
	case p := <-port:
		if p != "" {
			return "127.0.0.1:" + p
		}
	case <-time.After(30 * time.Second):
	}
	cancel()
	_ = cmd.Wait()
	msg := debianPython + " could not run a Tornado server (install the Debian package python3-tornado): " +
		strings.TrimSpace(stderr.String())
	if os.Getenv(testutil.RequireEnv) == "1" {
		t.Fatal(msg)
	}
	t.Skip("skipped: " + msg)
	return ""
}

// TestRealTornadoAcceptsWhatPolicyRefuses sends the same handshakes to a
// real Tornado server (Debian python3-tornado, default check_origin) and
// to wsorigin's same-origin policy: Tornado ignores the scheme and the
// path, lets a browser request without Origin through, trusts the Host
// header (DNS rebinding), and refuses a legitimate Host in upper case.
func TestRealTornadoAcceptsWhatPolicyRefuses(t *testing.T) {
	tornado := startTornado(t)
	t.Parallel()
	p, _ := wsorigin.New(wsorigin.Options{})
	ours, _ := policyServer(t, p, false)
	oursHost := strings.TrimPrefix(ours.URL, "http://")
	pinned, _ := wsorigin.New(wsorigin.Options{PublicOrigin: ours.URL})
	oursPinned, _ := policyServer(t, pinned, false)
	pinnedHost := strings.TrimPrefix(oursPinned.URL, "http://")

	cases := []struct {
		name          string
		origin        string // {host} is the target server's host:port, {port} its port
		host          string
		browser       bool // send Sec-Fetch-Mode without Origin
		pinned        bool // compare with the PublicOrigin policy
		tornado, want int
	}{
		{name: "https origin for an http server (scheme ignored)", origin: "https://{host}", tornado: 101, want: 403},
		{name: "origin with a path", origin: "http://{host}/evil", tornado: 101, want: 403},
		{name: "browser request without Origin", browser: true, tornado: 101, want: 403},
		{name: "DNS rebinding", origin: "http://rebind.evil.test:{port}", host: "rebind.evil.test:{port}", pinned: true, tornado: 101, want: 403},
		{name: "legitimate upper-case Host", origin: "http://localhost:{port}", host: "LOCALHOST:{port}", tornado: 403, want: 101},
		{name: "legitimate same origin", origin: "http://{host}", tornado: 101, want: 101},
	}
	for _, c := range cases {
		for _, target := range []struct {
			name, hostport string
			want           int
		}{{"tornado", tornado, c.tornado}, {"wsorigin", map[bool]string{false: oursHost, true: pinnedHost}[c.pinned], c.want}} {
			port := target.hostport[strings.LastIndexByte(target.hostport, ':')+1:]
			fill := func(s string) string {
				return strings.ReplaceAll(strings.ReplaceAll(s, "{host}", target.hostport), "{port}", port)
			}
			var origins []string
			if c.origin != "" {
				origins = []string{fill(c.origin)}
			}
			extra := map[string][]string{}
			if c.browser {
				extra["Sec-Fetch-Mode"] = []string{"websocket"}
			}
			conn, status := dialAddr(t, target.hostport, origins, fill(c.host), extra)
			if conn != nil {
				exchange(t, conn)
			}
			if status != target.want {
				t.Errorf("%s: %s answered %d, want %d", c.name, target.name, status, target.want)
			}
		}
	}
}

package cookiesecret

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stormcellar/stormcellar/internal/testutil"
)

// debianPython is the interpreter of the Debian python3-tornado package.
// The machine's default python3 may be another installation without
// Tornado, so the tests never use PATH for it.
const debianPython = "/usr/bin/python3"

// tornadoPython returns the Python interpreter that can import Tornado,
// or skips the test (fails with STORMCELLAR_REQUIRE_TOOLS=1).
func tornadoPython(t *testing.T) string {
	t.Helper()
	py := testutil.Tool(t, debianPython, "python3")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "-c", "import tornado; print(tornado.version)").CombinedOutput()
	if err != nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		msg := debianPython + " cannot import tornado (install the Debian package python3-tornado): " +
			lines[len(lines)-1]
		if os.Getenv(testutil.RequireEnv) == "1" {
			t.Fatal(msg)
		}
		t.Skip("skipped: " + msg)
	}
	t.Logf("Tornado %s", strings.TrimSpace(string(out)))
	return py
}

// tornadoOp is one operation for testdata/tornado_signed.py.
type tornadoOp struct {
	Op         string         `json:"op"`
	Secret     map[string]any `json:"secret"`
	Name       string         `json:"name"`
	Value      []byte         `json:"value,omitempty"`
	Signed     string         `json:"signed"`
	Version    *int           `json:"version,omitempty"`
	KeyVersion *int           `json:"key_version,omitempty"`
	Clock      float64        `json:"clock"`
	MaxAgeDays float64        `json:"max_age_days,omitempty"`
	MinVersion *int           `json:"min_version,omitempty"`
}

type tornadoResult struct {
	OK     bool    `json:"ok"`
	Signed string  `json:"signed"`
	Value  *[]byte `json:"value"`
	Error  string  `json:"error"`
}

// runTornado runs the operations through Tornado's own functions.
func runTornado(t *testing.T, ops []tornadoOp) []tornadoResult {
	t.Helper()
	py := tornadoPython(t)
	in, err := json.Marshal(ops)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "testdata/tornado_signed.py")
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tornado_signed.py: %v\n%s", err, stderr.String())
	}
	var res struct {
		Version string          `json:"version"`
		Results []tornadoResult `json:"results"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("tornado_signed.py output: %v\n%s", err, out)
	}
	if len(res.Results) != len(ops) {
		t.Fatalf("tornado_signed.py: %d results for %d operations", len(res.Results), len(ops))
	}
	return res.Results
}

func singleSecret(raw []byte) map[string]any { return map[string]any{"b64": raw} }

func dictSecret(m map[int][]byte) map[string]any {
	d := map[string][]byte{}
	for k, v := range m {
		d[strconv.Itoa(k)] = v
	}
	return map[string]any{"dict": d}
}

// startTornadoXSRF starts testdata/tornado_xsrf_server.py and returns its
// base URL; the process is stopped when the test ends.
func startTornadoXSRF(t *testing.T) string {
	t.Helper()
	py := tornadoPython(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, py, "testdata/tornado_xsrf_server.py")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cancel()
			<-done
		}
		cancel()
	})
	port := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		port <- strings.TrimSpace(line)
	}()
	select {
	case p := <-port:
		if p == "" {
			t.Fatalf("tornado_xsrf_server.py did not start: %s", stderr.String())
		}
		return "http://127.0.0.1:" + p
	case <-time.After(30 * time.Second):
		t.Fatalf("tornado_xsrf_server.py did not start in 30s: %s", stderr.String())
	}
	return ""
}

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stormcellar/stormcellar/cookiesecret"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var fixedNow = func() time.Time { return time.Date(2025, 6, 14, 10, 0, 0, 0, time.UTC) }

func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut, fixedNow)
	return code, out.String(), errOut.String()
}

func TestGenerate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		args   []string
		wantID string
	}{
		{"default id", nil, "k20250614"},
		{"own id", []string{"-id", "prod-7"}, "prod-7"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runCmd(t, tc.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			ring, err := cookiesecret.ParseKeyring(strings.TrimSpace(out))
			if err != nil || ring.Current() != tc.wantID {
				t.Fatalf("output %q: %v", out, err)
			}
			_, again, _ := runCmd(t, tc.args...)
			if again == out {
				t.Error("two runs printed the same key")
			}
		})
	}
}

func TestTornado(t *testing.T) {
	t.Parallel()
	code, out, _ := runCmd(t, "-tornado")
	text := strings.TrimSpace(out)
	if code != 0 || len(text) != 44 {
		t.Fatalf("exit %d, %q", code, out)
	}
	if _, err := cookiesecret.NewSecret([]byte(text)); err != nil {
		t.Errorf("the Tornado secret does not validate as raw text: %v", err)
	}
}

func TestBadUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"-id", "bad/id"}, {"extra"}, {"-nope"}, {"-tornado", "-id", "x"}, {"-rotate", "X", "-keep", "99"}} {
		if code, out, _ := runCmd(t, args...); code == 0 || out != "" {
			t.Errorf("%v: exit %d, printed %q", args, code, out)
		}
	}
	if code, _, _ := runCmd(t, "-h"); code != 0 {
		t.Errorf("-h: exit %d", code)
	}
}

// TestRotate changes the environment, so it does not run in parallel.
func TestRotate(t *testing.T) {
	a, b := cookiesecret.GenerateSecret(), cookiesecret.GenerateSecret()
	t.Setenv("CS_CMD_KEYS", "k20250614:"+a.Reveal()+",k1:"+b.Reveal())
	code, out, errOut := runCmd(t, "-rotate", "CS_CMD_KEYS")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	ring, err := cookiesecret.ParseKeyring(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ring.IDs(), ","); got != "k20250614-2,k20250614" {
		t.Errorf("rotated ids %s; want the new key, then the previous current key", got)
	}
	if !ring.Keys()[1].Secret.Equal(a) {
		t.Error("the previous key was not kept")
	}
	code, out, _ = runCmd(t, "-rotate", "CS_CMD_KEYS", "-keep", "2", "-id", "k3")
	if ring, err := cookiesecret.ParseKeyring(strings.TrimSpace(out)); code != 0 || err != nil || strings.Join(ring.IDs(), ",") != "k3,k20250614,k1" {
		t.Errorf("-keep 2: %q, %v", out, err)
	}

	file := filepath.Join(t.TempDir(), "keys")
	os.WriteFile(file, []byte("k1:"+a.Reveal()+"\n"), 0o600)
	t.Setenv("CS_CMD_FILE_KEYS_FILE", file)
	if code, out, errOut := runCmd(t, "-rotate", "CS_CMD_FILE_KEYS", "-id", "k2"); code != 0 || !strings.HasPrefix(out, "k2:") {
		t.Errorf("from a file: exit %d %q %s", code, out, errOut)
	}

	t.Setenv("CS_CMD_WEAK", "k1:changeme")
	code, out, errOut = runCmd(t, "-rotate", "CS_CMD_WEAK")
	if code != 1 || out != "" || !strings.Contains(errOut, "sample value") || strings.Contains(errOut, "changeme") {
		t.Errorf("weak keyring: exit %d, out %q, err %q", code, out, errOut)
	}
	if code, _, errOut := runCmd(t, "-rotate", "CS_CMD_UNSET"); code != 1 || !strings.Contains(errOut, "CS_CMD_UNSET") {
		t.Errorf("unset: exit %d %s", code, errOut)
	}
}

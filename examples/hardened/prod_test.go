package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stormcellar/stormcellar/cookiesecret"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildOut  []byte
)

// binary builds the service once for the tests that run it as a process.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hardened-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "hardened")
		buildOut, buildErr = exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("go build: %v\n%s", buildErr, buildOut)
	}
	return binPath
}

func goodSecret() string {
	return "k1:" + cookiesecret.GenerateSecret().Reveal()
}

// run the binary with env, returning exit code and stderr.
func runBinary(t *testing.T, args []string, env map[string]string) (int, string) {
	t.Helper()
	bin := binary(t) // built first: the build's time is not the run's
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), stderr.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, stderr.String()
}

func TestProductionRefusesInsecureConfig(t *testing.T) {
	t.Parallel()
	proxied := map[string]string{
		"STORMCELLAR_TRUSTED_PROXIES": "10.0.0.0/8",
		"STORMCELLAR_PUBLIC_ORIGIN":   "https://shop.example",
	}
	with := func(extra map[string]string) map[string]string {
		env := map[string]string{"STORMCELLAR_COOKIE_SECRETS": goodSecret()}
		for k, v := range proxied {
			env[k] = v
		}
		for k, v := range extra {
			env[k] = v
		}
		return env
	}
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no secret", []string{"-prod"}, proxied, "STORMCELLAR_COOKIE_SECRETS is not set"},
		{"weak secret", []string{"-prod"}, with(map[string]string{"STORMCELLAR_COOKIE_SECRETS": "k1:" + base64.StdEncoding.EncodeToString([]byte("my super secret cookie key 2024!"))}), "STORMCELLAR_COOKIE_SECRETS is refused"},
		{"short secret", []string{"-prod"}, with(map[string]string{"STORMCELLAR_COOKIE_SECRETS": "k1:c2VjcmV0"}), "STORMCELLAR_COOKIE_SECRETS is refused"},
		{"wildcard origin", nil, with(map[string]string{"STORMCELLAR_ENV": "production", "STORMCELLAR_ALLOWED_ORIGINS": "https://*.example.com"}), "is a wildcard"},
		{"http origin", []string{"-prod"}, with(map[string]string{"STORMCELLAR_ALLOWED_ORIGINS": "http://app.example.com"}), "is not https://"},
		{"debug", []string{"-prod", "-debug"}, with(nil), "debug mode is on"},
		{"debug env", []string{"-prod"}, with(map[string]string{"STORMCELLAR_DEBUG": "1"}), "debug mode is on"},
		{"demo faults", []string{"-prod", "-demo-faults"}, with(nil), "-demo-faults is on"},
		{"public admin", []string{"-prod", "-admin-addr", "0.0.0.0:9090"}, with(nil), "is not on a loopback address"},
		{"no TLS, no proxy", []string{"-prod"}, map[string]string{"STORMCELLAR_COOKIE_SECRETS": goodSecret()}, "no TLS"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"-addr", "127.0.0.1:0"}, c.args...)
			if !hasFlag(c.args, "-admin-addr") {
				args = append(args, "-admin-addr", "127.0.0.1:0")
			}
			code, stderr := runBinary(t, args, c.env)
			if code != 2 {
				t.Fatalf("exit %d, want 2; stderr:\n%s", code, stderr)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			found := false
			for _, l := range lines {
				if !strings.HasPrefix(l, "hardened: refusing to start: ") {
					t.Errorf("line %q is not a refusal line", l)
				}
				found = found || strings.Contains(l, c.want)
			}
			if !found {
				t.Errorf("no line says %q:\n%s", c.want, stderr)
			}
			if strings.Contains(stderr, "listening") {
				t.Errorf("it started listening")
			}
		})
	}
	// Everything wrong at once: one line per problem.
	code, stderr := runBinary(t, []string{"-prod", "-debug", "-admin-addr", "0.0.0.0:9090"},
		map[string]string{"STORMCELLAR_ALLOWED_ORIGINS": "https://*.example.com,http://a.example"})
	if n := strings.Count(stderr, "refusing to start"); code != 2 || n != 6 {
		t.Errorf("exit %d with %d refusal lines, want 2 and 6:\n%s", code, n, stderr)
	}
}

func hasFlag(args []string, f string) bool {
	for _, a := range args {
		if a == f {
			return true
		}
	}
	return false
}

// A fresh start with no configuration: development mode, one warning line
// about the ephemeral secret, and a clean exit on SIGTERM. A correct
// production configuration starts too.
func TestBinaryStartsAndStopsGracefully(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		args []string
		env  map[string]string
		warn int
	}{
		"development, no configuration": {nil, nil, 1},
		"production behind a TLS proxy": {[]string{"-prod"}, map[string]string{
			"STORMCELLAR_COOKIE_SECRETS":  goodSecret(),
			"STORMCELLAR_TRUSTED_PROXIES": "10.0.0.0/8",
			"STORMCELLAR_PUBLIC_ORIGIN":   "https://shop.example",
			"STORMCELLAR_ALLOWED_ORIGINS": "https://admin.shop.example",
		}, 0},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(binary(t), append(c.args, "-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0")...)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
			for k, v := range c.env {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(stderr)
			var lines []string
			for sc.Scan() {
				lines = append(lines, sc.Text())
				if strings.Contains(sc.Text(), `"msg":"listening"`) {
					break
				}
			}
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			for sc.Scan() {
				lines = append(lines, sc.Text())
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("exit: %v\n%s", err, strings.Join(lines, "\n"))
				}
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatal("did not stop on SIGTERM")
			}
			warns := 0
			for _, l := range lines {
				if strings.Contains(l, `"level":"WARN"`) {
					warns++
				}
				for _, secret := range c.env {
					if strings.HasPrefix(secret, "k1:") && strings.Contains(l, strings.TrimPrefix(secret, "k1:")) {
						t.Errorf("the secret was logged")
					}
				}
			}
			if warns != c.warn || !strings.Contains(strings.Join(lines, "\n"), `"msg":"stopped"`) {
				t.Errorf("%d warnings (want %d), log:\n%s", warns, c.warn, strings.Join(lines, "\n"))
			}
		})
	}
}

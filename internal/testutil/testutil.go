// Package testutil holds helpers shared by stormcellar's tests.
package testutil

import (
	"os"
	"os/exec"
	"testing"
)

// RequireEnv is the environment variable that turns a missing external
// tool into a test failure instead of a skip. .ci/run sets it after
// installing the tools with apt-get.
const RequireEnv = "STORMCELLAR_REQUIRE_TOOLS"

// Tool returns the path of the executable name (looked up in PATH, or used
// as is when it contains a slash). When it is missing the test is skipped
// with a message naming the Debian package that provides it, or fails if
// STORMCELLAR_REQUIRE_TOOLS=1.
func Tool(t testing.TB, name, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := name + " not found (install the Debian package " + debianPackage + "): " + err.Error()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatal(msg)
	}
	t.Skip("skipped: " + msg)
	return ""
}

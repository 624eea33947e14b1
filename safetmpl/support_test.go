package safetmpl_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stormcellar/stormcellar/httperr"
	"github.com/stormcellar/stormcellar/internal/reqstate"
	"github.com/stormcellar/stormcellar/safetmpl"
)

// logBuffer collects log records for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// reqState is what the SecureHeaders and XSRF middleware put in the
// request state; tests set it directly.
type reqState struct {
	nonce string
	token func() string
}

// withState installs httperr (logging to logs) and sets the request
// state, as the stormcellar middleware chain would.
func withState(h http.Handler, s reqState, logs *logBuffer) http.Handler {
	var out io.Writer = io.Discard
	if logs != nil {
		out = logs
	}
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, w, r := reqstate.Ensure(w, r)
		st.Nonce = s.nonce
		st.XSRFToken = s.token
		h.ServeHTTP(w, r)
	})
	return httperr.Install(httperr.Options{Logger: slog.New(slog.NewTextHandler(out, nil))})(inner)
}

// renderRec renders page with data through the middleware, in memory.
func renderRec(t testing.TB, set *safetmpl.Set, page string, data any, s reqState) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h := withState(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		set.Render(w, r, page, data)
	}), s, nil)
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	return rec
}

// mustSet builds a set or fails the test.
func mustSet(t testing.TB, opts safetmpl.Options) *safetmpl.Set {
	t.Helper()
	set, err := safetmpl.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return set
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

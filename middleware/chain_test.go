package middleware

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestChain(t *testing.T) {
	t.Parallel()
	var order []string
	mark := func(name string) func(http.Handler) http.Handler {
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				order = append(order, name+">")
				next.ServeHTTP(w, r)
				order = append(order, "<"+name)
			})
		}
	}
	mws := []func(http.Handler) http.Handler{mark("a"), mark("b"), mark("c")}
	chain := Chain(mws...)
	mws[0] = mark("changed") // Chain keeps its own copy
	h := chain(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { order = append(order, "h") }))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if got := strings.Join(order, " "); got != "a> b> c> h <c <b <a" {
		t.Errorf("order %q", got)
	}
	if Chain()(http.NotFoundHandler()) == nil {
		t.Error("empty chain returned nil")
	}
}

func TestChainPanicsOnNil(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		fn   func()
		want string
	}{
		{"nil middleware", func() { Chain(Recover, nil) }, "middleware 1 is nil"},
		{"nil handler", func() { Chain(Recover)(nil) }, "handler is nil"},
		{"middleware returns nil", func() {
			Chain(Recover, func(http.Handler) http.Handler { return nil })(http.NotFoundHandler())
		}, "middleware 1 returned a nil handler"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			defer func() {
				v := recover()
				if s, _ := v.(string); !strings.Contains(s, tc.want) || !strings.HasPrefix(s, "middleware: ") {
					t.Errorf("panic %v, want one saying %q", v, tc.want)
				}
			}()
			tc.fn()
		})
	}
}

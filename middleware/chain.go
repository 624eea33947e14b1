package middleware

import (
	"fmt"
	"net/http"
	"slices"
)

// Chain returns middleware that applies mws in order, the first outermost:
// Chain(a, b, c)(h) is a(b(c(h))), so a request meets a first and the
// response leaves through a last. The recommended order of the whole
// stack is in the package documentation and in Example_chain.
//
// Chain panics, when it is called and when the result is applied to a
// handler, if a middleware or the handler is nil or a middleware returns a
// nil handler: a missing layer is a programming error that must stop the
// program at start-up, not leave a route unprotected.
func Chain(mws ...func(http.Handler) http.Handler) func(http.Handler) http.Handler {
	for i, mw := range mws {
		if mw == nil {
			panic(fmt.Sprintf("middleware: Chain: middleware %d is nil", i))
		}
	}
	mws = slices.Clone(mws)
	return func(h http.Handler) http.Handler {
		if h == nil {
			panic("middleware: Chain: the handler is nil")
		}
		for i := len(mws) - 1; i >= 0; i-- {
			h = mws[i](h)
			if h == nil {
				panic(fmt.Sprintf("middleware: Chain: middleware %d returned a nil handler", i))
			}
		}
		return h
	}
}

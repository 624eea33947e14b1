package middleware

import (
	"fmt"
	"net/http"
	"runtime/debug"

	"github.com/stormcellar/stormcellar/httperr"
	"github.com/stormcellar/stormcellar/internal/reqstate"
)

// Bounds on what a recovered panic puts in its log record.
const (
	maxPanicValue = 4 << 10  // bytes of the formatted panic value
	maxPanicStack = 64 << 10 // bytes of the stack
)

// Recover is middleware that turns a panic in the handlers below it into a
// safe response, and keeps the server serving.
//
//   - Nothing written yet: a 500 through [httperr.Write], with the status
//     text and the request id only (no panic value, no stack, no file
//     path), in HTML, JSON or plain text as the client accepts, with the
//     headers set by middleware above (security headers, request id).
//   - Status line already sent: nothing more can be said truthfully, so the
//     connection is aborted with panic([net/http.ErrAbortHandler]): the
//     client sees a truncated response (a reset, or a chunked body without
//     its end), never one that looks complete.
//   - Connection hijacked (WebSocket and other upgrades): nothing is
//     written to it.
//   - A panic with [net/http.ErrAbortHandler] itself passes through
//     untouched and unlogged: it is how a handler asks net/http to abort.
//
// Every recovered panic gives exactly one log record, written by
// [httperr.Write] with the logger of [httperr.Install]: level Error,
// kind "panic", the request id, and as err a [*PanicError] whose text
// holds the panic value and the stack. The error page shows that text only
// when httperr.Options.InsecureExposeCause is set, for local development.
//
// Recover tracks the commit state with the per-request writer shared by
// all stormcellar middleware (created once per request, one allocation,
// by whichever of them runs first); with it in place Recover allocates
// nothing until a panic happens. The writer keeps Unwrap, Flush, Hijack and
// ReadFrom working, so [net/http.ResponseController] and sendfile are
// unaffected.
//
// Recover cannot catch a panic in a goroutine the handler started: that
// one ends the process whatever middleware is installed.
func Recover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		orig := r
		st, w, r := reqstate.Ensure(w, r)
		if r != orig {
			defer reqstate.KeepForm(orig, r)
		}
		defer recoverPanic(st, w, r)
		next.ServeHTTP(w, r)
	})
}

// recoverPanic is deferred by Recover. It must be called directly by the
// deferred call for recover to work.
func recoverPanic(st *reqstate.State, w http.ResponseWriter, r *http.Request) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler { // compared as net/http does: only the sentinel itself
		panic(v)
	}
	sw := st.Writer()
	committed, hijacked := sw.Committed(), sw.Hijacked()
	perr := &PanicError{Value: v, Stack: trimStack(debug.Stack())}
	// httperr.Write logs the one record; when the response is committed it
	// writes nothing and says so in that record.
	httperr.Write(w, r, &httperr.HTTPError{
		Status: http.StatusInternalServerError,
		Kind:   httperr.KindPanic,
		Err:    perr,
	})
	if committed && !hijacked {
		panic(http.ErrAbortHandler)
	}
}

func trimStack(s []byte) []byte {
	if len(s) > maxPanicStack {
		s = append(s[:maxPanicStack:maxPanicStack], "\n…stack cut"...)
	}
	return s
}

// PanicError is the cause [Recover] logs for a recovered panic.
type PanicError struct {
	// Value is the value the handler panicked with.
	Value any
	// Stack is the stack of the panicking goroutine (at most 64 KiB).
	Stack []byte
}

// Error returns "panic: " and the value (cut to 4 KiB), then the stack.
// It is meant for the log; the client never sees it unless
// httperr.Options.InsecureExposeCause is set.
func (e *PanicError) Error() string {
	v := fmt.Sprint(e.Value)
	if len(v) > maxPanicValue {
		v = v[:maxPanicValue] + "…"
	}
	if len(e.Stack) == 0 {
		return "panic: " + v
	}
	return "panic: " + v + "\n\n" + string(e.Stack)
}

// Unwrap returns the panic value when it is an error, so that errors.Is
// and errors.As see through the panic.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

package tasks_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/stormcellar/stormcellar/tasks"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// logRecord is one captured slog record, attributes flattened to strings.
type logRecord struct {
	Level slog.Level
	Msg   string
	Attrs map[string]string
}

// logRecorder is a slog.Handler that keeps every record.
type logRecorder struct {
	mu   sync.Mutex
	recs []logRecord
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{Level: r.Level, Msg: r.Message, Attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.Attrs[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	h.recs = append(h.recs, rec)
	h.mu.Unlock()
	return nil
}

func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecorder) WithGroup(string) slog.Handler      { return h }

func (h *logRecorder) records() []logRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]logRecord(nil), h.recs...)
}

// find returns the records with the given message.
func (h *logRecorder) find(msg string) []logRecord {
	var out []logRecord
	for _, r := range h.records() {
		if r.Msg == msg {
			out = append(out, r)
		}
	}
	return out
}

func (h *logRecorder) String() string {
	var b strings.Builder
	for _, r := range h.records() {
		fmt.Fprintf(&b, "%s %q %v\n", r.Level, r.Msg, r.Attrs)
	}
	return b.String()
}

// eventRecorder collects observer events.
type eventRecorder struct {
	mu     sync.Mutex
	events []tasks.Event
}

func (e *eventRecorder) observe(ev tasks.Event) {
	e.mu.Lock()
	e.events = append(e.events, ev)
	e.mu.Unlock()
}

func (e *eventRecorder) all() []tasks.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]tasks.Event(nil), e.events...)
}

// newSupervisor returns a supervisor whose logs and events are recorded.
func newSupervisor(opts tasks.Options) (*tasks.Supervisor, *logRecorder, *eventRecorder) {
	logs, events := &logRecorder{}, &eventRecorder{}
	opts.Logger = slog.New(logs)
	opts.Observer = events.observe
	return tasks.New(opts), logs, events
}

// panickingHandler is a slog.Handler whose Handle panics, like a handler
// with a bug or one that writes to a closed sink that panics.
type panickingHandler struct{}

func (panickingHandler) Enabled(context.Context, slog.Level) bool  { return true }
func (panickingHandler) Handle(context.Context, slog.Record) error { panic("log handler bug") }
func (h panickingHandler) WithAttrs([]slog.Attr) slog.Handler      { return h }
func (h panickingHandler) WithGroup(string) slog.Handler           { return h }

// panicValue calls fn and returns what it panicked with, or nil.
func panicValue(fn func()) (v any) {
	defer func() { v = recover() }()
	fn()
	return nil
}

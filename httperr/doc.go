// Package httperr is the one place where stormcellar writes an error
// response: the status, a safe public message and a request id, in HTML,
// JSON or plain text as the client accepts, with one log record and one
// observer call per error.
//
// Every other stormcellar package rejects requests through [Write], so one
// page design, one log format and one metrics hook cover panics, oversized
// bodies, refused origins, timeouts and rate limits alike.
//
// # Use
//
// Put [Install] first in the middleware chain to choose the renderer, the
// logger and the observer for every request. Return errors from handlers
// with [HandlerFunc], or call [Write] yourself:
//
//	mux.Handle("GET /item/{id}", httperr.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
//		item, err := store.Get(r.Context(), r.PathValue("id"))
//		if errors.Is(err, store.ErrNotFound) {
//			return httperr.NotFound(err)
//		}
//		if err != nil {
//			return err // 500; the cause is logged, never shown
//		}
//		return render(w, item)
//	}))
//	handler := httperr.Install(httperr.Options{Logger: logger})(mux)
//
// An [HTTPError] carries a status, a public message and a private cause,
// like Tornado's HTTPError(status, log_message). Plain errors become 500;
// [net/http.MaxBytesError] becomes 413; [context.DeadlineExceeded] becomes
// 503 or 504 (see [Write]).
//
// # Threat model
//
// Answers "proper error handling" and "debug mode in production" in the
// seed threat documents: an unhandled error must not leak file paths,
// stack traces, SQL, secrets or type names to the client, and must not
// leave a half-written or corrupted response.
//
//   - The cause of an error goes only to the log, with the request id, the
//     method, the path (never the query string, which may carry tokens)
//     and the client address. The client sees the status text or the
//     message the code chose to make public, and the request id to quote.
//   - The public message is stripped of control characters (no header or
//     log-line injection through CR/LF), cut to 512 bytes and escaped for
//     the format: HTML escaping, or JSON escaping that also covers <, >, &,
//     U+2028 and U+2029 so the body is safe if a browser sniffs it or a page
//     embeds it. Content-Type always has a charset and nosniff is set.
//   - A response that was already committed is never given a second status
//     line; [HandlerFunc] aborts it so the client sees a truncation rather
//     than a truncated body that looks complete.
//   - An Accept header of any size costs a bounded parse (1 KiB, 32 ranges).
//   - A custom [Renderer] gets a buffer, not the writer: it cannot send a
//     partial page or a wrong status, and its errors and panics fall back to
//     [DefaultRenderer].
//   - Showing causes is possible only through Options.InsecureExposeCause,
//     which is off by default (Tornado's serve_traceback, which debug=True
//     turns on).
//
// Fail-open cases: without [Install] (or another stormcellar middleware)
// in front, Write cannot know whether the handler already committed the
// response, and uses the default configuration. A custom renderer is
// trusted to escape what it writes; [HTMLEscape] and [JSONString] help.
// Every refusal is one log record (4xx at Warn), so a flood of refused
// requests is a flood of records: sample or rate-limit in the slog handler
// if that matters, and put middleware.RateLimit in front.
package httperr

// Package safetmpl renders HTML pages with [html/template] behind a
// stricter front: templates come only from the program (an [embed.FS] or
// compile-time constants), are parsed and checked once at start, and are
// rendered into a buffer so that a failure never sends half a page.
//
// # Use
//
//	//go:embed templates
//	var templateFiles embed.FS
//
//	files, _ := fs.Sub(templateFiles, "templates")
//	pages, err := safetmpl.New(safetmpl.Options{FS: files, Shared: []string{"layouts/*.html"}})
//	if err != nil {
//		log.Fatal(err) // names the file, line and action it refuses
//	}
//	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
//		pages.Render(w, r, "index.html", data)
//	})
//
// Each page is a file, named by its path in the FS (admin/index.html and
// index.html are two pages), parsed together with the Shared files
// (layouts, partials) in a namespace of its own, so that every page can
// fill a layout's {{block}}s differently. [Const] adds templates written
// as constants.
//
// Besides html/template's functions, templates have these:
//
//   - {{nonce}}: the Content-Security-Policy nonce that
//     middleware.SecureHeaders made for this response, in a quoted
//     attribute: <script nonce="{{nonce}}" src="/app.js">. It is empty when
//     SecureHeaders is not installed.
//   - {{xsrfField}}: a hidden input holding the request's XSRF token, in
//     HTML text inside a <form>; {{xsrfToken}}: the token alone, in a quoted
//     attribute. Without the XSRF middleware a page that reaches either is
//     not sent: it fails with a 500 ([ErrNoXSRF]) rather than carrying an
//     empty token. A page that printed a token is sent with
//     Cache-Control: no-store.
//   - {{island "id" .Value}}: a JSON data island for scripts ([Island]).
//   - {{sanitize .Comment}}: untrusted markup cleaned by the sanitiser
//     ([Set.Sanitize]).
//
// The nonce and the token are read from the request state that the
// stormcellar middleware fills in. The buffer writes them itself, in the
// place of a text node that stands for them: it recognises that node by
// the address of its bytes, which no value in the data can have, whatever
// its content.
//
// # Threat model
//
// Answers two threats of the seed documents: cross-site scripting ("use
// auto-escaping in Tornado templates", 000) and server-side template
// injection ("SSTI via Tornado templates", 003). As in html/template, the
// template text and the program are trusted and every value a template
// prints is not.
//
// Template injection. No function takes template text at run time. Files
// come from Options.FS (an embed.FS, so the text is fixed at build time);
// [Const] and [ConstHTML] take a parameter of an unexported string type,
// so only untyped constants compile: passing r.FormValue("t") is a
// compile error (TestConstRefusesRuntimeString builds such a program).
// Values that look like template syntax ({{.}}, {% raw %}, ${7*7}) are
// printed as text. And a template can only reach its data and its
// functions: there is no handler, request or settings object in scope.
//
// Cross-site scripting. By default:
//
//   - html/template escapes every value for its context: HTML text,
//     quoted attributes, URLs (schemes other than http, https and mailto
//     become #ZgotmplZ), srcset and RCDATA such as <textarea>.
//   - html/template's typed strings do not switch escaping off: a
//     template.HTML, template.URL, template.JS… in data or returned by a
//     function is escaped like a plain string. Markup is printed raw only
//     as an [HTML], which only [ConstHTML] (a constant), [Set.Sanitize]
//     (bluemonday's UGC policy by default) and [Island] produce; no
//     function turns an arbitrary string into markup.
//   - [New] refuses, with the file, line and column, every action whose
//     output would land in JavaScript — a <script> element, an on*
//     attribute, an attribute of a <script> or <base> start tag (a URL
//     there loads code), a URL attribute after a literal javascript: or
//     vbscript: scheme or where the action could complete the scheme
//     (href="java{{.}}"; html/template only percent-encodes there, which
//     a javascript: URL decodes), a JS template literal or regular
//     expression, the to, from, by, values or attributeName attribute of
//     an SVG animation element (<animate>, <set>, <animateMotion>,
//     <animateTransform>, <animateColor>) — ([ErrScriptContext]); in CSS
//     — <style>, a style attribute — ([ErrStyleContext]); or in markup
//     structure or an instruction to the browser — a tag or attribute
//     name, an unquoted attribute value, a comment, an srcdoc attribute,
//     the http-equiv or charset attribute of a <meta> tag, and its
//     content attribute if the tag has an http-equiv attribute, before
//     or after it, whatever its value ([ErrMarkupContext]). Where {{if}},
//     {{with}} or {{range}} arms end in different tags, attributes or
//     schemes (or one arm is skipped), the check goes on from the arm it
//     would refuse, and counts the <meta> and animation tags and
//     attributes of every arm. Data reaches scripts through a data
//     island, whose JSON escapes <, >, &, U+2028 and U+2029 so that
//     "</script>" and "<!--" cannot end it.
//   - The <meta> and animation attributes are escaped by html/template
//     as text, but the browser obeys them. <meta http-equiv="refresh"
//     content="0;url={{.}}"> navigates to the data's URL (recent
//     html/template releases filter the scheme after a literal url=,
//     which still lets an https URL through, and content="{{.}}" lets the
//     data write url= itself); a charset decides how every byte of the
//     page is decoded; <set attributeName="href" to="{{.}}"> gives a link
//     the data's javascript: URL. Element and attribute names are
//     compared in any case and without a namespace prefix (xlink:to is
//     to), inside <svg> or not. <meta name=… content="{{.}}">
//     (description, og:title…) is text and allowed, as are the other
//     attributes of an animation (dur, begin…).
//   - A page is executed into a pooled buffer and sent only when it is
//     complete, with Content-Type: text/html; charset=utf-8,
//     X-Content-Type-Options: nosniff and its Content-Length. An execution
//     error, a missing XSRF token or a page over Options.MaxPageSize
//     (4 MiB) becomes a 500 written by httperr, with the cause in the log
//     and nothing of the page on the wire.
//   - Templates are parsed once, by New. Only Options.InsecureDevReload,
//     off by default and logged when on, re-parses them on every render.
//
// Fail-open cases, where protection depends on the program:
//
//   - Options.FS is trusted. An fs.FS built from request data (an
//     fstest.MapFS, a directory users can write to) is template injection
//     again; the type system cannot see it.
//   - The Sanitizer and [ConstHTML] are trusted: a bluemonday policy that
//     allows scripts lets them through.
//   - URLs are filtered by scheme only, as in html/template: an attacker's
//     https URL in an href, an <iframe src>, a <link href> or an
//     <object data> is allowed (links to other sites, tracking images).
//     Only the attributes of <script> and <base>, the content of a
//     <meta http-equiv> and the values of SVG animations are refused
//     whatever the URL.
//   - The content of <meta name=…> is text, whatever the name: for the
//     few names a browser obeys, such as referrer, the data picks the
//     setting (<meta name="referrer" content="{{.}}"> lets it send full
//     URLs to other sites).
//   - In attributes and RCDATA, a template.HTML value has its tags
//     stripped by html/template rather than being escaped as text: safe,
//     but not literal.
//   - Without middleware.SecureHeaders there is no nonce and no CSP: the
//     escaping still holds, but nothing catches a mistake in the template
//     text itself.
//   - Templates that no page reaches are not checked; they cannot run.
//   - InsecureAllowScriptActions and InsecureAllowStyleActions hand those
//     contexts to html/template's JavaScript and CSS escapers, the part of
//     it with a history of bypasses (CVE-2023-24538, -24539, -39318,
//     CVE-2026-32289…). Template literals, regular expressions and the
//     values of SVG animations stay refused even then.
//   - html/template's escapers are trusted. safetmpl replaces only the
//     HTML-text escaper and the URL filter (to refuse typed strings); both
//     are fuzzed for byte-equal output against html/template on plain
//     strings (FuzzEscapeHTMLText, FuzzFilterURL). The checks rely on the
//     names html/template gives its escapers and its derived templates: if
//     a Go release changes them, New fails instead of skipping a check.
//
// Where Tornado is weaker (reference/tornado.md): its template
// expressions are Python run with exec, so injected template text is code
// execution and can print handler.settings['cookie_secret']; its
// autoescape is HTML-body escaping only (javascript: URLs pass, backticks
// and = are not escaped), {% raw %} and {% autoescape None %} turn it off
// (the last directive in a file governs the whole file), json_encode only
// escapes "</", and debug mode reloads templates on every request.
//
// Where the Go anchors are weaker (reference/go-anchors.md): html/template
// trusts typed strings, so template.HTML(userInput) or
// template.URL("javascript:…") from data switches escaping off
// (TestTypedStringBypassClosed); it accepts actions in JS template
// literals, event handlers and <script src> (TestAnchorAcceptsScriptActions);
// it escapes srcdoc as a plain attribute, which the browser decodes and
// runs (TestBrowserPayloadsDoNotRun shows it in Chromium), and so the
// content of a <meta http-equiv="refresh"> and the values of an SVG
// animation, which Chromium follows to another site and runs as a
// javascript: link (TestBrowserObeyedAttributes); its ParseFS
// names templates by base name, so admin/index.html silently replaces
// index.html (TestAnchorParseFSNameCollision); and executing into the
// ResponseWriter sends half a page with a 200 (TestPlainTemplateSendsHalfPage).
// google/safehtml/template closes the typed-string hole and refuses JS and
// CSS interpolation too, but cannot load templates from an fs.FS or
// embed.FS (google/safehtml#7), which pushes programs towards its
// unchecked conversions; safetmpl loads from embed.FS first (TestEmbedFS).
//
// # Cost
//
// Rendering the 20-row page of bench_test.go costs the same as
// html/template executing it straight into the ResponseWriter, within the
// noise of a shared 2-core machine: over 10 paired runs of
// go test -run '^$' -bench Render -benchmem -benchtime 3000x ./safetmpl/,
// the median safetmpl/html-template ratio was 1.027 serial and 1.009
// with both cores rendering (best runs 130 µs against 137 µs). It
// allocates less, 1071 allocations and 22.2 KB per page against 1138 and
// 24.7 KB, because safetmpl's text escaper takes one argument where
// html/template's is variadic; the page buffer comes from a pool.
// Loading the same two-file set with New takes about 0.5 ms (escaping
// and checks included) against 0.03 ms for html/template's parse, which
// leaves escaping to the first execution; InsecureDevReload pays it on
// every request.
package safetmpl

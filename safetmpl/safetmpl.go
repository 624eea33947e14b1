package safetmpl

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	ttemplate "text/template"
	"text/template/parse"

	"github.com/microcosm-cc/bluemonday"

	"github.com/stormcellar/stormcellar/httperr"
	"github.com/stormcellar/stormcellar/internal/reqstate"
)

// Options configure a [Set]. The zero value (with FS or Consts set) is the
// safe setting: no actions in scripts or styles, the bluemonday UGC policy
// for sanitised HTML, pages of at most 4 MiB, templates parsed once.
type Options struct {
	// FS holds the template files, usually an [embed.FS] (use [fs.Sub] to
	// strip its directory prefix). Templates are named by their
	// slash-separated path in FS, so admin/index.html and index.html are
	// two pages. The FS must be part of the program or its deployment:
	// never build one from request data. Default nil: templates come only
	// from Consts.
	FS fs.FS
	// Consts are templates written as constants in the program ([Const]).
	// They join the files of FS under their names.
	Consts []ConstFile
	// Pages are [path.Match] patterns (no "**": one per directory level)
	// naming the page templates, the ones
	// [Set.Render] can render. Each pattern must match at least one
	// template. Default: every file whose name ends in .html, .htm,
	// .gohtml or .tmpl, except those matched by Shared.
	Pages []string
	// Shared are [path.Match] patterns naming templates parsed into every
	// page, such as layouts and partials. A page may redefine a template
	// a shared file defines (the {{block}} layout pattern); two shared
	// files may not define the same name. Default none.
	Shared []string
	// Funcs are extra template functions. Their names must not start
	// with '_' or shadow a builtin (html, js, urlquery, print…) or a
	// safetmpl function (island, sanitize…). A function that returns html/template's typed
	// strings (template.HTML…) gets them escaped as text: return [HTML]
	// from [Set.Sanitize] or [ConstHTML] for markup. Default none.
	Funcs template.FuncMap
	// Sanitizer turns untrusted markup into safe markup for
	// [Set.Sanitize] and the {{sanitize}} function. Default
	// bluemonday.UGCPolicy(), which keeps formatting, links and images
	// and removes scripts, styles, event handlers and unsafe URLs.
	Sanitizer Sanitizer
	// XSRFField is the form field name that {{xsrfField}} writes; it must
	// be the name the XSRF middleware reads. Default "_xsrf" (Tornado's).
	XSRFField string
	// MaxPageSize bounds a rendered page in bytes; a larger one fails
	// with a 500 instead of being buffered. Default 4 MiB.
	MaxPageSize int
	// Logger receives one Warn record at construction for each Insecure
	// option that is on. Request failures are logged by httperr. If nil,
	// slog.Default() is used.
	Logger *slog.Logger

	// InsecureAllowScriptActions allows actions whose output lands in
	// JavaScript (inside <script>, on* attributes) and in the attributes
	// of <script> and <base> tags, escaped by html/template's JavaScript
	// escapers, whose history of bypasses is why this is off. Actions in
	// JS template literals, regular expressions and the values of SVG
	// animations stay refused. Prefer {{island}}. Default off.
	InsecureAllowScriptActions bool
	// InsecureAllowStyleActions allows actions whose output lands in CSS
	// (<style>, style attributes), escaped by html/template's CSS
	// filters. Default off.
	InsecureAllowStyleActions bool
	// InsecureDevReload re-reads and re-parses every template on every
	// render, so edits to files in FS show without a restart. It is for
	// local development only: each request pays a full parse, and a
	// template error becomes a 500 at request time instead of failing
	// [New]. Default off: templates are parsed once, by New.
	InsecureDevReload bool
}

// Sanitizer cleans untrusted markup; *bluemonday.Policy implements it.
type Sanitizer interface {
	Sanitize(string) string
}

// Set is a parsed, checked set of page templates. It is safe for
// concurrent use by multiple goroutines.
type Set struct {
	opts      Options
	pol       policy
	funcs     template.FuncMap
	stubs     template.FuncMap
	sanitizer Sanitizer
	fieldOpen []byte // <input type="hidden" name="…" value="
	maxPage   int
	cur       *compiled
	pool      sync.Pool
	hdrType   []string
	hdrSniff  []string
	hdrStore  []string
}

type compiled struct {
	pages map[string]*template.Template
	marks *markers
}

const defaultMaxPage = 4 << 20

// builtins are text/template's predefined functions; Options.Funcs may
// not replace them (a replaced html or urlquery would change escaping).
var builtins = [...]string{"and", "call", "html", "index", "slice", "js", "len", "not", "or",
	"print", "printf", "println", "urlquery", "eq", "ge", "gt", "le", "lt", "ne"}

// New reads, parses and checks every template, and returns the set, or an
// error naming each file, line and action it refuses. A set never parses
// again unless InsecureDevReload is on.
func New(opts Options) (*Set, error) {
	s := &Set{
		opts:      opts,
		pol:       policy{allowScript: opts.InsecureAllowScriptActions, allowStyle: opts.InsecureAllowStyleActions},
		sanitizer: opts.Sanitizer,
		maxPage:   opts.MaxPageSize,
		hdrType:   []string{"text/html; charset=utf-8"},
		hdrSniff:  []string{"nosniff"},
		hdrStore:  []string{"no-store"},
	}
	s.opts.Consts = slices.Clone(opts.Consts)
	s.opts.Pages = slices.Clone(opts.Pages)
	s.opts.Shared = slices.Clone(opts.Shared)
	if s.sanitizer == nil {
		s.sanitizer = bluemonday.UGCPolicy()
	}
	switch {
	case s.maxPage == 0:
		s.maxPage = defaultMaxPage
	case s.maxPage < 0:
		return nil, fmt.Errorf("%w: MaxPageSize %d is negative", ErrConfig, s.maxPage)
	}
	field := opts.XSRFField
	if field == "" {
		field = "_xsrf"
	}
	if !validField(field) {
		return nil, fmt.Errorf("%w: XSRFField %q: use 1-64 ASCII letters, digits, '-', '_' or '.'", ErrConfig, field)
	}
	s.fieldOpen = []byte(`<input type="hidden" name="` + field + `" value="`)
	if err := s.makeFuncs(opts.Funcs); err != nil {
		return nil, err
	}
	c, err := s.compile()
	if err != nil {
		return nil, err
	}
	s.cur = c
	s.pool.New = func() any { return &pageBuffer{buf: make([]byte, 0, 8<<10)} }

	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	for _, o := range []struct {
		on   bool
		name string
	}{
		{opts.InsecureAllowScriptActions, "InsecureAllowScriptActions"},
		{opts.InsecureAllowStyleActions, "InsecureAllowStyleActions"},
		{opts.InsecureDevReload, "InsecureDevReload"},
	} {
		if o.on {
			logger.LogAttrs(context.Background(), slog.LevelWarn, "safetmpl: insecure option on",
				slog.String("option", o.name))
		}
	}
	return s, nil
}

func validField(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(isLetter(c) || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func validIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(isLetter(c) || c == '_' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

var errDryRun = errors.New("safetmpl: construction-time escape pass")

// makeFuncs builds the function map: the caller's functions, safetmpl's
// and safetmpl's escapers, and a stub of each for the escaping pass.
func (s *Set) makeFuncs(user template.FuncMap) error {
	fm := template.FuncMap{}
	for name, fn := range user {
		switch {
		case !validIdent(name) || strings.HasPrefix(name, "_"):
			return fmt.Errorf("%w: function name %q: use an identifier that does not start with '_'", ErrConfig, name)
		case slices.Contains(builtins[:], name):
			return fmt.Errorf("%w: function %q would replace a builtin", ErrConfig, name)
		case isRequestFunc(name) || name == fnIsland || name == fnSanitize:
			return fmt.Errorf("%w: function %q would replace a safetmpl function", ErrConfig, name)
		}
		t := reflect.TypeOf(fn)
		if t == nil || t.Kind() != reflect.Func {
			return fmt.Errorf("%w: Funcs[%q] is not a function", ErrConfig, name)
		}
		if n := t.NumOut(); n != 1 && (n != 2 || t.Out(1) != errorType) {
			return fmt.Errorf("%w: Funcs[%q] must return one value, or a value and an error", ErrConfig, name)
		}
		fm[name] = fn
	}
	for _, h := range [...]string{fnNonce, fnXSRFField, fnXSRFToken} {
		fm[h] = func() (string, error) {
			return "", fmt.Errorf("%w: {{%s}} reached without being replaced", ErrReserved, h)
		}
	}
	fm[fnIsland] = Island
	fm[fnSanitize] = func(v any) HTML {
		str, _ := stringify(v)
		return s.Sanitize(str)
	}
	fm[ownHTML] = escapeHTMLText
	fm[ownURLFilter] = filterURL
	fm[ownUntyped] = untyped
	s.funcs = fm

	s.stubs = template.FuncMap{}
	for name, fn := range fm {
		s.stubs[name] = reflect.MakeFunc(reflect.TypeOf(fn), func([]reflect.Value) []reflect.Value {
			panic(errDryRun)
		}).Interface()
	}
	return nil
}

// compile reads and builds every page.
func (s *Set) compile() (*compiled, error) {
	src, err := collect(&s.opts)
	if err != nil {
		return nil, err
	}
	base := template.New("").Funcs(s.funcs)
	definedIn := map[string]string{}
	var errs []error
	for _, f := range src.shared {
		// Parse alone first to see which names the file defines.
		alone, err := template.New(f.name).Funcs(s.funcs).Parse(f.text)
		if err != nil {
			return nil, fmt.Errorf("safetmpl: %w", err)
		}
		for _, t := range alone.Templates() {
			if t.Tree == nil || parseEmpty(t) {
				continue
			}
			if prev, dup := definedIn[t.Name()]; dup && prev != f.name {
				return nil, fmt.Errorf("%w: template %q is defined in both %s and %s", ErrConfig, t.Name(), prev, f.name)
			}
			definedIn[t.Name()] = f.name
		}
		if _, err := base.New(f.name).Parse(f.text); err != nil {
			return nil, fmt.Errorf("safetmpl: %w", err)
		}
	}
	errs = append(errs, checkIdentifiers(base)...)
	if len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	c := &compiled{pages: map[string]*template.Template{}, marks: newMarkers()}
	for _, p := range src.pages {
		t, err := s.buildPage(base, p, c.marks, true)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.pages[p.name] = t
	}
	if len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	if err := s.probe(c.marks); err != nil {
		return nil, err
	}
	return c, nil
}

func parseEmpty(t *template.Template) bool {
	for _, n := range t.Tree.Root.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			if strings.TrimSpace(string(n.Text)) != "" {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// joinErrors joins errors, dropping repeats (a shared template's problem
// is found once per page that uses it).
func joinErrors(errs []error) error {
	seen := map[string]bool{}
	var out []error
	for _, e := range errs {
		if k := e.Error(); !seen[k] {
			seen[k] = true
			out = append(out, e)
		}
	}
	if len(out) == 1 {
		return out[0]
	}
	return errors.Join(out...)
}

// maxDerive bounds the rounds of pre-declaring the copies html/template
// makes of templates called outside HTML text.
const maxDerive = 16

// buildPage parses one page with the shared templates, lets html/template
// escape it, then checks and rewrites every template the page can reach.
//
// html/template escapes a template called from a context other than HTML
// text (an attribute, a <textarea>…) by copying it under a derived name
// that its API never returns, so the copy could not be checked. When the
// walk meets such a call, buildPage starts again with a template of that
// exact name declared up front: html/template then escapes that one in
// place, where the walk can reach it.
func (s *Set) buildPage(base *template.Template, p sourceFile, marks *markers, checkIDs bool) (*template.Template, error) {
	var derived []string
	for round := 0; ; round++ {
		ns, err := base.Clone()
		if err != nil {
			return nil, fmt.Errorf("safetmpl: %w", err)
		}
		t, err := ns.New(p.name).Parse(p.text)
		if err != nil {
			return nil, fmt.Errorf("safetmpl: %w", err)
		}
		if round == 0 && checkIDs {
			var errs []error
			for _, x := range ns.Templates() {
				if x.Tree != nil && x.Tree.ParseName == p.name {
					errs = append(errs, checkIdentifiers(x)...)
				}
			}
			if len(errs) > 0 {
				return nil, joinErrors(errs)
			}
		}
		for _, d := range derived {
			orig := ns.Lookup(d[:strings.Index(d, derivedMark)])
			if orig == nil || orig.Tree == nil {
				return nil, fmt.Errorf("%w: cannot find the template html/template derived %q from", ErrConfig, d)
			}
			if _, err := ns.AddParseTree(d, orig.Tree.Copy()); err != nil {
				return nil, fmt.Errorf("safetmpl: %w", err)
			}
		}
		// Escape now, at construction, without running the program's
		// functions: they are stubbed, the data is nil and the writer
		// refuses the first byte.
		t.Funcs(s.stubs)
		err = t.Execute(refuseWriter{}, nil)
		t.Funcs(s.funcs)
		var execErr ttemplate.ExecError
		if err != nil && !errors.Is(err, errDryRun) && !errors.As(err, &execErr) {
			return nil, fmt.Errorf("safetmpl: %w", err)
		}
		c := &checker{ns: ns, pol: s.pol, marks: marks, done: map[string]*walked{}, unknown: map[string]bool{}}
		var sc scanner
		c.walkTemplate(p.name, &sc)
		if len(c.errs) > 0 {
			return nil, joinErrors(c.errs)
		}
		if len(c.unknown) == 0 {
			return t, nil
		}
		if round >= maxDerive {
			return nil, fmt.Errorf("%w: %s: templates called in too many contexts", ErrConfig, p.name)
		}
		for d := range c.unknown {
			if !slices.Contains(derived, d) {
				derived = append(derived, d)
			}
		}
	}
}

type refuseWriter struct{}

func (refuseWriter) Write([]byte) (int, error) { return 0, errDryRun }

// probe checks, once per compile, that text/template writes a text node
// as the node's own bytes, which the markers rely on. If a future
// text/template copied them, New fails instead of printing a marker.
func (s *Set) probe(marks *markers) error {
	base := template.New("").Funcs(s.funcs)
	t, err := s.buildPage(base, sourceFile{"probe", `<script nonce="{{nonce}}"></script>`}, marks, false)
	if err != nil {
		return err
	}
	b := &pageBuffer{max: 1 << 10, marks: marks, st: &reqstate.State{Nonce: "n0nce"}}
	if err := t.Execute(b, nil); err != nil || string(b.buf) != `<script nonce="n0nce"></script>` {
		return fmt.Errorf("%w: text/template no longer writes text nodes as their own bytes (got %q, %v)",
			ErrConfig, b.buf, err)
	}
	return nil
}

// Pages returns the names of the pages, sorted.
func (s *Set) Pages() []string {
	names := make([]string, 0, len(s.cur.pages))
	for n := range s.cur.pages {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Sanitize returns untrusted markup cleaned by the set's sanitiser, as
// [HTML] that templates print without escaping. Templates can call it as
// {{sanitize .Comment}}.
func (s *Set) Sanitize(untrusted string) HTML {
	return HTML{s: s.sanitizer.Sanitize(untrusted)}
}

// Render renders the page with data and sends it with status 200. See
// [Set.RenderStatus].
func (s *Set) Render(w http.ResponseWriter, r *http.Request, page string, data any) {
	s.RenderStatus(w, r, http.StatusOK, page, data)
}

// RenderStatus renders the page with data into a buffer, then sends it
// with the given status, Content-Type: text/html; charset=utf-8,
// X-Content-Type-Options: nosniff and its Content-Length (no body for
// HEAD). A page that printed an XSRF token is also sent with
// Cache-Control: no-store, so no shared cache keeps one user's token.
//
// If anything fails — an unknown page, an execution error, a missing XSRF
// middleware, a page over MaxPageSize, a bad status — nothing of the page
// is sent: the error goes to [httperr.Write] as a 500, logged with its
// cause. The client never receives half a page. (If the handler itself
// had already started the response, httperr can send nothing either, and
// the connection is aborted with panic(http.ErrAbortHandler), as
// [httperr.HandlerFunc] does.)
func (s *Set) RenderStatus(w http.ResponseWriter, r *http.Request, status int, page string, data any) {
	err := s.render(w, r, status, page, data)
	if err == nil {
		return
	}
	st := reqstate.From(r.Context())
	committed := st != nil && st.Writer().Committed()
	httperr.Write(w, r, httperr.Internal(err))
	if committed && !st.Writer().Hijacked() {
		panic(http.ErrAbortHandler)
	}
}

func (s *Set) render(w http.ResponseWriter, r *http.Request, status int, page string, data any) error {
	if status < 200 || status > 599 || status == http.StatusNoContent || status == http.StatusNotModified {
		return fmt.Errorf("%w: %d", ErrBadStatus, status)
	}
	c := s.cur
	if s.opts.InsecureDevReload {
		var err error
		if c, err = s.compile(); err != nil {
			return fmt.Errorf("safetmpl: reloading templates: %w", err)
		}
	}
	t := c.pages[page]
	if t == nil {
		return fmt.Errorf("%w: %q", ErrNoSuchPage, page)
	}
	b := s.pool.Get().(*pageBuffer)
	b.max, b.marks, b.st, b.fieldOpen = s.maxPage, c.marks, reqstate.From(r.Context()), s.fieldOpen
	defer s.release(b)
	if err := t.Execute(b, data); err != nil {
		return fmt.Errorf("safetmpl: rendering %s: %w", page, err)
	}
	h := w.Header()
	h["Content-Type"] = s.hdrType[:1:1]
	h["X-Content-Type-Options"] = s.hdrSniff[:1:1]
	h["Content-Length"] = []string{strconv.Itoa(len(b.buf))}
	if b.tokenUsed {
		h["Cache-Control"] = s.hdrStore[:1:1]
	}
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b.buf)
	}
	return nil
}

// maxPooled is the largest buffer kept for reuse.
const maxPooled = 256 << 10

func (s *Set) release(b *pageBuffer) {
	if cap(b.buf) > maxPooled {
		return
	}
	b.reset()
	s.pool.Put(b)
}

// Handler returns a handler that renders page with the value data
// returns. If data is nil the page gets nil; if data returns an error, it
// is written with [httperr.Write] (return an [*httperr.HTTPError] for a
// 404 or 403). Handler panics if the set has no such page, when the route
// is registered.
func (s *Set) Handler(page string, data func(*http.Request) (any, error)) http.Handler {
	if s.cur.pages[page] == nil {
		panic("safetmpl: Handler: no page " + strconv.Quote(page))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v any
		if data != nil {
			var err error
			if v, err = data(r); err != nil {
				httperr.Write(w, r, err)
				return
			}
		}
		s.Render(w, r, page, v)
	})
}

package safetmpl

import (
	"errors"
	"html/template"
	"slices"
	"testing"
	"text/template/parse"
)

// TestBranchKeepsTagFactsOfBothArms walks templates whose arms end in
// different start tags or attributes, written with the escaper
// html/template would add. Recent html/template releases, which follow
// <meta> tags for their url= filter, refuse arms that end in a <meta>
// tag and in another tag, so New does not get there; earlier ones accept
// them, and the checker must then count the <meta> arm, whichever arm
// comes first.
func TestBranchKeepsTagFactsOfBothArms(t *testing.T) {
	t.Parallel()
	const v = `{{. | _html_template_attrescaper}}`
	cases := []struct {
		name string
		src  string
		want []error
	}{
		{"meta in else, content before http-equiv", `{{if .A}}<p{{else}}<meta{{end}} content="` + v + `" http-equiv="refresh">`, []error{ErrMarkupContext}},
		{"meta in if, content before http-equiv", `{{if .A}}<meta{{else}}<p{{end}} content="` + v + `" http-equiv="refresh">`, []error{ErrMarkupContext}},
		{"meta in else, http-equiv first", `{{if .A}}<p{{else}}<meta{{end}} http-equiv="refresh" content="` + v + `">`, []error{ErrMarkupContext}},
		{"meta in else, name", `{{if .A}}<p{{else}}<meta{{end}} name="description" content="` + v + `">`, nil},
		{"http-equiv in another arm than content", `<meta content="{{if .A}}` + v + `{{end}}"{{if .B}} http-equiv="refresh"{{end}}>`, []error{ErrMarkupContext}},
		{"two pending actions", `<meta content="` + v + v + `" http-equiv>`, []error{ErrMarkupContext, ErrMarkupContext}},
		{"animation in else", `<svg>{{if .A}}<g{{else}}<animate{{end}} to="` + v + `"/></svg>`, []error{ErrScriptContext}},
		{"pending does not reach the next tag", `<meta content="` + v + `"><meta http-equiv="refresh" content="5">`, nil},
		// html/template refuses this; were it not to, the walk would go on
		// outside the tag the else arm is still in: the pending refusal fires.
		{"one arm ends the tag, the other not", `<meta content="` + v + `"{{if .A}}>{{end}}`, []error{ErrMarkupContext}},
		{"refused tag, then a clean one", `<meta content="` + v + `" http-equiv="refresh"><meta content="` + v + `">`, []error{ErrMarkupContext}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			trees, err := parse.Parse("p", tc.src, "", "", map[string]any{"_html_template_attrescaper": true})
			if err != nil {
				t.Fatal(err)
			}
			tree := trees["p"]
			c := &checker{done: map[string]*walked{}, unknown: map[string]bool{}}
			var sc scanner
			c.list(tree, tree.Root, &sc)
			if len(c.errs) != len(tc.want) {
				t.Fatalf("got %d refusals, want %d: %v", len(c.errs), len(tc.want), c.errs)
			}
			for i, err := range c.errs {
				var e *Error
				if !errors.Is(err, tc.want[i]) || !errors.As(err, &e) || e.Line != 1 || e.Col < 1 {
					t.Errorf("refusal %d: %v, want %v with a position", i, err, tc.want[i])
				}
			}
			if sc.st != stText || sc.pend != nil || sc.fired != nil || sc.equiv || sc.tagMay != 0 || sc.attrMay != 0 {
				t.Errorf("tag facts outlive the tag: %+v", sc)
			}
		})
	}
}

// TestResumeCarriesPendingRefusals walks a partial twice from the same
// state with different pending refusals: the second call resumes the
// first walk's end, and must keep or fire its own refusals as the first
// walk did with its own.
func TestResumeCarriesPendingRefusals(t *testing.T) {
	t.Parallel()
	const (
		a = `{{.A | _html_template_attrescaper}}`
		b = `{{.B | _html_template_attrescaper}}`
		c = `{{.C | _html_template_attrescaper}}`
	)
	cases := []struct {
		name string
		src  string
		want []string // the actions refused, in order
	}{
		{"partial ends the tag", `{{define "end"}}" http-equiv="refresh">{{end}}` +
			`<meta content="/` + a + `{{template "end"}}<meta content="/` + b + `{{template "end"}}`, []string{"{{.A}}", "{{.B}}"}},
		{"partial ends the tag without http-equiv", `{{define "end"}}">{{end}}` +
			`<meta content="/` + a + `{{template "end"}}<meta content="/` + b + `{{template "end"}} http-equiv>`, nil},
		{"partial leaves the tag open", `{{define "mid"}}x{{end}}` +
			`<meta content="/` + a + `{{template "mid"}}"><meta content="/` + b + `{{template "mid"}}" http-equiv>`, []string{"{{.B}}"}},
		{"partial adds its own", `{{define "more"}}` + c + `{{end}}` +
			`<meta content="/` + a + `{{template "more" .}}"><meta content="/` + b + `{{template "more" .}}" http-equiv>`, []string{"{{.B}}", "{{.C}}"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns, err := template.New("p").Funcs(template.FuncMap{"_html_template_attrescaper": func(any) string { return "" }}).Parse(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			c := &checker{ns: ns, done: map[string]*walked{}, unknown: map[string]bool{}}
			var sc scanner
			c.walkTemplate("p", &sc)
			var got []string
			for _, err := range c.errs {
				var e *Error
				if !errors.As(err, &e) || !errors.Is(err, ErrMarkupContext) {
					t.Fatalf("refusal %v is not an *Error wrapping ErrMarkupContext", err)
				}
				got = append(got, e.Action)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("refused %v, want %v", got, tc.want)
			}
		})
	}
}

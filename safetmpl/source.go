package safetmpl

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// ConstFile is a template written as a constant in the program, made by
// [Const]. It takes part in the set exactly as a file of Options.FS with the
// same name would.
type ConstFile struct {
	name, text string
}

// Const returns a template file whose name and text are compile-time
// constants. Only untyped string constants compile as arguments, so a
// template can never be built from a value computed at run time, such as
// request data:
//
//	safetmpl.Const("hello.html", `<p>Hello, {{.}}</p>`) // compiles
//	safetmpl.Const("hello.html", r.FormValue("t"))     // does not
func Const(name, text stringConstant) ConstFile {
	return ConstFile{name: string(name), text: string(text)}
}

// maxFiles bounds the walk of Options.FS: a set is a directory of
// templates, not a file system.
const maxFiles = 10000

// templateExts are the extensions of the files that are pages when
// Options.Pages is empty.
var templateExts = [...]string{".html", ".htm", ".gohtml", ".tmpl"}

type sourceFile struct {
	name, text string
}

// sources is the set's input: shared files and page files, each sorted by
// name.
type sources struct {
	shared, pages []sourceFile
}

// collect reads every template the options name. It does not parse them.
func collect(opts *Options) (*sources, error) {
	var names []string
	if opts.FS != nil {
		err := fs.WalkDir(opts.FS, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !d.Type().IsRegular() && d.Type()&fs.ModeSymlink == 0 {
				return nil
			}
			if len(names) >= maxFiles {
				return fmt.Errorf("%w: FS holds more than %d files; pass the template directory with fs.Sub", ErrConfig, maxFiles)
			}
			names = append(names, p)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("safetmpl: reading templates: %w", err)
		}
	}
	inFS := make(map[string]bool, len(names))
	for _, n := range names {
		inFS[n] = true
	}
	consts := map[string]string{}
	for _, c := range opts.Consts {
		if !fs.ValidPath(c.name) || c.name == "." {
			return nil, fmt.Errorf("%w: Const name %q is not a valid slash-separated relative path", ErrConfig, c.name)
		}
		if _, dup := consts[c.name]; dup {
			return nil, fmt.Errorf("%w: two Const templates named %q", ErrConfig, c.name)
		}
		if inFS[c.name] {
			return nil, fmt.Errorf("%w: Const template %q has the name of a file in FS", ErrConfig, c.name)
		}
		consts[c.name] = c.text
		names = append(names, c.name)
	}
	slices.Sort(names)

	shared, err := match(names, opts.Shared, "Shared")
	if err != nil {
		return nil, err
	}
	var pages map[string]bool
	if len(opts.Pages) > 0 {
		if pages, err = match(names, opts.Pages, "Pages"); err != nil {
			return nil, err
		}
	} else {
		pages = map[string]bool{}
		for _, n := range names {
			for _, ext := range templateExts {
				if strings.HasSuffix(n, ext) {
					pages[n] = true
				}
			}
		}
	}

	read := func(name string) (string, error) {
		if text, ok := consts[name]; ok {
			return text, nil
		}
		b, err := fs.ReadFile(opts.FS, name)
		if err != nil {
			return "", fmt.Errorf("safetmpl: reading templates: %w", err)
		}
		return string(b), nil
	}
	src := &sources{}
	for _, n := range names {
		switch {
		case shared[n]:
			text, err := read(n)
			if err != nil {
				return nil, err
			}
			src.shared = append(src.shared, sourceFile{n, text})
		case pages[n]:
			text, err := read(n)
			if err != nil {
				return nil, err
			}
			src.pages = append(src.pages, sourceFile{n, text})
		}
	}
	if len(src.pages) == 0 {
		return nil, fmt.Errorf("%w: no page templates found (FS and Consts hold %d files)", ErrConfig, len(names))
	}
	return src, nil
}

// match returns the names matched by any of the path.Match patterns. A
// malformed pattern, or one that matches nothing, is an error: a typo
// must not silently drop templates.
func match(names, patterns []string, field string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, p := range patterns {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("%w: %s pattern %q: %v", ErrConfig, field, p, err)
		}
		found := false
		for _, n := range names {
			if ok, _ := path.Match(p, n); ok {
				out[n] = true
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("%w: %s pattern %q matches no template", ErrConfig, field, p)
		}
	}
	return out, nil
}

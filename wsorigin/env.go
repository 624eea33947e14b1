package wsorigin

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// ParseList splits a list of origins separated by commas, spaces, tabs or
// newlines (empty items are skipped) and validates every entry as
// [Options.Allowed] would. It returns the entries, normalised to the form
// browsers send, or an error joining one [*PatternError] per bad entry,
// each naming source and the entry's 1-based position, so that a
// deployment sees every mistake at once.
func ParseList(source, list string) ([]string, error) {
	items := strings.FieldsFunc(list, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
	})
	out := make([]string, 0, len(items))
	var errs []error
	for i, s := range items {
		pat, err := parsePattern(fmt.Sprintf("%s entry %d", source, i+1), s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if pat.wildcard {
			o := pat.Origin
			o.Host = "*." + o.Host
			out = append(out, o.String())
		} else {
			out = append(out, pat.Origin.String())
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// FromEnv reads the environment variable name and parses it with
// [ParseList]; errors name the variable ("$WS_ORIGINS entry 2 …"). An
// unset or empty variable yields an empty list: same-origin only.
func FromEnv(name string) ([]string, error) {
	return ParseList("$"+name, os.Getenv(name))
}

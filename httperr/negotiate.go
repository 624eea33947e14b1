package httperr

import "strings"

// Format is the body format of an error response.
type Format uint8

// The formats [Write] can send.
const (
	FormatText Format = iota // text/plain; the answer to */* and to no Accept
	FormatJSON               // application/json, or any application/*+json
	FormatHTML               // text/html
)

// String returns the format's media type.
func (f Format) String() string {
	switch f {
	case FormatJSON:
		return "application/json"
	case FormatHTML:
		return "text/html"
	}
	return "text/plain"
}

// contentType returns the Content-Type header for f.
func (f Format) contentType() string { return f.String() + "; charset=utf-8" }

// Limits on how much of an Accept header is looked at. A longer header is
// not an error: the ranges past the limit are ignored.
const (
	maxAcceptBytes  = 1024
	maxAcceptRanges = 32
)

// Negotiate picks the error-body format for an Accept header value.
//
// Each format gets the quality of the most specific media range that
// matches it (an exact type beats type/*, which beats */*). The highest
// quality wins; between equals, an exact match beats a wildcard and then
// plain text beats JSON beats HTML. With no Accept header, only wildcards,
// or nothing acceptable, the answer is plain text: an error body is sent
// whatever the client accepts, and plain text is the one every client can
// show safely. Only the first 1 KiB and 32 ranges are read, so the cost is
// bounded whatever the header's size.
func Negotiate(accept string) Format {
	if len(accept) > maxAcceptBytes {
		accept = accept[:maxAcceptBytes]
	}
	var best [3]match // indexed by Format
	for n := 0; accept != "" && n < maxAcceptRanges; n++ {
		var rng string
		rng, accept, _ = strings.Cut(accept, ",")
		mt, params, _ := strings.Cut(rng, ";")
		q, ok := quality(params)
		if !ok {
			continue
		}
		typ, sub, ok := strings.Cut(strings.TrimSpace(mt), "/")
		if !ok {
			continue
		}
		typ, sub = strings.TrimSpace(typ), strings.TrimSpace(sub)
		for f := range best {
			if spec := specificity(Format(f), typ, sub); spec > best[f].spec {
				best[f] = match{spec: spec, q: q}
			}
		}
	}
	winner, top := FormatText, match{}
	for _, f := range [...]Format{FormatText, FormatJSON, FormatHTML} {
		m := best[f]
		if m.q > top.q || (m.q == top.q && m.spec == exact && top.spec < exact) {
			winner, top = f, m
		}
	}
	if top.q == 0 {
		return FormatText
	}
	return winner
}

type match struct {
	spec int // 0 none, then wildcard levels, then exact
	q    int // quality in thousandths
}

const (
	anyAny  = 1 // */*
	typeAny = 2 // text/*
	exact   = 3 // text/html
)

func specificity(f Format, typ, sub string) int {
	switch {
	case typ == "*" && sub == "*":
		return anyAny
	case f == FormatJSON:
		if !strings.EqualFold(typ, "application") {
			return 0
		}
		if sub == "*" {
			return typeAny
		}
		if strings.EqualFold(sub, "json") || (len(sub) > 5 && strings.EqualFold(sub[len(sub)-5:], "+json")) {
			return exact
		}
	default:
		if !strings.EqualFold(typ, "text") {
			return 0
		}
		if sub == "*" {
			return typeAny
		}
		want := "plain"
		if f == FormatHTML {
			want = "html"
		}
		if strings.EqualFold(sub, want) {
			return exact
		}
	}
	return 0
}

// quality parses the q parameter in thousandths; 1000 when absent. ok is
// false for a malformed q, and the range is then ignored.
func quality(params string) (q int, ok bool) {
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		k, v, _ := strings.Cut(p, "=")
		if !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		return parseQ(strings.TrimSpace(v))
	}
	return 1000, true
}

// parseQ parses an RFC 9110 qvalue: 0[.ddd] or 1[.000].
func parseQ(v string) (int, bool) {
	if v == "" || len(v) > 5 || (v[0] != '0' && v[0] != '1') {
		return 0, false
	}
	q := int(v[0]-'0') * 1000
	if len(v) == 1 {
		return q, true
	}
	if v[1] != '.' {
		return 0, false
	}
	scale := 100
	for _, c := range []byte(v[2:]) {
		if c < '0' || c > '9' {
			return 0, false
		}
		q += int(c-'0') * scale
		scale /= 10
	}
	if q > 1000 {
		return 0, false
	}
	return q, true
}

package middleware

import (
	"bytes"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stormcellar/stormcellar/httperr"
)

// FuzzForwardedProto: the parser agrees with a plain reading of the rule
// (rightmost element of the last header line, trimmed, is "https").
func FuzzForwardedProto(f *testing.F) {
	for _, s := range []string{"https", "http", "http, https", "https, http", " HTTPS\t", "", ",", "https\nhttp", "http\nhttps", "https,", "wss"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		vals := strings.Split(s, "\n")
		last := strings.Split(vals[len(vals)-1], ",")
		want := strings.EqualFold(strings.Trim(last[len(last)-1], " \t"), "https")
		if got := forwardedProtoIsHTTPS(vals); got != want {
			t.Errorf("%q: got %v, want %v", vals, got, want)
		}
	})
}

var inboundIDRE = regexp.MustCompile(`^[A-Za-z0-9._-]{8,64}$`)

// FuzzInboundID: the hand-written check accepts exactly the documented
// format.
func FuzzInboundID(f *testing.F) {
	for _, s := range []string{"proxy-id-123", "abc", strings.Repeat("a", 64), strings.Repeat("a", 65), "id with space",
		`x" level=ERROR`, "<script>alert(1)</script>", "idé-12345678", "550e8400-e29b-41d4-a716-446655440000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := validInboundID(s), inboundIDRE.MatchString(s); got != want {
			t.Errorf("%q: got %v, want %v", s, got, want)
		}
	})
}

// FuzzNormalizeHost: normalised hosts are stable and carry nothing that
// could change a URL's authority.
func FuzzNormalizeHost(f *testing.F) {
	for _, s := range []string{"Example.COM.", "www.example.com", "[2001:DB8::1]", "127.0.0.1", "*.example.com", "a..b", "-a.b", "a-.b",
		"u@example.com", "example.com:443", "fe80::1%eth0", "exämple.com", "a_b.example", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := normalizeHost(s)
		if !ok {
			return
		}
		if again, ok2 := normalizeHost(n); !ok2 || again != n {
			t.Errorf("%q -> %q -> %q, %v", s, n, again, ok2)
		}
		if strings.ContainsAny(n, "/@?#\\ %") || n != strings.ToLower(n) {
			t.Errorf("%q -> %q", s, n)
		}
		if strings.Contains(n, ":") && !strings.HasPrefix(n, "[") {
			t.Errorf("%q -> %q has a port-like colon", s, n)
		}
		u, err := url.Parse("https://" + n + "/")
		if err != nil || u.Host != n {
			t.Errorf("%q -> %q does not survive as a URL host (%v, %q)", s, n, err, u)
		}
	})
}

// FuzzHTTPSRedirect: whatever the Host and request target, the Location
// is https on an allowed host.
func FuzzHTTPSRedirect(f *testing.F) {
	for _, c := range [][2]string{
		{"example.com", "/a?b=1"}, {"evil.example", "/login"}, {"example.com.evil.example", "/"}, {"example.com", "//evil.example/x"},
		{"example.com", `/\evil.example`}, {"example.com", "/%2F%2Fevil.example"}, {"example.com@evil.example", "/"},
		{"", "*"}, {"[2001:db8::1]:80", "/p"}, {"WWW.EXAMPLE.COM:8080", "/?q=%0d%0a"}, {"example.com", "http://evil.example/x"},
	} {
		f.Add(c[0], c[1])
	}
	allowed := []string{"example.com", "www.example.com", "[2001:db8::1]"}
	m, err := NewHTTPSRedirect(HTTPSRedirectOptions{Hosts: allowed})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, host, target string) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		r := &http.Request{Method: http.MethodGet, Host: host, URL: u, RequestURI: target, Header: http.Header{}, RemoteAddr: "192.0.2.1:1"}
		loc := m.location(r)
		lu, err := url.Parse(loc)
		if err != nil {
			t.Fatalf("Location %q does not parse: %v", loc, err)
		}
		if lu.Scheme != "https" || lu.User != nil || !slices.Contains(allowed, lu.Host) || !strings.HasPrefix(lu.EscapedPath(), "/") {
			t.Errorf("host %q target %q -> Location %q", host, target, loc)
		}
		if strings.ContainsAny(loc, "\r\n") {
			t.Errorf("Location %q has a line break", loc)
		}
	})
}

// FuzzMaxBytes: whatever the body, limit and read pattern, the handler
// never gets more than the limit, gets exactly a prefix of the body, and
// the status is 413 exactly when the body is over the limit.
func FuzzMaxBytes(f *testing.F) {
	f.Add([]byte("hello"), uint16(10), uint8(3), false)
	f.Add(bytes.Repeat([]byte("x"), 1025), uint16(1024), uint8(0), true)
	f.Add(bytes.Repeat([]byte("x"), 1024), uint16(1024), uint8(255), true)
	f.Add([]byte{}, uint16(0), uint8(1), true)
	f.Fuzz(func(t *testing.T, body []byte, limit uint16, chunk uint8, chunked bool) {
		lim := int64(limit) + 1 // Limit 0 would mean the 1 MiB default
		var got []byte
		var readErr error
		h := httperr.Install(httperr.Options{Logger: discardLogger()})(MaxBytes(MaxBytesOptions{Limit: lim})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			buf := make([]byte, int(chunk)+1)
			for {
				n, err := r.Body.Read(buf)
				got = append(got, buf[:n]...)
				if err != nil {
					if err != io.EOF {
						readErr = err
					}
					break
				}
			}
			_, _ = io.WriteString(w, "ok")
		})))
		var rd io.Reader = bytes.NewReader(body)
		if chunked {
			rd = hideLength{rd}
		}
		req := httptest.NewRequest(http.MethodPost, "/", rd)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		over := int64(len(body)) > lim
		if int64(len(got)) > lim || !bytes.HasPrefix(body, got) {
			t.Fatalf("handler got %d bytes (limit %d), prefix=%v", len(got), lim, bytes.HasPrefix(body, got))
		}
		if over != (rec.Code == 413) || (!over && (rec.Code != 200 || readErr != nil || len(got) != len(body))) {
			t.Fatalf("len %d limit %d chunked %v: status %d, read error %v, got %d", len(body), lim, chunked, rec.Code, readErr, len(got))
		}
	})
}

// FuzzMaxBytesDecompress: random bytes sent as gzip or deflate never make
// the handler get more than the limit, and the answer is one of 200, 400
// or 413.
func FuzzMaxBytesDecompress(f *testing.F) {
	f.Add(gzipped(f, []byte("hello")), uint16(100), true)
	f.Add(gzipped(f, make([]byte, 100_000)), uint16(1000), true)
	f.Add(deflated(f, make([]byte, 100_000)), uint16(1000), false)
	f.Add([]byte("\x1f\x8b\x08\x00garbage"), uint16(100), true)
	f.Add(bytes.Repeat(gzipped(f, nil), 100), uint16(500), true)
	f.Fuzz(func(t *testing.T, body []byte, limit uint16, gz bool) {
		lim := int64(limit) + 1
		var n int64
		h := httperr.Install(httperr.Options{Logger: discardLogger()})(MaxBytes(MaxBytesOptions{Limit: lim, Decompress: true})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var err error
			n, err = io.Copy(io.Discard, r.Body)
			if err != nil {
				httperr.Write(w, r, err)
				return
			}
			_, _ = io.WriteString(w, "ok")
		})))
		req := httptest.NewRequest(http.MethodPost, "/", hideLength{bytes.NewReader(body)})
		req.Header.Set("Content-Encoding", map[bool]string{true: "gzip", false: "deflate"}[gz])
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if n > lim {
			t.Fatalf("handler got %d decompressed bytes, limit %d", n, lim)
		}
		switch rec.Code {
		case 200, 400, 413:
		default:
			// A truncated stream is io.ErrUnexpectedEOF, which a handler
			// passing it to httperr answers 500; anything else is a bug.
			if rec.Code != 500 {
				t.Fatalf("status %d", rec.Code)
			}
		}
	})
}

// FuzzMultipartParts: the streaming delimiter count equals a plain count
// of (overlapping) occurrences, however the body is split into reads.
func FuzzMultipartParts(f *testing.F) {
	body, ct := multipartBody(f, 5, "")
	f.Add(body, strings.TrimPrefix(ct, "multipart/form-data; boundary="), uint16(7))
	f.Add([]byte("-----a---a--a"), "-a", uint16(3))
	f.Add([]byte("--x--x--x"), "x", uint16(1))
	f.Add([]byte("------"), "-", uint16(2))
	f.Fuzz(func(t *testing.T, body []byte, boundary string, split uint16) {
		if boundary == "" || len(boundary) > maxBoundary {
			return
		}
		l := &bodyLimiter{maxParts: 1 << 30}
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		r.Header.Set("Content-Type", `multipart/form-data; boundary="`+strings.ReplaceAll(boundary, `"`, ``)+`"`)
		l.setBoundary(r)
		if l.delim == nil {
			return // not a boundary the MIME parser accepts
		}
		d := string(l.delim)
		want := 0
		for i := range body {
			if strings.HasPrefix(string(body[i:]), d) {
				want++
			}
		}
		cut := int(split) % (len(body) + 1)
		l.countParts(body[:cut])
		l.countParts(body[cut:])
		if l.delims != want {
			t.Errorf("delimiter %q in %q: counted %d, want %d", d, body, l.delims, want)
		}
	})
}

// FuzzMultipartContentType: MaxBytes takes a Content-Type for multipart
// whenever net/http does. multipartType is exactly the media type
// mime.ParseMediaType reads (lowercased and trimmed with Unicode rules)
// starting with "multipart/"; it differs from ParseMediaType's answer only
// where ParseMediaType refuses the value. Parts are counted exactly when
// that parse gives a multipart type and a boundary of 1 to 70 bytes, with
// that boundary; a longer one is refused.
func FuzzMultipartContentType(f *testing.F) {
	for _, s := range []string{
		"multipart/form-data; boundary=b", "\u00a0multipart/form-data; boundary=b", "MULTİPART/form-data; boundary=b",
		"\u0085\u3000Multipart/Mixed; boundary=b", " \t\v\f\r\nmultipart/x;boundary=b", "multipart/", "multipart", "multipart/;boundary=b",
		"multipart/x; boundary=b; boundary=c", "multipart/x; boundary=", `multipart/x; boundary=""`, "multipart/x; =b",
		"\xa0multipart/x; boundary=b", "\xc2multipart/x; boundary=b", "multipart\u2000/x", "\u200bmultipart/x; boundary=b",
		"text/plain", "application/json", "", ";multipart/x", "multİpart/form-data; boundary*0=a; boundary*1=b",
		"multipart/form-data; boundary=" + strings.Repeat("b", maxBoundary+1),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got := multipartType(v)
		base, _, _ := strings.Cut(v, ";")
		if want := strings.HasPrefix(strings.TrimSpace(strings.ToLower(base)), "multipart/"); got != want {
			t.Fatalf("%q: multipartType %v, want %v", v, got, want)
		}
		mt, params, err := mime.ParseMediaType(v)
		ref := strings.HasPrefix(mt, "multipart/")
		if ref && !got {
			t.Fatalf("%q: mime.ParseMediaType gives %q (%v), MaxBytes does not take it for multipart", v, mt, err)
		}
		if got && !ref && err == nil {
			t.Fatalf("%q: multipart for MaxBytes, %q for mime.ParseMediaType without error", v, mt)
		}
		h := http.Header{"Content-Type": {v}}
		req := &http.Request{Header: h, Body: io.NopCloser(strings.NewReader("")), ContentLength: 1}
		if _, err := req.MultipartReader(); err == nil && !got {
			t.Fatalf("%q: net/http's MultipartReader accepts it, MaxBytes does not take it for multipart", v)
		}
		if (bodyConfig{limit: 10}).needsLimiter(req) != got {
			t.Fatalf("%q: MaxBytes watches the body: %v, want %v", v, !got, got)
		}
		l := &bodyLimiter{maxParts: 1}
		l.setBoundary(req)
		b, counted := params["boundary"], ref && err == nil && params["boundary"] != ""
		if wantDelim := counted && len(b) <= maxBoundary; (l.delim != nil) != wantDelim || wantDelim && string(l.delim) != "--"+b {
			t.Fatalf("%q: delimiter %q, want counting %v with boundary %q", v, l.delim, wantDelim, b)
		}
		if wantErr := counted && len(b) > maxBoundary; (l.preErr != nil) != wantErr {
			t.Fatalf("%q: refusal %v, want one: %v", v, l.preErr, wantErr)
		}
	})
}

// FuzzMultipartPartLimit: the part limit refuses a body exactly where a
// plain reading of the rule says (delimiter maxParts+1 not followed by
// "--", or any later delimiter; the body ending before those two bytes),
// passes on exactly the bytes before that point, and decides the same
// whether the body comes whole, in two reads or one byte at a time.
func FuzzMultipartPartLimit(f *testing.F) {
	f.Add(partsBody(2, "b", true), "b", uint8(1), uint16(40))
	f.Add(partsBody(3, "b", false), "b", uint8(1), uint16(7))
	f.Add(partsBody(2, "xyzzy", false), "xyzzy", uint8(1), uint16(0))
	f.Add(append(partsBody(2, "b", false), "--b-"...), "b", uint8(1), uint16(60))
	f.Add([]byte("-----"), "-", uint8(0), uint16(2))
	f.Add([]byte("--a--a--a--"), "a", uint8(1), uint16(5))
	f.Fuzz(func(t *testing.T, body []byte, boundary string, maxParts uint8, split uint16) {
		if boundary == "" || len(boundary) > maxBoundary {
			return
		}
		mp := int(maxParts%8) + 1
		newLimiter := func() *bodyLimiter {
			l := &bodyLimiter{maxParts: mp}
			r := httptest.NewRequest(http.MethodPost, "/", nil)
			r.Header.Set("Content-Type", `multipart/form-data; boundary="`+strings.ReplaceAll(boundary, `"`, ``)+`"`)
			l.setBoundary(r)
			return l
		}
		l := newLimiter()
		if l.delim == nil {
			return // not a boundary the MIME parser accepts
		}
		d := string(l.delim)

		// The rule, read plainly off the whole body.
		var ends []int // index after each delimiter, overlapping ones included
		for i := range body {
			if strings.HasPrefix(string(body[i:]), d) {
				ends = append(ends, i+len(d))
			}
		}
		wantN, wantRefused := len(body), false
		if len(ends) > mp {
			e := ends[mp]
			switch {
			case len(body) >= e+2 && string(body[e:e+2]) == "--":
			case len(body) > e && body[e] != '-':
				wantN, wantRefused = e, true
			case len(body) > e+1:
				wantN, wantRefused = e+1, true
			default: // the body ends before the two bytes
				wantRefused = true
			}
		}
		if len(ends) > mp+1 && ends[mp+1]-1 < wantN {
			wantN, wantRefused = ends[mp+1]-1, true // the byte that completes it
		}

		run := func(reads [][]byte) (int, bool) {
			l := newLimiter()
			n := 0
			for _, p := range reads {
				k, over := l.countParts(p)
				n += k
				if over {
					return n, true
				}
			}
			return n, l.partsEnded()
		}
		cut := int(split) % (len(body) + 1)
		var bytewise [][]byte
		for i := range body {
			bytewise = append(bytewise, body[i:i+1])
		}
		for name, reads := range map[string][][]byte{"whole": {body}, "split": {body[:cut], body[cut:]}, "bytewise": bytewise} {
			if n, refused := run(reads); n != wantN || refused != wantRefused {
				t.Fatalf("%s, delimiter %q, MaxParts %d, body %q: passed %d, refused %v; want %d, %v",
					name, d, mp, body, n, refused, wantN, wantRefused)
			}
		}
	})
}

// FuzzSecureHeadersPolicy: any policy is either refused at construction
// or sent as a clean header whose nonces are all the response's nonce.
func FuzzSecureHeadersPolicy(f *testing.F) {
	for _, s := range []string{"", DefaultCSP, "default-src 'self';", "script-src 'nonce-abc'", "script-src 'nonce-{nonce}' {x}",
		"default-src 'self'\r\nSet-Cookie: a=b", "img-src {nonce}", "frame-ancestors 'self'; script-src 'NONCE-{nonce}'"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, policy string) {
		m, err := NewSecureHeaders(SecureHeadersOptions{ContentSecurityPolicy: policy})
		if err != nil {
			return
		}
		var nonce string
		rec := httptest.NewRecorder()
		m.Handler(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			nonce = CSPNonce(r.Context())
		})).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		sent := rec.Header().Get("Content-Security-Policy")
		for i := 0; i < len(sent); i++ {
			if sent[i] < 0x20 || sent[i] > 0x7e {
				t.Fatalf("policy %q sent with byte %#x", policy, sent[i])
			}
		}
		if strings.Contains(sent, NoncePlaceholder) {
			t.Fatalf("placeholder left in %q", sent)
		}
		low := strings.ToLower(sent)
		for i := strings.Index(low, "'nonce-"); i >= 0; {
			rest := sent[i+len("'nonce-"):]
			if !strings.HasPrefix(rest, nonce+"'") || nonce == "" {
				t.Fatalf("policy %q: a nonce other than the response's (%q) in %q", policy, nonce, sent)
			}
			j := strings.Index(low[i+1:], "'nonce-")
			if j < 0 {
				break
			}
			i += 1 + j
		}
		if !hasDirective(sent, "frame-ancestors") {
			t.Fatalf("no frame-ancestors in %q", sent)
		}
	})
}

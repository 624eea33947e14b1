package wsguard_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stormcellar/stormcellar/wsguard"
)

// FuzzDecodeJSON: DecodeJSON never panics, every error wraps
// ErrBadMessage or ErrInvalid, and what it accepts is exactly one JSON
// value without unknown fields that passed Validate: re-encoding and
// decoding it again gives the same message.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"text":"hi"}`, `{"text":"hi","admin":true}`, `{"text":"hi"} {"text":"again"}`,
		`{"text":"hi"}xx`, `{"text":42}`, `null`, ``, "{\"text\":\"\xff\"}", `{"text":""}`,
		`{"TEXT":"case"}`, `{"text":"a","text":"b"}`, ` {"text":"ws"} `, `[1,2]`, `"str"`,
		`{"text":"\u003cscript\u003e"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var m chatMessage
		err := wsguard.DecodeJSON(data, &m)
		if err != nil {
			if !errors.Is(err, wsguard.ErrBadMessage) && !errors.Is(err, wsguard.ErrInvalid) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if m.Validate() != nil {
			t.Fatalf("accepted %q that Validate refuses", data)
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		b, _ := json.Marshal(&m)
		var again chatMessage
		if err := wsguard.DecodeJSON(b, &again); err != nil || again != m {
			t.Fatalf("round trip of %q: %q, %v", data, b, err)
		}
	})
}

package timeouts_test

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/stormcellar/stormcellar/httperr"
	"github.com/stormcellar/stormcellar/middleware"
	"github.com/stormcellar/stormcellar/timeouts"
)

// TestMultipartFilesRemoved uploads files larger than the handler's
// in-memory share through stacks whose layers copy the request (the
// per-request state, Deadline, BodyRate, chi's router): every temporary
// file is gone once the server has finished the requests, whether
// net/http or a route-level MaxBytes removes it, and the handler got the
// whole file.
func TestMultipartFilesRemoved(t *testing.T) {
	// Not parallel: TMPDIR is where the multipart package puts its files.
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)

	const size = 256 << 10
	content := bytes.Repeat([]byte("stormcellar"), size/len("stormcellar"))
	upload := func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseMultipartForm(1 << 10); err != nil {
			httperr.Write(w, r, err)
			return
		}
		f, _, err := r.FormFile("file")
		if err != nil {
			httperr.Write(w, r, err)
			return
		}
		defer f.Close()
		got, _ := io.ReadAll(f)
		if !bytes.Equal(got, content) {
			http.Error(w, "file corrupted", http.StatusTeapot)
			return
		}
		if _, isFile := f.(*os.File); !isFile {
			http.Error(w, "setup: the file was kept in memory", http.StatusTeapot)
			return
		}
		_, _ = io.WriteString(w, "stored")
	}
	deadline := timeouts.Deadline(timeouts.DeadlineOptions{Timeout: 10 * time.Second})
	rate := timeouts.BodyRate(timeouts.BodyRateOptions{})
	limit := middleware.MaxBytes(middleware.MaxBytesOptions{Limit: 1 << 20})
	routed := chi.NewRouter()
	routed.With(limit, deadline, rate).Post("/upload", upload)
	for _, tc := range []struct {
		name string
		h    http.Handler
	}{
		{"state and Deadline, removed by net/http", deadline(http.HandlerFunc(upload))},
		{"state, Deadline and BodyRate, removed by net/http", deadline(rate(http.HandlerFunc(upload)))},
		{"chi route with MaxBytes, Deadline and BodyRate", routed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := httptest.NewServer(httperr.Install(httperr.Options{Logger: quietLogger})(tc.h))
			for range 3 {
				var body bytes.Buffer
				mw := multipart.NewWriter(&body)
				fw, _ := mw.CreateFormFile("file", "upload.bin")
				_, _ = fw.Write(content)
				_ = mw.Close()
				resp, err := ts.Client().Post(ts.URL+"/upload", mw.FormDataContentType(), &body)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || string(b) != "stored" {
					t.Fatalf("upload: %d %q", resp.StatusCode, b)
				}
			}
			ts.Close() // waits for the handlers and net/http's clean-up
			left, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range left {
				names = append(names, e.Name())
				_ = os.Remove(dir + "/" + e.Name())
			}
			if len(names) != 0 {
				t.Errorf("%d temporary files left: %s", len(names), strings.Join(names, " "))
			}
		})
	}
}

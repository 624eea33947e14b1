package timeouts_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stormcellar/stormcellar/timeouts"
)

func TestNewClientOptions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		opts timeouts.ClientOptions
		err  string
	}{
		{"zero value", timeouts.ClientOptions{}, ""},
		{"negative dial", timeouts.ClientOptions{DialTimeout: -1}, "DialTimeout"},
		{"negative body cap", timeouts.ClientOptions{MaxResponseBytes: -1}, "MaxResponseBytes"},
		{"negative redirects", timeouts.ClientOptions{MaxRedirects: -1}, "MaxRedirects"},
		{"skip verify", timeouts.ClientOptions{TLSConfig: &tls.Config{InsecureSkipVerify: true}}, "InsecureSkipVerify"},
		{"TLS 1.0", timeouts.ClientOptions{TLSConfig: &tls.Config{MinVersion: tls.VersionTLS10}}, "TLS 1.2"},
		{"bad allowed host", timeouts.ClientOptions{AllowRedirectHosts: []string{"http://x/"}}, "AllowRedirectHosts"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := timeouts.NewClient(tc.opts)
			if tc.err == "" {
				if err != nil || c.Timeout != timeouts.DefaultClientTimeout {
					t.Fatalf("client %+v, err %v", c, err)
				}
				c.CloseIdleConnections()
				return
			}
			if !errors.Is(err, timeouts.ErrInvalidOptions) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want one naming %s", err, tc.err)
			}
		})
	}
}

func TestClientRedirectsAndBodyCap(t *testing.T) {
	t.Parallel()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "other host")
	}))
	t.Cleanup(other.Close)
	mux := http.NewServeMux()
	mux.HandleFunc("/same", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/final", http.StatusFound) })
	mux.HandleFunc("/final", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "final") })
	mux.HandleFunc("/cross", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, other.URL+"/", http.StatusFound) })
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/loop", http.StatusFound) })
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, strings.Repeat("b", 2000)) })
	mux.HandleFunc("/bigchunked", func(w http.ResponseWriter, r *http.Request) {
		for range 4 {
			_, _ = io.WriteString(w, strings.Repeat("c", 600))
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/exact", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, strings.Repeat("e", 1000)) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	otherHost := strings.TrimPrefix(other.URL, "http://")

	cases := []struct {
		name    string
		opts    timeouts.ClientOptions
		path    string
		want    string
		wantErr error
	}{
		{"same-host redirect followed", timeouts.ClientOptions{}, "/same", "final", nil},
		{"cross-host redirect refused", timeouts.ClientOptions{}, "/cross", "", timeouts.ErrRedirect},
		{"allowed host followed", timeouts.ClientOptions{AllowRedirectHosts: []string{otherHost}}, "/cross", "other host", nil},
		{"insecure any host", timeouts.ClientOptions{InsecureAllowCrossHostRedirects: true}, "/cross", "other host", nil},
		{"redirect loop stopped", timeouts.ClientOptions{MaxRedirects: 3}, "/loop", "", timeouts.ErrRedirect},
		{"no redirects returns the 3xx", timeouts.ClientOptions{NoRedirects: true}, "/same", "<a href=\"/final\">Found</a>.\n\n", nil},
		{"declared body over the cap", timeouts.ClientOptions{MaxResponseBytes: 1000}, "/big", "", timeouts.ErrResponseTooLarge},
		{"chunked body over the cap", timeouts.ClientOptions{MaxResponseBytes: 1000}, "/bigchunked", "", timeouts.ErrResponseTooLarge},
		{"body of exactly the cap", timeouts.ClientOptions{MaxResponseBytes: 1000}, "/exact", strings.Repeat("e", 1000), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := timeouts.NewClient(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseIdleConnections()
			body, err := func() (string, error) {
				resp, err := c.Get(srv.URL + tc.path)
				if err != nil {
					return "", err
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				return string(b), err
			}()
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || body != tc.want {
				t.Fatalf("got %q, %v; want %q", body, err, tc.want)
			}
		})
	}
}

func TestClientRefusesHTTPSDowngrade(t *testing.T) {
	t.Parallel()
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer plain.Close()
	secure := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL, http.StatusFound)
	}))
	defer secure.Close()
	roots := secure.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	c, err := timeouts.NewClient(timeouts.ClientOptions{TLSConfig: &tls.Config{RootCAs: roots},
		InsecureAllowCrossHostRedirects: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	_, err = c.Get(secure.URL)
	if !errors.Is(err, timeouts.ErrRedirect) || !strings.Contains(err.Error(), "https") {
		t.Fatalf("err = %v, want the downgrade refused", err)
	}
}

func TestClientTimeoutsAreDeadlineExceeded(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c, err := timeouts.NewClient(timeouts.ClientOptions{Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	start := time.Now()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.URL, nil)
	_, err = c.Do(req)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("err = %v after %v", err, time.Since(start))
	}
}

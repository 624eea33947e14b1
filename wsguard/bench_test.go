package wsguard_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/stormcellar/stormcellar/wsguard"
)

// BenchmarkEcho measures one message round trip over loopback: the client
// writes, the server reads and writes it back, the client reads. "coder"
// is bare coder/websocket (Accept, Read, Write with a background context);
// "wsguard" is the same through Guard.Accept, Conn.Read and Conn.Write,
// with every limit on (the rate limit set high enough not to trip).
func BenchmarkEcho(b *testing.B) {
	for _, size := range []int{128, 4096} {
		payload := []byte(strings.Repeat("x", size))
		b.Run("coder/"+itoa(size), func(b *testing.B) {
			benchEcho(b, payload, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, err := websocket.Accept(w, r, nil)
				if err != nil {
					return
				}
				defer c.CloseNow()
				ctx := context.Background()
				for {
					typ, p, err := c.Read(ctx)
					if err != nil {
						return
					}
					if c.Write(ctx, typ, p) != nil {
						return
					}
				}
			}))
		})
		b.Run("wsguard/"+itoa(size), func(b *testing.B) {
			g, err := wsguard.New(wsguard.Options{MessageRate: 1e9, MessageBurst: 1e9, Logger: discard})
			if err != nil {
				b.Fatal(err)
			}
			defer g.Close()
			benchEcho(b, payload, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, err := g.Accept(w, r)
				if err != nil {
					return
				}
				defer c.CloseNow()
				echo(c)
			}))
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) + "B" }

func benchEcho(b *testing.B, payload []byte, h http.Handler) {
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx := context.Background()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(websocket.StatusNormalClosure, "")
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Write(ctx, websocket.MessageBinary, payload); err != nil {
			b.Fatal(err)
		}
		if _, _, err := c.Read(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

package wsguard_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stormcellar/stormcellar/wsguard"
)

// TestHubSlowConsumerDropped: three members, one of which never reads.
// Large broadcasts fill its socket buffers and then its queue; it is
// dropped with 1013 while the two readers receive every message in order,
// and no Broadcast call blocks.
func TestHubSlowConsumerDropped(t *testing.T) {
	t.Parallel()
	hub := wsguard.NewHub(wsguard.HubOptions{QueueLen: 4})
	defer hub.Close()
	joined := make(chan *wsguard.Conn, 3)
	ts := newTestServer(t, wsguard.Options{WriteTimeout: 2 * time.Second}, func(c *wsguard.Conn) error {
		leave := hub.Join(c)
		defer leave()
		joined <- c
		<-c.CloseRead(context.Background()).Done()
		<-c.Context().Done()
		return context.Cause(c.Context())
	})
	const n, size = 120, 256 << 10
	var readers []*websocket.Conn
	got := make([]chan int, 2)
	for i := range 2 {
		c := ts.mustDial(t, fmt.Sprintf("198.51.100.%d", i+1))
		c.SetReadLimit(size + 64)
		readers = append(readers, c)
		got[i] = make(chan int, n)
		go func() {
			for {
				_, p, err := c.Read(context.Background())
				if err != nil {
					close(got[i])
					return
				}
				got[i] <- int(p[0]) | int(p[1])<<8
			}
		}()
	}
	slow := ts.mustDial(t, "203.0.113.1") // never reads
	defer slow.CloseNow()
	var slowConn *wsguard.Conn
	for range 3 {
		c := <-joined
		if c.Client().String() == "203.0.113.1" {
			slowConn = c
		}
	}
	var worst time.Duration
	dropped := 0
	for i := range n {
		msg := make([]byte, size)
		msg[0], msg[1] = byte(i), byte(i>>8)
		start := time.Now()
		dropped += hub.Broadcast(websocket.MessageBinary, msg)
		worst = max(worst, time.Since(start))
		// Readers keep pace; the slow member cannot.
		for r := range got {
			select {
			case v := <-got[r]:
				if v != i {
					t.Fatalf("reader %d got message %d, want %d", r, v, i)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("reader %d stalled at message %d", r, i)
			}
		}
	}
	if dropped != 1 || hub.Len() != 2 {
		t.Fatalf("dropped %d, %d members left; want the slow one dropped", dropped, hub.Len())
	}
	if worst > time.Second {
		t.Fatalf("a Broadcast blocked for %v", worst)
	}
	select {
	case <-slowConn.Context().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("slow consumer not closed")
	}
	cause := context.Cause(slowConn.Context())
	var ce websocket.CloseError
	if !errors.Is(cause, wsguard.ErrSlowConsumer) || !errors.As(cause, &ce) || ce.Code != websocket.StatusTryAgainLater {
		t.Fatalf("slow consumer closed with %v, want 1013 ErrSlowConsumer", cause)
	}
	for _, c := range readers {
		c.Close(websocket.StatusNormalClosure, "")
	}
}

// TestHubJoinLeave: leave is idempotent, a finished connection leaves by
// itself, and Close stops every writer.
func TestHubJoinLeave(t *testing.T) {
	t.Parallel()
	hub := wsguard.NewHub(wsguard.HubOptions{})
	var mu sync.Mutex
	leaves := map[string]func(){}
	ready := make(chan struct{}, 2)
	ts := newTestServer(t, wsguard.Options{}, func(c *wsguard.Conn) error {
		leave := hub.Join(c)
		mu.Lock()
		leaves[c.Client().String()] = leave
		mu.Unlock()
		ready <- struct{}{}
		_, _, err := c.Read(context.Background())
		return err
	})
	a := ts.mustDial(t, "198.51.100.1")
	b := ts.mustDial(t, "198.51.100.2")
	<-ready
	<-ready
	if hub.Len() != 2 {
		t.Fatalf("Len = %d", hub.Len())
	}
	mu.Lock()
	leaves["198.51.100.1"]()
	leaves["198.51.100.1"]()
	mu.Unlock()
	if hub.Len() != 1 {
		t.Fatalf("after leave: Len = %d", hub.Len())
	}
	b.Close(websocket.StatusNormalClosure, "")
	deadline := time.Now().Add(5 * time.Second)
	for hub.Len() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if hub.Len() != 0 {
		t.Fatal("a finished connection stayed in the hub")
	}
	hub.Close()
	a.Close(websocket.StatusNormalClosure, "")
}

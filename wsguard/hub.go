package wsguard

import (
	"sync"

	"github.com/coder/websocket"
)

// HubOptions configures a [Hub].
type HubOptions struct {
	// QueueLen is how many messages may wait for one member. A member
	// whose queue is full when a message is broadcast is a slow consumer:
	// it is dropped and closed with 1013 (try again later). If zero, 32.
	QueueLen int
}

// Hub broadcasts messages to a set of connections, each with its own
// bounded queue and writer goroutine, so that one slow or stalled client
// never blocks the hub or the other clients. The zero Hub is not usable;
// create one with [NewHub]. A Hub is safe for concurrent use by multiple
// goroutines.
type Hub struct {
	queueLen int
	mu       sync.RWMutex
	members  map[*Conn]*member
	closed   bool
	wg       sync.WaitGroup
}

type member struct {
	c    *Conn
	q    chan message
	stop chan struct{}
	once sync.Once
}

type message struct {
	typ websocket.MessageType
	p   []byte
}

// NewHub returns an empty hub.
func NewHub(opts HubOptions) *Hub {
	n := opts.QueueLen
	if n <= 0 {
		n = 32
	}
	return &Hub{queueLen: n, members: make(map[*Conn]*member)}
}

// Join adds c to the hub and starts its writer; leave removes it (and is
// safe to call more than once). A connection is also removed when it
// finishes or a write to it fails. Joining a closed hub does nothing.
func (h *Hub) Join(c *Conn) (leave func()) {
	m := &member{c: c, q: make(chan message, h.queueLen), stop: make(chan struct{})}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return func() {}
	}
	if old, ok := h.members[c]; ok {
		h.mu.Unlock()
		return func() { h.remove(old) }
	}
	h.members[c] = m
	h.wg.Add(1)
	h.mu.Unlock()
	go h.pump(m)
	return func() { h.remove(m) }
}

func (h *Hub) pump(m *member) {
	defer h.wg.Done()
	ctx := m.c.Context()
	for {
		select {
		case msg := <-m.q:
			if err := m.c.Write(ctx, msg.typ, msg.p); err != nil {
				h.remove(m)
				return
			}
		case <-m.stop:
			return
		case <-ctx.Done():
			h.remove(m)
			return
		}
	}
}

func (h *Hub) remove(m *member) {
	h.mu.Lock()
	if h.members[m.c] == m {
		delete(h.members, m.c)
	}
	h.mu.Unlock()
	m.once.Do(func() { close(m.stop) })
}

// Broadcast queues p for every member without blocking and returns how
// many members were dropped as slow consumers. p must not be modified
// afterwards: every member's writer reads it.
func (h *Hub) Broadcast(typ websocket.MessageType, p []byte) (dropped int) {
	msg := message{typ: typ, p: p}
	var slow []*member
	h.mu.RLock()
	for _, m := range h.members {
		select {
		case m.q <- msg:
		default:
			slow = append(slow, m)
		}
	}
	closed := h.closed
	if !closed {
		h.wg.Add(len(slow)) // under the lock: Close cannot be waiting yet
	}
	h.mu.RUnlock()
	for _, m := range slow {
		h.remove(m)
		if closed {
			m.c.violate(websocket.StatusTryAgainLater, "slow consumer", ErrSlowConsumer)
			continue
		}
		go func() {
			defer h.wg.Done()
			m.c.violate(websocket.StatusTryAgainLater, "slow consumer", ErrSlowConsumer)
		}()
	}
	return len(slow)
}

// Len returns the number of members.
func (h *Hub) Len() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.members)
}

// Close removes every member (their connections stay open), stops the
// writers and waits for them and for slow-consumer closes in progress.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	ms := make([]*member, 0, len(h.members))
	for _, m := range h.members {
		ms = append(ms, m)
	}
	h.mu.Unlock()
	for _, m := range ms {
		h.remove(m)
	}
	h.wg.Wait()
}

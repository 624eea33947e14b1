package timeouts

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stormcellar/stormcellar/internal/clientip"
)

// connSet counts the open connections of a Server, in total and per
// client, and can close them all.
type connSet struct {
	maxTotal  int
	maxClient int
	logger    func() *slog.Logger

	mu        sync.Mutex
	total     int
	perClient map[netip.Prefix]int
	conns     map[*capConn]struct{}

	refused atomic.Uint64
	lastLog atomic.Int64 // unix nanoseconds of the last refusal record
}

func newConnSet(maxTotal, maxClient int, logger func() *slog.Logger) *connSet {
	return &connSet{
		maxTotal:  maxTotal,
		maxClient: maxClient,
		logger:    logger,
		perClient: make(map[netip.Prefix]int),
		conns:     make(map[*capConn]struct{}),
	}
}

// admit registers c, or reports false when a cap is reached.
func (s *connSet) admit(c net.Conn) (*capConn, bool) {
	key := clientip.Group(clientip.PeerOf(c.RemoteAddr()))
	s.mu.Lock()
	if s.total >= s.maxTotal || s.perClient[key] >= s.maxClient {
		total, client := s.total, s.perClient[key]
		s.mu.Unlock()
		s.refuse(key, total, client)
		return nil, false
	}
	s.total++
	s.perClient[key]++
	cc := &capConn{Conn: c, set: s, key: key}
	s.conns[cc] = struct{}{}
	s.mu.Unlock()
	return cc, true
}

func (s *connSet) release(cc *capConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[cc]; !ok {
		return
	}
	delete(s.conns, cc)
	s.total--
	if n := s.perClient[cc.key] - 1; n > 0 {
		s.perClient[cc.key] = n
	} else {
		delete(s.perClient, cc.key)
	}
}

// refuse records a refused connection; at most one log record a second
// is written, with the running count, so a flood cannot flood the log.
func (s *connSet) refuse(key netip.Prefix, total, client int) {
	n := s.refused.Add(1)
	now := time.Now().UnixNano()
	last := s.lastLog.Load()
	if now-last < int64(time.Second) || !s.lastLog.CompareAndSwap(last, now) {
		return
	}
	s.logger().LogAttrs(context.Background(), slog.LevelWarn, "connection refused: over the connection cap",
		slog.String("client", key.String()),
		slog.Int("open_total", total), slog.Int("max_conns", s.maxTotal),
		slog.Int("open_client", client), slog.Int("max_conns_per_client", s.maxClient),
		slog.Uint64("refused_total", n))
}

// open reports the number of open connections.
func (s *connSet) open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// closeAll closes every connection still open (hijacked ones included)
// and reports how many it closed.
func (s *connSet) closeAll() int {
	s.mu.Lock()
	conns := make([]*capConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	return len(conns)
}

// capListener admits connections through a connSet. A connection over a
// cap is closed at once with a reset, before anything is read from it.
type capListener struct {
	net.Listener
	set *connSet
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if cc, ok := l.set.admit(c); ok {
			return cc, nil
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // reset: no TIME_WAIT left behind by a flood
		}
		_ = c.Close()
	}
}

// capConn is an admitted connection; closing it frees its slots. It keeps
// the optional interfaces net/http looks for on a *net.TCPConn.
type capConn struct {
	net.Conn
	set  *connSet
	key  netip.Prefix
	once sync.Once
}

func (c *capConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.set.release(c) })
	return err
}

// CloseWrite half-closes the connection, as net/http does before it
// closes a connection that sent an oversized header (so that the client
// reads the 431 instead of a reset).
func (c *capConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// ReadFrom keeps the sendfile/splice path of *net.TCPConn.
func (c *capConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(c.Conn, r)
}

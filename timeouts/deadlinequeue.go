package timeouts

import (
	"math/rand/v2"
	"runtime"
	"sync"
	"time"
)

// deadlineQueue times the requests of one Deadline whose deadline is its
// own Timeout (no earlier one outside): their deadlines come in the order
// they start, so a FIFO list and one timer, armed for the oldest, time
// them all. A request costs a lock to join and a lock to leave, and no
// timer operation; the timer fires about once per Timeout under steady
// load, when the oldest request of the last arming has long finished.
//
// The queue is split into shards, each with its own lock, list and timer,
// and a request joins one at random, so that requests running in
// parallel seldom wait for each other's lock.
//
// Requests in a testing/synctest bubble, and those with an earlier
// deadline outside, take a timer of their own instead (see startTimer).
type deadlineQueue struct {
	shards []deadlineShard // a power of two of them
}

type deadlineShard struct {
	timeout time.Duration

	mu         sync.Mutex
	head, tail *guard
	t          *time.Timer // created at the first push
	armed      bool        // t is set to fire

	_ [64]byte // keeps shards on separate cache lines
}

// newDeadlineQueue returns a queue for requests timed out after timeout,
// with two shards per P (at least two, at most 64).
func newDeadlineQueue(timeout time.Duration) *deadlineQueue {
	n := 2
	for n < 2*runtime.GOMAXPROCS(0) && n < 64 {
		n <<= 1
	}
	q := &deadlineQueue{shards: make([]deadlineShard, n)}
	for i := range q.shards {
		q.shards[i].timeout = timeout
	}
	return q
}

// push sets g's deadline to Timeout from now and queues it in a shard
// chosen at random; see deadlineShard.push.
func (q *deadlineQueue) push(g *guard) bool {
	i := rand.Uint32() & uint32(len(q.shards)-1)
	g.qshard = uint8(i)
	return q.shards[i].push(g)
}

// remove takes g out of the queue if it is still in it.
func (q *deadlineQueue) remove(g *guard) { q.shards[g.qshard].remove(g) }

// push sets g's deadline to Timeout from now and queues it. It reports
// false, queueing nothing, when the clock is a synctest bubble's (no
// monotonic reading), whose timers must not be used outside the bubble.
func (q *deadlineShard) push(g *guard) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := time.Now() // under the lock, so that the list is in deadline order
	if now == now.Round(0) {
		return false
	}
	g.dl = now.Add(q.timeout)
	g.queued = true
	g.qprev, g.qnext = q.tail, nil
	if q.tail != nil {
		q.tail.qnext = g
	} else {
		q.head = g
	}
	q.tail = g
	if !q.armed {
		if q.t == nil {
			q.t = time.AfterFunc(q.timeout, q.fire)
		} else {
			q.t.Reset(q.timeout)
		}
		q.armed = true
	}
	return true
}

// remove takes g out of the shard if it is still in it (the timer may
// have taken it out to expire it).
func (q *deadlineShard) remove(g *guard) {
	q.mu.Lock()
	if g.queued {
		q.unlinkLocked(g)
	}
	q.mu.Unlock()
}

func (q *deadlineShard) unlinkLocked(g *guard) {
	if g.qprev != nil {
		g.qprev.qnext = g.qnext
	} else {
		q.head = g.qnext
	}
	if g.qnext != nil {
		g.qnext.qprev = g.qprev
	} else {
		q.tail = g.qprev
	}
	g.qprev, g.qnext, g.queued = nil, nil, false
}

// fire runs on the timer's goroutine: it takes every request whose
// deadline has passed out of the queue, re-arms the timer for the oldest
// left, and expires those it took, each on a goroutine of its own (the
// 503 may wait on a slow client for up to WriteTimeout).
func (q *deadlineShard) fire() {
	var due []*guard
	q.mu.Lock()
	now := time.Now()
	for q.head != nil && !q.head.dl.After(now) {
		g := q.head
		q.unlinkLocked(g)
		due = append(due, g)
	}
	if q.head != nil {
		q.t.Reset(q.head.dl.Sub(now))
	} else {
		q.armed = false
	}
	q.mu.Unlock()
	for _, g := range due {
		go g.expire()
	}
}

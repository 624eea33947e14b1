package main

import (
	"container/list"
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stormcellar/stormcellar/keyedmutex"
)

// Product is one line of the catalogue.
type Product struct {
	SKU   string `json:"sku"`
	Name  string `json:"name"`
	Stock int64  `json:"stock"`
}

// Errors of an Inventory.
var (
	errNoSuchProduct = errors.New("inventory: no such product")
	errOutOfStock    = errors.New("inventory: not enough stock")
)

// Inventory holds the stock. A database would implement Purchase as one
// conditional update (UPDATE … SET stock = stock - $1 WHERE sku = $2 AND
// stock >= $1); the in-memory one serialises purchases of one SKU with a
// per-key lock, so the check and the decrement can never interleave.
type Inventory interface {
	List(ctx context.Context) ([]Product, error)
	// Purchase takes qty units of sku and returns the stock left, or
	// errNoSuchProduct or errOutOfStock, taking nothing.
	Purchase(ctx context.Context, sku string, qty int64) (remaining int64, err error)
}

type memItem struct {
	name  string
	stock atomic.Int64 // written only under the SKU's lock; read without it
}

type memInventory struct {
	locks keyedmutex.Map[string]
	order []string
	items map[string]*memItem // fixed after construction: read-only map
}

func newMemInventory(seed []Product) *memInventory {
	inv := &memInventory{items: make(map[string]*memItem, len(seed))}
	for _, p := range seed {
		it := &memItem{name: p.Name}
		it.stock.Store(p.Stock)
		inv.items[p.SKU] = it
		inv.order = append(inv.order, p.SKU)
	}
	return inv
}

// seedProducts is the catalogue every fresh instance starts with.
func seedProducts() []Product {
	return []Product{
		{SKU: "last-one", Name: "The last umbrella", Stock: 1},
		{SKU: "limited", Name: "Storm lantern (limited run)", Stock: 100},
		{SKU: "boots", Name: "Rubber boots", Stock: 25},
	}
}

func (inv *memInventory) List(context.Context) ([]Product, error) {
	out := make([]Product, 0, len(inv.order))
	for _, sku := range inv.order {
		it := inv.items[sku]
		out = append(out, Product{SKU: sku, Name: it.name, Stock: it.stock.Load()})
	}
	return out, nil
}

func (inv *memInventory) Purchase(ctx context.Context, sku string, qty int64) (int64, error) {
	it, ok := inv.items[sku]
	if !ok {
		// Unknown SKUs never reach the lock map, so clients cannot fill it.
		return 0, errNoSuchProduct
	}
	g, err := inv.locks.Lock(ctx, sku)
	if err != nil {
		return 0, err
	}
	defer g.Unlock()
	left := it.stock.Load()
	if left < qty {
		return left, errOutOfStock
	}
	left -= qty
	it.stock.Store(left)
	return left, nil
}

// Session is a logged-in user.
type Session struct {
	ID      string
	User    string
	Expires time.Time
}

// Sessions stores sessions server-side, so that logout and expiry hold even
// for a cookie that is still validly signed.
type Sessions interface {
	// Create starts a session for user. To stay within its bounds it may
	// end other sessions (their users are logged out) rather than refuse.
	Create(ctx context.Context, user string) (Session, error)
	Get(ctx context.Context, id string) (Session, bool)
	Delete(ctx context.Context, id string)
	// Expire removes the sessions past their expiry and returns how many.
	Expire(ctx context.Context) int
}

// memSessions is the in-memory Sessions, bounded in memory: it holds at
// most max sessions in all and perUser sessions for one user. It never
// refuses a login for lack of room:
//
//   - a user's login beyond perUser ends that user's oldest session;
//   - a login into a full store ends the least recently used session,
//     whoever's it is.
//
// The user of an ended session is merely logged out: their next request
// gets 401 and they log in again. So a client that logs in under many
// names (any name in development; accounts it controls in production)
// cannot lock anyone out of login; it can only push out the least
// recently used sessions: those left unused while it made max logins.
//
// Get, the lookup of every request, is O(1): a map lookup, and a move to
// the front of the recency list at most once a minute for each session
// (so "least recently used" is exact to within a minute). Create and
// Delete are O(1) too; only the background Expire scans. It is safe for
// concurrent use.
type memSessions struct {
	ttl     time.Duration
	now     func() time.Time
	max     int
	perUser int

	mu     sync.Mutex
	byID   map[string]*memSession
	recent list.List             // of *memSession, most recently used first
	byUser map[string]*list.List // of *memSession, oldest first; never empty
}

// memSession is a session with its places in the two lists.
type memSession struct {
	Session
	inRecent *list.Element // in memSessions.recent
	inUser   *list.Element // in memSessions.byUser[User]
	moved    time.Time     // when it last went to the front of recent
}

// recencyGranularity is how stale the recency order may be: a session used
// again within this time of its last move to the front stays where it is,
// so most lookups only read.
const recencyGranularity = time.Minute

// newMemSessions returns a store of sessions lasting ttl, at most max of
// them and perUser for one user; max and perUser must be positive.
func newMemSessions(ttl time.Duration, now func() time.Time, max, perUser int) *memSessions {
	if max < 1 || perUser < 1 {
		panic("newMemSessions: max and perUser must be positive")
	}
	return &memSessions{ttl: ttl, now: now, max: max, perUser: perUser,
		byID: make(map[string]*memSession), byUser: make(map[string]*list.List)}
}

func (s *memSessions) Create(_ context.Context, user string) (Session, error) {
	now := s.now()
	ms := &memSession{Session: Session{ID: rand.Text(), User: user, Expires: now.Add(s.ttl)}, moved: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	for mine := s.byUser[user]; mine != nil && mine.Len() >= s.perUser; mine = s.byUser[user] {
		s.remove(mine.Front().Value.(*memSession)) // the user's oldest
	}
	for len(s.byID) >= s.max {
		s.remove(s.recent.Back().Value.(*memSession)) // the least recently used
	}
	mine := s.byUser[user]
	if mine == nil {
		mine = list.New()
		s.byUser[user] = mine
	}
	ms.inRecent = s.recent.PushFront(ms)
	ms.inUser = mine.PushBack(ms)
	s.byID[ms.ID] = ms
	return ms.Session, nil
}

func (s *memSessions) Get(_ context.Context, id string) (Session, bool) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	ms, ok := s.byID[id]
	if !ok || !now.Before(ms.Expires) {
		return Session{}, false // an expired one is removed by Expire
	}
	if now.Sub(ms.moved) >= recencyGranularity {
		s.recent.MoveToFront(ms.inRecent)
		ms.moved = now
	}
	return ms.Session, true
}

func (s *memSessions) Delete(_ context.Context, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ms, ok := s.byID[id]; ok {
		s.remove(ms)
	}
}

// Expire scans the whole store: it runs in the background, once a minute.
func (s *memSessions) Expire(context.Context) int {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, ms := range s.byID {
		if !now.Before(ms.Expires) {
			s.remove(ms)
			n++
		}
	}
	return n
}

// remove drops ms from the map and both lists; s.mu is held.
func (s *memSessions) remove(ms *memSession) {
	delete(s.byID, ms.ID)
	s.recent.Remove(ms.inRecent)
	mine := s.byUser[ms.User]
	mine.Remove(ms.inUser)
	if mine.Len() == 0 {
		delete(s.byUser, ms.User)
	}
}

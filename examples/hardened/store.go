package main

import (
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
	Create(ctx context.Context, user string) (Session, error)
	Get(ctx context.Context, id string) (Session, bool)
	Delete(ctx context.Context, id string)
	// Expire removes the sessions past their expiry and returns how many.
	Expire(ctx context.Context) int
}

type memSessions struct {
	ttl time.Duration
	now func() time.Time
	max int

	mu   sync.Mutex
	byID map[string]Session
}

var errTooManySessions = errors.New("sessions: store full")

func newMemSessions(ttl time.Duration, now func() time.Time, max int) *memSessions {
	return &memSessions{ttl: ttl, now: now, max: max, byID: make(map[string]Session)}
}

func (s *memSessions) Create(_ context.Context, user string) (Session, error) {
	sess := Session{ID: rand.Text(), User: user, Expires: s.now().Add(s.ttl)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.byID) >= s.max {
		return Session{}, errTooManySessions
	}
	s.byID[sess.ID] = sess
	return sess, nil
}

func (s *memSessions) Get(_ context.Context, id string) (Session, bool) {
	s.mu.Lock()
	sess, ok := s.byID[id]
	s.mu.Unlock()
	if !ok || !s.now().Before(sess.Expires) {
		return Session{}, false
	}
	return sess, true
}

func (s *memSessions) Delete(_ context.Context, id string) {
	s.mu.Lock()
	delete(s.byID, id)
	s.mu.Unlock()
}

func (s *memSessions) Expire(context.Context) int {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	var gone []string
	for id, sess := range s.byID {
		if !now.Before(sess.Expires) {
			gone = append(gone, id)
		}
	}
	for _, id := range gone {
		delete(s.byID, id)
	}
	return len(gone)
}

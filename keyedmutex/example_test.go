package keyedmutex_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/stormcellar/stormcellar/httperr"
	"github.com/stormcellar/stormcellar/keyedmutex"
)

// A purchase handler: the check of the stock and its update happen under
// the SKU's lock, so concurrent requests cannot both take the last item.
// Purchases of other SKUs do not wait.
func ExampleMap() {
	var locks keyedmutex.Map[string]
	stock := map[string]int{"sku-1": 1}
	var stockMu sync.Mutex // the map itself is shared by every SKU

	buy := httperr.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		sku := r.PathValue("sku")
		g, err := locks.Lock(r.Context(), sku)
		if errors.Is(err, keyedmutex.ErrTooManyKeys) {
			return httperr.Unavailable(httperr.KindOverload, time.Second, err)
		}
		if err != nil {
			return err // the client went away while waiting
		}
		defer g.Unlock()

		stockMu.Lock()
		n := stock[sku]
		stockMu.Unlock()
		if n == 0 {
			return &httperr.HTTPError{Status: http.StatusConflict, Message: "Sold out"}
		}
		// … charge the customer: the SKU stays locked while this waits …
		stockMu.Lock()
		stock[sku] = n - 1
		stockMu.Unlock()
		fmt.Fprintln(w, "bought", sku)
		return nil
	})

	mux := http.NewServeMux()
	mux.Handle("POST /buy/{sku}", buy)
	for range 2 {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("POST", "/buy/sku-1", nil))
		fmt.Println(rec.Code)
	}
	fmt.Println("keys held:", locks.Len())
	// Output:
	// 200
	// 409
	// keys held: 0
}

// TryLock never waits: use it to refuse a second concurrent run of the
// same job instead of queueing it.
func ExampleMap_TryLock() {
	var running keyedmutex.Map[string]
	g, err := running.TryLock("report-42")
	fmt.Println("first:", err)
	_, err = running.TryLock("report-42")
	fmt.Println("second:", err)
	g.Unlock()
	// Output:
	// first: <nil>
	// second: keyedmutex: key is locked
}

// Do locks, runs the function and unlocks, even if the function panics.
func ExampleMap_Do() {
	var accounts keyedmutex.Map[int64]
	balance := map[int64]int{7: 100}
	err := accounts.Do(context.Background(), 7, func() error {
		if balance[7] < 30 {
			return errors.New("insufficient funds")
		}
		balance[7] -= 30
		return nil
	})
	fmt.Println(err, balance[7])
	// Output:
	// <nil> 70
}

// MaxKeys bounds how many distinct keys can be locked at once, so that
// keys chosen by clients cannot grow memory without bound.
func ExampleMap_maxKeys() {
	locks := &keyedmutex.Map[string]{MaxKeys: 2}
	a, _ := locks.TryLock("a")
	b, _ := locks.TryLock("b")
	_, err := locks.Lock(context.Background(), "c")
	fmt.Println(err)
	a.Unlock()
	b.Unlock()
	fmt.Println(locks.Len())
	// Output:
	// keyedmutex: too many distinct keys locked at once
	// 0
}

// A waiter gives up when its context is done, and leaves nothing behind.
func ExampleMap_Lock_timeout() {
	var locks keyedmutex.Map[string]
	held, _ := locks.TryLock("k")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err := locks.Lock(ctx, "k")
	fmt.Println(err)
	held.Unlock()
	fmt.Println(locks.Len())
	// Output:
	// context deadline exceeded
	// 0
}

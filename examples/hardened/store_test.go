package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// checkSessions verifies the store's invariants: within both caps, and the
// map and both lists holding the same sessions.
func checkSessions(t *testing.T, s *memSessions) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.byID) > s.max || s.recent.Len() != len(s.byID) {
		t.Fatalf("%d sessions, %d in the recency list, cap %d", len(s.byID), s.recent.Len(), s.max)
	}
	n := 0
	for user, mine := range s.byUser {
		if mine.Len() == 0 || mine.Len() > s.perUser {
			t.Fatalf("user %s holds %d sessions, cap %d", user, mine.Len(), s.perUser)
		}
		for e := mine.Front(); e != nil; e = e.Next() {
			ms := e.Value.(*memSession)
			if ms.User != user || s.byID[ms.ID] != ms {
				t.Fatalf("session %s of %s misfiled under %s", ms.ID, ms.User, user)
			}
			n++
		}
	}
	if n != len(s.byID) {
		t.Fatalf("%d sessions in the user lists, %d in the map", n, len(s.byID))
	}
}

// Logins, lookups and logouts from many goroutines at once keep the store
// within its caps and consistent (run with -race).
func TestMemSessionsConcurrentBounded(t *testing.T) {
	t.Parallel()
	s := newMemSessions(time.Hour, time.Now, 50, 3)
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []string
			for i := range 500 {
				sess, err := s.Create(ctx, fmt.Sprintf("user-%d", (g*500+i)%12))
				if err != nil {
					t.Errorf("Create: %v", err)
					return
				}
				mine = append(mine, sess.ID)
				s.Get(ctx, mine[i/2])
				if i%7 == 0 {
					s.Delete(ctx, mine[i/3])
				}
			}
		}()
	}
	wg.Wait()
	checkSessions(t, s)
	// Expire empties the store once every session is past its expiry.
	late := newMemSessions(time.Hour, func() time.Time { return time.Now().Add(-2 * time.Hour) }, 50, 3)
	for i := range 20 {
		if _, err := late.Create(ctx, fmt.Sprintf("u%d", i%5)); err != nil {
			t.Fatal(err)
		}
	}
	late.now = time.Now
	if n := late.Expire(ctx); n != 15 || len(late.byID) != 0 || len(late.byUser) != 0 || late.recent.Len() != 0 {
		t.Errorf("Expire removed %d, left %d sessions, %d users, %d in the recency list; want 15 and none",
			n, len(late.byID), len(late.byUser), late.recent.Len())
	}
}

// The login limiter holds at most its cap of counters however many names
// fail, and a right password leaves nothing behind.
func TestLoginLimiterBounded(t *testing.T) {
	t.Parallel()
	now := time.Now()
	l := newLoginLimiter(loginBudget{burst: 10, refill: 6 * time.Second},
		loginBudget{burst: 100, refill: 2 * time.Second}, 64, func() time.Time { return now })
	r := httptest.NewRequest("POST", "/login", nil)
	for i := range 1000 {
		if _, err := l.take(r, fmt.Sprintf("name-%d", i)); err != nil {
			t.Fatalf("first failure for a new name: %v", err)
		}
		if n := len(l.tat); n > 64 {
			t.Fatalf("%d counters after %d names, cap 64", n, i+1)
		}
	}
	fresh := newLoginLimiter(l.perClient, l.perAccount, 64, l.now)
	ticket, err := fresh.take(r, "Ann")
	if err != nil {
		t.Fatal(err)
	}
	fresh.refund(ticket)
	if len(fresh.tat) != 0 {
		t.Errorf("%d counters left by a successful login, want 0", len(fresh.tat))
	}
	// Case variants of one name share its budgets.
	for i := range 11 {
		_, err := fresh.take(r, []string{"ann", "ANN", "Ann"}[i%3])
		if (err != nil) != (i == 10) {
			t.Fatalf("failure %d for case variants of one name: %v", i+1, err)
		}
	}
}

// The lookup every request makes, in a full store: O(1), no allocation.
func BenchmarkMemSessionsGet(b *testing.B) {
	s := newMemSessions(12*time.Hour, time.Now, maxSessions, maxSessionsPerUser)
	ctx := context.Background()
	ids := make([]string, maxSessions)
	for i := range ids {
		sess, _ := s.Create(ctx, fmt.Sprintf("user-%d", i))
		ids[i] = sess.ID
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, ok := s.Get(ctx, ids[i%len(ids)]); !ok {
				b.Fatal("session lost")
			}
			i += 7919
		}
	})
}

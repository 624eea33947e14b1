package main

import (
	"errors"
	"fmt"
	"hash/maphash"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/stormcellar/stormcellar/httperr"
	"github.com/stormcellar/stormcellar/internal/clientip"
)

// Causes of the 429 answered to a login attempt over a budget; logged,
// never sent.
var (
	errLoginClientBudget  = errors.New("login: too many failed attempts for this account from this client")
	errLoginAccountBudget = errors.New("login: too many failed attempts for this account from all clients")
)

// loginBudget is one budget of failed logins: burst failures at once, and
// one more back every refill.
type loginBudget struct {
	burst  int64
	refill time.Duration
}

// loginLimiter throttles password guessing without handing anyone a way to
// lock an account's owner out. Every attempt takes one unit from two
// budgets before the password is checked:
//
//   - perClient, for the account and the client address (the address chi's
//     trusted-proxy resolver found, else the TCP peer; IPv6 by /64, as every
//     stormcellar limiter counts clients): a guesser at one address is
//     slowed after a few failures, and only that address is;
//   - perAccount, for the account from all addresses together: it bounds
//     guessing spread over many addresses. Only attempts within their
//     perClient budget reach it, so when perAccount is larger than
//     perClient in burst and in refill rate, one address alone can never
//     spend it.
//
// The attempt is refused (429, with Retry-After) unless both budgets have
// a unit; a refused attempt takes nothing. An attempt whose password was
// right gives both units back ([loginLimiter.refund]), so only failures
// count: the owner's own logins never use up their budget. Taking is
// increment-then-check under one lock, so concurrent guesses cannot slip
// past a budget together. Account names are compared case-insensitively,
// so case variants of one name share its budgets.
//
// What it cannot do: guessers at enough addresses (perAccount.burst /
// perClient.burst at once, or a refill rate above perAccount's) keep the
// account's budget spent, and while they do, its owner gets 429 on the
// login form too, from any address, until the guessing stops; sessions
// already open keep working.
//
// A budget is kept as the GCRA "theoretical arrival time": the instant at
// which it is full again, one int64 for each key; a budget that is full
// is not kept at all, so only failures of the last minutes take memory.
// At most max keys are held (4.5 MiB for 1<<17); when the map is full, a
// new key takes the place of one of a few sampled at random: a full one
// (its time has passed) if any, else the one nearest to full. Pushing out
// one given key takes failed attempts in the order of max, and gives back
// at most that key's burst. It is safe for concurrent use.
type loginLimiter struct {
	perClient, perAccount loginBudget
	max                   int
	now                   func() time.Time
	seed                  maphash.Seed

	mu  sync.Mutex
	tat map[uint64]int64 // key → unix ns at which its budget is full again
}

// loginTicket is an admitted attempt: the keys of the two units it took.
type loginTicket struct {
	client, account uint64
}

// evictionSample is how many keys a full limiter looks at for one to drop.
const evictionSample = 8

func newLoginLimiter(perClient, perAccount loginBudget, max int, now func() time.Time) *loginLimiter {
	return &loginLimiter{
		perClient: perClient, perAccount: perAccount, max: max, now: now,
		seed: maphash.MakeSeed(), tat: make(map[uint64]int64),
	}
}

// take takes one unit from both budgets of a login attempt by r for
// account, or returns the 429 to answer, taking nothing.
func (l *loginLimiter) take(r *http.Request, account string) (loginTicket, error) {
	account = strings.ToLower(account)
	t := loginTicket{client: l.key('c', account, r), account: l.key('a', account, nil)}
	now := l.now().UnixNano()
	l.mu.Lock()
	defer l.mu.Unlock()
	clientTAT, wait := l.after(t.client, l.perClient, now)
	if wait > 0 {
		return t, tooManyLogins(wait, errLoginClientBudget, account)
	}
	accountTAT, wait := l.after(t.account, l.perAccount, now)
	if wait > 0 {
		return t, tooManyLogins(wait, errLoginAccountBudget, account)
	}
	l.store(t.client, clientTAT, now, t)
	l.store(t.account, accountTAT, now, t)
	return t, nil
}

// refund gives back the units of an attempt whose password was right.
func (l *loginLimiter) refund(t loginTicket) {
	now := l.now().UnixNano()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.giveBack(t.client, l.perClient, now)
	l.giveBack(t.account, l.perAccount, now)
}

// after returns the time at which key's budget is full again once it
// gives one more unit, or, when it has none left, how long until it has.
func (l *loginLimiter) after(key uint64, b loginBudget, now int64) (tat int64, wait time.Duration) {
	tat = max(l.tat[key], now) + int64(b.refill)
	if over := tat - now - b.burst*int64(b.refill); over > 0 {
		return 0, time.Duration(over)
	}
	return tat, 0
}

func (l *loginLimiter) giveBack(key uint64, b loginBudget, now int64) {
	tat, ok := l.tat[key]
	if !ok {
		return
	}
	if tat -= int64(b.refill); tat <= now {
		delete(l.tat, key) // full: nothing to remember
		return
	}
	l.tat[key] = tat
}

// store sets key's time, first making room for a new key in a full map;
// the keys of keep are never the ones dropped.
func (l *loginLimiter) store(key uint64, tat, now int64, keep loginTicket) {
	if _, ok := l.tat[key]; !ok && len(l.tat) >= l.max {
		var victim uint64
		found, nearest, seen := false, int64(0), 0
		for k, v := range l.tat { // map iteration starts at a random place
			if k == keep.client || k == keep.account {
				continue
			}
			if v <= now {
				victim, found = k, true
				break
			}
			if !found || v < nearest {
				victim, nearest, found = k, v, true
			}
			if seen++; seen == evictionSample {
				break
			}
		}
		if found {
			delete(l.tat, victim)
		}
	}
	l.tat[key] = tat
}

// key is a keyed hash of the budget's kind, the account name and, for the
// per-client budget, the client's address group. The per-process seed
// keeps clients from choosing names whose counters collide with another's.
func (l *loginLimiter) key(kind byte, account string, r *http.Request) uint64 {
	var h maphash.Hash
	h.SetSeed(l.seed)
	h.WriteByte(kind)
	h.WriteString(account)
	if r != nil {
		h.WriteByte(0)
		// An unknown address (the zero prefix) is one shared client.
		if p := clientip.Group(clientip.Addr(r)); p.IsValid() {
			a := p.Addr().As16()
			h.Write(a[:])
			h.WriteByte(byte(p.Bits()))
		}
	}
	return h.Sum64()
}

func tooManyLogins(wait time.Duration, cause error, account string) *httperr.HTTPError {
	e := httperr.TooManyRequests(wait, fmt.Errorf("%w (account %s)", cause, account))
	e.Message = "Too many failed logins. Try again later."
	return e
}

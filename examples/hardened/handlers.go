package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/go-chi/chi/v5"

	"github.com/stormcellar/stormcellar/httperr"
	"github.com/stormcellar/stormcellar/timeouts"
	"github.com/stormcellar/stormcellar/wsguard"
)

var (
	errNoSession  = errors.New("no valid session")
	errBadLogin   = errors.New("wrong user name or password")
	errLoginClose = errors.New("demo login is disabled in production")
)

// currentSession returns the session of a request whose signed cookie
// verifies (right key, not tampered, not expired) and whose server-side
// session still exists.
func (a *app) currentSession(r *http.Request) (Session, error) {
	id, err := a.session.Get(r)
	if err != nil {
		return Session{}, err // the cause says which: missing, tampered, unknown key, expired
	}
	sess, ok := a.sessions.Get(r.Context(), string(id))
	if !ok {
		return Session{}, errNoSession
	}
	return sess, nil
}

// sessionID binds XSRF tokens to the session.
func (a *app) sessionID(r *http.Request) string {
	sess, err := a.currentSession(r)
	if err != nil {
		return ""
	}
	return sess.ID
}

func unauthorized(cause error) *httperr.HTTPError {
	e := httperr.New(http.StatusUnauthorized, httperr.KindUnauthorized, cause)
	e.Message = "Please log in."
	return e
}

type homePage struct {
	User     string
	Products []Product
}

func (a *app) homeData(r *http.Request) (any, error) {
	products, err := a.inv.List(r.Context())
	if err != nil {
		return nil, err
	}
	d := homePage{Products: products}
	if sess, err := a.currentSession(r); err == nil {
		d.User = sess.User
	}
	return d, nil
}

type searchPage struct {
	Q      string
	Island any
}

func (a *app) searchData(r *http.Request) (any, error) {
	q := r.URL.Query().Get("q")
	if len(q) > 512 {
		return nil, httperr.BadRequest("The query is too long.", fmt.Errorf("query of %d bytes", len(q)))
	}
	return searchPage{Q: q, Island: map[string]string{"query": q}}, nil
}

func (a *app) meData(r *http.Request) (any, error) {
	sess, err := a.currentSession(r)
	if err != nil {
		return nil, unauthorized(err)
	}
	return sess, nil
}

// validUser accepts 1 to 32 letters, digits, '.', '_' and '-'.
func validUser(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

func (a *app) loginPost(w http.ResponseWriter, r *http.Request) error {
	// The XSRF middleware already parsed the (size-limited) form.
	user := r.PostFormValue("username")
	if !validUser(user) {
		return httperr.BadRequest("User names are 1 to 32 letters, digits, '.', '_' or '-'.", errBadLogin)
	}
	// Password guessing: the attempt takes a unit from the account's
	// budgets (per client address and overall) before the password is
	// checked; a right password gives them back, so only failures count.
	ticket, err := a.logins.take(r, user)
	if err != nil {
		return err
	}
	if a.cfg.Prod {
		// Plug a real user store in here; the demo password never works
		// in production.
		return unauthorized(errLoginClose)
	}
	if subtle.ConstantTimeCompare([]byte(r.PostFormValue("password")), []byte("demo")) != 1 {
		return unauthorized(errBadLogin) // the failure keeps its units
	}
	a.logins.refund(ticket)
	// A new session id on every login: a planted id cannot be fixed.
	if sess, err := a.currentSession(r); err == nil {
		a.sessions.Delete(r.Context(), sess.ID)
	}
	sess, err := a.sessions.Create(r.Context(), user)
	if err != nil {
		return httperr.Unavailable(httperr.KindOverload, time.Minute, err)
	}
	if err := a.session.Set(w, []byte(sess.ID)); err != nil {
		return err
	}
	a.log.InfoContext(r.Context(), "login", "user", user, "request_id", httperr.RequestID(r.Context()))
	http.Redirect(w, r, "/me", http.StatusSeeOther)
	return nil
}

func (a *app) logout(w http.ResponseWriter, r *http.Request) error {
	if sess, err := a.currentSession(r); err == nil {
		a.sessions.Delete(r.Context(), sess.ID)
	}
	a.session.Delete(w)
	http.Redirect(w, r, "/", http.StatusSeeOther)
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
	return nil
}

func (a *app) products(w http.ResponseWriter, r *http.Request) error {
	products, err := a.inv.List(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, products)
}

type purchaseRequest struct {
	SKU string `json:"sku"`
	Qty int64  `json:"qty"`
}

func (p *purchaseRequest) Validate() error {
	if p.SKU == "" || len(p.SKU) > 64 {
		return errors.New("sku must be 1 to 64 bytes")
	}
	if p.Qty < 1 || p.Qty > 100 {
		return errors.New("qty must be 1 to 100")
	}
	return nil
}

// purchase: the XSRF middleware has checked the origin and the token bound
// to the session; the body is capped at purchaseBodyLimit; the inventory
// makes check-and-decrement atomic per SKU.
func (a *app) purchase(w http.ResponseWriter, r *http.Request) error {
	sess, err := a.currentSession(r)
	if err != nil {
		return unauthorized(err)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return httperr.New(http.StatusUnsupportedMediaType, httperr.KindBadRequest, fmt.Errorf("content type %.60q", ct))
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err // *http.MaxBytesError: 413
	}
	var req purchaseRequest
	if err := wsguard.DecodeJSON(body, &req); err != nil {
		return httperr.BadRequest(`Send {"sku": "…", "qty": 1–100}.`, err)
	}
	remaining, err := a.inv.Purchase(r.Context(), req.SKU, req.Qty)
	switch {
	case errors.Is(err, errNoSuchProduct):
		return httperr.NotFound(err)
	case errors.Is(err, errOutOfStock):
		e := httperr.New(http.StatusConflict, httperr.KindClient, err)
		e.Message = "Not enough stock."
		return e
	case err != nil:
		return err
	}
	order := rand.Text()
	a.log.InfoContext(r.Context(), "purchase", "user", sess.User, "sku", req.SKU, "qty", req.Qty,
		"order", order, "request_id", httperr.RequestID(r.Context()))
	return writeJSON(w, http.StatusOK, map[string]any{"order": order, "remaining": remaining})
}

// upload counts the body; MaxBytes on the route answers 413 from
// Content-Length before a byte is read, or cuts a chunked body at 1 MiB.
func (a *app) upload(w http.ResponseWriter, r *http.Request) error {
	n, err := io.Copy(io.Discard, r.Body)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]int64{"bytes": n})
}

func parseDelay(s string, limit time.Duration) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > limit {
		return 0, httperr.BadRequest(fmt.Sprintf("The delay must be a duration from 0 to %s.", limit), err)
	}
	return d, nil
}

// quote calls the upstream with a deadline: WaitFor cancels the call when it
// expires and the client gets 504, in time, whatever the upstream does.
func (a *app) quote(w http.ResponseWriter, r *http.Request) error {
	delay, err := parseDelay(r.URL.Query().Get("upstream_delay"), maxUpstreamDelay)
	if err != nil {
		return err
	}
	target := a.upstreamURL + "/price?delay=" + delay.String()
	price, err := timeouts.WaitFor(r.Context(), a.cfg.UpstreamTimeout, func(ctx context.Context) (json.RawMessage, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return nil, err
		}
		resp, err := a.client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("upstream answered %d", resp.StatusCode)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, err
		}
		if !json.Valid(b) {
			return nil, errors.New("upstream sent invalid JSON")
		}
		return b, nil
	})
	switch {
	case errors.Is(err, timeouts.ErrTimeout) || errors.Is(err, context.DeadlineExceeded):
		return httperr.New(http.StatusGatewayTimeout, httperr.KindTimeout, err)
	case err != nil:
		return httperr.New(http.StatusBadGateway, httperr.KindInternal, err)
	}
	return writeJSON(w, http.StatusOK, map[string]json.RawMessage{"quote": price})
}

// fakeUpstream stands for a remote pricing service that is slow on demand.
func fakeUpstream(w http.ResponseWriter, r *http.Request) {
	d, err := parseDelay(r.URL.Query().Get("delay"), maxUpstreamDelay)
	if err != nil {
		http.Error(w, "bad delay", http.StatusBadRequest)
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"sku":"limited","price":"12.50"}`)
}

func (a *app) serveStatic(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	switch name {
	case "chat.js", "search.js", "site.css":
	default:
		httperr.WriteStatus(w, r, http.StatusNotFound)
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=300")
	http.ServeFileFS(w, r, a.static, name)
}

// boomAsync starts a background task that panics: the supervisor recovers
// it, logs it with its stack and counts it; the process lives on.
func (a *app) boomAsync(w http.ResponseWriter, r *http.Request) {
	a.sup.Detach(r.Context(), "demo-boom-async", func(context.Context) error {
		panic("demo fault: background task panicked")
	})
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, "accepted\n")
}

// slow sleeps d, giving up when the context ends; the route's 3 s deadline
// answers 503 by itself.
func (a *app) slow(w http.ResponseWriter, r *http.Request) {
	d, err := parseDelay(r.URL.Query().Get("d"), maxSlowDelay)
	if err != nil {
		httperr.Write(w, r, err)
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		_, _ = io.WriteString(w, "slept "+d.String()+"\n")
	case <-r.Context().Done():
		// Deadline has answered (503) or the client left.
	}
}

// chatMessage is the only message the chat accepts and sends.
type chatMessage struct {
	Text string `json:"text"`
}

func (m *chatMessage) Validate() error {
	if strings.TrimSpace(m.Text) == "" {
		return errors.New("empty message")
	}
	return nil
}

// chatSocket: the guard checks the origin, the connection caps, message size
// (4 KiB, 1009), rate (1008), strict JSON (1007/1003), idle peers and
// heartbeats; the hub gives every client its own bounded queue.
func (a *app) chatSocket(w http.ResponseWriter, r *http.Request) {
	c, err := a.guard.Accept(w, r)
	if err != nil {
		return // answered: 403, 429, 503…
	}
	defer c.CloseNow()
	leave := a.hub.Join(c)
	defer leave()
	for {
		var m chatMessage
		if err := c.ReadJSON(c.Context(), &m); err != nil {
			return
		}
		a.metrics.chatMessages.Inc()
		b, err := json.Marshal(chatMessage{Text: m.Text}) // escapes <, > and &
		if err != nil {
			return
		}
		a.hub.Broadcast(websocket.MessageText, b)
	}
}

package main

import (
	"context"
	"crypto/tls"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	chimw "github.com/go-chi/chi/v5/middleware"

	"github.com/stormcellar/stormcellar/cookiesecret"
	"github.com/stormcellar/stormcellar/httperr"
	"github.com/stormcellar/stormcellar/middleware"
	"github.com/stormcellar/stormcellar/safetmpl"
	"github.com/stormcellar/stormcellar/tasks"
	"github.com/stormcellar/stormcellar/timeouts"
	"github.com/stormcellar/stormcellar/wsguard"
	"github.com/stormcellar/stormcellar/wsorigin"
)

//go:embed templates static
var assets embed.FS

// Limits of the routes, in one place so the README can point at them.
const (
	purchaseBodyLimit = 4 << 10 // POST /api/purchase
	uploadBodyLimit   = 1 << 20 // POST /api/upload
	chatMessageLimit  = 4 << 10 // one WebSocket message
	routeDeadline     = 10 * time.Second
	slowRouteDeadline = 3 * time.Second // GET /slow
	maxUpstreamDelay  = 30 * time.Second
	maxSlowDelay      = time.Minute

	// Failed logins (loginLimiter): 10 for one account from one client
	// address, one more every 6 s; 100 for one account from all addresses
	// together, one more every 2 s (30 a minute, three addresses' worth).
	loginFailuresPerClient  = 10
	loginRefillPerClient    = 6 * time.Second
	loginFailuresPerAccount = 100
	loginRefillPerAccount   = 2 * time.Second
	maxLoginCounters        = 1 << 17

	// Sessions (memSessions): 100,000 in all, 10 for one user.
	maxSessions        = 100_000
	maxSessionsPerUser = 10
)

// app is the whole service: its stores, its defences and its three servers
// (public, admin, and the fake upstream that /api/quote calls).
type app struct {
	cfg config
	log *slog.Logger

	inv      Inventory
	sessions Sessions
	session  *cookiesecret.Cookie
	xsrf     *cookiesecret.XSRF
	logins   *loginLimiter
	pages    *safetmpl.Set
	static   fs.FS
	guard    *wsguard.Guard
	hub      *wsguard.Hub
	sup      *tasks.Supervisor
	client   *http.Client
	metrics  *metrics

	upstreamURL string // set by serve before the public server starts

	srv      *timeouts.Server
	adminSrv *timeouts.Server
	upSrv    *timeouts.Server
}

func withDefaults(cfg config) config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RatePerMinute <= 0 {
		cfg.RatePerMinute = 600
	}
	if cfg.ConcPerClient <= 0 {
		cfg.ConcPerClient = 64
	}
	if cfg.WSMessageRate <= 0 {
		cfg.WSMessageRate = 5
	}
	def(&cfg.ReadHeaderTimeout, timeouts.DefaultReadHeaderTimeout)
	def(&cfg.BodyRateWindow, 10*time.Second)
	def(&cfg.ShutdownTimeout, 15*time.Second)
	def(&cfg.UpstreamTimeout, 2*time.Second)
	def(&cfg.SessionTTL, 12*time.Hour)
	def(&cfg.WSPingInterval, wsguard.DefaultPingInterval)
	def(&cfg.WSIdleTimeout, wsguard.DefaultIdleTimeout)
	def(&cfg.MaxLatency, 250*time.Millisecond)
	return cfg
}

func newApp(cfg config) (*app, error) {
	cfg = withDefaults(cfg)
	if cfg.Keyring == nil {
		return nil, fmt.Errorf("%w: no keyring", errBadConfig)
	}
	a := &app{
		cfg:      cfg,
		log:      cfg.Logger,
		inv:      newMemInventory(seedProducts()),
		sessions: newMemSessions(cfg.SessionTTL, cfg.Now, maxSessions, maxSessionsPerUser),
		hub:      wsguard.NewHub(wsguard.HubOptions{}),
	}
	var err error
	a.metrics = newMetrics()

	// Signed session cookie: __Host- (Secure, host-only, Path=/),
	// HttpOnly, SameSite=Lax; the server-side session adds logout and
	// expiry.
	if a.session, err = cookiesecret.NewCookie(cfg.Keyring, cookiesecret.CookieOptions{
		Name: "__Host-session", MaxAge: cfg.SessionTTL, SessionOnly: true,
	}); err != nil {
		return nil, err
	}
	// XSRF: http.CrossOriginProtection plus a masked token bound to the
	// session.
	if a.xsrf, err = cookiesecret.NewXSRF(cfg.Keyring, cookiesecret.XSRFOptions{
		TrustedOrigins: cfg.AllowedOrigins,
		Session:        a.sessionID,
		Logger:         cfg.Logger,
	}); err != nil {
		return nil, err
	}
	// Password guessing: failed logins per account and client address, and
	// per account. middleware.RateLimit counts every request and has no
	// refund, and a login limit must count failures only (or anyone could
	// lock an account's owner out), so the login handler keeps its own.
	a.logins = newLoginLimiter(
		loginBudget{burst: loginFailuresPerClient, refill: loginRefillPerClient},
		loginBudget{burst: loginFailuresPerAccount, refill: loginRefillPerAccount},
		maxLoginCounters, cfg.Now)

	tmpl, err := fs.Sub(assets, "templates")
	if err != nil {
		return nil, err
	}
	if a.pages, err = safetmpl.New(safetmpl.Options{
		FS: tmpl, Shared: []string{"layout.html"}, Logger: cfg.Logger,
	}); err != nil {
		return nil, err
	}
	if a.static, err = fs.Sub(assets, "static"); err != nil {
		return nil, err
	}

	policy, err := wsorigin.New(wsorigin.Options{PublicOrigin: cfg.PublicOrigin, Allowed: cfg.AllowedOrigins})
	if err != nil {
		return nil, err
	}
	if a.guard, err = wsguard.New(wsguard.Options{
		Origin:            policy,
		MaxConns:          1000,
		MaxConnsPerClient: 8,
		MaxMessageBytes:   chatMessageLimit,
		MessageRate:       cfg.WSMessageRate,
		PingInterval:      cfg.WSPingInterval,
		IdleTimeout:       cfg.WSIdleTimeout,
		Logger:            cfg.Logger,
	}); err != nil {
		return nil, err
	}
	a.sup = tasks.New(tasks.Options{Logger: cfg.Logger, Observer: a.metrics.task, Timeout: time.Minute})
	if a.client, err = timeouts.NewClient(timeouts.ClientOptions{
		ResponseHeaderTimeout: cfg.UpstreamTimeout, Timeout: 2 * cfg.UpstreamTimeout,
		MaxResponseBytes: 64 << 10, NoRedirects: true,
	}); err != nil {
		return nil, err
	}

	handler, err := a.publicHandler()
	if err != nil {
		return nil, err
	}
	var tlsConf *tls.Config
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("TLS key pair: %w", err)
		}
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	}
	perClient := 128
	if len(cfg.TrustedProxies) > 0 {
		perClient = 1024 // every client arrives through the proxies
	}
	if a.srv, err = timeouts.NewServer(handler, timeouts.ServerOptions{
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		MaxHeaderBytes:    32 << 10,
		BodyRateWindow:    cfg.BodyRateWindow,
		MaxConnsPerClient: perClient,
		ShutdownTimeout:   cfg.ShutdownTimeout,
		TLSConfig:         tlsConf,
		Logger:            cfg.Logger,
	}); err != nil {
		return nil, err
	}
	if a.adminSrv, err = timeouts.NewServer(a.adminHandler(), timeouts.ServerOptions{
		ReadHeaderTimeout: cfg.ReadHeaderTimeout, ShutdownTimeout: cfg.ShutdownTimeout, Logger: cfg.Logger,
	}); err != nil {
		return nil, err
	}
	if a.upSrv, err = timeouts.NewServer(http.HandlerFunc(fakeUpstream), timeouts.ServerOptions{
		ReadHeaderTimeout: cfg.ReadHeaderTimeout, ShutdownTimeout: time.Second, Logger: cfg.Logger,
	}); err != nil {
		return nil, err
	}
	a.metrics.gauges(a)
	return a, nil
}

// publicHandler is the middleware stack, in the order of
// middleware.Example_chain, and the routes.
func (a *app) publicHandler() (http.Handler, error) {
	cfg := a.cfg
	var proxies []string
	for _, p := range cfg.TrustedProxies {
		proxies = append(proxies, p.String())
	}
	ids, err := middleware.NewRequestID(middleware.RequestIDOptions{TrustedProxies: cfg.TrustedProxies})
	if err != nil {
		return nil, err
	}
	headers, err := middleware.NewSecureHeaders(middleware.SecureHeadersOptions{TrustedProxies: cfg.TrustedProxies})
	if err != nil {
		return nil, err
	}
	rate, err := middleware.NewRateLimit(middleware.RateLimitOptions{Limit: cfg.RatePerMinute, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	shed, err := middleware.NewLoadShed(middleware.LoadShedOptions{MaxLatency: cfg.MaxLatency, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	conc, err := middleware.NewConcurrencyLimit(middleware.ConcurrencyLimitOptions{PerClient: cfg.ConcPerClient})
	if err != nil {
		return nil, err
	}

	stack := []func(http.Handler) http.Handler{
		httperr.Install(httperr.Options{Logger: cfg.Logger, Observer: a.metrics.rejection, InsecureExposeCause: cfg.Debug}),
		a.metrics.count,
	}
	if len(proxies) > 0 {
		stack = append(stack, chimw.ClientIPFromXFF(proxies...))
	}
	stack = append(stack, ids.Handler, headers.Handler, middleware.Recover)
	if cfg.Prod && cfg.TLSCert == "" && cfg.PublicOrigin != "" {
		u, err := wsorigin.ParseOrigin(cfg.PublicOrigin)
		if err != nil {
			return nil, err
		}
		toHTTPS, err := middleware.NewHTTPSRedirect(middleware.HTTPSRedirectOptions{
			Hosts: []string{u.Host}, Port: int(u.Port), TrustedProxies: cfg.TrustedProxies,
		})
		if err != nil {
			return nil, err
		}
		stack = append(stack, toHTTPS.Handler)
	}
	stack = append(stack,
		middleware.MaxURLLength(middleware.MaxURLLengthOptions{Limit: 4 << 10}),
		rate.Handler, shed.Handler, conc.Handler,
		middleware.MaxBytes(middleware.MaxBytesOptions{Limit: 64 << 10}),
	)
	return middleware.Chain(stack...)(a.routes()), nil
}

func (a *app) routes() http.Handler {
	r := chi.NewRouter()
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { httperr.WriteStatus(w, r, http.StatusNotFound) })
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		httperr.WriteStatus(w, r, http.StatusMethodNotAllowed)
	})
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok"))
	})
	r.Get("/static/{name}", a.serveStatic)
	// The WebSocket route owns its connection: no handler deadline; the
	// guard's heartbeat, idle and write timeouts bound it instead.
	r.Get("/ws/chat", a.chatSocket)

	r.Group(func(r chi.Router) {
		r.Use(a.xsrf.Handler) // every unsafe method below: origin + token
		r.Group(func(r chi.Router) {
			r.Use(timeouts.Deadline(timeouts.DeadlineOptions{Timeout: routeDeadline}))
			r.Get("/", a.pages.Handler("home.html", a.homeData).ServeHTTP)
			r.Get("/search", a.pages.Handler("search.html", a.searchData).ServeHTTP)
			r.Get("/login", a.pages.Handler("login.html", nil).ServeHTTP)
			r.Post("/login", httperr.HandlerFunc(a.loginPost).ServeHTTP)
			r.Post("/logout", httperr.HandlerFunc(a.logout).ServeHTTP)
			r.Get("/me", a.pages.Handler("me.html", a.meData).ServeHTTP)
			r.Get("/chat", a.pages.Handler("chat.html", nil).ServeHTTP)
			r.Get("/api/products", httperr.HandlerFunc(a.products).ServeHTTP)
			r.With(middleware.MaxBytes(middleware.MaxBytesOptions{Limit: purchaseBodyLimit})).
				Post("/api/purchase", httperr.HandlerFunc(a.purchase).ServeHTTP)
			r.With(middleware.MaxBytes(middleware.MaxBytesOptions{Limit: uploadBodyLimit})).
				Post("/api/upload", httperr.HandlerFunc(a.upload).ServeHTTP)
			r.Get("/api/quote", httperr.HandlerFunc(a.quote).ServeHTTP)
			if a.cfg.DemoFaults {
				r.Get("/boom", func(http.ResponseWriter, *http.Request) { panic("demo fault: handler panicked") })
				r.Get("/boom-async", a.boomAsync)
			}
		})
		if a.cfg.DemoFaults {
			r.With(timeouts.Deadline(timeouts.DeadlineOptions{Timeout: slowRouteDeadline})).Get("/slow", a.slow)
		}
	})
	return r
}

// serve runs the three servers until ctx is done, then shuts them down
// gracefully: in-flight requests finish, WebSockets get 1001, background
// tasks drain.
func (a *app) serve(ctx context.Context, ln, adminLn net.Listener) error {
	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	a.upstreamURL = "http://" + upLn.Addr().String()
	// The WebSocket guard is drained with the server: close 1001 to every
	// chat client, then the process may exit.
	if err := a.srv.Registry().TrackShutdowner(a.guard); err != nil {
		return err
	}
	if err := a.sup.Every(ctx, tasks.Periodic{
		Name: "expire-sessions", Interval: time.Minute,
		Run: func(ctx context.Context) error { a.sessions.Expire(ctx); return nil },
	}); err != nil {
		if ctx.Err() != nil {
			return nil // asked to stop while starting: a clean stop
		}
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 3)
	named := func(name string, err error) error {
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}
	go func() { errc <- named("upstream", a.upSrv.Serve(ctx, upLn)) }()
	go func() { errc <- named("admin", a.adminSrv.Serve(ctx, adminLn)) }()
	go func() { errc <- named("public", a.srv.Serve(ctx, ln)) }()
	var errs []error
	for range 3 {
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
			cancel() // one server failed: stop the others
		}
	}
	a.hub.Close()
	a.client.CloseIdleConnections()
	sctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	if err := a.sup.Shutdown(sctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

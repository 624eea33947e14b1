package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/stormcellar/stormcellar/cookiesecret"
	"github.com/stormcellar/stormcellar/wsorigin"
)

// config is everything the service is started with. The zero value of every
// limit field means the production default; tests shorten some of them.
type config struct {
	Addr       string
	AdminAddr  string
	Prod       bool
	DemoFaults bool
	// Debug shows causes and stacks on error pages. Refused in production.
	Debug bool

	Keyring       *cookiesecret.Keyring
	EphemeralKeys bool // no secret was configured: one was generated

	AllowedOrigins []string
	PublicOrigin   string
	TrustedProxies []netip.Prefix
	TLSCert        string
	TLSKey         string

	Logger *slog.Logger
	Now    func() time.Time

	// Limits (zero: the defaults below).
	RatePerMinute     int
	ConcPerClient     int
	ReadHeaderTimeout time.Duration
	BodyRateWindow    time.Duration
	ShutdownTimeout   time.Duration
	UpstreamTimeout   time.Duration
	SessionTTL        time.Duration
	WSMessageRate     float64
	WSPingInterval    time.Duration
	WSIdleTimeout     time.Duration
	MaxLatency        time.Duration
}

const (
	defaultAddr      = "127.0.0.1:8080"
	defaultAdminAddr = "127.0.0.1:9090"
)

// parseConfig reads flags, then the environment for what the flags left
// unset. It returns every problem found; in production it also applies the
// production refusals (productionProblems).
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, []string, error) {
	fs := flag.NewFlagSet("hardened", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	fs.StringVar(&cfg.Addr, "addr", "", "listen address (env STORMCELLAR_ADDR; default "+defaultAddr+")")
	fs.StringVar(&cfg.AdminAddr, "admin-addr", "", "admin listener for /metrics (env STORMCELLAR_ADMIN_ADDR; default "+defaultAdminAddr+")")
	fs.BoolVar(&cfg.Prod, "prod", false, "production mode: refuse insecure settings (env STORMCELLAR_ENV=production)")
	fs.BoolVar(&cfg.DemoFaults, "demo-faults", false, "serve the fault routes /boom, /boom-async and /slow")
	fs.BoolVar(&cfg.Debug, "debug", false, "show causes and stacks on error pages (env STORMCELLAR_DEBUG=1); refused in production")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "TLS certificate file (env STORMCELLAR_TLS_CERT)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "TLS key file (env STORMCELLAR_TLS_KEY)")
	fs.StringVar(&cfg.PublicOrigin, "public-origin", "", "origin browsers use, e.g. https://shop.example (env STORMCELLAR_PUBLIC_ORIGIN)")
	if err := fs.Parse(args); err != nil {
		return cfg, nil, err
	}
	if fs.NArg() > 0 {
		return cfg, nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	orEnv := func(v *string, name, def string) {
		if *v == "" {
			*v = strings.TrimSpace(getenv(name))
		}
		if *v == "" {
			*v = def
		}
	}
	orEnv(&cfg.Addr, "STORMCELLAR_ADDR", defaultAddr)
	orEnv(&cfg.AdminAddr, "STORMCELLAR_ADMIN_ADDR", defaultAdminAddr)
	orEnv(&cfg.TLSCert, "STORMCELLAR_TLS_CERT", "")
	orEnv(&cfg.TLSKey, "STORMCELLAR_TLS_KEY", "")
	orEnv(&cfg.PublicOrigin, "STORMCELLAR_PUBLIC_ORIGIN", "")
	switch env := strings.TrimSpace(getenv("STORMCELLAR_ENV")); env {
	case "production":
		cfg.Prod = true
	case "", "development":
	default:
		return cfg, nil, fmt.Errorf("STORMCELLAR_ENV=%q: want production or development", env)
	}
	if d := strings.TrimSpace(getenv("STORMCELLAR_DEBUG")); d != "" && d != "0" && d != "false" {
		cfg.Debug = true
	}

	var problems []string
	if text := getenv("STORMCELLAR_COOKIE_SECRETS"); strings.TrimSpace(text) != "" {
		ring, err := cookiesecret.ParseKeyring(text)
		if err != nil {
			// The error names the entry and the reason, never the secret.
			problems = append(problems, "STORMCELLAR_COOKIE_SECRETS is refused: "+oneLine(err))
		}
		cfg.Keyring = ring
	} else if cfg.Prod {
		problems = append(problems, "STORMCELLAR_COOKIE_SECRETS is not set: production needs a cookie secret (id:base64 of at least 32 random bytes; `head -c32 /dev/urandom | base64`)")
	} else {
		ring, err := cookiesecret.NewKeyring(cookiesecret.Key{ID: "dev", Secret: cookiesecret.GenerateSecret()})
		if err != nil {
			return cfg, nil, err
		}
		cfg.Keyring, cfg.EphemeralKeys = ring, true
	}

	if list := strings.TrimSpace(getenv("STORMCELLAR_ALLOWED_ORIGINS")); list != "" {
		for i, o := range strings.Split(list, ",") {
			o = strings.TrimSpace(o)
			if o == "" {
				continue
			}
			if cfg.Prod {
				switch {
				case strings.Contains(o, "*"):
					problems = append(problems, fmt.Sprintf("STORMCELLAR_ALLOWED_ORIGINS entry %d %q is a wildcard: list every origin in full in production", i+1, clip(o)))
					continue
				case !strings.HasPrefix(strings.ToLower(o), "https://"):
					problems = append(problems, fmt.Sprintf("STORMCELLAR_ALLOWED_ORIGINS entry %d %q is not https://: a plain-HTTP origin can be impersonated on the network", i+1, clip(o)))
					continue
				}
			}
			cfg.AllowedOrigins = append(cfg.AllowedOrigins, o)
		}
		if _, err := wsorigin.New(wsorigin.Options{Allowed: cfg.AllowedOrigins}); err != nil {
			for _, e := range unjoin(err) {
				problems = append(problems, "STORMCELLAR_ALLOWED_ORIGINS is refused: "+oneLine(e))
			}
		}
	}
	if list := strings.TrimSpace(getenv("STORMCELLAR_TRUSTED_PROXIES")); list != "" {
		for i, p := range strings.Split(list, ",") {
			p = strings.TrimSpace(p)
			if p == "" {
				continue
			}
			pfx, err := netip.ParsePrefix(p)
			if err != nil {
				addr, aerr := netip.ParseAddr(p)
				if aerr != nil {
					problems = append(problems, fmt.Sprintf("STORMCELLAR_TRUSTED_PROXIES entry %d %q is not a CIDR prefix", i+1, clip(p)))
					continue
				}
				pfx = netip.PrefixFrom(addr, addr.BitLen())
			}
			cfg.TrustedProxies = append(cfg.TrustedProxies, pfx.Masked())
		}
	}
	if cfg.PublicOrigin != "" {
		o, err := wsorigin.ParseOrigin(cfg.PublicOrigin)
		switch {
		case err != nil:
			problems = append(problems, "STORMCELLAR_PUBLIC_ORIGIN is refused: "+oneLine(err))
		case cfg.Prod && o.Scheme != "https":
			problems = append(problems, "STORMCELLAR_PUBLIC_ORIGIN is not https:// in production")
		default:
			cfg.PublicOrigin = o.String()
		}
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		problems = append(problems, "-tls-cert and -tls-key must be given together")
	}
	if cfg.Prod {
		problems = append(problems, productionProblems(cfg)...)
	}
	return cfg, problems, nil
}

// productionProblems lists the settings production refuses, beyond the
// secret and origin checks made while parsing.
func productionProblems(cfg config) []string {
	var p []string
	if cfg.Debug {
		p = append(p, "debug mode is on (-debug or STORMCELLAR_DEBUG): it shows causes and stacks to clients")
	}
	if cfg.DemoFaults {
		p = append(p, "-demo-faults is on: the fault routes must never be served in production")
	}
	if !isLoopback(cfg.AdminAddr) {
		p = append(p, fmt.Sprintf("admin listener %q is not on a loopback address: metrics must not be public", cfg.AdminAddr))
	}
	if cfg.TLSCert == "" && len(cfg.TrustedProxies) == 0 {
		p = append(p, "no TLS: set -tls-cert/-tls-key, or STORMCELLAR_TRUSTED_PROXIES to the proxy that terminates TLS")
	}
	if cfg.TLSCert == "" && len(cfg.TrustedProxies) > 0 && cfg.PublicOrigin == "" {
		p = append(p, "STORMCELLAR_PUBLIC_ORIGIN is not set: behind a TLS-terminating proxy the service must be told its https:// origin")
	}
	return p
}

// isLoopback reports whether addr (host:port) listens on loopback only.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func clip(s string) string {
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	if _, err := url.Parse(s); err != nil {
		return "(unparseable)"
	}
	return s
}

var errBadConfig = errors.New("invalid configuration")

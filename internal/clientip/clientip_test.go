package clientip

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	chimw "github.com/go-chi/chi/v5/middleware"
	"go.uber.org/goleak"

	"github.com/stormcellar/stormcellar/internal/reqstate"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestAddr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		remote   string
		xff      string
		resolver func(http.Handler) http.Handler
		want     string
	}{
		{"peer v4", "203.0.113.9:4711", "", nil, "203.0.113.9"},
		{"peer v6", "[2001:db8::1%eth0]:443", "", nil, "2001:db8::1"},
		{"mapped", "[::ffff:198.51.100.2]:80", "", nil, "198.51.100.2"},
		{"no port", "198.51.100.3", "", nil, "198.51.100.3"},
		{"garbage", "not an address", "", nil, "invalid IP"},
		{"spoofed XFF without resolver", "203.0.113.9:1", "1.2.3.4", nil, "203.0.113.9"},
		{"spoofed XFF from untrusted peer", "203.0.113.9:1", "1.2.3.4", chimw.ClientIPFromXFF("10.0.0.0/8"), "203.0.113.9"},
		{"XFF from trusted proxy", "10.0.0.5:1", "1.2.3.4", chimw.ClientIPFromXFF("10.0.0.0/8"), "1.2.3.4"},
		{"XFF chain, rightmost untrusted wins", "10.0.0.5:1", "6.6.6.6, 1.2.3.4", chimw.ClientIPFromXFF("10.0.0.0/8"), "1.2.3.4"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest("GET", "/", nil)
			req.RemoteAddr = tc.remote
			if tc.xff != "" {
				req.Header.Set("X-Forwarded-For", tc.xff)
			}
			var got netip.Addr
			h := http.Handler(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got = Addr(r) }))
			if tc.resolver != nil {
				h = tc.resolver(h)
			}
			h.ServeHTTP(httptest.NewRecorder(), req)
			if got.String() != tc.want {
				t.Errorf("Addr = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestGroup(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"203.0.113.9":             "203.0.113.9/32",
		"2001:db8:1:2:aaaa::1":    "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::9999": "2001:db8:1:2::/64",
		// NAT64: one IPv4 client each, not one /64 for all of them.
		"64:ff9b::c000:201":     "64:ff9b::c000:201/128",
		"64:ff9b::cb00:7107":    "64:ff9b::cb00:7107/128",
		"64:ff9b:1:2::c000:201": "64:ff9b:1:2::c000:201/128",
		"64:ff9b:0:0:1::1":      "64:ff9b::/64", // outside 64:ff9b::/96
		"64:ff9c::1":            "64:ff9c::/64",
	} {
		if got := Group(netip.MustParseAddr(in)); got.String() != want {
			t.Errorf("Group(%s) = %s, want %s", in, got, want)
		}
	}
	if Group(netip.Addr{}).IsValid() {
		t.Error("zero Addr must map to the zero Prefix")
	}
}

func TestPeerOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("::ffff:203.0.113.9"), Port: 80}, "203.0.113.9"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 80, Zone: "eth0"}, "2001:db8::1"},
		{&net.UnixAddr{Name: "/tmp/sock", Net: "unix"}, "invalid IP"},
		{nil, "invalid IP"},
	}
	for _, tc := range tests {
		if got := PeerOf(tc.addr); got.String() != tc.want {
			t.Errorf("PeerOf(%v) = %s, want %s", tc.addr, got, tc.want)
		}
	}
}

// TestPeerWithState checks that the peer the request state parsed once is
// the one Peer would parse without a state, and that a RemoteAddr
// rewritten after the state was created (chi's RealIP does that, from a
// header the client chose) changes nothing: the peer stays the
// connection's.
func TestPeerWithState(t *testing.T) {
	t.Parallel()
	for _, remote := range []string{
		"203.0.113.9:4711", "[2001:db8::1%eth0]:443", "[::ffff:198.51.100.2]:80",
		"198.51.100.3", "not an address", "",
	} {
		req := httptest.NewRequest("GET", "/", nil)
		req.RemoteAddr = remote
		want := Peer(req)
		_, _, r := reqstate.Ensure(httptest.NewRecorder(), req)
		if got := Peer(r); got != want {
			t.Errorf("RemoteAddr %q: Peer with state = %s, without = %s", remote, got, want)
		}
		r.RemoteAddr = "10.6.6.6:1"
		if got := Peer(r); got != want {
			t.Errorf("RemoteAddr %q rewritten to 10.6.6.6:1: Peer = %s, want %s", remote, got, want)
		}
	}
}

//go:build linux

package dataplane

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// The lab of the end-to-end test: a server namespace and a client namespace
// joined by a veth pair. The server's NIC holds a primary address and the
// VIP (secondary) of each family; the kernel picks the primary address as
// the source of anything not bound to the VIP.
const (
	labPrimary4 = "192.0.2.1"
	labVIP4     = "192.0.2.10"
	labClient4  = "192.0.2.2"
	labPrimary6 = "2001:db8::1"
	labVIP6     = "2001:db8::10"
	labClient6  = "2001:db8::2"
	labPort     = 51820
)

type lab struct {
	kind     string    // the server interface's data plane
	srv, cli string    // namespaces
	n        *nsThread // in srv
	d        Device    // the server interface, in srv
	cfg      Config
	pub      string // the server's public key
}

// newLabKind builds the namespaces and the server interface of the given
// kind with SourceAddrs = the VIPs, up, with the given peers.
func newLabKind(t *testing.T, kind string, peers []Peer) *lab {
	t.Helper()
	l := &lab{kind: kind, srv: newNetns(t), cli: newNetns(t)}
	vs, vc := uniqueName("rgdpv"), uniqueName("rgdpv")
	run(t, "ip", "link", "add", vs, "netns", l.srv, "type", "veth", "peer", "name", vc, "netns", l.cli)
	for _, a := range []string{labPrimary4 + "/24", labVIP4 + "/24"} {
		run(t, "ip", "-n", l.srv, "addr", "add", a, "dev", vs)
	}
	for _, a := range []string{labPrimary6 + "/64", labVIP6 + "/64"} {
		run(t, "ip", "-n", l.srv, "addr", "add", a, "dev", vs, "nodad")
	}
	run(t, "ip", "-n", l.cli, "addr", "add", labClient4+"/24", "dev", vc)
	run(t, "ip", "-n", l.cli, "addr", "add", labClient6+"/64", "dev", vc, "nodad")
	run(t, "ip", "-n", l.srv, "link", "set", vs, "up")
	run(t, "ip", "-n", l.cli, "link", "set", vc, "up")

	l.n = startNSThread(t, l.srv)
	name := uniqueName("rgdp")
	l.d = openKindIn(t, l.n, name, kind)
	key := testKey(t)
	l.pub = key.PublicKey().String()
	l.cfg = Config{
		PrivateKey:  key.String(),
		ListenPort:  labPort,
		Addresses:   []netip.Prefix{netip.MustParsePrefix("198.51.100.1/24"), netip.MustParsePrefix("fd00:99::1/64")},
		Peers:       peers,
		SourceAddrs: []netip.Addr{netip.MustParseAddr(labVIP4), netip.MustParseAddr(labVIP6)},
		Up:          true,
	}
	set(t, l.n, l.d, l.cfg)
	l.checkSockets(t, []string{labVIP4 + ":51820", "[" + labVIP6 + "]:51820"})
	return l
}

// checkSockets checks the userspace server's open sockets; the kernel's
// are not the package's to see (its source comes from the routing).
func (l *lab) checkSockets(t *testing.T, want []string) {
	t.Helper()
	if l.kind != KindUserspace {
		return
	}
	if b := boundAddrs(l.n, l.d); !slices.Equal(b, want) {
		t.Fatalf("server sockets %v, want %v", b, want)
	}
}

// client starts a wireguard-go client in the client namespace listening on
// port, with tunnel address addr and the server as its one peer (at
// serverEndpoint if valid, else with no endpoint: the server must call). It
// returns the client and the Peer for the server's config.
func (l *lab) client(t *testing.T, port int, addr netip.Prefix, serverEndpoint netip.AddrPort) *wgClient {
	t.Helper()
	c := startWGClient(t, l.cli)
	serverTunnel := "198.51.100.1/32"
	if addr.Addr().Is6() {
		serverTunnel = "fd00:99::1/128"
	}
	args := []string{"listen-port", fmt.Sprint(port), "peer", l.pub, "allowed-ips", serverTunnel}
	if serverEndpoint.IsValid() {
		args = append(args, "endpoint", serverEndpoint.String())
	}
	c.set(t, args...)
	run(t, "ip", "-n", l.cli, "addr", "add", addr.String(), "dev", c.name)
	run(t, "ip", "-n", l.cli, "link", "set", c.name, "up")
	return c
}

// peerOf returns the server-side Peer for client c.
func peerOf(c *wgClient, addr netip.Prefix, endpoint netip.AddrPort) Peer {
	return Peer{PublicKey: c.pub, AllowedIPs: []netip.Prefix{addr}, Endpoint: endpoint}
}

// ping pings dst from the client namespace once.
func (l *lab) ping(dst string) error {
	_, err := runErr("ip", "netns", "exec", l.cli, "ping", "-c", "1", "-W", "1", dst)
	return err
}

// waitEndpoint polls until client c sees the server at want, and fails the
// test otherwise.
func (l *lab) waitEndpoint(t *testing.T, c *wgClient, want string) {
	t.Helper()
	eventually(t, 20*time.Second, "client "+c.name+" has the server at "+want, func() error {
		got := c.peerField(t, "endpoints", l.pub)
		if got != want {
			return fmt.Errorf("client %s sees the server at %q", c.name, got)
		}
		if hs := c.peerField(t, "latest-handshakes", l.pub); hs == "" || hs == "0" {
			return fmt.Errorf("client %s: no handshake yet (endpoint %s)", c.name, got)
		}
		return nil
	})
}

// serverStats returns the server's view of client c.
func (l *lab) serverStats(t *testing.T, c *wgClient) PeerStats {
	t.Helper()
	var (
		stats []PeerStats
		err   error
	)
	l.n.do(func() { stats, err = l.d.Stats() })
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	for _, s := range stats {
		if s.PublicKey == c.pub {
			return s
		}
	}
	t.Fatalf("no stats for %s", c.pub)
	return PeerStats{}
}

func (l *lab) initiate(t *testing.T, c *wgClient, ep netip.AddrPort) {
	t.Helper()
	var err error
	l.n.do(func() { err = l.d.InitiateHandshake(c.pub, ep) })
	if err != nil {
		t.Fatalf("InitiateHandshake to %s: %v", c.name, err)
	}
}

// TestUserspaceVIPSource checks that every packet the server sends leaves
// from the VIP, whoever starts the handshake and over both families, and
// that the server sends nothing while down: the clients are Debian's
// wireguard-go and wg, and the proof is the server endpoint each client
// records (`wg show <if> endpoints`), which is the source address of what
// it received last.
func TestUserspaceVIPSource(t *testing.T) {
	testVIPSource(t, KindUserspace)
}

// TestKernelVIPSource is TestUserspaceVIPSource with the kernel's WireGuard
// as the server: there the VIP source comes from the firewall mark and the
// source routing (sourceroute_linux.go).
func TestKernelVIPSource(t *testing.T) {
	requireKernelWireGuard(t)
	testVIPSource(t, KindKernel)
}

func testVIPSource(t *testing.T, kind string) {
	requireRoot(t)
	requireTools(t, "wg", "wireguard-go", "ping")

	addrA := netip.MustParsePrefix("198.51.100.2/32") // v4, the client calls the VIP
	addrB := netip.MustParsePrefix("198.51.100.3/32") // v4, the server calls
	addrC := netip.MustParsePrefix("fd00:99::4/128")  // v6, the server calls
	addrD := netip.MustParsePrefix("fd00:99::5/128")  // v6, the client calls the VIP
	addrE := netip.MustParsePrefix("198.51.100.6/32") // v4, the server calls with the wildcard bind
	vip4 := netip.MustParseAddrPort(labVIP4 + ":51820")
	vip6 := netip.MustParseAddrPort("[" + labVIP6 + "]:51820")
	epB := netip.MustParseAddrPort(labClient4 + ":51902")
	epC := netip.MustParseAddrPort("[" + labClient6 + "]:51903")
	epE := netip.MustParseAddrPort(labClient4 + ":51905")

	// The clients exist before the server knows them (they need the
	// server's key, and the server theirs): build the lab with none, then
	// add them with one Set.
	l := newLabKind(t, kind, nil)
	a := l.client(t, 51901, addrA, vip4)
	run(t, "ip", "-n", l.cli, "route", "add", "198.51.100.1/32", "dev", a.name)
	b := l.client(t, 51902, addrB, netip.AddrPort{})
	c := l.client(t, 51903, addrC, netip.AddrPort{})
	d := l.client(t, 51904, addrD, vip6)
	run(t, "ip", "-n", l.cli, "route", "add", "fd00:99::1/128", "dev", d.name)
	e := l.client(t, 51905, addrE, netip.AddrPort{})
	l.cfg.Peers = []Peer{
		peerOf(a, addrA, netip.AddrPort{}),
		peerOf(b, addrB, epB), // endpoint known (stored), as after a failover
		peerOf(c, addrC, netip.AddrPort{}),
		peerOf(d, addrD, netip.AddrPort{}),
		peerOf(e, addrE, netip.AddrPort{}),
	}
	if !set(t, l.n, l.d, l.cfg) {
		t.Fatal("adding the clients reported no change")
	}

	t.Run("client initiates, IPv4", func(t *testing.T) {
		eventually(t, 20*time.Second, "ping 198.51.100.1 through the tunnel", func() error { return l.ping("198.51.100.1") })
		l.waitEndpoint(t, a, vip4.String())
		s := l.serverStats(t, a)
		if s.Endpoint != netip.MustParseAddrPort(labClient4+":51901") || s.LastHandshake.IsZero() || s.RxBytes == 0 || s.TxBytes == 0 {
			t.Fatalf("server stats for A: %+v", s)
		}
	})

	t.Run("client initiates, IPv6", func(t *testing.T) {
		eventually(t, 20*time.Second, "ping fd00:99::1 through the tunnel", func() error { return l.ping("fd00:99::1") })
		l.waitEndpoint(t, d, vip6.String())
	})

	t.Run("server initiates to a stored endpoint, IPv4", func(t *testing.T) {
		l.initiate(t, b, netip.AddrPort{})
		l.waitEndpoint(t, b, vip4.String())
		eventually(t, 10*time.Second, "server sees the handshake with B", func() error {
			if s := l.serverStats(t, b); s.LastHandshake.IsZero() || s.Endpoint != epB {
				return fmt.Errorf("server stats for B: %+v", s)
			}
			return nil
		})
	})

	t.Run("server initiates to a given endpoint, IPv6", func(t *testing.T) {
		l.initiate(t, c, epC)
		l.waitEndpoint(t, c, vip6.String())
	})

	t.Run("down sends nothing, up resumes", func(t *testing.T) {
		l.cfg.Up = false
		if !set(t, l.n, l.d, l.cfg) {
			t.Fatal("Set down reported no change")
		}
		if isUp(t, l.n, l.d) {
			t.Fatal("IsUp after Set down")
		}
		l.checkSockets(t, nil)
		// `wg show <if> transfer` is "<peer> <rx> <tx>": peerField gives rx.
		before := a.peerField(t, "transfer", l.pub)
		// The client keeps sending (pings, then handshake initiations);
		// the server must answer none of it.
		out, err := runErr("ip", "netns", "exec", l.cli, "ping", "-c", "3", "-i", "0.3", "-W", "1", "198.51.100.1")
		if err == nil {
			t.Fatalf("ping through a down server succeeded: %s", out)
		}
		if after := a.peerField(t, "transfer", l.pub); after != before {
			t.Fatalf("client A received %s bytes from the server before, %s after: a down server sent something", before, after)
		}

		l.cfg.Up = true
		if !set(t, l.n, l.d, l.cfg) {
			t.Fatal("Set up reported no change")
		}
		// As a new leader does: call the clients, so they need not wait
		// for their own retry.
		l.initiate(t, a, netip.AddrPort{})
		eventually(t, 20*time.Second, "ping after up", func() error { return l.ping("198.51.100.1") })
		l.waitEndpoint(t, a, vip4.String())
	})

	t.Run("control: the wildcard bind answers from the primary address", func(t *testing.T) {
		// Without SourceAddrs the kernel picks the source: the primary
		// address, the roaming the VIP sockets prevent. This checks that
		// the test above can tell the difference.
		l.cfg.SourceAddrs = nil
		if !set(t, l.n, l.d, l.cfg) {
			t.Fatal("Set without source addresses reported no change")
		}
		l.checkSockets(t, []string{"0.0.0.0:51820", "[::]:51820"})
		l.initiate(t, e, epE)
		l.waitEndpoint(t, e, labPrimary4+":51820")

		l.cfg.SourceAddrs = []netip.Addr{netip.MustParseAddr(labVIP4), netip.MustParseAddr(labVIP6)}
		if !set(t, l.n, l.d, l.cfg) {
			t.Fatal("Set with source addresses again reported no change")
		}
		l.checkSockets(t, []string{labVIP4 + ":51820", "[" + labVIP6 + "]:51820"})
	})
}

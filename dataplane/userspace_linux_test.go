//go:build linux

package dataplane

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// set applies cfg on the namespace's thread.
func set(t testing.TB, n *nsThread, d Device, cfg Config) bool {
	t.Helper()
	var (
		changed bool
		err     error
	)
	n.do(func() { changed, err = d.Set(cfg) })
	if err != nil {
		t.Fatalf("Set: %v", err)
	}
	return changed
}

func isUp(t testing.TB, n *nsThread, d Device) bool {
	t.Helper()
	var (
		up  bool
		err error
	)
	n.do(func() { up, err = d.IsUp() })
	if err != nil {
		t.Fatalf("IsUp: %v", err)
	}
	return up
}

// checkDump compares `wg show <name> dump` (through the UAPI socket) with
// cfg. It never prints the private key.
func checkDump(t *testing.T, name string, cfg Config) {
	t.Helper()
	checkDumpText(t, run(t, "wg", "show", name, "dump"), cfg)
}

// checkDumpText compares the output of `wg show <name> dump` with cfg.
func checkDumpText(t *testing.T, out string, cfg Config) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	head := strings.Split(lines[0], "\t")
	if len(head) != 4 {
		t.Fatalf("dump header has %d fields", len(head))
	}
	if head[0] != cfg.PrivateKey {
		t.Errorf("dump: private key differs from the config")
	}
	if head[1] != testKeyPublic(cfg.PrivateKey) || head[2] != fmt.Sprint(cfg.ListenPort) || head[3] != "off" {
		t.Errorf("dump header: public key %s port %s fwmark %s; want %s %d off", head[1], head[2], head[3], testKeyPublic(cfg.PrivateKey), cfg.ListenPort)
	}
	got := map[string][]string{}
	for _, l := range lines[1:] {
		f := strings.Split(l, "\t")
		if len(f) != 8 {
			t.Fatalf("dump peer line has %d fields", len(f))
		}
		got[f[0]] = f
	}
	if len(got) != len(cfg.Peers) {
		t.Errorf("dump has %d peers, config %d", len(got), len(cfg.Peers))
	}
	for _, p := range cfg.Peers {
		f, ok := got[p.PublicKey]
		if !ok {
			t.Errorf("peer %s missing from dump", p.PublicKey)
			continue
		}
		psk := p.PresharedKey
		if psk == "" {
			psk = "(none)"
		}
		if f[1] != psk {
			t.Errorf("peer %s: preshared key differs from the config", p.PublicKey)
		}
		var want []string
		for _, a := range p.AllowedIPs {
			want = append(want, a.Masked().String())
		}
		sort.Strings(want)
		var have []string
		if f[3] != "(none)" {
			have = strings.Split(f[3], ",")
		}
		sort.Strings(have)
		if !slices.Equal(have, want) {
			t.Errorf("peer %s: allowed IPs %v, want %v", p.PublicKey, have, want)
		}
		if p.Endpoint.IsValid() && f[2] != p.Endpoint.String() {
			t.Errorf("peer %s: endpoint %s, want %s", p.PublicKey, f[2], p.Endpoint)
		}
		if f[7] != "off" {
			t.Errorf("peer %s: persistent keepalive %s, want off", p.PublicKey, f[7])
		}
	}
}

// boundAddrs returns the userspace device's open sockets.
func boundAddrs(n *nsThread, d Device) []string {
	var out []string
	for _, ap := range d.(*userspaceDevice).bind.boundAddrs() {
		out = append(out, ap.String())
	}
	sort.Strings(out)
	return out
}

// linkState reads the link's MTU, admin state and addresses in the
// namespace.
func linkState(t testing.TB, n *nsThread, name string) (mtu int, up bool, addrs []string) {
	t.Helper()
	var err error
	n.do(func() {
		var l netlink.Link
		if l, err = netlink.LinkByName(name); err != nil {
			return
		}
		mtu, up = l.Attrs().MTU, isAdminUp(l)
		var as []netlink.Addr
		if as, err = netlink.AddrList(l, netlink.FAMILY_ALL); err != nil {
			return
		}
		for _, a := range as {
			if p, ok := addrPrefix(a); ok && !p.Addr().IsLinkLocalUnicast() {
				addrs = append(addrs, p.String())
			}
		}
	})
	if err != nil {
		t.Fatalf("read link %s: %v", name, err)
	}
	sort.Strings(addrs)
	return mtu, up, addrs
}

func TestUserspaceSetIdempotent(t *testing.T) {
	requireRoot(t)
	requireTools(t, "wg")
	ns := newNetns(t)
	n := startNSThread(t, ns)
	name := uniqueName("rgdp")
	d := openIn(t, n, name)
	if d.Kind() != KindUserspace || d.Name() != name {
		t.Fatalf("kind %s name %s", d.Kind(), d.Name())
	}

	p0, p1, _, cfg := setIdempotentConfig(t)
	wantAddrs := []string{"198.51.100.1/24", "fd00:99::1/64"}

	// A follower: everything configured, link down, no socket.
	if !set(t, n, d, cfg) {
		t.Fatal("first Set reported no change")
	}
	if set(t, n, d, cfg) {
		t.Fatal("second identical Set reported a change")
	}
	checkDump(t, name, cfg)
	if mtu, up, addrs := linkState(t, n, name); mtu != 1380 || up || !slices.Equal(addrs, wantAddrs) {
		t.Fatalf("link: mtu %d up %v addrs %v", mtu, up, addrs)
	}
	if isUp(t, n, d) {
		t.Fatal("IsUp on a follower")
	}
	if b := boundAddrs(n, d); len(b) != 0 {
		t.Fatalf("a follower has sockets open: %v", b)
	}
	var err error
	n.do(func() { err = d.InitiateHandshake(p0.PublicKey, netip.AddrPort{}) })
	if !errors.Is(err, ErrDown) {
		t.Fatalf("InitiateHandshake while down: %v, want ErrDown", err)
	}

	// The leader.
	cfg.Up = true
	if !set(t, n, d, cfg) {
		t.Fatal("Set up reported no change")
	}
	if set(t, n, d, cfg) {
		t.Fatal("second Set up reported a change")
	}
	checkDump(t, name, cfg)
	if mtu, up, addrs := linkState(t, n, name); mtu != 1380 || !up || !slices.Equal(addrs, wantAddrs) {
		t.Fatalf("link: mtu %d up %v addrs %v", mtu, up, addrs)
	}
	if !isUp(t, n, d) {
		t.Fatal("IsUp false on the leader")
	}
	if b := boundAddrs(n, d); !slices.Equal(b, []string{"0.0.0.0:51820", "[::]:51820"}) {
		t.Fatalf("sockets %v, want the wildcard addresses", b)
	}
	n.do(func() { err = d.InitiateHandshake(testKey(t).PublicKey().String(), netip.AddrPort{}) })
	if !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("InitiateHandshake to an unknown peer: %v, want ErrUnknownPeer", err)
	}

	checkRepairs(t, n, d, ns, name, cfg, wantAddrs)

	// A new listen port rebinds.
	cfg.ListenPort = 51821
	if !set(t, n, d, cfg) {
		t.Fatal("Set with a new listen port reported no change")
	}
	if b := boundAddrs(n, d); !slices.Equal(b, []string{"0.0.0.0:51821", "[::]:51821"}) {
		t.Fatalf("sockets %v after the port change", b)
	}
	checkDump(t, name, cfg)

	// Source addresses that are not (yet) on any interface still bind
	// (IP_FREEBIND), as before the VIP claim; none again means wildcard.
	cfg.SourceAddrs = []netip.Addr{netip.MustParseAddr("203.0.113.10"), netip.MustParseAddr("2001:db8::10")}
	if !set(t, n, d, cfg) {
		t.Fatal("Set with source addresses reported no change")
	}
	if b := boundAddrs(n, d); !slices.Equal(b, []string{"203.0.113.10:51821", "[2001:db8::10]:51821"}) {
		t.Fatalf("sockets %v, want the (absent) source addresses", b)
	}
	if set(t, n, d, cfg) {
		t.Fatal("second Set with source addresses reported a change")
	}
	cfg.SourceAddrs = nil
	if !set(t, n, d, cfg) {
		t.Fatal("Set without source addresses reported no change")
	}
	if b := boundAddrs(n, d); !slices.Equal(b, []string{"0.0.0.0:51821", "[::]:51821"}) {
		t.Fatalf("sockets %v, want the wildcard addresses", b)
	}

	// Peer changes: allowed IPs, preshared key, one removed, one added.
	p1.AllowedIPs = []netip.Prefix{netip.MustParsePrefix("fd00:99::2/128"), netip.MustParsePrefix("203.0.113.64/26")}
	p0.PresharedKey = ""
	p3 := testPeer(t, 4)
	p3.PresharedKey = testKey(t).String()
	cfg.Peers = []Peer{p0, p1, p3}
	if !set(t, n, d, cfg) {
		t.Fatal("Set with peer changes reported no change")
	}
	if set(t, n, d, cfg) {
		t.Fatal("second Set with peer changes reported a change")
	}
	checkDump(t, name, cfg)

	// A follower again: the configuration stays, the link and the sockets go.
	cfg.Up = false
	if !set(t, n, d, cfg) {
		t.Fatal("Set down reported no change")
	}
	checkDump(t, name, cfg)
	if _, up, addrs := linkState(t, n, name); up || !slices.Equal(addrs, wantAddrs) {
		t.Fatalf("link: up %v addrs %v", up, addrs)
	}
	if b := boundAddrs(n, d); len(b) != 0 {
		t.Fatalf("sockets still open when down: %v", b)
	}

	checkStatsAndClose(t, n, d, ns, name, cfg)
}

// setIdempotentConfig returns the three peers and the configuration the
// SetIdempotent tests of both kinds of device start from.
func setIdempotentConfig(t *testing.T) (p0, p1, p2 Peer, cfg Config) {
	t.Helper()
	p0, p1, p2 = testPeer(t, 1), testPeer(t, 2), testPeer(t, 3)
	p0.PresharedKey = testKey(t).String()
	p0.Endpoint = netip.MustParseAddrPort("192.0.2.50:51000")
	p0.AllowedIPs = append(p0.AllowedIPs, netip.MustParsePrefix("203.0.113.0/24"))
	p1.AllowedIPs = append(p1.AllowedIPs, netip.MustParsePrefix("fd00:99::2/128"))
	p2.AllowedIPs = nil
	p2.Endpoint = netip.MustParseAddrPort("[2001:db8::50]:51001")
	cfg = Config{
		PrivateKey: testKey(t).String(),
		ListenPort: 51820,
		Addresses:  []netip.Prefix{netip.MustParsePrefix("198.51.100.1/24"), netip.MustParsePrefix("fd00:99::1/64")},
		MTU:        1380,
		Peers:      []Peer{p0, p1, p2},
	}
	return p0, p1, p2, cfg
}

// checkRepairs changes the up device d's link behind the package's back
// (addresses, MTU, down) and checks that Set repairs it.
func checkRepairs(t *testing.T, n *nsThread, d Device, ns, name string, cfg Config, wantAddrs []string) {
	t.Helper()
	run(t, "ip", "-n", ns, "addr", "del", "198.51.100.1/24", "dev", name)
	run(t, "ip", "-n", ns, "addr", "add", "203.0.113.99/24", "dev", name)
	run(t, "ip", "-n", ns, "link", "set", name, "mtu", "1300")
	if !set(t, n, d, cfg) {
		t.Fatal("Set after external changes reported no change")
	}
	if mtu, _, addrs := linkState(t, n, name); mtu != 1380 || !slices.Equal(addrs, wantAddrs) {
		t.Fatalf("not repaired: mtu %d addrs %v", mtu, addrs)
	}
	run(t, "ip", "-n", ns, "link", "set", name, "down")
	if isUp(t, n, d) {
		t.Fatal("IsUp true after the link was downed behind our back")
	}
	if !set(t, n, d, cfg) || !isUp(t, n, d) {
		t.Fatal("Set did not bring the downed link back up")
	}
}

// checkStatsAndClose checks the stats of d's three peers (no handshake yet),
// then that Close removes the link and Set after it fails with ErrClosed.
func checkStatsAndClose(t *testing.T, n *nsThread, d Device, ns, name string, cfg Config) {
	t.Helper()
	var err error
	var stats []PeerStats
	n.do(func() { stats, err = d.Stats() })
	if err != nil || len(stats) != 3 {
		t.Fatalf("Stats: %d peers, %v", len(stats), err)
	}
	for _, s := range stats {
		if !s.LastHandshake.IsZero() || s.RxBytes != 0 {
			t.Errorf("stats %+v, want no handshake", s)
		}
	}

	// Close removes the link.
	n.do(func() { err = d.Close() })
	if err != nil {
		t.Fatalf("Close: %v", err)
	}
	eventually(t, 5*time.Second, "link removed", func() error {
		if _, err := runErr("ip", "-n", ns, "link", "show", name); err == nil {
			return fmt.Errorf("link %s still there", name)
		}
		return nil
	})
	if _, err := d.Set(cfg); !errors.Is(err, ErrClosed) {
		t.Fatalf("Set after Close: %v, want ErrClosed", err)
	}
}

func TestOpen(t *testing.T) {
	requireRoot(t)
	ns := newNetns(t)
	n := startNSThread(t, ns)
	var err error
	n.do(func() { _, err = Open("rgdpx", "bogus", nil) })
	if !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Open with a bad kind: %v", err)
	}
	n.do(func() { _, err = Open("a-name-far-too-long", KindUserspace, nil) })
	if !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Open with a long name: %v", err)
	}
	var supported bool
	n.do(func() { supported = KernelSupported() })
	t.Logf("KernelSupported() = %v", supported)
	if !supported {
		n.do(func() { _, err = Open(uniqueName("rgdp"), KindKernel, nil) })
		if !errors.Is(err, ErrUnsupported) {
			t.Errorf("Open kernel without kernel support: %v, want ErrUnsupported", err)
		}
		name := uniqueName("rgdp")
		d := openIn(t, n, name)
		if d.Kind() != KindUserspace {
			t.Errorf("kind %s", d.Kind())
		}
		// A second device of the same name is refused.
		n.do(func() { _, err = Open(name, KindAuto, nil) })
		if err == nil {
			t.Errorf("second Open of %s succeeded", name)
		}
	}
}

// randomPeers returns n peers with random public keys (any 32 bytes do for a
// peer) and one address each.
func randomPeers(t testing.TB, n int) []Peer {
	t.Helper()
	out := make([]Peer, n)
	for i := range out {
		var k wgtypes.Key
		if _, err := rand.Read(k[:]); err != nil {
			t.Fatal(err)
		}
		out[i] = Peer{PublicKey: k.String(), AllowedIPs: []netip.Prefix{peerAddr(i + 300)}}
	}
	return out
}

// planFor returns what Set would apply for cfg.
func planFor(t testing.TB, d Device, cfg Config) *plan {
	t.Helper()
	w, err := normalize(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ud := d.(*userspaceDevice)
	ud.mu.Lock()
	defer ud.mu.Unlock()
	return diffState(ud.cur, &w.dev)
}

func peerCount(t testing.TB, n *nsThread, d Device) int {
	t.Helper()
	var (
		stats []PeerStats
		err   error
	)
	n.do(func() { stats, err = d.Stats() })
	if err != nil {
		t.Fatal(err)
	}
	return len(stats)
}

func TestUserspaceOnePeerAmongMany(t *testing.T) {
	requireRoot(t)
	const many = 20000
	ns := newNetns(t)
	n := startNSThread(t, ns)
	d := openIn(t, n, uniqueName("rgdp"))
	cfg := Config{
		PrivateKey: testKey(t).String(),
		ListenPort: 51820,
		Addresses:  []netip.Prefix{netip.MustParsePrefix("fd00:99::1/64")},
		Peers:      randomPeers(t, many+1),
		Up:         true,
	}
	extra := cfg.Peers[many]
	cfg.Peers = cfg.Peers[:many]

	start := time.Now()
	set(t, n, d, cfg)
	t.Logf("initial Set of %d peers: %v", many, time.Since(start))
	start = time.Now()
	if got := peerCount(t, n, d); got != many {
		t.Fatalf("device holds %d peers, want %d", got, many)
	}
	t.Logf("Stats of %d peers: %v", many, time.Since(start))

	// Add one.
	added := cfg
	added.Peers = append(slices.Clip(cfg.Peers), extra)
	p := planFor(t, d, added)
	if p.privateKey != nil || p.listenPort != 0 || p.sourceAddrs || len(p.peers) != 1 || p.peers[0].kind != opCreate {
		t.Fatalf("plan for adding one peer: %d peer ops, key %v port %d sources %v", len(p.peers), p.privateKey != nil, p.listenPort, p.sourceAddrs)
	}
	text := uapiText(p)
	if strings.Count(text, "public_key=") != 1 || len(text) > 300 {
		t.Fatalf("uapi text for adding one peer is %d bytes with %d peers", len(text), strings.Count(text, "public_key="))
	}
	start = time.Now()
	if !set(t, n, d, added) {
		t.Fatal("adding a peer reported no change")
	}
	t.Logf("Set adding 1 peer to %d: %v (%d bytes of UAPI)", many, time.Since(start), len(text))
	if got := peerCount(t, n, d); got != many+1 {
		t.Fatalf("device holds %d peers, want %d", got, many+1)
	}

	// Remove one from the middle.
	removed := added
	gone := added.Peers[many/2]
	removed.Peers = slices.Delete(slices.Clone(added.Peers), many/2, many/2+1)
	p = planFor(t, d, removed)
	if len(p.peers) != 1 || p.peers[0].kind != opRemove || p.peers[0].key.String() != gone.PublicKey {
		t.Fatalf("plan for removing one peer: %d peer ops", len(p.peers))
	}
	if text := uapiText(p); text != "public_key="+hexKey(gone.PublicKey)+"\nremove=true\n" {
		t.Fatalf("uapi text for removing one peer: %d bytes", len(text))
	}
	start = time.Now()
	if !set(t, n, d, removed) {
		t.Fatal("removing a peer reported no change")
	}
	t.Logf("Set removing 1 peer of %d: %v", many+1, time.Since(start))
	var stats []PeerStats
	var err error
	n.do(func() { stats, err = d.Stats() })
	if err != nil || len(stats) != many {
		t.Fatalf("Stats: %d peers, %v", len(stats), err)
	}
	for _, s := range stats {
		if s.PublicKey == gone.PublicKey {
			t.Fatal("the removed peer is still on the device")
		}
	}

	// Nothing to do: the diff of 20,000 peers alone.
	start = time.Now()
	if set(t, n, d, removed) {
		t.Fatal("identical Set reported a change")
	}
	t.Logf("identical Set at %d peers: %v", many, time.Since(start))
}

func BenchmarkUserspaceSet(b *testing.B) {
	requireRoot(b)
	const many = 10000
	ns := newNetns(b)
	n := startNSThread(b, ns)
	d := openIn(b, n, uniqueName("rgdp"))
	base := Config{
		PrivateKey: testKey(b).String(),
		ListenPort: 51820,
		Addresses:  []netip.Prefix{netip.MustParsePrefix("fd00:99::1/64")},
		Up:         true,
	}
	peers := randomPeers(b, many+1)

	b.Run(fmt.Sprintf("initial-%d", many), func(b *testing.B) {
		full := base
		full.Peers = peers[:many]
		for b.Loop() {
			b.StopTimer()
			set(b, n, d, base) // remove them all, untimed
			b.StartTimer()
			set(b, n, d, full)
		}
	})
	b.Run(fmt.Sprintf("one-peer-at-%d", many), func(b *testing.B) {
		without, with := base, base
		without.Peers, with.Peers = peers[:many], peers[:many+1]
		set(b, n, d, without)
		i := 0
		for b.Loop() {
			if i%2 == 0 {
				set(b, n, d, with)
			} else {
				set(b, n, d, without)
			}
			i++
		}
	})
}

// BenchmarkUserspaceTakeover measures what a new leader's data plane does:
// bring a configured interface holding many peers up, and down again.
func BenchmarkUserspaceTakeover(b *testing.B) {
	requireRoot(b)
	ns := newNetns(b)
	n := startNSThread(b, ns)
	d := openIn(b, n, uniqueName("rgdp"))
	for _, many := range []int{1000, 10000} {
		down := Config{
			PrivateKey: testKey(b).String(),
			ListenPort: 51820,
			Addresses:  []netip.Prefix{netip.MustParsePrefix("fd00:99::1/64")},
			Peers:      randomPeers(b, many),
		}
		up := down
		up.Up = true
		set(b, n, d, down)
		b.Run(fmt.Sprintf("up-%d", many), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				set(b, n, d, down)
				b.StartTimer()
				set(b, n, d, up)
			}
		})
	}
}

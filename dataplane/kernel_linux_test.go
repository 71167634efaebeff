//go:build linux

package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// Tests of the kernel WireGuard device. They skip where the kernel has no
// WireGuard (`make test-kernel` runs them in a VM with Debian's kernel).

// requireKernelWireGuard skips the test unless it runs as root on a kernel
// that can create WireGuard links.
func requireKernelWireGuard(t testing.TB) {
	t.Helper()
	requireRoot(t)
	if !KernelSupported() {
		t.Skip("skipped: the kernel has no WireGuard (make test-kernel runs this in a VM)")
	}
}

// kernelDump runs `wg show <name> dump` in namespace ns (the kernel device
// answers over generic netlink in its own namespace).
func kernelDump(t *testing.T, ns, name string) string {
	t.Helper()
	return run(t, "ip", "netns", "exec", ns, "wg", "show", name, "dump")
}

// udpListening reports whether a UDP socket is bound to port in ns.
func udpListening(t *testing.T, ns string, port int) bool {
	t.Helper()
	out := run(t, "ip", "netns", "exec", ns, "ss", "-H", "-u", "-l", "-n")
	for _, line := range strings.Split(out, "\n") {
		for _, f := range strings.Fields(line) {
			if strings.HasSuffix(f, fmt.Sprintf(":%d", port)) {
				return true
			}
		}
	}
	return false
}

func TestKernelSetIdempotent(t *testing.T) {
	requireKernelWireGuard(t)
	requireTools(t, "wg", "ss")
	ns := newNetns(t)
	n := startNSThread(t, ns)
	name := uniqueName("rgdk")
	d := openKindIn(t, n, name, KindKernel)
	if d.Kind() != KindKernel || d.Name() != name {
		t.Fatalf("kind %s name %s", d.Kind(), d.Name())
	}
	if kind := run(t, "ip", "-n", ns, "-d", "-o", "link", "show", "dev", name); !strings.Contains(kind, " wireguard ") {
		t.Fatalf("link %s is not a kernel WireGuard link: %s", name, kind)
	}

	p0, p1, p2, cfg := setIdempotentConfig(t)
	wantAddrs := []string{"198.51.100.1/24", "fd00:99::1/64"}

	// A follower: everything configured, link down, no socket.
	if !set(t, n, d, cfg) {
		t.Fatal("first Set reported no change")
	}
	if set(t, n, d, cfg) {
		t.Fatal("second identical Set reported a change")
	}
	checkDumpText(t, kernelDump(t, ns, name), cfg)
	if mtu, up, addrs := linkState(t, n, name); mtu != 1380 || up || !slices.Equal(addrs, wantAddrs) {
		t.Fatalf("link: mtu %d up %v addrs %v", mtu, up, addrs)
	}
	if isUp(t, n, d) {
		t.Fatal("IsUp on a follower")
	}
	if udpListening(t, ns, 51820) {
		t.Fatal("a follower listens on 51820")
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
	checkDumpText(t, kernelDump(t, ns, name), cfg)
	if mtu, up, addrs := linkState(t, n, name); mtu != 1380 || !up || !slices.Equal(addrs, wantAddrs) {
		t.Fatalf("link: mtu %d up %v addrs %v", mtu, up, addrs)
	}
	if !isUp(t, n, d) {
		t.Fatal("IsUp false on the leader")
	}
	if !udpListening(t, ns, 51820) {
		t.Fatal("the leader does not listen on 51820")
	}
	n.do(func() { err = d.InitiateHandshake(testKey(t).PublicKey().String(), netip.AddrPort{}) })
	if !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("InitiateHandshake to an unknown peer: %v, want ErrUnknownPeer", err)
	}
	// A handshake to a known peer leaves the configuration as it was
	// (keepalive off again), apart from the endpoint it was given.
	ep := netip.MustParseAddrPort("192.0.2.51:51002")
	n.do(func() { err = d.InitiateHandshake(p1.PublicKey, ep) })
	if err != nil {
		t.Fatalf("InitiateHandshake: %v", err)
	}
	p1.Endpoint = ep
	cfg.Peers = []Peer{p0, p1, p2}
	checkDumpText(t, kernelDump(t, ns, name), cfg)
	if set(t, n, d, cfg) {
		t.Fatal("Set after InitiateHandshake reported a change")
	}

	checkRepairs(t, n, d, ns, name, cfg, wantAddrs)

	// A new listen port.
	cfg.ListenPort = 51821
	if !set(t, n, d, cfg) {
		t.Fatal("Set with a new listen port reported no change")
	}
	if !udpListening(t, ns, 51821) || udpListening(t, ns, 51820) {
		t.Fatal("the device does not listen on the new port alone")
	}
	checkDumpText(t, kernelDump(t, ns, name), cfg)

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
	checkDumpText(t, kernelDump(t, ns, name), cfg)

	// A follower again: the configuration stays, the link and the socket go.
	cfg.Up = false
	if !set(t, n, d, cfg) {
		t.Fatal("Set down reported no change")
	}
	checkDumpText(t, kernelDump(t, ns, name), cfg)
	if _, up, addrs := linkState(t, n, name); up || !slices.Equal(addrs, wantAddrs) {
		t.Fatalf("link: up %v addrs %v", up, addrs)
	}
	if udpListening(t, ns, 51821) {
		t.Fatal("the socket is still open when down")
	}

	checkStatsAndClose(t, n, d, ns, name, cfg)
}

// TestKernelReplacesLeftover checks that Open replaces a kernel WireGuard
// link of the same name that a killed process left behind, and refuses a
// link of another kind.
func TestKernelReplacesLeftover(t *testing.T) {
	requireKernelWireGuard(t)
	ns := newNetns(t)
	n := startNSThread(t, ns)
	name := uniqueName("rgdk")
	run(t, "ip", "-n", ns, "link", "add", name, "type", "wireguard")
	run(t, "ip", "-n", ns, "link", "set", name, "up")
	d := openKindIn(t, n, name, KindKernel)
	if isUp(t, n, d) {
		t.Fatal("the replaced link is up")
	}
	other := uniqueName("rgdk")
	run(t, "ip", "-n", ns, "link", "add", other, "type", "dummy")
	var err error
	n.do(func() { _, err = Open(other, KindKernel, nil) })
	if err == nil {
		t.Fatalf("Open over a dummy link %s succeeded", other)
	}
}

// TestKernelCleanupAfterCrash: a kernel device left by a killed process
// (up, keyed, with its source routing and source fence) is removed by
// Cleanup, as `raftguard cleanup` and a starting node run it: the link, the
// policy rules and routing table, the nftables fence; a second Cleanup
// finds nothing.
func TestKernelCleanupAfterCrash(t *testing.T) {
	requireKernelWireGuard(t)
	requireTools(t, "nft")
	l := newLabKind(t, KindKernel, []Peer{testPeer(t, 1)})
	name := l.d.Name()
	if out := run(t, "ip", "-n", l.srv, "rule", "show"); !strings.Contains(out, fmt.Sprintf("%#x", sourceMark)) {
		t.Fatalf("no source-routing rule before the crash:\n%s", out)
	}
	if out := run(t, "ip", "netns", "exec", l.srv, "nft", "list", "tables"); !strings.Contains(out, fenceTable) {
		t.Fatalf("no source fence before the crash:\n%s", out)
	}
	// The process is gone: nobody calls Close; Cleanup runs.
	var (
		removed []string
		err     error
	)
	l.n.do(func() { removed, err = Cleanup(name) })
	if err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	got := strings.Join(removed, "; ")
	for _, want := range []string{"wireguard link " + name, "source routing", "source fence"} {
		if !strings.Contains(got, want) {
			t.Errorf("Cleanup removed %q; want it to name %q", got, want)
		}
	}
	if _, err := runErr("ip", "-n", l.srv, "link", "show", name); err == nil {
		t.Errorf("the WireGuard link %s is still there", name)
	}
	if out := run(t, "ip", "-n", l.srv, "rule", "show"); strings.Contains(out, fmt.Sprintf("%#x", sourceMark)) {
		t.Errorf("the source-routing rule is still there:\n%s", out)
	}
	if out := run(t, "ip", "netns", "exec", l.srv, "nft", "list", "tables"); strings.Contains(out, fenceTable) {
		t.Errorf("the source fence is still there:\n%s", out)
	}
	l.n.do(func() { removed, err = Cleanup(name) })
	if err != nil || len(removed) != 0 {
		t.Errorf("second Cleanup = %v, %v; want nothing, nil", removed, err)
	}
}

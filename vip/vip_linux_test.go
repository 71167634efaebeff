//go:build linux

package vip

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/raftguard/raftguard/internal/testutil"

	"github.com/mdlayher/ndp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

var (
	vip4 = netip.MustParsePrefix("192.0.2.10/24")
	vip6 = netip.MustParsePrefix("2001:db8::10/64")
	vips = []netip.Prefix{vip4, vip6}

	// wrongMAC is the stale owner the neighbour believes in before a claim.
	wrongMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x99}
)

// pair is two fresh network namespaces joined by a veth pair: a holds the
// claiming NIC, b is its neighbour on the LAN.
type pair struct {
	a, b     netns.NsHandle
	ha, hb   *netlink.Handle
	ifA, ifB string
	macA     net.HardwareAddr
	idxB     int
}

// needRoot skips the test unless it runs as root.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create network namespaces (run the tests as root)")
	}
}

// newNS returns a new, unnamed network namespace, closed (and so removed by
// the kernel) when the test ends.
func newNS(t *testing.T) netns.NsHandle {
	t.Helper()
	type result struct {
		ns  netns.NsHandle
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// Never unlocked: the thread ends, in the new namespace, with
		// this goroutine.
		runtime.LockOSThread()
		ns, err := netns.New()
		ch <- result{ns, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("creating network namespace: %v", r.err)
	}
	t.Cleanup(func() { r.ns.Close() })
	return r.ns
}

func newHandle(t *testing.T, ns netns.NsHandle) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatalf("netlink handle: %v", err)
	}
	t.Cleanup(h.Close)
	return h
}

func suffix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func newPair(t *testing.T) *pair {
	t.Helper()
	needRoot(t)
	s := suffix(t)
	p := &pair{ifA: "vipa" + s, ifB: "vipb" + s}
	p.a, p.b = newNS(t), newNS(t)
	p.ha, p.hb = newHandle(t, p.a), newHandle(t, p.b)

	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: p.ifA},
		PeerName:      p.ifB,
		PeerNamespace: netlink.NsFd(p.b),
	}
	if err := p.ha.LinkAdd(veth); err != nil {
		t.Fatalf("creating veth pair: %v", err)
	}
	// The veth pair goes away with the namespaces; deleting it first makes
	// the cleanup independent of when the kernel reaps them.
	t.Cleanup(func() {
		if l, err := p.ha.LinkByName(p.ifA); err == nil {
			_ = p.ha.LinkDel(l)
		}
	})
	la := p.setup(t, p.ha, p.ifA, "192.0.2.1/24", "2001:db8::1/64")
	lb := p.setup(t, p.hb, p.ifB, "192.0.2.2/24", "2001:db8::2/64")
	p.macA = la.Attrs().HardwareAddr
	p.idxB = lb.Attrs().Index
	// The kernel's link watcher marks a new link operationally up (and
	// only then readies IPv6 on it) up to a second after it is set up.
	waitFor(t, 10*time.Second, "both ends of the veth pair to be up", func() bool {
		return operUp(t, p.ha, p.ifA) && operUp(t, p.hb, p.ifB)
	})
	return p
}

func operUp(t *testing.T, h *netlink.Handle, name string) bool {
	t.Helper()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().OperState == netlink.OperUp
}

// setup gives the link its addresses (IPv6 without DAD) and brings it up.
func (p *pair) setup(t *testing.T, h *netlink.Handle, name, v4, v6 string) netlink.Link {
	t.Helper()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{v4, v6} {
		pre := netip.MustParsePrefix(s)
		a := &netlink.Addr{IPNet: ipNet(pre)}
		if pre.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(l, a); err != nil {
			t.Fatalf("adding %s to %s: %v", s, name, err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	return l
}

// manager returns a Manager for the claiming NIC, closed when the test ends.
func (p *pair) manager(t *testing.T) *Manager {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	m, err := newManager(p.ifA, log, p.a)
	if err != nil {
		t.Fatalf("newManager: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return m
}

// addrListA returns the addresses on the claiming NIC as netlink lists them.
func (p *pair) addrListA(t *testing.T) []netlink.Addr {
	t.Helper()
	l, err := p.ha.LinkByName(p.ifA)
	if err != nil {
		t.Fatal(err)
	}
	list, err := p.ha.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// addrsA returns the addresses on the claiming NIC with their flags.
func (p *pair) addrsA(t *testing.T) map[netip.Addr]int {
	t.Helper()
	list := p.addrListA(t)
	out := make(map[netip.Addr]int)
	for _, a := range list {
		ip, _ := netip.AddrFromSlice(a.IP)
		out[ip.Unmap()] = a.Flags
	}
	return out
}

// poisonNeighbour makes the neighbour believe that addr belongs to
// wrongMAC (a stale entry, as left behind by the previous VIP holder).
func (p *pair) poisonNeighbour(t *testing.T, addr netip.Addr) {
	t.Helper()
	family := netlink.FAMILY_V4
	if addr.Is6() {
		family = netlink.FAMILY_V6
	}
	err := p.hb.NeighSet(&netlink.Neigh{
		LinkIndex:    p.idxB,
		Family:       family,
		State:        netlink.NUD_STALE,
		IP:           addr.AsSlice(),
		HardwareAddr: wrongMAC,
	})
	if err != nil {
		t.Fatalf("setting neighbour entry for %v: %v", addr, err)
	}
}

// neighbourMAC returns the MAC the neighbour has for addr (nil if none).
func (p *pair) neighbourMAC(t *testing.T, addr netip.Addr) net.HardwareAddr {
	t.Helper()
	family := netlink.FAMILY_V4
	if addr.Is6() {
		family = netlink.FAMILY_V6
	}
	list, err := p.hb.NeighList(p.idxB, family)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range list {
		if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == addr {
			return n.HardwareAddr
		}
	}
	return nil
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, timeout, 20*time.Millisecond, what, testutil.Holds(cond))
}

func TestClaimHeldRelease(t *testing.T) {
	p := newPair(t)
	m := p.manager(t)
	for _, v := range vips {
		p.poisonNeighbour(t, v.Addr())
	}

	if held, err := m.Held(vips); err != nil || held {
		t.Fatalf("Held before Claim = %v, %v; want false", held, err)
	}
	changed, err := m.Claim(vips)
	if err != nil || !changed {
		t.Fatalf("Claim = %v, %v; want true, nil", changed, err)
	}
	have := p.addrsA(t)
	for _, v := range vips {
		flags, ok := have[v.Addr()]
		if !ok {
			t.Fatalf("%v not on %s after Claim (have %v)", v, p.ifA, have)
		}
		if flags&unix.IFA_F_TENTATIVE != 0 {
			t.Errorf("%v is tentative after Claim (flags %#x); want usable at once", v, flags)
		}
	}
	if held, err := m.Held(vips); err != nil || !held {
		t.Fatalf("Held after Claim = %v, %v; want true", held, err)
	}
	if changed, err := m.Claim(vips); err != nil || changed {
		t.Fatalf("second Claim = %v, %v; want false, nil", changed, err)
	}

	// The neighbour learns the new owner from the announcements.
	for _, v := range vips {
		waitFor(t, 10*time.Second, "the neighbour to learn "+v.Addr().String()+" -> "+p.macA.String(), func() bool {
			return bytes.Equal(p.neighbourMAC(t, v.Addr()), p.macA)
		})
	}

	changed, err = m.Release(vips)
	if err != nil || !changed {
		t.Fatalf("Release = %v, %v; want true, nil", changed, err)
	}
	have = p.addrsA(t)
	for _, v := range vips {
		if _, ok := have[v.Addr()]; ok {
			t.Errorf("%v still on %s after Release", v, p.ifA)
		}
	}
	for _, a := range []string{"192.0.2.1", "2001:db8::1"} {
		if _, ok := have[netip.MustParseAddr(a)]; !ok {
			t.Errorf("Release removed the NIC's own address %s", a)
		}
	}
	// The subnet routes the NIC's own addresses need survive the release.
	routes, err := p.ha.RouteList(nil, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"192.0.2.0/24", "2001:db8::/64"} {
		found := false
		for _, r := range routes {
			found = found || r.Dst != nil && r.Dst.String() == want
		}
		if !found {
			t.Errorf("route to %s gone after Release (routes %v)", want, routes)
		}
	}
	if held, err := m.Held(vips); err != nil || held {
		t.Fatalf("Held after Release = %v, %v; want false", held, err)
	}
	if changed, err := m.Release(vips); err != nil || changed {
		t.Fatalf("second Release = %v, %v; want false, nil", changed, err)
	}

	// Claiming again after a release announces again.
	p.poisonNeighbour(t, vip4.Addr())
	if changed, err := m.Claim(vips); err != nil || !changed {
		t.Fatalf("Claim after Release = %v, %v; want true, nil", changed, err)
	}
	waitFor(t, 10*time.Second, "the neighbour to learn the VIP again", func() bool {
		return bytes.Equal(p.neighbourMAC(t, vip4.Addr()), p.macA)
	})
	if _, err := m.Release(vips); err != nil {
		t.Fatal(err)
	}
}

func TestReleaseAfterExternalRemoval(t *testing.T) {
	p := newPair(t)
	m := p.manager(t)
	link, err := p.ha.LinkByName(p.ifA)
	if err != nil {
		t.Fatal(err)
	}
	del := func(v netip.Prefix) {
		t.Helper()
		if err := p.ha.AddrDel(link, &netlink.Addr{IPNet: ipNet(v)}); err != nil {
			t.Fatalf("removing %v behind the manager's back: %v", v, err)
		}
	}

	if _, err := m.Claim(vips); err != nil {
		t.Fatal(err)
	}
	del(vip4)
	if held, err := m.Held(vips); err != nil || held {
		t.Errorf("Held with one VIP gone = %v, %v; want false", held, err)
	}
	if changed, err := m.Release(vips); err != nil || !changed {
		t.Errorf("Release with one VIP gone = %v, %v; want true, nil", changed, err)
	}

	if _, err := m.Claim(vips); err != nil {
		t.Fatal(err)
	}
	del(vip4)
	del(vip6)
	if changed, err := m.Release(vips); err != nil || changed {
		t.Errorf("Release with both VIPs gone = %v, %v; want false, nil", changed, err)
	}

	// Claim puts back what someone removed.
	if _, err := m.Claim(vips); err != nil {
		t.Fatal(err)
	}
	del(vip6)
	if changed, err := m.Claim(vips); err != nil || !changed {
		t.Errorf("Claim with one VIP gone = %v, %v; want true, nil", changed, err)
	}
	if held, err := m.Held(vips); err != nil || !held {
		t.Errorf("Held after re-Claim = %v, %v; want true", held, err)
	}
}

func TestMissingInterface(t *testing.T) {
	p := newPair(t)
	if _, err := newManager("nosuch"+suffix(t), nil, p.a); !errors.Is(err, ErrNoInterface) {
		t.Errorf("newManager(missing NIC): err = %v, want ErrNoInterface", err)
	}
	if _, err := New("nosuch"+suffix(t), nil); !errors.Is(err, ErrNoInterface) {
		t.Errorf("New(missing NIC): err = %v, want ErrNoInterface", err)
	}

	// The NIC disappears under a Manager.
	m := p.manager(t)
	l, err := p.ha.LinkByName(p.ifA)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ha.LinkDel(l); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Claim(vips); !errors.Is(err, ErrNoInterface) {
		t.Errorf("Claim on a vanished NIC: err = %v, want ErrNoInterface", err)
	}
	if _, err := m.Release(vips); !errors.Is(err, ErrNoInterface) {
		t.Errorf("Release on a vanished NIC: err = %v, want ErrNoInterface", err)
	}
	if _, err := m.Held(vips); !errors.Is(err, ErrNoInterface) {
		t.Errorf("Held on a vanished NIC: err = %v, want ErrNoInterface", err)
	}
}

func TestClosed(t *testing.T) {
	p := newPair(t)
	m := p.manager(t)
	if _, err := m.Claim(vips); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if m.stop != nil {
		t.Error("Close left the announcements running")
	}
	if _, err := m.Claim(vips); !errors.Is(err, ErrClosed) {
		t.Errorf("Claim after Close: err = %v, want ErrClosed", err)
	}
	if _, err := m.Release(vips); !errors.Is(err, ErrClosed) {
		t.Errorf("Release after Close: err = %v, want ErrClosed", err)
	}
	if _, err := m.Held(vips); !errors.Is(err, ErrClosed) {
		t.Errorf("Held after Close: err = %v, want ErrClosed", err)
	}
	// Close does not release.
	if !hasAddr(p.addrsA(t), vip4.Addr()) {
		t.Errorf("Close released %v", vip4)
	}
}

func hasAddr(m map[netip.Addr]int, a netip.Addr) bool { _, ok := m[a]; return ok }

func TestClaimOnDownLinkReportsAndRetries(t *testing.T) {
	p := newPair(t)
	m := p.manager(t)
	l, err := p.ha.LinkByName(p.ifA)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ha.LinkSetDown(l); err != nil {
		t.Fatal(err)
	}
	only4 := []netip.Prefix{vip4}
	changed, err := m.Claim(only4)
	if !changed || !errors.Is(err, ErrAnnounce) {
		t.Fatalf("Claim on a down NIC = %v, %v; want true, ErrAnnounce", changed, err)
	}
	if err := p.ha.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	p.poisonNeighbour(t, vip4.Addr())
	// The address is there, but the failed announcement is tried again.
	if changed, err := m.Claim(only4); err != nil || changed {
		t.Fatalf("Claim after the NIC came up = %v, %v; want false, nil", changed, err)
	}
	waitFor(t, 10*time.Second, "the neighbour to learn the VIP", func() bool {
		return bytes.Equal(p.neighbourMAC(t, vip4.Addr()), p.macA)
	})
}

func TestInterfaceForHost(t *testing.T) {
	if name, err := InterfaceFor(netip.MustParseAddr("127.0.0.1")); err != nil || name != "lo" {
		t.Errorf("InterfaceFor(127.0.0.1) = %q, %v; want lo", name, err)
	}
	if _, err := InterfaceFor(netip.MustParseAddr("203.0.113.254")); !errors.Is(err, ErrAddressNotFound) {
		t.Errorf("InterfaceFor(absent address): err = %v, want ErrAddressNotFound", err)
	}
}

func TestInterfaceFor(t *testing.T) {
	p := newPair(t)
	for _, s := range []string{"192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1"} {
		if name, err := interfaceFor(p.ha, netip.MustParseAddr(s)); err != nil || name != p.ifA {
			t.Errorf("interfaceFor(%s) = %q, %v; want %s", s, name, err, p.ifA)
		}
	}
	if _, err := interfaceFor(p.ha, netip.MustParseAddr("192.0.2.2")); !errors.Is(err, ErrAddressNotFound) {
		t.Errorf("interfaceFor(the neighbour's address): err = %v, want ErrAddressNotFound", err)
	}
}

// frame is an announcement seen on the wire by the neighbour.
type frame struct {
	at   time.Time
	kind string // "arp-request", "arp-reply", "na"
	ip   netip.Addr
	mac  net.HardwareAddr // sender MAC (ARP) or target link-layer address (NA)
	bad  string           // why the frame is not a proper announcement, if it is not
}

// capture records the announcements for the VIPs that reach the
// neighbour's NIC, from an AF_PACKET socket in its namespace.
type capture struct {
	fd   int
	mu   sync.Mutex // guards seen
	seen []frame
	done chan struct{}
}

func (p *pair) capture(t *testing.T) *capture {
	t.Helper()
	c := &capture{done: make(chan struct{})}
	err := runInNS(p.b, func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: p.idxB}); err != nil {
			unix.Close(fd)
			return err
		}
		tv := unix.NsecToTimeval((50 * time.Millisecond).Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			unix.Close(fd)
			return err
		}
		c.fd = fd
		return nil
	})
	if err != nil {
		t.Fatalf("opening capture socket: %v", err)
	}
	stop := make(chan struct{})
	go func() {
		defer close(c.done)
		buf := make([]byte, 2048)
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, _, err := unix.Recvfrom(c.fd, buf, 0)
			if err != nil {
				continue // timeout: check for stop
			}
			if f, ok := parseAnnouncement(buf[:n]); ok {
				f.at = time.Now()
				c.mu.Lock()
				c.seen = append(c.seen, f)
				c.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-c.done
		unix.Close(c.fd)
	})
	return c
}

func (c *capture) frames() []frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]frame(nil), c.seen...)
}

// parseAnnouncement recognises gratuitous ARP and neighbour advertisements
// in an Ethernet frame.
func parseAnnouncement(b []byte) (frame, bool) {
	b = bytes.Clone(b) // the frame keeps slices of it
	if len(b) < 14 {
		return frame{}, false
	}
	dst := net.HardwareAddr(b[0:6])
	src := net.HardwareAddr(b[6:12])
	switch binary.BigEndian.Uint16(b[12:14]) {
	case unix.ETH_P_ARP:
		a := b[14:]
		if len(a) < 28 {
			return frame{}, false
		}
		f := frame{mac: net.HardwareAddr(a[8:14])}
		spa, _ := netip.AddrFromSlice(a[14:18])
		tpa, _ := netip.AddrFromSlice(a[24:28])
		f.ip = spa
		switch binary.BigEndian.Uint16(a[6:8]) {
		case 1:
			f.kind = "arp-request"
		case 2:
			f.kind = "arp-reply"
		}
		switch {
		case spa != tpa:
			return frame{}, false // an ordinary ARP, not an announcement
		case !bytes.Equal(dst, broadcastMAC):
			f.bad = "not broadcast"
		case !bytes.Equal(src, f.mac):
			f.bad = "Ethernet source is not the sender MAC"
		}
		return f, true
	case unix.ETH_P_IPV6:
		ip6 := b[14:]
		if len(ip6) < 40 || ip6[6] != 58 { // next header ICMPv6
			return frame{}, false
		}
		m, err := ndp.ParseMessage(ip6[40:])
		if err != nil {
			return frame{}, false
		}
		na, ok := m.(*ndp.NeighborAdvertisement)
		if !ok {
			return frame{}, false
		}
		f := frame{kind: "na", ip: na.TargetAddress}
		for _, o := range na.Options {
			if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Target {
				f.mac = lla.Addr
			}
		}
		srcIP, _ := netip.AddrFromSlice(ip6[8:24])
		dstIP, _ := netip.AddrFromSlice(ip6[24:40])
		switch {
		case !na.Override || na.Solicited:
			f.bad = "flags: want Override, not Solicited"
		case srcIP != na.TargetAddress:
			f.bad = "source is not the VIP: " + srcIP.String()
		case dstIP != allNodes:
			f.bad = "destination is not ff02::1: " + dstIP.String()
		case ip6[7] != 255:
			f.bad = "hop limit is not 255"
		case !bytes.Equal(src, f.mac):
			f.bad = "Ethernet source is not the target link-layer address"
		}
		return f, true
	}
	return frame{}, false
}

// rounds counts the announcement rounds for ip of kind (frames more than
// 100ms apart count as separate rounds).
func rounds(fs []frame, kind string, ip netip.Addr) int {
	n := 0
	var last time.Time
	for _, f := range fs {
		if f.kind == kind && f.ip == ip {
			if last.IsZero() || f.at.Sub(last) > 100*time.Millisecond {
				n++
			}
			last = f.at
		}
	}
	return n
}

func TestAnnouncementsOnTheWire(t *testing.T) {
	p := newPair(t)
	m := p.manager(t)
	c := p.capture(t)

	start := time.Now()
	if _, err := m.Claim(vips); err != nil {
		t.Fatal(err)
	}
	// The immediate announcement and the repeats at 200ms and 1s.
	waitFor(t, 10*time.Second, "three announcement rounds", func() bool {
		fs := c.frames()
		return rounds(fs, "arp-request", vip4.Addr()) >= 3 &&
			rounds(fs, "arp-reply", vip4.Addr()) >= 3 &&
			rounds(fs, "na", vip6.Addr()) >= 3
	})
	fs := c.frames()
	for _, f := range fs {
		if f.bad != "" {
			t.Errorf("%s for %v: %s", f.kind, f.ip, f.bad)
		}
		if !bytes.Equal(f.mac, p.macA) {
			t.Errorf("%s for %v names %v, want the NIC's MAC %v", f.kind, f.ip, f.mac, p.macA)
		}
	}
	if first := fs[0].at.Sub(start); first > time.Second {
		t.Errorf("first announcement %v after Claim; want at once", first)
	}

	// Release cancels the repeats at 2s and 4s: nothing more is announced.
	if _, err := m.Release(vips); err != nil {
		t.Fatal(err)
	}
	if m.stop != nil {
		t.Fatal("Release left the announcements running")
	}
	released := time.Now()
	before := len(c.frames())
	// Watch until after the 2s repeat would have gone out.
	quiet := time.Until(start.Add(announceRepeats[2] + 500*time.Millisecond))
	if quiet > 0 {
		deadline := time.Now().Add(quiet)
		for time.Now().Before(deadline) {
			if len(c.frames()) != before {
				break
			}
			time.Sleep(50 * time.Millisecond) // poll interval
		}
	}
	for _, f := range c.frames()[before:] {
		if f.at.After(released) {
			t.Errorf("%s for %v sent %v after Release", f.kind, f.ip, f.at.Sub(released))
		}
	}
}

func TestGARPFrameLayout(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}
	ip := vip4.Addr()
	frames, err := garpFrames(mac, ip)
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != 2 {
		t.Fatalf("got %d frames, want a request and a reply", len(frames))
	}
	for i, b := range frames {
		if len(b) != 60 {
			t.Errorf("frame %d is %d bytes, want 60 (padded)", i, len(b))
		}
		f, ok := parseAnnouncement(b)
		if !ok || f.bad != "" || f.ip != ip || !bytes.Equal(f.mac, mac) {
			t.Errorf("frame %d parses as %+v, %v", i, f, ok)
		}
		if want := []string{"arp-request", "arp-reply"}[i]; f.kind != want {
			t.Errorf("frame %d is a %s, want %s", i, f.kind, want)
		}
	}
	if _, err := garpFrames(mac, vip6.Addr()); err == nil {
		t.Error("garpFrames accepted an IPv6 address")
	}

	b, err := naMessage(mac, vip6.Addr())
	if err != nil {
		t.Fatal(err)
	}
	m, err := ndp.ParseMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	na, ok := m.(*ndp.NeighborAdvertisement)
	if !ok || !na.Override || na.Solicited || na.Router || na.TargetAddress != vip6.Addr() || len(na.Options) != 1 {
		t.Fatalf("NA = %+v", m)
	}
}

//go:build linux

package dataplane

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// sendFrom sends one UDP datagram from src (the source the route lookup
// picks when src is empty) to dst in the namespace, with the given socket
// mark, and returns the send error (EPERM when an output rule dropped it).
func sendFrom(t *testing.T, n *nsThread, mark int, src, dst string) error {
	t.Helper()
	var err error
	n.do(func() {
		s, d := netip.IPv6Unspecified(), netip.MustParseAddr(dst)
		if src != "" {
			s = netip.MustParseAddr(src)
		} else if d.Is4() {
			s = netip.IPv4Unspecified()
		}
		fam := unix.AF_INET
		if d.Is6() {
			fam = unix.AF_INET6
		}
		var fd int
		if fd, err = unix.Socket(fam, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			t.Errorf("socket: %v", err)
			return
		}
		defer unix.Close(fd)
		if mark != 0 {
			if e := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, mark); e != nil {
				t.Errorf("SO_MARK: %v", e)
				return
			}
		}
		var local, remote unix.Sockaddr
		if d.Is6() {
			local, remote = &unix.SockaddrInet6{Addr: s.As16()}, &unix.SockaddrInet6{Port: 9, Addr: d.As16()}
		} else {
			local, remote = &unix.SockaddrInet4{Addr: s.As4()}, &unix.SockaddrInet4{Port: 9, Addr: d.As4()}
		}
		if src != "" {
			if e := unix.Bind(fd, local); e != nil {
				t.Errorf("bind %s: %v", src, e)
				return
			}
		}
		err = unix.Sendto(fd, []byte("x"), 0, remote)
	})
	return err
}

// TestSourceFence checks the kernel device's source fence without the
// kernel module: in the namespace, a packet carrying the device's mark
// leaves only from the VIP of its family; unmarked packets are untouched;
// the fence is replaced when the VIPs change and removed by syncFence(nil)
// and by Cleanup.
func TestSourceFence(t *testing.T) {
	requireRoot(t)
	ns := newNetns(t)
	n := startNSThread(t, ns)
	nic := uniqueName("rgdpf")
	peer := uniqueName("rgdpf")
	run(t, "ip", "-n", ns, "link", "add", nic, "type", "veth", "peer", "name", peer)
	run(t, "ip", "-n", ns, "link", "set", peer, "up")
	for _, a := range []string{labPrimary4 + "/24", labVIP4 + "/24"} {
		run(t, "ip", "-n", ns, "addr", "add", a, "dev", nic)
	}
	for _, a := range []string{labPrimary6 + "/64", labVIP6 + "/64"} {
		run(t, "ip", "-n", ns, "addr", "add", a, "dev", nic, "nodad")
	}
	run(t, "ip", "-n", ns, "link", "set", nic, "up")

	fence := func(srcs, last []netip.Addr) bool {
		t.Helper()
		var (
			changed bool
			err     error
		)
		n.do(func() { changed, err = syncFence(srcs, last) })
		if err != nil {
			t.Fatalf("syncFence(%v): %v", srcs, err)
		}
		return changed
	}
	check := func(when string, cases []struct {
		mark        int
		src, dst    string
		wantDropped bool
	}) {
		t.Helper()
		for _, c := range cases {
			err := sendFrom(t, n, c.mark, c.src, c.dst)
			dropped := errors.Is(err, unix.EPERM)
			if err != nil && !dropped {
				t.Errorf("%s: mark %#x %s -> %s: %v", when, c.mark, c.src, c.dst, err)
				continue
			}
			if dropped != c.wantDropped {
				t.Errorf("%s: mark %#x %s -> %s: dropped %v, want %v", when, c.mark, c.src, c.dst, dropped, c.wantDropped)
			}
		}
	}
	type tc = struct {
		mark        int
		src, dst    string
		wantDropped bool
	}

	// Nothing installed: everything leaves.
	check("before", []tc{{sourceMark, labPrimary4, labClient4, false}, {sourceMark, labPrimary6, labClient6, false}})

	vips := []netip.Addr{netip.MustParseAddr(labVIP4), netip.MustParseAddr(labVIP6)}
	if !fence(vips, nil) {
		t.Fatal("installing the fence reported no change")
	}
	if fence(vips, vips) {
		t.Fatal("installing the same fence again reported a change")
	}
	check("fenced", []tc{
		{sourceMark, labVIP4, labClient4, false},         // from the VIP: allowed
		{sourceMark, labPrimary4, labClient4, true},      // marked, own address: dropped
		{sourceMark, labVIP6, labClient6, false},         // IPv6 VIP: allowed
		{sourceMark, labPrimary6, labClient6, true},      // IPv6 own address: dropped
		{0, labPrimary4, labClient4, false},              // unmarked: untouched
		{0, labPrimary6, labClient6, false},              // unmarked: untouched
		{sourceMark + 1, labPrimary4, labClient4, false}, // another mark: untouched
	})

	// Only an IPv4 VIP: marked IPv6 packets have no allowed source.
	only4 := vips[:1]
	if !fence(only4, vips) {
		t.Fatal("changing the fence's sources reported no change")
	}
	check("IPv4 only", []tc{
		{sourceMark, labVIP4, labClient4, false},
		{sourceMark, labVIP6, labClient6, true},
		{sourceMark, labPrimary6, labClient6, true},
	})

	// Cleanup (a dead process's leftovers) removes it, once.
	var (
		removed []string
		err     error
	)
	n.do(func() { removed, err = Cleanup("") })
	if err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if !strings.Contains(strings.Join(removed, "\n"), fenceTable) {
		t.Fatalf("Cleanup removed %q, want the fence table among them", removed)
	}
	if out := run(t, "ip", "netns", "exec", ns, "nft", "list", "tables"); strings.Contains(out, fenceTable) {
		t.Fatalf("fence table left behind:\n%s", out)
	}
	check("after cleanup", []tc{{sourceMark, labPrimary4, labClient4, false}, {sourceMark, labPrimary6, labClient6, false}})
	if fence(nil, nil) {
		t.Fatal("removing an absent fence reported a change")
	}
}

// TestSourceFenceAfterLease: the VIPs' lifetime ends on a node whose
// process is gone (nothing rebuilds its source routing). The kernel keeps
// the source table's IPv4 routes that name the departed VIP as their
// preferred source (it deletes such routes from the main table only), so
// a marked packet without a bound source - what the kernel WireGuard
// module sends - would still leave from the VIP. The fence drops marked
// packets of both families once their source is no address of the node;
// unmarked packets still leave.
func TestSourceFenceAfterLease(t *testing.T) {
	requireRoot(t)
	ns := newNetns(t)
	n := startNSThread(t, ns)
	nic := uniqueName("rgdpl")
	peer := uniqueName("rgdpl")
	run(t, "ip", "-n", ns, "link", "add", nic, "type", "veth", "peer", "name", peer)
	run(t, "ip", "-n", ns, "link", "set", peer, "up")
	run(t, "ip", "-n", ns, "addr", "add", labPrimary4+"/24", "dev", nic)
	run(t, "ip", "-n", ns, "addr", "add", labVIP4+"/24", "dev", nic)
	run(t, "ip", "-n", ns, "addr", "add", labPrimary6+"/64", "dev", nic, "nodad")
	run(t, "ip", "-n", ns, "addr", "add", labVIP6+"/64", "dev", nic, "nodad")
	run(t, "ip", "-n", ns, "link", "set", nic, "up")
	vips := []netip.Addr{netip.MustParseAddr(labVIP4), netip.MustParseAddr(labVIP6)}
	var err error
	n.do(func() {
		if _, err = syncFence(vips, nil); err != nil {
			return
		}
		var ready bool
		if _, ready, err = syncSourceRouting(vips, true, 0); err == nil && !ready {
			err = errors.New("source routing not ready with the VIPs on the NIC")
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	check := func(when string, mark int, dst string, wantDropped bool) {
		t.Helper()
		err := sendFrom(t, n, mark, "", dst)
		if dropped := errors.Is(err, unix.EPERM); dropped != wantDropped || (err != nil && !dropped) {
			t.Errorf("%s: mark %#x to %s: %v, want dropped %v", when, mark, dst, err, wantDropped)
		}
	}
	check("leader", sourceMark, labClient4, false)
	check("leader", sourceMark, labClient6, false)

	// The lease runs out: the kernel removes the VIPs, nobody else acts.
	run(t, "ip", "-n", ns, "addr", "del", labVIP4+"/24", "dev", nic)
	run(t, "ip", "-n", ns, "addr", "del", labVIP6+"/64", "dev", nic)
	for _, dst := range []string{labClient4, labClient6} {
		t.Logf("VIPs gone: ip route get %s mark %#x: %s", dst, sourceMark, strings.TrimSpace(run(t, "ip", "-n", ns, "route", "get", dst, "mark", "0x5247")))
	}
	check("VIPs gone", sourceMark, labClient4, true)
	check("VIPs gone", sourceMark, labClient6, true)
	check("VIPs gone", 0, labClient4, false)
	check("VIPs gone", 0, labClient6, false)
}

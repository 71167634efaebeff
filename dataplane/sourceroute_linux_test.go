//go:build linux

package dataplane

import (
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// sourceOf returns the source address the kernel picks, in the namespace,
// for a UDP socket with the given mark sending to dst (connect does the
// route lookup).
func sourceOf(t *testing.T, n *nsThread, mark int, dst string) string {
	t.Helper()
	var (
		src string
		err error
	)
	n.do(func() {
		a := netip.MustParseAddr(dst)
		fam := unix.AF_INET
		if a.Is6() {
			fam = unix.AF_INET6
		}
		var fd int
		if fd, err = unix.Socket(fam, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return
		}
		defer unix.Close(fd)
		if mark != 0 {
			if err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, mark); err != nil {
				return
			}
		}
		var sa unix.Sockaddr
		if a.Is6() {
			sa = &unix.SockaddrInet6{Port: 9, Addr: a.As16()}
		} else {
			sa = &unix.SockaddrInet4{Port: 9, Addr: a.As4()}
		}
		if err = unix.Connect(fd, sa); err != nil {
			return
		}
		var local unix.Sockaddr
		if local, err = unix.Getsockname(fd); err != nil {
			return
		}
		switch l := local.(type) {
		case *unix.SockaddrInet4:
			src = netip.AddrFrom4(l.Addr).String()
		case *unix.SockaddrInet6:
			src = netip.AddrFrom16(l.Addr).String()
		}
	})
	if err != nil {
		t.Fatalf("route lookup to %s with mark %#x: %v", dst, mark, err)
	}
	return src
}

// TestSourceRouting checks the kernel device's policy routing (the kernel
// module is not needed for it): packets with the device's mark get the VIP
// as source, others the primary address, and everything goes again.
func TestSourceRouting(t *testing.T) {
	requireRoot(t)
	ns := newNetns(t)
	n := startNSThread(t, ns)
	nic := uniqueName("rgdpd")
	peer := uniqueName("rgdpd")
	run(t, "ip", "-n", ns, "link", "add", nic, "type", "veth", "peer", "name", peer)
	run(t, "ip", "-n", ns, "link", "set", peer, "up")
	run(t, "ip", "-n", ns, "addr", "add", labPrimary4+"/24", "dev", nic)
	run(t, "ip", "-n", ns, "addr", "add", labVIP4+"/24", "dev", nic)
	run(t, "ip", "-n", ns, "addr", "add", labPrimary6+"/64", "dev", nic, "nodad")
	run(t, "ip", "-n", ns, "link", "set", nic, "up")
	run(t, "ip", "-n", ns, "route", "add", "default", "via", "192.0.2.254", "dev", nic)
	run(t, "ip", "-n", ns, "-6", "route", "add", "default", "via", "2001:db8::fe", "dev", nic)
	sources := []netip.Addr{netip.MustParseAddr(labVIP4), netip.MustParseAddr(labVIP6)}

	sync := func(srcs []netip.Addr, enabled bool) (bool, bool) {
		t.Helper()
		var (
			changed, ready bool
			err            error
		)
		n.do(func() { changed, ready, err = syncSourceRouting(srcs, enabled, 0) })
		if err != nil {
			t.Fatalf("syncSourceRouting: %v", err)
		}
		return changed, ready
	}

	// The IPv6 VIP is not on the NIC yet (as before the VIP claim): IPv4
	// is done, IPv6 waits, nothing fails.
	if changed, ready := sync(sources, true); !changed || ready {
		t.Fatalf("first sync: changed %v ready %v, want true false", changed, ready)
	}
	if got := sourceOf(t, n, sourceMark, "2001:db8:ffff::1"); got != labPrimary6 {
		t.Fatalf("IPv6 source before the VIP is local: %s", got)
	}
	run(t, "ip", "-n", ns, "addr", "add", labVIP6+"/64", "dev", nic, "nodad")
	if changed, ready := sync(sources, true); !changed || !ready {
		t.Fatalf("sync after the VIP claim: changed %v ready %v, want true true", changed, ready)
	}
	if changed, ready := sync(sources, true); changed || !ready {
		t.Fatalf("second sync: changed %v ready %v, want false true", changed, ready)
	}

	for _, c := range []struct {
		mark      int
		dst, want string
	}{
		{sourceMark, labClient4, labVIP4},         // on-link
		{sourceMark, "203.0.113.5", labVIP4},      // through the default route
		{0, labClient4, labPrimary4},              // unmarked: untouched
		{0, "203.0.113.5", labPrimary4},           // unmarked: untouched
		{sourceMark, labClient6, labVIP6},         // on-link
		{sourceMark, "2001:db8:ffff::1", labVIP6}, // through the default route
	} {
		if got := sourceOf(t, n, c.mark, c.dst); got != c.want {
			t.Errorf("mark %#x to %s: source %s, want %s", c.mark, c.dst, got, c.want)
		}
	}

	// Down (or closed): the rules and the table go.
	if changed, _ := sync(sources, false); !changed {
		t.Fatal("disabling reported no change")
	}
	if out := run(t, "ip", "-n", ns, "rule", "show"); strings.Contains(out, "0x5247") {
		t.Fatalf("IPv4 rule left behind:\n%s", out)
	}
	if out := run(t, "ip", "-n", ns, "-6", "rule", "show"); strings.Contains(out, "0x5247") {
		t.Fatalf("IPv6 rule left behind:\n%s", out)
	}
	for _, fam := range []string{"-4", "-6"} {
		if out := run(t, "ip", "-n", ns, fam, "route", "show", "table", "21063"); strings.TrimSpace(out) != "" {
			t.Fatalf("routes left in the table (%s):\n%s", fam, out)
		}
	}
	if got := sourceOf(t, n, sourceMark, "203.0.113.5"); got != labPrimary4 {
		t.Fatalf("marked source after disabling: %s", got)
	}
	if changed, _ := sync(nil, false); changed {
		t.Fatal("disabling twice reported a change")
	}
}

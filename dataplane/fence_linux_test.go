//go:build linux

package dataplane

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// sendFrom sends one UDP datagram from src to dst in the namespace, with
// the given socket mark, and returns the send error (EPERM when an output
// rule dropped it).
func sendFrom(t *testing.T, n *nsThread, mark int, src, dst string) error {
	t.Helper()
	var err error
	n.do(func() {
		s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
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
		if e := unix.Bind(fd, local); e != nil {
			t.Errorf("bind %s: %v", src, e)
			return
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

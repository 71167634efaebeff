//go:build linux

package firewall

import (
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// inNewNetns runs f on a thread of its own in a new network namespace;
// the thread is thrown away afterwards.
func inNewNetns(t *testing.T, f func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, nftables)")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			t.Errorf("unshare: %v", err)
			return
		}
		f()
	}()
	<-done
}

func TestApplyRemove(t *testing.T) {
	inNewNetns(t, func() {
		dum := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "uplink0"}, PeerName: "uplink1"}
		if err := netlink.LinkAdd(dum); err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetUp(dum); err != nil {
			t.Fatal(err)
		}
		addr, _ := netlink.ParseAddr("192.0.2.1/24")
		if err := netlink.AddrAdd(dum, addr); err != nil {
			t.Fatal(err)
		}
		if err := netlink.RouteAdd(&netlink.Route{LinkIndex: dum.Attrs().Index, Gw: net.ParseIP("192.0.2.254")}); err != nil {
			t.Fatal(err)
		}
		if name, err := DefaultInterface(); err != nil || name != "uplink0" {
			t.Fatalf("DefaultInterface = %q, %v", name, err)
		}
		m := New(nil)
		cfg := Config{Pools: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("fd00:99::/64")}}
		if changed, err := m.Apply(cfg); err != nil || !changed {
			t.Fatalf("first Apply: %v, %v", changed, err)
		}
		for _, f := range []string{ipv4Forward, ipv6Forward} {
			if b, _ := os.ReadFile(f); strings.TrimSpace(string(b)) != "1" {
				t.Errorf("%s = %q after Apply", f, b)
			}
		}
		if changed, err := m.Apply(cfg); err != nil || changed {
			t.Fatalf("second Apply: %v, %v (want no change)", changed, err)
		}
		c, err := nftables.New()
		if err != nil {
			t.Fatal(err)
		}
		tbl := &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName}
		for chain, want := range map[string]int{"postrouting": 2, "forward": 4} {
			rules, err := c.GetRules(tbl, &nftables.Chain{Name: chain, Table: tbl})
			if err != nil || len(rules) != want {
				t.Errorf("chain %s: %d rules (%v), want %d", chain, len(rules), err, want)
			}
		}
		// Someone deleted the table: Apply puts it back.
		if _, err := Cleanup(); err != nil {
			t.Fatal(err)
		}
		if changed, err := m.Apply(cfg); err != nil || !changed {
			t.Fatalf("Apply after the table vanished: %v, %v", changed, err)
		}
		// Another interface: the rules change.
		if changed, err := m.Apply(Config{Interface: "eth9", Pools: cfg.Pools}); err != nil || !changed {
			t.Fatalf("Apply with another interface: %v, %v", changed, err)
		}
		if removed, err := m.Remove(); err != nil || !removed {
			t.Fatalf("Remove: %v, %v", removed, err)
		}
		if removed, err := m.Remove(); err != nil || removed {
			t.Fatalf("second Remove: %v, %v", removed, err)
		}
		if r, err := Cleanup(); err != nil || len(r) != 0 {
			t.Fatalf("Cleanup with nothing left: %v, %v", r, err)
		}
		if _, err := m.Apply(Config{Interface: "bad/name", Pools: cfg.Pools}); err == nil {
			t.Fatal("Apply took an invalid interface name")
		}
	})
}

//go:build linux

package vip

import (
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// lifetimes returns the valid and preferred lifetimes (seconds) of the
// claiming NIC's addresses; a permanent address reports 0xffffffff.
func (p *pair) lifetimes(t *testing.T) map[netip.Addr][2]int {
	t.Helper()
	list := p.addrListA(t)
	out := make(map[netip.Addr][2]int)
	for _, a := range list {
		ip, _ := netip.AddrFromSlice(a.IP)
		out[ip.Unmap()] = [2]int{a.ValidLft, a.PreferedLft}
	}
	return out
}

// TestLease: a claimed VIP carries a kernel lifetime, stays while it is
// renewed, and is gone soon after the renewals stop, by the kernel alone.
func TestLease(t *testing.T) {
	p := newPair(t)
	m := p.manager(t)
	if changed, err := m.Claim(vips); err != nil || !changed {
		t.Fatalf("Claim = %v, %v; want true, nil", changed, err)
	}
	lft := p.lifetimes(t)
	for _, v := range vips {
		l, ok := lft[v.Addr()]
		if !ok {
			t.Fatalf("%v not held after Claim", v)
		}
		if l[0] <= 0 || l[0] > int(Lifetime/time.Second) || l[1] <= 0 || l[1] > int(Lifetime/time.Second) {
			t.Errorf("%v lifetimes valid %d preferred %d; want 1..%d", v, l[0], l[1], int(Lifetime/time.Second))
		}
	}
	if f := p.addrsA(t)[vip6.Addr()]; f&unix.IFA_F_NODAD == 0 || f&unix.IFA_F_PERMANENT != 0 {
		t.Errorf("IPv6 VIP flags %#x; want nodad, not permanent", f)
	}

	// Renewed for three lifetimes, the VIPs stay.
	end := time.Now().Add(3 * Lifetime)
	for time.Now().Before(end) {
		all, err := m.Renew(vips)
		if err != nil || !all {
			t.Fatalf("Renew = %v, %v; want true, nil", all, err)
		}
		have := p.addrsA(t)
		for _, v := range vips {
			if _, ok := have[v.Addr()]; !ok {
				t.Fatalf("%v expired although renewed every %v", v, RenewInterval)
			}
		}
		time.Sleep(RenewInterval) // the renewal period under test, not a wait for a condition
	}
	if f := p.addrsA(t)[vip6.Addr()]; f&unix.IFA_F_NODAD == 0 || f&unix.IFA_F_PERMANENT != 0 {
		t.Errorf("IPv6 VIP flags after renewals %#x; want nodad, not permanent", f)
	}

	// Without renewals the kernel removes them (the target: gone within
	// 2.5 s of the last renewal).
	last := time.Now()
	if _, err := m.Renew(vips); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*Lifetime, "the VIPs to expire", func() bool {
		have := p.addrsA(t)
		_, a := have[vip4.Addr()]
		_, b := have[vip6.Addr()]
		return !a && !b
	})
	if took := time.Since(last); took > 2500*time.Millisecond {
		t.Errorf("VIPs gone %v after the last renewal; want at most 2.5s", took)
	} else {
		t.Logf("VIPs gone %v after the last renewal", took.Round(10*time.Millisecond))
	}

	// Renew never adds: that is Claim's job (with its announcement).
	if all, err := m.Renew(vips); err != nil || all {
		t.Fatalf("Renew of expired VIPs = %v, %v; want false, nil", all, err)
	}
	if have := p.addrsA(t); hasAddr(have, vip4.Addr()) || hasAddr(have, vip6.Addr()) {
		t.Fatalf("Renew added an expired VIP back: %v", have)
	}
	// A Claim after expiry adds them again; Renew after Release adds nothing.
	if changed, err := m.Claim(vips); err != nil || !changed {
		t.Fatalf("Claim after expiry = %v, %v; want true, nil", changed, err)
	}
	if _, err := m.Release(vips); err != nil {
		t.Fatal(err)
	}
	if all, err := m.Renew(vips); err != nil || all {
		t.Fatalf("Renew after Release = %v, %v; want false, nil", all, err)
	}
	if have := p.addrsA(t); hasAddr(have, vip4.Addr()) || hasAddr(have, vip6.Addr()) {
		t.Fatalf("Renew after Release added a VIP: %v", have)
	}
}

// TestRenewGivesPermanentAddressALifetime: a VIP held without a lifetime
// (added by hand or by an older version) gets one at the first renewal.
func TestRenewGivesPermanentAddressALifetime(t *testing.T) {
	p := newPair(t)
	m := p.manager(t)
	link, err := p.ha.LinkByName(p.ifA)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vips {
		a := &netlink.Addr{IPNet: ipNet(v)}
		if v.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := p.ha.AddrAdd(link, a); err != nil {
			t.Fatal(err)
		}
	}
	if all, err := m.Renew(vips); err != nil || !all {
		t.Fatalf("Renew = %v, %v; want true, nil", all, err)
	}
	for _, v := range vips {
		l := p.lifetimes(t)[v.Addr()]
		if l[0] <= 0 || l[0] > int(Lifetime/time.Second) {
			t.Errorf("%v valid lifetime %d after Renew; want 1..%d", v, l[0], int(Lifetime/time.Second))
		}
	}
	if f := p.addrsA(t)[vip6.Addr()]; f&unix.IFA_F_PERMANENT != 0 {
		t.Errorf("IPv6 VIP still permanent after Renew (flags %#x)", f)
	}
	waitFor(t, 2*Lifetime, "the renewed VIPs to expire", func() bool {
		have := p.addrsA(t)
		return !hasAddr(have, vip4.Addr()) && !hasAddr(have, vip6.Addr())
	})
}

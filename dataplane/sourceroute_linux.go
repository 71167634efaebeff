//go:build linux

package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Source routing for the kernel device.
//
// The kernel WireGuard module replies from the address a peer's packet
// arrived on (it caches that source per peer), so answers to clients that
// talk to the VIP leave from the VIP. A packet with no cached source - the
// handshake a new leader initiates to a stored endpoint - gets the source
// the route lookup picks, the node's primary address, and the client would
// roam to it. So the kernel device is given a firewall mark (sourceMark),
// and a policy rule sends marked packets to a table (sourceTable) that
// holds a copy of every unicast route of the main table with its preferred
// source set to the VIP of its family. Anything the table does not match
// falls through to the main table.
//
// The kernel refuses a route whose preferred source is not a local address,
// so the table can only be filled while the VIP is on an interface. The
// kernel device rebuilds it on every Set while up, and before initiating a
// handshake until it has been built once after the last Set. Changes to the
// main table are picked up at the next Set.

const (
	sourceMark         = 0x5247 // "RG": the kernel device's fwmark when it has source addresses
	sourceTable        = 0x5247 // the routing table of marked packets
	sourceRulePriority = 0x5247 // the rule's priority: before main (32766)
)

// syncSourceRouting makes packets marked with sourceMark leave from the
// first address of their family in sources, or, with enabled false, removes
// the rule and the table. Routes through the link skipIndex (the WireGuard
// interface) are not copied. It reports whether anything changed, and ready:
// each family with a source address has its rule and routes (the address
// is local).
func syncSourceRouting(sources []netip.Addr, enabled bool, skipIndex int) (changed, ready bool, err error) {
	ready = true
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		var src netip.Addr
		for _, a := range sources {
			if a.Is4() == (fam == netlink.FAMILY_V4) {
				src = a
				break
			}
		}
		active := enabled && src.IsValid()
		if active {
			local, err := isLocalAddr(src, fam)
			if err != nil {
				return changed, false, err
			}
			if !local {
				active = false
				ready = false
			}
		}
		c, err := syncSourceFamily(fam, src, active, skipIndex)
		changed = changed || c
		if err != nil {
			return changed, false, err
		}
	}
	return changed, ready, nil
}

// isLocalAddr reports whether a is a usable (not tentative) address of an
// interface.
func isLocalAddr(a netip.Addr, fam int) (bool, error) {
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return netlink.AddrList(nil, fam) })
	if err != nil {
		return false, fmt.Errorf("list addresses: %w", err)
	}
	for _, x := range addrs {
		if p, ok := addrPrefix(x); ok && p.Addr() == a && x.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) == 0 {
			return true, nil
		}
	}
	return false, nil
}

// syncSourceFamily does syncSourceRouting's work for one address family.
func syncSourceFamily(fam int, src netip.Addr, active bool, skipIndex int) (bool, error) {
	changed := false
	var want []netlink.Route
	if active {
		main, err := retryDump(func() ([]netlink.Route, error) {
			return netlink.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		})
		if err != nil {
			return false, fmt.Errorf("list main routing table: %w", err)
		}
		for _, r := range main {
			if r.Type != unix.RTN_UNICAST || (skipIndex != 0 && r.LinkIndex == skipIndex) {
				continue
			}
			if r.Dst != nil && r.Dst.IP.IsLinkLocalUnicast() {
				continue // link-local destinations keep link-local sources
			}
			want = append(want, netlink.Route{
				LinkIndex: r.LinkIndex,
				Dst:       r.Dst,
				Gw:        r.Gw,
				MultiPath: r.MultiPath,
				Scope:     r.Scope,
				Priority:  r.Priority,
				Flags:     r.Flags & unix.RTNH_F_ONLINK,
				Family:    fam,
				Table:     sourceTable,
				Src:       src.AsSlice(),
				Protocol:  unix.RTPROT_STATIC,
				Type:      unix.RTN_UNICAST,
			})
		}
	}
	have, err := retryDump(func() ([]netlink.Route, error) {
		return netlink.RouteListFiltered(fam, &netlink.Route{Table: sourceTable}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return false, fmt.Errorf("list routing table %d: %w", sourceTable, err)
	}
	wantKeys := make(map[string]bool, len(want))
	for _, r := range want {
		wantKeys[routeKey(r)] = true
	}
	haveKeys := make(map[string]bool, len(have))
	for _, r := range have {
		k := routeKey(r)
		haveKeys[k] = true
		if !wantKeys[k] {
			if err := netlink.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
				return changed, fmt.Errorf("remove route %s from table %d: %w", k, sourceTable, err)
			}
			changed = true
		}
	}
	for _, r := range want {
		if haveKeys[routeKey(r)] {
			continue
		}
		if err := netlink.RouteAdd(&r); err != nil {
			if errors.Is(err, unix.EEXIST) {
				continue // a twin (same destination and metric) is there
			}
			return changed, fmt.Errorf("add route %s to table %d: %w", routeKey(r), sourceTable, err)
		}
		changed = true
	}

	rules, err := retryDump(func() ([]netlink.Rule, error) {
		return netlink.RuleListFiltered(fam, &netlink.Rule{Table: sourceTable}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return changed, fmt.Errorf("list routing rules: %w", err)
	}
	found := false
	for _, r := range rules {
		ours := r.Mark == sourceMark && r.Priority == sourceRulePriority && !found
		if ours && active {
			found = true
			continue
		}
		r.Family = fam
		if err := netlink.RuleDel(&r); err != nil && !errors.Is(err, unix.ENOENT) {
			return changed, fmt.Errorf("remove routing rule for table %d: %w", sourceTable, err)
		}
		changed = true
	}
	if active && !found {
		r := netlink.NewRule()
		r.Family = fam
		r.Table = sourceTable
		r.Mark = sourceMark
		mask := uint32(0xffffffff)
		r.Mask = &mask
		r.Priority = sourceRulePriority
		if err := netlink.RuleAdd(r); err != nil && !errors.Is(err, unix.EEXIST) {
			return changed, fmt.Errorf("add routing rule fwmark %#x table %d: %w", sourceMark, sourceTable, err)
		}
		changed = true
	}
	return changed, nil
}

// routeKey identifies a route of the source table by what it does.
func routeKey(r netlink.Route) string {
	var b strings.Builder
	if r.Dst == nil {
		b.WriteString("default")
	} else if ones, _ := r.Dst.Mask.Size(); ones == 0 && r.Dst.IP.IsUnspecified() {
		b.WriteString("default")
	} else {
		b.WriteString(r.Dst.String())
	}
	if r.Gw != nil {
		fmt.Fprintf(&b, " via %s", r.Gw)
	}
	fmt.Fprintf(&b, " dev %d metric %d src %s", r.LinkIndex, r.Priority, r.Src)
	hops := make([]string, 0, len(r.MultiPath))
	for _, h := range r.MultiPath {
		hops = append(hops, fmt.Sprintf("%s@%d/%d", h.Gw, h.LinkIndex, h.Hops))
	}
	slices.Sort(hops)
	if len(hops) > 0 {
		fmt.Fprintf(&b, " nexthops %s", strings.Join(hops, ","))
	}
	return b.String()
}

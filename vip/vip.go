package vip

import (
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// announceRepeats are the delays, counted from the claim, at which an
// announcement is sent again after the immediate one. Switches and
// neighbours that missed the first one (a port still coming up, a lost
// frame, a neighbour entry locked for a moment after an update) catch a
// later one.
var announceRepeats = []time.Duration{
	200 * time.Millisecond,
	1 * time.Second,
	2 * time.Second,
	4 * time.Second,
}

// The VIP lease. The leader adds every VIP with a kernel lifetime
// (valid_lft and preferred_lft) of Lifetime and renews it every
// RenewInterval while it leads with a quorum. A leader whose process dies or
// freezes stops renewing, and the kernel removes the VIP by itself: the
// kernel checks lifetimes on a timer with about a second of slack, so an
// address added with a lifetime of 2 s was measured gone 1.95-2.33 s later
// (IPv4 and IPv6, see docs/reliability.md). A process killed right after a
// renewal therefore loses its VIP at most about 2.35 s after the fault.
// Four renewals fall inside one lifetime, so a leader that misses three in
// a row (a long pause of the process) still keeps its VIP.
const (
	// Lifetime is the kernel lifetime of a claimed VIP.
	Lifetime = 2 * time.Second
	// RenewInterval is how often the leader renews the lifetime.
	RenewInterval = 500 * time.Millisecond
)

// normalize checks vips and returns them without duplicates, sorted by
// address, so that two lists naming the same VIPs compare equal.
func normalize(vips []netip.Prefix) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(vips))
	for _, p := range vips {
		if err := check(p); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(out), nil
}

// check reports whether p can serve as a VIP.
func check(p netip.Prefix) error {
	a := p.Addr()
	switch {
	case !p.IsValid():
		return fmt.Errorf("%w: %v", ErrInvalidVIP, p)
	case a.Is4In6():
		return fmt.Errorf("%w: %v is an IPv4-mapped IPv6 address", ErrInvalidVIP, p)
	case a.IsUnspecified(), a.IsLoopback(), a.IsMulticast(),
		a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast(), a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("%w: %v is not a unicast address for a LAN", ErrInvalidVIP, p)
	}
	return nil
}

// sameAddrs reports whether a and b (both normalized) name the same VIPs.
func sameAddrs(a, b []netip.Prefix) bool { return slices.Equal(a, b) }

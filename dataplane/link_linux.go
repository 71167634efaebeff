//go:build linux

package dataplane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// This file holds the link-level operations both backends share: finding
// the link, its addresses, MTU and administrative state, all through
// netlink and all read back from the kernel each time (level-triggered).

// dumpRetries is how often a netlink dump interrupted by a concurrent change
// is retried before its error is returned.
const dumpRetries = 5

// retryDump runs a netlink dump until it is not interrupted by a concurrent
// change (netlink.ErrDumpInterrupted), a few times at most.
func retryDump[T any](dump func() (T, error)) (T, error) {
	var (
		out T
		err error
	)
	for range dumpRetries {
		out, err = dump()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return out, err
		}
	}
	return out, err
}

// linkByIndex returns the link with this index, or an error wrapping
// ErrLinkNotFound when it is gone (or another link took its index and name).
func linkByIndex(index int, name string) (netlink.Link, error) {
	l, err := netlink.LinkByIndex(index)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return nil, fmt.Errorf("%w: %s", ErrLinkNotFound, name)
		}
		return nil, fmt.Errorf("read link %s: %w", name, err)
	}
	if l.Attrs().Name != name {
		return nil, fmt.Errorf("%w: %s (index %d is now %s)", ErrLinkNotFound, name, index, l.Attrs().Name)
	}
	return l, nil
}

// linkExists reports whether a link with this name exists, and its type.
func linkExists(name string) (bool, string, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return false, "", nil
		}
		return false, "", fmt.Errorf("look up link %s: %w", name, err)
	}
	return true, l.Type(), nil
}

// isAdminUp reports whether the link is administratively up.
func isAdminUp(l netlink.Link) bool {
	return l.Attrs().Flags&net.FlagUp != 0
}

// setAdminState brings the link up or down and reports whether it changed.
func setAdminState(l netlink.Link, up bool) (bool, error) {
	if isAdminUp(l) == up {
		return false, nil
	}
	if up {
		if err := netlink.LinkSetUp(l); err != nil {
			return false, fmt.Errorf("set %s up: %w", l.Attrs().Name, err)
		}
		return true, nil
	}
	if err := netlink.LinkSetDown(l); err != nil {
		return false, fmt.Errorf("set %s down: %w", l.Attrs().Name, err)
	}
	return true, nil
}

// syncLinkConfig gives the link the wanted MTU and exactly the wanted
// addresses (IPv6 link-local addresses the kernel made are left alone), and
// reports whether anything changed.
func syncLinkConfig(l netlink.Link, mtu int, addrs []netip.Prefix) (bool, error) {
	name := l.Attrs().Name
	changed := false
	if l.Attrs().MTU != mtu {
		if err := netlink.LinkSetMTU(l, mtu); err != nil {
			return false, fmt.Errorf("set MTU of %s to %d: %w", name, mtu, err)
		}
		changed = true
	}
	have, err := retryDump(func() ([]netlink.Addr, error) { return netlink.AddrList(l, netlink.FAMILY_ALL) })
	if err != nil {
		return changed, fmt.Errorf("list addresses of %s: %w", name, err)
	}
	haveSet := make(map[netip.Prefix]bool, len(have))
	for _, a := range have {
		p, ok := addrPrefix(a)
		if !ok {
			continue
		}
		haveSet[p] = true
		if p.Addr().Is6() && p.Addr().IsLinkLocalUnicast() {
			continue
		}
		if !slices.Contains(addrs, p) {
			if err := netlink.AddrDel(l, &a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
				return changed, fmt.Errorf("remove address %s from %s: %w", p, name, err)
			}
			changed = true
		}
	}
	for _, p := range addrs {
		if haveSet[p] {
			continue
		}
		a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
		if p.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := netlink.AddrAdd(l, a); err != nil && !errors.Is(err, unix.EEXIST) {
			return changed, fmt.Errorf("add address %s to %s: %w", p, name, err)
		}
		changed = true
	}
	return changed, nil
}

// addrPrefix converts a netlink address to a prefix with its host bits.
func addrPrefix(a netlink.Addr) (netip.Prefix, bool) {
	if a.IPNet == nil {
		return netip.Prefix{}, false
	}
	ip, ok := netip.AddrFromSlice(a.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := a.Mask.Size()
	return netip.PrefixFrom(ip.Unmap(), ones), true
}

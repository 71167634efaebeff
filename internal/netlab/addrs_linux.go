package netlab

import (
	"fmt"
	"net/netip"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// AddrsOf returns the non-link-local addresses on the host's interface dev,
// read over netlink in the host's namespace: no process is started, so
// tests can sample them every few milliseconds (also in a slow VM, where
// starting `ip` takes a good part of a second).
func (h *Host) AddrsOf(dev string) ([]netip.Prefix, error) {
	ns, err := netns.GetFromPath(filepath.Join(netnsDir, h.ns))
	if err != nil {
		return nil, fmt.Errorf("netlab: namespace %s: %w", h.ns, err)
	}
	defer ns.Close()
	nh, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("netlab: netlink in %s: %w", h.ns, err)
	}
	defer nh.Close()
	link, err := nh.LinkByName(dev)
	if err != nil {
		return nil, fmt.Errorf("netlab: %s in %s: %w", dev, h.ns, err)
	}
	as, err := nh.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("netlab: addresses of %s in %s: %w", dev, h.ns, err)
	}
	var out []netip.Prefix
	for _, a := range as {
		if a.Scope == unix.RT_SCOPE_LINK || a.Scope == unix.RT_SCOPE_HOST || a.IPNet == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		out = append(out, netip.PrefixFrom(ip.Unmap(), ones))
	}
	return out, nil
}

package netlab

import (
	"context"
	"fmt"
	"net/netip"
	"time"
)

// MoveBehind takes the host off the switch and plugs it into router r by a
// link of its own: the host keeps eth0 and its addresses; the link's end
// in r is named dev and holds gw (which must contain the host's IPv4
// address); r forwards IPv4; the host's default route goes via gw. The
// host then has no layer-2 path to the switch: it reaches the other hosts
// through r, which reach it once they route its network via r (AddRoute).
// LinkDown and LinkUp act on the new link. It returns once the link is
// operationally up.
func (h *Host) MoveBehind(r *Host, dev string, gw netip.Prefix) error {
	l := h.lab
	if r == h || r.lab != l {
		return fmt.Errorf("netlab: %s cannot be moved behind %s", h.name, r.name)
	}
	if len(dev) > 15 || !validIfName.MatchString(dev) {
		return fmt.Errorf("netlab: invalid interface name %q", dev)
	}
	if !gw.Addr().Is4() || !h.v4.IsValid() || !gw.Masked().Contains(h.v4.Addr()) || gw.Addr() == h.v4.Addr() {
		return fmt.Errorf("netlab: gateway %v for %s (%v): want another IPv4 address of its network", gw, h.name, h.v4)
	}
	ns, port := h.peerEnd()
	if ns != l.sw {
		return fmt.Errorf("netlab: %s is not on the switch", h.name)
	}
	if err := l.ipBatch(
		[]string{"-n", l.sw, "link", "set", port, "nomaster"},
		[]string{"-n", l.sw, "link", "set", port, "netns", r.ns},
	); err != nil {
		return err
	}
	l.mu.Lock()
	h.peerNS = r.ns
	l.mu.Unlock()
	if err := l.ipBatch(
		[]string{"-n", r.ns, "link", "set", port, "name", dev},
	); err != nil {
		return err
	}
	l.mu.Lock()
	h.peer = dev
	l.mu.Unlock()
	if err := l.ipBatch(
		[]string{"-n", r.ns, "addr", "add", gw.String(), "dev", dev},
		[]string{"-n", r.ns, "link", "set", dev, "up"},
	); err != nil {
		return err
	}
	if _, err := r.Run(context.Background(), "sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
		return err
	}
	if err := h.waitOperUp(patience(10 * time.Second)); err != nil {
		return err
	}
	return h.AddRoute(netip.Prefix{}, gw.Addr())
}

// AddRoute adds a route in the host: dst via the gateway via (the default
// route when dst is the zero Prefix).
func (h *Host) AddRoute(dst netip.Prefix, via netip.Addr) error {
	to := "default"
	if dst.IsValid() {
		to = dst.Masked().String()
	}
	fam := "-4"
	if via.Is6() {
		fam = "-6"
	}
	return h.lab.ipBatch([]string{fam, "-n", h.ns, "route", "add", to, "via", via.String()})
}

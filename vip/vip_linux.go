//go:build linux

package vip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netlinkTimeout bounds every netlink request, so that a wedged kernel
// answer cannot stall the caller (the reconcile loop) for ever.
const netlinkTimeout = 5 * time.Second

// A Manager claims, releases and announces VIPs on one network interface.
// Its methods are safe for concurrent use; they are serialized.
type Manager struct {
	iface string
	log   *slog.Logger
	ns    netns.NsHandle  // network namespace to work in; netns.None() for the caller's own
	nl    *netlink.Handle // netlink socket in that namespace

	// lifetime is the kernel lifetime (valid_lft and preferred_lft) every
	// VIP is added and renewed with; 0 adds permanent addresses.
	lifetime time.Duration

	mu        sync.Mutex         // guards announced, stop, done and closed; held for the whole of every method
	announced []netip.Prefix     // VIPs of the latest announcement series (normalized); nil after Release or a failed Claim
	stop      context.CancelFunc // cancels the pending repeats; nil when none run
	done      chan struct{}      // closed when the repeating goroutine has returned
	closed    bool
}

// New returns a Manager for the network interface iface in the caller's
// network namespace. It fails with ErrNoInterface when there is no such
// interface. A nil log discards messages.
func New(iface string, log *slog.Logger) (*Manager, error) {
	return newManager(iface, log, netns.None())
}

// newManager is New working in the network namespace ns (netns.None() for
// the caller's own). The caller keeps ownership of ns and must keep it open
// until Close has returned.
func newManager(iface string, log *slog.Logger, ns netns.NsHandle) (*Manager, error) {
	if iface == "" {
		return nil, fmt.Errorf("%w: empty interface name", ErrNoInterface)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var (
		h   *netlink.Handle
		err error
	)
	if ns.IsOpen() {
		h, err = netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	} else {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	}
	if err != nil {
		return nil, fmt.Errorf("vip: opening netlink socket: %w", err)
	}
	if err := h.SetSocketTimeout(netlinkTimeout); err != nil {
		h.Close()
		return nil, fmt.Errorf("vip: setting netlink timeout: %w", err)
	}
	m := &Manager{
		iface:    iface,
		log:      log.With("component", "vip", "interface", iface),
		ns:       ns,
		nl:       h,
		lifetime: Lifetime,
	}
	if _, err := m.link(); err != nil {
		h.Close()
		return nil, err
	}
	return m, nil
}

// lock opens Claim, Release, Renew and Held: it checks and normalizes vips
// and takes m.mu, which the caller releases with unlock.
func (m *Manager) lock(vips []netip.Prefix) (want []netip.Prefix, unlock func(), err error) {
	want, err = normalize(vips)
	if err != nil {
		return nil, nil, err
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, nil, ErrClosed
	}
	return want, m.mu.Unlock, nil
}

// lockAddrs is lock followed by linkAddrs. On an error m.mu is not held.
func (m *Manager) lockAddrs(vips []netip.Prefix) (want []netip.Prefix, link netlink.Link, have map[netip.Addr]netlink.Addr, unlock func(), err error) {
	want, unlock, err = m.lock(vips)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	link, have, err = m.linkAddrs()
	if err != nil {
		unlock()
		return nil, nil, nil, nil, err
	}
	return want, link, have, unlock, nil
}

// Claim adds every VIP in vips that the interface does not hold yet (IPv6
// ones without duplicate address detection, so they are usable at once)
// and reports whether it added any. Each is added with a kernel lifetime of
// Lifetime: unless Renew extends it, the kernel removes the address by
// itself. Claim does not extend the lifetime of a VIP already held; that is
// Renew's job, done only with proof of leadership.
//
// When it added one, or when vips differ from the VIPs this Manager last
// announced, it announces all of them at once (gratuitous ARP, unsolicited
// neighbour advertisement) and again a few times over the next seconds in
// the background, cancelling the repeats of any earlier announcement. A
// Claim that changes nothing leaves a running series alone, so that a
// reconcile loop may call it on every pass without flooding the LAN.
//
// An error for one VIP does not stop the others: the VIPs in place are
// announced and the errors are returned together. An announcement that
// fails is reported with ErrAnnounce, and the next Claim tries it again.
func (m *Manager) Claim(vips []netip.Prefix) (changed bool, err error) {
	want, link, have, unlock, err := m.lockAddrs(vips)
	if err != nil {
		return false, err
	}
	defer unlock()

	var (
		errs []error
		held []netip.Prefix
	)
	for _, p := range want {
		if _, ok := have[p.Addr()]; ok {
			held = append(held, p)
			continue
		}
		switch err := m.nl.AddrAdd(link, m.leased(ipNet(p))); {
		case err == nil:
			changed = true
			held = append(held, p)
			m.log.Info("claimed virtual IP", "vip", p)
		case errors.Is(err, unix.EEXIST):
			// Added by someone else since the listing.
			held = append(held, p)
		default:
			errs = append(errs, fmt.Errorf("vip: adding %v to %s: %w", p, m.iface, err))
		}
	}
	if !changed && len(errs) == 0 && sameAddrs(m.announced, want) {
		return false, nil
	}

	m.stopRepeats()
	m.announced = nil
	li := infoOf(link)
	if err := m.announce(li, held); err != nil {
		errs = append(errs, err)
	}
	m.startRepeats(li, held)
	if len(errs) == 0 {
		m.announced = want
	}
	return changed, errors.Join(errs...)
}

// Release removes every VIP in vips that the interface holds and reports
// whether it removed any. It first cancels any pending announcement. An
// address that is already gone (removed by someone else, even while
// Release runs) is not an error; any other netlink error is returned,
// after the remaining VIPs have been tried.
func (m *Manager) Release(vips []netip.Prefix) (changed bool, err error) {
	want, unlock, err := m.lock(vips)
	if err != nil {
		return false, err
	}
	defer unlock()
	m.stopRepeats()
	m.announced = nil

	link, have, err := m.linkAddrs()
	if err != nil {
		return false, err
	}
	var errs []error
	for _, p := range want {
		a, ok := have[p.Addr()]
		if !ok {
			continue
		}
		switch err := m.nl.AddrDel(link, &a); {
		case err == nil:
			changed = true
			m.log.Info("released virtual IP", "vip", p)
		case errors.Is(err, unix.EADDRNOTAVAIL), errors.Is(err, unix.ENOENT):
			// Removed by someone else since the listing.
		default:
			errs = append(errs, fmt.Errorf("vip: removing %v from %s: %w", p, m.iface, err))
		}
	}
	return changed, errors.Join(errs...)
}

// Renew resets the kernel lifetime of every VIP in vips that the interface
// holds to Lifetime from now, and reports whether it renewed every one of
// them. A VIP the interface does not hold is not added (adding, with its
// announcement, is Claim's job): Renew after Release, or after the kernel
// let a VIP expire, leaves the interface without it and returns false. An
// address held without a lifetime (added by hand, or by an older version)
// gets one.
//
// Call Renew only while this node is leader and has recently heard from a
// quorum: the lease is what removes the VIP from a node whose process died
// or froze.
func (m *Manager) Renew(vips []netip.Prefix) (all bool, err error) {
	want, link, have, unlock, err := m.lockAddrs(vips)
	if err != nil {
		return false, err
	}
	defer unlock()
	all = true
	var errs []error
	for _, p := range want {
		a, ok := have[p.Addr()]
		if !ok {
			all = false
			continue
		}
		// Replace with the address as held (its own prefix length, so the
		// kernel matches it) and only the flags Claim sets: echoing the
		// listed flags would pass IFA_F_PERMANENT back for IPv6.
		switch err := m.nl.AddrReplace(link, m.leased(a.IPNet)); {
		case err == nil:
		case errors.Is(err, unix.EADDRNOTAVAIL), errors.Is(err, unix.ENOENT):
			all = false // removed since the listing
		default:
			all = false
			errs = append(errs, fmt.Errorf("vip: renewing %v on %s: %w", p, m.iface, err))
		}
	}
	return all, errors.Join(errs...)
}

// leased returns the netlink address for n with the Manager's lifetime and,
// for IPv6, without duplicate address detection.
func (m *Manager) leased(n *net.IPNet) *netlink.Addr {
	a := &netlink.Addr{IPNet: &net.IPNet{IP: n.IP, Mask: n.Mask}}
	if n.IP.To4() == nil {
		a.Flags = unix.IFA_F_NODAD
	}
	if m.lifetime > 0 {
		secs := int((m.lifetime + time.Second - 1) / time.Second)
		a.ValidLft, a.PreferedLft = secs, secs
	}
	return a
}

// Held reports whether the interface holds every VIP in vips now (true for
// an empty list).
func (m *Manager) Held(vips []netip.Prefix) (bool, error) {
	want, _, have, unlock, err := m.lockAddrs(vips)
	if err != nil {
		return false, err
	}
	defer unlock()
	for _, p := range want {
		if _, ok := have[p.Addr()]; !ok {
			return false, nil
		}
	}
	return true, nil
}

// Close stops the background announcements and releases the Manager's
// netlink socket. It does not release the VIPs. Later calls of the
// Manager's methods fail with ErrClosed; Close itself may be called again.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	m.stopRepeats()
	m.announced = nil
	m.nl.Close()
	return nil
}

// stopRepeats cancels the pending announcements and waits until the
// goroutine sending them has returned, so that nothing is announced after
// a Release. m.mu must be held.
func (m *Manager) stopRepeats() {
	if m.stop == nil {
		return
	}
	m.stop()
	<-m.done
	m.stop, m.done = nil, nil
}

// startRepeats sends the announcements for vips again at the delays of
// announceRepeats, until stopRepeats. m.mu must be held.
func (m *Manager) startRepeats(li linkInfo, vips []netip.Prefix) {
	if len(vips) == 0 || !li.canAnnounce() {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	m.stop, m.done = cancel, done
	start := time.Now()
	go func() {
		defer close(done)
		for _, d := range announceRepeats {
			t := time.NewTimer(time.Until(start.Add(d)))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			if err := m.announce(li, vips); err != nil {
				m.log.Warn("repeating the announcement of virtual IPs failed", "error", err)
			}
		}
	}()
}

// announce sends one round of announcements for vips on the interface.
func (m *Manager) announce(li linkInfo, vips []netip.Prefix) error {
	if len(vips) == 0 {
		return nil
	}
	if !li.canAnnounce() {
		m.log.Debug("interface does not use ARP or neighbour discovery; not announcing", "vips", vips)
		return nil
	}
	var v4, v6 []netip.Addr
	for _, p := range vips {
		if p.Addr().Is4() {
			v4 = append(v4, p.Addr())
		} else {
			v6 = append(v6, p.Addr())
		}
	}
	err := m.inNS(func() error {
		var errs []error
		if len(v4) > 0 {
			errs = append(errs, sendGARP(li, v4))
		}
		for _, a := range v6 {
			errs = append(errs, sendNA(li, a))
		}
		return errors.Join(errs...)
	})
	if err != nil {
		return fmt.Errorf("%w on %s: %w", ErrAnnounce, li.name, err)
	}
	m.log.Debug("announced virtual IPs", "vips", vips)
	return nil
}

// inNS runs f with its calling thread in the Manager's network namespace,
// so that the sockets f opens belong to it (a socket stays in the namespace
// it was created in).
func (m *Manager) inNS(f func() error) error { return runInNS(m.ns, f) }

// runInNS runs f on a thread in the network namespace ns, or simply calls
// it when ns is not open (the caller's own namespace).
func runInNS(ns netns.NsHandle, f func() error) error {
	if !ns.IsOpen() {
		return f()
	}
	errc := make(chan error, 1)
	go func() {
		// The thread is never unlocked: when this goroutine returns, the
		// runtime ends the thread rather than reuse it in the wrong
		// namespace.
		runtime.LockOSThread()
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("entering network namespace: %w", err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// link looks the interface up by name (its index may change if it is
// recreated).
func (m *Manager) link() (netlink.Link, error) {
	l, err := retryDump(func() (netlink.Link, error) { return m.nl.LinkByName(m.iface) })
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return nil, fmt.Errorf("%w: %s", ErrNoInterface, m.iface)
		}
		return nil, fmt.Errorf("vip: looking up interface %s: %w", m.iface, err)
	}
	return l, nil
}

// linkAddrs looks the interface up and returns it with its addresses.
func (m *Manager) linkAddrs() (netlink.Link, map[netip.Addr]netlink.Addr, error) {
	link, err := m.link()
	if err != nil {
		return nil, nil, err
	}
	have, err := m.addrs(link)
	return link, have, err
}

// addrs returns the addresses on link, by address.
func (m *Manager) addrs(link netlink.Link) (map[netip.Addr]netlink.Addr, error) {
	list, err := retryDump(func() ([]netlink.Addr, error) { return m.nl.AddrList(link, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("vip: listing addresses of %s: %w", m.iface, err)
	}
	out := make(map[netip.Addr]netlink.Addr, len(list))
	for _, a := range list {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			out[ip.Unmap()] = a
		}
	}
	return out, nil
}

// InterfaceFor returns the name of the interface, in the caller's network
// namespace, that holds addr; ErrAddressNotFound when none does.
func InterfaceFor(addr netip.Addr) (string, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return "", fmt.Errorf("vip: opening netlink socket: %w", err)
	}
	defer h.Close()
	return interfaceFor(h, addr)
}

func interfaceFor(h *netlink.Handle, addr netip.Addr) (string, error) {
	if !addr.IsValid() {
		return "", fmt.Errorf("%w: invalid address", ErrAddressNotFound)
	}
	addr = addr.Unmap().WithZone("")
	list, err := retryDump(func() ([]netlink.Addr, error) { return h.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return "", fmt.Errorf("vip: listing addresses: %w", err)
	}
	for _, a := range list {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || ip.Unmap() != addr {
			continue
		}
		l, err := retryDump(func() (netlink.Link, error) { return h.LinkByIndex(a.LinkIndex) })
		if err != nil {
			return "", fmt.Errorf("vip: looking up interface %d: %w", a.LinkIndex, err)
		}
		return l.Attrs().Name, nil
	}
	return "", fmt.Errorf("%w: %v", ErrAddressNotFound, addr)
}

// retryDump calls f again, a few times, while the kernel reports that a
// netlink dump was interrupted by a concurrent change.
func retryDump[T any](f func() (T, error)) (T, error) {
	for i := 0; ; i++ {
		v, err := f()
		if !errors.Is(err, netlink.ErrDumpInterrupted) || i == 4 {
			return v, err
		}
	}
}

// ipNet converts p, keeping its host bits, for netlink.
func ipNet(p netip.Prefix) *net.IPNet {
	a := p.Addr()
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(p.Bits(), a.BitLen())}
}

// linkInfo is what an announcement needs to know about the interface.
type linkInfo struct {
	name  string
	index int
	mac   net.HardwareAddr
	flags net.Flags
	noARP bool
}

func infoOf(l netlink.Link) linkInfo {
	a := l.Attrs()
	return linkInfo{
		name:  a.Name,
		index: a.Index,
		mac:   a.HardwareAddr,
		flags: a.Flags,
		noARP: a.RawFlags&unix.IFF_NOARP != 0,
	}
}

// canAnnounce reports whether the interface is an Ethernet-like link whose
// neighbours learn addresses by ARP and neighbour discovery (not loopback,
// a tunnel or a WireGuard interface).
func (li linkInfo) canAnnounce() bool {
	return len(li.mac) == 6 && !li.noARP && li.flags&net.FlagLoopback == 0
}

// EnsureDummy creates the dummy interface name (if missing) and sets it up:
// the bgp mode keeps the VIPs' local addresses there, off the LAN NIC.
func EnsureDummy(name string) error {
	if _, err := netlink.LinkByName(name); err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) {
			return fmt.Errorf("vip: looking up %s: %w", name, err)
		}
		if err := netlink.LinkAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("vip: adding dummy interface %s: %w", name, err)
		}
	}
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("vip: looking up %s: %w", name, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("vip: setting %s up: %w", name, err)
	}
	return nil
}

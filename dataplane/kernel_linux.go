//go:build linux

package dataplane

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// kernelDevice is a kernel WireGuard link, configured through wgctrl.
//
// It follows the same plan as the userspace device. Its tests
// (kernel_linux_test.go) skip on a kernel without WireGuard; `make
// test-kernel` runs them, and the namespace lab with --dataplane kernel, in
// a VM with Debian's kernel.
type kernelDevice struct {
	name   string
	index  int
	log    *slog.Logger
	client *wgctrl.Client

	mu sync.Mutex // guards cur, sources, fenced, up, routingReady and closed; serialises the methods
	// cur is the device configuration last applied; nil when unknown (an
	// apply failed half-way): the next Set then reads it from the device.
	cur *devState
	// sources and up are the last Set's source addresses and Up.
	sources []netip.Addr
	// fenced are the source addresses the source fence (fence_linux.go)
	// was last installed for.
	fenced []netip.Addr
	up     bool
	// routingReady says the source routing (sourceroute_linux.go) has been
	// built for every source address since the last Set.
	routingReady bool
	closed       bool
}

var _ Device = (*kernelDevice)(nil)

// openKernel creates the kernel WireGuard link name, down and unconfigured.
// A kernel WireGuard link of that name left by a crash is replaced.
func openKernel(name string, log *slog.Logger) (_ *kernelDevice, err error) {
	exists, typ, err := linkExists(name)
	if err != nil {
		return nil, err
	}
	if exists {
		if typ != "wireguard" {
			return nil, fmt.Errorf("open kernel interface %s: a link of type %q with that name already exists", name, typ)
		}
		log.Warn("replacing a WireGuard interface left behind", "interface", name)
		if l, err := netlink.LinkByName(name); err == nil {
			if err := netlink.LinkDel(l); err != nil {
				return nil, fmt.Errorf("delete stale interface %s: %w", name, err)
			}
		}
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	attrs.MTU = DefaultMTU
	if err := netlink.LinkAdd(&netlink.GenericLink{LinkAttrs: attrs, LinkType: "wireguard"}); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) {
			return nil, fmt.Errorf("%w: create kernel WireGuard link %s: %v", ErrUnsupported, name, err)
		}
		return nil, fmt.Errorf("create kernel WireGuard link %s: %w", name, err)
	}
	link, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("look up new link %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			_ = netlink.LinkDel(link)
		}
	}()
	client, err := wgctrl.New()
	if err != nil {
		return nil, fmt.Errorf("open wgctrl: %w", err)
	}
	return &kernelDevice{name: name, index: link.Attrs().Index, log: log, client: client, cur: &devState{}}, nil
}

// Name implements Device.
func (d *kernelDevice) Name() string { return d.name }

// Kind implements Device.
func (d *kernelDevice) Kind() string { return KindKernel }

// Set implements Device.
func (d *kernelDevice) Set(cfg Config) (bool, error) { return setDevice(d, &d.mu, cfg, 0) }

// The kernel device's steps of Set (setDevice); d.mu is held.

func (d *kernelDevice) openLink() (netlink.Link, error) {
	if d.closed {
		return nil, ErrClosed
	}
	return linkByIndex(d.index, d.name)
}

// prepare installs the source fence first: no marked packet may leave from
// anything but a VIP, even before the link is up.
func (d *kernelDevice) prepare(w *wanted) (bool, error) {
	d.sources, d.up, d.routingReady = w.dev.sourceAddrs, w.up, false
	changed, err := syncFence(d.sources, d.fenced)
	if err != nil {
		return changed, err
	}
	d.fenced = slices.Clone(d.sources)
	return changed, nil
}

// setUp sets the link's state; the kernel closes the device's socket when
// the link goes down.
func (d *kernelDevice) setUp(link netlink.Link, up bool) (bool, error) {
	return setAdminState(link, up)
}

func (d *kernelDevice) configure(w *wanted) (bool, error) { return d.applyDevice(&w.dev) }

// finish builds or removes the source routing, once the link is up or down.
func (d *kernelDevice) finish() (bool, error) { return d.syncRouting() }

// syncRouting builds (up, with source addresses) or removes the source
// routing. d.mu must be held.
func (d *kernelDevice) syncRouting() (bool, error) {
	changed, ready, err := syncSourceRouting(d.sources, d.up && len(d.sources) > 0, d.index)
	if err != nil {
		return changed, fmt.Errorf("source routing for %s: %w", d.name, err)
	}
	d.routingReady = ready
	if !ready {
		d.log.Debug("source addresses not local yet; packets without a cached source leave from the primary address until they are",
			"interface", d.name, "source_addrs", d.sources)
	}
	return changed, nil
}

// applyDevice applies the difference between the device configuration and
// want through wgctrl. d.mu must be held.
func (d *kernelDevice) applyDevice(want *devState) (bool, error) {
	return applyDiff(&d.cur, want, d.readState, func(p *plan) error {
		if err := d.client.ConfigureDevice(d.name, wgConfig(p, len(want.sourceAddrs) > 0)); err != nil {
			return fmt.Errorf("configure kernel device %s: %w", d.name, err)
		}
		return nil
	}, d.log, d.name)
}

// wgConfig turns a plan into a wgctrl configuration that never replaces the
// peer list: each peer is removed, updated (UpdateOnly) or created on its
// own.
func wgConfig(p *plan, marked bool) wgtypes.Config {
	cfg := wgtypes.Config{PrivateKey: p.privateKey, ReplacePeers: false}
	if p.listenPort != 0 {
		port := p.listenPort
		cfg.ListenPort = &port
	}
	if p.sourceAddrs {
		mark := 0
		if marked {
			mark = sourceMark
		}
		cfg.FirewallMark = &mark
	}
	cfg.Peers = make([]wgtypes.PeerConfig, 0, len(p.peers))
	for i := range p.peers {
		op := &p.peers[i]
		pc := wgtypes.PeerConfig{PublicKey: op.key, PresharedKey: op.psk}
		switch op.kind {
		case opRemove:
			pc.Remove = true
		case opUpdate:
			pc.UpdateOnly = true
		case opCreate:
			if op.endpoint.IsValid() {
				pc.Endpoint = udpAddr(op.endpoint)
			}
		}
		if op.setIPs {
			pc.ReplaceAllowedIPs = true
			pc.AllowedIPs = make([]net.IPNet, len(op.allowedIPs))
			for j, a := range op.allowedIPs {
				pc.AllowedIPs[j] = net.IPNet{IP: a.Addr().AsSlice(), Mask: net.CIDRMask(a.Bits(), a.Addr().BitLen())}
			}
		}
		cfg.Peers = append(cfg.Peers, pc)
	}
	return cfg
}

func udpAddr(ap netip.AddrPort) *net.UDPAddr {
	return &net.UDPAddr{IP: ap.Addr().AsSlice(), Port: int(ap.Port()), Zone: ap.Addr().Zone()}
}

// readState reads the device configuration back through wgctrl.
func (d *kernelDevice) readState() (*devState, error) {
	dev, err := d.client.Device(d.name)
	if err != nil {
		return nil, fmt.Errorf("read kernel device %s: %w", d.name, err)
	}
	st := &devState{privateKey: dev.PrivateKey, listenPort: dev.ListenPort, peers: make(map[wgtypes.Key]*peerState, len(dev.Peers))}
	// The kernel does not know source addresses, only the mark. An
	// unspecified address never equals a wanted one (normalize refuses it),
	// so the next diff sets the mark again.
	st.sourceAddrs = []netip.Addr{netip.IPv4Unspecified()}
	for _, p := range dev.Peers {
		ps := &peerState{psk: p.PresharedKey}
		for _, a := range p.AllowedIPs {
			if pf, ok := ipNetPrefix(a); ok {
				ps.allowedIPs = append(ps.allowedIPs, pf.Masked())
			}
		}
		ps.allowedIPs = sortPrefixes(ps.allowedIPs)
		st.peers[p.PublicKey] = ps
	}
	return st, nil
}

func ipNetPrefix(n net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	if bits == 0 {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	if a.Is4() && bits == 128 {
		ones -= 96
	}
	return netip.PrefixFrom(a, ones), true
}

// Stats implements Device.
func (d *kernelDevice) Stats() ([]PeerStats, error) {
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	dev, err := d.client.Device(d.name)
	if err != nil {
		return nil, fmt.Errorf("read kernel device %s: %w", d.name, err)
	}
	out := make([]PeerStats, 0, len(dev.Peers))
	for _, p := range dev.Peers {
		s := PeerStats{PublicKey: p.PublicKey.String(), RxBytes: uint64(p.ReceiveBytes), TxBytes: uint64(p.TransmitBytes)}
		if p.Endpoint != nil {
			ap := p.Endpoint.AddrPort()
			s.Endpoint = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		}
		if t := p.LastHandshakeTime; !t.IsZero() && t.UnixNano() != 0 {
			s.LastHandshake = t
		}
		out = append(out, s)
	}
	return out, nil
}

// InitiateHandshake implements Device. The kernel has no "send a handshake
// now" call, but it sends a keepalive at once - hence, with no session, a
// handshake initiation - when a peer's persistent keepalive goes from off to
// on while the link is up. So: endpoint and a 1s interval, then the interval
// back off (the package never configures one).
func (d *kernelDevice) InitiateHandshake(publicKey string, endpoint netip.AddrPort) error {
	k, err := wgtypes.ParseKey(publicKey)
	if err != nil {
		return invalidf("public key is not 32 bytes of base64")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	link, err := d.openLink()
	if err != nil {
		return err
	}
	if !d.up || !isAdminUp(link) {
		return fmt.Errorf("initiate handshake with %s: %w", publicKey, ErrDown)
	}
	if d.cur != nil {
		if _, ok := d.cur.peers[k]; !ok {
			return fmt.Errorf("initiate handshake with %s: %w", publicKey, ErrUnknownPeer)
		}
	}
	if !d.routingReady && len(d.sources) > 0 {
		// The VIP may have been claimed since the last Set.
		if _, err := d.syncRouting(); err != nil {
			d.log.Warn("source routing", "interface", d.name, "err", err)
		}
	}
	on, off := time.Second, time.Duration(0)
	pc := wgtypes.PeerConfig{PublicKey: k, UpdateOnly: true, PersistentKeepaliveInterval: &off}
	if endpoint.IsValid() {
		pc.Endpoint = udpAddr(netip.AddrPortFrom(endpoint.Addr().Unmap(), endpoint.Port()))
	}
	// Make sure the interval is off first, so that turning it on sends.
	if err := d.client.ConfigureDevice(d.name, wgtypes.Config{Peers: []wgtypes.PeerConfig{pc}}); err != nil {
		return fmt.Errorf("initiate handshake with %s: %w", publicKey, err)
	}
	pc.Endpoint = nil
	pc.PersistentKeepaliveInterval = &on
	if err := d.client.ConfigureDevice(d.name, wgtypes.Config{Peers: []wgtypes.PeerConfig{pc}}); err != nil {
		return fmt.Errorf("initiate handshake with %s: %w", publicKey, err)
	}
	pc.PersistentKeepaliveInterval = &off
	if err := d.client.ConfigureDevice(d.name, wgtypes.Config{Peers: []wgtypes.PeerConfig{pc}}); err != nil {
		return fmt.Errorf("initiate handshake with %s: restore keepalive: %w", publicKey, err)
	}
	return nil
}

// IsUp implements Device.
func (d *kernelDevice) IsUp() (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	link, err := d.openLink()
	if err != nil {
		return false, err
	}
	return isAdminUp(link), nil
}

// Close implements Device: the source routing, the link and the wgctrl
// client go.
func (d *kernelDevice) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	var errs []error
	if _, _, err := syncSourceRouting(nil, false, d.index); err != nil {
		errs = append(errs, fmt.Errorf("remove source routing: %w", err))
	}
	if _, err := syncFence(nil, nil); err != nil {
		errs = append(errs, err)
	}
	if l, err := linkByIndex(d.index, d.name); err == nil {
		if err := netlink.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, fmt.Errorf("delete link %s: %w", d.name, err))
		}
	}
	if err := d.client.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close wgctrl: %w", err))
	}
	return errors.Join(errs...)
}

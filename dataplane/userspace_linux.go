//go:build linux

package dataplane

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// userspaceDevice is the embedded wireguard-go device on a TUN link.
type userspaceDevice struct {
	name  string
	index int // the TUN link's index
	log   *slog.Logger
	bind  *sourceBind
	tun   *eventFilterTUN
	dev   *device.Device
	uapi  net.Listener // the UAPI socket in /var/run/wireguard

	mu sync.Mutex // guards cur, devUp and closed; serialises Set, InitiateHandshake and Close
	// cur is the device configuration last applied; nil when unknown (an
	// apply failed half-way): the next Set then reads it from the device.
	cur *devState
	// devUp says whether the wireguard-go device is up (sockets open,
	// peers running). Only this package changes it: the TUN's own up/down
	// events are filtered out (eventFilterTUN).
	devUp  bool
	closed bool
}

var _ Device = (*userspaceDevice)(nil)

// openUserspace creates the TUN link name, the device on it and its UAPI
// socket. The link starts down, with no address, and the device with no
// configuration.
func openUserspace(name string, log *slog.Logger) (_ *userspaceDevice, err error) {
	if exists, typ, err := linkExists(name); err != nil {
		return nil, err
	} else if exists {
		return nil, fmt.Errorf("open userspace interface %s: a link of type %q with that name already exists", name, typ)
	}
	tdev, err := tun.CreateTUN(name, DefaultMTU)
	if err != nil {
		return nil, fmt.Errorf("create TUN %s: %w", name, err)
	}
	if realName, err := tdev.Name(); err == nil {
		name = realName
	}
	link, err := netlink.LinkByName(name)
	if err != nil {
		tdev.Close()
		return nil, fmt.Errorf("look up TUN %s: %w", name, err)
	}
	d := &userspaceDevice{
		name:  name,
		index: link.Attrs().Index,
		log:   log,
		bind:  newSourceBind(),
		cur:   &devState{},
	}
	d.tun = newEventFilterTUN(tdev)
	d.dev = device.NewDevice(d.tun, d.bind, deviceLogger(log))
	defer func() {
		if err != nil {
			d.dev.Close()
		}
	}()
	f, err := ipc.UAPIOpen(name)
	if err != nil {
		return nil, fmt.Errorf("open UAPI socket for %s: %w", name, err)
	}
	d.uapi, err = uapiListen(f)
	f.Close() // the listener holds its own copy
	if err != nil {
		return nil, fmt.Errorf("listen on UAPI socket for %s: %w", name, err)
	}
	go d.serveUAPI()
	return d, nil
}

// uapiListen wraps the UAPI socket file in a plain Unix listener that
// removes the socket file when closed.
//
// wireguard-go's ipc.UAPIListen also watches the socket file with inotify
// and ends Accept when the file is deleted; but its Close races with that
// watching goroutine, which closes the cancellation pipe Close then writes
// to ("close UAPI socket: write |1: file already closed", whenever the
// goroutine wins). The device does not need the watch: its owner, not the
// presence of the file, decides when it goes. Without it Close has one step
// and reports only real errors.
func uapiListen(f *os.File) (net.Listener, error) {
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, err
	}
	if ul, ok := ln.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(true)
	}
	return ln, nil
}

// serveUAPI answers `wg` on the UAPI socket until it is closed.
func (d *userspaceDevice) serveUAPI() {
	for {
		c, err := d.uapi.Accept()
		if err != nil {
			return
		}
		go d.dev.IpcHandle(c)
	}
}

// deviceLogger adapts wireguard-go's logger to slog. wireguard-go never
// logs key material.
func deviceLogger(log *slog.Logger) *device.Logger {
	return &device.Logger{
		Verbosef: func(format string, args ...any) {
			if log.Enabled(context.Background(), slog.LevelDebug) {
				log.Debug(fmt.Sprintf(format, args...), "source", "wireguard-go")
			}
		},
		Errorf: func(format string, args ...any) {
			log.Warn(fmt.Sprintf(format, args...), "source", "wireguard-go")
		},
	}
}

// eventFilterTUN passes the TUN's events on to the device without the up
// and down ones: only this package brings the device up or down, so a
// follower's device does not start sending because someone set its link up.
// MTU changes still reach the device, and MTU answers with the MTU this
// package set (the TUN's own MTU asks the kernel by interface name through a
// socket of whatever network namespace the calling thread is in).
type eventFilterTUN struct {
	tun.Device
	events chan tun.Event
	mtu    atomic.Int32 // the MTU set by Set; 0 before the first
}

func newEventFilterTUN(t tun.Device) *eventFilterTUN {
	f := &eventFilterTUN{Device: t, events: make(chan tun.Event, 8)}
	f.mtu.Store(DefaultMTU) // CreateTUN set it
	go func() {
		defer close(f.events)
		for ev := range t.Events() {
			if ev &^= tun.EventUp | tun.EventDown; ev != 0 {
				f.events <- ev
			}
		}
	}()
	return f
}

// Events implements tun.Device.
func (f *eventFilterTUN) Events() <-chan tun.Event { return f.events }

// MTU implements tun.Device.
func (f *eventFilterTUN) MTU() (int, error) {
	if m := f.mtu.Load(); m != 0 {
		return int(m), nil
	}
	return f.Device.MTU()
}

// Name implements Device.
func (d *userspaceDevice) Name() string { return d.name }

// Kind implements Device.
func (d *userspaceDevice) Kind() string { return KindUserspace }

// Set implements Device.
func (d *userspaceDevice) Set(cfg Config) (bool, error) {
	return setDevice(d, &d.mu, cfg, MaxUserspacePeers)
}

// The userspace device's steps of Set (setDevice); d.mu is held.

// checkOpen returns an error when the device is closed, or when wireguard-go
// closed it itself (it does when its TUN fails, e.g. the link was deleted).
func (d *userspaceDevice) checkOpen() error {
	if d.closed {
		return ErrClosed
	}
	select {
	case <-d.dev.Wait():
		return fmt.Errorf("%w: %s (the userspace device has stopped)", ErrLinkNotFound, d.name)
	default:
		return nil
	}
}

func (d *userspaceDevice) openLink() (netlink.Link, error) {
	if err := d.checkOpen(); err != nil {
		return nil, err
	}
	return linkByIndex(d.index, d.name)
}

func (d *userspaceDevice) prepare(*wanted) (bool, error) { return false, nil }

// configure applies the device configuration, and hands the TUN the new
// MTU: the device learns it from the link's change event.
func (d *userspaceDevice) configure(w *wanted) (bool, error) {
	changed, err := d.applyDevice(&w.dev)
	if err != nil {
		return changed, err
	}
	d.tun.mtu.Store(int32(w.mtu))
	return changed, nil
}

func (d *userspaceDevice) finish() (bool, error) { return false, nil }

// applyDevice applies the difference between the device configuration and
// want. d.mu must be held.
func (d *userspaceDevice) applyDevice(want *devState) (bool, error) {
	return applyDiff(&d.cur, want, d.readState, func(p *plan) error {
		if p.sourceAddrs {
			d.bind.setSources(want.sourceAddrs)
		}
		if text := uapiText(p); text != "" {
			// listen_port (if in p) rebinds, with the new source addresses.
			if err := d.dev.IpcSet(text); err != nil {
				return fmt.Errorf("configure userspace device %s: %w", d.name, err)
			}
		}
		if p.sourceAddrs && p.listenPort == 0 {
			if err := d.dev.BindUpdate(); err != nil {
				return fmt.Errorf("rebind userspace device %s to %v: %w", d.name, want.sourceAddrs, err)
			}
		}
		return nil
	}, d.log, d.name)
}

// readState reads the device configuration back from the device.
func (d *userspaceDevice) readState() (*devState, error) {
	text, err := d.dev.IpcGet()
	if err != nil {
		return nil, fmt.Errorf("read userspace device %s: %w", d.name, err)
	}
	dump, err := parseUAPI(text)
	if err != nil {
		return nil, fmt.Errorf("read userspace device %s: %w", d.name, err)
	}
	d.bind.mu.RLock()
	dump.dev.sourceAddrs = append([]netip.Addr(nil), d.bind.sources...)
	d.bind.mu.RUnlock()
	return &dump.dev, nil
}

// setUp brings the device and the link up (device first: its sockets are
// open before traffic is routed to it) or down (link first). d.mu must be
// held.
func (d *userspaceDevice) setUp(link netlink.Link, up bool) (bool, error) {
	changed := false
	if !up {
		c, err := setAdminState(link, false)
		changed = c
		// Down is cheap when already down; call it anyway so the device
		// surely sends nothing.
		if derr := d.dev.Down(); derr != nil {
			err = errors.Join(err, fmt.Errorf("take userspace device %s down: %w", d.name, derr))
		}
		if d.devUp {
			d.devUp = false
			changed = true
		}
		return changed, err
	}
	if !d.devUp {
		if err := d.dev.Up(); err != nil {
			return false, fmt.Errorf("bring userspace device %s up: %w", d.name, err)
		}
		d.devUp = true
		changed = true
	} else if len(d.bind.boundAddrs()) == 0 {
		// A rebind failed earlier (port in use?): try again.
		if err := d.dev.BindUpdate(); err != nil {
			return false, fmt.Errorf("rebind userspace device %s: %w", d.name, err)
		}
		changed = true
	}
	c, err := setAdminState(link, true)
	return changed || c, err
}

// Stats implements Device.
func (d *userspaceDevice) Stats() ([]PeerStats, error) {
	d.mu.Lock()
	err := d.checkOpen()
	d.mu.Unlock()
	if err != nil {
		return nil, err
	}
	// IpcGet takes the device's own locks: no need to hold d.mu through a
	// dump of many peers.
	text, err := d.dev.IpcGet()
	if err != nil {
		return nil, fmt.Errorf("read userspace device %s: %w", d.name, err)
	}
	dump, err := parseUAPI(text)
	if err != nil {
		return nil, fmt.Errorf("read userspace device %s: %w", d.name, err)
	}
	return dump.stats, nil
}

// InitiateHandshake implements Device.
func (d *userspaceDevice) InitiateHandshake(publicKey string, endpoint netip.AddrPort) error {
	k, err := wgtypes.ParseKey(publicKey)
	if err != nil {
		return invalidf("public key is not 32 bytes of base64")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.checkOpen(); err != nil {
		return err
	}
	if !d.devUp {
		return fmt.Errorf("initiate handshake with %s: %w", publicKey, ErrDown)
	}
	peer := d.dev.LookupPeer(device.NoisePublicKey(k))
	if peer == nil {
		return fmt.Errorf("initiate handshake with %s: %w", publicKey, ErrUnknownPeer)
	}
	if endpoint.IsValid() {
		ep := netip.AddrPortFrom(endpoint.Addr().Unmap(), endpoint.Port())
		if err := d.dev.IpcSet("public_key=" + hex.EncodeToString(k[:]) + "\nupdate_only=true\nendpoint=" + ep.String() + "\n"); err != nil {
			return fmt.Errorf("set endpoint of %s: %w", publicKey, err)
		}
	}
	if err := peer.SendHandshakeInitiation(false); err != nil {
		return fmt.Errorf("initiate handshake with %s: %w", publicKey, err)
	}
	return nil
}

// IsUp implements Device: the link is administratively up and the device is
// up with its sockets open.
func (d *userspaceDevice) IsUp() (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	link, err := d.openLink()
	if err != nil {
		return false, err
	}
	return isAdminUp(link) && d.devUp && len(d.bind.boundAddrs()) > 0, nil
}

// Close implements Device: the UAPI socket, the device, its sockets and the
// TUN link go.
func (d *userspaceDevice) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	var errs []error
	if err := d.uapi.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close UAPI socket: %w", err))
	}
	d.dev.Close() // closes the bind and the TUN, which removes the link
	// Should the link outlive its file (it does not, unless someone made
	// it persistent), remove it.
	if l, err := linkByIndex(d.index, d.name); err == nil {
		if err := netlink.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, fmt.Errorf("delete link %s: %w", d.name, err))
		}
	}
	return errors.Join(errs...)
}

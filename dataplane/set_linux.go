//go:build linux

package dataplane

import (
	"sync"

	"github.com/vishvananda/netlink"
)

// setSteps are one backend's own steps of Set. setDevice runs them, in the
// same order for every backend, with the device's lock held throughout.
type setSteps interface {
	Kind() string
	// openLink returns the device's link, or why the device can no
	// longer be configured (it was closed, or stopped by itself).
	openLink() (netlink.Link, error)
	// prepare runs first, before the link goes down or anything is
	// configured.
	prepare(w *wanted) (bool, error)
	// setUp brings the device and its link up or down.
	setUp(link netlink.Link, up bool) (bool, error)
	// configure applies the WireGuard device configuration (private key,
	// listen port, peers, source addresses), before the link's addresses
	// and MTU.
	configure(w *wanted) (bool, error)
	// finish runs last, after the link is up or down.
	finish() (bool, error)
}

// setDevice is Set for every backend: the configuration is checked (at
// most maxPeers peers, 0: no limit), then a device that is to be down stops
// sending first, before anything else can fail; then the device
// configuration is applied, then the link's addresses and MTU, then a
// device that is to be up comes up, with everything in place.
func setDevice(s setSteps, mu *sync.Mutex, cfg Config, maxPeers int) (bool, error) {
	w, err := normalize(cfg)
	if err != nil {
		return false, err
	}
	if maxPeers > 0 && len(w.dev.peers) > maxPeers {
		return false, invalidf("%d peers: the %s device holds at most %d", len(w.dev.peers), s.Kind(), maxPeers)
	}
	mu.Lock()
	defer mu.Unlock()
	link, err := s.openLink()
	if err != nil {
		return false, err
	}
	changed, err := s.prepare(w)
	if err != nil {
		return changed, err
	}
	if !w.up {
		c, err := s.setUp(link, false)
		changed = changed || c
		if err != nil {
			return changed, err
		}
	}
	c, err := s.configure(w)
	changed = changed || c
	if err != nil {
		return changed, err
	}
	c, err = syncLinkConfig(link, w.mtu, w.addresses)
	changed = changed || c
	if err != nil {
		return changed, err
	}
	if w.up {
		c, err := s.setUp(link, true)
		changed = changed || c
		if err != nil {
			return changed, err
		}
	}
	c, err = s.finish()
	return changed || c, err
}

var (
	_ setSteps = (*kernelDevice)(nil)
	_ setSteps = (*userspaceDevice)(nil)
)

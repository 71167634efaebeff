// Package viptest has test doubles for the vip package's interfaces.
package viptest

import (
	"net/netip"
	"slices"
	"sync"

	"github.com/raftguard/raftguard/vip"
)

// Local stands for the lease-bounded local address (vip.Local) in tests of
// a Mode run by a vip.Runner: it records what is claimed.
type Local struct {
	mu   sync.Mutex
	held []netip.Prefix
}

var _ vip.Local = (*Local)(nil)

// Claim records vips as held; it reports whether that changed anything.
func (l *Local) Claim(vips []netip.Prefix) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	changed := !slices.Equal(l.held, vips)
	l.held = slices.Clone(vips)
	return changed, nil
}

// Release forgets what was held; it reports whether anything was.
func (l *Local) Release([]netip.Prefix) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	changed := l.held != nil
	l.held = nil
	return changed, nil
}

// Held reports whether vips (or, with nil, anything) are held.
func (l *Local) Held(vips []netip.Prefix) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.held) > 0 && (vips == nil || slices.Equal(l.held, vips)), nil
}

// Renew reports whether vips are held, like Held.
func (l *Local) Renew(vips []netip.Prefix) (bool, error) { return l.Held(vips) }

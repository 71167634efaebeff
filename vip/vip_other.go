//go:build !linux

package vip

import (
	"log/slog"
	"net/netip"
)

// A Manager claims, releases and announces VIPs on one network interface.
// Outside Linux it cannot be created.
type Manager struct{}

// New fails with ErrUnsupported outside Linux.
func New(iface string, log *slog.Logger) (*Manager, error) { return nil, ErrUnsupported }

// Claim fails with ErrUnsupported outside Linux.
func (m *Manager) Claim(vips []netip.Prefix) (changed bool, err error) { return false, ErrUnsupported }

// Release fails with ErrUnsupported outside Linux.
func (m *Manager) Release(vips []netip.Prefix) (changed bool, err error) {
	return false, ErrUnsupported
}

// Renew fails with ErrUnsupported outside Linux.
func (m *Manager) Renew(vips []netip.Prefix) (all bool, err error) { return false, ErrUnsupported }

// Held fails with ErrUnsupported outside Linux.
func (m *Manager) Held(vips []netip.Prefix) (bool, error) { return false, ErrUnsupported }

// Close does nothing outside Linux.
func (m *Manager) Close() error { return nil }

// InterfaceFor fails with ErrUnsupported outside Linux.
func InterfaceFor(addr netip.Addr) (string, error) { return "", ErrUnsupported }

// EnsureDummy fails with ErrUnsupported outside Linux.
func EnsureDummy(name string) error { return ErrUnsupported }

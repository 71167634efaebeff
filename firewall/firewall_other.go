//go:build !linux

package firewall

import "log/slog"

// Manager installs and removes the table. On this system it can do
// neither.
type Manager struct{}

// New returns a Manager.
func New(*slog.Logger) *Manager { return &Manager{} }

// Apply fails: no nftables here.
func (m *Manager) Apply(Config) (bool, error) { return false, ErrUnsupported }

// Remove has nothing to remove.
func (m *Manager) Remove() (bool, error) { return false, nil }

// Cleanup has nothing to remove.
func Cleanup() ([]string, error) { return nil, nil }

// DefaultInterface is unknown here.
func DefaultInterface() (string, error) { return "", ErrUnsupported }

//go:build !linux

package netlab

import "net/netip"

// AddrsOf needs Linux network namespaces.
func (h *Host) AddrsOf(dev string) ([]netip.Prefix, error) { return nil, ErrUnavailable }

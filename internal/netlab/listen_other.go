//go:build !linux

package netlab

import "net"

// Listen needs Linux network namespaces.
func (h *Host) Listen(network, address string) (net.Listener, error) {
	return nil, ErrUnavailable
}

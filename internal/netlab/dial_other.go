//go:build !linux

package netlab

import (
	"context"
	"net"
)

// DialContext needs Linux network namespaces.
func (h *Host) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return nil, ErrUnavailable
}

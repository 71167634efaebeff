package vip

import "errors"

// ErrNoInterface is returned when the Manager's network interface does not
// exist (at New, or later if it disappeared).
var ErrNoInterface = errors.New("vip: no such network interface")

// ErrInvalidVIP is returned for a VIP that is not a valid IPv4 or IPv6
// address with prefix length (an IPv4-mapped IPv6 address, or an
// unspecified, loopback, multicast or link-local address).
var ErrInvalidVIP = errors.New("vip: invalid virtual IP")

// ErrAddressNotFound is returned by InterfaceFor when no interface holds the
// address.
var ErrAddressNotFound = errors.New("vip: address is not on any interface")

// ErrAnnounce is returned (wrapped, with the cause) when a VIP is in place
// on the interface but announcing it to the network failed. The address
// stays claimed; a later Claim or Announce tries again.
var ErrAnnounce = errors.New("vip: announcing the virtual IP failed")

// ErrClosed is returned by a Manager's methods after Close.
var ErrClosed = errors.New("vip: manager closed")

// ErrUnsupported is returned on operating systems other than Linux.
var ErrUnsupported = errors.New("vip: not supported on this operating system")

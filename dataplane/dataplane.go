package dataplane

import (
	"errors"
	"net/netip"
	"time"
)

// Kinds of Device, as returned by Device.Kind and accepted by Open (which
// also accepts KindAuto).
const (
	KindAuto      = "auto"
	KindKernel    = "kernel"
	KindUserspace = "userspace"
)

// DefaultMTU is the MTU used when Config.MTU is zero.
const DefaultMTU = 1420

// MaxUserspacePeers is the most peers the embedded userspace device holds (a
// wireguard-go limit); Set refuses a Config with more.
const MaxUserspacePeers = 1<<16 - 1

var (
	// ErrUnsupported means the requested data plane is not available here:
	// the kernel backend without the kernel module, or any backend on a
	// system other than Linux.
	ErrUnsupported = errors.New("dataplane: not supported on this system")

	// ErrInvalidConfig is wrapped by every error Set returns for a Config it
	// refuses before touching the device (bad key, bad prefix, duplicate
	// peer...). The message never holds a private or preshared key.
	ErrInvalidConfig = errors.New("dataplane: invalid config")

	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("dataplane: device closed")

	// ErrLinkNotFound means the interface has disappeared (someone deleted
	// it). The Device cannot repair that: Close it and Open a new one.
	ErrLinkNotFound = errors.New("dataplane: interface not found")

	// ErrDown is returned by InitiateHandshake when the interface is down.
	ErrDown = errors.New("dataplane: interface is down")

	// ErrUnknownPeer is returned by InitiateHandshake for a public key that
	// is not configured on the device.
	ErrUnknownPeer = errors.New("dataplane: no such peer")
)

// Peer is one WireGuard peer of the interface.
type Peer struct {
	PublicKey    string         // base64
	PresharedKey string         // base64 or ""
	AllowedIPs   []netip.Prefix // the peer's tunnel addresses plus its extra routes
	// Endpoint is optional (zero = unknown). It is set only when the peer is
	// added: Set never overwrites a live endpoint the device learned by
	// roaming.
	Endpoint netip.AddrPort
}

// Config is the whole wanted state of the interface.
type Config struct {
	PrivateKey string         // base64
	ListenPort int            // 1-65535
	Addresses  []netip.Prefix // the server's tunnel addresses, e.g. 10.99.0.1/24, fd00::1/64
	MTU        int            // 0 means DefaultMTU
	Peers      []Peer
	// SourceAddrs are the VIPs: every WireGuard packet leaves from one of
	// these (the one of the peer's address family). Empty means the wildcard
	// address and whatever source the kernel picks.
	SourceAddrs []netip.Addr
	// Up is true on the leader (interface administratively up, sending) and
	// false on followers (link down, nothing sent, configuration kept).
	Up bool
}

// PeerStats is what the device reports about one peer.
type PeerStats struct {
	PublicKey     string         // base64
	Endpoint      netip.AddrPort // zero when unknown
	LastHandshake time.Time      // zero when never
	RxBytes       uint64
	TxBytes       uint64
}

// Device is the node's WireGuard interface.
type Device interface {
	// Name is the interface name.
	Name() string
	// Kind is KindKernel or KindUserspace.
	Kind() string
	// Set makes the interface match cfg, applying only the difference, and
	// reports whether anything changed. It is idempotent.
	Set(cfg Config) (changed bool, err error)
	// Stats reads per-peer endpoints, last handshakes and byte counters.
	Stats() ([]PeerStats, error)
	// InitiateHandshake sets the peer's endpoint (when endpoint is valid) and
	// sends a handshake initiation now. The interface must be up.
	InitiateHandshake(publicKey string, endpoint netip.AddrPort) error
	// IsUp reads the real administrative state of the link; someone may
	// have downed or deleted it (then the error wraps ErrLinkNotFound).
	IsUp() (bool, error)
	// Close removes the interface and everything the Device created.
	Close() error
}

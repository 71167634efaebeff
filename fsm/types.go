package fsm

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Sentinel errors returned as values by Apply for a rejected command. The
// state is unchanged when Apply returns one of them.
var (
	// ErrNotInitialized: the cluster has not been bootstrapped yet.
	ErrNotInitialized = errors.New("cluster not initialized")
	// ErrAlreadyInitialized: a second Init.
	ErrAlreadyInitialized = errors.New("cluster already initialized")
	// ErrInvalid: a field is malformed (bad key, bad CIDR, bad name, ...).
	ErrInvalid = errors.New("invalid input")
	// ErrNotFound: no such peer, node or token.
	ErrNotFound = errors.New("not found")
	// ErrDuplicateName: a peer with this name exists with another key.
	ErrDuplicateName = errors.New("duplicate name")
	// ErrDuplicateKey: another peer has this public key.
	ErrDuplicateKey = errors.New("duplicate public key")
	// ErrAddressInUse: the address belongs to the server or another peer.
	ErrAddressInUse = errors.New("address in use")
	// ErrOverlap: allowed IPs overlap the pools, a VIP or another peer's routes.
	ErrOverlap = errors.New("overlapping addresses")
	// ErrPoolExhausted: no free address left in a pool.
	ErrPoolExhausted = errors.New("address pool exhausted")
)

// Settings are the cluster-wide settings, fixed at bootstrap; some can be
// changed later with UpdateSettings.
type Settings struct {
	PrivateKey       string         `json:"private_key"`
	PublicKey        string         `json:"public_key"`
	ListenPort       int            `json:"listen_port"`
	Pool             netip.Prefix   `json:"pool"`
	Pool6            netip.Prefix   `json:"pool6,omitzero"`
	VIPs             []netip.Prefix `json:"vips"`
	Endpoint         string         `json:"endpoint"`
	ClientAllowedIPs []netip.Prefix `json:"client_allowed_ips"`
	ClientDNS        []string       `json:"client_dns,omitempty"`
	MTU              int            `json:"mtu"`
	Keepalive        int            `json:"keepalive"`
	// NAT: the leader masquerades traffic from the pools leaving its NAT
	// interface and forwards the pools' traffic (package firewall).
	NAT bool `json:"nat,omitempty"`
	// VIPMode is how the VIPs reach the leader (see VIPModes); empty means
	// VIPModeARP, the only behaviour before protocol 6.
	VIPMode string `json:"vip_mode,omitempty" since:"6"`
}

// VIP modes: how the network delivers the VIPs to the leader.
const (
	// VIPModeARP claims the VIPs on the LAN NIC and announces them with
	// gratuitous ARP and unsolicited neighbour advertisements (one L2
	// segment).
	VIPModeARP = "arp"
	// VIPModeBGP announces the VIPs as host routes to BGP neighbours.
	VIPModeBGP = "bgp"
	// VIPModeHook runs the operator's --vip-hook on acquire and release.
	VIPModeHook = "hook"
	// VIPModeHetzner assigns a Hetzner Cloud floating IP to the leader.
	VIPModeHetzner = "hetzner"
	// VIPModeAWS associates an AWS Elastic IP with the leader.
	VIPModeAWS = "aws"
)

// VIPModes lists the valid VIP modes, the default first.
var VIPModes = []string{VIPModeARP, VIPModeBGP, VIPModeHook, VIPModeHetzner, VIPModeAWS}

// cloudVIPModesSince is the protocol version that added the hetzner and
// aws modes: nodes of older versions refuse them in Apply, so they are
// neither proposed (CheckProposable) nor applied (checkSettings) before
// the cluster version reaches it.
const cloudVIPModesSince = 10

// VIPModeSince is the protocol version from which mode may be proposed
// and applied (1 for the modes every version knows).
func VIPModeSince(mode string) int {
	if mode == VIPModeHetzner || mode == VIPModeAWS {
		return cloudVIPModesSince
	}
	return 1
}

// Mode is the VIP mode in effect: VIPMode, or VIPModeARP when empty.
func (s Settings) Mode() string {
	if s.VIPMode == "" {
		return VIPModeARP
	}
	return s.VIPMode
}

// ValidateVIPMode checks a VIP mode name (empty is the default, arp).
func ValidateVIPMode(m string) error {
	if m == "" || slices.Contains(VIPModes, m) {
		return nil
	}
	return fmt.Errorf("%w: VIP mode %q is not one of %s", ErrInvalid, m, strings.Join(VIPModes, ", "))
}

// ServerAddresses are the server's own tunnel addresses: the first host of
// each pool, with the pool's prefix length.
func (s *Settings) ServerAddresses() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range []netip.Prefix{s.Pool, s.Pool6} {
		if p.IsValid() {
			out = append(out, netip.PrefixFrom(p.Addr().Next(), p.Bits()))
		}
	}
	return out
}

// Cluster holds the cluster's trust material.
type Cluster struct {
	CACertPEM string    `json:"ca_cert_pem"`
	CAKeyPEM  string    `json:"ca_key_pem"`
	JoinToken string    `json:"join_token"`
	CreatedAt time.Time `json:"created_at"`
}

// Node is a cluster member as the replicated state knows it.
type Node struct {
	ID        string    `json:"id"`
	RaftAddr  string    `json:"raft_addr"`
	APIAddr   string    `json:"api_addr"`
	UpdatedAt time.Time `json:"updated_at"`
}

// NodeCert is the certificate the cluster CA last issued to a node (at join,
// or the bootstrap node's own). The cluster knows it to revoke it when the
// node is removed or receives a new certificate.
type NodeCert struct {
	NodeID string `json:"node_id"`
	// Fingerprint is the hex SHA-256 of the certificate's DER encoding.
	Fingerprint string    `json:"fingerprint"`
	NotAfter    time.Time `json:"not_after,omitzero"`
	IssuedAt    time.Time `json:"issued_at"`
}

// RevokedCert is a node certificate that no node accepts any more: its node
// was removed, or was issued a new certificate.
type RevokedCert struct {
	Fingerprint string `json:"fingerprint"`
	NodeID      string `json:"node_id"`
	// NotAfter is the certificate's own expiry (zero when unknown): once it
	// has passed, TLS refuses the certificate anyway and the entry is
	// dropped.
	NotAfter  time.Time `json:"not_after,omitzero"`
	RevokedAt time.Time `json:"revoked_at"`
}

// AdminToken is an admin API token; only its hash is kept.
type AdminToken struct {
	ID        string    `json:"id"`
	Name      string    `json:"name,omitempty"`
	Hash      string    `json:"hash"`
	CreatedAt time.Time `json:"created_at"`
}

// Peer is a WireGuard client. A *Peer held by the state is never modified in
// place: an update stores a new copy, so readers may keep pointers.
type Peer struct {
	Name          string         `json:"name"`
	PublicKey     string         `json:"public_key"`
	PresharedKey  string         `json:"preshared_key,omitempty"`
	Addresses     []netip.Prefix `json:"addresses"`
	AllowedIPs    []netip.Prefix `json:"allowed_ips,omitempty"`
	Enabled       bool           `json:"enabled"`
	CreatedAt     time.Time      `json:"created_at"`
	UpdatedAt     time.Time      `json:"updated_at"`
	Endpoint      string         `json:"endpoint,omitempty"`
	LastHandshake time.Time      `json:"last_handshake,omitzero"`
	// RxBytes and TxBytes are the traffic totals over all leaders, as
	// last recorded (SetPeerStatus).
	RxBytes uint64 `json:"rx_bytes,omitempty"`
	TxBytes uint64 `json:"tx_bytes,omitempty"`
	// ExpiresAt is when the peer expires (zero: never); Expired is set
	// when the leader found it expired (ExpirePeers), which disabled it.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	Expired   bool      `json:"expired,omitempty"`
}

func (p *Peer) clone() *Peer {
	c := *p
	c.Addresses = append([]netip.Prefix(nil), p.Addresses...)
	c.AllowedIPs = append([]netip.Prefix(nil), p.AllowedIPs...)
	return &c
}

// AddPeerResult is Apply's answer to a successful AddPeer.
type AddPeerResult struct {
	Peer    Peer
	Created bool // false when an identical peer already existed
}

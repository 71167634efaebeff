package httpapi

import (
	"net/netip"
	"time"

	"github.com/raftguard/raftguard/fsm"
)

// Health is the answer of GET /v1/health.
type Health struct {
	Status   string `json:"status"`
	NodeID   string `json:"node_id"`
	Role     string `json:"role"`
	LeaderID string `json:"leader_id"`
}

// NodeStatus is one node's own view of itself (GET /v1/node).
type NodeStatus struct {
	NodeID       string `json:"node_id"`
	Role         string `json:"role"`
	LeaderID     string `json:"leader_id"`
	Term         uint64 `json:"term"`
	LastIndex    uint64 `json:"last_index"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	RaftAddr     string `json:"raft_addr"`
	APIAddr      string `json:"api_addr"`
	Dataplane    string `json:"dataplane"`
	InterfaceUp  bool   `json:"interface_up"`
	VIPHolder    bool   `json:"vip_holder"`
	// VIPMode is the cluster's VIP mode as this node runs it; VIPHeld
	// says whether the mode really delivers the VIPs to this node (the
	// local address is held and the mode's acquire succeeded), and
	// VIPError is the mode's last failure while it retries.
	VIPMode  string `json:"vip_mode,omitempty"`
	VIPHeld  bool   `json:"vip_held"`
	VIPError string `json:"vip_error,omitempty"`
	Version  string `json:"version"`
	// StateDigest is the hex SHA-256 of the node's replicated state (its
	// snapshot encoding) at StateIndex, the index of the last command its
	// state machine applied. Nodes holding the same applied state report
	// the same digest.
	StateDigest string `json:"state_digest"`
	StateIndex  uint64 `json:"state_index"`
	// Protocol is the newest command protocol the node's build applies
	// (absent, read as 1, from nodes of the first release), and
	// ClusterVersion the replicated cluster version in its replica: nodes
	// propose only what that version allows.
	Protocol       int `json:"protocol,omitempty"`
	ClusterVersion int `json:"cluster_version,omitempty"`
}

// NodeProtocol is the protocol version a node reports: 1 for a node of the
// first release, which does not report one.
func (n NodeStatus) NodeProtocol() int { return max(n.Protocol, 1) }

// ClusterNode is one member in GET /v1/cluster.
type ClusterNode struct {
	NodeStatus
	Voter     bool   `json:"voter"`
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
}

// ClusterStatus is the answer of GET /v1/cluster.
type ClusterStatus struct {
	LeaderID  string `json:"leader_id"`
	Term      uint64 `json:"term"`
	VIPHolder string `json:"vip_holder"`
	// ClusterVersion is the replicated cluster version in the answering
	// node's replica.
	ClusterVersion int           `json:"cluster_version"`
	Nodes          []ClusterNode `json:"nodes"`
}

// Member is one server of the Raft configuration.
type Member struct {
	ID       string
	RaftAddr string
	Voter    bool
}

// PeerView is a peer as the API shows it: never a private or preshared key.
type PeerView struct {
	Name            string         `json:"name"`
	PublicKey       string         `json:"public_key"`
	Addresses       []netip.Prefix `json:"addresses"`
	AllowedIPs      []netip.Prefix `json:"allowed_ips"`
	Enabled         bool           `json:"enabled"`
	HasPresharedKey bool           `json:"has_preshared_key"`
	CreatedAt       time.Time      `json:"created_at"`
	UpdatedAt       time.Time      `json:"updated_at"`
	Endpoint        string         `json:"endpoint"`
	LatestHandshake *time.Time     `json:"latest_handshake"`
	RxBytes         uint64         `json:"rx_bytes"`
	TxBytes         uint64         `json:"tx_bytes"`
	// Online: the latest handshake is within WireGuard's reject-after
	// time (RejectAfterTime) of the answering node's clock.
	Online bool `json:"online"`
	// ExpiresAt is when the peer expires (null: never); Expired says the
	// leader found it expired and disabled it.
	ExpiresAt *time.Time `json:"expires_at"`
	Expired   bool       `json:"expired"`
}

// PeerStats are a peer's live counters from the local interface.
type PeerStats struct {
	Endpoint        string
	LatestHandshake time.Time
	RxBytes         uint64
	TxBytes         uint64
}

func viewPeer(p fsm.Peer, st *PeerStats) PeerView {
	v := PeerView{
		Name:            p.Name,
		PublicKey:       p.PublicKey,
		Addresses:       p.Addresses,
		AllowedIPs:      p.AllowedIPs,
		Enabled:         p.Enabled,
		HasPresharedKey: p.PresharedKey != "",
		CreatedAt:       p.CreatedAt,
		UpdatedAt:       p.UpdatedAt,
		Endpoint:        p.Endpoint,
		RxBytes:         p.RxBytes,
		TxBytes:         p.TxBytes,
	}
	if v.Addresses == nil {
		v.Addresses = []netip.Prefix{}
	}
	if v.AllowedIPs == nil {
		v.AllowedIPs = []netip.Prefix{}
	}
	if !p.LastHandshake.IsZero() {
		t := p.LastHandshake
		v.LatestHandshake = &t
	}
	if st != nil {
		if st.Endpoint != "" {
			v.Endpoint = st.Endpoint
		}
		if st.LatestHandshake.After(p.LastHandshake) {
			t := st.LatestHandshake
			v.LatestHandshake = &t
		}
		v.RxBytes, v.TxBytes = st.RxBytes, st.TxBytes
	}
	v.Online = online(v.LatestHandshake, time.Now())
	if !p.ExpiresAt.IsZero() {
		t := p.ExpiresAt
		v.ExpiresAt = &t
	}
	v.Expired = p.Expired
	return v
}

// CreatePeerRequest is the body of POST /v1/peers. Without public_key the
// server generates the key pair (and a preshared key unless preshared_key
// is given; "" means none).
type CreatePeerRequest struct {
	Name         string   `json:"name"`
	PublicKey    *string  `json:"public_key,omitempty"`
	PresharedKey *string  `json:"preshared_key,omitempty"`
	Addresses    []string `json:"addresses,omitempty"`
	AllowedIPs   []string `json:"allowed_ips,omitempty"`
	Enabled      *bool    `json:"enabled,omitempty"`
	// ExpiresAt is an RFC 3339 time in the future, or "never" (the
	// default).
	ExpiresAt *string `json:"expires_at,omitempty"`
}

// CreatePeerResponse is the answer to a create: the peer, and when the
// server generated the keys, the private key and the client config (once).
type CreatePeerResponse struct {
	PeerView
	PrivateKey string `json:"private_key,omitempty"`
	Config     string `json:"config,omitempty"`
}

// UpdatePeerRequest is the body of PATCH /v1/peers/{name}.
type UpdatePeerRequest struct {
	Enabled      *bool     `json:"enabled,omitempty"`
	AllowedIPs   *[]string `json:"allowed_ips,omitempty"`
	PresharedKey *string   `json:"preshared_key,omitempty"`
	// ExpiresAt is a new expiry: an RFC 3339 time in the future, or
	// "never". An expired peer is enabled only together with one.
	ExpiresAt *string `json:"expires_at,omitempty"`
}

// InterfaceView is the answer of GET /v1/interface.
type InterfaceView struct {
	PublicKey  string         `json:"public_key"`
	ListenPort int            `json:"listen_port"`
	Addresses  []netip.Prefix `json:"addresses"`
	VIPs       []netip.Prefix `json:"vips"`
	Endpoint   string         `json:"endpoint"`
	MTU        int            `json:"mtu"`
	Peers      int            `json:"peers"`
	Enabled    int            `json:"enabled_peers"`
}

// Keys is the answer of POST /v1/keys.
type Keys struct {
	PrivateKey   string `json:"private_key"`
	PublicKey    string `json:"public_key"`
	PresharedKey string `json:"preshared_key"`
}

// JoinCertRequest asks for a node certificate (join step one).
type JoinCertRequest struct {
	NodeID string   `json:"node_id"`
	CSR    string   `json:"csr"`
	IPs    []string `json:"ips"`
	Token  string   `json:"token"`
}

// JoinCertResponse carries the new node's certificate and its admin token.
type JoinCertResponse struct {
	CACert     string `json:"ca_cert"`
	Cert       string `json:"cert"`
	AdminToken string `json:"admin_token"`
}

// JoinRequest asks the leader to add the node as a voter (join step two).
type JoinRequest struct {
	NodeID   string `json:"node_id"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr"`
	Token    string `json:"token"`
}

// JoinResponse names the leader that added the node.
type JoinResponse struct {
	LeaderID string `json:"leader_id"`
}

// TransferRequest is the body of POST /v1/cluster/transfer-leader.
type TransferRequest struct {
	To string `json:"to,omitempty"`
}

// TransferResponse names the new leader.
type TransferResponse struct {
	LeaderID string `json:"leader_id"`
}

// TokenView is an admin token's public face: never the secret or its hash.
type TokenView struct {
	ID        string    `json:"id"`
	Name      string    `json:"name,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// NewTokenResponse carries a newly created admin token, shown once.
type NewTokenResponse struct {
	TokenView
	Token string `json:"token"`
}

// JoinTokenResponse carries the join token.
type JoinTokenResponse struct {
	Token string `json:"token"`
}

package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/raftguard/raftguard/fsm"
)

// Defaults for node-local settings.
const (
	DefaultDataDir     = "/var/lib/raftguard"
	DefaultRaftPort    = 7000
	DefaultAPIPort     = 7443
	DefaultWGInterface = "wg0"
	DefaultDataplane   = "auto"
)

// Defaults for cluster settings given at bootstrap.
const (
	DefaultListenPort = 51820
	DefaultPool       = "10.99.0.0/24"
	DefaultMTU        = 1420
	DefaultKeepalive  = 25
)

// DefaultClientAllowedIPs is written into client configs unless changed.
var DefaultClientAllowedIPs = []string{"0.0.0.0/0", "::/0"}

// Config is what a node is started with. Zero values mean "not given": the
// value stored in the data dir is used, or else the default.
type Config struct {
	DataDir      string
	NodeID       string
	RaftAddr     string // bind address for Raft
	APIAddr      string // bind address for the API
	Advertise    string // host other nodes use to reach this one
	VIPInterface string
	WGInterface  string
	Dataplane    string
	// NATInterface is the NIC the leader masquerades the pools on when the
	// cluster's NAT setting is on (empty: the default route's).
	NATInterface string
	// PeerLimit caps the enabled peers the API accepts (0: the data
	// plane's own limit; none without a data plane).
	PeerLimit int

	// VIPModes holds the node-local settings of the VIP modes (the hook,
	// BGP, cloud credentials); never replicated.
	VIPModes VIPModeFlags

	Bootstrap bool
	Join      []string
	Token     string

	Cluster ClusterFlags

	Raft RaftTuning

	// DisableEndpointSync stops the leader from recording peers' endpoints
	// (tests of recovery without a known endpoint).
	DisableEndpointSync bool

	Logger *slog.Logger
	// Stderr receives the one-time token banner at bootstrap.
	Stderr io.Writer
}

// ClusterFlags are the cluster settings given with --bootstrap.
type ClusterFlags struct {
	VIPs             []string
	Endpoint         string
	ListenPort       int
	Pool             string
	Pool6            string
	ClientAllowedIPs []string
	ClientDNS        []string
	MTU              int
	Keepalive        *int
	NAT              bool
	// VIPMode is how the VIPs reach the leader (fsm.VIPModes; "" is arp).
	VIPMode string
	// Import is a wg-quick server config whose private key, listen port,
	// addresses (as the pools) and peers the new cluster takes over.
	Import string
}

// VIPModeFlags are the node-local settings of the VIP modes.
type VIPModeFlags struct {
	// Hook is the program the hook mode runs (absolute path); HookTimeout
	// bounds one run (default vip.DefaultHookTimeout).
	Hook        string
	HookTimeout time.Duration
	// BGP mode: this node's AS number, its neighbors (ADDR@ASN), router
	// id (default: --advertise), hold time (default 9s) and the optional
	// TCP MD5 password (never stored in the data dir).
	BGPASN       uint32
	BGPNeighbors []string
	BGPRouterID  string
	BGPHoldTime  time.Duration
	BGPPassword  string
	// Hetzner mode: the file holding the API token (read at each start,
	// never copied), this node's server id (0: from the metadata service)
	// and an API endpoint other than Hetzner's.
	HetznerTokenFile string
	HetznerServerID  int64
	HetznerEndpoint  string
	// AWS mode: region (empty: the SDK's chain, then the instance
	// metadata service), this node's instance id (empty: from the
	// metadata service), the Elastic IP (public address or allocation id;
	// empty: only the private IP moves) and an EC2 endpoint other than
	// the region's. Credentials come from the SDK's standard chain.
	AWSRegion     string
	AWSInstanceID string
	AWSEIP        string
	AWSEndpoint   string
}

// RaftTuning overrides raftnode's defaults; zero keeps them.
type RaftTuning struct {
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	SnapshotThreshold  uint64
	SnapshotInterval   time.Duration
	TrailingLogs       uint64
}

// nodeFile is the node's identity and addresses, kept in the data dir so a
// restart needs nothing but --data-dir.
type nodeFile struct {
	NodeID       string `json:"node_id"`
	RaftAddr     string `json:"raft_addr"`
	APIAddr      string `json:"api_addr"`
	Advertise    string `json:"advertise"`
	VIPInterface string `json:"vip_interface,omitempty"`
	NATInterface string `json:"nat_interface,omitempty"`
	WGInterface  string `json:"wg_interface"`
	Dataplane    string `json:"dataplane"`
	// VIPHook and VIPHookTimeout (nanoseconds) are the hook mode's
	// node-local settings.
	VIPHook        string `json:"vip_hook,omitempty"`
	VIPHookTimeout int64  `json:"vip_hook_timeout,omitempty"`
	// The bgp mode's node-local settings (the password is never stored).
	BGPASN       uint32   `json:"bgp_asn,omitempty"`
	BGPNeighbors []string `json:"bgp_neighbors,omitempty"`
	BGPRouterID  string   `json:"bgp_router_id,omitempty"`
	BGPHoldTime  int64    `json:"bgp_hold_time,omitempty"`
	// The hetzner mode's node-local settings (the token stays in its
	// file).
	HetznerTokenFile string `json:"hetzner_token_file,omitempty"`
	HetznerServerID  int64  `json:"hetzner_server_id,omitempty"`
	HetznerEndpoint  string `json:"hetzner_endpoint,omitempty"`
	// The aws mode's node-local settings (credentials stay with the SDK's
	// chain).
	AWSRegion     string `json:"aws_region,omitempty"`
	AWSInstanceID string `json:"aws_instance_id,omitempty"`
	AWSEIP        string `json:"aws_eip,omitempty"`
	AWSEndpoint   string `json:"aws_endpoint,omitempty"`
	// Bound addresses as other nodes reach them (ports resolved).
	RaftAdvertise string `json:"raft_advertise"`
	APIAdvertise  string `json:"api_advertise"`
}

// File names inside the data dir.
const (
	nodeFileName    = "node.json"
	adminTokenFile  = "admin.token"
	joinTokenFile   = "join.token"
	pendingInitFile = "bootstrap.pending"
	// pendingImportFile holds the peers of --import until the Raft log
	// holds them (it has their preshared keys: 0600, as every file here).
	pendingImportFile = "bootstrap.import"
	tlsDirName        = "tls"
	raftDirName       = "raft"
	dataDirMode       = 0o700
	secretFileMode    = 0o600
	nodeFileLockName  = "lock"
)

// NodeInfo is what the CLI reads from a server's data dir.
type NodeInfo struct {
	NodeID       string
	APIAdvertise string
	AdminToken   string
	CACertFile   string
}

// ReadNodeInfo reads the API address, admin token and CA file of the node
// whose data dir is dir.
func ReadNodeInfo(dir string) (NodeInfo, error) {
	nf, err := readNodeFile(dir)
	if err != nil {
		return NodeInfo{}, err
	}
	tok, err := os.ReadFile(filepath.Join(dir, adminTokenFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return NodeInfo{}, fmt.Errorf("read admin token: %w", err)
	}
	return NodeInfo{
		NodeID:       nf.NodeID,
		APIAdvertise: nf.APIAdvertise,
		AdminToken:   strings.TrimSpace(string(tok)),
		CACertFile:   filepath.Join(dir, tlsDirName, "ca.crt"),
	}, nil
}

func readNodeFile(dir string) (*nodeFile, error) {
	b, err := os.ReadFile(filepath.Join(dir, nodeFileName))
	if err != nil {
		return nil, err
	}
	var nf nodeFile
	if err := json.Unmarshal(b, &nf); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, nodeFileName), err)
	}
	return &nf, nil
}

// writeFileAtomic writes data to path with mode 0600 via a temp file.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(secretFileMode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'))
}

// hostPortDefault adds the default port to an address without one.
func hostPortDefault(addr string, port int) string {
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	return net.JoinHostPort(strings.Trim(addr, "[]"), strconv.Itoa(port))
}

// defaultAdvertise picks the address other nodes use: the bind host when it
// is a specific address, else the first non-loopback address of this host.
func defaultAdvertise(bind string) string {
	if host, _, err := net.SplitHostPort(bind); err == nil {
		if a, err := netip.ParseAddr(host); err == nil && !a.IsUnspecified() {
			return a.String()
		}
	}
	addrs, _ := net.InterfaceAddrs()
	var v6 string
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() || !ipn.IP.IsGlobalUnicast() {
			continue
		}
		if ipn.IP.To4() != nil {
			return ipn.IP.String()
		}
		if v6 == "" {
			v6 = ipn.IP.String()
		}
	}
	if v6 != "" {
		return v6
	}
	return "127.0.0.1"
}

// settingsFromFlags validates the bootstrap flags and builds the settings
// (without the key pair).
func settingsFromFlags(c ClusterFlags) (fsm.Settings, error) {
	var s fsm.Settings
	if len(c.VIPs) == 0 {
		return s, errors.New("--vip is required with --bootstrap (for example --vip 192.0.2.10/24)")
	}
	for _, v := range c.VIPs {
		p, err := netip.ParsePrefix(strings.TrimSpace(v))
		if err != nil {
			return s, fmt.Errorf("--vip %q: want an address with prefix length, like 192.0.2.10/24", v)
		}
		s.VIPs = append(s.VIPs, p)
	}
	s.ListenPort = c.ListenPort
	if s.ListenPort == 0 {
		s.ListenPort = DefaultListenPort
	}
	pool := c.Pool
	if pool == "" {
		pool = DefaultPool
	}
	var err error
	if s.Pool, err = fsm.ParsePrefix(pool); err != nil {
		return s, fmt.Errorf("--pool: %w", err)
	}
	if c.Pool6 != "" {
		if s.Pool6, err = fsm.ParsePrefix(c.Pool6); err != nil {
			return s, fmt.Errorf("--pool6: %w", err)
		}
	}
	allowed := c.ClientAllowedIPs
	if len(allowed) == 0 {
		allowed = DefaultClientAllowedIPs
	}
	for _, a := range SplitList(allowed) {
		p, err := fsm.ParsePrefix(a)
		if err != nil {
			return s, fmt.Errorf("--client-allowed-ips: %w", err)
		}
		s.ClientAllowedIPs = append(s.ClientAllowedIPs, p)
	}
	s.ClientDNS = SplitList(c.ClientDNS)
	if err := fsm.ValidateClientDNS(s.ClientDNS); err != nil {
		return s, fmt.Errorf("--client-dns: %w", err)
	}
	s.MTU = c.MTU
	if s.MTU == 0 {
		s.MTU = DefaultMTU
	}
	s.Keepalive = DefaultKeepalive
	if c.Keepalive != nil {
		s.Keepalive = *c.Keepalive
	}
	s.NAT = c.NAT
	if err := fsm.ValidateVIPMode(c.VIPMode); err != nil {
		return s, fmt.Errorf("--vip-mode: %w", err)
	}
	if c.VIPMode != fsm.VIPModeARP {
		s.VIPMode = c.VIPMode // the default is stored as before protocol 6: empty
	}
	s.Endpoint = c.Endpoint
	if s.Endpoint == "" {
		s.Endpoint = net.JoinHostPort(s.VIPs[0].Addr().String(), strconv.Itoa(s.ListenPort))
	} else if err := fsm.ValidateEndpoint(s.Endpoint); err != nil {
		return s, fmt.Errorf("--endpoint: %w (want host:port, with a host name or an IP address, IPv6 in brackets, and a port 1-65535)", err)
	}
	return s, nil
}

// SplitList accepts repeated flags and comma-separated values alike (the
// server's flags and the command line client's).
func SplitList(in []string) []string {
	var out []string
	for _, v := range in {
		for _, part := range strings.Split(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

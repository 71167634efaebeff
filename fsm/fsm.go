// Package fsm holds raftguard's replicated state and its raft.FSM: settings,
// the shared WireGuard key, the cluster CA, nodes, admin tokens, peers and
// their IP allocations. It is pure and deterministic: Apply depends only on
// the state and the log entry (time stamps travel inside commands), it never
// touches the network, and it rejects bad commands with error values that
// leave the state unchanged.
//
// Commands are registered once, in the table in command.go, beside the rules
// for evolving them; the replicated cluster version (ClusterVersion,
// CheckProposable) keeps nodes from proposing what an older member could not
// apply during a rolling upgrade.
package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// FSM is the replicated state machine.
type FSM struct {
	mu  sync.RWMutex // guards st, gen
	st  *state
	gen uint64 // counts the state versions: successful applies and restores

	digestMu    sync.Mutex // serializes Digest; guards digestCache
	digestCache digestCache

	onChange func(CommandType) // called after each applied command, outside mu
}

var _ raft.FSM = (*FSM)(nil)

// New returns an empty state machine. onChange, if not nil, is called after
// every applied command and restore (with type 0); it must not block.
func New(onChange func(CommandType)) *FSM {
	return &FSM{st: newState(), onChange: onChange}
}

type state struct {
	initialized bool
	settings    Settings
	cluster     Cluster
	nodes       map[string]Node
	tokens      map[string]AdminToken // by ID
	peers       map[string]*Peer
	certs       map[string]NodeCert    // by node ID
	revoked     map[string]RevokedCert // by fingerprint
	sessions    map[string]Session     // console sessions by hash
	// version is the cluster version (0 reads as 1): the newest protocol
	// every member supports, raised through SetClusterVersion.
	version int
	// audit is the hash-chained audit log, oldest first (audit.go).
	audit []AuditEntry

	// Indexes derived from the fields above.
	byKey      map[string]string     // public key -> peer name
	tokenIDs   map[string]string     // token hash -> token ID
	addrOwner  map[netip.Addr]string // peer address -> peer name
	pools      []*pool               // IPv4 pool, then the IPv6 pool if any
	poolUsed   []uint64              // peer addresses in each pool
	routes     prefixTrie            // pools, VIPs and peers' allowed IPs
	enabled    int
	lastIndex  uint64
	lastTime   time.Time
	serverKeys map[string]bool
}

func newState() *state {
	return &state{
		nodes:     map[string]Node{},
		tokens:    map[string]AdminToken{},
		peers:     map[string]*Peer{},
		certs:     map[string]NodeCert{},
		revoked:   map[string]RevokedCert{},
		sessions:  map[string]Session{},
		byKey:     map[string]string{},
		tokenIDs:  map[string]string{},
		addrOwner: map[netip.Addr]string{},
	}
}

// Apply applies one committed log entry. It returns nil or a result value
// on success and an error value when the command is rejected.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	t, body, err := Decode(l.Data)
	if err != nil {
		if len(l.Data) > 0 && CommandType(l.Data[0])&IgnorableFlag != 0 {
			return nil
		}
		return err
	}
	f.mu.Lock()
	res := f.st.apply(t, body)
	if _, isErr := res.(error); !isErr {
		f.st.lastIndex = l.Index
		f.gen++
	}
	f.mu.Unlock()
	if _, isErr := res.(error); !isErr && f.onChange != nil {
		f.onChange(changedType(t, body))
	}
	return res
}

func (s *state) apply(t CommandType, body json.RawMessage) any {
	if t != CmdInit && !s.initialized {
		return ErrNotInitialized
	}
	if c := lookup(t); c != nil {
		return c.apply(s, body)
	}
	if t&IgnorableFlag != 0 {
		return nil
	}
	// An entry this node cannot apply: going on would let the replica drift
	// from the others without anyone noticing.
	panic(fmt.Sprintf("fsm: unknown command type %d: this node is older than the cluster; upgrade it", uint8(t)))
}

func (s *state) touch(at time.Time) {
	if at.After(s.lastTime) {
		s.lastTime = at
	}
}

// validateSettingsCore checks the settings' structure: keys, ports, pools,
// VIPs, MTU, keepalive, prefixes. ValidateSettings adds the text rules.
func validateSettingsCore(st *Settings) error {
	if err := ValidateKey(st.PrivateKey); err != nil {
		return fmt.Errorf("server private key: %w", err)
	}
	if err := ValidateKey(st.PublicKey); err != nil {
		return fmt.Errorf("server public key: %w", err)
	}
	if st.ListenPort < 1 || st.ListenPort > 65535 {
		return fmt.Errorf("%w: listen port %d is outside 1-65535", ErrInvalid, st.ListenPort)
	}
	if !st.Pool.IsValid() || !st.Pool.Addr().Is4() {
		return fmt.Errorf("%w: the pool must be an IPv4 prefix", ErrInvalid)
	}
	if _, err := newPool(st.Pool); err != nil {
		return fmt.Errorf("pool: %w", err)
	}
	if st.Pool6.IsValid() {
		if !st.Pool6.Addr().Is6() {
			return fmt.Errorf("%w: pool6 must be an IPv6 prefix", ErrInvalid)
		}
		if _, err := newPool(st.Pool6); err != nil {
			return fmt.Errorf("pool6: %w", err)
		}
	}
	var v4, v6 int
	for _, v := range st.VIPs {
		if !v.IsValid() || v.Addr().Zone() != "" || v.Addr().Is4In6() {
			return fmt.Errorf("%w: VIP %s is not a valid address with prefix", ErrInvalid, v)
		}
		if !v.Addr().IsGlobalUnicast() {
			return fmt.Errorf("%w: VIP %s is not a unicast address", ErrInvalid, v)
		}
		if v.Addr().Is4() {
			v4++
		} else {
			v6++
		}
		for _, p := range []netip.Prefix{st.Pool, st.Pool6} {
			if p.IsValid() && p.Contains(v.Addr()) {
				return fmt.Errorf("%w: VIP %s lies inside the tunnel pool %s", ErrOverlap, v, p)
			}
		}
	}
	if len(st.VIPs) == 0 || v4 > 1 || v6 > 1 {
		return fmt.Errorf("%w: give one or two VIPs (at most one IPv4 and one IPv6)", ErrInvalid)
	}
	if st.MTU < 1280 || st.MTU > 9000 {
		return fmt.Errorf("%w: MTU %d is outside 1280-9000", ErrInvalid, st.MTU)
	}
	if st.Keepalive < 0 || st.Keepalive > 65535 {
		return fmt.Errorf("%w: keepalive %d is outside 0-65535", ErrInvalid, st.Keepalive)
	}
	for _, p := range st.ClientAllowedIPs {
		if err := CheckPrefix(p); err != nil {
			return fmt.Errorf("client allowed IPs: %w", err)
		}
	}
	if st.Endpoint == "" {
		return fmt.Errorf("%w: endpoint is empty", ErrInvalid)
	}
	// Empty in every entry before protocol 5, so older entries pass.
	if err := ValidateVIPMode(st.VIPMode); err != nil {
		return err
	}
	// The aws mode moves a private IPv4 address (and its Elastic IP); no
	// node before protocol 10 accepts the mode, so this rule is new with it.
	if st.VIPMode == VIPModeAWS {
		for _, v := range st.VIPs {
			if !v.Addr().Is4() {
				return fmt.Errorf("%w: the aws VIP mode moves an IPv4 VIP only; remove %s", ErrInvalid, v)
			}
		}
	}
	return nil
}

func (s *state) applyInit(c Init) any {
	if s.initialized {
		return ErrAlreadyInitialized
	}
	if err := s.checkSettings(&c.Settings); err != nil {
		return err
	}
	if c.CACertPEM == "" || c.CAKeyPEM == "" || c.JoinToken == "" || c.AdminToken.Hash == "" || c.AdminToken.ID == "" {
		return fmt.Errorf("%w: init needs the CA, a join token and an admin token", ErrInvalid)
	}
	s.settings = c.Settings
	s.cluster = Cluster{CACertPEM: c.CACertPEM, CAKeyPEM: c.CAKeyPEM, JoinToken: c.JoinToken, CreatedAt: c.At}
	c.AdminToken.CreatedAt = c.At
	s.tokens[c.AdminToken.ID] = c.AdminToken
	s.tokenIDs[c.AdminToken.Hash] = c.AdminToken.ID
	s.initialized = true
	s.rebuildStatic()
	s.touch(c.At)
	return nil
}

// rebuildStatic sets up the pools and the route trie from the settings.
func (s *state) rebuildStatic() {
	s.pools, s.poolUsed = nil, nil
	s.routes = prefixTrie{}
	for _, p := range []netip.Prefix{s.settings.Pool, s.settings.Pool6} {
		if !p.IsValid() {
			continue
		}
		pl, err := newPool(p)
		if err != nil {
			continue // validated at init
		}
		s.pools = append(s.pools, pl)
		s.poolUsed = append(s.poolUsed, 0)
		s.routes.insert(p, "")
	}
	for _, v := range s.settings.VIPs {
		host := netip.PrefixFrom(v.Addr(), v.Addr().BitLen())
		if _, _, ok := s.routes.overlap(host); !ok {
			s.routes.insert(host, "")
		}
	}
	s.serverKeys = map[string]bool{s.settings.PublicKey: true}
}

func (s *state) applyRegisterNode(c RegisterNode) any {
	if err := ValidateName(c.ID); err != nil {
		return fmt.Errorf("node id: %w", err)
	}
	if err := s.checkNodeAddrs(c); err != nil {
		return err
	}
	s.nodes[c.ID] = Node{ID: c.ID, RaftAddr: c.RaftAddr, APIAddr: c.APIAddr, UpdatedAt: c.At}
	s.touch(c.At)
	return nil
}

func (s *state) applyRemoveNode(c RemoveNode) any {
	_, known := s.nodes[c.ID]
	cert, hasCert := s.certs[c.ID]
	if !known && !hasCert {
		return fmt.Errorf("%w: node %q", ErrNotFound, c.ID)
	}
	delete(s.nodes, c.ID)
	if hasCert {
		s.revoke(cert, c.At)
		delete(s.certs, c.ID)
	}
	s.touch(c.At)
	return nil
}

func (s *state) applySetNodeCert(c SetNodeCert) any {
	if err := ValidateName(c.ID); err != nil {
		return fmt.Errorf("node id: %w", err)
	}
	if err := ValidateFingerprint(c.Fingerprint); err != nil {
		return err
	}
	if _, ok := s.revoked[c.Fingerprint]; ok {
		return fmt.Errorf("%w: certificate %s was revoked", ErrInvalid, c.Fingerprint[:16])
	}
	for id, nc := range s.certs {
		if id != c.ID && nc.Fingerprint == c.Fingerprint {
			return fmt.Errorf("%w: certificate %s belongs to node %q", ErrDuplicateKey, c.Fingerprint[:16], id)
		}
	}
	if old, ok := s.certs[c.ID]; ok && old.Fingerprint != c.Fingerprint {
		s.revoke(old, c.At)
	}
	s.certs[c.ID] = NodeCert{NodeID: c.ID, Fingerprint: c.Fingerprint, NotAfter: c.NotAfter, IssuedAt: c.At}
	s.touch(c.At)
	return nil
}

// revoke adds a node certificate to the revoked set, and drops revoked
// certificates that have expired by now (TLS refuses those anyway), so the
// set does not grow without bound.
func (s *state) revoke(nc NodeCert, now time.Time) {
	for fp, r := range s.revoked {
		if !r.NotAfter.IsZero() && r.NotAfter.Before(now) {
			delete(s.revoked, fp)
		}
	}
	s.revoked[nc.Fingerprint] = RevokedCert{Fingerprint: nc.Fingerprint, NodeID: nc.NodeID, NotAfter: nc.NotAfter, RevokedAt: now}
}

func (s *state) poolFor(a netip.Addr) (int, *pool) {
	for i, pl := range s.pools {
		if pl.prefix.Contains(a) {
			return i, pl
		}
	}
	return -1, nil
}

// checkKeyFields validates the keys of AddPeer and UpdatePeer.
func (s *state) checkKeyFields(pub, psk string) error {
	if pub != "" {
		if err := ValidateKey(pub); err != nil {
			return fmt.Errorf("public key: %w", err)
		}
		if s.serverKeys[pub] {
			return fmt.Errorf("%w: that is the server's own public key", ErrInvalid)
		}
	}
	if psk != "" {
		if err := ValidateKey(psk); err != nil {
			return fmt.Errorf("preshared key: %w", err)
		}
	}
	return nil
}

// checkRoutes validates a peer's extra allowed IPs against each other and
// every stored route. The caller has removed the peer's own routes.
func (s *state) checkRoutes(routes []netip.Prefix) error {
	for i, r := range routes {
		if err := CheckPrefix(r); err != nil {
			return fmt.Errorf("allowed IPs: %w", err)
		}
		for _, o := range routes[:i] {
			if o.Overlaps(r) {
				return fmt.Errorf("%w: allowed IPs %s and %s overlap each other", ErrOverlap, o, r)
			}
		}
		if owner, q, hit := s.routes.overlap(r); hit {
			if owner == "" {
				return fmt.Errorf("%w: allowed IPs %s overlap the server's %s", ErrOverlap, r, q)
			}
			return fmt.Errorf("%w: allowed IPs %s overlap %s of peer %q", ErrOverlap, r, q, owner)
		}
	}
	return nil
}

func (s *state) applyAddPeer(c AddPeer) any {
	if err := ValidateName(c.Name); err != nil {
		return err
	}
	if c.PublicKey == "" {
		return fmt.Errorf("%w: public key is required", ErrInvalid)
	}
	if err := s.checkKeyFields(c.PublicKey, c.PresharedKey); err != nil {
		return err
	}
	if old, ok := s.peers[c.Name]; ok {
		if old.PublicKey == c.PublicKey {
			return AddPeerResult{Peer: *old, Created: false}
		}
		return fmt.Errorf("%w: a peer named %q exists", ErrDuplicateName, c.Name)
	}
	if owner, ok := s.byKey[c.PublicKey]; ok {
		return fmt.Errorf("%w: peer %q has this public key", ErrDuplicateKey, owner)
	}
	if err := s.checkRoutes(c.AllowedIPs); err != nil {
		return err
	}
	if err := checkExpiry(c.ExpiresAt, c.At); err != nil {
		return err
	}
	addrs := slices.Clone(c.Addresses)
	if len(addrs) == 0 {
		// Allocate one address per pool; undo on failure.
		for _, pl := range s.pools {
			a, err := pl.alloc(s.addrOwner)
			if err != nil {
				for _, got := range addrs {
					_, p := s.poolFor(got.Addr())
					p.release(got.Addr())
				}
				return err
			}
			addrs = append(addrs, netip.PrefixFrom(a, a.BitLen()))
		}
	} else {
		seen := map[int]bool{}
		for _, a := range addrs {
			if err := CheckPrefix(a); err != nil || !a.IsSingleIP() {
				return fmt.Errorf("%w: address %s must be a single host (/32 or /128)", ErrInvalid, a)
			}
			i, pl := s.poolFor(a.Addr())
			if pl == nil {
				return fmt.Errorf("%w: address %s is outside the tunnel pools", ErrInvalid, a.Addr())
			}
			if seen[i] {
				return fmt.Errorf("%w: two addresses in the pool %s", ErrInvalid, pl.prefix)
			}
			seen[i] = true
			if err := pl.check(a.Addr()); err != nil {
				return err
			}
			if owner, taken := s.addrOwner[a.Addr()]; taken {
				return fmt.Errorf("%w: %s belongs to peer %q", ErrAddressInUse, a.Addr(), owner)
			}
		}
	}
	p := &Peer{
		Name:         c.Name,
		PublicKey:    c.PublicKey,
		PresharedKey: c.PresharedKey,
		Addresses:    addrs,
		AllowedIPs:   slices.Clone(c.AllowedIPs),
		Enabled:      c.Enabled,
		CreatedAt:    c.At,
		UpdatedAt:    c.At,
		ExpiresAt:    c.ExpiresAt,
	}
	s.indexPeer(p)
	s.touch(c.At)
	return AddPeerResult{Peer: *p, Created: true}
}

// indexPeer stores p and its index entries. p has been checked.
func (s *state) indexPeer(p *Peer) {
	s.peers[p.Name] = p
	s.byKey[p.PublicKey] = p.Name
	for _, a := range p.Addresses {
		s.addrOwner[a.Addr()] = p.Name
		if i, _ := s.poolFor(a.Addr()); i >= 0 {
			s.poolUsed[i]++
		}
	}
	for _, r := range p.AllowedIPs {
		s.routes.insert(r, p.Name)
	}
	if p.Enabled {
		s.enabled++
	}
}

func (s *state) unindexPeer(p *Peer) {
	delete(s.peers, p.Name)
	delete(s.byKey, p.PublicKey)
	for _, a := range p.Addresses {
		delete(s.addrOwner, a.Addr())
		if i, pl := s.poolFor(a.Addr()); pl != nil {
			s.poolUsed[i]--
			pl.release(a.Addr())
		}
	}
	for _, r := range p.AllowedIPs {
		s.routes.remove(r)
	}
	if p.Enabled {
		s.enabled--
	}
}

func (s *state) applyUpdatePeer(c UpdatePeer) any {
	old, ok := s.peers[c.Name]
	if !ok {
		return fmt.Errorf("%w: peer %q", ErrNotFound, c.Name)
	}
	p := old.clone()
	if c.PresharedKey != nil {
		if err := s.checkKeyFields("", *c.PresharedKey); err != nil {
			return err
		}
		p.PresharedKey = *c.PresharedKey
	}
	if err := updateExpiry(p, c); err != nil {
		return err
	}
	if c.Enabled != nil {
		p.Enabled = *c.Enabled
	}
	if c.AllowedIPs != nil {
		for _, r := range old.AllowedIPs {
			s.routes.remove(r)
		}
		err := s.checkRoutes(*c.AllowedIPs)
		for _, r := range old.AllowedIPs {
			s.routes.insert(r, old.Name)
		}
		if err != nil {
			return err
		}
		p.AllowedIPs = slices.Clone(*c.AllowedIPs)
	}
	p.UpdatedAt = c.At
	s.replacePeer(old, p)
	s.touch(c.At)
	return *p
}

// replacePeer swaps old for p, which has the same name, key and addresses.
func (s *state) replacePeer(old, p *Peer) {
	for _, r := range old.AllowedIPs {
		s.routes.remove(r)
	}
	for _, r := range p.AllowedIPs {
		s.routes.insert(r, p.Name)
	}
	if old.Enabled != p.Enabled {
		if p.Enabled {
			s.enabled++
		} else {
			s.enabled--
		}
	}
	s.peers[p.Name] = p
}

func (s *state) applyDeletePeer(c DeletePeer) any {
	p, ok := s.peers[c.Name]
	if !ok {
		return fmt.Errorf("%w: peer %q", ErrNotFound, c.Name)
	}
	s.unindexPeer(p)
	s.touch(c.At)
	return nil
}

func (s *state) applySetEndpoints(c SetEndpoints) any {
	for _, u := range c.Updates {
		old, ok := s.peers[u.Name]
		if !ok {
			continue
		}
		if old.Endpoint == u.Endpoint && old.LastHandshake.Equal(u.LastHandshake) {
			continue
		}
		p := *old // addresses and routes are shared, never modified
		p.Endpoint = u.Endpoint
		p.LastHandshake = u.LastHandshake
		s.peers[p.Name] = &p
	}
	s.touch(c.At)
	return nil
}

func (s *state) applySetPeerStatus(c SetPeerStatus) any {
	for _, u := range c.Updates {
		if u.Endpoint == "" {
			continue
		}
		if ap, err := netip.ParseAddrPort(u.Endpoint); err != nil || !ap.IsValid() {
			return fmt.Errorf("%w: peer %q: endpoint %q is not an address and port", ErrInvalid, u.Name, u.Endpoint)
		}
	}
	for _, u := range c.Updates {
		old, ok := s.peers[u.Name]
		if !ok {
			continue
		}
		p := *old // addresses and routes are shared, never modified
		if u.Endpoint != "" {
			p.Endpoint = u.Endpoint
		}
		if u.LastHandshake.After(p.LastHandshake) {
			p.LastHandshake = u.LastHandshake
		}
		p.RxBytes = max(p.RxBytes, u.RxBytes)
		p.TxBytes = max(p.TxBytes, u.TxBytes)
		if p.Endpoint != old.Endpoint || !p.LastHandshake.Equal(old.LastHandshake) || p.RxBytes != old.RxBytes || p.TxBytes != old.TxBytes {
			s.peers[p.Name] = &p
		}
	}
	s.touch(c.At)
	return nil
}

func (s *state) applySetJoinToken(c SetJoinToken) any {
	if err := s.checkJoinToken(c.Token); err != nil {
		return err
	}
	s.cluster.JoinToken = c.Token
	s.touch(c.At)
	return nil
}

func (s *state) applyAddAdminToken(c AddAdminToken) any {
	if c.Token.ID == "" || c.Token.Hash == "" {
		return fmt.Errorf("%w: admin token needs an id and a hash", ErrInvalid)
	}
	if _, ok := s.tokens[c.Token.ID]; ok {
		return fmt.Errorf("%w: admin token id %q exists", ErrDuplicateName, c.Token.ID)
	}
	if _, ok := s.tokenIDs[c.Token.Hash]; ok {
		return fmt.Errorf("%w: admin token exists", ErrDuplicateKey)
	}
	c.Token.CreatedAt = c.At
	s.tokens[c.Token.ID] = c.Token
	s.tokenIDs[c.Token.Hash] = c.Token.ID
	s.touch(c.At)
	return nil
}

func (s *state) applyRevokeAdminToken(c RevokeAdminToken) any {
	t, ok := s.tokens[c.ID]
	if !ok {
		return fmt.Errorf("%w: admin token %q", ErrNotFound, c.ID)
	}
	delete(s.tokens, c.ID)
	delete(s.tokenIDs, t.Hash)
	s.touch(c.At)
	return nil
}

func (s *state) applySetClusterVersion(c SetClusterVersion) any {
	if c.Version > ProtocolVersion {
		// Every other replica moves on to a protocol this node cannot
		// follow: stop, as for an unknown command type.
		panic(fmt.Sprintf("fsm: the cluster version is now %d, this node supports %d: this node is older than the cluster; upgrade it", c.Version, ProtocolVersion))
	}
	if c.Version > s.version {
		s.version = c.Version
	}
	s.touch(c.At)
	return nil
}

// Updated returns the settings with the fields c sets changed. The result
// shares nothing with s.
func (s Settings) Updated(c UpdateSettings) Settings {
	s.VIPs = slices.Clone(s.VIPs)
	s.ClientAllowedIPs = slices.Clone(s.ClientAllowedIPs)
	s.ClientDNS = slices.Clone(s.ClientDNS)
	if c.Endpoint != nil {
		s.Endpoint = *c.Endpoint
	}
	if c.ClientAllowedIPs != nil {
		s.ClientAllowedIPs = slices.Clone(*c.ClientAllowedIPs)
	}
	if c.ClientDNS != nil {
		s.ClientDNS = slices.Clone(*c.ClientDNS)
	}
	if c.MTU != nil {
		s.MTU = *c.MTU
	}
	if c.Keepalive != nil {
		s.Keepalive = *c.Keepalive
	}
	if c.NAT != nil {
		s.NAT = *c.NAT
	}
	if c.VIPMode != nil {
		s.VIPMode = *c.VIPMode
		if s.VIPMode == VIPModeARP {
			s.VIPMode = "" // the default is stored as before protocol 6
		}
	}
	return s
}

func (s *state) applyUpdateSettings(c UpdateSettings) any {
	st := s.settings.Updated(c)
	if err := s.checkSettings(&st); err != nil {
		return err
	}
	s.settings = st
	s.touch(c.At)
	return nil
}

// ---- reads ----

// ClusterVersion is the replicated cluster version: nodes propose only the
// commands and fields of protocol versions up to it (CheckProposable).
func (f *FSM) ClusterVersion() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return max(f.st.version, 1)
}

// Initialized reports whether the cluster has been bootstrapped.
func (f *FSM) Initialized() bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.initialized
}

// Settings returns a copy of the cluster settings, private key included:
// callers must never expose it.
func (f *FSM) Settings() Settings {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s := f.st.settings
	s.VIPs = slices.Clone(s.VIPs)
	s.ClientAllowedIPs = slices.Clone(s.ClientAllowedIPs)
	s.ClientDNS = slices.Clone(s.ClientDNS)
	return s
}

// Cluster returns the cluster's trust material, CA key included.
func (f *FSM) Cluster() Cluster {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.cluster
}

// Nodes returns the registered nodes sorted by ID.
func (f *FSM) Nodes() []Node {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return valuesByKey(f.st.nodes)
}

// Node returns one registered node.
func (f *FSM) Node(id string) (Node, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n, ok := f.st.nodes[id]
	return n, ok
}

// Peer returns a copy of one peer.
func (f *FSM) Peer(name string) (Peer, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	p, ok := f.st.peers[name]
	if !ok {
		return Peer{}, false
	}
	return *p.clone(), true
}

// PeerByKey returns the peer with this public key.
func (f *FSM) PeerByKey(key string) (Peer, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	name, ok := f.st.byKey[key]
	if !ok {
		return Peer{}, false
	}
	return *f.st.peers[name].clone(), true
}

// valuesByKey returns m's values in the order of their keys (for each map
// it is used on, the key is the value's ID).
func valuesByKey[V any](m map[string]V) []V {
	keys := slices.Sorted(maps.Keys(m))
	out := make([]V, len(keys))
	for i, k := range keys {
		out[i] = m[k]
	}
	return out
}

// Peers returns every peer sorted by name. The values share their address
// slices with the state: callers must not modify them.
func (f *FSM) Peers() []Peer {
	f.mu.RLock()
	out := make([]Peer, 0, len(f.st.peers))
	for _, p := range f.st.peers {
		out = append(out, *p)
	}
	f.mu.RUnlock()
	slices.SortFunc(out, func(a, b Peer) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// PeerCounts returns the number of peers and of enabled peers.
func (f *FSM) PeerCounts() (total, enabled int) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.st.peers), f.st.enabled
}

// PoolFree returns the number of free addresses in each pool, by prefix.
func (f *FSM) PoolFree() map[netip.Prefix]uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := map[netip.Prefix]uint64{}
	for i, pl := range f.st.pools {
		out[pl.prefix] = pl.size - f.st.poolUsed[i]
	}
	return out
}

// AdminTokenByHash returns the admin token with this hash.
func (f *FSM) AdminTokenByHash(hash string) (AdminToken, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	id, ok := f.st.tokenIDs[hash]
	if !ok {
		return AdminToken{}, false
	}
	return f.st.tokens[id], true
}

// AdminTokens returns the admin tokens sorted by ID.
func (f *FSM) AdminTokens() []AdminToken {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return valuesByKey(f.st.tokens)
}

// NodeCert returns the certificate recorded for node id.
func (f *FSM) NodeCert(id string) (NodeCert, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	c, ok := f.st.certs[id]
	return c, ok
}

// NodeCerts returns the recorded node certificates sorted by node ID.
func (f *FSM) NodeCerts() []NodeCert {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return valuesByKey(f.st.certs)
}

// CertRevoked reports whether the node certificate with this fingerprint
// (hex SHA-256 of its DER encoding) has been revoked. It is cheap: the TLS
// layers call it on every handshake.
func (f *FSM) CertRevoked(fingerprint string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	_, ok := f.st.revoked[fingerprint]
	return ok
}

// RevokedCerts returns the revoked node certificates sorted by fingerprint.
func (f *FSM) RevokedCerts() []RevokedCert {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return valuesByKey(f.st.revoked)
}

// AppliedIndex is the index of the last command applied successfully (or of
// the restored snapshot).
func (f *FSM) AppliedIndex() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.lastIndex
}

// LastTime is the latest time stamp carried by an applied command. A node
// whose clock is behind it should warn: WireGuard clients reject handshake
// initiations older than the last one they saw from the shared key.
func (f *FSM) LastTime() time.Time {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.lastTime
}

// IsRejection reports whether err is one of the package's rejection errors
// (as opposed to a Raft or transport failure).
func IsRejection(err error) bool {
	for _, e := range []error{ErrNotInitialized, ErrAlreadyInitialized, ErrInvalid, ErrNotFound,
		ErrDuplicateName, ErrDuplicateKey, ErrAddressInUse, ErrOverlap, ErrPoolExhausted, ErrMalformedCommand, ErrUpgradeRequired} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

package fsm

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// SnapshotFormat and SnapshotVersion head every snapshot. Restore refuses
// any other format or version.
const (
	SnapshotFormat  = "raftguard-snapshot"
	SnapshotVersion = 1
)

// ErrSnapshotVersion is returned by Restore for a snapshot it cannot read.
var ErrSnapshotVersion = errors.New("unsupported snapshot")

type snapHeader struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
}

// snapMeta is everything but the peers, which follow one JSON object a line.
type snapMeta struct {
	Initialized bool         `json:"initialized"`
	Settings    Settings     `json:"settings"`
	Cluster     Cluster      `json:"cluster"`
	Nodes       []Node       `json:"nodes"`
	Tokens      []AdminToken `json:"admin_tokens"`
	LastIndex   uint64       `json:"last_index"`
	LastTime    time.Time    `json:"last_time"`
	Peers       int          `json:"peers"`
	// Added after the first release: snapshots without them load with no
	// recorded or revoked node certificates.
	NodeCerts    []NodeCert    `json:"node_certs,omitempty"`
	RevokedCerts []RevokedCert `json:"revoked_certs,omitempty"`
	// ClusterVersion is left out while it is 1, so that nodes of the first
	// release read (and digest) the snapshot as their own.
	ClusterVersion int `json:"cluster_version,omitempty"`
	// Sessions are the web console sessions (cluster version 3).
	Sessions []Session `json:"sessions,omitempty"`
	// Audit is the audit log (protocol 3; absent when empty).
	Audit []AuditEntry `json:"audit,omitempty"`
}

type snapshot struct {
	meta  snapMeta
	peers []*Peer // immutable values, shared with the state
}

// Snapshot copies the state under the lock; Persist encodes the copy.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.snapshot(), nil
}

func (s *state) snapshot() *snapshot {
	sn := &snapshot{meta: snapMeta{
		Initialized: s.initialized,
		Settings:    s.settings,
		Cluster:     s.cluster,
		LastIndex:   s.lastIndex,
		LastTime:    s.lastTime,
		Peers:       len(s.peers),
	}}
	if s.version > 1 {
		sn.meta.ClusterVersion = s.version
	}
	sn.meta.Settings.VIPs = slices.Clone(s.settings.VIPs)
	sn.meta.Audit = slices.Clone(s.audit)
	for _, n := range s.nodes {
		sn.meta.Nodes = append(sn.meta.Nodes, n)
	}
	for _, t := range s.tokens {
		sn.meta.Tokens = append(sn.meta.Tokens, t)
	}
	for _, c := range s.certs {
		sn.meta.NodeCerts = append(sn.meta.NodeCerts, c)
	}
	for _, r := range s.revoked {
		sn.meta.RevokedCerts = append(sn.meta.RevokedCerts, r)
	}
	for _, ses := range s.sessions {
		sn.meta.Sessions = append(sn.meta.Sessions, ses)
	}
	sn.peers = make([]*Peer, 0, len(s.peers))
	for _, p := range s.peers {
		sn.peers = append(sn.peers, p)
	}
	return sn
}

// WriteTo writes the snapshot in its versioned format.
func (sn *snapshot) WriteTo(w io.Writer) (int64, error) {
	slices.SortFunc(sn.meta.Nodes, func(a, b Node) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(sn.meta.Tokens, func(a, b AdminToken) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(sn.meta.NodeCerts, func(a, b NodeCert) int { return strings.Compare(a.NodeID, b.NodeID) })
	slices.SortFunc(sn.meta.RevokedCerts, func(a, b RevokedCert) int { return strings.Compare(a.Fingerprint, b.Fingerprint) })
	slices.SortFunc(sn.meta.Sessions, func(a, b Session) int { return strings.Compare(a.Hash, b.Hash) })
	slices.SortFunc(sn.peers, func(a, b *Peer) int { return strings.Compare(a.Name, b.Name) })
	cw := &countWriter{w: w}
	bw := bufio.NewWriterSize(cw, 1<<16)
	enc := json.NewEncoder(bw)
	if err := enc.Encode(snapHeader{Format: SnapshotFormat, Version: SnapshotVersion}); err != nil {
		return cw.n, err
	}
	if err := enc.Encode(sn.meta); err != nil {
		return cw.n, err
	}
	for _, p := range sn.peers {
		if err := enc.Encode(p); err != nil {
			return cw.n, err
		}
	}
	err := bw.Flush()
	return cw.n, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (sn *snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sn.WriteTo(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("write snapshot: %w", err)
	}
	return sink.Close()
}

func (sn *snapshot) Release() {}

// Restore replaces the whole state with the snapshot read from rc.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st, err := readSnapshot(rc)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.st = st
	f.gen++
	f.mu.Unlock()
	if f.onChange != nil {
		f.onChange(0)
	}
	return nil
}

// WriteSnapshot writes the current state in snapshot format (for backups).
func (f *FSM) WriteSnapshot(w io.Writer) error {
	f.mu.RLock()
	sn := f.st.snapshot()
	f.mu.RUnlock()
	_, err := sn.WriteTo(w)
	return err
}

// readSnapshot decodes a snapshot into a fresh state, checking it as it goes.
func readSnapshot(r io.Reader) (*state, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	dec := json.NewDecoder(br)
	var h snapHeader
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("%w: cannot read the header: %v", ErrSnapshotVersion, err)
	}
	if h.Format != SnapshotFormat || h.Version != SnapshotVersion {
		return nil, fmt.Errorf("%w: format %q version %d (this node reads %q version %d)", ErrSnapshotVersion, h.Format, h.Version, SnapshotFormat, SnapshotVersion)
	}
	var m snapMeta
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: cannot read the state: %v", ErrSnapshotVersion, err)
	}
	if m.ClusterVersion > ProtocolVersion {
		return nil, fmt.Errorf("%w: the state is at cluster version %d, this node supports %d: upgrade it", ErrSnapshotVersion, m.ClusterVersion, ProtocolVersion)
	}
	st := newState()
	st.version = m.ClusterVersion
	st.audit = m.Audit
	st.initialized = m.Initialized
	st.settings = m.Settings
	st.cluster = m.Cluster
	st.lastIndex = m.LastIndex
	st.lastTime = m.LastTime
	for _, n := range m.Nodes {
		st.nodes[n.ID] = n
	}
	for _, t := range m.Tokens {
		st.tokens[t.ID] = t
		st.tokenIDs[t.Hash] = t.ID
	}
	if err := st.restoreCerts(m.NodeCerts, m.RevokedCerts); err != nil {
		return nil, err
	}
	if err := st.restoreSessions(m.Sessions); err != nil {
		return nil, err
	}
	if st.initialized {
		if err := validateSettingsCore(&st.settings); err != nil {
			return nil, fmt.Errorf("snapshot settings: %w", err)
		}
		st.rebuildStatic()
	}
	for i := 0; i < m.Peers; i++ {
		p := new(Peer)
		if err := dec.Decode(p); err != nil {
			return nil, fmt.Errorf("%w: peer %d of %d: %v", ErrSnapshotVersion, i+1, m.Peers, err)
		}
		if err := st.checkRestoredPeer(p); err != nil {
			return nil, fmt.Errorf("snapshot peer %d of %d: %w", i+1, m.Peers, err)
		}
		st.indexPeer(p)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the last peer", ErrSnapshotVersion)
	}
	for _, pl := range st.pools {
		pl.reset(st.addrOwner)
	}
	return st, nil
}

// restoreCerts loads the node certificates and the revoked set, refusing
// entries that would make a node's certificate ambiguous.
func (s *state) restoreCerts(certs []NodeCert, revoked []RevokedCert) error {
	for _, r := range revoked {
		if err := ValidateFingerprint(r.Fingerprint); err != nil {
			return fmt.Errorf("snapshot revoked certificate: %w", err)
		}
		s.revoked[r.Fingerprint] = r
	}
	owner := map[string]string{}
	for _, c := range certs {
		if err := ValidateName(c.NodeID); err != nil {
			return fmt.Errorf("snapshot node certificate: node id: %w", err)
		}
		if err := ValidateFingerprint(c.Fingerprint); err != nil {
			return fmt.Errorf("snapshot node certificate of %q: %w", c.NodeID, err)
		}
		if _, ok := s.certs[c.NodeID]; ok {
			return fmt.Errorf("snapshot node certificate: %w: node %q twice", ErrDuplicateName, c.NodeID)
		}
		if o, ok := owner[c.Fingerprint]; ok {
			return fmt.Errorf("snapshot node certificate: %w: nodes %q and %q hold the same certificate", ErrDuplicateKey, o, c.NodeID)
		}
		if _, ok := s.revoked[c.Fingerprint]; ok {
			return fmt.Errorf("snapshot node certificate of %q: %w: it is also revoked", c.NodeID, ErrInvalid)
		}
		owner[c.Fingerprint] = c.NodeID
		s.certs[c.NodeID] = c
	}
	return nil
}

// checkRestoredPeer makes sure a peer from a snapshot cannot corrupt the
// indexes (a hand-edited or damaged backup).
func (s *state) checkRestoredPeer(p *Peer) error {
	if !s.initialized {
		return fmt.Errorf("%w: peers in an uninitialized state", ErrInvalid)
	}
	if err := ValidateName(p.Name); err != nil {
		return err
	}
	if _, ok := s.peers[p.Name]; ok {
		return fmt.Errorf("%w: %q twice", ErrDuplicateName, p.Name)
	}
	if err := s.checkKeyFields(p.PublicKey, p.PresharedKey); err != nil {
		return fmt.Errorf("peer %q: %w", p.Name, err)
	}
	if _, ok := s.byKey[p.PublicKey]; ok {
		return fmt.Errorf("%w: peer %q", ErrDuplicateKey, p.Name)
	}
	for _, a := range p.Addresses {
		_, pl := s.poolFor(a.Addr())
		if pl == nil || !a.IsSingleIP() {
			return fmt.Errorf("%w: peer %q address %s", ErrInvalid, p.Name, a)
		}
		if err := pl.check(a.Addr()); err != nil {
			return err
		}
		if _, taken := s.addrOwner[a.Addr()]; taken {
			return fmt.Errorf("%w: peer %q address %s", ErrAddressInUse, p.Name, a)
		}
	}
	return s.checkRoutes(p.AllowedIPs)
}

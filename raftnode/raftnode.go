// Package raftnode owns raftguard's *raft.Raft: the mutual-TLS transport, the
// raft-boltdb log and stable store, the snapshot store (with private file
// modes), bootstrap, membership changes (join, remove), leadership transfer,
// leadership notifications, Barrier, restore and offline recovery. No other
// package touches *raft.Raft.
//
// raftnode knows nothing about the replicated state: it is handed a raft.FSM.
// Raft's own errors are translated here, once, into this package's sentinel
// errors (ErrNotLeader, ErrLeadershipLost, ErrTimeout, ErrShutdown, ...),
// wrapped with %w so raft's own error stays in the chain.
package raftnode

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// Timing defaults. They are tuned for servers on one LAN, where a round trip
// is well under a millisecond, so that a failed leader is replaced in well
// under a second: the VIP, and with it every VPN client, moves as soon as a
// new leader exists.
const (
	// DefaultHeartbeatTimeout is how long a follower waits without hearing
	// from the leader before it starts an election. hashicorp/raft randomizes
	// the wait between HeartbeatTimeout and 2*HeartbeatTimeout, so a dead
	// leader is detected after 250-500ms of silence; the leader sends
	// heartbeats at a tenth of this (25ms), so several in a row must be lost
	// before a healthy leader is suspected.
	DefaultHeartbeatTimeout = 250 * time.Millisecond
	// DefaultElectionTimeout is how long a candidate waits for votes before
	// starting another round (also randomized up to twice the value). On a
	// LAN one pre-vote plus vote round takes a few milliseconds, so the
	// first round normally elects a new leader well within 1s of the old
	// one's death.
	DefaultElectionTimeout = 250 * time.Millisecond
	// DefaultLeaderLeaseTimeout is how long a leader keeps leading without
	// hearing from a quorum. A leader cut off from the majority steps down
	// (and releases the VIP) within about 200ms, before the majority side
	// can have elected a new leader (at least 250ms), so two nodes never
	// both believe they lead for long. It must not exceed the heartbeat
	// timeout.
	DefaultLeaderLeaseTimeout = 200 * time.Millisecond
	// DefaultCommitTimeout bounds how long a follower may wait to learn the
	// commit index when no new entries arrive; a small value keeps follower
	// replicas (and their reads) fresh with negligible cost.
	DefaultCommitTimeout = 5 * time.Millisecond
	// DefaultSnapshotThreshold is how many new log entries trigger a
	// snapshot: frequent enough to bound the log and restart replay time,
	// rare enough not to serialize a large registry all the time.
	DefaultSnapshotThreshold = 8192
	// DefaultSnapshotInterval is how often raft checks whether the
	// threshold has been reached.
	DefaultSnapshotInterval = 30 * time.Second
	// DefaultTrailingLogs is how many entries are kept after a snapshot, so
	// that a follower that was briefly away catches up from the log rather
	// than needing a full snapshot install.
	DefaultTrailingLogs = 10240
	// DefaultApplyTimeout bounds how long Apply waits to enqueue a command.
	DefaultApplyTimeout = 5 * time.Second

	// transportMaxPool is how many idle connections are kept per peer.
	transportMaxPool = 3
	// transportTimeout bounds dialing a peer and individual RPC I/O.
	transportTimeout = 2 * time.Second
	// notifyBuffer is the capacity of raft's NotifyCh (leadership changes).
	notifyBuffer = 16
)

var (
	// ErrNotLeader is returned when an operation needs the leader and this
	// node is not (or stopped being) the leader. The caller should forward
	// to the leader or retry.
	ErrNotLeader = errors.New("raftnode: not the leader")
	// ErrLeadershipLost is returned when leadership was lost while a
	// command was in flight: it may or may not have been committed. It is
	// also an ErrNotLeader: retry on the new leader, with commands that are
	// safe to apply twice.
	ErrLeadershipLost = fmt.Errorf("%w: leadership lost while the command was in flight", ErrNotLeader)
	// ErrTimeout is returned when a command could not be enqueued in time.
	ErrTimeout = errors.New("raftnode: timed out")
	// ErrAlreadyBootstrapped is returned by Bootstrap when the node already
	// holds Raft state.
	ErrAlreadyBootstrapped = errors.New("raftnode: already bootstrapped")
	// ErrShutdown is returned by operations on a node that is shut down.
	ErrShutdown = errors.New("raftnode: shut down")
	// ErrUnknownServer is returned when a server ID is not in the cluster
	// configuration.
	ErrUnknownServer = errors.New("raftnode: no such server")
	// ErrBadConfig is returned by New and RecoverCluster for an incomplete
	// or invalid Config.
	ErrBadConfig = errors.New("raftnode: invalid config")
	// ErrBadAddress is returned for an address other nodes cannot dial.
	ErrBadAddress = errors.New("raftnode: bad address")
	// ErrNoState is returned by RecoverCluster when the directory holds no
	// Raft state to recover.
	ErrNoState = errors.New("raftnode: no raft state")
)

// Config configures a Node.
type Config struct {
	// NodeID is the node's stable, unique Raft server ID.
	NodeID string
	// Dir is raft's own directory (created 0700): raft.db (raft-boltdb
	// as LogStore and StableStore) and snapshots/.
	Dir string
	// BindAddr is the TCP listen address for Raft; "127.0.0.1:0" picks a
	// free port.
	BindAddr string
	// AdvertiseAddr is the address other nodes dial; if empty, the
	// listener's address (which must then not be unspecified).
	AdvertiseAddr string
	// ServerTLS and ClientTLS are the two sides of mutual TLS (from
	// pki.Identity.PeerServerConfig and PeerClientConfig). Both required.
	ServerTLS, ClientTLS *tls.Config
	// FSM is the replicated state machine.
	FSM raft.FSM
	// Logger receives raft's logs with component=raft; nil means
	// slog.Default().
	Logger *slog.Logger

	// Raft timing; zero means the Default* value.
	HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout, CommitTimeout time.Duration
	// Snapshot policy; zero means the Default* value.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64
	// ApplyTimeout bounds enqueueing a command and membership changes;
	// zero means DefaultApplyTimeout.
	ApplyTimeout time.Duration
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.HeartbeatTimeout, DefaultHeartbeatTimeout)
	def(&c.ElectionTimeout, DefaultElectionTimeout)
	def(&c.LeaderLeaseTimeout, DefaultLeaderLeaseTimeout)
	def(&c.CommitTimeout, DefaultCommitTimeout)
	def(&c.SnapshotInterval, DefaultSnapshotInterval)
	def(&c.ApplyTimeout, DefaultApplyTimeout)
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = DefaultSnapshotThreshold
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = DefaultTrailingLogs
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// raftConfig builds hashicorp/raft's configuration from c (defaults set).
func (c *Config) raftConfig() *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.NodeID)
	rc.HeartbeatTimeout = c.HeartbeatTimeout
	rc.ElectionTimeout = c.ElectionTimeout
	rc.LeaderLeaseTimeout = c.LeaderLeaseTimeout
	rc.CommitTimeout = c.CommitTimeout
	rc.SnapshotThreshold = c.SnapshotThreshold
	rc.SnapshotInterval = c.SnapshotInterval
	rc.TrailingLogs = c.TrailingLogs
	rc.Logger = NewHCLogAdapter(c.Logger)
	return rc
}

// stores holds the on-disk stores of a node.
type stores struct {
	bolt  *raftboltdb.BoltStore
	snaps *privateSnapshotStore
}

// openStores creates dir (0700) and opens raft.db (0600) and the snapshot
// store in it.
func openStores(cfg *Config, rc *raft.Config) (*stores, error) {
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create raft dir: %w", err)
	}
	if err := os.Chmod(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("chmod raft dir: %w", err)
	}
	dbPath := filepath.Join(cfg.Dir, "raft.db")
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: dbPath})
	if err != nil {
		return nil, fmt.Errorf("open raft store: %w", err)
	}
	if err := os.Chmod(dbPath, 0o600); err != nil {
		bolt.Close()
		return nil, fmt.Errorf("chmod raft store: %w", err)
	}
	snaps, err := newPrivateSnapshotStore(cfg.Dir, rc.Logger.Named("snapshot"))
	if err != nil {
		bolt.Close()
		return nil, err
	}
	return &stores{bolt: bolt, snaps: snaps}, nil
}

func validate(cfg *Config) error {
	switch {
	case cfg.NodeID == "":
		return fmt.Errorf("%w: node id is required", ErrBadConfig)
	case cfg.Dir == "":
		return fmt.Errorf("%w: dir is required", ErrBadConfig)
	case cfg.FSM == nil:
		return fmt.Errorf("%w: fsm is required", ErrBadConfig)
	}
	return nil
}

// Server is one member of the cluster configuration.
type Server struct {
	ID    string `json:"id"`
	Addr  string `json:"addr"`
	Voter bool   `json:"voter"`
}

// Stats is a point-in-time summary of the node's Raft state.
type Stats struct {
	Term         uint64 `json:"term"`
	LastIndex    uint64 `json:"last_index"`
	AppliedIndex uint64 `json:"applied_index"`
	CommitIndex  uint64 `json:"commit_index"`
	// LastContact is the time since this follower last heard from a
	// leader; zero on the leader and before any contact.
	LastContact time.Duration `json:"last_contact"`
	State       string        `json:"state"`
}

// Node is one Raft server.
type Node struct {
	cfg      Config
	raft     *raft.Raft
	trans    *raft.NetworkTransport
	stream   *tlsStreamLayer
	stores   *stores
	hasState bool
	logger   *slog.Logger

	notifyCh chan bool
	obsCh    chan raft.Observation
	observer *raft.Observer
	stop     chan struct{}
	wg       sync.WaitGroup

	subMu sync.Mutex
	subs  []chan struct{} // guarded by subMu

	dropped       atomic.Uint64
	leaderChanges atomic.Uint64 // new leaders observed

	shutdownOnce sync.Once
	shutdownErr  error
}

// New opens the stores in cfg.Dir, starts the TLS transport and raft. A node
// with existing state rejoins its cluster; a fresh node waits to be
// bootstrapped or joined.
func New(cfg Config) (*Node, error) {
	if err := validate(&cfg); err != nil {
		return nil, err
	}
	if cfg.BindAddr == "" {
		return nil, fmt.Errorf("%w: bind address is required", ErrBadConfig)
	}
	if cfg.ServerTLS == nil || cfg.ClientTLS == nil {
		return nil, fmt.Errorf("%w: server and client TLS configs are required", ErrBadConfig)
	}
	cfg.setDefaults()
	rc := cfg.raftConfig()
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadConfig, err)
	}
	logger := cfg.Logger.With("component", "raftnode", "node_id", cfg.NodeID)

	st, err := openStores(&cfg, rc)
	if err != nil {
		return nil, err
	}
	hasState, err := raft.HasExistingState(st.bolt, st.bolt, st.snaps)
	if err != nil {
		st.bolt.Close()
		return nil, fmt.Errorf("check raft state: %w", err)
	}
	stream, err := newTLSStreamLayer(cfg.BindAddr, cfg.AdvertiseAddr, cfg.ServerTLS, cfg.ClientTLS, logger)
	if err != nil {
		st.bolt.Close()
		return nil, err
	}
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: transportMaxPool,
		Timeout: transportTimeout,
		Logger:  rc.Logger.Named("transport"),
	})

	n := &Node{
		cfg:      cfg,
		trans:    trans,
		stream:   stream,
		stores:   st,
		hasState: hasState,
		logger:   logger,
		notifyCh: make(chan bool, notifyBuffer),
		obsCh:    make(chan raft.Observation, notifyBuffer),
		stop:     make(chan struct{}),
	}
	rc.NotifyCh = n.notifyCh
	r, err := raft.NewRaft(rc, cfg.FSM, st.bolt, st.bolt, st.snaps, noPipeline{trans})
	if err != nil {
		trans.Close()
		st.bolt.Close()
		return nil, fmt.Errorf("start raft: %w", err)
	}
	n.raft = r
	// NotifyCh reports this node's own leadership; the observer also
	// catches leader changes elsewhere (a follower learning of a new
	// leader), so subscribers hear of every leadership change.
	n.observer = raft.NewObserver(n.obsCh, false, func(o *raft.Observation) bool {
		lo, ok := o.Data.(raft.LeaderObservation)
		if ok && lo.LeaderID != "" {
			n.leaderChanges.Add(1)
		}
		return ok
	})
	r.RegisterObserver(n.observer)
	n.wg.Add(1)
	go n.notifyLoop()
	logger.Info("raft started", "addr", string(trans.LocalAddr()), "existing_state", hasState)
	return n, nil
}

func (n *Node) notifyLoop() {
	defer n.wg.Done()
	for {
		select {
		case <-n.notifyCh:
		case <-n.obsCh:
		case <-n.stop:
			return
		}
		n.wake()
	}
}

// wake signals every subscriber without blocking; a subscriber that has a
// wake-up pending already loses nothing by missing another.
func (n *Node) wake() {
	n.subMu.Lock()
	defer n.subMu.Unlock()
	for _, ch := range n.subs {
		select {
		case ch <- struct{}{}:
		default:
			n.dropped.Add(1)
		}
	}
}

// Subscribe returns a channel of capacity one that is signalled on every
// leadership change (this node gaining or losing leadership, or another
// leader becoming known). The sender never blocks: when a wake-up is already
// pending, further ones are dropped and counted (DroppedWakeups). A woken
// subscriber should read the current truth (IsLeader, Leader) rather than
// rely on the number of signals. The channel is never closed.
func (n *Node) Subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	n.subMu.Lock()
	n.subs = append(n.subs, ch)
	n.subMu.Unlock()
	return ch
}

// DroppedWakeups returns how many wake-ups were dropped because a
// subscriber already had one pending.
func (n *Node) DroppedWakeups() uint64 { return n.dropped.Load() }

// LeaderChanges counts the new leaders this node has observed (a leader
// becoming known, this node included).
func (n *Node) LeaderChanges() uint64 { return n.leaderChanges.Load() }

// HasState reports whether the node held Raft state when New opened it.
func (n *Node) HasState() bool { return n.hasState }

// ID returns the node's ID.
func (n *Node) ID() string { return n.cfg.NodeID }

// Addr returns the node's advertised Raft address.
func (n *Node) Addr() string { return string(n.trans.LocalAddr()) }

// ListenAddr returns the address the Raft listener is bound to.
func (n *Node) ListenAddr() string { return n.stream.ListenAddr().String() }

// RefusedConnections returns how many inbound Raft connections were refused
// (failed TLS handshake, or too many pending handshakes).
func (n *Node) RefusedConnections() uint64 { return n.stream.refused.Load() }

// Bootstrap creates a new cluster with this node as its only voter.
func (n *Node) Bootstrap() error {
	if n.hasState {
		return ErrAlreadyBootstrapped
	}
	err := n.raft.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{
		Suffrage: raft.Voter,
		ID:       raft.ServerID(n.cfg.NodeID),
		Address:  n.trans.LocalAddr(),
	}}}).Error()
	if errors.Is(err, raft.ErrCantBootstrap) {
		return ErrAlreadyBootstrapped
	}
	return translate("bootstrap", err)
}

// translate maps raft's errors onto this package's sentinels, keeping raft's
// error in the chain too. It is the one place that reads raft's errors:
// callers see only the sentinels above.
func translate(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrLeadershipLost):
		return fmt.Errorf("%s: %w: %w", op, ErrLeadershipLost, err)
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrNotVoter):
		return fmt.Errorf("%s: %w: %w", op, ErrNotLeader, err)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%s: %w: %w", op, ErrTimeout, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%s: %w: %w", op, ErrShutdown, err)
	default:
		return fmt.Errorf("%s: %w", op, err)
	}
}

// Apply proposes cmd and waits until it is committed and applied by the
// local FSM, returning the FSM's response. If the response is an error value
// (a command the FSM rejected), it is returned as the error, unwrapped.
// Errors: ErrNotLeader (also when leadership was lost while the command was
// in flight: it may then have been committed, so commands should be safe to
// retry), ErrTimeout, ErrShutdown.
func (n *Node) Apply(cmd []byte) (any, error) {
	f := n.raft.Apply(cmd, n.cfg.ApplyTimeout)
	if err := f.Error(); err != nil {
		return nil, translate("apply", err)
	}
	resp := f.Response()
	if err, ok := resp.(error); ok {
		return nil, err
	}
	return resp, nil
}

// Barrier waits until every preceding log entry is applied to the local FSM.
// Only the leader can issue a barrier (ErrNotLeader otherwise).
func (n *Node) Barrier(timeout time.Duration) error {
	return translate("barrier", n.raft.Barrier(timeout).Error())
}

// VerifyLeader confirms, with a round trip to a quorum, that this node is
// still the leader (for linearizable reads together with Barrier).
func (n *Node) VerifyLeader() error {
	return translate("verify leader", n.raft.VerifyLeader().Error())
}

func (n *Node) configuration() (raft.Configuration, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return raft.Configuration{}, translate("get configuration", err)
	}
	return f.Configuration(), nil
}

// Join adds a voter to the cluster; it must be called on the leader. It is
// idempotent: a voter with the same ID and address is left alone. A server
// with the same ID and another address is replaced (removed, then added with
// the new address), and another server holding the address is removed first
// (a node that was wiped and came back under a new ID).
//
// Replacing rather than updating the address in place (AddVoter on an
// existing ID) sidesteps a data race in hashicorp/raft v1.7.3: replication
// goroutines read their peer's address without a lock while an in-place
// update writes it (hashicorp/raft#681).
func (n *Node) Join(id, addr string) error {
	if id == "" {
		return fmt.Errorf("join: empty server id: %w", ErrBadConfig)
	}
	if err := checkAdvertise(addr); err != nil {
		return fmt.Errorf("join %s: %w", id, err)
	}
	if !n.IsLeader() {
		return fmt.Errorf("join %s: %w", id, ErrNotLeader)
	}
	conf, err := n.configuration()
	if err != nil {
		return err
	}
	var remove []raft.ServerID
	for _, s := range conf.Servers {
		sameID, sameAddr := string(s.ID) == id, string(s.Address) == addr
		switch {
		case sameID && sameAddr:
			if s.Suffrage == raft.Voter {
				return nil
			}
			// A non-voter with the same address: AddVoter promotes it.
		case sameID || sameAddr:
			if string(s.ID) == n.cfg.NodeID {
				return fmt.Errorf("join %s at %s: conflicts with the leader %s at %s: %w", id, addr, s.ID, s.Address, ErrBadAddress)
			}
			remove = append(remove, s.ID)
		}
	}
	for _, rid := range remove {
		n.logger.Info("removing server before join", "removed_id", string(rid), "joining_id", id, "addr", addr)
		if err := n.raft.RemoveServer(rid, 0, n.cfg.ApplyTimeout).Error(); err != nil {
			return translate(fmt.Sprintf("join %s: remove %s", id, rid), err)
		}
	}
	if err := n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, n.cfg.ApplyTimeout).Error(); err != nil {
		return translate(fmt.Sprintf("join %s", id), err)
	}
	n.logger.Info("server joined", "joined_id", id, "addr", addr)
	return nil
}

// Remove removes a server from the cluster; it must be called on the
// leader. Removing a server that is not a member is a no-op.
func (n *Node) Remove(id string) error {
	if !n.IsLeader() {
		return fmt.Errorf("remove %s: %w", id, ErrNotLeader)
	}
	conf, err := n.configuration()
	if err != nil {
		return err
	}
	found := false
	for _, s := range conf.Servers {
		if string(s.ID) == id {
			found = true
		}
	}
	if !found {
		return nil
	}
	if err := n.raft.RemoveServer(raft.ServerID(id), 0, n.cfg.ApplyTimeout).Error(); err != nil {
		return translate(fmt.Sprintf("remove %s", id), err)
	}
	n.logger.Info("server removed", "removed_id", id)
	return nil
}

// TransferLeadership hands leadership to the server to, or to the most
// up-to-date follower when to is "", and waits for the outcome. It must be
// called on the leader. ErrUnknownServer when to is not a member.
func (n *Node) TransferLeadership(to string) error {
	if !n.IsLeader() {
		return fmt.Errorf("transfer leadership: %w", ErrNotLeader)
	}
	if to == "" {
		return translate("transfer leadership", n.raft.LeadershipTransfer().Error())
	}
	if to == n.cfg.NodeID {
		return nil
	}
	conf, err := n.configuration()
	if err != nil {
		return err
	}
	for _, s := range conf.Servers {
		if string(s.ID) == to {
			return translate("transfer leadership to "+to, n.raft.LeadershipTransferToServer(s.ID, s.Address).Error())
		}
	}
	return fmt.Errorf("transfer leadership to %s: %w", to, ErrUnknownServer)
}

// IsLeader reports whether this node is the leader.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the ID and address of the leader this node knows of, or
// empty strings when there is none.
func (n *Node) Leader() (id, addr string) {
	a, i := n.raft.LeaderWithID()
	return string(i), string(a)
}

// State returns "leader", "follower", "candidate" or "shutdown".
func (n *Node) State() string { return strings.ToLower(n.raft.State().String()) }

// Servers returns the current cluster configuration.
func (n *Node) Servers() ([]Server, error) {
	conf, err := n.configuration()
	if err != nil {
		return nil, err
	}
	out := make([]Server, 0, len(conf.Servers))
	for _, s := range conf.Servers {
		out = append(out, Server{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out, nil
}

// Term returns Raft's current term.
func (n *Node) Term() uint64 { return n.raft.CurrentTerm() }

// Stats returns the node's term, indexes, last contact and state.
func (n *Node) Stats() Stats {
	s := Stats{
		Term:         n.raft.CurrentTerm(),
		LastIndex:    n.raft.LastIndex(),
		AppliedIndex: n.raft.AppliedIndex(),
		CommitIndex:  n.raft.CommitIndex(),
		State:        n.State(),
	}
	if s.State != "leader" {
		if lc := n.raft.LastContact(); !lc.IsZero() {
			s.LastContact = time.Since(lc)
		}
	}
	return s
}

// WaitForLeader polls until a leader is known and returns its ID, or the
// context's error.
func (n *Node) WaitForLeader(ctx context.Context) (string, error) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if id, _ := n.Leader(); id != "" {
			return id, nil
		}
		if n.raft.State() == raft.Shutdown {
			return "", fmt.Errorf("wait for leader: %w", ErrShutdown)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("wait for leader: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// Snapshot takes a snapshot now. Having nothing new to snapshot is not an
// error.
func (n *Node) Snapshot() error {
	err := n.raft.Snapshot().Error()
	if errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return nil
	}
	return translate("snapshot", err)
}

// Restore replaces the replicated state, on the leader, with the snapshot
// of size bytes read from r: the leader installs it in its FSM and sends it
// to the followers as a snapshot install. The caller has validated it: a
// restore the FSM refuses stops raft on this node.
func (n *Node) Restore(r io.Reader, size int64, timeout time.Duration) error {
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Size: size}
	return translate("restore", n.raft.Restore(meta, r, timeout))
}

// Shutdown stops raft, the transport and the stores. It is idempotent; later
// calls return the first call's result.
func (n *Node) Shutdown() error {
	n.shutdownOnce.Do(func() {
		var errs []error
		if err := n.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("shutdown raft: %w", err))
		}
		n.raft.DeregisterObserver(n.observer)
		close(n.stop)
		n.wg.Wait()
		if err := n.trans.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close transport: %w", err))
		}
		n.trans.CloseStreams() // pooled outbound connections
		// The transport closes the stream layer; this is a no-op then,
		// and makes sure pending handshakes are gone.
		_ = n.stream.Close()
		if err := n.stores.bolt.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close raft store: %w", err))
		}
		n.shutdownErr = errors.Join(errs...)
		n.logger.Info("raft stopped")
	})
	return n.shutdownErr
}

// RecoverCluster is hashicorp/raft's offline recovery for the survivors of a
// lost majority (the "cluster recover" command): with the node stopped, it
// replaces the cluster configuration in cfg.Dir by servers (which must
// include at least one voter). cfg needs NodeID, Dir and an FSM (a fresh,
// empty one: the log is replayed into it to write a new snapshot); network
// and TLS fields are not used. Every survivor must be recovered with the
// same servers before they are started again.
func RecoverCluster(cfg Config, servers []Server) error {
	if err := validate(&cfg); err != nil {
		return err
	}
	if len(servers) == 0 {
		return fmt.Errorf("%w: no servers given", ErrBadConfig)
	}
	cfg.setDefaults()
	rc := cfg.raftConfig()
	conf := raft.Configuration{}
	for _, s := range servers {
		if s.ID == "" {
			return fmt.Errorf("%w: server with empty id", ErrBadConfig)
		}
		if err := checkAdvertise(s.Addr); err != nil {
			return fmt.Errorf("recover: server %s: %w", s.ID, err)
		}
		suffrage := raft.Nonvoter
		if s.Voter {
			suffrage = raft.Voter
		}
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: suffrage, ID: raft.ServerID(s.ID), Address: raft.ServerAddress(s.Addr)})
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, "raft.db")); err != nil {
		return fmt.Errorf("recover %s: %w", cfg.Dir, ErrNoState)
	}
	st, err := openStores(&cfg, rc)
	if err != nil {
		return err
	}
	defer st.bolt.Close()
	has, err := raft.HasExistingState(st.bolt, st.bolt, st.snaps)
	if err != nil {
		return fmt.Errorf("check raft state: %w", err)
	}
	if !has {
		return fmt.Errorf("recover %s: %w", cfg.Dir, ErrNoState)
	}
	// The transport only encodes peer addresses into the snapshot's legacy
	// peer list; an in-memory one binds no port.
	_, trans := raft.NewInmemTransport(raft.ServerAddress(""))
	defer trans.Close()
	if err := raft.RecoverCluster(rc, cfg.FSM, st.bolt, st.bolt, st.snaps, trans, conf); err != nil {
		return fmt.Errorf("recover cluster: %w", err)
	}
	return nil
}

// noPipeline turns off hashicorp/raft's pipelined replication. In v1.7.3
// the pipeline can deadlock (hashicorp/raft#612): a follower silently stops
// receiving entries while heartbeats go on, or shutdown hangs. Plain
// AppendEntries costs no measurable throughput on a LAN.
type noPipeline struct{ *raft.NetworkTransport }

// AppendEntriesPipeline reports that pipelining is not supported.
func (noPipeline) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}

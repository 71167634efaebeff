// Package agent wires one raftguard node together: the data dir, the node's
// TLS identity, the Raft node with the replicated state, the HTTP API, the
// reconcile loop, and bootstrap and join. It is used by the command line
// and by tests.
//
// The Agent is also the node's cluster service (cluster.go): the workflows
// the API's handlers call, one method each (join, node removal, restore,
// the leadership handover, settings changes). Its leader loop is the
// node's one leader loop: once per term it waits for a barrier and tells
// the reconcile loop, which serves (interface up, VIPs claimed) only after
// that; then it keeps the leader's duties (finishing a bootstrap, its own
// registration and certificate, raising the cluster version once every
// member supports it). Every proposal goes through Apply, which refuses
// what the cluster version does not allow yet.
package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/raftguard/raftguard/fsm"
	"github.com/raftguard/raftguard/httpapi"
	"github.com/raftguard/raftguard/internal/pki"
	"github.com/raftguard/raftguard/internal/reconcile"
	"github.com/raftguard/raftguard/internal/version"
	"github.com/raftguard/raftguard/raftnode"
	"github.com/raftguard/raftguard/vip"
)

// Agent is one running node.
type Agent struct {
	cfg   Config
	log   *slog.Logger
	node  nodeFile
	ident *pki.Identity
	state *fsm.FSM
	raft  *raftnode.Node
	api   *httpapi.Server
	// peers calls other nodes' APIs (MemberStatus), over mutual TLS.
	peers *http.Client
	http  *http.Server
	apiLn net.Listener
	lock  *os.File

	// maxPeers is the data plane's peer limit, for the API (0: none).
	maxPeers atomic.Int64
	// replayTo is the last log index on disk at start (see Replaying).
	replayTo uint64
	started  time.Time

	loop       *reconcile.Loop // nil with --dataplane none
	vips       *vip.Manager
	vipIface   string
	recVIPs    *vipModes
	claims     *claims // what this node claims on the host, recorded in the data dir
	loopCancel context.CancelFunc
	loopDone   chan struct{}

	stop     chan struct{}
	wg       sync.WaitGroup
	shutOnce sync.Once
	shutErr  error

	verifying atomic.Bool // a VerifyLeader round for the VIP lease is in flight

	certCheck chan struct{} // wakes watchRevocations (buffered, 1)
}

var _ httpapi.Backend = (*Agent)(nil)

// ErrNoClusterState: the data dir holds no cluster and neither --bootstrap
// nor --join was given.
var ErrNoClusterState = errors.New("no cluster state")

// Start brings the node up: it creates or joins a cluster when the data dir
// holds none, and otherwise resumes from the data dir.
func Start(ctx context.Context, cfg Config) (_ *Agent, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	if cfg.DataDir == "" {
		cfg.DataDir = DefaultDataDir
	}
	a := &Agent{cfg: cfg, log: cfg.Logger.With("component", "agent"), stop: make(chan struct{}), certCheck: make(chan struct{}, 1)}
	defer func() {
		if err != nil {
			a.closeAll()
		}
	}()
	// An --import file is checked whole before the data dir is touched,
	// so a bad one leaves nothing behind.
	var imp *bootstrapImport
	if cfg.Cluster.Import != "" && !cfg.Bootstrap {
		return nil, errors.New("--import takes over a wg-quick server when a new cluster is created: give it with --bootstrap (to add a file's peers to a running cluster, use raftguard peer import)")
	}
	if cfg.Bootstrap && cfg.Cluster.Import != "" {
		if _, err := pki.LoadIdentity(filepath.Join(cfg.DataDir, tlsDirName)); errors.Is(err, pki.ErrNoIdentity) {
			if imp, err = loadImport(cfg.Cluster); err != nil {
				return nil, err
			}
		}
	}
	if err := a.prepareDataDir(); err != nil {
		return nil, err
	}
	if err := a.resolveNode(); err != nil {
		return nil, err
	}
	switch a.cfg.Dataplane {
	case "auto", "kernel", "userspace", "none":
	default:
		return nil, fmt.Errorf("--dataplane %q: want auto, kernel, userspace or none", a.cfg.Dataplane)
	}

	// Listen first so that ports given as :0 are known before certificates
	// and registrations name them.
	rl, err := net.Listen("tcp", a.node.RaftAddr)
	if err != nil {
		return nil, fmt.Errorf("raft listener on %s: %w", a.node.RaftAddr, err)
	}
	rl.Close() // raftnode binds it again below; only the port is needed here
	a.apiLn, err = net.Listen("tcp", a.node.APIAddr)
	if err != nil {
		return nil, fmt.Errorf("API listener on %s: %w", a.node.APIAddr, err)
	}
	a.node.RaftAdvertise = advertiseAddr(a.node.Advertise, rl.Addr())
	a.node.APIAdvertise = advertiseAddr(a.node.Advertise, a.apiLn.Addr())
	a.node.RaftAddr = rl.Addr().String()
	a.node.APIAddr = a.apiLn.Addr().String()

	tlsDir := filepath.Join(cfg.DataDir, tlsDirName)
	a.ident, err = pki.LoadIdentity(tlsDir)
	fresh := errors.Is(err, pki.ErrNoIdentity)
	if err != nil && !fresh {
		return nil, fmt.Errorf("load TLS identity: %w", err)
	}
	switch {
	case !fresh && cfg.Bootstrap:
		a.log.Info("data dir already holds a cluster; --bootstrap ignored", "data_dir", cfg.DataDir)
	case fresh && cfg.Bootstrap:
		if err := a.prepareBootstrap(imp); err != nil {
			return nil, err
		}
	case fresh && len(cfg.Join) > 0:
		if err = a.requestCertificate(ctx); err != nil {
			return nil, err
		}
	case fresh:
		return nil, fmt.Errorf("%w in %s: give --bootstrap to create a cluster, or --join ADDR --token TOKEN to join one", ErrNoClusterState, cfg.DataDir)
	}
	if err := writeJSONFile(filepath.Join(cfg.DataDir, nodeFileName), &a.node); err != nil {
		return nil, fmt.Errorf("save node file: %w", err)
	}
	if err := a.cleanLeftovers(); err != nil {
		return nil, err
	}

	if err := a.startRaft(); err != nil {
		return nil, err
	}
	a.replayTo, a.started = a.raft.Stats().LastIndex, time.Now()
	hasState := a.raft.HasState()
	if !hasState {
		switch {
		case fileExists(filepath.Join(cfg.DataDir, pendingInitFile)):
			if err := a.raft.Bootstrap(); err != nil {
				return nil, fmt.Errorf("bootstrap raft: %w", err)
			}
		case len(cfg.Join) == 0:
			return nil, fmt.Errorf("%w in %s: the node has a certificate but is not a member yet; give --join ADDR --token TOKEN", ErrNoClusterState, cfg.DataDir)
		}
	}
	if err := a.startAPI(); err != nil {
		return nil, err
	}
	if !hasState && len(cfg.Join) > 0 && !fileExists(filepath.Join(cfg.DataDir, pendingInitFile)) {
		if err := a.joinCluster(ctx); err != nil {
			return nil, err
		}
	}
	if err := a.startDataplane(); err != nil {
		return nil, err
	}
	a.wg.Add(2)
	go a.leaderLoop()
	a.wg.Add(1)
	go a.expiryLoop()
	go a.watchRevocations()
	a.log.Info("node started", "node_id", a.node.NodeID, "raft_addr", a.node.RaftAdvertise, "api_addr", a.node.APIAdvertise, "version", version.Version)
	return a, nil
}

func advertiseAddr(host string, bound net.Addr) string {
	_, port, _ := net.SplitHostPort(bound.String())
	return net.JoinHostPort(host, port)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func (a *Agent) prepareDataDir() error {
	if err := os.MkdirAll(a.cfg.DataDir, dataDirMode); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if err := os.Chmod(a.cfg.DataDir, dataDirMode); err != nil {
		return fmt.Errorf("data dir permissions: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(a.cfg.DataDir, nodeFileLockName), os.O_CREATE|os.O_RDWR, secretFileMode)
	if err != nil {
		return fmt.Errorf("lock data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("data dir %s is in use by another raftguard process", a.cfg.DataDir)
	}
	a.lock = f
	return nil
}

// resolveNode merges the stored node file with the flags given now.
func (a *Agent) resolveNode() error {
	stored, err := readNodeFile(a.cfg.DataDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if stored == nil {
		stored = &nodeFile{}
	}
	n := *stored
	pick := func(given, have, def string) string {
		switch {
		case given != "":
			return given
		case have != "":
			return have
		}
		return def
	}
	if a.cfg.NodeID != "" && stored.NodeID != "" && a.cfg.NodeID != stored.NodeID {
		return fmt.Errorf("--node-id %q differs from %q stored in %s: a node's id never changes", a.cfg.NodeID, stored.NodeID, a.cfg.DataDir)
	}
	host, _ := os.Hostname()
	n.NodeID = pick(a.cfg.NodeID, stored.NodeID, host)
	if err := fsm.ValidateName(n.NodeID); err != nil {
		return fmt.Errorf("node id: %w", err)
	}
	n.RaftAddr = hostPortDefault(pick(a.cfg.RaftAddr, stored.RaftAddr, "0.0.0.0"), DefaultRaftPort)
	n.APIAddr = hostPortDefault(pick(a.cfg.APIAddr, stored.APIAddr, "0.0.0.0"), DefaultAPIPort)
	n.Advertise = pick(a.cfg.Advertise, stored.Advertise, "")
	if n.Advertise == "" {
		n.Advertise = defaultAdvertise(n.RaftAddr)
	}
	n.VIPInterface = pick(a.cfg.VIPInterface, stored.VIPInterface, "")
	n.NATInterface = pick(a.cfg.NATInterface, stored.NATInterface, "")
	n.WGInterface = pick(a.cfg.WGInterface, stored.WGInterface, DefaultWGInterface)
	n.Dataplane = pick(a.cfg.Dataplane, stored.Dataplane, DefaultDataplane)
	n.VIPHook = pick(a.cfg.VIPModes.Hook, stored.VIPHook, "")
	n.VIPHookTimeout = stored.VIPHookTimeout
	if a.cfg.VIPModes.HookTimeout > 0 {
		n.VIPHookTimeout = int64(a.cfg.VIPModes.HookTimeout)
	}
	vm := a.cfg.VIPModes
	n.BGPASN, n.BGPNeighbors, n.BGPRouterID, n.BGPHoldTime = stored.BGPASN, stored.BGPNeighbors, stored.BGPRouterID, stored.BGPHoldTime
	if vm.BGPASN != 0 {
		n.BGPASN = vm.BGPASN
	}
	if len(vm.BGPNeighbors) > 0 {
		n.BGPNeighbors = SplitList(vm.BGPNeighbors)
	}
	n.BGPRouterID = pick(vm.BGPRouterID, n.BGPRouterID, "")
	if vm.BGPHoldTime > 0 {
		n.BGPHoldTime = int64(vm.BGPHoldTime)
	}
	n.HetznerTokenFile = pick(vm.HetznerTokenFile, stored.HetznerTokenFile, "")
	if vm.HetznerServerID != 0 {
		n.HetznerServerID = vm.HetznerServerID
	}
	n.HetznerEndpoint = pick(vm.HetznerEndpoint, stored.HetznerEndpoint, "")
	n.AWSRegion = pick(vm.AWSRegion, stored.AWSRegion, "")
	n.AWSInstanceID = pick(vm.AWSInstanceID, stored.AWSInstanceID, "")
	n.AWSEIP = pick(vm.AWSEIP, stored.AWSEIP, "")
	n.AWSEndpoint = pick(vm.AWSEndpoint, stored.AWSEndpoint, "")
	a.node = n
	a.cfg.Dataplane = n.Dataplane
	return nil
}

func (a *Agent) certIPs() []net.IP {
	var ips []net.IP
	for _, h := range []string{a.node.Advertise, hostOf(a.node.RaftAddr), hostOf(a.node.APIAddr)} {
		if ip := net.ParseIP(h); ip != nil && !ip.IsUnspecified() {
			ips = append(ips, ip)
		}
	}
	return ips
}

func hostOf(addr string) string {
	h, _, _ := net.SplitHostPort(addr)
	return h
}

func (a *Agent) startRaft() error {
	a.state = fsm.New(func(t fsm.CommandType) {
		a.certsChanged(t)
		if a.loop == nil {
			return
		}
		if t == 0 { // the whole state was restored from a snapshot
			a.loop.Greet()
		}
		a.loop.Wake()
	})
	// Both sides of the Raft transport refuse certificates the replicated
	// state has revoked (removed nodes).
	serverTLS, err := a.ident.PeerServerConfig()
	if err != nil {
		return err
	}
	clientTLS, err := a.ident.PeerClientConfig()
	if err != nil {
		return err
	}
	serverTLS = pki.RefuseRevoked(serverTLS, a.state.CertRevoked)
	clientTLS = pki.RefuseRevoked(clientTLS, a.state.CertRevoked)
	t := a.cfg.Raft
	a.raft, err = raftnode.New(raftnode.Config{
		NodeID:             a.node.NodeID,
		Dir:                filepath.Join(a.cfg.DataDir, raftDirName),
		BindAddr:           a.node.RaftAddr,
		AdvertiseAddr:      a.node.RaftAdvertise,
		ServerTLS:          serverTLS,
		ClientTLS:          clientTLS,
		FSM:                a.state,
		Logger:             a.cfg.Logger,
		HeartbeatTimeout:   t.HeartbeatTimeout,
		ElectionTimeout:    t.ElectionTimeout,
		LeaderLeaseTimeout: t.LeaderLeaseTimeout,
		SnapshotThreshold:  t.SnapshotThreshold,
		SnapshotInterval:   t.SnapshotInterval,
		TrailingLogs:       t.TrailingLogs,
	})
	if err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	return nil
}

func (a *Agent) startAPI() error {
	peerTLS, err := a.ident.PeerClientConfig()
	if err != nil {
		return err
	}
	// Calls to other nodes refuse a revoked certificate; the API itself
	// answers 403 to requests made with one (httpapi).
	peerTLS = pki.RefuseRevoked(peerTLS, a.state.CertRevoked)
	serverTLS, err := a.ident.APIServerConfig()
	if err != nil {
		return err
	}
	a.peers = newPeerClient(peerTLS)
	a.api = httpapi.New(httpapi.Config{Backend: a, Cluster: a, PeerTLS: peerTLS, Logger: a.cfg.Logger.With("component", "api"), PeerLimit: a.peerLimit})
	a.http = &http.Server{
		Handler:           a.api.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(a.cfg.Logger.With("component", "http").Handler(), slog.LevelDebug),
	}
	ln := tls.NewListener(a.apiLn, serverTLS)
	go func() {
		if err := a.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("API server stopped", "err", err)
		}
	}()
	return nil
}

// leaderLoop is the node's one leader loop: it reacts to leadership
// changes. Once per term the leader waits for a barrier and tells the
// reconcile loop, which serves (interface up, VIPs claimed) only after it;
// then the leader finishes a pending bootstrap and keeps its own
// registration current.
func (a *Agent) leaderLoop() {
	defer a.wg.Done()
	wake := a.raft.Subscribe()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	warned := false
	var caughtUp uint64 // the term in which this node's state caught up as leader
	for {
		var retry <-chan time.Time
		if a.raft.IsLeader() {
			if err := a.leaderDuties(&caughtUp); err != nil {
				a.log.Warn("leader duties", "err", err)
			}
			if caughtUp != a.raft.Term() {
				// Serving waits for the barrier: try again soon.
				retry = time.After(barrierRetry)
			}
		} else {
			caughtUp = 0
		}
		a.checkClock()
		a.checkAddresses(&warned)
		select {
		case <-a.stop:
			return
		case <-wake:
		case <-tick.C:
		case <-retry:
		}
	}
}

// barrierRetry is how soon a leader whose barrier failed tries again.
const barrierRetry = time.Second

// leaderDuties runs on the leader. Once per term it first waits for a
// barrier, so that the local state holds everything committed before (a
// barrier is a log entry: not one per wake-up), and tells the reconcile
// loop that it may serve.
func (a *Agent) leaderDuties(caughtUp *uint64) error {
	// The term is read before the barrier: a barrier that went through
	// in a later term is then credited to none, never to a wrong one.
	if term := a.raft.Term(); *caughtUp != term {
		start := time.Now()
		if err := a.raft.Barrier(10 * time.Second); err != nil {
			return fmt.Errorf("barrier: %w", err)
		}
		*caughtUp = term
		if a.loop != nil {
			a.loop.CaughtUp(term, start)
		}
	}
	pending := filepath.Join(a.cfg.DataDir, pendingInitFile)
	// (Also when initialized: the VIP mode may still be due.)
	if fileExists(pending) {
		if err := a.finishBootstrap(pending); err != nil {
			return err
		}
	}
	if !a.state.Initialized() {
		return nil
	}
	n, ok := a.state.Node(a.node.NodeID)
	if !ok || n.RaftAddr != a.node.RaftAdvertise || n.APIAddr != a.node.APIAdvertise {
		if _, err := a.Apply(fsm.CmdRegisterNode, fsm.RegisterNode{ID: a.node.NodeID, RaftAddr: a.node.RaftAdvertise, APIAddr: a.node.APIAdvertise, At: time.Now().UTC()}); err != nil {
			return fmt.Errorf("register node: %w", err)
		}
	}
	if err := a.recordOwnCert(); err != nil {
		return err
	}
	return a.raiseClusterVersion()
}

// raiseClusterVersion raises the replicated cluster version to the newest
// protocol every member of the Raft configuration reports (through its
// API; a node of the first release reports none and counts as 1). A member
// that does not answer holds the version where it is.
func (a *Agent) raiseClusterVersion() error {
	cv := a.state.ClusterVersion()
	if cv >= fsm.ProtocolVersion {
		return nil
	}
	servers, err := a.raft.Servers()
	if err != nil {
		return fmt.Errorf("cluster version: %w", err)
	}
	supported := fsm.ProtocolVersion
	for _, srv := range servers {
		if srv.ID == a.node.NodeID {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := a.MemberStatus(ctx, srv.ID)
		cancel()
		if err != nil {
			return nil // unknown: ask again on the next round
		}
		supported = min(supported, st.NodeProtocol())
	}
	if supported <= cv {
		return nil
	}
	if _, err := a.Apply(fsm.CmdSetClusterVersion, fsm.SetClusterVersion{Version: supported, At: time.Now().UTC()}); err != nil {
		return fmt.Errorf("raise the cluster version to %d: %w", supported, err)
	}
	a.log.Info("cluster version raised: every member supports it", "cluster_version", supported)
	return nil
}

// checkAddresses warns (once) when a follower now advertises addresses other
// than the ones the cluster knows it by: the others cannot reach it there.
// (A leader registers its own new addresses.)
func (a *Agent) checkAddresses(warned *bool) {
	if *warned || a.raft.IsLeader() || !a.state.Initialized() {
		return
	}
	n, ok := a.state.Node(a.node.NodeID)
	if !ok || (n.RaftAddr == a.node.RaftAdvertise && n.APIAddr == a.node.APIAdvertise) {
		return
	}
	*warned = true
	a.log.Warn("the cluster knows this node by other addresses, and cannot reach it at the new ones: remove it (raftguard cluster remove) and join it again",
		"known_raft_addr", n.RaftAddr, "known_api_addr", n.APIAddr, "raft_addr", a.node.RaftAdvertise, "api_addr", a.node.APIAdvertise)
}

// checkClock warns when this node's clock is behind the newest time stamp in
// the replicated state: WireGuard clients ignore handshake initiations whose
// time stamp is older than the last one they saw from the shared key.
func (a *Agent) checkClock() {
	if last := a.state.LastTime(); time.Now().Before(last.Add(-time.Second)) {
		a.log.Warn("this node's clock is behind the cluster's: keep all servers in sync with NTP, or clients may ignore this node's handshakes after a failover",
			"behind_by", time.Until(last).Round(time.Millisecond).String())
	}
}

// Shutdown stops the node. A leader first hands leadership to a follower
// (bounded by ctx), so the cluster keeps serving.
func (a *Agent) Shutdown(ctx context.Context) error {
	a.shutOnce.Do(func() {
		if a.raft != nil && a.raft.IsLeader() {
			if servers, err := a.raft.Servers(); err == nil && countVoters(servers) > 1 {
				tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				id, err := a.TransferLeadership(tctx, "")
				cancel()
				if err != nil {
					a.log.Warn("leadership handover before shutdown failed", "err", err)
				} else {
					a.log.Info("handed leadership over before shutdown", "new_leader", id)
				}
			}
		}
		close(a.stop)
		a.stopDataplane()
		a.shutErr = a.closeAll()
		a.wg.Wait()
	})
	return a.shutErr
}

func countVoters(servers []raftnode.Server) int {
	n := 0
	for _, s := range servers {
		if s.Voter {
			n++
		}
	}
	return n
}

func (a *Agent) closeAll() error {
	var errs []error
	if a.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = a.http.Shutdown(ctx)
		cancel()
		a.api.Close()
		a.peers.CloseIdleConnections()
	} else if a.apiLn != nil {
		a.apiLn.Close()
	}
	if a.raft != nil {
		if err := a.raft.Shutdown(); err != nil {
			errs = append(errs, err)
		}
	}
	if a.lock != nil {
		a.lock.Close()
	}
	return errors.Join(errs...)
}

// ---- accessors ----

// NodeID is this node's id.
func (a *Agent) NodeID() string { return a.node.NodeID }

// APIAddr is the address other nodes and clients use for this node's API.
func (a *Agent) APIAddr() string { return a.node.APIAdvertise }

// RaftAddr is the address other nodes use for this node's Raft transport.
func (a *Agent) RaftAddr() string { return a.node.RaftAdvertise }

// DataDir is the node's data dir.
func (a *Agent) DataDir() string { return a.cfg.DataDir }

// RaftNode exposes the Raft node (tests).
func (a *Agent) RaftNode() *raftnode.Node { return a.raft }

// ---- httpapi.Backend ----

// State is the local replica.
func (a *Agent) State() *fsm.FSM { return a.state }

// IsLeader reports whether this node leads.
func (a *Agent) IsLeader() bool { return a.raft.IsLeader() }

// LeaderID is the current leader's id, or "".
func (a *Agent) LeaderID() string {
	id, _ := a.raft.Leader()
	return id
}

// Apply proposes a command on this node (the leader). A command or field
// that the cluster version does not allow yet is refused
// (fsm.ErrUpgradeRequired): some member could not apply it.
func (a *Agent) Apply(t fsm.CommandType, body any) (any, error) {
	if err := fsm.CheckProposable(t, body, a.state.ClusterVersion()); err != nil {
		return nil, err
	}
	b, err := fsm.Encode(t, body)
	if err != nil {
		return nil, err
	}
	res, err := a.raft.Apply(b)
	return res, raftError(err)
}

// VerifyLeader confirms leadership and waits for the local state to catch up.
func (a *Agent) VerifyLeader() error {
	if err := a.raft.VerifyLeader(); err != nil {
		return raftError(err)
	}
	return raftError(a.raft.Barrier(5 * time.Second))
}

// Replaying reports whether this node is still applying the log it had on
// disk when it started (its state may lack recent tokens and peers). An
// uncommitted tail of that log may never be applied, so it gives up after
// a minute.
func (a *Agent) Replaying() bool {
	return time.Since(a.started) < time.Minute && a.raft.Stats().AppliedIndex < a.replayTo
}

// Status is this node's own view of itself.
func (a *Agent) Status() httpapi.NodeStatus {
	rs := a.raft.Stats()
	st := httpapi.NodeStatus{
		NodeID:       a.node.NodeID,
		Role:         rs.State,
		LeaderID:     a.LeaderID(),
		Term:         rs.Term,
		LastIndex:    rs.LastIndex,
		CommitIndex:  rs.CommitIndex,
		AppliedIndex: rs.AppliedIndex,
		RaftAddr:     a.node.RaftAdvertise,
		APIAddr:      a.node.APIAdvertise,
		Dataplane:    a.cfg.Dataplane,
		Version:      version.Version,

		Protocol:       fsm.ProtocolVersion,
		ClusterVersion: a.state.ClusterVersion(),
	}
	if a.loop != nil {
		ls := a.loop.Status()
		st.InterfaceUp, st.VIPHolder = ls.InterfaceUp, ls.VIPHolder
		if ls.Kind != "" {
			st.Dataplane = ls.Kind
		}
	}
	if a.recVIPs != nil && a.state.Initialized() {
		ms := a.recVIPs.status()
		st.VIPMode, st.VIPError = ms.Mode, ms.Error
		st.VIPHeld = st.VIPHolder && ms.Held
	}
	return st
}

// Servers lists the Raft configuration.
func (a *Agent) Servers() ([]httpapi.Member, error) {
	servers, err := a.raft.Servers()
	if err != nil {
		return nil, raftError(err)
	}
	out := make([]httpapi.Member, len(servers))
	for i, s := range servers {
		out[i] = httpapi.Member{ID: s.ID, RaftAddr: s.Addr, Voter: s.Voter}
	}
	return out, nil
}

// AddVoter adds (or re-addresses) a node.
func (a *Agent) AddVoter(id, raftAddr string) error { return raftError(a.raft.Join(id, raftAddr)) }

// RemoveServer removes a node from the Raft configuration.
func (a *Agent) RemoveServer(id string) error { return raftError(a.raft.Remove(id)) }

// TransferLeadership hands leadership to another node and waits until the
// new leader serves (interface up, VIP claimed; with --dataplane none, until
// it is elected).
func (a *Agent) TransferLeadership(ctx context.Context, to string) (string, error) {
	if err := a.raft.TransferLeadership(to); err != nil {
		return "", raftError(err)
	}
	for {
		if id := a.LeaderID(); id != "" && id != a.node.NodeID {
			if a.loop == nil {
				return id, nil
			}
			// With a data plane, the handover is done when the new leader
			// serves: interface up and VIP claimed.
			st, err := a.MemberStatus(ctx, id)
			if err == nil && st.VIPHolder && st.InterfaceUp {
				return id, nil
			}
		}
		select {
		case <-ctx.Done():
			if id := a.LeaderID(); id != "" && id != a.node.NodeID {
				return "", fmt.Errorf("%w: the new leader %s does not serve the VIP yet", httpapi.ErrTimeout, id)
			}
			return "", fmt.Errorf("%w: no new leader after the handover", httpapi.ErrTimeout)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// PeerStats reads the live per-peer counters of the local interface.
func (a *Agent) PeerStats() map[string]httpapi.PeerStats {
	if a.loop == nil {
		return nil
	}
	stats := a.loop.PeerStats()
	out := make(map[string]httpapi.PeerStats, len(stats))
	for _, s := range stats {
		ps := httpapi.PeerStats{LatestHandshake: s.LastHandshake, RxBytes: s.RxBytes, TxBytes: s.TxBytes}
		if s.Endpoint.IsValid() {
			ps.Endpoint = s.Endpoint.String()
		}
		out[s.PublicKey] = ps
	}
	return out
}

// WaitReady waits until the node knows a leader and its state is
// initialized.
func (a *Agent) WaitReady(ctx context.Context) error {
	for {
		if a.LeaderID() != "" && a.state.Initialized() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s not ready: %w", a.node.NodeID, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func trimScheme(addr string) string {
	addr = strings.TrimPrefix(addr, "https://")
	return strings.TrimSuffix(addr, "/")
}

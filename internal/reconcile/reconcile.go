// Package reconcile turns the replicated state and this node's role into the
// data plane and the virtual IPs. It is level-triggered: whenever it wakes
// (state change, leadership change, or a ticker) it reads the current truth
// and makes the interface and the VIPs match it, so a lost or doubled wake-up
// does no harm.
//
// On the leader, once the node's leader loop has told it (CaughtUp) that a
// barrier went through in the current term, so the local state holds
// everything committed: the interface up, the VIPs claimed and announced,
// then handshakes initiated to every enabled peer with a known endpoint,
// most recently active first. The loop runs no barrier of its own. On
// any other node: the VIPs released and the interface down, first and
// without waiting for anything. The leader also records peers' changed
// endpoints in the replicated state, so the next leader knows where clients
// are.
//
// The VIP lease: the VIPs carry a kernel lifetime, and the loop renews it
// (every LeaseRenew) only with proof that this node still leads a quorum: a
// VerifyLeader round that went through Raft's own leader goroutine and was
// answered by a quorum, while the loop itself is not stuck in one pass. A
// process that dies or freezes, a Raft side that is wedged, or a loop stuck
// in a system call all stop the renewals, and the kernel removes the VIPs
// by itself (see package vip).
package reconcile

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftguard/raftguard/dataplane"
	"github.com/raftguard/raftguard/fsm"
)

// Dataplane is what the loop needs from the WireGuard interface.
type Dataplane interface {
	Set(cfg dataplane.Config) (bool, error)
	Stats() ([]dataplane.PeerStats, error)
	InitiateHandshake(publicKey string, endpoint netip.AddrPort) error
	IsUp() (bool, error)
	Close() error
}

// VIPs is what the loop needs from the virtual IP manager.
type VIPs interface {
	Claim(vips []netip.Prefix) (bool, error)
	Release(vips []netip.Prefix) (bool, error)
	// Renew extends the kernel lifetime of the VIPs held and reports
	// whether all of them were held; it never adds one.
	Renew(vips []netip.Prefix) (bool, error)
}

// Delivery is what VIPs may also implement when the network delivers the
// VIPs to this node only some time after Claim (a route announced, a cloud
// API called): a new leader's handshakes to the clients wait for it, since
// the clients' answers to the VIP would not reach this node before. The
// implementation wakes the loop (Wake) when delivery starts.
type Delivery interface {
	Delivered(vips []netip.Prefix) bool
}

// Node is what the loop needs from Raft and the replicated state.
type Node interface {
	IsLeader() bool
	// Term is Raft's current term.
	Term() uint64
	// VerifyLeader confirms, with a round trip to a quorum that goes
	// through Raft's leader loop, that this node still leads; it gives up
	// after timeout.
	VerifyLeader(timeout time.Duration) error
	State() *fsm.FSM
	// Propose applies a command on the leader.
	Propose(t fsm.CommandType, body any) (any, error)
	// HandOver transfers leadership to any healthy follower.
	HandOver() error
}

// Config configures the loop.
type Config struct {
	Node Node
	// Open (re)creates the interface; called at start and when the
	// interface has vanished.
	Open func() (Dataplane, error)
	VIPs VIPs // nil: no VIP management
	Log  *slog.Logger
	// Tick is how often the loop checks the data plane without a wake-up
	// (default 1s).
	Tick time.Duration
	// EndpointSync records peers' endpoints in the replicated state (on by
	// default; tests switch it off).
	DisableEndpointSync bool
	// HandshakeBatch and HandshakePause pace the handshakes a new leader
	// initiates, so that the answers do not push WireGuard into its
	// under-load cookie mode (wireguard-go turns it on above 128 queued
	// handshake messages; the kernel above 512). Defaults: 64 per 20ms.
	HandshakeBatch int
	HandshakePause time.Duration
	// RepairAttempts is how many consecutive failed repairs make the
	// leader hand over (default 3).
	RepairAttempts int
	// PeerLimit caps the peers put on the interface (default: the data
	// plane's own limit, see PeerLimit).
	PeerLimit int
	// Settle is how long the loop gathers state changes after a wake-up
	// before it applies them (default 20ms; negative: not at all).
	Settle time.Duration
	// LeaseRenew is how often the leader renews the VIPs' kernel lifetime
	// (default 500ms), and LeaseLifetime that lifetime (default 2s): a
	// renewal needs a VerifyLeader round that succeeded within LeaseRenew,
	// a claim needs one (or the term's barrier, see CaughtUp) younger than
	// LeaseLifetime, and a reconcile pass running longer than LeaseLifetime
	// counts as stuck and stops the renewals.
	LeaseRenew, LeaseLifetime time.Duration
	// Firewall installs NAT for the pools on the leader when the cluster
	// setting asks for it (nil: no NAT management), masquerading on
	// NATInterface (empty: the default route's interface).
	Firewall     Firewall
	NATInterface string
}

// Status is the loop's view of the data plane, for the API.
type Status struct {
	InterfaceUp bool
	VIPHolder   bool
	Kind        string
}

// Loop is the reconcile loop of one node.
type Loop struct {
	cfg  Config
	log  *slog.Logger
	wake chan struct{}

	// caughtUp is the term in which a barrier went through as leader
	// (CaughtUp): the loop serves only in that term. ready wakes the loop
	// when it is set.
	caughtUp atomic.Uint64
	ready    chan struct{}

	mu        sync.Mutex // guards dp, status, applied, upApplied and leading
	dp        Dataplane
	status    Status
	applied   uint64 // state index of the last config applied
	upApplied bool   // the last config applied had the interface up
	leading   bool   // the interface is up and the VIPs claimed

	// failures counts the takeovers that failed in a row; only the loop's
	// own goroutine (reconcile) uses it.
	failures int

	serving   atomic.Bool  // mirrors leading for the lease renewer, without l.mu (held across a whole Set)
	passStart atomic.Int64 // when the running reconcile pass started (UnixNano); 0 between passes
	proofAt   atomic.Int64 // when the last quorum round that succeeded (the term's barrier, see CaughtUp, or VerifyLeader) started (UnixNano)

	handshakeGen atomic.Uint64 // cancels a running handshake burst
	greetAll     atomic.Bool   // initiate handshakes on the next leader pass
	overLimit    atomic.Int64  // enabled peers left off the interface, last reported
	firewallErr  atomic.Value  // string: the NAT error last logged ("" none)
	counters     counters      // traffic totals on the leader (status.go)
}

// New returns a loop; Run starts it.
func New(cfg Config) *Loop {
	if cfg.Tick == 0 {
		cfg.Tick = time.Second
	}
	if cfg.HandshakeBatch == 0 {
		cfg.HandshakeBatch = 64
	}
	if cfg.HandshakePause == 0 {
		cfg.HandshakePause = 20 * time.Millisecond
	}
	if cfg.RepairAttempts == 0 {
		cfg.RepairAttempts = 3
	}
	if cfg.Settle == 0 {
		cfg.Settle = 20 * time.Millisecond
	}
	if cfg.LeaseRenew == 0 {
		cfg.LeaseRenew = 500 * time.Millisecond
	}
	if cfg.LeaseLifetime == 0 {
		cfg.LeaseLifetime = 2 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Loop{cfg: cfg, log: cfg.Log.With("component", "reconcile"), wake: make(chan struct{}, 1), ready: make(chan struct{}, 1)}
}

// CaughtUp tells the loop that this node, as leader in term, has had a
// barrier go through: its state holds every entry committed before, and a
// quorum followed it when the barrier started (at proof). The loop serves
// (interface up, VIPs claimed) only in a term it was told of; it wakes at
// once, without gathering other changes first. It never blocks.
func (l *Loop) CaughtUp(term uint64, proof time.Time) {
	l.proofAt.Store(proof.UnixNano()) // before the term: whoever sees the term sees the proof
	l.caughtUp.Store(term)
	select {
	case l.ready <- struct{}{}:
	default:
	}
}

// Wake asks the loop to run soon. It never blocks; a wake-up while one is
// pending is dropped (the pass that runs reads the current truth).
func (l *Loop) Wake() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Greet asks the leader to initiate handshakes to every known client on its
// next pass (after the whole state was replaced by a snapshot restore, the
// interface's peers are new and have no sessions).
func (l *Loop) Greet() {
	l.greetAll.Store(true)
	l.Wake()
}

// Status reports the interface and VIP state as last reconciled.
func (l *Loop) Status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.status
}

// PeerStats reads the interface's per-peer counters.
func (l *Loop) PeerStats() []dataplane.PeerStats {
	l.mu.Lock()
	dp := l.dp
	l.mu.Unlock()
	if dp == nil {
		return nil
	}
	st, err := dp.Stats()
	if err != nil {
		return nil
	}
	return st
}

// Run reconciles until ctx ends, then releases the VIPs and brings the
// interface down (leaving it configured). started receives the result of
// opening the interface.
func (l *Loop) Run(ctx context.Context, leadership <-chan struct{}, started chan<- error) error {
	dp, err := l.cfg.Open()
	if err == nil {
		l.mu.Lock()
		l.dp = dp
		l.status.Kind = kindOf(dp)
		l.mu.Unlock()
	}
	if started != nil {
		started <- err
	}
	if err != nil {
		return fmt.Errorf("open interface: %w", err)
	}
	// Start from a clean follower state: no VIP held, interface down.
	l.stepDown("start", true)

	if !l.cfg.DisableEndpointSync {
		go l.endpointSync(ctx)
	}
	if l.cfg.VIPs != nil {
		go l.renewLease(ctx)
	}
	tick := time.NewTicker(l.cfg.Tick)
	defer tick.Stop()
	for {
		l.passStart.Store(time.Now().UnixNano())
		l.reconcile(ctx)
		l.passStart.Store(0)
		select {
		case <-ctx.Done():
			l.stepDown("shutdown", true)
			return nil
		case <-leadership:
		case <-l.ready:
		case <-l.wake:
			// A burst of writes wakes the loop once per write, and every
			// pass walks the whole registry: gather the burst first. A
			// change of leadership does not wait.
			select {
			case <-time.After(l.cfg.Settle):
			case <-leadership:
			case <-ctx.Done():
			}
		case <-tick.C:
		}
	}
}

// Close releases the interface.
func (l *Loop) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dp == nil {
		return nil
	}
	err := l.dp.Close()
	l.dp = nil
	return err
}

func kindOf(dp Dataplane) string {
	if k, ok := dp.(interface{ Kind() string }); ok {
		return k.Kind()
	}
	return ""
}

func (l *Loop) reconcile(ctx context.Context) {
	n := l.cfg.Node
	if !n.State().Initialized() {
		return // nothing to serve before the cluster's first entry
	}
	if !n.IsLeader() {
		l.stepDown("not leader", false)
		l.applyConfig(false)
		l.keepDown()
		return
	}
	l.mu.Lock()
	was := l.leading
	l.mu.Unlock()
	if !was && l.caughtUp.Load() != n.Term() {
		// The local state must hold every committed entry (peers,
		// endpoints) before this node serves: wait for this term's
		// barrier (CaughtUp wakes the loop).
		return
	}
	if err := l.takeOver(ctx, !was); err != nil {
		l.failures++
		l.log.Error("serving as leader failed", "err", err, "attempt", l.failures)
		if l.failures >= l.cfg.RepairAttempts {
			l.log.Error("cannot repair the data plane: handing leadership to another node")
			l.stepDown("data plane broken", false)
			if err := n.HandOver(); err != nil {
				l.log.Error("leadership handover failed", "err", err)
			}
			l.failures = 0
		}
		return
	}
	l.failures = 0
}

// takeOver makes this node serve: interface up with the current config,
// VIPs claimed. On a fresh takeover it also initiates handshakes. It repairs
// a deleted interface or a removed VIP.
func (l *Loop) takeOver(ctx context.Context, fresh bool) error {
	set := l.cfg.Node.State().Settings()
	l.mu.Lock()
	dp := l.dp
	l.mu.Unlock()
	// A recreated interface has no sessions: greet the clients again.
	greet := fresh
	if fresh && dp != nil {
		l.statusBaseline(dp)
	}
	if dp != nil && !fresh {
		if up, err := dp.IsUp(); err != nil || !up {
			l.log.Warn("interface is not up on the leader: repairing", "err", err)
			if err := l.reopen(); err != nil {
				return err
			}
			greet = true
		}
	}
	if err := l.applyConfig(true); err != nil {
		if rerr := l.reopen(); rerr != nil {
			return fmt.Errorf("%w (reopen: %v)", err, rerr)
		}
		if err := l.applyConfig(true); err != nil {
			return err
		}
		greet = true
	}
	if l.cfg.VIPs != nil && len(set.VIPs) > 0 {
		// Raft's own idea of being leader is not enough to (re)claim a VIP:
		// it stays true while Raft's goroutines are wedged. Claim only with
		// a recent proof of quorum, as the renewals do.
		// (After a long pass the renewals' proof is old: get a fresh one.)
		if age := time.Since(time.Unix(0, l.proofAt.Load())); age > l.cfg.LeaseLifetime {
			start := time.Now()
			if err := l.cfg.Node.VerifyLeader(l.cfg.LeaseRenew); err != nil {
				return fmt.Errorf("claim VIP: %w (last proof %v ago: %v)", errNoQuorumProof, age.Round(time.Millisecond), err)
			}
			l.proofAt.Store(start.UnixNano())
		}
		// Claim is idempotent and announces only what it added (or what it
		// failed to announce before), so it runs on every pass.
		changed, err := l.cfg.VIPs.Claim(set.VIPs)
		if err != nil {
			return fmt.Errorf("claim VIP: %w", err)
		}
		if changed && !fresh {
			l.log.Warn("VIP was missing on the leader: claimed it again")
		}
	}
	// Leadership may have moved while we worked: never keep a VIP without it.
	if !l.cfg.Node.IsLeader() {
		l.stepDown("lost leadership while taking over", false)
		return nil
	}
	l.serveFirewall(set)
	l.mu.Lock()
	l.leading = true
	l.serving.Store(true)
	l.status.InterfaceUp = true
	l.status.VIPHolder = l.cfg.VIPs != nil
	l.mu.Unlock()
	if fresh {
		l.log.Info("serving as leader: interface up, VIP claimed", "vips", set.VIPs)
	}
	if l.greetAll.Swap(false) {
		greet = true
	}
	if greet {
		if d, ok := l.cfg.VIPs.(Delivery); ok && len(set.VIPs) > 0 && !d.Delivered(set.VIPs) {
			// Not yet: greet on the pass after delivery starts.
			l.greetAll.Store(true)
			return nil
		}
		go l.initiateHandshakes(ctx)
	}
	return nil
}

func (l *Loop) reopen() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dp != nil {
		_ = l.dp.Close()
		l.dp = nil
	}
	dp, err := l.cfg.Open()
	if err != nil {
		return fmt.Errorf("reopen interface: %w", err)
	}
	l.dp = dp
	l.applied, l.upApplied = 0, false
	return nil
}

// stepDown releases the VIPs and brings the interface down, at once: the
// interface when the last config applied had it up, or always (at start
// and at shutdown, whatever was applied before).
func (l *Loop) stepDown(why string, always bool) {
	l.handshakeGen.Add(1)
	l.serving.Store(false) // no renewal from here on
	set := l.cfg.Node.State().Settings()
	l.mu.Lock()
	was := l.leading
	l.leading = false
	dp := l.dp
	up := l.upApplied
	l.mu.Unlock()
	var errs []error
	if l.cfg.VIPs != nil && len(set.VIPs) > 0 {
		if _, err := l.cfg.VIPs.Release(set.VIPs); err != nil {
			errs = append(errs, fmt.Errorf("release VIP: %w", err))
		}
	}
	if dp != nil && (up || always) {
		if err := l.setDown(dp); err != nil {
			errs = append(errs, err)
		}
	}
	if err := l.removeFirewall(); err != nil {
		errs = append(errs, fmt.Errorf("remove NAT: %w", err))
	}
	l.mu.Lock()
	l.status.VIPHolder = false
	l.status.InterfaceUp = false
	l.mu.Unlock()
	if err := errors.Join(errs...); err != nil {
		l.log.Error("stepping down", "why", why, "err", err)
	} else if was {
		l.log.Info("stepped down: VIP released, interface down", "why", why)
	}
}

// errNoQuorumProof: the leader has not heard from a quorum recently enough
// to hold the VIP.
var errNoQuorumProof = errors.New("no recent proof of quorum")

// renewLease renews the VIPs' kernel lifetime every LeaseRenew while this
// node serves, each time only after a VerifyLeader round answered by a
// quorum within LeaseRenew, and not while a reconcile pass has run for
// longer than LeaseLifetime. It runs beside the loop so that a long but
// healthy pass (a large config applied) does not let the VIP expire.
func (l *Loop) renewLease(ctx context.Context) {
	t := time.NewTicker(l.cfg.LeaseRenew)
	defer t.Stop()
	var stuck, unproven bool // a warning was logged; reset once renewals resume
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !l.serving.Load() {
			continue
		}
		if s := l.passStart.Load(); s != 0 && time.Since(time.Unix(0, s)) > l.cfg.LeaseLifetime {
			if !stuck {
				l.log.Error("a reconcile pass is stuck: not renewing the VIP lease", "running", time.Since(time.Unix(0, s)).Round(time.Millisecond).String())
				stuck = true
			}
			continue
		}
		start := time.Now()
		if err := l.cfg.Node.VerifyLeader(l.cfg.LeaseRenew); err != nil {
			if !unproven {
				l.log.Warn("no proof of quorum: not renewing the VIP lease", "err", err)
				unproven = true
			}
			l.Wake() // the loop re-reads leadership
			continue
		}
		l.proofAt.Store(start.UnixNano())
		if !l.serving.Load() {
			continue // stepped down meanwhile: Release wins
		}
		all, err := l.cfg.VIPs.Renew(l.cfg.Node.State().Settings().VIPs)
		if err != nil {
			l.log.Warn("renewing the VIP lease", "err", err)
		}
		if !all {
			l.Wake() // a VIP is missing: the loop claims it again
		}
		if stuck || unproven {
			l.log.Info("VIP lease renewals resumed")
			stuck, unproven = false, false
		}
	}
}

// keepDown takes a follower's interface down again when something else
// brought it up (an operator's `ip link set up`, a network manager): a
// follower's keyed interface must neither send nor answer.
func (l *Loop) keepDown() {
	l.mu.Lock()
	dp := l.dp
	l.mu.Unlock()
	if dp == nil {
		return
	}
	if up, err := dp.IsUp(); err != nil || !up {
		return
	}
	l.log.Warn("the interface is up on a follower: taking it down")
	if err := l.setDown(dp); err != nil {
		l.log.Error("taking the interface down", "err", err)
	}
}

// setDown brings the interface down keeping its configuration.
func (l *Loop) setDown(dp Dataplane) error {
	if !l.cfg.Node.State().Initialized() {
		return nil // a new interface starts down
	}
	cfg, index := l.desired(false)
	if _, err := dp.Set(cfg); err != nil {
		return fmt.Errorf("interface down: %w", err)
	}
	l.mu.Lock()
	l.applied, l.upApplied = index, false
	l.mu.Unlock()
	return nil
}

// applyConfig applies the desired config if the state changed since the
// last time (or the interface was reopened).
func (l *Loop) applyConfig(up bool) error {
	// Building the config walks every peer: skip it when nothing changed.
	l.mu.Lock()
	same := l.dp != nil && l.applied != 0 && l.applied == l.cfg.Node.State().AppliedIndex() && up == l.upApplied
	l.mu.Unlock()
	if same {
		return nil
	}
	cfg, index := l.desired(up)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dp == nil {
		return errors.New("no interface")
	}
	if index == l.applied && up == l.upApplied && index != 0 {
		return nil
	}
	if !l.cfg.Node.State().Initialized() {
		return nil
	}
	if _, err := l.dp.Set(cfg); err != nil {
		return fmt.Errorf("configure interface: %w", err)
	}
	l.applied, l.upApplied = index, up
	return nil
}

// desired builds the interface config from the replicated state.
func (l *Loop) desired(up bool) (dataplane.Config, uint64) {
	st := l.cfg.Node.State()
	index := st.AppliedIndex()
	set := st.Settings()
	cfg := dataplane.Config{
		PrivateKey: set.PrivateKey,
		ListenPort: set.ListenPort,
		Addresses:  set.ServerAddresses(),
		MTU:        set.MTU,
		Up:         up,
	}
	for _, v := range set.VIPs {
		cfg.SourceAddrs = append(cfg.SourceAddrs, v.Addr())
	}
	for _, p := range st.Peers() {
		if !p.Enabled {
			continue
		}
		dp := dataplane.Peer{PublicKey: p.PublicKey, PresharedKey: p.PresharedKey}
		dp.AllowedIPs = append(append(make([]netip.Prefix, 0, len(p.Addresses)+len(p.AllowedIPs)), p.Addresses...), p.AllowedIPs...)
		if ep, err := netip.ParseAddrPort(p.Endpoint); err == nil {
			dp.Endpoint = ep
		}
		cfg.Peers = append(cfg.Peers, dp)
	}
	cfg.Peers = l.limitPeers(cfg.Peers, st)
	return cfg, index
}

// PeerLimit is the most peers a data plane of this kind holds; 0 means no
// limit worth checking.
func PeerLimit(kind string) int {
	if kind == dataplane.KindUserspace {
		return dataplane.MaxUserspacePeers
	}
	return 0
}

// limitPeers keeps an interface working when the registry holds more enabled
// peers than the data plane can: the oldest peers (by creation time) are
// configured, the rest are left off and an error says how many. The API
// refuses peers beyond the limit, so this happens only when a node with a
// larger limit accepted them.
func (l *Loop) limitPeers(peers []dataplane.Peer, st *fsm.FSM) []dataplane.Peer {
	limit := l.cfg.PeerLimit
	if limit == 0 {
		limit = PeerLimit(l.Status().Kind)
	}
	over := 0
	if limit > 0 && len(peers) > limit {
		created := make(map[string]time.Time, len(peers))
		for _, p := range st.Peers() {
			created[p.PublicKey] = p.CreatedAt
		}
		slices.SortStableFunc(peers, func(a, b dataplane.Peer) int {
			return created[a.PublicKey].Compare(created[b.PublicKey])
		})
		over = len(peers) - limit
		peers = peers[:limit]
	}
	if prev := l.overLimit.Swap(int64(over)); prev != int64(over) && over > 0 {
		l.log.Error("more enabled peers than the data plane holds: the newest are left off the interface",
			"enabled", limit+over, "limit", limit, "left_off", over)
	}
	return peers
}

// initiateHandshakes sends a handshake initiation to every enabled peer with
// a known endpoint, most recently active first, paced in batches.
func (l *Loop) initiateHandshakes(ctx context.Context) {
	gen := l.handshakeGen.Load()
	var targets []fsm.Peer
	for _, p := range l.cfg.Node.State().Peers() {
		if p.Enabled && p.Endpoint != "" {
			targets = append(targets, p)
		}
	}
	slices.SortStableFunc(targets, func(a, b fsm.Peer) int { return b.LastHandshake.Compare(a.LastHandshake) })
	start := time.Now()
	sent := 0
	for i, p := range targets {
		if l.handshakeGen.Load() != gen || ctx.Err() != nil {
			return // stepped down meanwhile
		}
		ep, err := netip.ParseAddrPort(p.Endpoint)
		if err != nil {
			continue
		}
		l.mu.Lock()
		dp := l.dp
		l.mu.Unlock()
		if dp == nil {
			return
		}
		if err := dp.InitiateHandshake(p.PublicKey, ep); err != nil {
			l.log.Debug("handshake initiation failed", "peer", p.Name, "err", err)
			continue
		}
		sent++
		if (i+1)%l.cfg.HandshakeBatch == 0 {
			time.Sleep(l.cfg.HandshakePause) // pacing, not waiting for a condition
		}
	}
	if sent > 0 {
		l.log.Info("initiated handshakes to known clients", "peers", sent, "took", time.Since(start).Round(time.Millisecond).String())
	}
}

// endpointSync records, once a second on the leader, the peers whose
// endpoint changed (or whose last handshake moved on by more than
// handshakeRecordStep), in one command.
func (l *Loop) endpointSync(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.mu.Lock()
		leading, dp := l.leading, l.dp
		l.mu.Unlock()
		if !leading || dp == nil {
			continue
		}
		sync := l.syncEndpoints
		if l.peerStatusRecorded() {
			sync = l.syncStatus
		}
		if err := sync(dp); err != nil {
			l.log.Debug("endpoint sync", "err", err)
		}
	}
}

// handshakeRecordStep: a newer handshake alone is recorded only when it is
// this much newer than the recorded one (active peers rekey every two
// minutes; recording each would flood the log).
const handshakeRecordStep = 10 * time.Minute

// maxEndpointBatch bounds one SetEndpoints command.
const maxEndpointBatch = 2000

func (l *Loop) syncEndpoints(dp Dataplane) error {
	stats, err := dp.Stats()
	if err != nil {
		return err
	}
	st := l.cfg.Node.State()
	var updates []fsm.EndpointUpdate
	for _, s := range stats {
		if !s.Endpoint.IsValid() {
			continue
		}
		p, ok := st.PeerByKey(s.PublicKey)
		if !ok {
			continue
		}
		ep := s.Endpoint.String()
		if ep == p.Endpoint && s.LastHandshake.Sub(p.LastHandshake) < handshakeRecordStep {
			continue
		}
		hs := s.LastHandshake.UTC().Truncate(time.Second)
		updates = append(updates, fsm.EndpointUpdate{Name: p.Name, Endpoint: ep, LastHandshake: hs})
	}
	if len(updates) == 0 {
		return nil
	}
	slices.SortFunc(updates, func(a, b fsm.EndpointUpdate) int { return cmp.Compare(a.Name, b.Name) })
	for len(updates) > 0 {
		n := min(len(updates), maxEndpointBatch)
		if _, err := l.cfg.Node.Propose(fsm.CmdSetEndpoints, fsm.SetEndpoints{Updates: updates[:n], At: time.Now().UTC()}); err != nil {
			return err
		}
		updates = updates[n:]
	}
	return nil
}
